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
 * "tmux alone" is the floor a restore is measured against, in the same run, alternating with
 * the restore runs: the same users from no server and no socket, the same sessions, windows
 * and panes (sizes, cwds, targets, split geometry, each pane's command: the resume wrapper
 * running the claude stand-in, or the user's shell), made by the same command that starts a
 * user's server in a restore (runuser -u USER -- env -i <the user's environment> tmux -u …,
 * or systemd-run … where systemd runs) with ONE argv command list per user of
 * new-session/new-window/split-window only, users 8 at once (restore's PARALLEL), from one
 * spawned node process (bench-spawn.mjs: node start-up, reading its job file, the clients).
 * Its commands are restore's own (captured from an untimed restore run through a --import
 * preload that logs every spawn), minus -P -F and the bookkeeping commands (move-window,
 * select-layout, select-window, display-message markers). "restore's clients replayed" runs
 * the captured spawns unchanged through the same driver: restore minus the script's own work.
 * "restore, instrumented" is restore with that preload, for the timeline of where its time
 * goes (node start-up, the script before its first tmux client, the clients, the rest).
 * The tmux servers daemonize, so their CPU is not in the children's rusage: it is read from
 * /proc of each live server (its own CPU from schedstat, plus the utempter helpers it reaped)
 * and of the panes when the run returns, before the servers are killed.
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
/** users restored at once: PARALLEL of scripts/agents/tmux/core.mjs */
const PARALLEL = Number(
  /export const PARALLEL = ([0-9]+);/.exec(fs.readFileSync(path.join(L.ROOT, "scripts", "agents", "tmux", "core.mjs"), "utf8"))?.[1] ?? NaN,
);
const INSTRUMENTED = "restore, instrumented";
const REPLAYED = "restore's clients replayed";
const ALONE = "tmux alone";

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
/** 1-minute load average after every restore-like run */
const loads: number[] = [];
function timed(f: () => L.TPResult): number {
  const c0 = childCpuMs();
  const t0 = process.hrtime.bigint();
  const r = f();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  lastCpu = childCpuMs() - c0;
  if (r.status !== 0) throw new Error(`tmux-persist exited ${r.status}:\n${r.stderr}`);
  return ms;
}

/** epoch ms, sub-ms, comparable across processes (performance.timeOrigin + now) */
const epochMs = () => performance.timeOrigin + performance.now();

interface UserCpu {
  /** the live tmux servers (comm "tmux: server"): own CPU plus reaped children (utempter helpers) */
  server: number;
  /** every other live process of the users (the panes), the same */
  panes: number;
  servers: number;
}
/**
 * CPU ms of the users' live processes, one pass over /proc (read before the servers are
 * killed): each process's own CPU from /proc/PID/schedstat (ns; every one of them is
 * single-threaded) plus its reaped children's cutime + cstime (ticks). Zombies are skipped:
 * the servers of earlier runs, killed, linger unreaped as children of PID 1 here.
 */
function usersCpu(users: L.TUser[]): UserCpu {
  const uids = new Set(users.map((u) => u.uid));
  const out: UserCpu = { server: 0, panes: 0, servers: 0 };
  for (const n of fs.readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(n)) continue;
    try {
      if (!uids.has(fs.statSync(`/proc/${n}`).uid)) continue;
      const st = fs.readFileSync(`/proc/${n}/stat`, "utf8");
      const comm = st.slice(st.indexOf("(") + 1, st.lastIndexOf(")"));
      const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
      if (f[0] === "Z") continue;
      const own = Number(fs.readFileSync(`/proc/${n}/schedstat`, "utf8").split(" ")[0]) / 1e6;
      const ms = own + ((Number(f[13]) + Number(f[14])) * 1000) / 100;
      if (comm === "tmux: server") {
        out.server += ms;
        out.servers++;
      } else out.panes += ms;
    } catch {
      /* gone */
    }
  }
  return out;
}

