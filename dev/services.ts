// Dev services for the sandbox and the end-to-end tests: a Vault-API dev server (OpenBao,
// or HashiCorp Vault where OpenBao cannot be built) and a Forgejo-API server (Forgejo, or
// the documented Gitea fallback), both from the offline toolchain built by
// `dev/toolchain build` into ${WORKSTATIONS_CACHE:-~/.cache/workstations}/toolchain.
//
// Secrets (root token, admin password, admin token) never go on a command line: they are
// passed through the environment or over HTTP, and the CLI wrapper writes them to 0600 files.

import { jsonOrText } from "./http";
import { freePort, sleep } from "./wait";
import { spawn, spawnSync, ChildProcess } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export const TOOLCHAIN_HINT = "run `dev/toolchain build` (or `npm run toolchain`) to build the offline toolchain";

export class ToolchainMissingError extends Error {
  constructor(what: string, looked: string[]) {
    super(`${what} not found (looked for ${looked.join(", ")}): ${TOOLCHAIN_HINT}`);
    this.name = "ToolchainMissingError";
  }
}

export function cacheDir(): string {
  return process.env.WORKSTATIONS_CACHE ?? path.join(os.homedir(), ".cache", "workstations");
}

export function toolchainBinDir(): string {
  return process.env.WORKSTATIONS_TOOLCHAIN_BIN ?? path.join(cacheDir(), "toolchain", "bin");
}

export function toolchainShareDir(): string {
  return process.env.WORKSTATIONS_TOOLCHAIN_SHARE ?? path.join(cacheDir(), "toolchain", "share");
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** First of `names` that is an executable in the toolchain bin dir, or null. */
export function findTool(names: readonly string[]): { name: string; path: string } | null {
  for (const name of names) {
    const p = path.join(toolchainBinDir(), name);
    if (isExecutable(p)) return { name, path: p };
  }
  return null;
}

/** Throws ToolchainMissingError unless every group has one executable in the toolchain. */
export function requireToolchain(
  groups: ReadonlyArray<readonly string[]> = [
    ["bao", "vault"],
    ["forgejo", "gitea"],
  ],
): void {
  for (const g of groups) {
    if (!findTool(g))
      throw new ToolchainMissingError(
        g.join(" or "),
        g.map((n) => path.join(toolchainBinDir(), n)),
      );
  }
}

export { freePort };

export function randomSecret(bytes = 24): string {
  return crypto.randomBytes(bytes).toString("base64url");
}

function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopPid(pid: number, graceMs = 10_000): Promise<void> {
  if (!pidAlive(pid)) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return;
    await sleep(100);
  }
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    return;
  }
  while (pidAlive(pid)) await sleep(50);
}

export interface Started {
  child: ChildProcess;
  pid: number;
  exited: () => string | null;
}

