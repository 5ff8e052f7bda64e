/**
 * The host contract: every path, unit name and file format that the program (its generated
 * scripts, the bundle, the components) and the host agents (scripts/agents, plain ESM) share,
 * defined once (docs/CONTRACTS.md describes them). Everything in components/ imports these;
 * the agents and units repeat the few they need as literals (they ship without this file),
 * and tests/unit/host-contract.test.ts pins every such literal to this module.
 */
/** Root-owned configuration the program writes and the agents read. */
export const ETC_DIR = "/etc/workstations";
/** One JSON entry per active or suspended user (`UsersIndexEntry`), written by the account verb. */
export const USERS_DIR = `${ETC_DIR}/users.d`;
/** The index of `USERS_DIR` the agents read (`UsersIndex`). */
export const USERS_INDEX = `${ETC_DIR}/users.json`;
/** The `version` of `USERS_INDEX`; the agents refuse any other. */
export const USERS_INDEX_VERSION = 1;
/** The renewal agent's host-wide settings (client id, endpoints, Vault address). */
export const TOKEN_RENEW_CONFIG = `${ETC_DIR}/claude-token-renew.json`;
/** tmux-persist's options (scripts/agents/tmux/cli.mjs `--config` default): `{resumeArgs}` from workstations:tmuxResumeArgs. */
export const TMUX_PERSIST_CONFIG = `${ETC_DIR}/tmux-persist.json`;
/** The Slack webhook, root 0600, read only by the notifier (`LoadCredential=`). */
export const SLACK_WEBHOOK_FILE = `${ETC_DIR}/claude-token-renew.slack`;

/** Root-only program state: the uid ledger and purge archives. */
export const STATE_DIR = "/var/lib/workstations";
/** Where the takeover moves the legacy pieces it retires, one `<UTC time>/` folder per run (components/scripts/legacy.ts). */
export const LEGACY_DIR = `${STATE_DIR}/legacy`;
/** `<uid> <name>` per line: uids are never handed out twice. */
export const LEDGER = `${STATE_DIR}/uid-ledger`;
/**
 * What the last `up` applied, one record per step (`<verb>@<user|host>`, root 0600): the host
 * library command that applies it again and the state of every file and unit it manages. Read
 * by workstations-heal (the drift check and heal between deploys, README "Drift").
 */
export const DEPLOYED_DIR = `${STATE_DIR}/deployed`;
/** Per adopted account, the groups this program added to it (the only ones it ever removes again). */
export const GRANTED_DIR = `${STATE_DIR}/granted-groups`;
export const ARCHIVE_DIR = `${STATE_DIR}/archives`;
/** tmux-persist's snapshots, one directory per user. */
export const TMUX_STATE_DIR = "/var/lib/tmux-persist";

/** Per-user authorized keys (sshd reads only these for roster users). */
export const KEYS_DIR = "/etc/ssh/authorized_keys.d";
export const SSHD_DROPIN = "/etc/ssh/sshd_config.d/50-workstations.conf";
export const SUDOERS_DIR = "/etc/sudoers.d";

/** Where the agents' tree (`AGENTS_SOURCE_DIR` of the repo) is installed, as it is. */
export const LIB_DIR = "/usr/local/lib/workstations";
/** tmux-persist as installed; `/usr/local/bin/tmux-persist` links to it. */
export const TMUX_PERSIST_PROGRAM = `${LIB_DIR}/tmux-persist.mjs`;
/** The repo folder shipped to `LIB_DIR`: top-level files are entry points, folders modules. */
export const AGENTS_SOURCE_DIR = "scripts/agents";
/** The repo folder of the systemd units, installed to `UNIT_DIR`. */
export const UNITS_SOURCE_DIR = "scripts/units";
/** The versioned host library of per-user verbs (components/scripts/hostLib.ts). */
export const HOST_LIB_DIR = `${LIB_DIR}/lib`;
/** Entry points are linked from here (`tmux-persist`, `claude-token-renew`, ...). */
export const BIN_DIR = "/usr/local/bin";
export const UNIT_DIR = "/etc/systemd/system";
/** Shared read-only data: the Claude base, the mirror and launcher the home verb installs. */
export const SHARE_DIR = "/usr/local/share/workstations";
export const CLAUDE_BASE = `${SHARE_DIR}/claude-base`;
export const MIRROR_FILE = `${SHARE_DIR}/agents-mirror.md`;
export const LAUNCHER_FILE = `${SHARE_DIR}/start-claude.sh`;
/**
 * The setup-token mode's token file, relative to the home (the user's own, 0600, written by
 * claude-token-renew as the user), and the snippet every Claude start reads it through (login
 * shells of sh and bash by /etc/profile.d, zsh by a line in ZSH_PROFILE, the launcher,
 * tmux-persist's resume, T3's unit): it exports CLAUDE_CODE_OAUTH_TOKEN. README "Claude logins".
 */
