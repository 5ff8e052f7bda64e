/**
 * `npm run roster:import -- LEGACY.yaml [--root DIR] [--email-domain DOMAIN] [--repo-owner OWNER] [--out FILE]`:
 * the team's legacy roster (a `users:` map keyed by os user, ../shared/notes/team-devvm.md)
 * plus the host's accounts (`<root>/etc/passwd`, `<root>/etc/group`, each home's
 * `.ssh/authorized_keys`; root `/` by default: run it on the host) into a roster of ours: every
 * entry `adopt: true` with its pinned uid, its SSO identity, role, namespaces, groups, shell
 * and keys, and the `workspace` code layout with its further repos (a repo named without an owner
 * is read as `--repo-owner`'s), so the first `up` takes the accounts over additively (README
 * "Taking over a host").
 *
 * It prints the roster (or writes --out) and, on stderr, one line per thing it could not
 * carry over or had to guess; the roster it prints always passes `npm run roster:check`
 * (checked here before it is printed). Exit 0 with a roster, 1 when the result is not a valid
 * roster (each problem on its own line), 2 on usage or an unreadable input.
 */
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { formatProblem, parseRoster } from "../components/roster/load";
import { escapeControls, groupProblem, isRestrictedKey, MAX_UID, MIN_UID, ROLES, splitKeyOptions } from "../components/roster/schema";

/** The legacy entry's fields (the note's "Their roster"). */
const LEGACY_FIELDS = ["authentik_user", "k8s_user", "tier", "namespaces", "code_layout", "repos", "claude_auth", "parked"] as const;

export interface HostAccounts {
  /** /etc/passwd text */
  passwd: string;
  /** /etc/group text */
  group: string;
  /** a user's authorized_keys text, or undefined when there is none */
  keys(user: string, home: string): string | undefined;
  /**
   * Where sshd's own PATH (`/usr/local/bin:/usr/bin:/bin`, Debian's and Ubuntu's default)
   * finds a bare program name, or undefined: how a forced command such as `sudo -n …` runs today.
   */
  which?(program: string): string | undefined;
}

/** sshd's default PATH for a user's session (Debian and Ubuntu build it in): where a bare forced command is found. */
export const SSHD_PATH = ["/usr/local/bin", "/usr/bin", "/bin"] as const;

export interface ImportResult {
  roster: { version: 1; users: Record<string, unknown>[] };
  /** `user: what` lines: what was not carried over, or was guessed */
  notes: string[];
}

/** Login shells as the roster spells them (merged /usr: /bin/zsh is /usr/bin/zsh). */
const SHELLS: Record<string, string> = {
  "/bin/bash": "/bin/bash",
  "/usr/bin/bash": "/bin/bash",
  "/bin/sh": "/bin/sh",
  "/usr/bin/sh": "/bin/sh",
  "/bin/zsh": "/usr/bin/zsh",
  "/usr/bin/zsh": "/usr/bin/zsh",
  "/bin/fish": "/usr/bin/fish",
  "/usr/bin/fish": "/usr/bin/fish",
};

/**
 * `command="…",restrict` and `restrict,command="…"` are the same key: the roster spells the
 * second. A forced command whose program is a bare name (the team's `sudo -n …`) is spelled
 * with the absolute path sshd finds it at today (`which`), so the key keeps doing exactly what
 * it does; said in `notes`.
 */
function normaliseKeyLine(user: string, line: string, which: HostAccounts["which"], notes: string[]): string {
  const m = /^(?:command="([^"\\]*)",restrict|restrict,command="([^"\\]*)") (.*)$/.exec(line);
  if (!m) return line;
  let cmd = m[1] ?? m[2];
  const prog = /^[A-Za-z0-9._+-]+(?= |$)/.exec(cmd)?.[0];
  const abs = prog ? which?.(prog) : undefined;
  if (prog && abs) {
    cmd = abs + cmd.slice(prog.length);
    notes.push(`${user}: the forced command's ${prog} is spelled ${abs} (where sshd's PATH finds it on this host)`);
  }
  return `restrict,command="${cmd}" ${m[3]}`;
}

