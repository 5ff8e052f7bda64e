/**
 * A real Woodpecker 3.17.0 for tests and benchmarks: the server on SQLite with the toolchain's
 * Gitea (dev/services.ts startForgejo with `oauth2: true`) as its forge, and one agent with the
 * `local` backend, which runs each step on this machine. The binaries come from the toolchain
 * (`dev/toolchain build woodpecker` extracts ../shared/woodpecker/bin's checked tarball).
 *
 * What the local backend does with a workflow (woodpecker 3.17.0, checked here):
 * - a commands step runs `<image> -e -c <script>`: the image NAMES THE SHELL and must be an
 *   executable (`sh`, `bash`); a Docker image reference fails the step (`exec: "docker.io/…":
 *   stat …: no such file`). The workflows take their images from `${WORKSTATIONS_CI_SHELL:-…}`,
 *   and this harness sets `WORKSTATIONS_CI_SHELL=bash` server-wide (WOODPECKER_ENVIRONMENT).
 * - the clone step runs `plugin-git` from the agent's PATH (the clone image is ignored);
 * - every step inherits the agent's environment: the agent gets an explicit one (PATH with
 *   the toolchain, PULUMI_HOME, npm's cache), never the caller's, so no credential of the test
 *   process reaches a pipeline except through a Woodpecker secret.
 *
 * The first API token needs one OAuth login (loginToken): Gitea's sign-in form, Woodpecker's
 * /authorize, Gitea's grant form, the callback, the CSRF token of /web-config.js, then
 * POST /api/user/token. Secrets are added with woodpecker-cli, values from files.
 *
 * Beyond ../shared/woodpecker/bin/README.md's recipe (written without a running Gitea), found
 * here: Gitea must be an OAuth2 provider (`[oauth2] ENABLED`; off, the app is created but
 * /login/oauth/authorize answers 403); Gitea 1.26's forms carry no `_csrf`; the server's
 * /healthz answers 204; the agent needs WOODPECKER_BACKEND_LOCAL_ISOLATED_HOME=true for netrc
 * (a private repository's clone) and its own HOME; a repository cancels running `push`
 * pipelines by default; a push made just before `repo add` can still start a pipeline
 * (Gitea queues webhooks); a step filtered out by `when` is absent from the pipeline.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as YAML from "yaml";
import { FakeSlack, startFakeSlack } from "./fakes/slack";
import {
  cacheDir,
  ForgejoServer,
  ForgejoUser,
  freePort,
  randomSecret,
  requireToolchain,
  startForgejo,
  startProcess,
  Started,
  startVault,
  stopPid,
  toolchainBinDir,
  ToolchainMissingError,
  VaultServer,
  waitFor,
} from "./services";
import { boot, createHost, destroyHost, TestHost } from "./testhost/testhost";
import { loadToolchainEnv } from "./toolchain-env";
import { sleep } from "./wait";
import { privateTmp, tempDir } from "./tmp";

export const WOODPECKER_VERSION = "3.17.0";
export const WOODPECKER_BINARIES = ["woodpecker-server", "woodpecker-agent", "woodpecker-cli", "plugin-git"] as const;
export type WoodpeckerBinary = (typeof WOODPECKER_BINARIES)[number];
const HINT = "bash dev/toolchain build woodpecker (needs WORKSTATIONS_WOODPECKER_DIR, set by dev/setup when ../shared/woodpecker/bin exists)";

function executable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The path of a Woodpecker binary: the toolchain's, else one on PATH; null when neither. */
export function findWoodpeckerBinary(name: WoodpeckerBinary): string | null {
  const dirs = [toolchainBinDir(), ...(process.env.PATH ?? "").split(":").filter(Boolean)];
  for (const d of dirs) if (executable(path.join(d, name))) return path.join(d, name);
  return null;
}

