/**
 * Shared by the Forgejo suites: the real Gitea from dev/services.ts (a private infra repo
 * so anonymous git is refused), git over HTTP, the real Pulumi CLI with a file backend, and
 * throwaway unix users for the scripts that run "as the user".
 */
import * as assert from "node:assert/strict";
import { spawnSync, SpawnSyncOptions } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { ForgejoServer, ForgejoUser, requireToolchain, startForgejo } from "../../dev/services";
import { tempDir, withPrivateTmp } from "../../dev/tmp";

export const ROOT = path.resolve(__dirname, "../..");

/** A temp dir that goes when the test process ends (WS_KEEP_TMP=1 keeps it: dev/tmp.ts). */
export function tmp(prefix: string): string {
  return tempDir(`ws-fj-${prefix}-`);
}

/** The offline toolchain's environment (PATH with pulumi, PULUMI_HOME, …); fails without the CLI. */
export function cliEnv(): NodeJS.ProcessEnv {
  const tc = spawnSync("bash", [path.join(ROOT, "dev/toolchain"), "env"], { encoding: "utf8" });
  const env: NodeJS.ProcessEnv = { ...process.env, PULUMI_SKIP_UPDATE_CHECK: "true", PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true" };
  for (const line of tc.stdout.split("\n")) {
    const m = /^export ([A-Z_]+)="(.*)"$/.exec(line.trim());
    if (m) env[m[1]] = m[2].replace(/\$PATH/g, process.env.PATH ?? "");
  }
  // Never let a credential from the caller's environment stand in for the stack config.
  delete env.FORGEJO_ADMIN_USER;
  delete env.FORGEJO_ADMIN_PASSWORD;
  const v = spawnSync("pulumi", ["version"], { env, encoding: "utf8" });
  assert.equal(v.status, 0, "no Pulumi CLI: build it with bash dev/toolchain build pulumi");
  return env;
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  out: string;
}

export function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): Run {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 300_000, ...opts });
  const stdout = String(r.stdout ?? "");
  const stderr = String(r.stderr ?? "");
  return { code: r.status, stdout, stderr, out: `${stdout}\n${stderr}` };
}

export const GIT_ENV = {
  GIT_TERMINAL_PROMPT: "0",
  GIT_ASKPASS: "/bin/false",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_AUTHOR_NAME: "t",
  GIT_AUTHOR_EMAIL: "t@example.invalid",
  GIT_COMMITTER_NAME: "t",
  GIT_COMMITTER_EMAIL: "t@example.invalid",
};

/** git with a clean config (HOME = a temp dir unless given). */
export function git(args: string[], opts: { cwd?: string; home?: string; input?: string } = {}): Run {
  const home = opts.home ?? tmp("githome");
  return run("git", args, { cwd: opts.cwd, input: opts.input, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, ...GIT_ENV } });
}

export function gitOk(args: string[], opts: { cwd?: string; home?: string; input?: string } = {}): string {
  const r = git(args, opts);
  assert.equal(r.code, 0, `git ${args.join(" ")}:\n${r.out}`);
  return r.stdout.trim();
}

/** http://USER:SECRET@host/owner/repo.git for a server URL. */
export function authUrl(f: ForgejoServer, user: string, secret: string, repo = `${f.repo.owner}/${f.repo.name}`): string {
  const u = new URL(f.url);
  return `${u.protocol}//${encodeURIComponent(user)}:${encodeURIComponent(secret)}@${u.host}/${repo}.git`;
}

export function plainUrl(f: ForgejoServer, repo = `${f.repo.owner}/${f.repo.name}`): string {
  return `${f.url.replace(/\/+$/, "")}/${repo}.git`;
}

export interface Gitea {
  f: ForgejoServer;
  dir: string;
  users: Map<string, ForgejoUser>;
  user(name: string): Promise<ForgejoUser>;
  stop(): Promise<void>;
}

