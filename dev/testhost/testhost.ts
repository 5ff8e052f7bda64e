/**
 * The reusable systemd test host: a debootstrapped Debian bookworm rootfs booted with
 * systemd-nspawn (systemd as PID 1), reached over SSH on a loopback port exactly the way
 * @pulumi/command's remote.Command reaches the devvm (one remote command string, stdin
 * piped, user root, host key pinned).
 *
 * Layout under ${WORKSTATIONS_CACHE:-$HOME/.cache/workstations}:
 *   rootfs/bookworm-<hash>/          the cached base rootfs (built once, see testhost-rootfs.sh)
 *   hosts/<name>-<pid>[-n]/          one host (TestHost.dir):
 *     rootfs/                        the host's writable root, what nspawn boots (TestHost.rootfs):
 *                                    an overlayfs mount (base rootfs + upper/) by default, or a
 *                                    `cp -a --reflink=auto` copy of the base (storage "copy")
 *     upper/ work/                   overlayfs upper and work dirs (storage "overlay" only)
 *     host.json                      metadata (port, machine, owner pid, host key)
 *     id_ed25519{,.pub}              root's client key (TestHost.privateKeyPath)
 *     known_hosts                    "[127.0.0.1]:<port> ssh-ed25519 AAAA..." (TestHost.knownHostsPath)
 *     console.log                    nspawn + container console output, all boots (TestHost.logPath)
 *     nspawn.pid                     pid of the running systemd-nspawn
 *
 * Environment knobs:
 *   WORKSTATIONS_CACHE                     cache root (see docs/CONTRACTS.md)
 *   WORKSTATIONS_DEBIAN_MIRROR             debootstrap mirror (default http://deb.debian.org/debian)
 *   WORKSTATIONS_TESTHOST_EXTRA_PACKAGES   extra debootstrap --include packages (comma/space separated)
 *   WORKSTATIONS_TESTHOST_BOOT_TIMEOUT     seconds to wait for a boot (default 180)
 *   WORKSTATIONS_TESTHOST_KEEP=1           on process exit, kill leftover containers but keep their dirs
 *   WORKSTATIONS_TESTHOST_STORAGE          "overlay" (default; falls back to copy if the mount fails)
 *                                          or "copy" (cp -a --reflink=auto of the base rootfs)
 *
 * Why overlay by default: on this ext4 (no reflinks) a 430 MB `cp -a` costs 4 s idle and
 * 15-40 s when other jobs load the disk, and `rm -rf` of the copy again as much; the overlay
 * mount costs milliseconds. The base rootfs is never modified after its build, which is
 * what overlayfs requires of a lower dir. The mount lives in the host mount namespace while
 * the TestHost exists (across its reboots) and is unmounted by destroyHost, the exit hook
 * or the stale-host reaper.
 */
import { sleep } from "../wait";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

export interface TestHost {
  /** The name given to createHost (default "testhost"). */
  name: string;
  /** The host directory: ${cache}/hosts/<name>-<pid>; the booted tree is `rootfs` inside it. */
  dir: string;
  /** sshd port on 127.0.0.1 (the container shares the host network). */
  port: number;
  user: "root";
  /** OpenSSH-format ed25519 private key for root, as connection.privateKey expects. */
  privateKey: string;
  privateKeyPath: string;
  /** "ssh-ed25519 AAAA..." (no comment), as connection.hostKey expects. */
  hostKey: string;
  /** nspawn machine name and container hostname (unique per host). */
  machine: string;
  /** The writable rootfs copy that nspawn boots (`${dir}/rootfs`). */
  rootfs: string;
  /** Per-host known_hosts file holding only `hostKey` for [127.0.0.1]:port. */
  knownHostsPath: string;
  /** Console log of every boot of this host. */
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
}

/** Bump to force a rebuild of the cached rootfs when its configuration changes. */
export const ROOTFS_CONFIG_VERSION = 1;

