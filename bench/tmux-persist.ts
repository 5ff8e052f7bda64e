/**
 * Wall time of `tmux-persist save` and `tmux-persist restore` against real tmux servers of
 * throwaway local users (as in tests/tmux), before and after, in ONE run. Needs root.
 *
 *   npm run bench:tmux
 *
 * Cases (same per-user shape): BENCH_USERS users x BENCH_PANES panes (default 10 x 20 = 200
 * panes), then BENCH_LARGE_USERS users (default 50: the first case's users plus 40 more, so
 * 1000 panes; 0 skips the case).
 * Per user: 4 sessions x (a window of ceil(n/2) panes + a window of the rest). Every other
 * pane is a claude stand-in (`exec -a claude sleep`, cheap; the node fake would cost ~40 MB
 * per pane) in its own project dir, with a transcript created after it started, so save
 * resolves a uuid for each; the other panes run the user's login shell (bash).
 * Each save run writes into an empty state dir (a full write, not the "unchanged" shortcut);
 * each restore run starts as after a reboot: no tmux servers and no sockets (tmux leaves its
 * socket behind when the server exits; at boot systemd-tmpfiles empties /tmp). Times include
 * node start-up of the script (that is what the units pay).
 *
 * "before" is the script of BENCH_BASELINE (a git revision, default HEAD; its scripts/
 * extracted with `git archive` into a temp dir, the single-file layout of before issue 9 or
 * the scripts/agents tree). When that script is the working tree's own (or
 * BENCH_BASELINE=none), "before" restore is the working tree's script with --per-pane (one
 * tmux call per step, the pre-batching path) and "before" save is not measured. Before and
 * after runs alternate, so load on the machine hits both alike.
 *
 * Knobs: BENCH_RUNS (7) runs of each measurement in the first case, BENCH_LARGE_RUNS (5)
 * in the large case, BENCH_USERS (10), BENCH_PANES (20), BENCH_LARGE_USERS (50),
 * BENCH_BASELINE (HEAD), BENCH_LARGE_RESTORE (1; 0 measures only save in the large case).
 */
import { spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as L from "../dev/tmux";

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const LARGE_RUNS = Number(process.env.BENCH_LARGE_RUNS ?? 5);
const USERS = Number(process.env.BENCH_USERS ?? 10);
const PANES = Number(process.env.BENCH_PANES ?? 20);
const LARGE_USERS = Number(process.env.BENCH_LARGE_USERS ?? 50);
const BASELINE = process.env.BENCH_BASELINE ?? "HEAD";
const LARGE_RESTORE = (process.env.BENCH_LARGE_RESTORE ?? "1") !== "0";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
/** CPU ms of this process's reaped children (the script and what it waited for) */
function childCpuMs(): number {
  const s = fs.readFileSync("/proc/self/stat", "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[13]) + Number(f[14])) * 1000) / 100; // cutime + cstime, USER_HZ 100
}
let lastCpu = 0;
function timed(f: () => L.TPResult): number {
  const c0 = childCpuMs();
  const t0 = process.hrtime.bigint();
  const r = f();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  lastCpu = childCpuMs() - c0;
  if (r.status !== 0) throw new Error(`tmux-persist exited ${r.status}:\n${r.stderr}`);
  return ms;
}

/** 4 sessions x 2 windows of the user's panes; returns the claude pane cwds. */
function populate(env: L.Env, u: L.TUser): number {
  const claudeDirs: string[] = [];
  let k = 0;
  const sessions = 4;
  const panesPerSession = Math.ceil(PANES / sessions);
  for (let s = 0; s < sessions; s++) {
    const w0 = Math.ceil(panesPerSession / 2);
    const w1 = panesPerSession - w0;
    const windows: L.WindowSpec[] = [];
    for (const count of [w0, w1]) {
      if (!count) continue;
      const panes: L.PaneSpec[] = [];
      for (let p = 0; p < count && k < PANES; p++, k++) {
        const cwd = L.userDir(u, `bench/s${s}/p${k}`);
        const isClaude = k % 2 === 0;
        if (isClaude) claudeDirs.push(cwd);
        panes.push({ cwd, cmd: isClaude ? ["bash", "-c", "exec -a claude sleep 100000"] : undefined });
      }
      if (panes.length) windows.push({ panes });
    }
    if (windows.length) L.makeSession(env, u, `bench-${s}`, windows);
  }
  L.sleep(50);
  for (const cwd of claudeDirs) {
    const dir = path.join(u.home, ".claude", "projects", cwd.replace(/[^A-Za-z0-9]/g, "-"));
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `${crypto.randomUUID()}.jsonl`), '{"type":"user"}\n');
  }
  spawnSync("chown", ["-R", `${u.uid}:${u.gid}`, path.join(u.home, ".claude")]);
  return claudeDirs.length;
}