/** A fresh Gitea with a PRIVATE `<admin>/infra` repo (anonymous git is refused). */
export async function startGitea(name: string): Promise<Gitea> {
  requireToolchain([["forgejo", "gitea"]]);
  const dir = tmp(`gitea-${name}`);
  const f = await startForgejo({ dir });
  const r = await f.api("PATCH", `repos/${f.repo.owner}/${f.repo.name}`, { private: true });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const users = new Map<string, ForgejoUser>();
  return {
    f,
    dir,
    users,
    async user(n: string) {
      if (!users.has(n)) users.set(n, await f.createUser(n, `${n}@example.invalid`));
      return users.get(n)!;
    },
    async stop() {
      await f.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Creates a token for `user` with the admin's Basic auth (as the provider does), returns it. */
export async function adminToken(f: ForgejoServer, user: string, name: string, scopes = ["write:repository"]): Promise<string> {
  const res = await fetch(`${f.url}api/v1/users/${user}/tokens`, {
    method: "POST",
    headers: { Authorization: `Basic ${Buffer.from(`${f.adminUser}:${f.adminPassword}`).toString("base64")}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name, scopes }),
  });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return (JSON.parse(text) as { sha1: string }).sha1;
}

// ---------------------------------------------------------------------------------------
// A small Pulumi project under the real CLI.

export interface Project {
  dir: string;
  backend: string;
  env: NodeJS.ProcessEnv;
  stack: string;
  pulumi(args: string[], input?: string): Run;
  ok(args: string[], input?: string): string;
  config(key: string, value: string, secret?: boolean): void;
}

/** A TypeScript project (`index.ts` given) with a file backend and its own stack. */
export function project(name: string, indexTs: string, extraFiles: Record<string, string> = {}): Project {
  const dir = tmp(`proj-${name}`);
  fs.writeFileSync(
    path.join(dir, "Pulumi.yaml"),
    `name: fj-${name}\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n    tsconfig: tsconfig.json\nmain: index.ts\n`,
  );
  // The program's own deploy-time tsconfig (transpile only, ES2022), as `pulumi up` uses it.
  fs.copyFileSync(path.join(ROOT, "tsconfig.pulumi.json"), path.join(dir, "tsconfig.json"));
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: `fj-${name}`, main: "index.ts" }));
  fs.writeFileSync(path.join(dir, "index.ts"), indexTs);
  for (const [f, text] of Object.entries(extraFiles)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), text);
  }
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  const backend = path.join(dir, "state");
  fs.mkdirSync(backend);
  const env = withPrivateTmp({ ...cliEnv(), PULUMI_BACKEND_URL: `file://${backend}`, PULUMI_CONFIG_PASSPHRASE: crypto.randomBytes(12).toString("hex") }, dir);
  const stack = "t";
  const pulumi = (args: string[], input?: string) => run("pulumi", ["--non-interactive", "--color", "never", ...args], { cwd: dir, env, input });
  const ok = (args: string[], input?: string) => {
    const r = pulumi(args, input);
    assert.equal(r.code, 0, `pulumi ${args.join(" ")}:\n${r.out}`);
    return r.stdout;
  };
  ok(["stack", "init", stack]);
  const config = (key: string, value: string, secret = false) => ok(["config", "set", ...(secret ? ["--secret"] : []), key, "--", value]);
  return { dir, backend, env, stack, pulumi, ok, config };
}

/** Resources of the stack's state (the CLI's export, no secrets shown), without the stack and providers. */
export function stateResources(p: Project): Array<{ type: string; urn: string; id?: string; inputs: any; outputs: any }> {
  const exp = JSON.parse(p.ok(["stack", "export"]));
  return (exp.deployment.resources ?? []).filter((r: any) => r.type !== "pulumi:pulumi:Stack" && !r.type.startsWith("pulumi:providers:"));
}

/** "+ 3 created", "~ 1 updated", … counted from an up/preview summary. */
export function summary(out: string): Record<string, number> {
  const s: Record<string, number> = {};
  const section = out.split(/\nResources:\n/).pop() ?? "";
  // "    + 2 created", "    +-2 replaced", "    3 changes. 3 unchanged", "    6 unchanged"
  for (const m of section.matchAll(
    /^\s+(?:\+-|[+~-])?\s*(?:\d+ changes\. )?(\d+) (to create|created|to update|updated|to delete|deleted|to replace|replaced|unchanged)$/gm,
  ))
    s[m[2]] = Number(m[1]);
  return s;
}

// ---------------------------------------------------------------------------------------
// Throwaway unix users (the scripts write "as the user" with setpriv).

export interface LocalUser {
  name: string;
  uid: number;
  home: string;
  /** Runs bash as the user (login-like environment, HOME set), stdin optional. */
  sh(script: string, input?: string): Run;
  remove(): void;
}

export function requireRoot(): void {
  assert.equal(process.getuid?.(), 0, "this suite creates throwaway unix users and must run as root");
  for (const c of ["useradd", "userdel", "setpriv"]) assert.equal(run("bash", ["-c", `command -v ${c}`]).code, 0, `${c} is missing`);
}

export function createLocalUser(prefix = "wsfj"): LocalUser {
  requireRoot();
  const name = `${prefix}${crypto.randomBytes(3).toString("hex")}`;
  const base = tmp("home");
  fs.chmodSync(base, 0o755);
  const home = path.join(base, name);
  const r = run("useradd", ["--create-home", "--home-dir", home, "--shell", "/bin/bash", "--user-group", name]);
  assert.equal(r.code, 0, r.out);
  const uid = Number(run("id", ["-u", name]).stdout.trim());
  // setpriv --reset-env keeps only HOME, USER, SHELL, PATH…: git's identity and no-prompt go in the script.
  const gitExports = Object.entries(GIT_ENV)
    .map(([k, v]) => `export ${k}='${v}'`)
    .join("\n");
  const sh = (script: string, input?: string) =>
    run(
      "setpriv",
      [`--reuid=${uid}`, `--regid=${uid}`, "--init-groups", "--reset-env", "--", "/bin/bash", "-c", `set -euo pipefail\n${gitExports}\ncd\n${script}`],
      { input },
    );
  return {
    name,
    uid,
    home,
    sh,
    remove() {
      run("userdel", ["--remove", name]);
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}
