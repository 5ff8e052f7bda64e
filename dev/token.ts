// Shared helpers for the token-renewal tests (tests/token/*.test.ts): temp homes, running the
// agent as a child process, a real Vault (OpenBao dev server) with the layout from
// docs/CONTRACTS.md, a counting/hooking Vault proxy, a Claude Code stand-in that refreshes
// under Claude's own locks, and the alert socket (the real notifier behind an emulation of
// systemd's Accept=yes socket).
import { jsonOrText, LoopbackServer, readBodyBytes } from "./http";
import { freePort, sleep } from "./wait";
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { ClaudeAiOauth, FakeAnthropicOAuth, FakeOAuthOptions, startFakeAnthropic } from "./fakes/anthropic-oauth";
import { FakeSlack, startFakeSlack } from "./fakes/slack";
import { startVault } from "./services";
import { tempDir } from "./tmp";

export const REPO = path.resolve(__dirname, "..");
export const AGENT = path.join(REPO, "scripts", "agents", "claude-token-renew.mjs");
export const NOTIFIER = path.join(REPO, "scripts", "agents", "workstations-alert.mjs");
export const CONTRACTS = path.join(REPO, "docs", "CONTRACTS.md");
/** Node used to run the agent: the host has Debian's Node 18; set TOKEN_RENEW_NODE to test with it. */
export const NODE = process.env.TOKEN_RENEW_NODE || process.execPath;

export const EXIT = { OK: 0, ERROR: 1, USAGE: 2, TRANSIENT: 3, LOGIN_REQUIRED: 4, IDENTITY_MISMATCH: 5, VAULT_DENIED: 6 } as const;

export function tmpdir(prefix = "ctr-"): string {
  return tempDir(prefix);
}

// ------------------------------------------------------------------------------------------
// Vault

export interface VaultHandle {
  addr: string;
  rootToken: string;
  stop(): Promise<void>;
}

/**
 * A real Vault-API server (OpenBao dev server, or Vault) from the offline toolchain, via
 * dev/services.ts. Never skips: without the toolchain it throws ToolchainMissingError,
 * which tells you to run `dev/toolchain build`.
 */
export async function startRealVault(dir: string): Promise<VaultHandle> {
  const v = await startVault({ dir });
  return { addr: v.addr, rootToken: v.rootToken, stop: () => v.stop() };
}