export function startProcess(
  bin: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; log: string; detached: boolean; dropStdout?: boolean },
): Started {
  const fd = fs.openSync(opts.log, "a", 0o600);
  const child = spawn(bin, args, {
    cwd: opts.cwd,
    env: opts.env,
    stdio: ["ignore", opts.dropStdout ? "ignore" : fd, fd],
    detached: opts.detached,
  });
  fs.closeSync(fd);
  let exit: string | null = null;
  child.on("exit", (code, signal) => {
    exit = signal ? `signal ${signal}` : `exit code ${code}`;
  });
  child.on("error", (err) => {
    exit = `spawn error: ${err.message}`;
  });
  if (opts.detached) child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${bin}`);
  return { child, pid: child.pid, exited: () => exit };
}

export async function waitFor(what: string, started: Started, log: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ex = started.exited();
    if (ex) throw new Error(`${what} exited during start-up (${ex}); log ${log}:\n${tail(log)}`);
    try {
      if (await probe()) return;
    } catch {
      // not up yet
    }
    await sleep(200);
  }
  throw new Error(`${what} did not become healthy within ${timeoutMs} ms; log ${log}:\n${tail(log)}`);
}

// ---------------------------------------------------------------------------------------
// Vault / OpenBao

export interface VaultServer {
  /** http://127.0.0.1:PORT */
  addr: string;
  rootToken: string;
  /** Which server binary is running: the CLI env prefix is BAO_ for openbao, VAULT_ for vault. */
  kind: "openbao" | "vault";
  bin: string;
  pid: number;
  log: string;
  stop(): Promise<void>;
}

export interface StartVaultOptions {
  /** Working dir for logs and HOME; created if missing. */
  dir: string;
  port?: number;
  rootToken?: string;
  /** Leave the server running after this process exits (for the sandbox CLI). */
  detached?: boolean;
  timeoutMs?: number;
}

/** `bao server -dev` (or `vault server -dev`) on a free loopback port, in memory, KV v2 at secret/. */
export async function startVault(opts: StartVaultOptions): Promise<VaultServer> {
  const tool = findTool(["bao", "vault"]);
  if (!tool) throw new ToolchainMissingError("bao (or vault)", [path.join(toolchainBinDir(), "bao"), path.join(toolchainBinDir(), "vault")]);
  const kind = tool.name === "bao" ? "openbao" : "vault";
  const prefix = kind === "openbao" ? "BAO" : "VAULT";
  fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  // The dev server also listens on PORT+1 for cluster traffic.
  const port = opts.port ?? (await freePort(2));
  const rootToken = opts.rootToken ?? `root-${randomSecret(18)}`;
  const addr = `http://127.0.0.1:${port}`;
  const log = path.join(opts.dir, `${kind}.log`);
  fs.rmSync(log, { force: true });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: opts.dir,
    [`${prefix}_DEV_ROOT_TOKEN_ID`]: rootToken,
    [`${prefix}_DEV_LISTEN_ADDRESS`]: `127.0.0.1:${port}`,
    [`${prefix}_ADDR`]: addr,
    [`${prefix}_LOG_LEVEL`]: "warn",
    // Dev mode never mlocks, but say so explicitly for hosts without CAP_IPC_LOCK.
    [`${prefix}_DISABLE_MLOCK`]: "true",
    SKIP_SETCAP: "1",
  };
  // -dev-no-store-token: do not write the token to ~/.vault-token.
  const started = startProcess(tool.path, ["server", "-dev", "-dev-no-store-token"], {
    cwd: opts.dir,
    env,
    log,
    detached: opts.detached ?? false,
    // The dev-mode banner on stdout prints the root token and unseal key: keep it out of the log.
    dropStdout: true,
  });
  const stop = () => stopPid(started.pid);
  try {
    await waitFor(`${tool.name} server -dev`, started, log, opts.timeoutMs ?? 60_000, async () => {
      const res = await fetch(`${addr}/v1/sys/health`);
      return res.status === 200;
    });
    // Health says unsealed+active; also check that the root token works.
    const res = await fetch(`${addr}/v1/auth/token/lookup-self`, { headers: { "X-Vault-Token": rootToken } });
    if (res.status !== 200) throw new Error(`root token rejected by ${addr}: HTTP ${res.status}`);
  } catch (e) {
    await stop();
    throw e;
  }
  return { addr, rootToken, kind, bin: tool.path, pid: started.pid, log, stop };
}

