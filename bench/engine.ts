/**
 * `npm run bench:engine`: the main job under the real Pulumi engine, measured side by side in
 * one run (issue 12):
 *   - no-op `preview` and `up` of an empty program (the baseline: engine + language host start),
 *   - the same for the example roster, 20 users and 100 users (generated rosters), against the
 *     nspawn test host and a Vault dev server,
 *   - the state size per user (the file backend's checkpoint, divided by the active users),
 *   - the remote commands run for a one-user edit (they must be exactly that user's).
 * Program start-up with and without type-checking (tsconfig.json vs tsconfig.pulumi.json)
 * is measured first: it needs only the CLI. Then the Forgejo resources alone (dynamic
 * providers: no plugin), FORGEJO_USERS users (default 20) against the toolchain's Gitea, with
 * the first version of components/forgejo (its client serialised into each resource's state,
 * from git: FORGEJO_BASELINE, default 19ed79f) and with this one (a loader in the state): the
 * state per user and a no-op preview and up of each.
 *
 * Needs the offline toolchain's CLI and language host; the roster rows also need the command
 * and vault resource plugins. Where they are missing it prints what it could measure and
 * then fails (exit 1), naming what is missing, like the engine e2e suite.
 *
 *   npm run bench:engine                 (BENCH_SIZES=20,100 BENCH_RUNS=3 to change)
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as YAML from "yaml";
import { syntheticRoster } from "./eval";

const ROOT = path.resolve(__dirname, "..");
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SIZES = (process.env.BENCH_SIZES ?? "20,100")
  .split(",")
  .map(Number)
  .filter((n) => n > 0);

interface Row {
  case: string;
  users: number;
  previewMs?: number;
  upMs?: number;
  stateBytesPerUser?: number;
  note?: string;
}
const rows: Row[] = [];

function toolchainEnv(): NodeJS.ProcessEnv {
  const tc = spawnSync("bash", [path.join(ROOT, "dev/toolchain"), "env"], { encoding: "utf8" });
  const env: NodeJS.ProcessEnv = { ...process.env, PULUMI_SKIP_UPDATE_CHECK: "true", PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true" };
  for (const line of tc.stdout.split("\n")) {
    const m = /^export ([A-Z_]+)="(.*)"$/.exec(line.trim());
    if (m) env[m[1]] = m[2].replace(/\$PATH/g, process.env.PATH ?? "");
  }
  return env;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function pulumiIn(cwd: string, env: NodeJS.ProcessEnv, args: string[], allowFail = false): { ms: number; out: string; code: number } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync("pulumi", ["--non-interactive", "--color", "never", ...args], { cwd, env, encoding: "utf8", timeout: 30 * 60_000, maxBuffer: 256 << 20 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!allowFail && r.status !== 0) throw new Error(`pulumi ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { ms, out: `${r.stdout}\n${r.stderr}`, code: r.status ?? -1 };
}

/** Baseline: a program with no resources at all. */
function emptyProgram(env: NodeJS.ProcessEnv): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-bench-empty-"));
  fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: empty\nruntime:\n  name: nodejs\n  options:\n    typescript: false\nmain: index.js\n");
  fs.writeFileSync(path.join(dir, "index.js"), 'require("@pulumi/pulumi");\n');
  fs.writeFileSync(path.join(dir, "package.json"), '{"name":"empty","main":"index.js"}\n');
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  fs.mkdirSync(path.join(dir, "state"));
  const e = { ...env, PULUMI_BACKEND_URL: `file://${path.join(dir, "state")}`, PULUMI_CONFIG_PASSPHRASE: "bench" };
  pulumiIn(dir, e, ["stack", "init", "bench"]);
  pulumiIn(dir, e, ["up", "--yes", "--skip-preview"]);
  const pv = Array.from({ length: RUNS }, () => pulumiIn(dir, e, ["preview"]).ms);
  const up = Array.from({ length: RUNS }, () => pulumiIn(dir, e, ["up", "--yes"]).ms);
  rows.push({ case: "empty program (baseline)", users: 0, previewMs: median(pv), upMs: median(up) });
}

/**
 * Start-up of this program up to its roster check, with and without type-checking: an
 * invalid roster stops the program right after it is loaded, so the time is the engine,
 * the language host and loading (transpiling, or type-checking) the TypeScript.
 */