/** One captured (or generated) spawn: what node's spawn() was given. */
interface SpawnSpec {
  file: string;
  args: string[];
  cwd?: string;
  env?: Record<string, string>;
  uid?: number;
  gid?: number;
}
/** Where a run's time went: ms from the bench's spawn of the process. */
interface Timeline {
  /** until the script's (or driver's) own code runs: process start, node start-up */
  boot: number;
  /** until its first tmux client is spawned */
  prep: number;
  /** from the first client spawned to the last one ended */
  clients: number;
  /** from then to the process reaped by the bench */
  tail: number;
  /** mean duration of one client (spawn to close) */
  clientMean: number;
  /** a worker's wait from a user's client ended to the next user's client spawned: mean */
  gapMean: number;
  nClients: number;
  /** instrumented restore: ms in spawnSync (getent) */
  syncMs?: number;
  /** instrumented restore: from its own code running to the first spawnSync (getent) */
  load?: number;
  /** instrumented restore: from getent ended to the first client */
  plan?: number;
  /** instrumented restore: ms in fsync (all of them; they overlap across users) and how many */
  fsyncMs?: number;
  fsyncs?: number;
}

/**
 * The driver of "tmux alone" and of the replay: one node process, a job file of spawns per
 * user; users `parallel` at once, each user's spawns in order; prints its timeline as JSON.
 */
const DRIVER = `import { spawn } from 'node:child_process';
import fs from 'node:fs';
const now = () => performance.timeOrigin + performance.now();
const t0 = now();
const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const spawns = [];
let bad = 0;
const run = (c) => new Promise((resolve) => {
  const s = now();
  const opts = { cwd: c.cwd, env: c.env, stdio: ['ignore', 'pipe', 'pipe'] };
  if (c.uid !== undefined) Object.assign(opts, { uid: c.uid, gid: c.gid });
  const ch = spawn(c.file, c.args, opts);
  let err = '';
  ch.stdout.setEncoding('utf8');
  ch.stdout.on('data', () => {});
  ch.stderr.on('data', (d) => (err += d));
  ch.on('error', (e) => (err += String(e)));
  ch.on('close', (status) => {
    spawns.push({ t0: s, t1: now(), status });
    if (status !== 0) bad++, process.stderr.write(err + '\\n');
    resolve();
  });
});
let next = 0;
const worker = async () => {
  while (next < job.users.length) {
    const k = next++;
    for (const c of job.users[k]) await run(c);
  }
};
await Promise.all(Array.from({ length: Math.min(job.parallel, job.users.length) }, worker));
process.stdout.write(JSON.stringify({ t0, spawns }));
process.exitCode = bad ? 1 : 0;
`;
/** The preload of the instrumented restore: every spawn (argv, options, start, close) to `log`. */
const preload = (log: string) => `import cp from 'node:child_process';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const LOG = ${JSON.stringify(log)};
const now = () => performance.timeOrigin + performance.now();
const put = (o) => fs.appendFileSync(LOG, JSON.stringify(o) + '\\n');
put({ k: 'boot', t: now() });
const spawn0 = cp.spawn;
const spawnSync0 = cp.spawnSync;
let n = 0;
cp.spawn = function (file, args, opts) {
  const i = n++;
  put({ k: 'spawn', i, t: now(), file, args, cwd: opts && opts.cwd, env: opts && opts.env, uid: opts && opts.uid, gid: opts && opts.gid });
  const ch = spawn0.apply(this, arguments);
  ch.on('close', () => put({ k: 'close', i, t: now() }));
  return ch;
};
cp.spawnSync = function (file, args) {
  const t = now();
  const r = spawnSync0.apply(this, arguments);
  put({ k: 'spawnSync', t, t1: now(), file, args });
  return r;
};
const fsync0 = fs.fsyncSync;
fs.fsyncSync = function () {
  const t = now();
  try {
    return fsync0.apply(this, arguments);
  } finally {
    put({ k: 'fsync', t, t1: now() });
  }
};
const h = await fs.promises.open('/', 'r');
const proto = Object.getPrototypeOf(h);
await h.close();
for (const m of ['sync', 'datasync']) {
  const f0 = proto[m];
  proto[m] = async function () {
    const t = now();
    try {
      return await f0.apply(this, arguments);
    } finally {
      put({ k: 'fsync', t, t1: now() });
    }
  };
}
syncBuiltinESMExports();
process.on('exit', () => put({ k: 'exit', t: now() }));
`;

