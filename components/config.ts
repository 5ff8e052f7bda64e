/**
 * Stack configuration: every key the program reads, in one place, with errors that name
 * the key and the exact `pulumi config set` command.
 */
import * as pulumi from "@pulumi/pulumi";
import type { ForgejoConfig } from "./forgejo";
import { KubeConfig, POD_SECURITY_LEVELS, PodSecurityLevel, USERNAME_CLAIMS, UsernameClaim } from "./kube";
import { Capacity, DEFAULT_CAPACITY } from "./plan/limits";
import { EarlyoomSettings, parseEarlyoom } from "./plan/earlyoom";
import type { HostConnection } from "./connection";

export const NS = "workstations";

/** Raised for a missing or malformed config key. */
export class ConfigError extends Error {
  constructor(key: string, problem: string, example: string, secret = false, hint?: string) {
    super(
      `${problem}: ${NS}:${key}. Set it with:\n  pulumi config set ${secret ? "--secret " : ""}--stack ${pulumi.getStack()} ${NS}:${key} ${example}` +
        (hint ? `\n  (${hint})` : ""),
    );
    this.name = "ConfigError";
  }
}

export interface WorkstationsConfig {
  /** Path of roster.yaml, relative to the project dir. */
  roster: string;
  connection: HostConnection;
  /** Where CI's notify step learns who is an admin: the roster (default) or this config. */
  adminSource: "roster" | "config";
  /** Forgejo users treated as admins when adminSource is "config". */
  admins: string[];
  vault: {
    /** Address the Pulumi runner uses (provider). */
    address: string;
    /** Address the host's agents use; defaults to `address`. */
    addressFromHost: string;
    /** Admin token for the provider; undefined when VAULT_TOKEN is set in the environment. */
    token?: pulumi.Output<string>;
  };
  /** Claude OAuth endpoints and client id for the renewal agent (never constants in code). */
  /** `apiUrl`, `setupTokenWarnDays`: the setup-token mode's check and warning (README "Claude logins"). */
  claude: { tokenUrl: string; profileUrl: string; apiUrl: string; clientId: string; setupTokenWarnDays: number };
  /** Slack incoming-webhook URL for renewal alerts; absent = alerts only in the journal. */
  slackWebhook?: pulumi.Output<string>;
  /** Global rotation counter for machine credentials; bump to rotate every user's. */
  credentialRotation: string;
  /** Forgejo (collaborators, master protection, tokens, ~/code); absent = Forgejo parts off. */
  forgejo?: ForgejoConfig;
  /** Kubernetes (namespaces, RBAC bindings, dashboard tokens, kubeconfigs); absent = Kubernetes parts off. */
  kube?: KubeConfig;
  /** Run the optional web terminal (ttyd, ws-ttyd.service) on the host; default off (README "Web access"). */
  webTerminal: boolean;
  /** The dashboard's token injector (its map Secret and nginx ConfigMap); absent = off. Needs `kube`. */
  dashboard?: DashboardConfig;
  /** What the users' memory limits may take together (components/plan/limits.ts). */
  capacity: Capacity;
  /** earlyoom's thresholds (components/plan/earlyoom.ts); false = the program leaves earlyoom alone. */
  earlyoom: EarlyoomSettings | false;
  /** tmux-persist's resume arguments (TMUX_PERSIST_CONFIG); absent = its default. */
  tmuxResumeArgs?: string[];
}

/** Where the dashboard's token injector lives (README "Web access"). */
export interface DashboardConfig {
  /** The dashboard's namespace (it exists: the dashboard's own install makes it). */
  namespace: string;
  /** The dashboard's URL as the injector's nginx reaches it. */
  upstream: string;
}