interface Variant {
  label: string;
  script?: string;
  args: string[];
}
interface CaseResult {
  name: string;
  users: number;
  panes: number;
  claude: number;
  procs: number;
  save: Map<string, number[]>;
  saveCpu: Map<string, number[]>;
  saveUnchanged: Map<string, number>;
  restore: Map<string, number[]>;
  restoreCpu: Map<string, number[]>;
  restoreNoop: Map<string, number>;
  calls: Map<string, number>;
}

function runCase(
  env: L.Env,
  users: L.TUser[],
  claude: number,
  runs: number,
  doRestore: boolean,
  saveVariants: Variant[],
  restoreVariants: Variant[],
  claudeBin: string,
): CaseResult {
  const usersFile = path.join(env.base, `users-${users.length}.json`);
  L.writeUsersJson(
    usersFile,
    users.map((u) => ({ u })),
  );
  const panesTotal = users.reduce((n, u) => n + L.livePanes(env, u).length, 0);
  const procs = fs.readdirSync("/proc").filter((n) => /^[0-9]+$/.test(n)).length;
  const res: CaseResult = {
    name: `${users.length} users x ${PANES} panes`,
    users: users.length,
    panes: panesTotal,
    claude,
    procs,
    save: new Map(),
    saveCpu: new Map(),
    saveUnchanged: new Map(),
    restore: new Map(),
    restoreCpu: new Map(),
    restoreNoop: new Map(),
    calls: new Map(),
  };
  console.error(`case ${res.name}: ${panesTotal} panes (${claude} claude), ${procs} processes on the machine, ${runs} runs`);
  const tp = (v: Variant, cmd: string, stateDir: string) => L.runTP(cmd, { usersFile, stateDir, claudeBin, script: v.script, args: v.args });
  let stateDir = "";
  for (let i = 0; i < runs; i++) {
    // alternate which variant goes first
    const order = i % 2 ? [...saveVariants].reverse() : saveVariants;
    for (const v of order) {
      stateDir = path.join(env.base, `state-${users.length}-${v.label.replace(/\W/g, "")}-${i}`);
      const ms = timed(() => tp(v, "save", stateDir));
      res.save.set(v.label, [...(res.save.get(v.label) ?? []), ms]);
      res.saveCpu.set(v.label, [...(res.saveCpu.get(v.label) ?? []), lastCpu]);
    }
  }
  // every variant's save must agree on what it found: one user's resolved conversations
  for (const v of saveVariants) {
    const dir = path.join(env.base, `state-${users.length}-${v.label.replace(/\W/g, "")}-0`);
    for (const u of users) {
      const snap = JSON.parse(fs.readFileSync(path.join(dir, u.name, "last"), "utf8"));
      const resolved = snap.sessions.flatMap((s: any) => s.windows.flatMap((w: any) => w.panes)).filter((p: any) => p.claude?.uuid).length;
      if (resolved !== claude / users.length)
        throw new Error(`${v.label} save resolved ${resolved} claude uuids for ${u.name}, expected ${claude / users.length}`);
    }
    res.saveUnchanged.set(v.label, median([0, 1, 2].map(() => timed(() => tp(v, "save", dir)))));
  }
  if (!doRestore) return res;
  // restore from the "after" save's snapshots (the same files for every variant)
  const restoreState = path.join(env.base, `state-${users.length}-${saveVariants[saveVariants.length - 1].label.replace(/\W/g, "")}-0`);
  for (let i = 0; i < runs; i++) {
    const order = i % 2 ? [...restoreVariants].reverse() : restoreVariants;
    for (const v of order) {
      for (const u of users) L.rebootUser(env, u);
      let r: L.TPResult = { status: -1, stdout: "", stderr: "" };
      const ms = timed(() => (r = L.runTP("restore", { usersFile, stateDir: restoreState, claudeBin, script: v.script, args: v.args })));
      res.restore.set(v.label, [...(res.restore.get(v.label) ?? []), ms]);
      res.restoreCpu.set(v.label, [...(res.restoreCpu.get(v.label) ?? []), lastCpu]);
      const calls = [...r.stderr.matchAll(/restore done .*tmuxCalls=([0-9]+)/g)].reduce((n, m) => n + Number(m[1]), 0);
      if (calls) res.calls.set(v.label, calls);
      const back = users.reduce((n, u) => n + L.livePanes(env, u).length, 0);
      if (back !== panesTotal) throw new Error(`${v.label} restore brought back ${back} of ${panesTotal} panes:\n${r.stderr}`);
    }
  }
  for (const v of restoreVariants) {
    const noops = [0, 1, 2].map(() => timed(() => L.runTP("restore", { usersFile, stateDir: restoreState, claudeBin, script: v.script, args: v.args })));
    res.restoreNoop.set(v.label, median(noops));
  }
  return res;
}

