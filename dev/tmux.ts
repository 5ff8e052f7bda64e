/**
 * Helpers shared by tests/tmux/tmux-persist.test.ts and bench/tmux-persist.ts: throwaway
 * local users (prefix "wst"), tmux as those users, the fake claude, and the script.
 * Everything here runs as root on the machine itself (no container): real tmux servers on
 * the users' default sockets, real uid switching.
 */
import { readJsonLines } from "./http";
import { sleepSync, waitForSync } from "./wait";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { agentFiles, agentSource } from "./agents";

export const ROOT = path.resolve(__dirname, "..");
export const SCRIPT = path.join(ROOT, "scripts", "agents", "tmux-persist.mjs");
export { AGENTS_DIR } from "./agents";
/** Every file tmux-persist is made of: its entry point and the modules it imports (dev/agents.ts). */
export const scriptFiles = (entry: string = SCRIPT): string[] => agentFiles(entry);
/** The source text of scriptFiles(), one file after the other. */
export const scriptSource = (entry: string = SCRIPT): string => agentSource(entry);
export const FAKE_CLAUDE = path.join(ROOT, "tests", "tmux", "fake-claude");

export interface TUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface Env {
  base: string;
  bin: string;
  claudeBin: string;
  users: TUser[];
  /** random part of the user names */
  tag: string;
}

/** Skip reason when the machine can't run these tests, or null. */
export function cannotRun(): string | null {
  if (process.getuid?.() !== 0) return "needs root (useradd, uid switching)";
  for (const t of ["tmux", "useradd", "userdel", "runuser", "getent"]) {
    if (spawnSync("sh", ["-c", `command -v ${t}`]).status !== 0) return `${t} not installed`;
  }
  return null;
}