export async function vaultApi(addr: string, token: string | null, method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = { "X-Vault-Request": "true" };
  if (token) headers["X-Vault-Token"] = token;
  if (body !== undefined) headers["Content-Type"] = method === "PATCH" ? "application/merge-patch+json" : "application/json";
  const r = await fetch(`${addr}/v1/${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, json: jsonOrText(await r.text()) };
}

async function must(addr: string, token: string, method: string, p: string, body?: unknown): Promise<any> {
  const r = await vaultApi(addr, token, method, p, body);
  if (r.status >= 300) throw new Error(`${method} ${p} -> ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

/** The policy HCL for `user`, taken verbatim from docs/CONTRACTS.md ("Claude token renewal"). */
export function policyHcl(user: string): string {
  const doc = fs.readFileSync(CONTRACTS, "utf8");
  const section = doc.slice(doc.indexOf("## Claude token renewal"));
  const m = /```hcl\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('no ```hcl block in the "Claude token renewal" section of docs/CONTRACTS.md');
  return m[1].split("<user>").join(user);
}

/** The shared mount and auth backend (what the program creates once). */
export async function setupVaultLayout(v: VaultHandle): Promise<void> {
  await must(v.addr, v.rootToken, "POST", "sys/mounts/claude-tokens", { type: "kv", options: { version: "2" } });
  // The mount may take a moment to be ready for KV v2 config writes.
  for (let i = 0; ; i++) {
    const r = await vaultApi(v.addr, v.rootToken, "POST", "claude-tokens/config", { cas_required: true, max_versions: 20 });
    if (r.status < 300) break;
    if (i > 50) throw new Error(`claude-tokens/config: ${r.status} ${JSON.stringify(r.json)}`);
    await sleep(100);
  }
  await must(v.addr, v.rootToken, "POST", "sys/auth/approle", { type: "approle" });
}

export interface AppRoleCred {
  role_id: string;
  secret_id: string;
}

/** Per-user policy + AppRole role + one secret_id (what UserWorkstation creates). */
export async function addVaultUser(v: VaultHandle, user: string): Promise<AppRoleCred> {
  await must(v.addr, v.rootToken, "PUT", `sys/policies/acl/claude-renew-${user}`, { policy: policyHcl(user) });
  await must(v.addr, v.rootToken, "POST", `auth/approle/role/claude-renew-${user}`, {
    token_policies: [`claude-renew-${user}`],
    token_no_default_policy: true,
    token_type: "service",
    token_ttl: 86400,
    token_max_ttl: 86400,
    secret_id_ttl: 0,
    secret_id_num_uses: 0,
    bind_secret_id: true,
  });
  const rid = await must(v.addr, v.rootToken, "GET", `auth/approle/role/claude-renew-${user}/role-id`);
  const sid = await must(v.addr, v.rootToken, "POST", `auth/approle/role/claude-renew-${user}/secret-id`, {});
  return { role_id: rid.data.role_id, secret_id: sid.data.secret_id };
}

export async function appRoleLogin(addr: string, cred: AppRoleCred): Promise<string> {
  const r = await vaultApi(addr, null, "POST", "auth/approle/login", cred);
  if (r.status !== 200) throw new Error(`approle login -> ${r.status} ${JSON.stringify(r.json)}`);
  return r.json.auth.client_token;
}

export async function readVaultSecret(v: VaultHandle, user: string): Promise<{ version: number; data: any; custom: Record<string, string> } | null> {
  const d = await vaultApi(v.addr, v.rootToken, "GET", `claude-tokens/data/users/${user}`);
  if (d.status === 404) return null;
  if (d.status !== 200) throw new Error(`read secret -> ${d.status}`);
  const m = await must(v.addr, v.rootToken, "GET", `claude-tokens/metadata/users/${user}`);
  return { version: d.json.data.metadata.version, data: d.json.data.data, custom: m.data.custom_metadata ?? {} };
}

/** Writes a version as root, with CAS, the way the agent would (data + custom metadata). */
export async function writeVaultSecret(v: VaultHandle, user: string, oauth: ClaudeAiOauth, email: string): Promise<number> {
  const m = await vaultApi(v.addr, v.rootToken, "GET", `claude-tokens/metadata/users/${user}`);
  const cas = m.status === 200 ? m.json.data.current_version : 0;
  const w = await must(v.addr, v.rootToken, "POST", `claude-tokens/data/users/${user}`, {
    options: { cas },
    data: { claudeAiOauth: oauth, email, updatedAt: new Date().toISOString(), host: "test" },
  });
  await must(v.addr, v.rootToken, "POST", `claude-tokens/metadata/users/${user}`, {
    custom_metadata: {
      refreshTokenSha256: sha256(oauth.refreshToken),
      expiresAt: String(oauth.expiresAt),
      ...(oauth.refreshTokenExpiresAt ? { refreshTokenExpiresAt: String(oauth.refreshTokenExpiresAt) } : {}),
      writtenAt: new Date().toISOString(),
      writer: "test",
    },
  });
  return w.data.version;
}

// ------------------------------------------------------------------------------------------
// A proxy in front of Vault: counts requests, can run a hook before forwarding one, can be "down".

export interface ProxiedRequest {
  method: string;
  path: string;
  status: number;
}

export class VaultProxy extends LoopbackServer {
  readonly requests: ProxiedRequest[] = [];
  /** Runs before a request is forwarded (e.g. to make a competing write for a CAS conflict). */
  before: ((method: string, p: string) => Promise<void>) | null = null;
  down = false;
  constructor(readonly target: string) {
    super();
  }

  get kvWrites(): ProxiedRequest[] {
    return this.requests.filter((r) => r.method !== "GET" && /^\/v1\/claude-tokens\/(data|metadata)\//.test(r.path));
  }
  get logins(): ProxiedRequest[] {
    return this.requests.filter((r) => r.path.startsWith("/v1/auth/approle/login"));
  }
  reset(): void {
    this.requests.length = 0;
  }

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = await readBodyBytes(req);
    const method = req.method ?? "GET";
    const p = req.url ?? "/";
    if (this.down) {
      req.socket.destroy();
      return;
    }
    try {
      if (this.before) await this.before(method, p);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers))
        if (typeof v === "string" && k !== "host" && k !== "content-length" && k !== "connection") headers[k] = v;
      const body = raw.length ? raw : undefined;
      const r = await fetch(`${this.target}${p}`, { method, headers, body });
      const text = await r.text();
      this.requests.push({ method, path: p, status: r.status });
      res.writeHead(r.status, { "content-type": r.headers.get("content-type") ?? "application/json" });
      res.end(text);
    } catch (e) {
      this.requests.push({ method, path: p, status: 599 });
      res.writeHead(502);
      res.end(String(e));
    }
  }
}