/** Minimal Vault HTTP call with a token; returns parsed JSON (or null for 204). */
export async function vaultRequest(v: { addr: string }, token: string, method: string, apiPath: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${v.addr}/v1/${apiPath.replace(/^\//, "")}`, {
    method,
    headers: { "X-Vault-Token": token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`vault ${method} ${apiPath}: HTTP ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// ---------------------------------------------------------------------------------------
// Forgejo / Gitea

export interface ForgejoUser {
  name: string;
  email: string;
  password: string;
  id: number;
}

export interface ForgejoServer {
  /** http://127.0.0.1:PORT/ (with trailing slash, as ROOT_URL) */
  url: string;
  kind: "forgejo" | "gitea";
  version: string;
  adminUser: string;
  adminPassword: string;
  adminToken: string;
  /** The `<admin>/infra` repo, auto-initialised with one commit on master. */
  repo: { owner: string; name: string };
  bin: string;
  pid: number;
  log: string;
  /** Creates a normal (non-admin) user with a random password. */
  createUser(name: string, email: string): Promise<ForgejoUser>;
  /** Authenticated API call as the site admin (path relative to /api/v1). */
  api(method: string, apiPath: string, body?: unknown): Promise<{ status: number; json: unknown }>;
  stop(): Promise<void>;
}

export interface StartForgejoOptions {
  dir: string;
  port?: number;
  adminUser?: string;
  adminEmail?: string;
  repoName?: string;
  detached?: boolean;
  timeoutMs?: number;
  /** Gitea/Forgejo as an OAuth2 provider (`[oauth2] ENABLED`), e.g. for Woodpecker's login (dev/woodpecker.ts). */
  oauth2?: boolean;
}

const TOKEN_SCOPES = [
  "write:activitypub",
  "write:admin",
  "write:issue",
  "write:misc",
  "write:notification",
  "write:organization",
  "write:package",
  "write:repository",
  "write:user",
];

function appIni(o: { dir: string; port: number; staticRoot: string; runUser: string; secretKey: string; internalToken: string; oauth2: boolean }): string {
  const d = o.dir;
  return `APP_NAME = workstations-dev
RUN_USER = ${o.runUser}
RUN_MODE = prod
WORK_PATH = ${d}
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = ${o.port}
DOMAIN = 127.0.0.1
ROOT_URL = http://127.0.0.1:${o.port}/
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
STATIC_ROOT_PATH = ${o.staticRoot}
APP_DATA_PATH = ${d}/data

[database]
DB_TYPE = sqlite3
PATH = ${d}/data/forgejo.db
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = ${d}/repos
DEFAULT_BRANCH = master

[security]
INSTALL_LOCK = true
SECRET_KEY = ${o.secretKey}
INTERNAL_TOKEN = ${o.internalToken}
PASSWORD_HASH_ALGO = pbkdf2
MIN_PASSWORD_LENGTH = 8
PASSWORD_COMPLEXITY = off

[oauth2]
ENABLED = ${o.oauth2}${o.oauth2 ? `\nJWT_SECRET = ${randomSecret(32)}` : ""}

[service]
DISABLE_REGISTRATION = true
REQUIRE_SIGNIN_VIEW = false
ENABLE_NOTIFY_MAIL = false
DEFAULT_KEEP_EMAIL_PRIVATE = false

[mailer]
ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[api]
ENABLE_SWAGGER = true

[webhook]
ALLOWED_HOST_LIST = loopback,private

[actions]
ENABLED = false

[cron.update_checker]
ENABLED = false

[log]
MODE = console
LEVEL = Warn
ROOT_PATH = ${d}/log
`;
}

/** A random INTERNAL_TOKEN in the JWT-like shape Forgejo/Gitea generate themselves. */
function internalToken(): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ nbf: Math.floor(Date.now() / 1000) })}.${randomSecret(32)}`;
}

function runSync(bin: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; log: string; what: string; quiet: boolean }): string {
  const r = spawnSync(bin, args, { cwd: opts.cwd, env: opts.env, encoding: "utf8", timeout: 120_000 });
  const out = opts.quiet ? "(output not logged)\n" : `${r.stdout ?? ""}${r.stderr ?? ""}`;
  fs.appendFileSync(opts.log, `$ ${path.basename(bin)} ${args.join(" ")}\n${out}\n`, { mode: 0o600 });
  if (r.status !== 0) {
    throw new Error(`${opts.what} failed (${r.error?.message ?? `exit ${r.status}`}):\n${(r.stderr || r.stdout || "").slice(-3000)}`);
  }
  return r.stdout;
}

/**
 * A sqlite Forgejo (or Gitea) on a free loopback port with a generated app.ini, a site
 * admin, an admin API token and an `<admin>/infra` repo with an initial commit on master.
 * The data dir is wiped first: every start is a fresh instance.
 */
/** Creates the server's admin (`--random-password`: the password never in argv; read from stdout, not logged). */
function createForgejoAdmin(cli: (args: string[], what: string, quiet?: boolean) => string, kind: string, adminUser: string, adminEmail: string): string {
  const created = cli(
    [
      "admin",
      "user",
      "create",
      "--admin",
      "--username",
      adminUser,
      "--email",
      adminEmail,
      "--random-password",
      "--random-password-length=32",
      "--must-change-password=false",
    ],
    `${kind} admin user create`,
    true,
  );
  const pw = /generated random password is '([^']+)'/.exec(created);
  if (!pw) throw new Error(`${kind} admin user create printed no generated password`);
  return pw[1];
}