function timelineOf(tStart: number, tEnd: number, boot: number, spawns: { t0: number; t1: number }[]): Timeline {
  const starts = spawns.map((x) => x.t0).sort((a, b) => a - b);
  const ends = spawns.map((x) => x.t1).sort((a, b) => a - b);
  // PARALLEL workers: the k-th client after the first PARALLEL starts in the slot the
  // (k - PARALLEL)-th client to end has freed
  const gaps = starts.slice(PARALLEL).map((t, k) => t - ends[k]);
  return {
    boot: boot - tStart,
    prep: starts[0] - boot,
    clients: ends[ends.length - 1] - starts[0],
    tail: tEnd - ends[ends.length - 1],
    clientMean: spawns.reduce((a, x) => a + x.t1 - x.t0, 0) / spawns.length,
    gapMean: gaps.length ? gaps.reduce((a, b) => a + b, 0) / gaps.length : NaN,
    nClients: spawns.length,
  };
}

/** Where tmux's own commands start in a spawn's args: after `tmux -u` (-1: not a tmux start or client). */
function tmuxArgvAt(c: SpawnSpec): number {
  if (path.basename(c.file) === "tmux") return c.args[0] === "-u" ? 1 : 0;
  const i = c.args.findIndex((a, k) => path.basename(a) === "tmux" && c.args[k + 1] === "-u");
  return i < 0 ? -1 : i + 2;
}
/**
 * The same spawn with only the commands that make sessions, windows and panes, without -P -F
 * (what they print); null when none is left.
 */
function aloneSpawn(c: SpawnSpec): SpawnSpec | null {
  const at = tmuxArgvAt(c);
  if (at < 0) return null;
  const cmds: string[][] = [[]];
  for (const a of c.args.slice(at)) {
    if (a === ";") cmds.push([]);
    else cmds[cmds.length - 1].push(a);
  }
  const keep = cmds
    .filter((cmd) => ["new-session", "new-window", "split-window"].includes(cmd[0]))
    .map((cmd) => {
      const out = [...cmd];
      const p = out.indexOf("-P");
      if (p > 0) out.splice(p, 1);
      const f = out.indexOf("-F");
      if (f > 0) out.splice(f, 2);
      return out;
    });
  if (!keep.length) return null;
  return { ...c, args: [...c.args.slice(0, at), ...keep.flatMap((cmd, k) => (k ? [";", ...cmd] : cmd))] };
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
  /** CPU ms of the users' tmux servers / panes when a restore-like run returned */
  serverCpu: Map<string, number[]>;
  paneCpu: Map<string, number[]>;
  /** servers found by usersCpu (one per user) */
  servers: Map<string, number>;
  timelines: Map<string, Timeline[]>;
  /** what "tmux alone" runs */
  shape: string;
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
  const res = emptyCase(users.length, panesTotal, claude, procs);
  console.error(`case ${res.name}: ${panesTotal} panes (${claude} claude), ${procs} processes on the machine, ${runs} runs`);
  const c: CaseEnv = { env, users, usersFile, claudeBin, panesTotal };
  saveRuns(c, res, runs, claude, saveVariants);
  if (!doRestore) return res;
  // restore from the "after" save's snapshots (the same files for every variant)
  restoreRuns(c, res, runs, stateDirOf(c, saveVariants[saveVariants.length - 1], 0), restoreVariants);
  return res;
}

/** What every phase of one case shares. */
interface CaseEnv {
  env: L.Env;
  users: L.TUser[];
  usersFile: string;
  claudeBin: string;
  panesTotal: number;
}