/** `workstations:dashboardNamespace` (absent: the injector is off) and `dashboardUpstream`. */
export function loadDashboardConfig(cfg: pulumi.Config, kubeOn: boolean): DashboardConfig | undefined {
  const namespace = cfg.get("dashboardNamespace");
  if (namespace === undefined) return undefined;
  if (!kubeOn)
    throw new ConfigError(
      "kubeApiServer",
      "The dashboard's token injector (workstations:dashboardNamespace) needs Kubernetes; missing config key",
      "https://k8s.example.internal:6443",
    );
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace))
    throw new ConfigError("dashboardNamespace", "Config key is not a namespace name", "kubernetes-dashboard");
  const upstream = cfg.get("dashboardUpstream") ?? `https://kubernetes-dashboard-kong-proxy.${namespace}.svc.cluster.local:443`;
  if (!/^https?:\/\/[^\s;{}'"]+$/.test(upstream))
    throw new ConfigError(
      "dashboardUpstream",
      "Config key is not an http(s) URL",
      "https://kubernetes-dashboard-kong-proxy.kubernetes-dashboard.svc.cluster.local:443",
    );
  return { namespace, upstream };
}

/** `workstations:earlyoom`: `false`, or `{memory: [term, kill], swap: [term, kill]}` in percent. */
export function loadEarlyoom(cfg: pulumi.Config): EarlyoomSettings | false {
  const r = parseEarlyoom(cfg.getObject<unknown>("earlyoom"));
  if (typeof r === "string")
    throw new ConfigError(
      "earlyoom",
      `${r[0].toUpperCase()}${r.slice(1)} in config key`,
      '\'{"memory":[5,3],"swap":[100,100]}\'',
      false,
      "or false: the program leaves earlyoom alone",
    );
  return r;
}

/**
 * `workstations:tmuxResumeArgs`: the arguments tmux-persist gives `claude` when it resumes a
 * conversation (`{uuid}` and `{session}` replaced), written to TMUX_PERSIST_CONFIG; absent =
 * tmux-persist's default `--resume {uuid}`. The agent checks the same rule (cli.mjs).
 */
export function loadTmuxResumeArgs(cfg: pulumi.Config): string[] | undefined {
  const v = cfg.getObject<unknown>("tmuxResumeArgs");
  if (v === undefined) return undefined;
  const words = Array.isArray(v) && v.every((w) => typeof w === "string" && w !== "" && !/[\0\n]/.test(w)) ? (v as string[]) : null;
  const at = words ? words.indexOf("{uuid}") : -1;
  if (!words || at < 1 || words.lastIndexOf("{uuid}") !== at || !["--resume", "-r"].includes(words[at - 1]))
    throw new ConfigError(
      "tmuxResumeArgs",
      'A list of non-empty words holding "--resume", "{uuid}" exactly once is expected in config key',
      '\'["--dangerously-skip-permissions","--resume","{uuid}","--name","{session}"]\'',
    );
  return words;
}

/** `workstations:capacity`: `{memoryShare: 0 < x <= 1, concurrentUsers?: integer >= 1}`. */
export function loadCapacity(cfg: pulumi.Config): Capacity {
  const raw = cfg.getObject<Record<string, unknown>>("capacity") ?? {};
  const example = '\'{"memoryShare":0.9,"concurrentUsers":3}\'';
  if (typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError("capacity", "Config key is not an object", example);
  for (const k of Object.keys(raw))
    if (k !== "memoryShare" && k !== "concurrentUsers")
      throw new ConfigError("capacity", `Unknown field ${JSON.stringify(k)} (memoryShare, concurrentUsers) in config key`, example);
  const share = raw.memoryShare ?? DEFAULT_CAPACITY.memoryShare;
  if (typeof share !== "number" || !(share > 0 && share <= 1))
    throw new ConfigError("capacity", "memoryShare must be a number in (0, 1] in config key", example);
  const n = raw.concurrentUsers;
  if (n !== undefined && (typeof n !== "number" || !Number.isInteger(n) || n < 1))
    throw new ConfigError("capacity", "concurrentUsers must be an integer >= 1 in config key", example);
  return {
    memoryShare: share,
    ...(n !== undefined ? { concurrentUsers: n as number } : DEFAULT_CAPACITY.concurrentUsers ? { concurrentUsers: DEFAULT_CAPACITY.concurrentUsers } : {}),
  };
}

function required(cfg: pulumi.Config, key: string, example: string, hint?: string): string {
  const v = cfg.get(key);
  if (v === undefined || v.trim() === "") throw new ConfigError(key, "Missing required config key", example, false, hint);
  return v;
}

const FORGEJO_KEYS = ["forgejoUrlFromHost", "forgejoRepo", "forgejoAdminUser", "forgejoAdminPassword"];

/**
 * The switch key of an optional part (Forgejo, Kubernetes): its value, or undefined when the
 * part is off. Another key of the part set without the switch is an error naming them.
 */
function partSwitch(cfg: pulumi.Config, key: string, others: readonly string[], part: string, family: string, example: string): string | undefined {
  const v = cfg.get(key);
  if (v !== undefined && v.trim() !== "") return v;
  const set = others.filter((k) => pulumi.runtime.getConfig(`${NS}:${k}`) !== undefined);
  if (set.length)
    throw new ConfigError(
      key,
      `${part} is half configured (${set.map((k) => `${NS}:${k}`).join(", ")} set); missing config key`,
      example,
      false,
      `or remove the other ${family}* keys to turn the ${part} parts off`,
    );
  return undefined;
}

/** The Forgejo keys: all off without `forgejoUrl`; with it, the rest are required. */
function loadForgejoConfig(cfg: pulumi.Config): ForgejoConfig | undefined {
  const isUrl = (v: string) => /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(v);
  const url = partSwitch(cfg, "forgejoUrl", FORGEJO_KEYS, "Forgejo", "forgejo", "https://forgejo.example.internal");
  if (url === undefined) return undefined;
  if (!isUrl(url)) throw new ConfigError("forgejoUrl", "Config key is not an http(s) URL", "https://forgejo.example.internal");
  const urlFromHost = cfg.get("forgejoUrlFromHost") ?? url;
  if (!isUrl(urlFromHost)) throw new ConfigError("forgejoUrlFromHost", "Config key is not an http(s) URL", url);
  const repo = required(cfg, "forgejoRepo", "viktor/infra", "the infra repo, owner/name");
  const m = /^([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)$/.exec(repo.trim());
  if (!m) throw new ConfigError("forgejoRepo", `Config key is not owner/name (${JSON.stringify(repo)})`, "viktor/infra");
  const adminUser = required(cfg, "forgejoAdminUser", "forgeadmin", "a Forgejo site admin: creating another user's token needs a site admin's password");
  const adminPassword = cfg.getSecret("forgejoAdminPassword");
  if (adminPassword === undefined && !process.env.FORGEJO_ADMIN_PASSWORD)
    throw new ConfigError(
      "forgejoAdminPassword",
      "No Forgejo admin password: set FORGEJO_ADMIN_PASSWORD in the environment (CI: from_secret) or the secret config key",
      "< forgejo-admin-password.txt",
      true,
    );
  return {
    url: url.trim(),
    urlFromHost: urlFromHost.trim(),
    repo: { owner: m[1], name: m[2] },
    adminUser: adminUser.trim(),
    ...(adminPassword ? { adminPassword } : {}),
  };
}

const KUBE_KEYS = ["kubeCaCert", "kubeOidcIssuer", "kubeOidcClientId", "kubeUsernameClaim", "kubeUsernamePrefix", "kubeconfig", "kubePodSecurity"];

/** The Kubernetes keys: all off without `kubeApiServer`; with it, CA, issuer and client id are required. */
export function loadKubeConfig(cfg: pulumi.Config): KubeConfig | undefined {
  const isHttps = (v: string) => /^https:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(v);
  const server = partSwitch(cfg, "kubeApiServer", KUBE_KEYS, "Kubernetes", "kube", "https://k8s.example.internal:6443");
  if (server === undefined) return undefined;
  if (!isHttps(server.trim())) throw new ConfigError("kubeApiServer", "Config key is not an https URL", "https://k8s.example.internal:6443");
  const ca = required(cfg, "kubeCaCert", '-- "$(cat ca.crt)"', "the PEM of the CA that signed the API server's certificate");
  if (!/-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/.test(ca))
    throw new ConfigError("kubeCaCert", "Config key is not a PEM certificate", '-- "$(cat ca.crt)"');
  const issuer = required(
    cfg,
    "kubeOidcIssuer",
    "https://sso.example.internal/application/o/kubernetes/",
    "the issuer URL the API server's OIDC authenticator trusts",
  );
  if (!isHttps(issuer.trim()))
    throw new ConfigError("kubeOidcIssuer", "Config key is not an https URL", "https://sso.example.internal/application/o/kubernetes/");
  const clientId = required(cfg, "kubeOidcClientId", "kubernetes", "the OIDC client id (the API server's audience)").trim();
  const claim = (cfg.get("kubeUsernameClaim") ?? "email").trim();
  if (!(USERNAME_CLAIMS as readonly string[]).includes(claim))
    throw new ConfigError(
      "kubeUsernameClaim",
      `Invalid value ${JSON.stringify(claim)} (${USERNAME_CLAIMS.join("|")}: the roster email or the roster name) in config key`,
      "email",
    );
  const prefix = cfg.get("kubeUsernamePrefix") ?? "oidc:";
  if (/\s/.test(prefix)) throw new ConfigError("kubeUsernamePrefix", "Config key contains whitespace", "oidc:");
  const podSecurity = (cfg.get("kubePodSecurity") ?? "baseline").trim();
  if (!(POD_SECURITY_LEVELS as readonly string[]).includes(podSecurity))
    throw new ConfigError(
      "kubePodSecurity",
      `Invalid value ${JSON.stringify(podSecurity)} (${POD_SECURITY_LEVELS.join("|")}: the Pod Security level owned namespaces enforce; privileged is not allowed) in config key`,
      "baseline",
    );
  const kubeconfig = cfg.getSecret("kubeconfig");
  return {
    apiServer: server.trim(),
    caCert: ca.trim() + "\n",
    oidcIssuer: issuer.trim(),
    oidcClientId: clientId,
    usernameClaim: claim as UsernameClaim,
    usernamePrefix: prefix,
    podSecurity: podSecurity as PodSecurityLevel,
    ...(kubeconfig ? { kubeconfig } : {}),
  };
}

export function loadConfig(cfg = new pulumi.Config(NS)): WorkstationsConfig {
  const host = required(cfg, "host", "devvm.example.internal");
  const portRaw = cfg.get("sshPort") ?? "22";
  const port = Number(portRaw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError("sshPort", `Invalid port ${JSON.stringify(portRaw)} in config key`, "22");
  const hostKey = required(cfg, "hostKey", "'ssh-ed25519 AAAA…'", "the host's public key: ssh-keyscan -t ed25519 <host>");
  if (!/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/]+=*$/.test(hostKey.trim()))
    throw new ConfigError("hostKey", "Config key is not one public host key line (type and base64, no host name)", "'ssh-ed25519 AAAA…'");
  const privateKey = cfg.getSecret("sshPrivateKey");
  if (privateKey === undefined) throw new ConfigError("sshPrivateKey", "Missing required secret config key", "< ~/.ssh/devvm_deploy_key", true);
  const adminSource = (cfg.get("adminSource") ?? "roster") as string;
  if (adminSource !== "roster" && adminSource !== "config")
    throw new ConfigError("adminSource", `Invalid value ${JSON.stringify(adminSource)} (roster|config) in config key`, "roster");
  const admins = cfg.getObject<string[]>("admins") ?? [];
  if (adminSource === "config" && admins.length === 0)
    throw new ConfigError(
      "admins[0]",
      "adminSource is config but there is no admin list in config key",
      "viktor --path",
      false,
      "one Forgejo user per index: admins[0], admins[1], …",
    );
  const vaultAddress = required(cfg, "vaultAddress", "https://vault.example.internal:8200");
  if (!/^https?:\/\/[^\s]+$/.test(vaultAddress))
    throw new ConfigError("vaultAddress", "Config key is not an http(s) URL", "https://vault.example.internal:8200");
  const vaultToken = cfg.getSecret("vaultToken");
  if (vaultToken === undefined && !process.env.VAULT_TOKEN)
    throw new ConfigError("vaultToken", "No Vault token: set VAULT_TOKEN in the environment (CI: from_secret) or the secret config key", "<token>", true);
  const url = (key: string, def: string) => {
    const v = cfg.get(key) ?? def;
    if (!/^https?:\/\/[^\s]+$/.test(v)) throw new ConfigError(key, "Config key is not an http(s) URL", def);
    return v;
  };
  const forgejo = loadForgejoConfig(cfg);
  const kube = loadKubeConfig(cfg);
  return {
    ...(forgejo ? { forgejo } : {}),
    ...(kube ? { kube } : {}),
    vault: { address: vaultAddress, addressFromHost: url("vaultAddressFromHost", vaultAddress), ...(vaultToken ? { token: vaultToken } : {}) },
    claude: {
      tokenUrl: url("claudeTokenUrl", "https://platform.claude.com/v1/oauth/token"),
      profileUrl: url("claudeProfileUrl", "https://api.anthropic.com/api/oauth/profile"),
      apiUrl: url("claudeApiUrl", "https://api.anthropic.com"),
      setupTokenWarnDays: warnDays(cfg),
      clientId: required(cfg, "claudeClientId", "<Claude Code OAuth client id>"),
    },
    ...(cfg.getSecret("slackWebhook") ? { slackWebhook: cfg.requireSecret("slackWebhook") } : {}),
    credentialRotation: cfg.get("credentialRotation") ?? "0",
    roster: cfg.get("roster") ?? "roster.yaml",
    connection: { host, port, user: cfg.get("sshUser") ?? "root", privateKey, hostKey: hostKey.trim() },
    webTerminal: cfg.getBoolean("webTerminal") ?? false,
    ...((d) => (d ? { dashboard: d } : {}))(loadDashboardConfig(cfg, !!kube)),
    adminSource,
    admins,
    capacity: loadCapacity(cfg),
    earlyoom: loadEarlyoom(cfg),
    ...((r) => (r ? { tmuxResumeArgs: r } : {}))(loadTmuxResumeArgs(cfg)),
  };
}

/** workstations:claudeSetupTokenWarnDays: how long before a setup token ends its warning comes (default 30). */
function warnDays(cfg: pulumi.Config): number {
  const raw = cfg.get("claudeSetupTokenWarnDays");
  if (raw === undefined) return 30;
  const n = Number(raw);
  if (!/^[0-9]+$/.test(raw) || n < 1 || n > 364)
    throw new ConfigError("claudeSetupTokenWarnDays", "Config key is not a whole number of days from 1 to 364", "30");
  return n;
}
