/**
 * What both kinds of test host share (dev/testhost/testhost.ts is the interface): the
 * TestHost record, the host directory and its host.json, local process and /proc helpers,
 * loopback ports, the process exit hook, and root's SSH to the host (`run`), which reaches an
 * nspawn container and a VM the same way: 127.0.0.1:<port>, key and host key pinned.
 */
import { spawn, spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { sleep } from "../wait";

/** "nspawn": Debian bookworm in systemd-nspawn; "vm": Debian trixie in a qemu VM (dev/testhost/vm.ts). */
export type HostKind = "nspawn" | "vm";

export interface TestHost {
  /** "nspawn" or "vm". */
  kind: HostKind;
  /** The name given to createHost (default "testhost"). */
  name: string;
  /** The host directory: ${cache}/hosts/<name>-<pid>[-n]. */
  dir: string;
  /** sshd's port on 127.0.0.1 (nspawn: sshd itself, sharing the network; vm: qemu's forward to the guest's 22). */
  port: number;
  user: "root";
  /** OpenSSH-format ed25519 private key for root, as connection.privateKey expects. */
  privateKey: string;
  privateKeyPath: string;
  /** "ssh-ed25519 AAAA..." (no comment), as connection.hostKey expects. */
  hostKey: string;
  /** nspawn machine name and container hostname; for a VM the host directory's name. Unique per host. */
  machine: string;
  /** What the host boots: nspawn, the writable root tree (`${dir}/rootfs`); vm, its writable disk (a qcow2 overlay). */
  rootfs: string;
  /** Per-host known_hosts file holding only `hostKey` for [127.0.0.1]:port. */
  knownHostsPath: string;
  /** Console log of every boot of this host (nspawn's output, or the VM's serial console). */
  logPath: string;
}

export interface RunOptions {
  /** Piped to the remote command's stdin (then EOF). Without it, stdin is empty (EOF at once). */
  stdin?: string | Buffer;
  /** Throw on a non-zero exit (default true). */
  check?: boolean;
  /** Sent with SSH SetEnv, like remote.Command `environment` (needs AcceptEnv on the server). */
  env?: Record<string, string>;
  /** Kill ssh and throw after this long (default 600 000 ms). */
  timeoutMs?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CreateHostOptions {
  /**
   * A persistent host is left running when this process exits and is never reaped as
   * stale (the CLI's `up`). Default false: leftovers are killed at process exit.
   */
  persistent?: boolean;
  /** Which kind of host (default: $WORKSTATIONS_TESTHOST, else "nspawn"). */
  kind?: HostKind;
  /** VM only: kernel command line arguments appended to the default (a later one wins). */
  vmCmdline?: string;
  /** VM only: boot from the disk the first time too, instead of restoring the booted snapshot. */
  vmColdBoot?: boolean;
}

// ---------------------------------------------------------------------------------------
// paths and small helpers

export function cacheDir(): string {
  const env = process.env.WORKSTATIONS_CACHE;
  return env && env.length > 0 ? path.resolve(env) : path.join(os.homedir(), ".cache", "workstations");
}

export function hostsDir(): string {
  return path.join(cacheDir(), "hosts");
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

export function tailText(text: string, lines: number): string {
  const all = text.replace(ANSI, "").replace(/\r/g, "").split("\n");
  return all.slice(-lines).join("\n");
}

export function fileTail(file: string, lines = 60, fromOffset = 0): string {
  try {
    const buf = fs.readFileSync(file);
    return tailText(buf.subarray(Math.min(fromOffset, buf.length)).toString("utf8"), lines);
  } catch {
    return `(no ${file})`;
  }
}

export interface ExecResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Run a local program without a shell. */
export function execLocal(
  cmd: string,
  args: string[],
  opts: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: opts.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, opts.timeoutMs);
    }
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.stdin.on("error", () => {
      /* the remote side may close stdin early (EPIPE): the exit code tells the story */
    });
    child.on("error", (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : -1),
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        timedOut,
      });
    });
    child.stdin.end(opts.input ?? "");
  });
}

export async function execCheck(cmd: string, args: string[], what: string): Promise<string> {
  const r = await execLocal(cmd, args);
  if (r.code !== 0) {
    throw new Error(`${what} failed (exit ${r.code}): ${cmd} ${args.join(" ")}\n${tailText(r.stderr + r.stdout, 40)}`);
  }
  return r.stdout;
}

// ---------------------------------------------------------------------------------------
// /proc helpers (synchronous: also used from the process exit hook)