/** Every Woodpecker binary, or a ToolchainMissingError naming the first missing one. */
export function requireWoodpecker(): Record<WoodpeckerBinary, string> {
  const out = {} as Record<WoodpeckerBinary, string>;
  for (const b of WOODPECKER_BINARIES) {
    const p = findWoodpeckerBinary(b);
    if (!p) throw new ToolchainMissingError(`${b} (Woodpecker ${WOODPECKER_VERSION}; ${HINT})`, [path.join(toolchainBinDir(), b), "PATH"]);
    out[b] = p;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// A cookie-keeping HTTP client, for the one OAuth login

interface Page {
  url: string;
  status: number;
  text: string;
}

/** fetch with a cookie jar per origin and redirects followed by hand (cookies on every hop). */
export class Browser {
  private readonly jar = new Map<string, Map<string, string>>();

  cookie(origin: string, name: string): string | undefined {
    return this.jar.get(origin)?.get(name);
  }

  private store(url: URL, res: Response): void {
    const jar = this.jar.get(url.origin) ?? new Map<string, string>();
    this.jar.set(url.origin, jar);
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(";");
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=(0|-)/i.test(a)) || value === "";
      if (expired) jar.delete(name);
      else jar.set(name, value);
    }
  }

  async request(url: string, o: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Page> {
    let u = new URL(url);
    let method = o.method ?? (o.form ? "POST" : "GET");
    let body: string | undefined = o.form ? new URLSearchParams(o.form).toString() : undefined;
    for (let hop = 0; hop < 15; hop++) {
      const cookies = [...(this.jar.get(u.origin) ?? new Map()).entries()].map(([k, v]) => `${k}=${v}`).join("; ");
      const headers: Record<string, string> = { ...(hop === 0 ? o.headers : {}), ...(cookies ? { cookie: cookies } : {}) };
      if (body !== undefined) headers["content-type"] = "application/x-www-form-urlencoded";
      const res = await fetch(u, { method, headers, body, redirect: "manual" });
      this.store(u, res);
      const loc = res.headers.get("location");
      if (res.status >= 300 && res.status < 400 && loc) {
        await res.text();
        u = new URL(loc, u);
        method = "GET";
        body = undefined;
        continue;
      }
      return { url: u.toString(), status: res.status, text: await res.text() };
    }
    throw new Error(`too many redirects from ${url}`);
  }
}

/** The hidden inputs of the first <form> whose action ends with `action`, by name. */
export function formFields(html: string, action: string): Record<string, string> | null {
  const forms = html.match(/<form\b[\s\S]*?<\/form>/gi) ?? [];
  const form = forms.find((f) => new RegExp(`action="[^"]*${action.replace(/[/.]/g, "\\$&")}"`).test(f));
  if (!form) return null;
  const out: Record<string, string> = {};
  for (const input of form.match(/<input\b[^>]*>/gi) ?? []) {
    const name = /\bname="([^"]*)"/.exec(input)?.[1];
    const type = /\btype="([^"]*)"/.exec(input)?.[1] ?? "text";
    if (name && type === "hidden") out[name] = (/\bvalue="([^"]*)"/.exec(input)?.[1] ?? "").replace(/&amp;/g, "&").replace(/&#34;|&quot;/g, '"');
  }
  return out;
}

/**
 * One OAuth login of `user` through Gitea into Woodpecker, and a Woodpecker API token for
 * them (README of ../shared/woodpecker/bin, as checked against Gitea 1.26).
 */
export async function loginToken(wpUrl: string, forgeUrl: string, user: string, password: string): Promise<string> {
  const b = new Browser();
  const forge = forgeUrl.replace(/\/$/, "");
  const login = await b.request(`${forge}/user/login`);
  // Gitea 1.26's forms carry no _csrf field (it checks the request's origin instead); older
  // versions' hidden fields, _csrf included, are sent back as they came.
  const fields = formFields(login.text, "/user/login");
  if (!fields) throw new Error(`no sign-in form at ${login.url} (HTTP ${login.status})`);
  const signedIn = await b.request(`${forge}/user/login`, { form: { ...fields, user_name: user, password } });
  if (/name="password"/.test(signedIn.text)) throw new Error(`Gitea sign-in of ${user} failed (HTTP ${signedIn.status} at ${signedIn.url})`);
  let page = await b.request(`${wpUrl}/authorize`);
  const grant = formFields(page.text, "/login/oauth/grant");
  if (grant) page = await b.request(`${forge}/login/oauth/grant`, { form: { ...grant, granted: "true" } });
  if (!b.cookie(new URL(wpUrl).origin, "user_sess"))
    throw new Error(`Woodpecker set no session after the OAuth callback (HTTP ${page.status} at ${page.url}): ${page.text.slice(0, 300)}`);
  const config = await b.request(`${wpUrl}/web-config.js`);
  const wpCsrf = /WOODPECKER_CSRF\s*=\s*"([^"]+)"/.exec(config.text)?.[1];
  if (!wpCsrf) throw new Error("no WOODPECKER_CSRF in /web-config.js");
  const tok = await b.request(`${wpUrl}/api/user/token`, { method: "POST", headers: { "X-CSRF-TOKEN": wpCsrf } });
  if (tok.status !== 200 || !/^[\w.-]{20,}$/.test(tok.text.trim())) throw new Error(`POST /api/user/token: HTTP ${tok.status} ${tok.text.slice(0, 200)}`);
  return tok.text.trim();
}

// ---------------------------------------------------------------------------------------
// Server and agent

