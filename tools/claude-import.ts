/**
 * `npm run claude:import -- [--roster FILE] [--apply] [--from-mount secret]
 * [--from-prefix workstation/claude-users]`: the team's Claude logins in Vault, carried into the
 * renewal agent's layout once (issue 24, item 4).
 *
 * The team keeps each user's login in KV v2 at `secret/workstation/claude-users/<os user>`:
 * `claude_ai_oauth_json` (the credentials file's JSON), `credential_expires_at_ms`,
 * `backed_up_at`, optional `setup_token` (`sk-ant-oat01-…`), and other keys of theirs beside
 * them (../shared/notes/team-devvm.md). The agent keeps one at `claude-tokens/users/<user>`
 * (`claudeAiOauth`, `email`, `updatedAt`, `host`, and custom metadata with the refresh token's
 * hash and expiry: docs/CONTRACTS.md). For every roster user (offboarded ones excepted) this
 * reads theirs and reports what it found: a rotating login (and when it expires), a setup
 * token, both, nothing, or something it cannot read. With `--apply` it writes a rotating login
 * into ours the way the agent does (check-and-set on the version it read, merged), unless ours
 * already holds that login or a later one; the agent then puts it in the user's
 * `~/.claude/.credentials.json` on its next run when the user has none (or an older one).
 *
 * Without `--apply` nothing is written (the dry run comes first). The team's path is only ever
 * read: its keys, versions and metadata stay as they are. A second `--apply` changes nothing.
 * A setup token is carried over too (field `setupToken`, merged: everything else at the agent's
 * path stays), for users in the setup-token mode (README "Claude logins"); the team's layout has
 * no expiry for it, so none is recorded. No token is printed; Vault's address and token come from VAULT_ADDR and
 * VAULT_TOKEN (never argv): a token that may read the team's paths and write the agent's.
 * Exit 0: done (or nothing to do); 1: some user could not be read or written (listed); 2: usage.
 */
import * as crypto from "crypto";
import * as os from "os";
import { planRoster } from "../components/plan";
import { loadRoster } from "../components/roster/load";
import { escapeControls } from "../components/roster/schema";
import { KV_MOUNT, KV_PREFIX } from "../components/vault";

const USAGE = "usage: VAULT_ADDR=… VAULT_TOKEN=… npm run claude:import -- [--roster FILE] [--apply] [--from-mount M] [--from-prefix P]";

export interface ImportOptions {
  vaultAddr: string;
  /** read on the team's paths, read and write on the agent's */
  vaultToken: string;
  users: Array<{ name: string; email: string }>;
  from: { mount: string; prefix: string };
  apply: boolean;
  /** the `host` field written (the agent writes its host name) */
  host?: string;
}

interface OAuth {
  accessToken: string;
  refreshToken: string;
  expiresAt: number;
  [k: string]: unknown;
}

type Vault = (method: string, p: string, body?: unknown) => Promise<{ status: number; json: any }>;