/** debootstrap --include list (the devvm's tools plus what systemd/ssh need in a container). */
export const ROOTFS_PACKAGES: readonly string[] = [
  "systemd",
  "systemd-sysv",
  "dbus",
  "dbus-user-session",
  "libpam-systemd",
  "openssh-server",
  "openssh-client",
  "sudo",
  "tmux",
  "nodejs",
  "procps",
  "psmisc",
  "git",
  "git-crypt",
  "ca-certificates",
  "curl",
  "jq",
  "passwd",
  "login",
  "util-linux",
  "tar",
  "gzip",
  "xz-utils",
  "acl",
  "iproute2",
  "less",
];

const BUILD_SCRIPT = path.join(__dirname, "testhost-rootfs.sh");

// ---------------------------------------------------------------------------------------
// paths and small helpers

export function cacheDir(): string {
  const env = process.env.WORKSTATIONS_CACHE;
  return env && env.length > 0 ? path.resolve(env) : path.join(os.homedir(), ".cache", "workstations");
}

function hostsDir(): string {
  return path.join(cacheDir(), "hosts");
}

function packageList(): string[] {
  const extra = (process.env.WORKSTATIONS_TESTHOST_EXTRA_PACKAGES ?? "").split(/[\s,]+/).filter((p) => p.length > 0);
  return [...new Set([...ROOTFS_PACKAGES, ...extra])].sort();
}

/** The cache path of the base rootfs for the current package list and configuration. */
export function rootfsPath(): string {
  const script = fs.readFileSync(BUILD_SCRIPT, "utf8");
  const hash = crypto
    .createHash("sha256")
    .update(`${packageList().join(",")}\nconfig=${ROOTFS_CONFIG_VERSION}\n${script}`)
    .digest("hex")
    .slice(0, 12);
  return path.join(cacheDir(), "rootfs", `bookworm-${hash}`);
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

function tailText(text: string, lines: number): string {
  const all = text.replace(ANSI, "").replace(/\r/g, "").split("\n");
  return all.slice(-lines).join("\n");
}

function fileTail(file: string, lines = 60, fromOffset = 0): string {
  try {
    const buf = fs.readFileSync(file);
    return tailText(buf.subarray(Math.min(fromOffset, buf.length)).toString("utf8"), lines);
  } catch {
    return `(no ${file})`;
  }
}

interface ExecResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Run a local program without a shell. */
function execLocal(cmd: string, args: string[], opts: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
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

async function execCheck(cmd: string, args: string[], what: string): Promise<string> {
  const r = await execLocal(cmd, args);
  if (r.code !== 0) {
    throw new Error(`${what} failed (exit ${r.code}): ${cmd} ${args.join(" ")}\n${tailText(r.stderr + r.stdout, 40)}`);
  }
  return r.stdout;
}

// ---------------------------------------------------------------------------------------
// /proc helpers (synchronous: also used from the process exit hook)

function procStat(pid: number): { state: string; ppid: number; start: string } | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { state: rest[0], ppid: Number(rest[1]), start: rest[19] };
  } catch {
    return undefined;
  }
}

function processStart(pid: number): string | undefined {
  return procStat(pid)?.start;
}

function alive(pid: number): boolean {
  const st = procStat(pid);
  return st !== undefined && st.state !== "Z" && st.state !== "X";
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const st = procStat(Number(e));
    if (st && st.ppid === pid) out.push(Number(e));
  }
  return out;
}

function pidFile(h: Pick<TestHost, "dir">): string {
  return path.join(h.dir, "nspawn.pid");
}

/** The pid of this host's running systemd-nspawn, or undefined. Guards against pid reuse. */
function nspawnPid(h: Pick<TestHost, "dir" | "machine">): number | undefined {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile(h), "utf8").trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) return undefined;
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (!argv.some((a) => a.endsWith("systemd-nspawn")) || !argv.includes(`--machine=${h.machine}`)) return undefined;
  } catch {
    return undefined;
  }
  return pid;
}

/** True when this host's container is running. */
export function isRunning(h: TestHost): boolean {
  return nspawnPid(h) !== undefined;
}