function must(r: SpawnSyncReturns<string>, what: string): string {
  if (r.error) throw new Error(`${what}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${what}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Create the base dir (0755 so the users can run the fake claude from it) and `count`
 * throwaway users wst<rand><i>, in group `users` as a supplementary group.
 */
export function setupEnv(count: number): Env {
  const base = fs.mkdtempSync("/tmp/tp-test-");
  fs.chmodSync(base, 0o755);
  const bin = path.join(base, "bin");
  fs.mkdirSync(bin, { mode: 0o755 });
  const claudeBin = path.join(bin, "claude");
  fs.copyFileSync(FAKE_CLAUDE, claudeBin);
  fs.chmodSync(claudeBin, 0o755);
  const tag = crypto
    .randomBytes(3)
    .toString("hex")
    .replace(/[0-9]/g, (d) => "abcdefghij"[Number(d)]);
  const env: Env = { base, bin, claudeBin, users: [], tag };
  ENVS.add(env);
  addUsers(env, count);
  return env;
}

/** `count` more throwaway users: wst<tag>a … z, then aa, ab, … (removed by teardownEnv). */
export function addUsers(env: Env, count: number): TUser[] {
  const letter = (i: number) => String.fromCharCode(97 + i);
  const added: TUser[] = [];
  for (let k = 0; k < count; k++) {
    const i = env.users.length;
    const name = `wst${env.tag}${i < 26 ? letter(i) : letter(Math.floor(i / 26) - 1) + letter(i % 26)}`;
    must(spawnSync("useradd", ["-m", "-s", "/bin/bash", "-G", "users", "-c", "tmux-persist test", name], { encoding: "utf8" }), `useradd ${name}`);
    const pw = must(spawnSync("getent", ["passwd", name], { encoding: "utf8" }), "getent")
      .trim()
      .split(":");
    const u: TUser = { name, uid: Number(pw[2]), gid: Number(pw[3]), home: pw[5] };
    fs.chmodSync(u.home, 0o700);
    env.users.push(u);
    added.push(u);
  }
  return added;
}

const ENVS = new Set<Env>();

/** Live (non-zombie) processes owned by uid (pids), from /proc. */
export function pidsOf(uid: number): number[] {
  const out: number[] = [];
  for (const n of fs.readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(n)) continue;
    try {
      if (fs.statSync(`/proc/${n}`).uid !== uid) continue;
      const stat = fs.readFileSync(`/proc/${n}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z") out.push(Number(n));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Stop everything the test started as this user: its tmux server, then leftovers by pid. */
export function killUser(env: Env, u: TUser): void {
  tmux(env, u, ["kill-server"], true);
  const deadline = Date.now() + 3000;
  while (pidsOf(u.uid).length && Date.now() < deadline) sleep(50);
  for (const pid of pidsOf(u.uid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  while (pidsOf(u.uid).length && Date.now() < deadline + 2000) sleep(50);
}

/**
 * The state after a reboot: no server and no socket either (tmux leaves its socket behind
 * when the server exits; at boot systemd-tmpfiles empties /tmp).
 */
export function rebootUser(env: Env, u: TUser): void {
  killUser(env, u);
  fs.rmSync(`/tmp/tmux-${u.uid}/default`, { force: true });
}

/** Remove the users (and homes), their tmux dirs and the base dir. Safe to call twice. */
/** Every test user's processes killed and fake-claude log cleared (between tests). */
export function resetUsers(env: Env): void {
  for (const u of env.users) {
    killUser(env, u);
    clearFakeLog(u);
  }
}

/**
 * What a throwaway user owns in /tmp (and the run's TMPDIR): their tmux socket dir, and the real
 * Claude CLI's `claude-<uid>` and `cc-socks` dirs. Left there after userdel, a later account given
 * the same uid would own them. Listed before userdel (after it, useradd in another test file may
 * already have given the uid to a new account) and removed after, each only if it is still the
 * same inode with the same owner.
 */
function ownedTmp(uid: number): { path: string; ino: number }[] {
  const out: { path: string; ino: number }[] = [];
  for (const dir of new Set(["/tmp", os.tmpdir()])) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      const p = path.join(dir, n);
      try {
        const st = fs.lstatSync(p);
        if (st.uid === uid) out.push({ path: p, ino: st.ino });
      } catch {
        /* gone meanwhile */
      }
    }
  }
  return out;
}

function removeListed(entries: readonly { path: string; ino: number }[], uid: number): void {
  for (const e of entries) {
    try {
      const st = fs.lstatSync(e.path);
      if (st.uid === uid && st.ino === e.ino) fs.rmSync(e.path, { recursive: true, force: true });
    } catch {
      /* gone meanwhile */
    }
  }
}

export function teardownEnv(env: Env): void {
  if (!ENVS.has(env)) return;
  ENVS.delete(env);
  for (const u of env.users) {
    try {
      killUser(env, u);
    } catch {
      /* best effort */
    }
    const owned = ownedTmp(u.uid);
    spawnSync("userdel", ["-r", "-f", u.name], { encoding: "utf8" });
    fs.rmSync(u.home, { recursive: true, force: true });
    removeListed(owned, u.uid);
  }
  fs.rmSync(env.base, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    for (const e of [...ENVS]) teardownEnv(e);
    process.exit(130);
  });
}
process.on("exit", () => {
  for (const e of [...ENVS]) teardownEnv(e);
});

/** The harness is synchronous throughout: these block instead of yielding (dev/wait.ts). */
export const sleep = sleepSync;
export function waitFor<T>(what: string, fn: () => T | null | undefined | false, timeoutMs = 10000): T {
  return waitForSync(what, fn, timeoutMs, 40);
}

/** The environment the test's own tmux clients (and so the servers they start) get. */
export function userEnv(env: Env, u: TUser, extra: Record<string, string> = {}): Record<string, string> {
  return {
    HOME: u.home,
    USER: u.name,
    LOGNAME: u.name,
    SHELL: "/bin/bash",
    PATH: `${env.bin}:/usr/local/bin:/usr/bin:/bin`,
    LANG: "C.UTF-8",
    ...extra,
  };
}

export function asUser(env: Env, u: TUser, cmd: string[], allowFail = false): SpawnSyncReturns<string> {
  const r = spawnSync("/usr/sbin/runuser", ["-u", u.name, "--", ...cmd], { encoding: "utf8", env: userEnv(env, u), cwd: "/" });
  if (!allowFail) must(r, `${u.name}: ${cmd.join(" ")}`);
  return r;
}

export function tmux(env: Env, u: TUser, args: string[], allowFail = false): SpawnSyncReturns<string> {
  return asUser(env, u, ["tmux", "-u", ...args], allowFail);
}

const UNSHARE = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount", "--mount-proc"];
/**
 * null when `u` may make its own user and pid namespaces (unprivileged `unshare`) and set the
 * next pid there (ns_last_pid, writable by the namespace's root: the user), else why not.
 * What foreignPaneServer needs.
 */
export function userNamespaces(env: Env, u: TUser): string | null {
  const r = asUser(env, u, [...UNSHARE, "sh", "-c", "echo 100 > /proc/sys/kernel/ns_last_pid && sh -c 'echo $$'"], true);
  return r.status === 0 && r.stdout.trim() === "101" ? null : `unprivileged user+pid namespaces unusable here: ${(r.stderr || r.stdout).trim()}`;
}

/**
 * A user's own tmux server that reports other processes as its pane pids, with stock tmux and
 * nothing but the user's own rights: the server runs in the user's own user+pid namespace
 * (`unshare`), where pids are the namespace's and the user is root enough to set the next one
 * (ns_last_pid). So a new pane gets, in the namespace, the number that on the host is the
 * target's pid, and root's client (on the user's default socket, as the user) reads that as
 * pane_pid. Session `session`: window 0 a plain pane, then one window per target, every pane
 * running `cat` in `cwd` (so tmux's own pane_current_path is `cwd`). Returns once root's view of
 * the server shows every target as a pane pid; stopped by killUser.
 */
export function foreignPaneServer(env: Env, u: TUser, session: string, cwd: string, targets: number[]): void {
  asUser(env, u, ["mkdir", "-p", "-m", "700", `/tmp/tmux-${u.uid}`]);
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = [
    `T="tmux -S /tmp/tmux-${u.uid}/default"`,
    // the panes run cat: nothing in the namespace forks but this script
    `$T new-session -d -s ${q(session)} -x 200 -y 60 -c ${q(cwd)} cat`,
    // a helper forked low (targets may be neighbours) sets the next pid to the target's and
    // becomes the client (exec: no fork), so the pane the server forks gets it; again if
    // anything else took it in between
    `for P in ${targets.join(" ")}; do for k in 1 2 3 4 5 6 7 8; do`,
    `  echo 10 > /proc/sys/kernel/ns_last_pid`,
    `  sh -c 'echo $(($1 - 1)) > /proc/sys/kernel/ns_last_pid && exec tmux -S /tmp/tmux-${u.uid}/default new-window -d -t "$2": -c "$3" cat' - "$P" ${q(session)} ${q(cwd)}`,
    `  [ "$($T display -p -t ${q(session)}:$ '#{pane_pid}')" = "$P" ] && break`,
    `  $T kill-window -t ${q(session)}:$`,
    `done; done`,
    `exec sleep 100000`,
  ].join("\n");
  const child = spawn("/usr/sbin/runuser", ["-u", u.name, "--", ...UNSHARE, "sh", "-c", script], {
    env: userEnv(env, u),
    cwd: "/",
    detached: true,
    stdio: "ignore",
  });
  child.unref();
  waitFor(
    `${u.name}'s server reporting pane pids ${targets.join(", ")}`,
    () => {
      const r = tmux(env, u, ["list-panes", "-a", "-F", "#{pane_pid}"], true);
      const pids = new Set(r.status === 0 ? r.stdout.split("\n").map(Number) : []);
      return targets.every((t) => pids.has(t));
    },
    30000,
  );
}

/** tmux expands formats in -s/-n/-c and ends a command at an argument ending in ';'. */
export const lit = (s: string) => {
  const t = s.replace(/#/g, "##");
  return t.endsWith(";") ? t.slice(0, -1) + "\\;" : t;
};

/** Make a directory owned by the user (and its missing parents below home). */
export function userDir(u: TUser, rel: string): string {
  const full = path.join(u.home, rel);
  const parts = rel.split("/").filter(Boolean);
  let cur = u.home;
  for (const p of parts) {
    cur = path.join(cur, p);
    if (!fs.existsSync(cur)) {
      fs.mkdirSync(cur, { mode: 0o755 });
      fs.chownSync(cur, u.uid, u.gid);
    }
  }
  return full;
}

export interface PaneSpec {
  cwd: string;
  /** argv run in the pane; omitted = the user's shell */
  cmd?: string[];
}
export interface WindowSpec {
  name?: string;
  panes: PaneSpec[];
}

/**
 * tmux new-session as the user, as a user would retry it: when the server's last session ended an
 * instant ago, the server is still exiting, and a client that connects to it then gets "server
 * exited unexpectedly" (45 of 200 in a tight loop here). Once that server is gone, the next client
 * starts a new one.
 */
function newSession(env: Env, u: TUser, args: string[]): string {
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = tmux(env, u, args, true);
    if (r.status !== 0 && /server exited unexpectedly/.test(r.stderr) && Date.now() < deadline) {
      sleep(50);
      continue;
    }
    return must(r, `${u.name}: tmux ${args.join(" ")}`);
  }
}

/** Create a session with windows and panes as the user. Returns the stored session name. */
export function makeSession(env: Env, u: TUser, name: string, windows: WindowSpec[]): string {
  const sep = "\u0001SEP\u0001";
  let sid = "";
  for (const w of windows) {
    const nameArgs = w.name !== undefined ? ["-n", lit(w.name)] : [];
    const first = w.panes[0];
    const pane0 = ["-c", lit(first.cwd), ...nameArgs, "-P", "-F", `#{session_id}${sep}#{pane_id}`, ...(first.cmd ?? [])];
    const out = sid
      ? tmux(env, u, ["new-window", "-d", "-t", `${sid}:`, ...pane0]).stdout
      : newSession(env, u, ["new-session", "-d", "-s", lit(name), "-x", "200", "-y", "60", ...pane0]);
    const [s, pane] = out.trim().split(sep);
    sid = s;
    let last = pane;
    for (const p of w.panes.slice(1)) {
      last = tmux(env, u, ["split-window", "-d", "-t", last, "-c", lit(p.cwd), "-P", "-F", "#{pane_id}", ...(p.cmd ?? [])]).stdout.trim();
      tmux(env, u, ["select-layout", "-t", last, "tiled"]);
    }
  }
  const stored = tmux(env, u, ["display-message", "-p", "-t", sid, `#{session_name}${sep}`]).stdout;
  return stored.slice(0, stored.indexOf(sep));
}

export interface LivePane {
  session: string;
  windowIndex: number;
  windowName: string;
  autoName: boolean;
  paneIndex: number;
  panePid: number;
  paneId: string;
  cwd: string;
}

/** Every pane of the user's server (empty when no server). cwd from /proc of the pane pid. */
export function livePanes(env: Env, u: TUser): LivePane[] {
  const fs1 = "\u0002F\u0002";
  const rs = "\u0002R\u0002";
  const r = tmux(
    env,
    u,
    [
      "list-panes",
      "-a",
      "-F",
      ["#{session_name}", "#{window_index}", "#{window_name}", "#{automatic-rename}", "#{pane_index}", "#{pane_pid}", "#{pane_id}"].join(fs1) + rs,
    ],
    true,
  );
  if (r.status !== 0) return [];
  return r.stdout
    .split(rs + "\n")
    .filter((x) => x.length)
    .map((rec) => {
      const f = rec.split(fs1);
      const pid = Number(f[5]);
      let cwd = "";
      try {
        cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
      } catch {
        /* gone */
      }
      return { session: f[0], windowIndex: Number(f[1]), windowName: f[2], autoName: f[3] === "1", paneIndex: Number(f[4]), panePid: pid, paneId: f[6], cwd };
    });
}

export function sessionNames(env: Env, u: TUser): string[] {
  return [...new Set(livePanes(env, u).map((p) => p.session))].sort();
}

export interface FakeEvent {
  event: "start" | "clear" | "message" | "exit" | "error";
  pid: number;
  ppid: number;
  argv: string[];
  cwd: string;
  uuid: string;
  resumed?: boolean;
  silent?: boolean;
  time: number;
}

export function fakeLog(u: TUser): FakeEvent[] {
  return readJsonLines<FakeEvent>(path.join(u.home, ".fake-claude.log"));
}

export function clearFakeLog(u: TUser): void {
  fs.rmSync(path.join(u.home, ".fake-claude.log"), { force: true });
}

/** The process exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Current conversation of each live fake claude, keyed by the pane pid it runs in. */
export function claudeByPanePid(u: TUser, panes: LivePane[]): Map<number, { pid: number; uuid: string; argv: string[]; cwd: string }> {
  const panePids = new Set(panes.map((p) => p.panePid));
  const cur = new Map<number, { pid: number; uuid: string; argv: string[]; cwd: string; panePid: number }>();
  for (const e of fakeLog(u)) {
    if (e.event === "exit") {
      cur.delete(e.pid);
      continue;
    }
    if (e.event !== "start" && e.event !== "clear") continue;
    const panePid = panePids.has(e.pid) ? e.pid : panePids.has(e.ppid) ? e.ppid : 0;
    if (!panePid) continue;
    cur.set(e.pid, { pid: e.pid, uuid: e.uuid, argv: e.argv, cwd: e.cwd, panePid });
  }
  const out = new Map<number, { pid: number; uuid: string; argv: string[]; cwd: string }>();
  for (const v of cur.values()) if (alive(v.pid)) out.set(v.panePid, v);
  return out;
}

export function writeUsersJson(file: string, users: { u: TUser; state?: string; tmuxPersist?: boolean }[]): void {
  const doc = {
    version: 1,
    users: users.map(({ u, state, tmuxPersist }) => ({
      name: u.name,
      uid: u.uid,
      home: u.home,
      state: state ?? "active",
      email: `${u.name}@example.com`,
      tmuxPersist: tmuxPersist ?? true,
      claudeTokenRenew: false,
    })),
  };
  fs.writeFileSync(file, JSON.stringify(doc, null, 2));
}

export interface TPResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Run the script (as root) with the test's users file, state dir and fake claude. */
export function runTP(cmd: string, opts: { usersFile: string; stateDir: string; claudeBin: string; args?: string[]; script?: string }): TPResult {
  const r = spawnSync(
    process.execPath,
    [opts.script ?? SCRIPT, cmd, "--users-file", opts.usersFile, "--state-dir", opts.stateDir, "--claude-bin", opts.claudeBin, ...(opts.args ?? [])],
    {
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8" },
      timeout: 120000,
    },
  );
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