/** On the running server: the admin's API token, an API client, the infra repo (master), the version, and a user factory. */
async function forgejoClient(url: string, adminUser: string, adminPassword: string, repoName: string) {
  const apiBase = `${url}api/v1`;
  const basic = (pw: string) => `Basic ${Buffer.from(`${adminUser}:${pw}`).toString("base64")}`;
  const tok = await fetch(`${apiBase}/users/${adminUser}/tokens`, {
    method: "POST",
    headers: { Authorization: basic(adminPassword), "Content-Type": "application/json" },
    body: JSON.stringify({ name: `admin-${Date.now()}`, scopes: TOKEN_SCOPES }),
  });
  if (!tok.ok) throw new Error(`creating the admin token failed: HTTP ${tok.status} ${await tok.text()}`);
  const adminToken = ((await tok.json()) as { sha1: string }).sha1;

  const api = async (method: string, apiPath: string, body?: unknown) => {
    const res = await fetch(`${apiBase}/${apiPath.replace(/^\//, "")}`, {
      method,
      headers: { Authorization: `token ${adminToken}`, "Content-Type": "application/json", Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: jsonOrText(await res.text()) as unknown };
  };

  const repo = await api("POST", "user/repos", {
    name: repoName,
    auto_init: true,
    default_branch: "master",
    readme: "Default",
    private: false,
    description: "workstations sandbox infra repo",
  });
  if (repo.status !== 201) throw new Error(`creating ${adminUser}/${repoName} failed: HTTP ${repo.status} ${JSON.stringify(repo.json)}`);
  const branch = await api("GET", `repos/${adminUser}/${repoName}/branches/master`);
  if (branch.status !== 200) throw new Error(`${adminUser}/${repoName} has no master branch: HTTP ${branch.status}`);

  const ver = await api("GET", "version");
  const version = (ver.json as { version?: string } | null)?.version ?? "unknown";

  const createUser = async (name: string, email: string): Promise<ForgejoUser> => {
    const password = randomSecret(18);
    const r = await api("POST", "admin/users", {
      username: name,
      email,
      password,
      must_change_password: false,
      send_notify: false,
      visibility: "public",
    });
    if (r.status !== 201) throw new Error(`creating user ${name} failed: HTTP ${r.status} ${JSON.stringify(r.json)}`);
    return { name, email, password, id: (r.json as { id: number }).id };
  };

  return { adminToken, api, version, repoName, createUser };
}

export async function startForgejo(opts: StartForgejoOptions): Promise<ForgejoServer> {
  const tool = findTool(["forgejo", "gitea"]);
  if (!tool) throw new ToolchainMissingError("forgejo (or gitea)", [path.join(toolchainBinDir(), "forgejo"), path.join(toolchainBinDir(), "gitea")]);
  const kind = tool.name as "forgejo" | "gitea";
  const staticRoot = path.join(toolchainShareDir(), kind);
  if (!fs.existsSync(path.join(staticRoot, "templates")) || !fs.existsSync(path.join(staticRoot, "options"))) {
    throw new ToolchainMissingError(`${kind} templates/options`, [staticRoot]);
  }
  const dir = path.resolve(opts.dir);
  for (const sub of ["data", "repos", "log", "custom", "home"]) fs.rmSync(path.join(dir, sub), { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, "custom", "conf"), { recursive: true, mode: 0o700 });
  for (const sub of ["data", "repos", "log", "home"]) fs.mkdirSync(path.join(dir, sub), { recursive: true, mode: 0o700 });

  const port = opts.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}/`;
  const conf = path.join(dir, "custom", "conf", "app.ini");
  const runUser = os.userInfo().username;
  fs.writeFileSync(
    conf,
    appIni({ dir, port, staticRoot, runUser, secretKey: randomSecret(32), internalToken: internalToken(), oauth2: opts.oauth2 ?? false }),
    { mode: 0o600 },
  );

  const log = path.join(dir, `${kind}.log`);
  fs.rmSync(log, { force: true });
  const envPrefix = kind === "forgejo" ? "FORGEJO" : "GITEA";
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: path.join(dir, "home"),
    USER: runUser,
    [`${envPrefix}_WORK_DIR`]: dir,
    [`${envPrefix}_CUSTOM`]: path.join(dir, "custom"),
  };
  const common = ["--config", conf, "--work-path", dir, "--custom-path", path.join(dir, "custom")];
  const cli = (args: string[], what: string, quiet = false) => runSync(tool.path, [...args, ...common], { cwd: dir, env, log, what, quiet });

  cli(["migrate"], `${kind} migrate`);
  const adminUser = opts.adminUser ?? "forgeadmin";
  const adminPassword = createForgejoAdmin(cli, kind, adminUser, opts.adminEmail ?? `${adminUser}@example.invalid`);

  const started = startProcess(tool.path, ["web", ...common], { cwd: dir, env, log, detached: opts.detached ?? false });
  const stop = () => stopPid(started.pid);
  try {
    await waitFor(`${kind} web`, started, log, opts.timeoutMs ?? 90_000, async () => {
      const res = await fetch(`${url}api/healthz`);
      return res.status === 200;
    });
    const { adminToken, api, version, repoName, createUser } = await forgejoClient(url, adminUser, adminPassword, opts.repoName ?? "infra");

    return {
      url,
      kind,
      version,
      adminUser,
      adminPassword,
      adminToken,
      repo: { owner: adminUser, name: repoName },
      bin: tool.path,
      pid: started.pid,
      log,
      createUser,
      api,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------
// Kubernetes: etcd + kube-apiserver (+ kube-controller-manager) on loopback

import * as https from "node:https";
import { FakeOidcIssuer } from "./fakes/oidc";

export const KUBE_BINARIES = ["etcd", "kube-apiserver", "kube-controller-manager", "kubectl"] as const;

export interface KubeServer {
  /** https://127.0.0.1:PORT */
  server: string;
  /** PEM of the test CA (signed the API server's and the issuer's certificates). */
  caCert: string;
  /** kubeconfig with the static admin client certificate (O=system:masters). */
  adminKubeconfig: string;
  /** The fake OIDC issuer the API server's structured AuthenticationConfiguration trusts. */
  oidc: FakeOidcIssuer;
  clientId: string;
  usernameClaim: "email";
  usernamePrefix: string;
  /** Whether kube-controller-manager (tokens controller) runs. */
  controllerManager: boolean;
  dir: string;
  kubectlBin: string;
  /**
   * kubectl against this server: as admin, or with a bearer token (no kubeconfig credentials
   * then). Asynchronous: the fake OIDC issuer runs in this process and must keep answering.
   */
  kubectl(args: string[], o?: { token?: string; input?: string }): Promise<{ code: number; stdout: string; stderr: string }>;
  /**
   * One HTTPS request to the API server with a bearer token (or as admin when token is absent);
   * a body is JSON, sent as `contentType` (default application/json; a PATCH needs a patch type).
   */
  request(method: string, apiPath: string, o?: { token?: string; body?: unknown; contentType?: string }): Promise<{ status: number; json: any }>;
  stop(): Promise<void>;
}

export interface StartKubeOptions {
  dir: string;
  /** Start kube-controller-manager (default true): needed for service-account token Secrets. */
  controllerManager?: boolean;
  clientId?: string;
  usernamePrefix?: string;
  timeoutMs?: number;
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8", timeout: 60_000 });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.error?.message ?? ""}${r.stderr}`);
}