function startup(env: NodeJS.ProcessEnv): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-bench-start-"));
  for (const f of ["Pulumi.yaml", "index.ts", "tsconfig.json", "tsconfig.pulumi.json", "package.json", "components", "config", "scripts"])
    fs.cpSync(path.join(ROOT, f), path.join(dir, f), { recursive: true, filter: (src) => !src.split(path.sep).includes("dev") });
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  fs.writeFileSync(path.join(dir, "roster.yaml"), "version: 1\nusers: []\n");
  fs.mkdirSync(path.join(dir, "state"));
  const e = { ...env, PULUMI_BACKEND_URL: `file://${path.join(dir, "state")}`, PULUMI_CONFIG_PASSPHRASE: "bench", VAULT_TOKEN: "unused" };
  pulumiIn(dir, e, ["stack", "init", "bench"]);
  for (const [k, v] of [
    ["host", "127.0.0.1"],
    ["hostKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyForMocksOnly0000000000000000000"],
    ["vaultAddress", "http://127.0.0.1:9"],
    ["claudeClientId", "bench"],
  ])
    pulumiIn(dir, e, ["config", "set", `workstations:${k}`, "--", v]);
  pulumiIn(dir, e, ["config", "set", "--secret", "workstations:sshPrivateKey", "--", "not-a-key"]);
  const measure = (label: string, extra: NodeJS.ProcessEnv) => {
    const ms = Array.from({ length: RUNS }, () => {
      const r = pulumiIn(dir, { ...e, ...extra }, ["preview"], true);
      if (!/expected at least one user|users: expected/.test(r.out)) throw new Error(`startup bench: expected the roster check to stop the program:\n${r.out}`);
      return r.ms;
    });
    rows.push({ case: label, users: 0, previewMs: median(ms), note: "until the roster check stops it" });
  };
  measure("program start, type-checked (tsconfig.json)", { PULUMI_NODEJS_TRANSPILE_ONLY: "false" });
  measure("program start, transpile only (tsconfig.pulumi.json, the default)", {});
}

/** The program of the Forgejo rows: per user a write collaboration and a token; master's protection. */
const FORGEJO_PROGRAM = `import * as pulumi from "@pulumi/pulumi";
import { ForgejoAccessToken, ForgejoBranchProtection, ForgejoCollaborator } from "./forgejo/provider";
const cfg = new pulumi.Config("t");
const url = cfg.require("url");
const repo = cfg.require("repo");
const users = cfg.requireObject<string[]>("users");
const collaborators = users.map((u) => new ForgejoCollaborator(\`collab-\${u}\`, { url, repo, user: u, permission: "write" }));
users.forEach((u) => new ForgejoAccessToken(\`token-\${u}\`, { url, user: u, tokenName: "workstations-0" }));
new ForgejoBranchProtection("master", { url, repo, pushWhitelist: users, mergeWhitelist: users }, { dependsOn: collaborators });
`;