function emptyCase(users: number, panes: number, claude: number, procs: number): CaseResult {
  return {
    name: `${users} users x ${PANES} panes`,
    users,
    panes,
    claude,
    procs,
    save: new Map(),
    saveCpu: new Map(),
    saveUnchanged: new Map(),
    restore: new Map(),
    restoreCpu: new Map(),
    restoreNoop: new Map(),
    calls: new Map(),
    serverCpu: new Map(),
    paneCpu: new Map(),
    servers: new Map(),
    timelines: new Map(),
    shape: "",
  };
}

const stateDirOf = (c: CaseEnv, v: Variant, run: number) => path.join(c.env.base, `state-${c.users.length}-${v.label.replace(/\W/g, "")}-${run}`);

/** Every save variant `runs` times (alternating which goes first), then each on unchanged panes. */
function saveRuns(c: CaseEnv, res: CaseResult, runs: number, claude: number, saveVariants: Variant[]): void {
  const tp = (v: Variant, stateDir: string) => L.runTP("save", { usersFile: c.usersFile, stateDir, claudeBin: c.claudeBin, script: v.script, args: v.args });
  for (let i = 0; i < runs; i++) {
    // alternate which variant goes first
    const order = i % 2 ? [...saveVariants].reverse() : saveVariants;
    for (const v of order) {
      const stateDir = stateDirOf(c, v, i);
      const ms = timed(() => tp(v, stateDir));
      res.save.set(v.label, [...(res.save.get(v.label) ?? []), ms]);
      res.saveCpu.set(v.label, [...(res.saveCpu.get(v.label) ?? []), lastCpu]);
    }
  }
  // every variant's save must agree on what it found: one user's resolved conversations
  for (const v of saveVariants) {
    const dir = stateDirOf(c, v, 0);
    for (const u of c.users) {
      const snap = JSON.parse(fs.readFileSync(path.join(dir, u.name, "last"), "utf8"));
      const resolved = snap.sessions.flatMap((s: any) => s.windows.flatMap((w: any) => w.panes)).filter((p: any) => p.claude?.uuid).length;
      if (resolved !== claude / c.users.length)
        throw new Error(`${v.label} save resolved ${resolved} claude uuids for ${u.name}, expected ${claude / c.users.length}`);
    }
    res.saveUnchanged.set(v.label, median([0, 1, 2].map(() => timed(() => tp(v, dir)))));
  }
}

/** The last instrumented or driven restore's timeline and (instrumented) spawns. */
interface Probe {
  timeline: Timeline | null;
  spawns: SpawnSpec[];
}