/** The key lines of an authorized_keys file: carried, or a note why not. */
function importKeys(user: string, text: string | undefined, which: HostAccounts["which"], notes: string[]): string[] {
  const out: string[] = [];
  for (const raw of (text ?? "").split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const norm = normaliseKeyLine(user, line, which, notes);
    const s = splitKeyOptions(norm);
    if ("problem" in s) {
      notes.push(`${user}: a key in ~/.ssh/authorized_keys not carried over (${s.problem}): ${line.slice(0, 60)}…`);
      continue;
    }
    if (isRestrictedKey(norm)) notes.push(`${user}: a forced-command key carried over as ${norm.slice(0, norm.indexOf('" ') + 1)}`);
    out.push(norm);
  }
  return out;
}

/** passwd: name -> {uid, gid, home, shell}. */
function parsePasswd(text: string): Map<string, { uid: number; gid: number; home: string; shell: string }> {
  const m = new Map<string, { uid: number; gid: number; home: string; shell: string }>();
  for (const l of text.split("\n")) {
    const f = l.split(":");
    if (f.length === 7 && /^[0-9]+$/.test(f[2])) m.set(f[0], { uid: Number(f[2]), gid: Number(f[3]), home: f[5], shell: f[6] });
  }
  return m;
}

/** group: user -> supplementary groups (by member lists), and the names of every group. */
function parseGroups(text: string): { member: Map<string, string[]>; names: Map<number, string> } {
  const member = new Map<string, string[]>();
  const names = new Map<number, string>();
  for (const l of text.split("\n")) {
    const f = l.split(":");
    if (f.length !== 4) continue;
    names.set(Number(f[2]), f[0]);
    for (const u of f[3].split(",").filter(Boolean)) member.set(u, [...(member.get(u) ?? []), f[0]]);
  }
  return { member, names };
}