/** A CA, and leaf certificates it signs. */
function makePki(dir: string): { leaf: (name: string, subj: string, serverSans?: string) => { cert: string; key: string } } {
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=workstations-test-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return {
    leaf(name, subj, serverSans) {
      const ext = [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        `extendedKeyUsage=${serverSans ? "serverAuth,clientAuth" : "clientAuth"}`,
        ...(serverSans ? [`subjectAltName=${serverSans}`] : []),
      ].join("\n");
      fs.writeFileSync(path.join(dir, `${name}.ext`), ext + "\n");
      openssl(dir, ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subj]);
      openssl(dir, [
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        `${name}.crt`,
        "-days",
        "2",
        "-extfile",
        `${name}.ext`,
      ]);
      fs.chmodSync(path.join(dir, `${name}.key`), 0o600);
      return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
    },
  };
}

function clientKubeconfig(server: string, ca: string, cert: string, key: string, user: string): string {
  return JSON.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "test", cluster: { server, "certificate-authority": ca } }],
      users: [{ name: user, user: { "client-certificate": cert, "client-key": key } }],
      contexts: [{ name: "test", context: { cluster: "test", user } }],
      "current-context": "test",
    },
    null,
    2,
  );
}

/** Throws ToolchainMissingError unless etcd, kube-apiserver, kube-controller-manager and kubectl are built. */
export function requireKubeToolchain(): void {
  requireToolchain(KUBE_BINARIES.map((b) => [b]));
}