export interface WpStep {
  id: number;
  pid: number;
  ppid: number;
  name: string;
  state: string;
  exit_code: number;
  error?: string;
  started?: number;
  finished?: number;
  type?: string;
}
export interface WpWorkflow {
  id: number;
  pid: number;
  name: string;
  state: string;
  error?: string;
  started?: number;
  finished?: number;
  children?: WpStep[];
}
export interface WpPipeline {
  id: number;
  number: number;
  event: string;
  status: string;
  branch: string;
  commit: string;
  ref: string;
  author: string;
  message: string;
  created: number;
  started: number;
  finished: number;
  errors?: Array<{ message: string; type?: string; is_warning?: boolean }>;
  workflows?: WpWorkflow[];
}
export interface WpRepo {
  id: number;
  full_name: string;
  forge_remote_id: string;
  require_approval?: string;
}

/** Pipeline states that are final. */
export const DONE = new Set(["success", "failure", "killed", "error", "declined", "skipped"]);

export interface StartWoodpeckerOptions {
  /** Working dir (database, logs, agent workspaces); created if missing. */
  dir: string;
  /** A Gitea/Forgejo started with `oauth2: true`; its site admin is Woodpecker's admin. */
  forge: ForgejoServer;
  /** Server-wide environment (WOODPECKER_ENVIRONMENT): substituted into workflows and given to every step. */
  environment?: Record<string, string>;
  /** The agent's environment beyond PATH and its own settings (steps inherit it). */
  agentEnv?: Record<string, string>;
  /** Workflows the agent runs at once (default 2, so that a missing `concurrency` would show). */
  maxWorkflows?: number;
  timeoutMs?: number;
}

export interface Woodpecker {
  url: string;
  token: string;
  adminLogin: string;
  serverLog: string;
  agentLog: string;
  /** API call with the admin's token (path relative to /api). */
  api<T = any>(method: string, apiPath: string, body?: unknown): Promise<T>;
  /** woodpecker-cli with the server and token in its environment; resolves to stdout. */
  cli(args: string[]): Promise<string>;
  /** `woodpecker-cli repo add` of a Gitea repository; the repository as Woodpecker knows it. */
  activate(owner: string, name: string): Promise<WpRepo>;
  /** `woodpecker-cli repo secret add … --value @FILE` (the value never in argv). */
  addSecret(repo: string, name: string, value: string, events: string[]): Promise<void>;
  pipelines(repoId: number): Promise<WpPipeline[]>;
  pipeline(repoId: number, n: number): Promise<WpPipeline>;
  /** The log of one step, as text (Woodpecker prints `+ command` before each command). */
  stepLog(repoId: number, n: number, stepId: number): Promise<string>;
  stop(): Promise<void>;
}

/** The SQLite parameters the README's CI section gives the team's server too. */
export const SQLITE_DSN_PARAMS = "_busy_timeout=30000&_txlock=immediate&_journal_mode=WAL";

function serverEnv(
  o: StartWoodpeckerOptions,
  ports: { http: number; grpc: number },
  secrets: { agent: string; grpc: string },
  oauth: { client: string; secret: string },
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: o.dir,
    WOODPECKER_HOST: `http://127.0.0.1:${ports.http}`,
    WOODPECKER_SERVER_ADDR: `127.0.0.1:${ports.http}`,
    WOODPECKER_GRPC_ADDR: `127.0.0.1:${ports.grpc}`,
    WOODPECKER_AGENT_SECRET: secrets.agent,
    WOODPECKER_GRPC_SECRET: secrets.grpc,
    WOODPECKER_DATABASE_DRIVER: "sqlite3",
    // Gitea posts a burst of webhooks at once (a branch push, its `create`, a pull request, a
    // queued older push). On the plain file name the server answered one of them HTTP 500
    // "failed to save pipeline … database is locked" (Gitea does not redeliver: the push never
    // got its pipeline). go-sqlite3 takes these from the name: wait for the lock, start every
    // transaction as a writer (no deadlocked read-to-write upgrade), readers beside the writer.
    WOODPECKER_DATABASE_DATASOURCE: `${path.join(o.dir, "woodpecker.sqlite")}?${SQLITE_DSN_PARAMS}`,
    WOODPECKER_GITEA: "true",
    WOODPECKER_GITEA_URL: o.forge.url.replace(/\/$/, ""),
    WOODPECKER_GITEA_CLIENT: oauth.client,
    WOODPECKER_GITEA_SECRET: oauth.secret,
    WOODPECKER_ADMIN: o.forge.adminUser,
    WOODPECKER_OPEN: "false",
    WOODPECKER_DISABLE_VERSION_CHECK: "true",
    WOODPECKER_LOG_LEVEL: "info",
  };
  const vars = Object.entries(o.environment ?? {});
  for (const [k, v] of vars) if (/[,:]/.test(v) || /[,:]/.test(k)) throw new Error(`WOODPECKER_ENVIRONMENT cannot hold ${k}=${v} (no , or : allowed)`);
  if (vars.length) env.WOODPECKER_ENVIRONMENT = vars.map(([k, v]) => `${k}:${v}`).join(",");
  return env;
}