export function procStat(pid: number): { state: string; ppid: number; start: string } | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { state: rest[0], ppid: Number(rest[1]), start: rest[19] };
  } catch {
    return undefined;
  }
}

export function processStart(pid: number): string | undefined {
  return procStat(pid)?.start;
}

export function alive(pid: number): boolean {
  const st = procStat(pid);
  return st !== undefined && st.state !== "Z" && st.state !== "X";
}

export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const st = procStat(Number(e));
    if (st && st.ppid === pid) out.push(Number(e));
  }
  return out;
}

/** Waits until `pid` is gone (or `exited()` says so); true when it is. */
export async function waitPidExit(pid: number, timeoutMs: number, exited: () => boolean = () => false): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited() || !alive(pid)) return true;
    await sleep(100);
  }
  return !alive(pid);
}

/** The pid in `file` if that process is alive and its command line passes `matches` (guards against pid reuse). */
export function livePid(file: string, matches: (argv: string[]) => boolean): number | undefined {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(file, "utf8").trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) return undefined;
  try {
    if (!matches(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0"))) return undefined;
  } catch {
    return undefined;
  }
  return pid;
}

/** SIGKILL, ignoring a process that is already gone. */
export function killQuietly(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* gone */
  }
}

/** Size of a file now (0 when missing): where this boot's part of a log starts. */
export function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------
// process exit hook: leftovers of non-persistent hosts are killed (each kind registers its cleanup)

const cleanups = new Map<string, () => void>(); // host dir -> synchronous cleanup
let hooksInstalled = false;

function cleanupAllSync(): void {
  for (const fn of cleanups.values()) {
    try {
      fn();
    } catch {
      /* best effort at exit */
    }
  }
  cleanups.clear();
}