/**
 * etcd and kube-apiserver on free loopback ports, with a generated CA, a static admin client
 * certificate, a service-account signing key and a structured AuthenticationConfiguration
 * whose JWT authenticator trusts a fake OIDC issuer (dev/fakes/oidc.ts) started here too:
 * username = prefix + the `email` claim, audience = the client id. RBAC is the only
 * authorizer. kube-controller-manager runs the service-account and tokens controllers (the
 * latter fills `kubernetes.io/service-account-token` Secrets) and the namespace controller.
 * No scheduler or kubelet: workloads are stored, not run.
 */
/** The API server's structured authentication config: the fake issuer's JWTs, username from `email`. */
function writeAuthnConfig(dir: string, issuer: string, clientId: string, caCert: string, usernamePrefix: string): string {
  const authn = path.join(dir, "authentication.json");
  fs.writeFileSync(
    authn,
    JSON.stringify(
      {
        apiVersion: "apiserver.config.k8s.io/v1",
        kind: "AuthenticationConfiguration",
        jwt: [
          {
            issuer: { url: issuer, audiences: [clientId], certificateAuthority: caCert },
            claimMappings: { username: { claim: "email", prefix: usernamePrefix }, groups: { claim: "groups", prefix: usernamePrefix } },
          },
        ],
      },
      null,
      2,
    ),
  );
  return authn;
}

/** etcd on two loopback ports (client, peer), fsync off; its port once healthy. */
async function startEtcd(dir: string, bin: (n: string) => string, children: Started[], timeoutMs: number): Promise<number> {
  const etcdPort = await freePort(2);
  const etcdLog = path.join(dir, "etcd.log");
  const etcd = startProcess(
    bin("etcd"),
    [
      "--name",
      "test",
      "--data-dir",
      path.join(dir, "etcd"),
      "--listen-client-urls",
      `http://127.0.0.1:${etcdPort}`,
      "--advertise-client-urls",
      `http://127.0.0.1:${etcdPort}`,
      "--listen-peer-urls",
      `http://127.0.0.1:${etcdPort + 1}`,
      "--initial-advertise-peer-urls",
      `http://127.0.0.1:${etcdPort + 1}`,
      "--initial-cluster",
      `test=http://127.0.0.1:${etcdPort + 1}`,
      "--log-level",
      "warn",
      "--unsafe-no-fsync",
    ],
    { cwd: dir, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir }, log: etcdLog, detached: false },
  );
  children.push(etcd);
  await waitFor("etcd", etcd, etcdLog, timeoutMs, async () => (await fetch(`http://127.0.0.1:${etcdPort}/health`)).ok);
  return etcdPort;
}

/** Requests to the API server: as the admin (client certificate), or with a bearer token. */
function kubeRequester(server: string, caCert: string, adminTls: { cert: string; key: string }) {
  return (method: string, apiPath: string, o: { token?: string; body?: unknown; contentType?: string } = {}) =>
    new Promise<{ status: number; json: any }>((resolve, reject) => {
      const body = o.body === undefined ? undefined : JSON.stringify(o.body);
      const req = https.request(
        `${server}${apiPath}`,
        {
          method,
          ca: caCert,
          ...(o.token ? {} : { cert: adminTls.cert, key: adminTls.key }),
          headers: {
            Accept: "application/json",
            ...(o.token ? { Authorization: `Bearer ${o.token}` } : {}),
            ...(body ? { "Content-Type": o.contentType ?? "application/json" } : {}),
          },
          timeout: 30_000,
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c) => (text += c));
          res.on("end", () => {
            let json: any = text;
            try {
              json = text ? JSON.parse(text) : null;
            } catch {
              /* not JSON */
            }
            resolve({ status: res.statusCode ?? 0, json });
          });
        },
      );
      req.on("error", reject);
      req.on("timeout", () => req.destroy(new Error(`${method} ${apiPath}: timeout`)));
      if (body) req.write(body);
      req.end();
    });
}

