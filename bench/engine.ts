/**
 * `npm run bench:engine`: the main job under the real Pulumi engine, with every surface on
 * (the nspawn host, Vault, Forgejo on the toolchain's Gitea, Kubernetes on its API server),
 * measured side by side in one run (issues 12 and 25):
 *   - no-op `preview` and `up` of an empty program (the baseline: engine + language host start),
 *   - the program's start until its roster check stops it: through ts-node (the engine's
 *     TypeScript support, as before) and through components/start.js (the transpile cache, now),
 *   - for the example roster and generated rosters of BENCH_SIZES users (default 20,100; 250
 *     is not in the default: its first up ran over 20 min here, the engine at 5 GB with a
 *     9.6 MB checkpoint): a no-op preview and up, the state per user (the file backend's
 *     checkpoint divided by the active users), a one-user edit (which resources it touched and how many remote commands
 *     ran on the host: sshd's logins as root), and, for 100 users, onboarding one more user;
 *   - the same for BENCH_BEFORE_SIZES (default 20,100) with the program at BENCH_BASELINE (git,
 *     default 4974438: before issue 25), so before and after are in the same run;
 *   - the floor: for each after row, a program of as many do-nothing resources (floorRows), so
 *     the engine's and the SDK's own cost per resource is beside the program's; and a
 *     one-resource edit of it, with the engine's checkpoint after each step and without
 *     (PULUMI_SKIP_CHECKPOINTS), so what the checkpoint writes cost an edit is apart.
 * The Forgejo rows of issue 12 (the Forgejo resources alone, the first provider version from
 * git against the loader) run with BENCH_FORGEJO=1. The machine's load is printed with the table.
 *
 * Needs the offline toolchain's CLI, plugins, Vault, Gitea and kube-apiserver; where something
 * is missing it prints what it could measure and then fails (exit 1), naming it.
 *
 *   npm run bench:engine       (BENCH_SIZES=20,100 BENCH_BEFORE_SIZES= BENCH_RUNS=3 to change;
 *                               BENCH_FLOOR_ONLY=291,1395,3455: the empty program and the floor alone)
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import * as YAML from "yaml";
import { syntheticRoster } from "./eval";
import { ed25519Key } from "../dev/sshkeys";
import { tempDir } from "../dev/tmp";

const ROOT = path.resolve(__dirname, "..");
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const sizes = (v: string) =>
  v
    .split(",")
    .map(Number)
    .filter((n) => n > 0);
const SIZES = sizes(process.env.BENCH_SIZES ?? "20,100");
const BEFORE_SIZES = sizes(process.env.BENCH_BEFORE_SIZES ?? "20,100");
const BASELINE = process.env.BENCH_BASELINE ?? "4974438";

interface Row {
  case: string;
  users: number;
  previewMs?: number;
  upMs?: number;
  stateBytesPerUser?: number;
  note?: string;
}
const rows: Row[] = [];
/** Each row as it is measured too (a run of hours, or one cut off, still leaves its figures). */
function addRow(r: Row): void {
  rows.push(r);
  const f = (ms?: number) => (ms === undefined ? "" : `${(ms / 1000).toFixed(2)} s`);
  console.log(`# row: ${r.case} | ${r.users} users | preview ${f(r.previewMs)} | up ${f(r.upMs)} | ${r.stateBytesPerUser ?? ""} B/user | ${r.note ?? ""}`);
}

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
  const dir = tempDir("ws-bench-empty-");
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
  addRow({ case: "empty program (baseline)", users: 0, previewMs: median(pv), upMs: median(up) });
}

/** The Pulumi.yaml of the program as it was before the transpile cache: the engine's ts-node. */
const TS_NODE_PULUMI_YAML = `name: workstations
runtime:
  name: nodejs
  options:
    typescript: true
    tsconfig: tsconfig.pulumi.json
`;

/**
 * Start-up of this program up to its roster check: an invalid roster stops the program right
 * after it is loaded, so the time is the engine, the language host and loading the program:
 * through the engine's ts-node (transpile only, the way before) and through components/start.js
 * (the transpile cache, warm).
 */