/** The working tree's restore with the spawn-logging preload, and the driver over a job; both record into `probe`. */
function restoreProbes(base: string, tpArgv: string[]): { probe: Probe; instrumented: () => L.TPResult; driver: (job: string) => L.TPResult } {
  const runEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8" }; // as L.runTP
  const spawnLog = path.join(base, "spawns.jsonl");
  const preloadFile = path.join(base, "bench-preload.mjs");
  fs.writeFileSync(preloadFile, preload(spawnLog));
  const driverFile = path.join(base, "bench-spawn.mjs");
  fs.writeFileSync(driverFile, DRIVER);
  const probe: Probe = { timeline: null, spawns: [] };
  const instrumented = (): L.TPResult => {
    fs.rmSync(spawnLog, { force: true });
    const t0 = epochMs();
    const r = spawnSync(process.execPath, ["--import", preloadFile, L.SCRIPT, ...tpArgv], { encoding: "utf8", env: runEnv, timeout: 120000 });
    const t1 = epochMs();
    const ev = fs
      .readFileSync(spawnLog, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    const closes = new Map(ev.filter((e) => e.k === "close").map((e) => [e.i, e.t]));
    const spawned = ev.filter((e) => e.k === "spawn");
    probe.spawns = spawned.map((e) => ({ file: e.file, args: e.args, cwd: e.cwd, env: e.env, uid: e.uid, gid: e.gid }));
    const boot = ev.find((e) => e.k === "boot").t;
    const timeline = timelineOf(
      t0,
      t1,
      boot,
      spawned.map((e) => ({ t0: e.t, t1: closes.get(e.i) ?? t1 })),
    );
    const syncs = ev.filter((e) => e.k === "spawnSync");
    timeline.syncMs = syncs.reduce((a, e) => a + e.t1 - e.t, 0);
    if (syncs.length) {
      timeline.load = syncs[0].t - boot;
      timeline.plan = Math.min(...spawned.map((e) => e.t)) - syncs[syncs.length - 1].t1;
    }
    const fsyncs = ev.filter((e) => e.k === "fsync");
    timeline.fsyncMs = fsyncs.reduce((a, e) => a + e.t1 - e.t, 0);
    timeline.fsyncs = fsyncs.length;
    probe.timeline = timeline;
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  /** the driver over a job: {parallel, users: spawns per user} */
  const driver = (job: string): L.TPResult => {
    const t0 = epochMs();
    const r = spawnSync(process.execPath, [driverFile, job], { encoding: "utf8", env: runEnv, timeout: 120000 });
    const t1 = epochMs();
    if (r.status === 0) {
      const out = JSON.parse(r.stdout) as { t0: number; spawns: { t0: number; t1: number }[] };
      probe.timeline = timelineOf(t0, t1, out.t0, out.spawns);
    }
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  return { probe, instrumented, driver };
}

/** Restore's captured spawns per user, as the replay job and as the tmux-alone job (and the shape of both). */
function captureJobs(c: CaseEnv, spawns: SpawnSpec[]): { replayJob: string; aloneJob: string; shape: string } {
  const captured = c.users.map((u) =>
    spawns.filter((s) =>
      s.uid !== undefined
        ? s.uid === u.uid
        : // runuser -u NAME (a server start), setpriv --reuid UID (the cwd check as the user)
          s.args.some((a, k) => (a === "-u" && s.args[k + 1] === u.name) || (a === "--reuid" && s.args[k + 1] === String(u.uid))),
    ),
  );
  if (captured.flat().length !== spawns.length || captured.some((s) => !s.length))
    throw new Error(`captured spawns do not map onto the users: ${JSON.stringify(spawns.map((s) => [s.file, ...s.args.slice(0, 4)]))}`);
  const replayJob = path.join(c.env.base, `replay-${c.users.length}.json`);
  fs.writeFileSync(replayJob, JSON.stringify({ parallel: PARALLEL, users: captured }));
  const alone = captured.map((cs) => cs.map(aloneSpawn).filter((s): s is SpawnSpec => s !== null));
  const aloneJob = path.join(c.env.base, `alone-${c.users.length}.json`);
  fs.writeFileSync(aloneJob, JSON.stringify({ parallel: PARALLEL, users: alone }));
  const count = (cs: SpawnSpec[][], cmd: string) =>
    cs.flat().reduce((n, s) => n + s.args.filter((a, k) => a === cmd && (k === 0 || s.args[k - 1] === ";" || s.args[k - 1] === "-u")).length, 0);
  const shape = `${count(alone, "new-session")} new-session, ${count(alone, "new-window")} new-window, ${count(alone, "split-window")} split-window in ${alone.flat().length} clients; restore's lists: ${captured.flat().reduce((n, s) => n + s.args.filter((a) => a === ";").length + 1, 0)} commands in ${captured.flat().length} clients`;
  return { replayJob, aloneJob, shape };
}

/** Every restore kind `runs` times after a simulated reboot (alternating order), then each variant's no-op restore. */
function restoreRuns(c: CaseEnv, res: CaseResult, runs: number, restoreState: string, restoreVariants: Variant[]): void {
  const { env, users, usersFile, claudeBin } = c;
  const tpArgv = ["restore", "--users-file", usersFile, "--state-dir", restoreState, "--claude-bin", claudeBin];
  const { probe, instrumented, driver } = restoreProbes(env.base, tpArgv);
  const once = (label: string, f: () => L.TPResult): void => {
    for (const u of users) L.rebootUser(env, u);
    probe.timeline = null;
    let r: L.TPResult = { status: -1, stdout: "", stderr: "" };
    const ms = timed(() => (r = f()));
    const cpu = usersCpu(users);
    loads.push(os.loadavg()[0]);
    const push = <T>(m: Map<string, T[]>, x: T) => m.set(label, [...(m.get(label) ?? []), x]);
    push(res.restore, ms);
    push(res.restoreCpu, lastCpu);
    push(res.serverCpu, cpu.server);
    push(res.paneCpu, cpu.panes);
    if (probe.timeline) push(res.timelines, probe.timeline);
    res.servers.set(label, cpu.servers);
    const calls = [...r.stderr.matchAll(/restore done .*tmuxCalls=([0-9]+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    if (calls) res.calls.set(label, calls);
    const back = users.reduce((n, u) => n + L.livePanes(env, u).length, 0);
    if (back !== c.panesTotal) throw new Error(`${label} brought back ${back} of ${c.panesTotal} panes:\n${r.stderr}`);
  };
  // the capture: one untimed instrumented restore (also a warm-up); its spawns, per user
  for (const u of users) L.rebootUser(env, u);
  const cap = instrumented();
  if (cap.status !== 0) throw new Error(`instrumented restore exited ${cap.status}:\n${cap.stderr}`);
  const { replayJob, aloneJob, shape } = captureJobs(c, probe.spawns);
  res.shape = shape;
  const restoreOf = (v: Variant) => () => L.runTP("restore", { usersFile, stateDir: restoreState, claudeBin, script: v.script, args: v.args });
  const kinds: { label: string; f: () => L.TPResult }[] = [
    ...restoreVariants.map((v) => ({ label: v.label, f: restoreOf(v) })),
    { label: INSTRUMENTED, f: instrumented },
    { label: REPLAYED, f: () => driver(replayJob) },
    { label: ALONE, f: () => driver(aloneJob) },
  ];
  for (let i = 0; i < runs; i++) {
    const order = i % 2 ? [...kinds].reverse() : kinds;
    for (const k of order) once(k.label, k.f);
  }
  for (const v of restoreVariants) res.restoreNoop.set(v.label, median([0, 1, 2].map(() => timed(restoreOf(v)))));
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

/** Restore against its floor: the working tree's restore, instrumented, replayed, tmux alone. */
function printFloor(cases: CaseResult[], after: string): void {
  const withRestore = cases.filter((c) => c.restore.has(ALONE));
  if (!withRestore.length) return;
  const cols = [after, INSTRUMENTED, REPLAYED, ALONE];
  const short: Record<string, string> = { [after]: "restore", [INSTRUMENTED]: "instrumented", [REPLAYED]: "replayed", [ALONE]: "tmux alone" };
  const f = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "-" : `${x.toFixed(0)} ms`);
  const best = (xs: number[]) => (xs.length ? Math.min(...xs) : NaN);
  const rows: string[][] = [["", ...withRestore.flatMap((c) => cols.map((k, i) => (i ? short[k] : `${c.panes} panes: ${short[k]}`)))]];
  const row = (label: string, get: (c: CaseResult, k: string) => string) => rows.push([label, ...withRestore.flatMap((c) => cols.map((k) => get(c, k)))]);
  const tl = (c: CaseResult, k: string, key: keyof Timeline) => {
    const t = c.timelines.get(k);
    return t ? f(median(t.map((x) => Number(x[key] ?? NaN)))) : "-";
  };
  row("wall, as after a reboot: median", (c, k) => f(median(c.restore.get(k) ?? [])));
  row("wall: best run", (c, k) => f(best(c.restore.get(k) ?? [])));
  row("CPU, the process + its clients (rusage): median", (c, k) => f(median(c.restoreCpu.get(k) ?? [])));
  row("CPU, the tmux servers (/proc): median", (c, k) => f(median(c.serverCpu.get(k) ?? [])));
  row("CPU, the panes so far (/proc): median", (c, k) => f(median(c.paneCpu.get(k) ?? [])));
  row("until its own code runs (node start-up)", (c, k) => tl(c, k, "boot"));
  row("then until the first tmux client", (c, k) => tl(c, k, "prep"));
  row("  modules, options, lock, users file", (c, k) => tl(c, k, "load"));
  row("  getent", (c, k) => tl(c, k, "syncMs"));
  row("  plan (snapshots read and checked)", (c, k) => tl(c, k, "plan"));
  row("first client spawned to last one ended", (c, k) => tl(c, k, "clients"));
  row("  one user's client(s), spawn to end: mean", (c, k) => tl(c, k, "clientMean"));
  row("  a worker's gap between two users: mean", (c, k) => tl(c, k, "gapMean"));
  row("  fsync, all (overlapping): total", (c, k) => tl(c, k, "fsyncMs"));
  row("  fsync calls", (c, k) => {
    const t = c.timelines.get(k);
    const n = t ? median(t.map((x) => x.fsyncs ?? NaN)) : NaN;
    return Number.isNaN(n) ? "-" : String(n);
  });
  row("then until reaped", (c, k) => tl(c, k, "tail"));
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  console.log("");
  console.log(`Restore against tmux alone (medians of the same runs, alternating; ${PARALLEL} users at once in every column):`);
  for (const r of rows) console.log(r.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join("  "));
  console.log("");
  for (const c of withRestore) {
    const m = (k: string) => median(c.restore.get(k) ?? []);
    const b = (k: string) => best(c.restore.get(k) ?? []);
    const sv = c.save.get(after) ?? [];
    const x = (a: number, z: number) => (Number.isNaN(a) || Number.isNaN(z) ? "-" : `${(a / z).toFixed(2)}x`);
    console.log(
      `${c.panes} panes, medians (best runs): restore / save ${x(m(after), median(sv))} (${x(b(after), best(sv))}); ` +
        `restore / tmux alone ${x(m(after), m(ALONE))} (${x(b(after), b(ALONE))}); restore / replayed ${x(m(after), m(REPLAYED))} (${x(b(after), b(REPLAYED))}); ` +
        `replayed / tmux alone ${x(m(REPLAYED), m(ALONE))} (${x(b(REPLAYED), b(ALONE))})`,
    );
    console.log(`  tmux alone: ${c.shape}; servers found when a run returned: ${[...c.servers].map(([k, v]) => `${short[k] ?? k} ${v}`).join(", ")}`);
    const runs = (k: string) => (c.restore.get(k) ?? []).map((v) => v.toFixed(0)).join(" ");
    console.log(`  runs: ${cols.map((k) => `${short[k]}: ${runs(k)}`).join("; ")}`);
  }
  console.log("");
  console.log(
    "restore = the working tree's script as the units run it; instrumented = the same with a --import preload logging its spawns (for the timeline);",
  );
  console.log(
    `replayed = restore's captured tmux spawns (runuser … tmux -u <list>, the same argv, env, cwd) run by one node driver, users ${PARALLEL} at once; tmux alone = the`,
  );
  console.log("same spawns with only new-session/new-window/split-window (no -P -F, no move-window, select-layout, select-window or markers). Wall and rusage");
  console.log(
    "CPU include node start-up of the spawned process. Server CPU: each live tmux server's own (schedstat) plus its reaped children (utempter helpers);",
  );
  console.log("pane CPU: the panes' live processes, read when the run returned (their start-up may still be going on).");
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
    if (loads.length)
      console.log(
        `1-minute load average after each restore run: ${Math.min(...loads).toFixed(1)} to ${Math.max(...loads).toFixed(1)}, median ${median(loads).toFixed(1)}`,
      );
    console.log(`medians of ${RUNS} runs (first case) and ${LARGE_RUNS} runs (large case), runs alternating before/after`);
    console.log("");
    printTable(cases, before ? before.label : "", after.label, before ? before.label : perPane.label);
    printFloor(cases, after.label);
  } finally {
    L.teardownEnv(env);
  }
}

main();