/** kube-controller-manager with the controllers the tests need; ready once `default` exists and `admin` is aggregated. */
async function startControllerManager(
  o: { dir: string; server: string; ca: string; pkiDir: string; cm: { cert: string; key: string }; timeoutMs: number },
  bin: (n: string) => string,
  children: Started[],
  request: ReturnType<typeof kubeRequester>,
): Promise<void> {
  const { dir, server, ca, pkiDir, cm } = o;
  const cmKubeconfig = path.join(dir, "controller-manager.kubeconfig");
  fs.writeFileSync(cmKubeconfig, clientKubeconfig(server, ca, cm.cert, cm.key, "system:kube-controller-manager"), { mode: 0o600 });
  const cmLog = path.join(dir, "kube-controller-manager.log");
  const cmPort = await freePort();
  const kcm = startProcess(
    bin("kube-controller-manager"),
    [
      `--kubeconfig=${cmKubeconfig}`,
      `--authentication-kubeconfig=${cmKubeconfig}`,
      `--authorization-kubeconfig=${cmKubeconfig}`,
      `--service-account-private-key-file=${path.join(pkiDir, "sa.key")}`,
      `--root-ca-file=${ca}`,
      // clusterrole-aggregation fills the aggregated admin/edit/view ClusterRoles (empty without it).
      "--controllers=serviceaccount-token-controller,serviceaccount-controller,namespace-controller,garbage-collector-controller,clusterrole-aggregation-controller",
      "--leader-elect=false",
      "--use-service-account-credentials=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${cmPort}`,
      `--cert-dir=${path.join(dir, "cm-certs")}`,
      "--v=1",
    ],
    { cwd: dir, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir }, log: cmLog, detached: false },
  );
  children.push(kcm);
  // Ready once the service-account controller has made `default` in the default namespace
  // and the aggregation controller has filled the `admin` ClusterRole.
  await waitFor(
    "kube-controller-manager",
    kcm,
    cmLog,
    o.timeoutMs,
    async () =>
      (await request("GET", "/api/v1/namespaces/default/serviceaccounts/default")).status === 200 &&
      ((await request("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin")).json?.rules ?? []).length > 0,
  );
}

/** kubectl against the server: as the admin, or with a bearer token (no kubeconfig credentials then). */
function kubectlRunner(kubectlBin: string, server: string, ca: string, adminKubeconfig: string, dir: string) {
  return (args: string[], o: { token?: string; input?: string } = {}) => {
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, KUBECONFIG: "/dev/null" };
    const conn = o.token ? [`--server=${server}`, `--certificate-authority=${ca}`, `--token=${o.token}`] : [`--kubeconfig=${adminKubeconfig}`];
    return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(kubectlBin, [...conn, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "",
        stderr = "";
      const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
      child.stdout.on("data", (c) => (stdout += c));
      child.stderr.on("data", (c) => (stderr += c));
      child.on("error", (e) => (stderr += e.message));
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr });
      });
      child.stdin.end(o.input ?? "");
    });
  };
}