function printTable(cases: CaseResult[], before: string, after: string, beforeRestore: string): void {
  const f = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "-" : `${x.toFixed(0)} ms`);
  const best = (xs: number[]) => (xs.length ? Math.min(...xs) : NaN);
  const rows: string[][] = [["", ...cases.flatMap((c) => [`${c.panes} panes: before`, "after"])]];
  const row = (label: string, get: (c: CaseResult, which: "b" | "a") => string) => rows.push([label, ...cases.flatMap((c) => [get(c, "b"), get(c, "a")])]);
  const lbl = (w: "b" | "a", restore = false) => (w === "b" ? (restore ? beforeRestore : before) : after);
  const ratio = (r: number, s: number) => (Number.isNaN(r) || Number.isNaN(s) ? "-" : `${(r / s).toFixed(1)}x`);
  row("save, full write: median", (c, w) => f(median(c.save.get(lbl(w)) ?? [])));
  row("save, full write: best run", (c, w) => f(best(c.save.get(lbl(w)) ?? [])));
  row("save, unchanged state (median of 3)", (c, w) => f(c.saveUnchanged.get(lbl(w))));
  row("restore, after a reboot: median", (c, w) => f(median(c.restore.get(lbl(w, true)) ?? [])));
  row("restore, after a reboot: best run", (c, w) => f(best(c.restore.get(lbl(w, true)) ?? [])));
  row("restore, everything exists (median of 3)", (c, w) => f(c.restoreNoop.get(lbl(w, true))));
  row("tmux clients per restore", (c, w) => String(c.calls.get(lbl(w, true)) ?? "-"));
  row("CPU, save (script + clients): median", (c, w) => f(median(c.saveCpu.get(lbl(w)) ?? [])));
  row("CPU, restore (script + clients): median", (c, w) => f(median(c.restoreCpu.get(lbl(w, true)) ?? [])));
  row("restore / save: medians", (c, w) => ratio(median(c.restore.get(lbl(w, true)) ?? []), median(c.save.get(lbl(w)) ?? [])));
  row("restore / save: best runs", (c, w) => ratio(best(c.restore.get(lbl(w, true)) ?? []), best(c.save.get(lbl(w)) ?? [])));
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join("  "));
  console.log("");
  console.log("CPU: of the script and the processes it waited for (runuser, tmux clients), not of the servers and panes a restore starts.");
  for (const c of cases) {
    const runs = (m: Map<string, number[]>) => [...m].map(([k, v]) => `${k}: ${v.map((x) => x.toFixed(0)).join(" ")}`).join("; ");
    console.log(`runs, ${c.panes} panes: save ${runs(c.save)}`);
    if (c.restore.size) console.log(`runs, ${c.panes} panes: restore ${runs(c.restore)}`);
  }
}

/**
 * The tmux-persist of git revision `rev`, runnable: the revision's scripts/ extracted (git
 * archive) into `dir`, so that its entry point finds its modules. Either layout: one file
 * at scripts/tmux-persist.mjs (before issue 9) or the scripts/agents tree. null when it is
 * the working tree's own (the same files with the same content).
 */