/** The Forgejo resources alone, with the first version of components/forgejo and with this one. */
async function forgejoRows(env: NodeJS.ProcessEnv): Promise<void> {
  const n = Number(process.env.FORGEJO_USERS ?? 20);
  const baseline = process.env.FORGEJO_BASELINE ?? "19ed79f";
  const { startForgejo } = await import("../dev/services");
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ws-bench-forgejo-"));
  const f = await startForgejo({ dir: path.join(tmp, "gitea") });
  try {
    const users = Array.from({ length: n }, (_, i) => `benchuser${i}`);
    for (const u of users) await f.createUser(u, `${u}@example.invalid`);
    const versions: Array<[string, Record<string, string>]> = [];
    const first: Record<string, string> = {};
    for (const file of ["api.ts", "provider.ts", "version.ts"]) {
      const r = spawnSync("git", ["-C", ROOT, "show", `${baseline}:components/forgejo/${file}`], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`bench:engine: the first Forgejo provider (git show ${baseline}:components/forgejo/${file}) is needed: ${r.stderr}`);
      first[file] = r.stdout;
    }
    versions.push([`Forgejo resources only, first version (client in the state, ${baseline})`, first]);
    const now: Record<string, string> = {};
    for (const file of ["api.js", "providers.js", "provider.ts"]) now[file] = fs.readFileSync(path.join(ROOT, "components/forgejo", file), "utf8");
    versions.push(["Forgejo resources only, this version (a loader in the state)", now]);
    for (const [label, files] of versions) {
      const dir = fs.mkdtempSync(path.join(tmp, "proj-"));
      fs.writeFileSync(
        path.join(dir, "Pulumi.yaml"),
        "name: fj-bench\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n    tsconfig: tsconfig.json\nmain: index.ts\n",
      );
      fs.copyFileSync(path.join(ROOT, "tsconfig.pulumi.json"), path.join(dir, "tsconfig.json"));
      fs.writeFileSync(path.join(dir, "package.json"), '{"name":"fj-bench","main":"index.ts"}\n');
      fs.writeFileSync(path.join(dir, "index.ts"), FORGEJO_PROGRAM);
      fs.mkdirSync(path.join(dir, "forgejo"));
      for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, "forgejo", file), text);
      fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
      fs.mkdirSync(path.join(dir, "state"));
      const e: NodeJS.ProcessEnv = { ...env, PULUMI_BACKEND_URL: `file://${path.join(dir, "state")}`, PULUMI_CONFIG_PASSPHRASE: "bench" };
      delete e.FORGEJO_ADMIN_USER; // the stack config's credential, not the caller's
      delete e.FORGEJO_ADMIN_PASSWORD;
      pulumiIn(dir, e, ["stack", "init", "bench"]);
      pulumiIn(dir, e, ["config", "set", "t:url", "--", f.url]);
      pulumiIn(dir, e, ["config", "set", "t:repo", "--", `${f.repo.owner}/${f.repo.name}`]);
      pulumiIn(dir, e, ["config", "set", "t:users", "--", JSON.stringify(users)]);
      pulumiIn(dir, e, ["config", "set", "workstations:forgejoAdminUser", "--", f.adminUser]);
      pulumiIn(dir, e, ["config", "set", "--secret", "workstations:forgejoAdminPassword", "--", f.adminPassword]);
      pulumiIn(dir, e, ["up", "--yes", "--skip-preview"]);
      const pv = Array.from({ length: RUNS }, () => pulumiIn(dir, e, ["preview", "--expect-no-changes"]).ms);
      const up = Array.from({ length: RUNS }, () => pulumiIn(dir, e, ["up", "--yes", "--expect-no-changes"]).ms);
      const checkpoint = path.join(dir, "state", ".pulumi", "stacks", "fj-bench", "bench.json");
      rows.push({ case: label, users: n, previewMs: median(pv), upMs: median(up), stateBytesPerUser: Math.round(fs.statSync(checkpoint).size / n) });
      pulumiIn(dir, e, ["destroy", "--yes"]);
    }
  } finally {
    await f.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function withRoster(label: string, rosterDoc: unknown): Promise<void> {
  const { changeCollector, setupE2E } = await import("../dev/e2e");
  const e = await setupE2E(`bench-${label.replace(/[^a-z0-9]+/gi, "-")}`, rosterDoc);
  try {
    await e.stack.up({ color: "never" });
    const pv: number[] = [];
    const up: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      let t0 = Date.now();
      await e.stack.preview({ color: "never" });
      pv.push(Date.now() - t0);
      t0 = Date.now();
      const r = await e.stack.up({ color: "never" });
      up.push(Date.now() - t0);
      const changed = Object.entries(r.summary.resourceChanges ?? {}).filter(([k, n]) => k !== "same" && n);
      if (changed.length) throw new Error(`${label}: a no-op up changed ${JSON.stringify(changed)}`);
    }
    const users = (rosterDoc as { users: Array<{ state?: string }> }).users.filter((u) => u.state !== "offboarded").length;
    const stacks = path.join(e.audit.backendDir, ".pulumi", "stacks");
    const checkpoint = fs
      .readdirSync(stacks, { recursive: true })
      .map(String)
      .find((f) => f.endsWith("e2e.json"));
    const bytes = checkpoint ? fs.statSync(path.join(stacks, checkpoint)).size : NaN;
    rows.push({ case: label, users, previewMs: median(pv), upMs: median(up), stateBytesPerUser: Math.round(bytes / Math.max(users, 1)) });
    // a one-user edit: which remote commands ran
    const doc = rosterDoc as { users: Array<{ name: string; state?: string; groups?: string[] }> };
    const target = doc.users.find((u) => u.state !== "offboarded" && u.name !== doc.users[0].name)!;
    target.groups = [...(target.groups ?? []), "audio"];
    e.writeRoster(doc);
    const c = changeCollector();
    await e.stack.up({ color: "never", onEvent: c.onEvent });
    const ran = c.changed.map((x) => `${x.op} ${x.urn.split("::").pop()}`);
    rows.push({ case: `${label}: one-user edit (${target.name})`, users, note: `ran: ${ran.join(", ") || "nothing"}` });
  } finally {
    await e.stop();
  }
}

function print(): void {
  const base = rows.find((r) => r.users === 0 && r.case.startsWith("empty"));
  console.log("| case | users | no-op preview | vs empty | no-op up | state per user | note |");
  console.log("| --- | --- | --- | --- | --- | --- | --- |");
  for (const r of rows) {
    const ratio = base?.previewMs && r.previewMs ? `${(r.previewMs / base.previewMs).toFixed(2)}x` : "";
    const f = (ms?: number) => (ms === undefined ? "" : `${(ms / 1000).toFixed(2)} s`);
    console.log(
      `| ${r.case} | ${r.users} | ${f(r.previewMs)} | ${ratio} | ${f(r.upMs)} | ${r.stateBytesPerUser === undefined ? "" : `${(r.stateBytesPerUser / 1024).toFixed(1)} KB`} | ${r.note ?? ""} |`,
    );
  }
}

async function main(): Promise<void> {
  const env = toolchainEnv();
  if (spawnSync("pulumi", ["version"], { env }).status !== 0) {
    console.error("bench:engine: no Pulumi CLI; build it with: bash dev/toolchain build pulumi");
    process.exit(1);
  }
  Object.assign(process.env, env);
  emptyProgram(env);
  startup(env);
  await forgejoRows(env);
  const { loadToolchainEnv } = await import("../dev/toolchain-env");
  try {
    loadToolchainEnv();
  } catch (e) {
    print();
    console.error(`bench:engine: the roster rows need the resource plugins: ${(e as Error).message}`);
    process.exit(1);
  }
  const example = YAML.parse(fs.readFileSync(path.join(ROOT, "roster.example.yaml"), "utf8"));
  await withRoster("example roster", example);
  for (const n of SIZES) await withRoster(`${n} users`, YAML.parse(syntheticRoster(n)));
  print();
}

void main().catch((e) => {
  print();
  console.error(`bench:engine failed: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