export async function startKube(opts: StartKubeOptions): Promise<KubeServer> {
  requireKubeToolchain();
  const bin = (n: string) => path.join(toolchainBinDir(), n);
  const dir = path.resolve(opts.dir);
  fs.rmSync(dir, { recursive: true, force: true });
  const pkiDir = path.join(dir, "pki");
  fs.mkdirSync(pkiDir, { recursive: true, mode: 0o700 });
  const pki = makePki(pkiDir);
  const ca = path.join(pkiDir, "ca.crt");
  const caCert = fs.readFileSync(ca, "utf8");
  const serving = pki.leaf("apiserver", "/CN=kube-apiserver", "IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc");
  const admin = pki.leaf("admin", "/O=system:masters/CN=workstations-test-admin");
  // system:masters: the aggregation controller patches ClusterRoles, which the plain
  // system:kube-controller-manager role may not (it would use per-controller credentials).
  const cm = pki.leaf("controller-manager", "/O=system:masters/CN=system:kube-controller-manager");
  const issuerTls = pki.leaf("oidc", "/CN=fake-oidc", "IP:127.0.0.1,DNS:localhost");
  openssl(pkiDir, ["genrsa", "-out", "sa.key", "2048"]);
  openssl(pkiDir, ["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);

  const clientId = opts.clientId ?? "workstations-kubernetes";
  const usernamePrefix = opts.usernamePrefix ?? "oidc:";
  const oidc = await new FakeOidcIssuer({ cert: fs.readFileSync(issuerTls.cert, "utf8"), key: fs.readFileSync(issuerTls.key, "utf8") }, clientId).start();
  const children: Started[] = [];
  // A test process that exits without stop() (a failed hook, a timeout) takes the servers along.
  const onExit = () => {
    for (const c of children)
      try {
        process.kill(c.pid, "SIGKILL");
      } catch {
        /* gone */
      }
  };
  process.once("exit", onExit);
  const stop = async () => {
    for (const c of [...children].reverse()) await stopPid(c.pid);
    process.removeListener("exit", onExit);
    await oidc.stop();
  };
  try {
    const authn = writeAuthnConfig(dir, oidc.issuer, clientId, caCert, usernamePrefix);

    const etcdPort = await startEtcd(dir, bin, children, opts.timeoutMs ?? 60_000);

    const port = await freePort();
    const server = `https://127.0.0.1:${port}`;
    const apiLog = path.join(dir, "kube-apiserver.log");
    const api = startProcess(
      bin("kube-apiserver"),
      [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        `--secure-port=${port}`,
        `--cert-dir=${path.join(dir, "certs")}`,
        `--tls-cert-file=${serving.cert}`,
        `--tls-private-key-file=${serving.key}`,
        `--client-ca-file=${ca}`,
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        `--service-account-key-file=${path.join(pkiDir, "sa.pub")}`,
        `--service-account-signing-key-file=${path.join(pkiDir, "sa.key")}`,
        "--service-cluster-ip-range=10.96.0.0/24",
        "--authorization-mode=RBAC",
        // As kubeadm and k3s clusters run (their node agents need privileged pods): what keeps
        // a tenant's pods unprivileged is Pod Security admission on the namespace, not this.
        "--allow-privileged=true",
        // The "kubernetes" Service endpoints may not be a loopback address; nothing here needs them.
        "--endpoint-reconciler-type=none",
        `--authentication-config=${authn}`,
        "--profiling=false",
        "--v=1",
      ],
      { cwd: dir, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir }, log: apiLog, detached: false },
    );
    children.push(api);

    const adminKubeconfig = path.join(dir, "admin.kubeconfig");
    fs.writeFileSync(adminKubeconfig, clientKubeconfig(server, ca, admin.cert, admin.key, "admin"), { mode: 0o600 });
    const adminTls = { ca: caCert, cert: fs.readFileSync(admin.cert, "utf8"), key: fs.readFileSync(admin.key, "utf8") };
    const request = kubeRequester(server, caCert, adminTls);
    await waitFor("kube-apiserver", api, apiLog, opts.timeoutMs ?? 180_000, async () => (await request("GET", "/readyz")).status === 200);

    const controllerManager = opts.controllerManager ?? true;
    if (controllerManager) await startControllerManager({ dir, server, ca, pkiDir, cm, timeoutMs: opts.timeoutMs ?? 120_000 }, bin, children, request);

    const kubectlBin = bin("kubectl");
    const kubectl = kubectlRunner(kubectlBin, server, ca, adminKubeconfig, dir);
    return {
      server,
      caCert,
      adminKubeconfig,
      oidc,
      clientId,
      usernameClaim: "email",
      usernamePrefix,
      controllerManager,
      dir,
      kubectlBin,
      kubectl,
      request,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