function agentEnv(o: StartWoodpeckerOptions, grpc: number, agentSecret: string, health: number): NodeJS.ProcessEnv {
  const node = path.dirname(process.execPath);
  return {
    PATH: [toolchainBinDir(), node, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"].join(":"),
    HOME: path.join(o.dir, "agent-home"),
    LANG: "C.UTF-8",
    // the agent machine's temp dir: what the steps leave there goes with the harness
    TMPDIR: privateTmp(path.join(o.dir, "agent-home")),
    ...o.agentEnv,
    WOODPECKER_SERVER: `127.0.0.1:${grpc}`,
    WOODPECKER_AGENT_SECRET: agentSecret,
    WOODPECKER_BACKEND: "local",
    WOODPECKER_BACKEND_LOCAL_TEMP_DIR: path.join(o.dir, "workspaces"),
    WOODPECKER_BACKEND_LOCAL_ISOLATED_HOME: "true",
    WOODPECKER_AGENT_CONFIG_FILE: path.join(o.dir, "agent.conf"),
    WOODPECKER_HEALTHCHECK_ADDR: `127.0.0.1:${health}`,
    WOODPECKER_MAX_WORKFLOWS: String(o.maxWorkflows ?? 2),
    WOODPECKER_HOSTNAME: `ws-local-${process.pid}`,
    WOODPECKER_LOG_LEVEL: "info",
  };
}

/** Gitea's OAuth2 application for Woodpecker (confidential, redirect exactly `<host>/authorize`). */
async function oauthApp(forge: ForgejoServer, wpUrl: string): Promise<{ client: string; secret: string }> {
  const r = await forge.api("POST", "user/applications/oauth2", {
    name: `woodpecker-${process.pid}`,
    redirect_uris: [`${wpUrl}/authorize`],
    confidential_client: true,
  });
  const j = r.json as { client_id?: string; client_secret?: string };
  if (r.status !== 201 || !j.client_id || !j.client_secret) throw new Error(`creating Gitea's OAuth2 app failed: HTTP ${r.status} ${JSON.stringify(r.json)}`);
  return { client: j.client_id, secret: j.client_secret };
}

/** Starts the server and the agent, logs the forge's admin in and returns a client with their token. */
export async function startWoodpecker(o: StartWoodpeckerOptions): Promise<Woodpecker> {
  const bin = requireWoodpecker();
  for (const d of ["workspaces", "agent-home", "secrets"]) fs.mkdirSync(path.join(o.dir, d), { recursive: true, mode: 0o700 });
  for (const f of ["woodpecker.sqlite", "woodpecker.sqlite-wal", "woodpecker.sqlite-shm"]) fs.rmSync(path.join(o.dir, f), { force: true });
  fs.rmSync(path.join(o.dir, "agent.conf"), { force: true });
  const ports = { http: await freePort(), grpc: await freePort() };
  const url = `http://127.0.0.1:${ports.http}`;
  const secrets = { agent: randomSecret(24), grpc: randomSecret(24) };
  const oauth = await oauthApp(o.forge, url);
  const serverLog = path.join(o.dir, "server.log");
  const agentLog = path.join(o.dir, "agent.log");
  const started: Started[] = [];
  const stop = async () => {
    for (const s of started.reverse()) await stopPid(s.pid);
  };
  try {
    const server = startProcess(bin["woodpecker-server"], [], { cwd: o.dir, env: serverEnv(o, ports, secrets, oauth), log: serverLog, detached: false });
    started.push(server);
    await waitFor("woodpecker-server", server, serverLog, o.timeoutMs ?? 60_000, async () => (await fetch(`${url}/healthz`)).ok);
    const agent = startProcess(bin["woodpecker-agent"], [], {
      cwd: o.dir,
      env: agentEnv(o, ports.grpc, secrets.agent, await freePort()),
      log: agentLog,
      detached: false,
    });
    started.push(agent);
    const token = await loginToken(url, o.forge.url, o.forge.adminUser, o.forge.adminPassword);
    const wp = client(url, token, o, bin["woodpecker-cli"], { serverLog, agentLog, stop });
    await waitFor("woodpecker-agent to register", agent, agentLog, o.timeoutMs ?? 60_000, async () => (await wp.api<unknown[]>("GET", "agents")).length > 0);
    return wp;
  } catch (e) {
    await stop();
    throw e;
  }
}

function runCli(cli: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cli, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("error", reject);
    p.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`woodpecker-cli ${args.join(" ")}: exit ${code}\n${out}${err}`))));
  });
}