// ------------------------------------------------------------------------------------------
// The alert socket: what workstations-alert.socket (Accept=yes) + workstations-alert@.service
// do on the host, emulated. Per connection the REAL notifier (scripts/agents/workstations-alert.mjs)
// is spawned with the connection as its stdin and stdout, the instance name
// `<n>-<peer pid>-<peer uid>` as `--instance` (the unit passes %i the same way) and
// $CREDENTIALS_DIRECTORY holding `slack-webhook`. Node cannot read SO_PEERCRED, so the peer
// credentials come from `peer()` (the uid the sender runs as on the host); the real kernel
// credentials are covered by tests/host/token-renew.host.test.ts.

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs `NODE args` (asynchronously: the fakes it talks to live in this process) with `env` as
 * its whole environment. `input` is written to its stdin (none: stdin is /dev/null);
 * `started` sees the child while it runs.
 */
export function runNode(args: string[], o: { env: Record<string, string>; input?: string; started?: (child: ChildProcess) => void }): Promise<RunResult> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, args, { env: o.env, stdio: [o.input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    o.started?.(child);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      resolve({ code: code ?? -1, stdout, stderr, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
    });
    if (o.input !== undefined) child.stdin!.end(o.input);
  });
}

export interface AlertSocketOptions {
  socketPath: string;
  usersFile: string;
  /** the unit's $CREDENTIALS_DIRECTORY (holds `slack-webhook`); null = not set */
  credentialsDir: string | null;
  /** peer credentials of the connection; null = "<n>-unknown" (no credentials) */
  peer: () => { pid: number; uid: number } | null;
  hostLabel?: string;
  /** extra notifier arguments (e.g. --slack-timeout 1) */
  args?: string[];
}

export class AlertSocket {
  private server: net.Server | null = null;
  private readonly running = new Set<ChildProcess>();
  private readonly closing: Promise<void>[] = [];
  private accepted = 0;
  /** one per notifier run: exit code and stderr (its stdout is the connection) */
  readonly outputs: RunResult[] = [];
  readonly instances: string[] = [];
  constructor(readonly o: AlertSocketOptions) {}

  get listening(): boolean {
    return this.server !== null;
  }