/** SIGKILL the container (its PID 1 takes every process of the PID namespace with it) and nspawn. */
function hardKillSync(h: Pick<TestHost, "dir" | "machine">): void {
  const pid = nspawnPid(h);
  if (pid === undefined) return;
  for (const c of childrenOf(pid)) {
    try {
      process.kill(c, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* gone */
  }
}

function cleanupNspawnRuntime(machine: string): void {
  // nspawn leaves this behind when /run is not a tmpfs (it refuses to rm -rf on disk).
  fs.rmSync(`/run/systemd/nspawn/propagate/${machine}`, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------
// overlay storage (synchronous: also used from the process exit hook)

function isMountPoint(p: string): boolean {
  const want = path.resolve(p);
  try {
    for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
      const mp = line.split(" ")[4];
      if (mp && mp.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === want) return true;
    }
  } catch {
    /* no /proc */
  }
  return false;
}

function overlayOptions(dir: string, lower: string): string {
  return `lowerdir=${lower},upperdir=${path.join(dir, "upper")},workdir=${path.join(dir, "work")}`;
}

function mountOverlaySync(dir: string, lower: string): ExecResult {
  for (const d of ["upper", "work", "rootfs"]) fs.mkdirSync(path.join(dir, d), { recursive: true });
  const r = spawnSync("mount", ["-t", "overlay", "overlay", "-o", overlayOptions(dir, lower), path.join(dir, "rootfs")], {
    encoding: "utf8",
  });
  return { code: r.status ?? -1, signal: r.signal, stdout: r.stdout ?? "", stderr: r.stderr ?? String(r.error ?? ""), timedOut: false };
}

/** Unmount the host's overlay root if mounted (lazily if busy). */
function unmountSync(dir: string): void {
  const rootfs = path.join(dir, "rootfs");
  for (let i = 0; i < 3 && isMountPoint(rootfs); i++) {
    spawnSync("umount", i < 2 ? [rootfs] : ["-l", rootfs], { stdio: "ignore" });
  }
}

/** Remove a host directory: unmount first, so rm never walks into the base rootfs. */
function removeHostDirSync(dir: string): void {
  unmountSync(dir);
  if (isMountPoint(path.join(dir, "rootfs"))) throw new Error(`cannot unmount ${path.join(dir, "rootfs")}`);
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

// ---------------------------------------------------------------------------------------
// process exit hook: leftover containers of non-persistent hosts are killed

const live = new Map<string, TestHost>(); // dir -> host, booted by this process, not persistent
const children = new Map<string, { child: ChildProcess; exit: Promise<number | null> }>();
let hooksInstalled = false;

function cleanupAllSync(): void {
  for (const h of live.values()) {
    hardKillSync(h);
    cleanupNspawnRuntime(h.machine);
    try {
      if (process.env.WORKSTATIONS_TESTHOST_KEEP === "1") unmountSync(h.dir);
      else removeHostDirSync(h.dir);
    } catch {
      /* best effort at exit */
    }
  }
  live.clear();
}

function installHooks(): void {
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

// ---------------------------------------------------------------------------------------
// host metadata

interface HostMeta {
  name: string;
  machine: string;
  port: number;
  hostKey: string;
  ownerPid: number;
  ownerStart: string;
  persistent: boolean;
  created: string;
  storage: "overlay" | "copy";
  /** The base rootfs (overlay lower dir). */
  lower: string;
}

function metaPath(dir: string): string {
  return path.join(dir, "host.json");
}

function readMeta(dir: string): HostMeta | undefined {
  try {
    return JSON.parse(fs.readFileSync(metaPath(dir), "utf8")) as HostMeta;
  } catch {
    return undefined;
  }
}

function writeMeta(dir: string, meta: HostMeta): void {
  const tmp = `${metaPath(dir)}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(meta, null, 2) + "\n");
  fs.renameSync(tmp, metaPath(dir));
}

/** Rebuild a TestHost from its directory (e.g. in another process, like the CLI). */
export function loadHost(dir: string): TestHost {
  const meta = readMeta(dir);
  if (!meta) throw new Error(`not a test host directory (no host.json): ${dir}`);
  const privateKeyPath = path.join(dir, "id_ed25519");
  return {
    name: meta.name,
    dir,
    port: meta.port,
    user: "root",
    privateKey: fs.readFileSync(privateKeyPath, "utf8"),
    privateKeyPath,
    hostKey: meta.hostKey,
    machine: meta.machine,
    rootfs: path.join(dir, "rootfs"),
    knownHostsPath: path.join(dir, "known_hosts"),
    logPath: path.join(dir, "console.log"),
  };
}

/**
 * Kill and remove hosts left behind by processes that died without cleaning up
 * (SIGKILL, OOM, a crashed test runner). Persistent (CLI) hosts and hosts whose owner is
 * still alive are left alone.
 */
export function reapStaleHosts(): string[] {
  const reaped: string[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync(hostsDir());
  } catch {
    return reaped;
  }
  for (const e of entries) {
    const dir = path.join(hostsDir(), e);
    const meta = readMeta(dir);
    if (!meta) {
      // Possibly being created right now by another process: only old dirs are debris.
      try {
        const st = fs.statSync(dir);
        if (!st.isDirectory() || Date.now() - st.mtimeMs < 30 * 60_000) continue;
      } catch {
        continue;
      }
      removeHostDirSync(dir);
      reaped.push(dir);
      continue;
    }
    if (meta.persistent) continue;
    if (alive(meta.ownerPid) && processStart(meta.ownerPid) === meta.ownerStart) continue;
    hardKillSync({ dir, machine: meta.machine });
    const pid = nspawnPid({ dir, machine: meta.machine });
    for (let i = 0; pid !== undefined && alive(pid) && i < 50; i++) spawnSync("sleep", ["0.1"]);
    cleanupNspawnRuntime(meta.machine);
    try {
      removeHostDirSync(dir);
      reaped.push(dir);
    } catch {
      /* still busy: next time */
    }
  }
  return reaped;
}

// ---------------------------------------------------------------------------------------
// rootfs

/** The cached base rootfs: built once by debootstrap (about a minute), then reused. */
export async function ensureRootfs(): Promise<string> {
  const final = rootfsPath();
  if (fs.existsSync(final)) return final;
  await fsp.mkdir(path.dirname(final), { recursive: true });
  const mirror = process.env.WORKSTATIONS_DEBIAN_MIRROR || "http://deb.debian.org/debian";
  const logFile = `${final}.build.log`;
  process.stderr.write(`testhost: building ${final} (debootstrap, about a minute); log: ${logFile}\n`);
  const log = fs.openSync(logFile, "w");
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn("bash", [BUILD_SCRIPT, final, packageList().join(","), mirror], {
        stdio: ["ignore", log, log],
      });
      child.on("error", reject);
      child.on("close", (c) => resolve(c));
    });
    if (code !== 0 || !fs.existsSync(final)) {
      throw new Error(`rootfs build failed (exit ${code}); log ${logFile}:\n${fileTail(logFile, 40)}`);
    }
  } finally {
    fs.closeSync(log);
  }
  return final;
}

// ---------------------------------------------------------------------------------------
// create

const usedPorts = new Set<number>();

function portsOfOtherHosts(): Set<number> {
  const ports = new Set<number>(usedPorts);
  try {
    for (const e of fs.readdirSync(hostsDir())) {
      const meta = readMeta(path.join(hostsDir(), e));
      if (meta) ports.add(meta.port);
    }
  } catch {
    /* no hosts yet */
  }
  return ports;
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ host: "127.0.0.1", port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A free loopback port outside the ephemeral range, not used by another test host. */
async function freeHostPort(): Promise<number> {
  const taken = portsOfOtherHosts();
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

function sanitizeName(name: string): string {
  const s = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40);
  return s.length > 0 ? s : "testhost";
}

/**
 * A fresh writable copy of the base rootfs with its own machine-id, hostname, sshd port,
 * sshd host key and root key. Not booted yet.
 */
export async function createHost(name = "testhost", opts: CreateHostOptions = {}): Promise<TestHost> {
  const base = await ensureRootfs();
  reapStaleHosts();
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
  const machine = path.basename(dir);
  const port = await freeHostPort();
  const meta: HostMeta = {
    name,
    machine,
    port,
    hostKey: "",
    ownerPid: process.pid,
    ownerStart: processStart(process.pid) ?? "",
    persistent: opts.persistent === true,
    created: new Date().toISOString(),
    storage: process.env.WORKSTATIONS_TESTHOST_STORAGE === "copy" ? "copy" : "overlay",
    lower: base,
  };
  writeMeta(dir, meta);

  try {
    const rootfs = path.join(dir, "rootfs");
    if (meta.storage === "overlay") {
      const m = mountOverlaySync(dir, base);
      if (m.code !== 0) {
        process.stderr.write(`testhost: overlay mount failed (${m.stderr.trim()}); falling back to cp -a\n`);
        for (const d of ["upper", "work", "rootfs"]) fs.rmSync(path.join(dir, d), { recursive: true, force: true });
        meta.storage = "copy";
        writeMeta(dir, meta);
      }
    }
    if (meta.storage === "copy") {
      await execCheck("cp", ["-a", "--reflink=auto", "--", base, rootfs], "copying the rootfs");
    }

    // identity
    fs.writeFileSync(path.join(rootfs, "etc/machine-id"), crypto.randomBytes(16).toString("hex") + "\n");
    fs.writeFileSync(path.join(rootfs, "etc/hostname"), `${machine}\n`);
    fs.appendFileSync(path.join(rootfs, "etc/hosts"), `127.0.1.1\t${machine}\n`);

    // sshd: port on loopback only, first in sshd_config so it wins over any drop-in
    const sshdConfig = path.join(rootfs, "etc/ssh/sshd_config");
    fs.writeFileSync(
      sshdConfig,
      `# --- workstations testhost (this host) ---\nPort ${port}\nListenAddress 127.0.0.1\n# --- end testhost (this host) ---\n` +
        fs.readFileSync(sshdConfig, "utf8"),
    );
    const hostKeyFile = path.join(rootfs, "etc/ssh/ssh_host_ed25519_key");
    await execCheck("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `root@${machine}`, "-f", hostKeyFile], "host key");
    const hostKey = fs.readFileSync(`${hostKeyFile}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");

    // root's client key
    const privateKeyPath = path.join(dir, "id_ed25519");
    await execCheck("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `testhost@${machine}`, "-f", privateKeyPath], "client key");
    const sshDir = path.join(rootfs, "root/.ssh");
    fs.mkdirSync(sshDir, { recursive: true, mode: 0o700 });
    fs.chmodSync(sshDir, 0o700);
    fs.writeFileSync(path.join(sshDir, "authorized_keys"), fs.readFileSync(`${privateKeyPath}.pub`), { mode: 0o600 });

    const knownHostsPath = path.join(dir, "known_hosts");
    fs.writeFileSync(knownHostsPath, `[127.0.0.1]:${port} ${hostKey}\n`);

    meta.hostKey = hostKey;
    writeMeta(dir, meta);
    return loadHost(dir);
  } catch (e) {
    removeHostDirSync(dir);
    usedPorts.delete(port);
    throw e;
  }
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
    "-o",
    "ControlMaster=no",
    "-o",
    "ControlPath=none",
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

// ---------------------------------------------------------------------------------------
// boot / poweroff / reboot / destroy

function bootTimeoutMs(): number {
  const s = Number(process.env.WORKSTATIONS_TESTHOST_BOOT_TIMEOUT ?? "180");
  return (Number.isFinite(s) && s > 0 ? s : 180) * 1000;
}

/**
 * Boot the host with systemd-nspawn in the background. Resolves when sshd answers and
 * `systemctl is-system-running --wait` says running or degraded.
 */
export async function boot(h: TestHost): Promise<void> {
  if (nspawnPid(h) !== undefined) throw new Error(`boot ${h.machine}: already running`);
  const meta = readMeta(h.dir);
  if (!meta || !fs.existsSync(h.rootfs)) throw new Error(`boot ${h.machine}: no host at ${h.dir} (destroyed?)`);
  if (meta.storage === "overlay" && !isMountPoint(h.rootfs)) {
    // e.g. a persistent (CLI) host after the machine restarted
    if (!fs.existsSync(meta.lower)) throw new Error(`boot ${h.machine}: base rootfs ${meta.lower} is gone`);
    const m = mountOverlaySync(h.dir, meta.lower);
    if (m.code !== 0) throw new Error(`boot ${h.machine}: overlay mount failed: ${m.stderr.trim()}`);
  }
  cleanupNspawnRuntime(h.machine);

  let logStart = 0;
  try {
    logStart = fs.statSync(h.logPath).size;
  } catch {
    /* first boot */
  }
  fs.appendFileSync(h.logPath, `\n===== testhost boot ${new Date().toISOString()} =====\n`);
  const log = fs.openSync(h.logPath, "a");
  const args = [
    "--register=no",
    "--keep-unit",
    `--machine=${h.machine}`,
    `--directory=${h.rootfs}`,
    "--boot",
    "--console=read-only",
    "--resolv-conf=off",
    "--timezone=off",
    "--link-journal=no",
  ];
  let child: ChildProcess;
  try {
    child = spawn("systemd-nspawn", args, { detached: true, stdio: ["ignore", log, log] });
  } finally {
    fs.closeSync(log);
  }
  const exit = new Promise<number | null>((resolve) => {
    child.on("error", (e) => {
      fs.appendFileSync(h.logPath, `testhost: spawn systemd-nspawn failed: ${e.message}\n`);
      resolve(-1);
    });
    child.on("exit", (code, signal) => resolve(code ?? (signal ? -1 : null)));
  });
  child.unref();
  if (child.pid === undefined) {
    await exit;
    throw new Error(`boot ${h.machine}: could not start systemd-nspawn\n${fileTail(h.logPath, 20, logStart)}`);
  }
  fs.writeFileSync(pidFile(h), `${child.pid}\n`);
  children.set(h.dir, { child, exit });
  if (!meta.persistent) {
    live.set(h.dir, h);
    installHooks();
  }

  let exited: number | null | undefined;
  void exit.then((c) => {
    exited = c;
  });
  const fail = async (why: string, extra = ""): Promise<never> => {
    hardKillSync(h);
    await waitExit(h, child.pid!, 10_000);
    throw new Error(
      `boot ${h.machine}: ${why}\n${extra}` +
        `--- journal of that boot (read from the host), last lines:\n${await journalTail(h)}\n` +
        `--- console (${h.logPath}), last lines:\n${fileTail(h.logPath, 40, logStart)}`,
    );
  };

  const deadline = Date.now() + bootTimeoutMs();
  // 1. sshd answers (a real login: key, host key and PAM all work)
  let last: RunResult | undefined;
  for (;;) {
    if (exited !== undefined) return fail(`systemd-nspawn exited (code ${exited}) before sshd answered`);
    if (Date.now() > deadline) {
      return fail(`sshd did not answer on 127.0.0.1:${h.port} within ${bootTimeoutMs() / 1000}s`, last ? `last ssh: ${tailText(last.stderr, 5)}\n` : "");
    }
    try {
      last = await run(h, "true", { check: false, timeoutMs: 15_000 });
      if (last.code === 0) break;
    } catch {
      /* timed out: retry */
    }
    await sleep(200);
  }
  // 2. systemd finished booting
  const left = Math.max(5_000, deadline - Date.now());
  let state: RunResult;
  try {
    state = await run(h, "systemctl is-system-running --wait", { check: false, timeoutMs: left });
  } catch (e) {
    return fail(`systemctl is-system-running --wait did not return: ${(e as Error).message}`);
  }
  const s = state.stdout.trim();
  if (s !== "running" && s !== "degraded") {
    const failed = await run(h, "systemctl --failed --no-pager --no-legend", { check: false, timeoutMs: 15_000 }).catch(() => undefined);
    return fail(`system state is "${s}" (${state.stderr.trim()})`, failed ? `failed units:\n${failed.stdout}\n` : "");
  }
}

/** The container's persistent journal of its last boot, read with the host's journalctl. */
async function journalTail(h: TestHost, lines = 40): Promise<string> {
  const r = await execLocal(
    "journalctl",
    ["--directory", path.join(h.rootfs, "var/log/journal"), "--boot", "--no-pager", "--no-hostname", "-o", "short-monotonic", "-n", String(lines)],
    { timeoutMs: 15_000 },
  ).catch((e: Error) => ({ code: -1, stdout: "", stderr: e.message }));
  return tailText(r.stdout.trim() || r.stderr.trim() || "(empty)", lines);
}

async function waitExit(h: TestHost, pid: number, timeoutMs: number): Promise<boolean> {
  const known = children.get(h.dir);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (known && known.child.pid === pid && known.child.exitCode !== null) return true;
    if (known && known.child.pid === pid && known.child.signalCode !== null) return true;
    if (!alive(pid)) return true;
    await sleep(100);
  }
  return !alive(pid);
}

function forget(h: TestHost): void {
  live.delete(h.dir);
  children.delete(h.dir);
  try {
    fs.rmSync(pidFile(h), { force: true });
  } catch {
    /* dir gone */
  }
  cleanupNspawnRuntime(h.machine);
}

/** Clean shutdown: `systemctl poweroff` inside, then wait for systemd-nspawn to exit. */
export async function poweroff(h: TestHost): Promise<void> {
  const pid = nspawnPid(h);
  if (pid === undefined) {
    forget(h);
    return;
  }
  let logStart = 0;
  try {
    logStart = fs.statSync(h.logPath).size;
  } catch {
    /* none */
  }
  // The connection may be cut by sshd stopping (exit 255): that is fine.
  const r = await run(h, "systemctl poweroff", { check: false, timeoutMs: 30_000 }).catch((e: Error) => ({
    code: -1,
    stdout: "",
    stderr: e.message,
  }));
  if (r.code !== 0 && r.code !== 255) {
    // Could not ask systemd over ssh: SIGTERM makes nspawn request a clean poweroff of PID 1.
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      /* gone */
    }
  }
  const ok = await waitExit(h, pid, 120_000);
  const known = children.get(h.dir);
  const code = known && known.child.pid === pid ? known.child.exitCode : null;
  if (!ok) {
    hardKillSync(h);
    await waitExit(h, pid, 10_000);
    forget(h);
    throw new Error(`poweroff ${h.machine}: container did not stop within 120s (killed)\n${fileTail(h.logPath, 60, logStart)}`);
  }
  forget(h);
  if (code !== null && code !== 0) {
    throw new Error(`poweroff ${h.machine}: systemd-nspawn exited with code ${code}\n${fileTail(h.logPath, 60, logStart)}`);
  }
}

/** A real reboot: poweroff, then a new boot (new PID 1, fresh /run and /tmp, new boot id). */
export async function reboot(h: TestHost): Promise<void> {
  await poweroff(h);
  await boot(h);
}

/** Kill the container if it runs and remove the host directory. Idempotent. */
export async function destroyHost(h: TestHost): Promise<void> {
  const pid = nspawnPid(h);
  if (pid !== undefined) {
    hardKillSync(h);
    if (!(await waitExit(h, pid, 15_000))) {
      throw new Error(`destroyHost ${h.machine}: systemd-nspawn (pid ${pid}) did not die`);
    }
  }
  forget(h);
  usedPorts.delete(h.port);
  unmountSync(h.dir);
  if (isMountPoint(h.rootfs)) throw new Error(`destroyHost ${h.machine}: cannot unmount ${h.rootfs}`);
  await fsp.rm(h.dir, { recursive: true, force: true, maxRetries: 3 });
}