function baselineScript(rev: string, dir: string): { script: string; path: string; files: number } | null {
  fs.mkdirSync(dir, { recursive: true });
  const tar = path.join(dir, "scripts.tar");
  const g = spawnSync("git", ["-C", L.ROOT, "archive", "--format=tar", "-o", tar, rev, "scripts"], { encoding: "utf8" });
  if (g.status !== 0) throw new Error(`BENCH_BASELINE=${rev}: git archive failed: ${g.stderr}`);
  const x = spawnSync("tar", ["-x", "-f", tar, "-C", dir], { encoding: "utf8" });
  if (x.status !== 0) throw new Error(`BENCH_BASELINE=${rev}: tar failed: ${x.stderr}`);
  const rel = ["scripts/agents/tmux-persist.mjs", "scripts/tmux-persist.mjs"].find((r) => fs.existsSync(path.join(dir, r)));
  if (!rel) throw new Error(`BENCH_BASELINE=${rev}: no tmux-persist.mjs in its scripts/`);
  const script = path.join(dir, rel);
  // what each entry point is made of, relative to its own folder
  const tree = (entry: string) =>
    L.scriptFiles(entry)
      .map((f) => [path.relative(path.dirname(entry), f), fs.readFileSync(f, "utf8")].join("\0"))
      .sort();
  const files = tree(script);
  if (JSON.stringify(files) === JSON.stringify(tree(L.SCRIPT))) return null;
  return { script, path: rel, files: files.length };
}

function main(): void {
  const why = L.cannotRun();
  if (why) {
    console.error(`bench:tmux skipped: ${why}`);
    process.exit(0);
  }
  const load0 = os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
  const env = L.setupEnv(USERS);
  try {
    // restore's claude stand-in: cheap too
    const benchClaude = path.join(env.bin, "bench-claude");
    fs.writeFileSync(benchClaude, "#!/bin/bash\nexec -a claude sleep 100000\n", { mode: 0o755 });
    const after: Variant = { label: "after", args: [] };
    let before: Variant | null = null;
    let baselineNote = "";
    if (BASELINE !== "none") {
      const b = baselineScript(BASELINE, path.join(env.base, "baseline"));
      if (b) {
        before = { label: "before", script: b.script, args: [] };
        const rev = spawnSync("git", ["-C", L.ROOT, "rev-parse", "--short", BASELINE], { encoding: "utf8" }).stdout.trim();
        baselineNote = `before = ${b.path} of ${BASELINE} (${rev}${b.files > 1 ? `, with its ${b.files - 1} modules` : ""}); after = the working tree`;
      }
    }
    const perPane: Variant = { label: "after --per-pane", args: ["--per-pane"] };
    if (!before)
      baselineNote = `before = the working tree's script with --per-pane (restore only; BENCH_BASELINE=${BASELINE} is the same script or none); after = the working tree`;
    const saveVariants = before ? [before, after] : [after];
    const restoreVariants = before ? [before, after] : [perPane, after];

    let claude = 0;
    for (const u of env.users) claude += populate(env, u);
    const cases: CaseResult[] = [];
    cases.push(runCase(env, env.users, claude, RUNS, true, saveVariants, restoreVariants, benchClaude));
    if (LARGE_USERS > USERS) {
      for (const u of env.users) L.killUser(env, u);
      for (const u of env.users) L.clearFakeLog(u);
      L.addUsers(env, LARGE_USERS - USERS);
      claude = 0;
      for (const u of env.users) {
        fs.rmSync(path.join(u.home, ".claude"), { recursive: true, force: true });
        claude += populate(env, u);
      }
      cases.push(runCase(env, env.users, claude, LARGE_RUNS, LARGE_RESTORE, saveVariants, restoreVariants, benchClaude));
    }
    const load = `${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")} (at the start ${load0})`;
    console.log(
      `tmux-persist bench: ${cases.map((c) => `${c.users} users / ${c.panes} panes (${c.claude} claude, ${c.procs} processes on the machine)`).join("; ")}`,
    );
    console.log(`${os.cpus().length} CPUs, load average at the end ${load}; ${baselineNote}`);
    console.log(`medians of ${RUNS} runs (first case) and ${LARGE_RUNS} runs (large case), runs alternating before/after`);
    console.log("");
    printTable(cases, before ? before.label : "", after.label, before ? before.label : perPane.label);
  } finally {
    L.teardownEnv(env);
  }
}

main();