  async start(): Promise<this> {
    fs.rmSync(this.o.socketPath, { force: true });
    this.server = net.createServer({ pauseOnConnect: true }, (conn) => this.onConnection(conn));
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(this.o.socketPath, () => resolve());
    });
    return this;
  }

  private onConnection(conn: net.Socket): void {
    const n = this.accepted++;
    const p = this.o.peer();
    const instance = p ? `${n}-${p.pid}-${p.uid}` : `${n}-unknown`;
    this.instances.push(instance);
    const t0 = process.hrtime.bigint();
    const env: Record<string, string> = { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" };
    if (this.o.credentialsDir) env.CREDENTIALS_DIRECTORY = this.o.credentialsDir;
    const child = spawn(
      NODE,
      [NOTIFIER, "--instance", instance, "--users-file", this.o.usersFile, "--host-label", this.o.hostLabel ?? "testhost", ...(this.o.args ?? [])],
      {
        env,
        stdio: [conn, conn, "pipe"],
      },
    );
    // The notifier holds the connection now (fd 0 and 1); drop ours, as systemd does.
    conn.destroy();
    this.running.add(child);
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    this.closing.push(
      new Promise<void>((resolve) => {
        child.on("error", (e) => {
          stderr += `spawn error: ${e.message}\n`;
        });
        child.on("close", (code) => {
          this.running.delete(child);
          this.outputs.push({ code: code ?? -1, stdout: "", stderr, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
          resolve();
        });
      }),
    );
  }

  /** Resolves when every notifier started so far has exited. */
  async idle(): Promise<void> {
    await Promise.all(this.closing);
  }

  async stop(): Promise<void> {
    for (const c of this.running) c.kill("SIGKILL");
    await this.idle();
    if (this.server) await new Promise<void>((r) => this.server!.close(() => r()));
    this.server = null;
    fs.rmSync(this.o.socketPath, { force: true });
  }
}

/**
 * Sends one raw message to an alert socket the way the agent does (write, half-close, read
 * the answer). Returns the answer ('' when the connection closed without one).
 */
export function sendToAlertSocket(socketPath: string, payload: string | Buffer, opts: { halfClose?: boolean; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const sock = net.connect({ path: socketPath });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer from ${socketPath} within ${opts.timeoutMs ?? 20_000} ms`));
    }, opts.timeoutMs ?? 20_000);
    sock.setEncoding("utf8");
    sock.on("connect", () => {
      if (opts.halfClose === false) sock.write(payload);
      else sock.end(payload);
    });
    sock.on("data", (d: string) => (buf += d));
    sock.on("error", (e: NodeJS.ErrnoException) => {
      // The notifier may close before reading everything of an oversized message.
      if (e.code === "EPIPE" || e.code === "ECONNRESET") return;
      clearTimeout(timer);
      reject(e);
    });
    sock.on("close", () => {
      clearTimeout(timer);
      resolve(buf);
    });
  });
}

// ------------------------------------------------------------------------------------------
// One user's environment for the agent

export interface AgentEnvOptions {
  user: string;
  email: string;
  vaultAddr: string;
  oauth: FakeAnthropicOAuth;
  slack?: FakeSlack;
  appRole?: AppRoleCred;
  config?: Record<string, unknown>;
  userEntry?: Record<string, unknown>;
  clock?: { t: number };
}

export class AgentEnv {
  readonly root: string;
  readonly home: string;
  readonly claudeDir: string;
  readonly credFile: string;
  readonly configFile: string;
  readonly usersFile: string;
  /** the notifier's $CREDENTIALS_DIRECTORY and its `slack-webhook` (the fake Slack's URL) */
  readonly credentialsDir: string;
  readonly slackFile: string;
  readonly alertSocketPath: string;
  /** the emulated workstations-alert.socket of this user's "host" (started by the first run) */
  readonly alerts: AlertSocket;
  /** the uid the agent "runs as": the peer uid the notifier sees (the users.json uid) */
  uid = 2001;
  private currentPid: number | null = null;
  readonly stateDir: string;
  readonly noticeFile: string;
  readonly vaultCredFile: string;
  readonly outputs: RunResult[] = [];
  /** when set, clock.t is passed as --now (give the fake OAuth server the same clock) */
  clock: { t: number } | null = null;

  constructor(readonly o: AgentEnvOptions) {
    this.root = tmpdir(`ctr-${o.user}-`);
    this.home = path.join(this.root, "home", o.user);
    this.claudeDir = path.join(this.home, ".claude");
    this.credFile = path.join(this.claudeDir, ".credentials.json");
    this.configFile = path.join(this.root, "claude-token-renew.json");
    this.usersFile = path.join(this.root, "users.json");
    this.credentialsDir = path.join(this.root, "credentials");
    this.slackFile = path.join(this.credentialsDir, "slack-webhook");
    this.alertSocketPath = path.join(this.root, "alert.sock");
    this.stateDir = path.join(this.home, ".local", "state", "claude-token-renew");
    this.noticeFile = path.join(this.home, ".claude-token-renew.notice");
    this.vaultCredFile = path.join(this.home, ".config", "claude-token-renew", "vault.json");
    fs.mkdirSync(this.claudeDir, { recursive: true, mode: 0o700 });
    this.writeConfig(o.config ?? {});
    this.writeUsers(o.userEntry ?? {});
    fs.mkdirSync(this.credentialsDir, { mode: 0o700 });
    fs.writeFileSync(this.slackFile, o.slack ? o.slack.webhookUrl : "", { mode: 0o600 });
    this.alerts = new AlertSocket({
      socketPath: this.alertSocketPath,
      usersFile: this.usersFile,
      credentialsDir: this.credentialsDir,
      peer: () => ({ pid: this.currentPid ?? process.pid, uid: this.uid }),
      hostLabel: "testhost",
      args: ["--slack-timeout", "2"],
    });
    if (o.appRole) this.writeAppRole(o.appRole);
    if (o.clock) this.clock = o.clock;
  }

  writeConfig(extra: Record<string, unknown>): void {
    const cfg = {
      vaultAddr: this.o.vaultAddr,
      kvMount: "claude-tokens",
      approleMount: "approle",
      tokenUrl: this.o.oauth.tokenUrl,
      profileUrl: this.o.oauth.profileUrl,
      clientId: this.o.oauth.opts.clientId,
      refreshMarginSeconds: 3600,
      loginDeadlineWarnDays: 3,
      httpTimeoutSeconds: 2,
      lockWaitSeconds: 20,
      backoffBaseSeconds: 300,
      backoffMaxSeconds: 7200,
      usersFile: this.usersFile,
      hostLabel: "testhost",
      ...extra,
    };
    fs.writeFileSync(this.configFile, JSON.stringify(cfg, null, 2));
  }
  writeUsers(entry: Record<string, unknown>): void {
    const u = { name: this.o.user, uid: 2001, home: this.home, state: "active", email: this.o.email, tmuxPersist: true, claudeTokenRenew: true, ...entry };
    if (typeof u.uid === "number" && u.name === this.o.user) this.uid = u.uid;
    fs.writeFileSync(this.usersFile, JSON.stringify({ version: 1, users: [u] }, null, 2));
  }
  writeAppRole(c: AppRoleCred): void {
    fs.mkdirSync(path.dirname(this.vaultCredFile), { recursive: true, mode: 0o700 });
    fs.writeFileSync(this.vaultCredFile, JSON.stringify(c), { mode: 0o600 });
  }

  /** Writes ~/.claude/.credentials.json the way Claude does (0600), with extra keys kept. */
  writeCreds(oauth: ClaudeAiOauth | Record<string, unknown>, extra: Record<string, unknown> = {}): void {
    const tmp = `${this.credFile}.tmp.${crypto.randomBytes(4).toString("hex")}`;
    fs.writeFileSync(tmp, JSON.stringify({ ...extra, claudeAiOauth: oauth }), { mode: 0o600 });
    fs.renameSync(tmp, this.credFile);
  }
  readCreds(): any {
    return JSON.parse(fs.readFileSync(this.credFile, "utf8"));
  }
  credMode(): number {
    return fs.lstatSync(this.credFile).mode & 0o777;
  }
  state(): any {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.stateDir, "state.json"), "utf8"));
    } catch {
      return null;
    }
  }
  notice(): string | null {
    try {
      return fs.readFileSync(this.noticeFile, "utf8");
    } catch {
      return null;
    }
  }

  /**
   * Claude Code refreshing this user's login itself (claudeStandInRefresh on this home,
   * against this env's fake OAuth, on its clock when it has one): by default whatever the
   * token's expiry.
   */
  claudeRefresh(marginMs = 1e12): ReturnType<typeof claudeStandInRefresh> {
    const clock = this.clock;
    return claudeStandInRefresh({
      credFile: this.credFile,
      home: this.home,
      tokenUrl: this.o.oauth.tokenUrl,
      clientId: this.o.oauth.opts.clientId,
      marginMs,
      now: clock ? () => clock.t : undefined,
    });
  }

  args(cmd: string, extra: string[] = []): string[] {
    const a = [AGENT, cmd, "--config", this.configFile, "--user", this.o.user, "--home", this.home, "--alert-socket", this.alertSocketPath, ...extra];
    if (this.clock) a.push("--now", String(this.clock.t));
    return a;
  }

  /**
   * Runs the agent with a clean environment (no ANTHROPIC_* or CLAUDE_* leaking in). The
   * alert socket is listening; the notifier runs it started are finished (and their stderr is
   * in `outputs`) when this resolves.
   */
  async run(cmd = "run", extra: string[] = [], env: Record<string, string> = {}, input?: string): Promise<RunResult> {
    if (!this.alerts.listening) await this.alerts.start();
    const n0 = this.alerts.outputs.length;
    const r = await runNode(this.args(cmd, extra), {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: this.home, LANG: "C.UTF-8", ...env },
      ...(input !== undefined ? { input } : {}),
      started: (child) => (this.currentPid = child.pid ?? null),
    });
    this.currentPid = null;
    await this.alerts.idle();
    this.outputs.push(r, ...this.alerts.outputs.slice(n0));
    return r;
  }

  cleanup(): void {
    void this.alerts.stop();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------------
// The world of a Vault-backed token suite

export interface TokenSuiteOptions {
  /** the temp dir's prefix */
  prefix: string;
  /** the first letter of the users `newUser` makes (`a1`, `a2`, ...) */
  users?: string;
  /** the fake OAuth's options; its clock is the suite's `clock` when `clocked` */
  oauth?: Omit<FakeOAuthOptions, "now">;
  clocked?: boolean;
  /** the fake Slack, and a VaultProxy in front of Vault that `newUser`'s agents talk to */
  slackAndProxy?: boolean;
}

/**
 * What a token suite runs against, made in `before` (`start`) and ended in `after` (`stop`):
 * a temp dir, a real Vault with the CONTRACTS layout, the fake OAuth and, with `slackAndProxy`,
 * the fake Slack and a counting proxy in front of Vault. `envs` are the suite's AgentEnvs
 * (`stop` cleans them up); `clock` is the agents' `--now` (and the fake OAuth's when `clocked`).
 */
export class TokenSuite {
  dir = "";
  vault!: VaultHandle;
  oauth!: FakeAnthropicOAuth;
  /** with `slackAndProxy` only */
  slack!: FakeSlack;
  /** with `slackAndProxy` only */
  proxy!: VaultProxy;
  readonly clock = { t: Date.now() };
  readonly envs: AgentEnv[] = [];
  private n = 0;

  constructor(readonly opts: TokenSuiteOptions) {}

  async start(): Promise<void> {
    this.dir = tmpdir(this.opts.prefix);
    this.vault = await startRealVault(this.dir);
    await setupVaultLayout(this.vault);
    this.oauth = await startFakeAnthropic({ ...this.opts.oauth, ...(this.opts.clocked ? { now: () => this.clock.t } : {}) });
    if (this.opts.slackAndProxy) {
      this.slack = await startFakeSlack();
      this.proxy = await new VaultProxy(this.vault.addr).start();
    }
  }

  /**
   * A new Vault user (an AppRole of its own) and its AgentEnv, talking to the proxy, alerting
   * the fake Slack; on the suite's clock unless `clock` is false.
   */
  async newUser(o: { config?: Record<string, unknown>; vaultAddr?: string; clock?: boolean } = {}): Promise<AgentEnv & { cred: AppRoleCred }> {
    const user = `${this.opts.users ?? "u"}${++this.n}`;
    const cred = await addVaultUser(this.vault, user);
    const e = new AgentEnv({
      user,
      email: `${user}@example.com`,
      vaultAddr: o.vaultAddr ?? this.proxy.url,
      oauth: this.oauth,
      slack: this.slack,
      appRole: cred,
      config: o.config,
      clock: o.clock === false ? undefined : this.clock,
    });
    this.envs.push(e);
    return Object.assign(e, { cred });
  }

  async stop(): Promise<void> {
    for (const e of this.envs) e.cleanup();
    await this.proxy?.stop();
    await this.slack?.stop();
    await this.oauth?.stop();
    await this.vault?.stop();
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Every secret in `secrets` must be absent from every output (stdout and stderr). */
export function findLeaks(outputs: RunResult[], secrets: Iterable<string>): string[] {
  const leaks: string[] = [];
  const all = outputs.map((o) => `${o.stdout}\n${o.stderr}`).join("\n");
  for (const s of secrets) {
    if (!s || s.length < 8) continue;
    if (all.includes(s)) leaks.push(`${s.slice(0, 14)}…`);
    // also a recognisable half of it
    else if (all.includes(s.slice(Math.floor(s.length / 2)))) leaks.push(`half of ${s.slice(0, 14)}…`);
  }
  return leaks;
}

export function describeRun(r: RunResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

// ------------------------------------------------------------------------------------------
// A Claude Code stand-in: refreshes under Claude's two mkdir locks exactly like Claude does
// (mkdir locks, stale after 60 s, heartbeat 5 s, re-read under the lock, tmp + rename).

export async function claudeStandInRefresh(o: {
  credFile: string;
  home: string;
  tokenUrl: string;
  clientId: string;
  marginMs: number;
  now?: () => number;
  lockWaitMs?: number;
}): Promise<"refreshed" | "fresh" | "busy" | "no-creds" | `error:${string}`> {
  const now = o.now ?? (() => Date.now());
  const locks = [path.join(path.dirname(o.credFile), ".oauth_refresh.lock"), path.join(o.home, ".claude.lock")];
  const held: string[] = [];
  const deadline = Date.now() + (o.lockWaitMs ?? 10_000);
  // Like proper-lockfile: take the first, then wait for the second while holding the first.
  for (const l of locks) {
    for (;;) {
      try {
        fs.mkdirSync(l);
        held.push(l);
        break;
      } catch (e: any) {
        if (e.code !== "EEXIST") throw e;
        try {
          if (Date.now() - fs.statSync(l).mtimeMs > 60_000) {
            fs.rmdirSync(l);
            continue;
          }
        } catch {
          continue;
        }
        if (Date.now() > deadline) {
          for (const h of held.reverse()) fs.rmdirSync(h);
          return "busy";
        }
        await sleep(20 + Math.random() * 40);
      }
    }
  }
  const hb = setInterval(() => {
    for (const h of held) {
      const t = new Date();
      try {
        fs.utimesSync(h, t, t);
      } catch {
        /* ignore */
      }
    }
  }, 5000);
  try {
    let doc: any;
    try {
      doc = JSON.parse(fs.readFileSync(o.credFile, "utf8"));
    } catch {
      return "no-creds";
    }
    const cur = doc.claudeAiOauth;
    if (!cur || cur.expiresAt - now() > o.marginMs) return "fresh";
    const r = await fetch(o.tokenUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ grant_type: "refresh_token", refresh_token: cur.refreshToken, client_id: o.clientId }),
    });
    const j: any = await r.json();
    if (r.status !== 200) return `error:${r.status}:${j.error ?? ""}`;
    doc.claudeAiOauth = {
      ...cur,
      accessToken: j.access_token,
      refreshToken: j.refresh_token,
      expiresAt: now() + j.expires_in * 1000,
      ...(typeof j.refresh_token_expires_in === "number" ? { refreshTokenExpiresAt: now() + j.refresh_token_expires_in * 1000 } : {}),
    };
    const tmp = `${o.credFile}.tmp.${crypto.randomBytes(4).toString("hex")}`;
    fs.writeFileSync(tmp, JSON.stringify(doc), { mode: 0o600 });
    fs.renameSync(tmp, o.credFile);
    return "refreshed";
  } finally {
    clearInterval(hb);
    for (const h of held.reverse()) {
      try {
        fs.rmdirSync(h);
      } catch {
        /* ignore */
      }
    }
  }
}

// ------------------------------------------------------------------------------------------

export function sha256(s: string): string {
  return crypto.createHash("sha256").update(s, "utf8").digest("hex");
}
export { freePort, sleep };
/** A port on which nothing listens (Vault "down"). */
export async function deadAddr(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}
export function systemdAnalyzeAvailable(): boolean {
  return spawnSync("systemd-analyze", ["--version"], { stdio: "ignore" }).status === 0;
}