export const CLAUDE_TOKEN_FILE = ".claude-oauth-token";
export const CLAUDE_TOKEN_ENV = "/etc/profile.d/workstations-claude-token.sh";
/** zsh login shells read this, not /etc/profile: the host files add one line sourcing CLAUDE_TOKEN_ENV. */
export const ZSH_PROFILE = "/etc/zsh/zprofile";
/** Claude Code's managed (policy) settings. */
export const MANAGED_SETTINGS = "/etc/claude-code/managed-settings.json";

/** Runtime directory: the notifier socket (users connect to it) and root's private part. */
export const RUN_DIR = "/run/workstations";
export const ALERT_SOCKET = `${RUN_DIR}/alert.sock`;
/** Root-only (0700) runtime directory: nothing in it can be opened by a user. */
export const ROOT_RUN_DIR = `${RUN_DIR}/root`;
/** The host-wide lock of the root verbs (0600 in ROOT_RUN_DIR: a user cannot hold it). */
export const HOST_LOCK_FILE = `${ROOT_RUN_DIR}/lock`;
/** The node the units run the agents with (absolute: no PATH lookup as root). */
export const NODE = "/usr/bin/node";

/** The web surfaces' identity files (components/plan/web.ts; README "Web access"). */
export const TTYD_USER_MAP = "/etc/ttyd-user-map";
export const TTYD_ADMINS = "/etc/ttyd-admins";
export const TTYD_SUDOERS = `${SUDOERS_DIR}/ttyd-users`;
export const T3_DIR = "/etc/t3-serve";
export const T3_DISPATCH = `${T3_DIR}/dispatch.json`;
/** `<port> <user>` per line: every T3 port ever handed out, and to whom (never reassigned or reused). */
export const T3_PORT_LEDGER = `${STATE_DIR}/t3-ports`;
/** The first T3 port; new ones are the lowest never handed out from here up. */
export const T3_FIRST_PORT = 3773;
/** The web terminal's service account: the sudoers grants are its. */
export const TERMINAL_ACCOUNT = "ttyd";
/** The web terminal's command (ttyd runs it as TERMINAL_ACCOUNT) and its attach helper (run as the user). */
export const WS_TERM_ATTACH = `${LIB_DIR}/ws-term-attach`;
export const WS_TERM_SESSION = `${LIB_DIR}/ws-term-session`;
/** What that account may run as each mapped user (absolute paths). */
export const TERMINAL_USER_PROGRAMS: readonly string[] = ["/usr/bin/tmux", WS_TERM_SESSION];
/** The optional web terminal (workstations:webTerminal): on where this flag file exists (ws-ttyd.service's condition). */
export const WEB_TERMINAL_FLAG = `${ETC_DIR}/web-terminal`;
export const TTYD_BIN = "/usr/bin/ttyd";
/** ttyd's socket; its directory is 0750 TERMINAL_ACCOUNT:PROXY_GROUP, so only the proxy's account can open it. */
export const TERMINAL_SOCKET = "/run/ws-ttyd/ttyd.sock";
/** The reverse proxy's group (Debian's nginx runs as www-data). */
export const PROXY_GROUP = "www-data";
/** The T3 Code CLI the `t3-serve@` units run (not installed by the program). */
export const T3_BIN = "/usr/local/bin/t3";
/** Root-only state of the web verb: `WEB_APPLY` runs web-apply again (on a hand edit, at boot) from `WEB_PARAMS`. */
export const WEB_STATE_DIR = `${STATE_DIR}/web`;
export const WEB_APPLY = `${WEB_STATE_DIR}/apply`;
/** The parameters of that last web-apply (root 0600), read by the put-back under the host lock. */
export const WEB_PARAMS = `${WEB_STATE_DIR}/params`;

/** Per-user files in the home (relative to it). */
export const HOME_FILES = {
  vaultCredential: ".config/claude-token-renew/vault.json",
  kubeconfig: ".kube/config",
  gitCredentials: ".git-credentials",
  clone: "code",
} as const;

/** Unit names: host-wide, and the per-user template instances. */
export const UNITS = {
  tmuxSaveTimer: "tmux-persist-save.timer",
  tmuxRestore: "tmux-persist-restore.service",
  alertSocket: "workstations-alert.socket",
  tokenRenewTimer: (user: string) => `claude-token-renew@${user}.timer`,
  refreshCloneTimer: (user: string) => `workstations-refresh-clone@${user}.timer`,
  t3Serve: (user: string) => `t3-serve@${user}.service`,
  webPath: "workstations-web.path",
  webTerminal: "ws-ttyd.service",
} as const;

/** One user's entry of `USERS_INDEX`: the host's view of the plan's effective grants (components/plan/usersIndex.ts). */
export interface UsersIndexEntry {
  name: string;
  uid: number;
  home: string;
  state: "active" | "suspended";
  email: string;
  /** `grants.tmuxPersist`: false while suspended. */
  tmuxPersist: boolean;
  /** `grants.claudeTokenRenew`: false while suspended. */
  claudeTokenRenew: boolean;
  /** `grants.claudeLogin` (README "Claude logins"); null without renewal. */
  claudeLogin: "rotating" | "setup-token" | null;
}

export interface UsersIndex {
  version: typeof USERS_INDEX_VERSION;
  users: UsersIndexEntry[];
}