/** One legacy entry -> one roster entry (or null, with the reason in notes). */
function importUser(
  name: string,
  e: Record<string, unknown>,
  host: { passwd: ReturnType<typeof parsePasswd>; groups: ReturnType<typeof parseGroups>; keys: HostAccounts["keys"]; which?: HostAccounts["which"] },
  o: { emailDomain: string; repoOwner?: string },
  notes: string[],
): Record<string, unknown> | null {
  const acct = host.passwd.get(name);
  if (!acct) {
    notes.push(`${name}: no account on the host; not imported (onboard them as a new user instead)`);
    return null;
  }
  if (acct.uid < MIN_UID || acct.uid > MAX_UID) {
    notes.push(`${name}: uid ${acct.uid} is outside the roster's ${MIN_UID}-${MAX_UID}; not imported`);
    return null;
  }
  for (const k of Object.keys(e))
    if (!(LEGACY_FIELDS as readonly string[]).includes(k)) notes.push(`${name}: unknown legacy field ${JSON.stringify(k)} ignored`);
  const tier = String(e.tier ?? "");
  if (!(ROLES as readonly string[]).includes(tier)) {
    notes.push(`${name}: tier ${JSON.stringify(e.tier)} is not one of ${ROLES.join(", ")}; not imported`);
    return null;
  }
  const sso = typeof e.authentik_user === "string" && e.authentik_user ? e.authentik_user : name;
  if (typeof e.authentik_user !== "string") notes.push(`${name}: no authentik_user; the SSO identity is the account name`);
  const u: Record<string, unknown> = { name, uid: acct.uid, role: tier, email: `${sso}@${o.emailDomain}`, forgejo: sso };
  notes.push(`${name}: email ${u.email} and forgejo ${sso} are guesses (the legacy roster has neither): check them`);
  if (sso !== name) u.sso = sso;
  const shell = SHELLS[acct.shell];
  if (shell) u.shell = shell;
  else notes.push(`${name}: login shell ${acct.shell} is not one the roster knows; left as /bin/bash in the roster: fix it before the first up`);
  if (acct.home !== `/home/${name}`) notes.push(`${name}: home ${acct.home} is not /home/${name}; the program manages /home/${name}`);
  const own = host.groups.names.get(acct.gid);
  const all = (host.groups.member.get(name) ?? []).filter((g) => g !== own && !g.startsWith("workstation-")).sort();
  // A system group (sudo, docker, …) cannot be named in a roster; an adopted account keeps it
  // (the program never removes a group it did not grant) until `tighten: true`.
  const kept = all.filter((g) => groupProblem(g) !== undefined);
  if (kept.length) notes.push(`${name}: keeps ${kept.join(", ")} as the host has them (system groups a roster cannot name; tighten: true would remove them)`);
  const groups = all.filter((g) => groupProblem(g) === undefined);
  if (groups.length) u.groups = groups;
  const ns = Array.isArray(e.namespaces) ? e.namespaces.map(String) : [];
  if (ns.length && tier === "namespace-owner") u.namespaces = ns;
  else if (ns.length) notes.push(`${name}: namespaces ${ns.join(", ")} not carried over (only a namespace-owner owns namespaces)`);
  const keys = importKeys(name, host.keys(name, acct.home), host.which, notes);
  if (keys.length) u.sshKeys = keys;
  // the team's power-users read the cluster (a read-only ClusterRole); ours have no tier by default
  const overrides: Record<string, unknown> = tier === "power-user" ? { kubeTier: "read-only" } : {};
  if (e.parked === true) {
    Object.assign(overrides, { tmuxPersist: false, claudeTokenRenew: false, t3: false });
    notes.push(`${name}: parked: kept active with every per-user daemon off (tmuxPersist, claudeTokenRenew, t3)`);
  }
  if (Object.keys(overrides).length) u.overrides = overrides;
  if (typeof e.k8s_user === "string" && e.k8s_user !== u.email) {
    if (/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(e.k8s_user)) u.k8sUser = e.k8s_user;
    else notes.push(`${name}: k8s_user ${e.k8s_user} is not an email address; not carried over (the RBAC subject is an email)`);
  }
  importCode(name, e, u, notes, o.repoOwner);
  if (e.claude_auth !== undefined) notes.push(`${name}: claude_auth ${String(e.claude_auth)} not carried over (the role decides the token agent)`);
  u.adopt = true;
  return u;
}

/** `code_layout` and `repos`: the workspace layout, its repos as `owner/name`. */
function importCode(name: string, e: Record<string, unknown>, u: Record<string, unknown>, notes: string[], repoOwner?: string): void {
  const repos = Array.isArray(e.repos) ? e.repos.map(String) : [];
  if (e.code_layout !== "workspace") {
    if (e.code_layout !== undefined && e.code_layout !== "single")
      notes.push(`${name}: code_layout ${String(e.code_layout)} unknown; the single layout (~/code) kept`);
    if (repos.length) notes.push(`${name}: repos ${repos.join(", ")} not carried over (only the workspace layout clones further repos)`);
    return;
  }
  u.codeLayout = "workspace";
  const carried: string[] = [];
  for (const r of repos) {
    if (/^[^/]+\/[^/]+$/.test(r)) carried.push(r);
    else if (repoOwner) {
      carried.push(`${repoOwner}/${r}`);
      notes.push(`${name}: repo ${r} read as ${repoOwner}/${r}`);
    } else notes.push(`${name}: repo ${r} not carried over (no owner: give --repo-owner, the infra repo's owner)`);
  }
  if (carried.length) u.repos = carried;
}