/** Runs `fn` (synchronously) if this process exits or is signalled while the host at `dir` is live. */
export function onExitCleanup(dir: string, fn: () => void): void {
  cleanups.set(dir, fn);
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", cleanupAllSync);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const handler = () => {
      cleanupAllSync();
      process.removeListener(sig, handler);
      // Nobody else handles it: re-raise, so the default action terminates us with that signal.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

export function dropExitCleanup(dir: string): void {
  cleanups.delete(dir);
}

// ---------------------------------------------------------------------------------------
// host metadata (host.json)

/** What a VM host records (dev/testhost/vm.ts). */
export interface VmMeta {
  /** The image directory (disk, kernel, initrd, keys). */
  image: string;
  accel: "kvm" | "tcg";
  /** Extra kernel command line arguments. */
  cmdline: string;
  /** Never restore the booted snapshot: every boot is from the disk. */
  coldBoot: boolean;
  /** The saved state the host's disk was last laid over (empty: a cold disk over the image). */
  golden: string;
  /** False until the first boot or restore: the first `boot` restores the snapshot. */
  started: boolean;
}

export interface HostMeta {
  /** Absent in host dirs written before there were two kinds: nspawn. */
  kind?: HostKind;
  name: string;
  machine: string;
  port: number;
  hostKey: string;
  ownerPid: number;
  ownerStart: string;
  persistent: boolean;
  created: string;
  /** nspawn: how the rootfs is laid, and its base (the overlay lower dir). */
  storage?: "overlay" | "copy";
  lower?: string;
  vm?: VmMeta;
}

function metaPath(dir: string): string {
  return path.join(dir, "host.json");
}

export function readMeta(dir: string): HostMeta | undefined {
  try {
    return JSON.parse(fs.readFileSync(metaPath(dir), "utf8")) as HostMeta;
  } catch {
    return undefined;
  }
}

export function writeMeta(dir: string, meta: HostMeta): void {
  const tmp = `${metaPath(dir)}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(meta, null, 2) + "\n");
  fs.renameSync(tmp, metaPath(dir));
}

/** Rebuild a TestHost from its directory (e.g. in another process, like the CLI). */
export function loadHost(dir: string): TestHost {
  const meta = readMeta(dir);
  if (!meta) throw new Error(`not a test host directory (no host.json): ${dir}`);
  const kind = meta.kind ?? "nspawn";
  const privateKeyPath = path.join(dir, "id_ed25519");
  return {
    kind,
    name: meta.name,
    dir,
    port: meta.port,
    user: "root",
    privateKey: fs.readFileSync(privateKeyPath, "utf8"),
    privateKeyPath,
    hostKey: meta.hostKey,
    machine: meta.machine,
    rootfs: path.join(dir, kind === "vm" ? "disk.qcow2" : "rootfs"),
    knownHostsPath: path.join(dir, "known_hosts"),
    logPath: path.join(dir, "console.log"),
  };
}

/** A new, empty host directory ${cache}/hosts/<name>-<pid>[-n] and its metadata (written). */
export async function newHostDir(name: string, kind: HostKind, opts: CreateHostOptions): Promise<{ dir: string; meta: HostMeta }> {
  await fsp.mkdir(hostsDir(), { recursive: true });
  const stem = `${sanitizeName(name)}-${process.pid}`;
  let dir = "";
  for (let n = 1; ; n++) {
    const candidate = path.join(hostsDir(), n === 1 ? stem : `${stem}-${n}`);
    try {
      await fsp.mkdir(candidate);
      dir = candidate;
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  }
  const meta: HostMeta = {
    kind,
    name,
    machine: path.basename(dir),
    port: await freeHostPort(),
    hostKey: "",
    ownerPid: process.pid,
    ownerStart: processStart(process.pid) ?? "",
    persistent: opts.persistent === true,
    created: new Date().toISOString(),
  };
  writeMeta(dir, meta);
  return { dir, meta };
}

/** True while the process that created the host (pid and start time) is alive. */
export function ownerAlive(meta: HostMeta): boolean {
  return alive(meta.ownerPid) && processStart(meta.ownerPid) === meta.ownerStart;
}

/** Every host directory (with its metadata when it has one). */
export function listHostDirs(): { dir: string; meta: HostMeta | undefined }[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(hostsDir());
  } catch {
    return [];
  }
  return entries.map((e) => path.join(hostsDir(), e)).map((dir) => ({ dir, meta: readMeta(dir) }));
}

// ---------------------------------------------------------------------------------------
// ports

const usedPorts = new Set<number>();

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ host: "127.0.0.1", port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A free loopback port outside the ephemeral range, not used by another test host. */
export async function freeHostPort(): Promise<number> {
  const taken = new Set<number>(usedPorts);
  for (const { meta } of listHostDirs()) if (meta) taken.add(meta.port);
  for (let i = 0; i < 200; i++) {
    const port = 20000 + crypto.randomInt(10000);
    if (taken.has(port)) continue;
    if (await canBind(port)) {
      usedPorts.add(port);
      return port;
    }
  }
  throw new Error("no free loopback port found in 20000-29999");
}

export function releasePort(port: number): void {
  usedPorts.delete(port);
}

function sanitizeName(name: string): string {
  const s = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40);
  return s.length > 0 ? s : "testhost";
}

// ---------------------------------------------------------------------------------------
// ssh

function sshArgs(h: TestHost, opts: { env?: Record<string, string>; connectTimeout?: number }): string[] {
  const args = [
    "-F",
    "/dev/null",
    "-T",
    "-p",
    String(h.port),
    "-l",
    h.user,
    "-i",
    h.privateKeyPath,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "IdentityAgent=none",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${h.knownHostsPath}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "CheckHostIP=no",
    "-o",
    "UpdateHostKeys=no",
    "-o",
    "BatchMode=yes",
    "-o",
    `ConnectTimeout=${opts.connectTimeout ?? 10}`,
    "-o",
    "ServerAliveInterval=5",
    "-o",
    "ServerAliveCountMax=6",
    ...muxOptions(h, opts.env),
    "-o",
    "LogLevel=ERROR",
  ];
  const env = Object.entries(opts.env ?? {});
  if (env.length > 0) {
    for (const [k, v] of env) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || /["\n\r\\]/.test(v)) {
        throw new Error(`run: env ${k} cannot be sent with SetEnv (bad name, or value has a quote/backslash/newline)`);
      }
    }
    args.push("-o", `SetEnv=${env.map(([k, v]) => `${k}="${v}"`).join(" ")}`);
  }
  return args;
}

/**
 * The VM's ssh connections are multiplexed: one login (key exchange, PAM session, logind) per
 * host, and a new session channel per command. Under emulation a login costs seconds of the
 * guest's CPU (measured 9-12 s at load 20, against 0.3-2 s for a channel). Commands that send
 * environment variables get a login of their own ($WORKSTATIONS_VM_SSH_MUX=0: always).
 */
function muxOptions(h: TestHost, env: Record<string, string> | undefined): string[] {
  const off = ["-o", "ControlMaster=no", "-o", "ControlPath=none"];
  if (h.kind !== "vm" || process.env.WORKSTATIONS_VM_SSH_MUX === "0" || Object.keys(env ?? {}).length > 0) return off;
  return ["-o", "ControlMaster=auto", "-o", `ControlPath=${muxSocket(h)}`, "-o", "ControlPersist=120"];
}

/** The control socket of a host's multiplexed ssh (short: a unix socket path has 108 bytes). */
export function muxSocket(h: Pick<TestHost, "dir">): string {
  return path.join(os.tmpdir(), `ws-ssh-${crypto.createHash("sha256").update(h.dir).digest("hex").slice(0, 16)}`);
}

/** Ends the host's multiplexed ssh master, if any (after a poweroff, a reset, or with the host). */
export function closeMux(h: Pick<TestHost, "dir" | "kind">): void {
  if (h.kind !== "vm" || !fs.existsSync(muxSocket(h))) return;
  spawnSync("ssh", ["-o", `ControlPath=${muxSocket(h)}`, "-O", "exit", "testhost"], { stdio: "ignore", timeout: 10_000 });
  fs.rmSync(muxSocket(h), { force: true });
}

/**
 * Run one remote command string as root over SSH, as the command provider does: the string
 * goes to the server unchanged (the remote login shell runs it with -c), stdin is piped then
 * closed, no TTY. With check (default) a non-zero exit throws with stdout and stderr.
 */
export async function run(h: TestHost, command: string, opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const r = await execLocal("ssh", [...sshArgs(h, { env: opts.env }), "127.0.0.1", "--", command], {
    input: opts.stdin,
    timeoutMs,
    env: { ...process.env, SSH_AUTH_SOCK: "" },
  });
  const result: RunResult = { code: r.code, stdout: r.stdout, stderr: r.stderr };
  if (r.timedOut) {
    throw Object.assign(
      new Error(`ssh ${h.machine}: timed out after ${timeoutMs} ms: ${command}\n--- stdout\n${tailText(r.stdout, 40)}\n--- stderr\n${tailText(r.stderr, 40)}`),
      { result },
    );
  }
  if ((opts.check ?? true) && r.code !== 0) {
    throw Object.assign(
      new Error(
        `ssh ${h.machine}: exit ${r.code}${r.code === 255 ? " (ssh/connection error?)" : ""}: ${command}\n` +
          `--- stdout\n${tailText(r.stdout, 40)}\n--- stderr\n${tailText(r.stderr, 40)}`,
      ),
      { result },
    );
  }
  return result;
}

/** How long a boot may take before it fails: $WORKSTATIONS_TESTHOST_BOOT_TIMEOUT seconds, else `fallbackS`. */
export function bootTimeoutMs(fallbackS = 180): number {
  const s = Number(process.env.WORKSTATIONS_TESTHOST_BOOT_TIMEOUT ?? fallbackS);
  return (Number.isFinite(s) && s > 0 ? s : fallbackS) * 1000;
}

export interface BootWatch {
  /** When to give up. */
  deadline: number;
  /** A reason to stop waiting now (the host's process died, its console shows a fatal error), or undefined. */
  dead: () => string | undefined;
  /** Throws the boot's error (with the host's logs). */
  fail: (why: string, extra?: string) => Promise<never>;
  /** Accept only a login whose `cat /proc/sys/kernel/random/boot_id` differs from this (a reboot). */
  notBootId?: string;
}

/**
 * Waits for a booting host: root's ssh login works (key, host key and PAM), then
 * `systemctl is-system-running --wait` says running or degraded.
 */
export async function waitBooted(h: TestHost, w: BootWatch): Promise<void> {
  let last: RunResult | undefined;
  for (;;) {
    const dead = w.dead();
    if (dead !== undefined) return w.fail(dead);
    if (Date.now() > w.deadline) {
      return w.fail(`sshd did not answer on 127.0.0.1:${h.port} in time`, last ? `last ssh: ${tailText(last.stderr || last.stdout, 5)}\n` : "");
    }
    try {
      last = await run(h, "cat /proc/sys/kernel/random/boot_id", { check: false, timeoutMs: 15_000 });
      if (last.code === 0 && last.stdout.trim() !== w.notBootId) break;
    } catch {
      /* timed out: retry */
    }
    await sleep(200);
  }
  let state: RunResult;
  try {
    state = await run(h, "systemctl is-system-running --wait", { check: false, timeoutMs: Math.max(5_000, w.deadline - Date.now()) });
  } catch (e) {
    return w.fail(`systemctl is-system-running --wait did not return: ${(e as Error).message}`);
  }
  const s = state.stdout.trim();
  if (s !== "running" && s !== "degraded") {
    const failed = await run(h, "systemctl --failed --no-pager --no-legend", { check: false, timeoutMs: 15_000 }).catch(() => undefined);
    return w.fail(`system state is "${s}" (${state.stderr.trim()})`, failed ? `failed units:\n${failed.stdout}\n` : "");
  }
}