function startup(env: NodeJS.ProcessEnv): void {
  const dir = tempDir("ws-bench-start-");
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
  const measure = (label: string) => {
    pulumiIn(dir, e, ["preview"], true); // warm the caches (the transpile cache, the OS's)
    const ms = Array.from({ length: RUNS }, () => {
      const r = pulumiIn(dir, e, ["preview"], true);
      if (!/expected at least one user|users: expected/.test(r.out)) throw new Error(`startup bench: expected the roster check to stop the program:\n${r.out}`);
      return r.ms;
    });
    addRow({ case: label, users: 0, previewMs: median(ms), note: "until the roster check stops it" });
  };
  const yaml = fs.readFileSync(path.join(dir, "Pulumi.yaml"), "utf8");
  fs.writeFileSync(path.join(dir, "Pulumi.yaml"), TS_NODE_PULUMI_YAML);
  measure("before: program start through the engine's ts-node (transpile only)");
  fs.writeFileSync(path.join(dir, "Pulumi.yaml"), yaml);
  measure("after: program start through components/start.js (transpile cache)");
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
  const tmp = tempDir("ws-bench-forgejo-");
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
    now["../loaderProvider.ts"] = fs.readFileSync(path.join(ROOT, "components/loaderProvider.ts"), "utf8");
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
      addRow({ case: label, users: n, previewMs: median(pv), upMs: median(up), stateBytesPerUser: Math.round(fs.statSync(checkpoint).size / n) });
      pulumiIn(dir, e, ["destroy", "--yes"]);
    }
  } finally {
    await f.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Counts the engine's writes of a file-backend checkpoint from now until the returned stop: each
 * write is a temp file renamed onto `checkpoint`, so one rename event each. The kernel queues the
 * events while a synchronous spawn blocks, so a pulumiIn between start and stop is counted too.
 */
function countWrites(checkpoint: string): () => Promise<number> {
  let writes = 0;
  const watcher = fs.watch(path.dirname(checkpoint), (event, name) => {
    if (event === "rename" && name === path.basename(checkpoint)) writes++;
  });
  return async () => {
    await new Promise((r) => setTimeout(r, 200)); // the last rename's event
    watcher.close();
    return writes;
  };
}

/**
 * A one-resource edit of the floor program of `n` resources (c0's create changes): an `up`
 * as the engine runs it by default, which writes the whole checkpoint after each step, beside
 * the same `up` with PULUMI_SKIP_CHECKPOINTS=true (the engine's switch that writes only the
 * final one), alternating, RUNS of each. What the first costs more is the checkpoint writes.
 */
async function floorEdit(dir: string, e: NodeJS.ProcessEnv, n: number): Promise<void> {
  const checkpoint = path.join(dir, "state", ".pulumi", "stacks", "floor", "bench.json");
  const runs: Record<"checkpoints" | "skip", Array<{ ms: number; writes: number }>> = { checkpoints: [], skip: [] };
  for (let i = 0; i < RUNS; i++) {
    for (const mode of ["checkpoints", "skip"] as const) {
      pulumiIn(dir, e, ["config", "set", "floor:edit", "--", ` # ${mode} ${i}`]);
      const stop = countWrites(checkpoint);
      const { ms } = pulumiIn(dir, mode === "skip" ? { ...e, PULUMI_SKIP_CHECKPOINTS: "true" } : e, ["up", "--yes", "--skip-preview"]);
      runs[mode].push({ ms, writes: await stop() });
    }
  }
  const kb = (fs.statSync(checkpoint).size / 1024).toFixed(0);
  const summary = (xs: Array<{ ms: number; writes: number }>) =>
    `${(median(xs.map((x) => x.ms)) / 1000).toFixed(2)} s, ${median(xs.map((x) => x.writes))} checkpoint writes`;
  addRow({
    case: `floor: one-resource edit, ${n} resources`,
    users: 0,
    upMs: median(runs.checkpoints.map((x) => x.ms)),
    note: `checkpoint ${kb} KB; by default ${summary(runs.checkpoints)}; with PULUMI_SKIP_CHECKPOINTS=true ${summary(runs.skip)}`,
  });
}

/** The floor rows' sizes: each after row's resource count (with its users), or BENCH_FLOOR_ONLY's. */
const floorSizes: Array<{ n: number; users?: number }> = [];

/** The floor program: `n` do-nothing resources, loaded the way this program is (components/start.js). */
const FLOOR_INDEX = `import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
const cfg = new pulumi.Config("floor");
const n = Number(cfg.require("n"));
const edit = cfg.get("edit") ?? ""; // a shell comment on c0's create: the one-resource edit
for (let i = 0; i < n; i++) new command.local.Command(\`c\${i}\`, { create: i === 0 ? \`true\${edit}\` : "true", addPreviousOutputInEnv: false });
`;

/**
 * The floor: what any program with as many resources as this one's stack costs the engine and
 * the SDK here. `n` command.local resources whose create is \`true\`, started through
 * components/start.js (so with the same SDK treatment: the transpile cache, unmapped promise
 * stacks, no SDK debug messages), no dependencies, no secrets, no remote host. The no-op
 * preview of this program is the least a stack of `n` resources costs; what this program pays
 * above it is the program's own.
 */
async function floorRows(env: NodeJS.ProcessEnv): Promise<void> {
  const base = rows.find((r) => r.users === 0 && r.case.startsWith("empty"));
  const dir = tempDir("ws-bench-floor-");
  fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: floor\nruntime:\n  name: nodejs\n  options:\n    typescript: false\nmain: components/start.js\n");
  fs.mkdirSync(path.join(dir, "components"));
  fs.copyFileSync(path.join(ROOT, "components/start.js"), path.join(dir, "components/start.js"));
  fs.copyFileSync(path.join(ROOT, "tsconfig.pulumi.json"), path.join(dir, "tsconfig.pulumi.json"));
  fs.writeFileSync(path.join(dir, "index.ts"), FLOOR_INDEX);
  fs.writeFileSync(path.join(dir, "package.json"), '{"name":"floor","main":"components/start.js"}\n');
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  fs.mkdirSync(path.join(dir, "state"));
  const e = { ...env, PULUMI_BACKEND_URL: `file://${path.join(dir, "state")}`, PULUMI_CONFIG_PASSPHRASE: "bench" };
  pulumiIn(dir, e, ["stack", "init", "bench"]);
  try {
    for (const { n, users } of [...floorSizes].sort((a, b) => a.n - b.n)) {
      pulumiIn(dir, e, ["config", "set", "floor:n", String(n)]);
      pulumiIn(dir, e, ["up", "--yes", "--skip-preview"]);
      const pv = Array.from({ length: RUNS }, () => pulumiIn(dir, e, ["preview", "--expect-no-changes"]).ms);
      const ms = median(pv);
      const prog = users === undefined ? undefined : rows.find((r) => r.case.startsWith("after") && r.users === users && r.previewMs !== undefined);
      const per = base?.previewMs ? (ms - base.previewMs) / n : NaN;
      // How many resources a 1.5x / 2.5x goal leaves room for at this floor's cost per resource.
      const room = (x: number) => (base?.previewMs ? Math.floor((x * base.previewMs - base.previewMs) / per) : NaN);
      addRow({
        case: `floor: ${n} do-nothing resources${users === undefined ? "" : ` (as many as the ${users}-user stack)`}`,
        users: 0,
        previewMs: ms,
        note: `${per.toFixed(1)} ms per resource over the empty program;${prog?.previewMs ? ` the program is ${((prog.previewMs - ms) / 1000).toFixed(2)} s above it;` : ""} at this cost 1.5x leaves room for ${room(1.5)} resources, 2.5x for ${room(2.5)}`,
      });
      await floorEdit(dir, e, n);
    }
  } finally {
    // Nothing outside `dir` exists (the commands have no delete): no destroy, which rewrites
    // the checkpoint after each of the n deletes.
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

type Doc = { users: Array<{ name: string; uid: number; state?: string; groups?: string[] } & Record<string, unknown>> };

/**
 * Runs `up` and reports what it touched, how many remote commands ran for it (sshd's logins as
 * root) and, given the stack's checkpoint file, how many times the engine wrote it.
 */
async function measuredUp(e: import("../dev/e2e").E2E, checkpoint?: string): Promise<{ ms: number; touched: string[]; remote: number; writes: number }> {
  const { changeCollector, rootLogins, urnName } = await import("../dev/e2e");
  const before = await rootLogins(e);
  const c = changeCollector();
  const stop = checkpoint ? countWrites(checkpoint) : async () => NaN;
  const t0 = Date.now();
  let writes: Promise<number>;
  try {
    await e.up({ onEvent: c.onEvent });
  } finally {
    writes = stop();
  }
  const ms = Date.now() - t0;
  const remote = (await rootLogins(e)) - before - 1; // the count's own login
  return { ms, touched: c.changed.map((x) => `${x.op} ${urnName(x.urn)}`), remote, writes: await writes };
}

async function withRoster(label: string, rosterDoc: Doc, source?: string): Promise<void> {
  const { setupE2E } = await import("../dev/e2e");
  const e = await setupE2E(`bench-${label.replace(/[^a-z0-9]+/gi, "-")}`, rosterDoc, { source });
  try {
    let t0 = Date.now();
    await e.up();
    const firstUpMs = Date.now() - t0;
    const pv: number[] = [];
    const up: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      t0 = Date.now();
      await e.preview({ expectNoChanges: true });
      pv.push(Date.now() - t0);
      t0 = Date.now();
      await e.stack.up({ color: "never", expectNoChanges: true });
      up.push(Date.now() - t0);
    }
    const users = rosterDoc.users.filter((u) => u.state !== "offboarded").length;
    const stacks = path.join(e.audit.backendDir, ".pulumi", "stacks");
    const checkpoint = fs
      .readdirSync(stacks, { recursive: true })
      .map(String)
      .find((f) => f.endsWith("e2e.json"));
    const bytes = checkpoint ? fs.statSync(path.join(stacks, checkpoint)).size : NaN;
    const gzipped = checkpoint ? zlib.gzipSync(fs.readFileSync(path.join(stacks, checkpoint))).length : NaN;
    const resources = checkpoint ? JSON.parse(fs.readFileSync(path.join(stacks, checkpoint), "utf8")).checkpoint.latest.resources.length : NaN;
    if (checkpoint) stateBreakdown(label, path.join(stacks, checkpoint), users);
    if (!source) floorSizes.push({ n: resources, users });
    addRow({
      case: label,
      users,
      previewMs: median(pv),
      upMs: median(up),
      stateBytesPerUser: Math.round(bytes / Math.max(users, 1)),
      note: `${resources} resources, state ${(bytes / 1024).toFixed(0)} KB (${(gzipped / 1024).toFixed(0)} KB gzipped, about what PULUMI_DIY_BACKEND_GZIP=true stores); up from scratch ${(firstUpMs / 1000).toFixed(1)} s`,
    });
    // A one-user edit: what it touched, and how many remote commands ran on the host.
    const target = rosterDoc.users.find((u) => u.state !== "offboarded" && u.name !== rosterDoc.users[0].name)!;
    target.groups = [...(target.groups ?? []), "audio"];
    e.writeRoster(rosterDoc);
    const file = checkpoint && path.join(stacks, checkpoint);
    const edit = await measuredUp(e, file);
    const others = edit.touched.filter((t) => !new RegExp(`^\\S+ ${target.name}(-|$)`).test(t));
    // The same edit undone, with the engine writing only the final checkpoint (floorEdit).
    target.groups = target.groups.filter((g) => g !== "audio");
    e.writeRoster(rosterDoc);
    process.env.PULUMI_SKIP_CHECKPOINTS = "true";
    const undo = await measuredUp(e, file).finally(() => delete process.env.PULUMI_SKIP_CHECKPOINTS);
    addRow({
      case: `${label}: one-user edit (${target.name}'s groups)`,
      users,
      upMs: edit.ms,
      note: `touched: ${edit.touched.join(", ") || "nothing"}${others.length ? ` (NOT only ${target.name}'s: ${others.join(", ")})` : ""}; remote commands: ${edit.remote}; checkpoint writes: ${edit.writes}; undone with PULUMI_SKIP_CHECKPOINTS=true: ${(undo.ms / 1000).toFixed(2)} s, touched ${undo.touched.join(", ") || "nothing"}, ${undo.writes} checkpoint writes`,
    });
    if (users >= 100) {
      const uid = Math.max(...rosterDoc.users.map((u) => u.uid)) + 1;
      const n = `user${rosterDoc.users.length}`;
      rosterDoc.users.push({ name: n, uid, role: "power-user", email: `${n}@example.com`, forgejo: n, sshKeys: [ed25519Key(`${n}@bench`)] });
      e.writeRoster(JSON.parse(JSON.stringify(rosterDoc)));
      const onboard = await measuredUp(e);
      addRow({
        case: `${label}: onboard one user (${n})`,
        users: users + 1,
        upMs: onboard.ms,
        note: `created ${onboard.touched.length} resources; remote commands: ${onboard.remote}`,
      });
    }
  } finally {
    await e.stop();
  }
}

/**
 * Where the state's bytes are: per resource type, the checkpoint's bytes (as the file backend
 * of the CLI 3.277.0 writes them: compact JSON) split into inputs, outputs and the rest
 * (URNs, dependencies, ...).
 */
function stateBreakdown(label: string, file: string, users: number): void {
  const resources = JSON.parse(fs.readFileSync(file, "utf8")).checkpoint.latest.resources as Array<Record<string, unknown>>;
  const size = (v: unknown) => Buffer.byteLength(JSON.stringify(v) ?? "");
  const byType = new Map<string, { n: number; inputs: number; outputs: number; rest: number }>();
  for (const r of resources) {
    const t = byType.get(String(r.type)) ?? { n: 0, inputs: 0, outputs: 0, rest: 0 };
    t.n++;
    t.inputs += size(r.inputs);
    t.outputs += size(r.outputs);
    t.rest += size({ ...r, inputs: undefined, outputs: undefined });
    byType.set(String(r.type), t);
  }
  const lines = [...byType].sort((a, b) => b[1].inputs + b[1].outputs + b[1].rest - (a[1].inputs + a[1].outputs + a[1].rest));
  breakdowns.push(
    [
      `${label}: where the state's bytes are (per user: /${users}; inputs / outputs / the rest: URNs, dependencies, ...)`,
      "| type | resources | inputs | outputs | rest | total per user |",
      "| --- | --- | --- | --- | --- | --- |",
      ...lines.map(
        ([type, t]) =>
          `| ${type} | ${t.n} | ${(t.inputs / 1024).toFixed(1)} KB | ${(t.outputs / 1024).toFixed(1)} KB | ${(t.rest / 1024).toFixed(1)} KB | ${((t.inputs + t.outputs + t.rest) / 1024 / users).toFixed(2)} KB |`,
      ),
    ].join("\n"),
  );
}
const breakdowns: string[] = [];

const loads: string[] = [];
const loadavg = () => loads.push(fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" "));

function print(): void {
  const base = rows.find((r) => r.users === 0 && r.case.startsWith("empty"));
  console.log(`machine: ${os.cpus().length} cores; load (1, 5, 15 min) at the start and after each part: ${loads.join(" | ")}`);
  console.log("| case | users | no-op preview | vs empty | no-op up | state per user | note |");
  console.log("| --- | --- | --- | --- | --- | --- | --- |");
  for (const r of rows) {
    const ratio = base?.previewMs && r.previewMs ? `${(r.previewMs / base.previewMs).toFixed(2)}x` : "";
    const f = (ms?: number) => (ms === undefined ? "" : `${(ms / 1000).toFixed(2)} s`);
    console.log(
      `| ${r.case} | ${r.users} | ${f(r.previewMs)} | ${ratio} | ${f(r.upMs)} | ${r.stateBytesPerUser === undefined ? "" : `${(r.stateBytesPerUser / 1024).toFixed(1)} KB`} | ${r.note ?? ""} |`,
    );
  }
  for (const b of breakdowns) console.log(`\n${b}`);
}

async function main(): Promise<void> {
  const env = toolchainEnv();
  if (spawnSync("pulumi", ["version"], { env }).status !== 0) {
    console.error("bench:engine: no Pulumi CLI; build it with: bash dev/toolchain build pulumi");
    process.exit(1);
  }
  Object.assign(process.env, env);
  loadavg();
  emptyProgram(env);
  const floorOnly = sizes(process.env.BENCH_FLOOR_ONLY ?? "");
  if (floorOnly.length) {
    // The floor alone (no host, no services): the empty program and do-nothing stacks of these sizes.
    floorSizes.push(...floorOnly.map((n) => ({ n })));
    await floorRows(env);
    loadavg();
    return print();
  }
  startup(env);
  loadavg();
  if (process.env.BENCH_FORGEJO === "1") await forgejoRows(env);
  const { loadToolchainEnv } = await import("../dev/toolchain-env");
  try {
    loadToolchainEnv();
  } catch (e) {
    print();
    console.error(`bench:engine: the roster rows need the resource plugins: ${(e as Error).message}`);
    process.exit(1);
  }
  const example = YAML.parse(fs.readFileSync(path.join(ROOT, "roster.example.yaml"), "utf8"));
  await withRoster("after: example roster", example);
  loadavg();
  const { projectAt } = await import("../dev/e2e");
  const baseline = BEFORE_SIZES.length ? projectAt(BASELINE) : "";
  for (const n of [...new Set([...SIZES, ...BEFORE_SIZES])].sort((a, b) => a - b)) {
    if (BEFORE_SIZES.includes(n)) {
      await withRoster(`before (${BASELINE}): ${n} users`, YAML.parse(syntheticRoster(n)), baseline);
      loadavg();
    }
    if (SIZES.includes(n)) {
      await withRoster(`after: ${n} users`, YAML.parse(syntheticRoster(n)));
      loadavg();
    }
  }
  await floorRows(env);
  loadavg();
  print();
}

void main().catch((e) => {
  print();
  console.error(`bench:engine failed: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