/** The pure part: legacy roster text and the host's accounts -> our roster and the notes. */
export function importLegacyRoster(legacyText: string, file: string, host: HostAccounts, o: { emailDomain: string; repoOwner?: string }): ImportResult {
  const lineCounter = new YAML.LineCounter();
  const doc = YAML.parseDocument(legacyText, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const err = doc.errors[0];
  if (err) {
    const p = lineCounter.linePos(err.pos[0]);
    throw new Error(`${file}:${p.line}:${p.col}: YAML ${err.code}: ${err.message.split("\n")[0]}`);
  }
  const data = doc.toJS() as { users?: unknown };
  if (!data || typeof data !== "object" || !data.users || typeof data.users !== "object" || Array.isArray(data.users))
    throw new Error(`${file}:1:1: expected a legacy roster: a map \`users:\` keyed by os user`);
  const passwd = parsePasswd(host.passwd);
  const groups = parseGroups(host.group);
  const notes: string[] = [];
  const users: Record<string, unknown>[] = [];
  for (const [name, entry] of Object.entries(data.users as Record<string, unknown>)) {
    const e = entry && typeof entry === "object" && !Array.isArray(entry) ? (entry as Record<string, unknown>) : {};
    const u = importUser(name, e, { passwd, groups, keys: host.keys, which: host.which }, o, notes);
    if (u) users.push(u);
  }
  const listed = new Set(Object.keys(data.users as object));
  for (const [name, a] of passwd)
    if (a.uid >= MIN_UID && a.uid <= MAX_UID && !listed.has(name))
      notes.push(`${name}: an account on the host (uid ${a.uid}) not in the legacy roster: left alone`);
  return { roster: { version: 1, users: users.sort((a, b) => Number(a.uid) - Number(b.uid)) }, notes };
}

/** The host's accounts under `root` (`/` on the host itself). */
export function hostAccountsAt(root: string): HostAccounts {
  return {
    passwd: fs.readFileSync(path.join(root, "etc/passwd"), "utf8"),
    group: fs.readFileSync(path.join(root, "etc/group"), "utf8"),
    keys: (_user, home) => {
      try {
        return fs.readFileSync(path.join(root, home, ".ssh/authorized_keys"), "utf8");
      } catch {
        return undefined;
      }
    },
    which: (program) =>
      SSHD_PATH.map((d) => `${d}/${program}`).find((p) => {
        try {
          const st = fs.lstatSync(path.join(root, p));
          return st.isFile() || st.isSymbolicLink();
        } catch {
          return false;
        }
      }),
  };
}

const USAGE = "usage: npm run roster:import -- LEGACY.yaml [--root DIR] [--email-domain DOMAIN] [--repo-owner OWNER] [--out FILE]";

function main(argv: string[]): number {
  const opts: Record<string, string> = { root: "/", "email-domain": "example.com" };
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(root|email-domain|repo-owner|out)$/.exec(argv[i]);
    if (m && argv[i + 1] !== undefined) opts[m[1]] = argv[++i];
    else if (!argv[i].startsWith("-")) files.push(argv[i]);
    else return (console.error(USAGE), 2);
  }
  if (files.length !== 1 || !/^[a-z0-9.-]+\.[a-z]{2,}$/i.test(opts["email-domain"])) return (console.error(USAGE), 2);
  let result: ImportResult;
  try {
    result = importLegacyRoster(fs.readFileSync(files[0], "utf8"), files[0], hostAccountsAt(opts.root), {
      emailDomain: opts["email-domain"],
      ...(opts["repo-owner"] ? { repoOwner: opts["repo-owner"] } : {}),
    });
  } catch (e) {
    console.error(escapeControls(`roster-import: ${(e as Error).message}`));
    return 2;
  }
  const text = `# Imported by npm run roster:import from ${path.basename(files[0])}; every entry adopts an existing account.\n${YAML.stringify(result.roster)}`;
  for (const n of result.notes) console.error(escapeControls(`roster-import: ${n}`));
  const checked = parseRoster(text, opts.out ?? "(imported roster)");
  if (checked.problems.length) {
    for (const p of checked.problems) console.error(escapeControls(formatProblem(p)));
    return 1;
  }
  if (opts.out) fs.writeFileSync(opts.out, text);
  else process.stdout.write(text);
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