function vaultClient(addr: string, token: string): Vault {
  return async (method, p, body) => {
    const res = await fetch(`${addr.replace(/\/+$/, "")}/v1/${p}`, {
      method,
      headers: { "X-Vault-Token": token, "X-Vault-Request": "true", ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      redirect: "error",
    });
    const text = await res.text();
    let json: any = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    return { status: res.status, json };
  };
}

const sha256 = (s: string) => crypto.createHash("sha256").update(s).digest("hex");
const when = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

/** The rotating login in the team's `claude_ai_oauth_json`, or a reason it is not one. */
export function teamLogin(raw: unknown): OAuth | string {
  if (typeof raw !== "string" || !raw.trim()) return "no claude_ai_oauth_json";
  let j: any;
  try {
    j = JSON.parse(raw);
  } catch {
    return "claude_ai_oauth_json is not JSON";
  }
  const o = j && typeof j === "object" && j.claudeAiOauth && typeof j.claudeAiOauth === "object" ? j.claudeAiOauth : j;
  if (!o || typeof o.accessToken !== "string" || typeof o.refreshToken !== "string" || !o.refreshToken || typeof o.expiresAt !== "number")
    return "claude_ai_oauth_json has no accessToken, refreshToken and expiresAt";
  return o as OAuth;
}

/** What the team's secret holds for one user that the agent's layout takes. */
interface TeamCopy {
  login: OAuth | null;
  /** why there is no login (for the report) */
  why: string;
  setupToken: string | null;
}

function teamCopy(d: Record<string, unknown>): TeamCopy {
  const login = teamLogin(d.claude_ai_oauth_json);
  const setupToken = typeof d.setup_token === "string" && /^sk-ant-oat01-[A-Za-z0-9_-]{20,400}$/.test(d.setup_token) ? d.setup_token : null;
  return { login: typeof login === "string" ? null : login, why: typeof login === "string" ? login : "", setupToken };
}

/** One user: the report line, and whether it failed. */
async function importOne(v: Vault, o: ImportOptions, u: { name: string; email: string }): Promise<{ line: string; failed: boolean }> {
  const say = (what: string, failed = false) => ({ line: `${u.name}: ${what}`, failed });
  const team = await v("GET", `${o.from.mount}/data/${o.from.prefix}/${u.name}`);
  if (team.status === 404) return say("nothing at the team's path");
  if (team.status !== 200 || !team.json?.data?.data) return say(`cannot read ${o.from.mount}/${o.from.prefix}/${u.name}: HTTP ${team.status}`, true);
  const t = teamCopy(team.json.data.data as Record<string, unknown>);
  const found = [
    t.login ? `a rotating login (expires ${when(t.login.expiresAt)})` : `no rotating login (${t.why})`,
    ...(t.setupToken ? ["a setup token"] : []),
  ].join(", ");
  if (!t.login && !t.setupToken) return say(found);
  const ours = await v("GET", `${KV_MOUNT}/data/${KV_PREFIX}/${u.name}`);
  const ourMeta = await v("GET", `${KV_MOUNT}/metadata/${KV_PREFIX}/${u.name}`);
  if ((ours.status !== 200 && ours.status !== 404) || (ourMeta.status !== 200 && ourMeta.status !== 404))
    return say(`${found}; cannot read the agent's path: HTTP ${ours.status}/${ourMeta.status}`, true);
  const version = ourMeta.status === 200 ? Number(ourMeta.json.data.current_version) || 0 : 0;
  const custom = (ourMeta.status === 200 ? (ourMeta.json.data.custom_metadata ?? {}) : {}) as Record<string, string>;
  const data = (ours.status === 200 ? (ours.json?.data?.data ?? {}) : {}) as Record<string, unknown>;
  const notes: string[] = [];
  let login: OAuth | null = null;
  if (t.login) {
    if (custom.refreshTokenSha256 === sha256(t.login.refreshToken)) notes.push("the login is already in the agent's path");
    else if (Number(custom.expiresAt) >= t.login.expiresAt) notes.push("the agent's path holds a later login: kept");
    else login = t.login;
  }
  const setup = t.setupToken && data.setupToken !== t.setupToken ? t.setupToken : null;
  if (t.setupToken && !setup) notes.push("the setup token is already in the agent's path");
  const wants = [
    ...(login ? ["the login"] : []),
    ...(setup ? ["the setup token (its expiry is unknown: no warning before it ends until the user stores it again)"] : []),
  ];
  if (!wants.length) return say(`${found}; ${notes.join("; ")}: nothing to do`);
  const what = `${wants.join(" and ")}${notes.length ? ` (${notes.join("; ")})` : ""}`;
  if (!o.apply) return say(`${found}; would write ${what} to the agent's path (v${version + 1})`);
  // A merge, like every write there: whatever else the agent's path holds stays.
  const merged = {
    ...data,
    ...(login ? { claudeAiOauth: login, email: u.email, updatedAt: new Date().toISOString(), host: o.host ?? os.hostname() } : {}),
    ...(setup ? { setupToken: setup, setupTokenStoredAt: new Date().toISOString() } : {}),
  };
  const w = await v("POST", `${KV_MOUNT}/data/${KV_PREFIX}/${u.name}`, { options: { cas: version }, data: merged });
  if (w.status !== 200) return say(`${found}; writing the agent's path failed: HTTP ${w.status} ${(w.json?.errors ?? []).join("; ")}`, true);
  if (!login) return say(`${found}; wrote ${what} to the agent's path (v${w.json?.data?.version})`);
  const custom2: Record<string, string> = {
    refreshTokenSha256: sha256(login.refreshToken),
    expiresAt: String(login.expiresAt),
    writtenAt: new Date().toISOString(),
    writer: "claude-import",
  };
  if (typeof login.refreshTokenExpiresAt === "number") custom2.refreshTokenExpiresAt = String(login.refreshTokenExpiresAt);
  const m = await v("POST", `${KV_MOUNT}/metadata/${KV_PREFIX}/${u.name}`, { custom_metadata: custom2 });
  if (m.status !== 200 && m.status !== 204) return say(`${found}; written (v${w.json?.data?.version}) but its metadata failed: HTTP ${m.status}`, true);
  return say(`${found}; wrote ${what} to the agent's path (v${w.json?.data?.version})`);
}

/** Every user's line, in order, and how many failed. */
export async function importLogins(o: ImportOptions): Promise<{ lines: string[]; failed: number }> {
  const v = vaultClient(o.vaultAddr, o.vaultToken);
  const lines: string[] = [];
  let failed = 0;
  for (const u of o.users) {
    let r;
    try {
      r = await importOne(v, o, u);
    } catch (e) {
      r = { line: `${u.name}: Vault unreachable (${(e as Error).message})`, failed: true };
    }
    lines.push(r.line);
    if (r.failed) failed++;
  }
  return { lines, failed };
}

async function main(argv: string[]): Promise<number> {
  const o = { roster: "roster.yaml", "from-mount": "secret", "from-prefix": "workstation/claude-users" } as Record<string, string>;
  let apply = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--apply") apply = true;
    else {
      const m = /^--(roster|from-mount|from-prefix)$/.exec(argv[i]);
      if (!m || argv[i + 1] === undefined) return (console.error(USAGE), 2);
      o[m[1]] = argv[++i];
    }
  }
  const addr = process.env.VAULT_ADDR;
  const token = process.env.VAULT_TOKEN;
  if (!addr || !token) return (console.error(`claude:import: VAULT_ADDR and VAULT_TOKEN must be set\n${USAGE}`), 2);
  let users;
  try {
    users = planRoster(loadRoster(o.roster)).users.map((u) => ({ name: u.name, email: u.email }));
  } catch (e) {
    console.error(escapeControls(`claude:import: ${(e as Error).message}`));
    return 2;
  }
  const r = await importLogins({ vaultAddr: addr, vaultToken: token, users, from: { mount: o["from-mount"], prefix: o["from-prefix"] }, apply });
  console.log(
    `${apply ? "import" : "dry run (nothing written; --apply writes)"}: ${o["from-mount"]}/${o["from-prefix"]}/<user> -> ${KV_MOUNT}/${KV_PREFIX}/<user>`,
  );
  for (const l of r.lines) console.log(escapeControls(`  ${l}`));
  if (r.failed) console.log(`${r.failed} user(s) failed`);
  return r.failed ? 1 : 0;
}

if (require.main === module)
  main(process.argv.slice(2)).then(
    (c) => (process.exitCode = c),
    (e) => {
      console.error(escapeControls(`claude:import: ${(e as Error).message}`));
      process.exitCode = 2;
    },
  );