function client(
  url: string,
  token: string,
  o: StartWoodpeckerOptions,
  cli: string,
  x: { serverLog: string; agentLog: string; stop: () => Promise<void> },
): Woodpecker {
  const api = async <T>(method: string, apiPath: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${url}/api/${apiPath.replace(/^\//, "")}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`woodpecker ${method} ${apiPath}: HTTP ${res.status} ${text.slice(0, 500)}`);
    return (text ? JSON.parse(text) : null) as T;
  };
  const cliEnv = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: o.dir,
    WOODPECKER_SERVER: url,
    WOODPECKER_TOKEN: token,
    WOODPECKER_DISABLE_UPDATE_CHECK: "true",
  };
  const wp: Woodpecker = {
    url,
    token,
    adminLogin: o.forge.adminUser,
    ...x,
    api,
    cli: (args) => runCli(cli, args, cliEnv),
    async activate(owner, name) {
      const remote = await o.forge.api("GET", `repos/${owner}/${name}`);
      if (remote.status !== 200) throw new Error(`no Gitea repository ${owner}/${name}: HTTP ${remote.status}`);
      await wp.cli(["repo", "add", String((remote.json as { id: number }).id)]);
      return api<WpRepo>("GET", `repos/lookup/${owner}/${name}`);
    },
    async addSecret(repo, name, value, events) {
      const file = path.join(o.dir, "secrets", `${name}.${process.pid}`);
      fs.writeFileSync(file, value, { mode: 0o600 });
      try {
        await wp.cli(["repo", "secret", "add", "--repository", repo, "--name", name, "--value", `@${file}`, ...events.flatMap((e) => ["--event", e])]);
      } finally {
        fs.rmSync(file, { force: true });
      }
    },
    pipelines: (repoId) => api<WpPipeline[]>("GET", `repos/${repoId}/pipelines?perPage=100`),
    pipeline: (repoId, n) => api<WpPipeline>("GET", `repos/${repoId}/pipelines/${n}`),
    async stepLog(repoId, n, stepId) {
      const lines = await api<Array<{ data?: string }> | null>("GET", `repos/${repoId}/logs/${n}/${stepId}`);
      return (lines ?? []).map((l) => Buffer.from(l.data ?? "", "base64").toString("utf8")).join("\n");
    },
  };
  return wp;
}

// ---------------------------------------------------------------------------------------
// This repository on the real Woodpecker, deploying to a test host

export const REPO_ROOT = path.resolve(__dirname, "..");
export const GIT_ENV = { GIT_AUTHOR_NAME: "ci-test", GIT_AUTHOR_EMAIL: "ci@test", GIT_COMMITTER_NAME: "ci-test", GIT_COMMITTER_EMAIL: "ci@test" };

/** A scratch repository holding HEAD plus the working changes, committed on master. */
export function snapshotRepo(dir = tempDir("ws-pipe-src-")): string {
  const list = execFileSync("git", ["-C", REPO_ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"], { encoding: "utf8" });
  for (const f of new Set(list.split("\0").filter(Boolean))) {
    const from = path.join(REPO_ROOT, f);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(from);
    } catch {
      continue; // tracked but deleted in the working tree
    }
    const to = path.join(dir, f);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(from), to);
    else if (st.isFile()) fs.copyFileSync(from, to);
  }
  const git = (...a: string[]) => execFileSync("git", ["-C", dir, ...a], { encoding: "utf8", env: { ...process.env, ...GIT_ENV } });
  git("init", "-q", "-b", "master");
  git("add", "-A");
  git("commit", "-qm", "HEAD plus working changes");
  return dir;
}

/** Who pushes: the roster's admin (the forge's site admin) or a non-admin collaborator. */
export type Pusher = "admin" | "nonAdmin";

export interface DeployEnv {
  dir: string;
  forge: ForgejoServer;
  wp: Woodpecker;
  repo: WpRepo;
  host: TestHost;
  vault: VaultServer;
  slack: FakeSlack;
  /** The non-admin collaborator (the roster's power-user `emo`, Forgejo login `ebarzin`). */
  nonAdmin: ForgejoUser;
  /** A clone of the Gitea repository (remote `origin`), where tests commit and push. */
  work: string;
  /** Values no log may contain. */
  secrets: string[];
  git(...args: string[]): string;
  /** Commits every change in the work clone as `author`; the new commit's sha. */
  commitAll(message: string, author?: Pusher): string;
  /** Edits the work clone's roster (a YAML document) and commits; the new commit's sha. */
  commitRoster(message: string, edit: (roster: any) => void, author?: Pusher): string;
  push(refspec: string, as: Pusher): void;
  /** The pipeline of `sha` for `event`, once finished, with its workflows and steps. */
  finished(sha: string, event: string, timeoutMs?: number): Promise<WpPipeline>;
  /** Step name -> log, for every step of the pipeline. */
  logs(p: WpPipeline): Promise<Map<string, string>>;
  /**
   * `pulumi ARGS` on stack devvm in a fresh checkout of origin/master, as an admin runs it: the
   * deploy key set as the README says (`pulumi config set --secret … < key`).
   */
  pulumi(args: string[]): { code: number | null; out: string };
  stop(): Promise<void>;
}

export interface DeployEnvOptions {
  /** Names the work dir and the test host. */
  name: string;
  /** The roster the pushed repository holds (roster.yaml). */
  roster: unknown;
}

export function gitAuthEnv(header: string): NodeJS.ProcessEnv {
  // The credential travels in the environment (git's GIT_CONFIG_*), never on a command line.
  return { ...process.env, ...GIT_ENV, GIT_TERMINAL_PROMPT: "0", GIT_CONFIG_COUNT: "1", GIT_CONFIG_KEY_0: "http.extraHeader", GIT_CONFIG_VALUE_0: header };
}

/** The stack `devvm` of the pushed repository: a file backend here, config pointing at the test host. */
function initStack(src: string, o: { backend: string; passphrase: string; host: TestHost; vault: VaultServer }): NodeJS.ProcessEnv {
  const env = { ...process.env, PULUMI_BACKEND_URL: o.backend, PULUMI_CONFIG_PASSPHRASE: o.passphrase, PULUMI_SKIP_UPDATE_CHECK: "true" };
  const pulumi = (...a: string[]) => execFileSync("pulumi", a, { cwd: src, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  pulumi("stack", "init", "devvm", "--secrets-provider", "passphrase");
  const config = {
    host: "127.0.0.1",
    sshPort: String(o.host.port),
    hostKey: o.host.hostKey,
    vaultAddress: o.vault.addr,
    claudeClientId: "woodpecker-test-client-id",
  };
  for (const [k, v] of Object.entries(config)) pulumi("config", "set", "--stack", "devvm", `workstations:${k}`, "--", v);
  return env;
}

/** The agent's environment: what the pinned images would carry (the Pulumi CLI and plugins, npm with a warm cache). */
function stepEnvironment(): Record<string, string> {
  const env: Record<string, string> = {
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    npm_config_cache: path.join(os.homedir(), ".npm"),
    npm_config_prefer_offline: "true",
    npm_config_update_notifier: "false",
  };
  if (process.env.PULUMI_HOME) env.PULUMI_HOME = process.env.PULUMI_HOME;
  return env;
}

/** Starts everything, in parallel where it can; on a failure stops what started and throws. */
async function startParts(
  dir: string,
  name: string,
  stops: Array<() => Promise<void>>,
): Promise<{ forge: ForgejoServer; host: TestHost; vault: VaultServer; slack: FakeSlack }> {
  const track = <T>(p: Promise<T>, stop: (v: T) => Promise<void>) =>
    p.then((v) => {
      stops.push(() => stop(v));
      return v;
    });
  const parts = await Promise.allSettled([
    track(startForgejo({ dir: path.join(dir, "gitea"), adminUser: "viktor", adminEmail: "viktor@example.com", oauth2: true }), (f) => f.stop()),
    track(createHost(`wp-${name}`), (h) => destroyHost(h)).then(async (h) => (await boot(h), h)),
    track(startVault({ dir: path.join(dir, "vault") }), (v) => v.stop()),
    track(startFakeSlack(), (s) => s.stop()),
  ] as const);
  const failed = parts.find((p) => p.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  const [forge, host, vault, slack] = parts.map((p) => (p as PromiseFulfilledResult<unknown>).value) as [ForgejoServer, TestHost, VaultServer, FakeSlack];
  return { forge, host, vault, slack };
}

/** This repository (HEAD plus working changes) with the test roster and stack devvm, force-pushed to viktor/infra. */
function pushRepository(
  dir: string,
  o: DeployEnvOptions,
  p: { forge: ForgejoServer; host: TestHost; vault: VaultServer; backend: string; passphrase: string },
): string {
  const src = path.join(dir, "src");
  fs.mkdirSync(src, { recursive: true });
  snapshotRepo(src);
  fs.writeFileSync(path.join(src, "roster.yaml"), YAML.stringify(o.roster));
  initStack(src, p);
  const remote = `${p.forge.url}${p.forge.repo.owner}/${p.forge.repo.name}.git`;
  const env = gitAuthEnv(`Authorization: token ${p.forge.adminToken}`);
  const git = (cwd: string, ...a: string[]) => execFileSync("git", a, { cwd, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  git(src, "add", "-A");
  // `[ci skip]`: Gitea delivers a push's webhook from a queue, sometimes after the repository
  // was activated (seen: a deploy pipeline for this very push); the tests start from no pipeline.
  git(src, "commit", "-qm", "devvm: the test host, its Vault and the test roster [ci skip]");
  git(src, "push", "-q", "--force", remote, "master");
  const work = path.join(dir, "work");
  git(dir, "clone", "-q", remote, work);
  return work;
}

/**
 * The whole deploy path on one machine: Gitea (site admin `viktor`, repo viktor/infra holding
 * this repository), a Woodpecker server and local agent, a booted test host, a Vault dev
 * server, a fake Slack, a file state backend; the repository activated and its secrets added
 * with woodpecker-cli (events: push only, as the README says).
 */
export async function startDeployEnv(o: DeployEnvOptions): Promise<DeployEnv> {
  loadToolchainEnv(); // fails naming what is missing: the CLI, the plugins, Vault
  requireWoodpecker();
  const dir = path.join(cacheDir(), "woodpecker", `${o.name}-${process.pid}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    stops.length = 0;
    // WS_KEEP_TMP=1 keeps the servers' data (woodpecker.sqlite holds every step's log) for a post-mortem.
    if (process.env.WS_KEEP_TMP !== "1") fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const { forge, host, vault, slack } = await startParts(dir, o.name, stops);
    const wp = await startWoodpecker({ dir: path.join(dir, "woodpecker"), forge, environment: { WORKSTATIONS_CI_SHELL: "bash" }, agentEnv: stepEnvironment() });
    stops.push(() => wp.stop());
    const nonAdmin = await forge.createUser("ebarzin", "emo@example.com");
    const collab = await forge.api("PUT", `repos/${forge.repo.owner}/${forge.repo.name}/collaborators/${nonAdmin.name}`, { permission: "write" });
    if (collab.status !== 204) throw new Error(`making ${nonAdmin.name} a collaborator failed: HTTP ${collab.status}`);
    fs.mkdirSync(path.join(dir, "state"), { mode: 0o700 });
    const backend = `file://${path.join(dir, "state")}`;
    const passphrase = randomSecret(24);
    const work = pushRepository(dir, o, { forge, host, vault, backend, passphrase });
    const repo = await wp.activate(forge.repo.owner, forge.repo.name);
    // The team's repository settings (README "CI (Woodpecker)"): Woodpecker 3.x cancels a
    // running pipeline when a newer one of the same event arrives (push, pull_request by
    // default); a newer master push would kill a running `pulumi up` (a half-applied deploy
    // and a locked stack). Pushes are never cancelled: `concurrency` queues the next deploy.
    await wp.api("PATCH", `repos/${repo.id}`, { cancel_previous_pipeline_events: ["pull_request"] });
    const secrets: Record<string, string> = {
      pulumi_backend_url: backend,
      pulumi_config_passphrase: passphrase,
      // A file backend reads no S3 keys, and no forgejoUrl is configured; the workflows
      // reference these secrets, so they exist (Woodpecker fails a pipeline whose secret is missing).
      state_access_key_id: "unused-by-a-file-backend",
      state_secret_access_key: "unused-by-a-file-backend",
      forgejo_admin_password: "unused-without-forgejoUrl",
      devvm_ssh_private_key: host.privateKey,
      vault_token: vault.rootToken,
      slack_webhook: slack.webhookUrl,
    };
    for (const [n, v] of Object.entries(secrets)) await wp.addSecret(repo.full_name, n, v, ["push"]);
    const ctx = { dir, forge, wp, repo, host, vault, slack, nonAdmin, work, backend, passphrase };
    return deployEnv(ctx, stop, [passphrase, vault.rootToken, slack.webhookUrl, host.privateKey.split("\n")[1]]);
  } catch (e) {
    await stop();
    throw e;
  }
}

interface DeployCtx {
  dir: string;
  forge: ForgejoServer;
  wp: Woodpecker;
  repo: WpRepo;
  host: TestHost;
  vault: VaultServer;
  slack: FakeSlack;
  nonAdmin: ForgejoUser;
  work: string;
  backend: string;
  passphrase: string;
}

const AUTHORS: Record<Pusher, { name: string; email: string }> = {
  admin: { name: "Viktor", email: "viktor@example.com" },
  nonAdmin: { name: "Emo Barzin", email: "emo@example.com" },
};

/** The server's lines about a webhook it could not turn into a pipeline. */
export function hookErrors(serverLog: string): string[] {
  const text = fs.existsSync(serverLog) ? fs.readFileSync(serverLog, "utf8") : "";
  // "ignoring hook: …" (a `[ci skip]`, `when` filtering out every step) is logged at the same
  // level and is no error; a 5xx on /api/hook is one (Gitea never redelivers it).
  return text
    .split("\n")
    .filter((l) => /"path":"\/api\/hook","status":5/.test(l) || (/could not create pipeline|failed to save pipeline/.test(l) && !/ignoring hook/.test(l)));
}

/**
 * Waits for the pipeline of `sha` and `event` to exist (a webhook makes it within seconds;
 * after `createMs` the wait stops and names the server's webhook errors: Gitea never
 * redelivers a hook the server refused), then to finish.
 */
export async function finishedPipeline(wp: Woodpecker, repoId: number, sha: string, event: string, timeoutMs: number, createMs = 180_000): Promise<WpPipeline> {
  const start = Date.now();
  let seen: WpPipeline | undefined;
  while (Date.now() < start + timeoutMs) {
    seen = (await wp.pipelines(repoId)).find((p) => p.commit === sha && p.event === event);
    if (seen && DONE.has(seen.status)) return wp.pipeline(repoId, seen.number);
    if (!seen && Date.now() > start + createMs) break;
    await sleep(1000);
  }
  const where = seen
    ? `timed out after ${timeoutMs} ms: pipeline #${seen.number} is still ${seen.status}`
    : `no ${event} pipeline for ${sha.slice(0, 8)} after ${Math.round((Date.now() - start) / 1000)} s (was the webhook delivered?); the server's webhook errors: ${JSON.stringify(hookErrors(wp.serverLog))}`;
  throw new Error(`${where}; server log ${wp.serverLog}, agent log ${wp.agentLog}`);
}

function deployEnv(c: DeployCtx, stop: () => Promise<void>, secrets: string[]): DeployEnv {
  const remote = `${c.forge.url}${c.forge.repo.owner}/${c.forge.repo.name}.git`;
  const auth: Record<Pusher, string> = {
    admin: `Authorization: token ${c.forge.adminToken}`,
    nonAdmin: `Authorization: Basic ${Buffer.from(`${c.nonAdmin.name}:${c.nonAdmin.password}`).toString("base64")}`,
  };
  const git = (...a: string[]) =>
    execFileSync("git", a, { cwd: c.work, env: gitAuthEnv(auth.admin), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  const commitAll = (message: string, author: Pusher = "admin") => {
    const a = AUTHORS[author];
    const env = { ...process.env, GIT_AUTHOR_NAME: a.name, GIT_AUTHOR_EMAIL: a.email, GIT_COMMITTER_NAME: a.name, GIT_COMMITTER_EMAIL: a.email };
    execFileSync("git", ["commit", "-qam", message], { cwd: c.work, env });
    return git("rev-parse", "HEAD");
  };
  return {
    ...c,
    secrets,
    git,
    commitAll,
    commitRoster(message, edit, author = "admin") {
      const file = path.join(c.work, "roster.yaml");
      const doc = YAML.parse(fs.readFileSync(file, "utf8"));
      edit(doc);
      fs.writeFileSync(file, YAML.stringify(doc));
      return commitAll(message, author);
    },
    push(refspec, as) {
      execFileSync("git", ["push", "-q", remote, refspec], { cwd: c.work, env: gitAuthEnv(auth[as]), stdio: ["ignore", "pipe", "pipe"] });
    },
    finished: (sha, event, timeoutMs = 1_800_000) => finishedPipeline(c.wp, c.repo.id, sha, event, timeoutMs),
    async logs(p) {
      // The agent streams a step's lines apart from its state: a finished step's log can still
      // be arriving (seen: `up` finished, its log cut after "Previewing update"). Read every
      // step until two reads a second apart agree.
      const steps = (p.workflows ?? []).flatMap((w) => w.children ?? []);
      const read = async () => new Map(await Promise.all(steps.map(async (s) => [s.name, await c.wp.stepLog(c.repo.id, p.number, s.id)] as const)));
      let out = await read();
      for (let i = 0; i < 30; i++) {
        await new Promise((res) => setTimeout(res, 1000));
        const again = await read();
        if ([...again].every(([k, v]) => out.get(k) === v)) break;
        out = again;
      }
      return out;
    },
    pulumi(args) {
      const co = fs.mkdtempSync(path.join(c.dir, "checkout-"));
      try {
        execFileSync("git", ["clone", "-q", "--branch", "master", remote, co], { env: gitAuthEnv(auth.admin), stdio: ["ignore", "pipe", "pipe"] });
        fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(co, "node_modules"));
        const env = {
          ...process.env,
          TMPDIR: privateTmp(c.dir),
          PULUMI_BACKEND_URL: c.backend,
          PULUMI_CONFIG_PASSPHRASE: c.passphrase,
          VAULT_TOKEN: c.vault.rootToken,
          PULUMI_SKIP_UPDATE_CHECK: "true",
        };
        const key = spawnSync("pulumi", ["config", "set", "--secret", "--stack", "devvm", "workstations:sshPrivateKey"], {
          cwd: co,
          env,
          input: c.host.privateKey,
          encoding: "utf8",
        });
        if (key.status !== 0) return { code: key.status, out: `${key.stdout}${key.stderr}` };
        const r = spawnSync("pulumi", args, { cwd: co, env, encoding: "utf8", timeout: 900_000, maxBuffer: 64 * 1024 * 1024 });
        return { code: r.status, out: `${r.stdout}${r.stderr}` };
      } finally {
        fs.rmSync(co, { recursive: true, force: true });
      }
    },
    stop,
  };
}

/** Why the real-Woodpecker suite cannot run here (a missing binary), or undefined. */
export function woodpeckerMissing(): string | undefined {
  try {
    loadToolchainEnv();
    requireWoodpecker();
    requireToolchain([["forgejo", "gitea"]]);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
