/**
 * The nspawn test host (kind "nspawn", the default; the interface is dev/testhost/testhost.ts):
 * a debootstrapped Debian bookworm rootfs booted with systemd-nspawn (systemd as PID 1),
 * reached over SSH on a loopback port exactly the way @pulumi/command's remote.Command
 * reaches the devvm (one remote command string, stdin piped, user root, host key pinned).
 *
 * Layout under ${WORKSTATIONS_CACHE:-$HOME/.cache/workstations}:
 *   rootfs/bookworm-<hash>/          the cached base rootfs (built once, see testhost-rootfs.sh)
 *   hosts/<name>-<pid>[-n]/          one host (TestHost.dir):
 *     rootfs/                        the host's writable root, what nspawn boots (TestHost.rootfs):
 *                                    an overlayfs mount (base rootfs + upper/) by default, or a
 *                                    `cp -a --reflink=auto` copy of the base (storage "copy")
 *     upper/ work/                   overlayfs upper and work dirs (storage "overlay" only)
 *     host.json                      metadata (port, machine, owner pid, host key)
 *     identity/                      what createHost lays over the base (machine-id, hostname,
 *                                    sshd port, host key, root's authorized_keys); reset lays it again
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
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import {
  bootTimeoutMs,
  cacheDir,
  childrenOf,
  dropExitCleanup,
  execCheck,
  execLocal,
  fileSize,
  fileTail,
  killQuietly,
  livePid,
  loadHost,
  newHostDir,
  onExitCleanup,
  readMeta,
  releasePort,
  run,
  tailText,
  waitBooted,
  waitPidExit,
  writeMeta,
  type CreateHostOptions,
  type ExecResult,
  type HostMeta,
  type TestHost,
} from "./common";
import { makeHostCgroups, removeHostCgroupsSync, spawnInCgroups } from "./cgroup";

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
  "zsh",
];

const BUILD_SCRIPT = path.join(__dirname, "testhost-rootfs.sh");

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

// ---------------------------------------------------------------------------------------
// the running container (synchronous parts: also used from the process exit hook)

function pidFile(h: Pick<TestHost, "dir">): string {
  return path.join(h.dir, "nspawn.pid");
}

/** The pid of this host's running systemd-nspawn, or undefined. Guards against pid reuse. */
function nspawnPid(h: Pick<TestHost, "dir" | "machine">): number | undefined {
  return livePid(pidFile(h), (argv) => argv.some((a) => a.endsWith("systemd-nspawn")) && argv.includes(`--machine=${h.machine}`));
}

/** True when this host's container is running. */
export function isRunning(h: TestHost): boolean {
  return nspawnPid(h) !== undefined;
}

/** SIGKILL the container (its PID 1 takes every process of the PID namespace with it) and nspawn. */
function hardKillSync(h: Pick<TestHost, "dir" | "machine">): void {
  const pid = nspawnPid(h);
  if (pid === undefined) return;
  for (const c of childrenOf(pid)) killQuietly(c);
  killQuietly(pid);
}

function cleanupNspawnRuntime(machine: string): void {
  // nspawn leaves this behind when /run is not a tmpfs (it refuses to rm -rf on disk).
  fs.rmSync(`/run/systemd/nspawn/propagate/${machine}`, { recursive: true, force: true });
  removeHostCgroupsSync(machine);
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
// leftovers

const children = new Map<string, { child: ChildProcess; exit: Promise<number | null> }>();

/** What the process exit hook does for a live, non-persistent host. */
function exitCleanupSync(h: TestHost): void {
  hardKillSync(h);
  cleanupNspawnRuntime(h.machine);
  if (process.env.WORKSTATIONS_TESTHOST_KEEP === "1") unmountSync(h.dir);
  else removeHostDirSync(h.dir);
}

/** Kill and remove a stale host (its owner died); false when it is still busy. */
export function reapDir(dir: string, meta: HostMeta): boolean {
  hardKillSync({ dir, machine: meta.machine });
  for (let i = 0; i < 50 && nspawnPid({ dir, machine: meta.machine }) !== undefined; i++) spawnSync("sleep", ["0.1"]);
  cleanupNspawnRuntime(meta.machine);
  try {
    removeHostDirSync(dir);
    return true;
  } catch {
    return false;
  }
}

/** Remove a half-made host directory (no metadata yet): unmount first. */
export function removeDebrisSync(dir: string): void {
  removeHostDirSync(dir);
}

// ---------------------------------------------------------------------------------------
// create

/**
 * The host's identity, kept in `${dir}/identity/` and laid over the base: machine-id,
 * hostname, the sshd port on loopback (first in sshd_config, so it wins over any drop-in),
 * sshd's host key and root's authorized_keys. Generated once; `lay` copies it again after a reset.
 */
async function makeIdentity(dir: string, meta: HostMeta, base: string): Promise<string> {
  const id = path.join(dir, "identity");
  for (const d of ["etc/ssh", "root/.ssh"]) fs.mkdirSync(path.join(id, d), { recursive: true });
  fs.chmodSync(path.join(id, "root"), 0o700); // cp -a sets these modes on the rootfs's own dirs
  fs.chmodSync(path.join(id, "root/.ssh"), 0o700);
  fs.writeFileSync(path.join(id, "etc/machine-id"), crypto.randomBytes(16).toString("hex") + "\n");
  fs.writeFileSync(path.join(id, "etc/hostname"), `${meta.machine}\n`);
  fs.writeFileSync(path.join(id, "etc/hosts"), fs.readFileSync(path.join(base, "etc/hosts"), "utf8") + `127.0.1.1\t${meta.machine}\n`);
  fs.writeFileSync(
    path.join(id, "etc/ssh/sshd_config"),
    `# --- workstations testhost (this host) ---\nPort ${meta.port}\nListenAddress 127.0.0.1\n# --- end testhost (this host) ---\n` +
      fs.readFileSync(path.join(base, "etc/ssh/sshd_config"), "utf8"),
  );
  const hostKeyFile = path.join(id, "etc/ssh/ssh_host_ed25519_key");
  await execCheck("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `root@${meta.machine}`, "-f", hostKeyFile], "host key");
  const privateKeyPath = path.join(dir, "id_ed25519");
  await execCheck("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `testhost@${meta.machine}`, "-f", privateKeyPath], "client key");
  fs.writeFileSync(path.join(id, "root/.ssh/authorized_keys"), fs.readFileSync(`${privateKeyPath}.pub`), { mode: 0o600 });
  const hostKey = fs.readFileSync(`${hostKeyFile}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
  fs.writeFileSync(path.join(dir, "known_hosts"), `[127.0.0.1]:${meta.port} ${hostKey}\n`);
  return hostKey;
}

/** Lay the base (overlay mount or copy) and the identity over it at `${dir}/rootfs`. */
async function layRootfs(dir: string, meta: HostMeta): Promise<void> {
  const base = meta.lower!;
  if (meta.storage === "overlay") {
    const m = mountOverlaySync(dir, base);
    if (m.code !== 0) {
      process.stderr.write(`testhost: overlay mount failed (${m.stderr.trim()}); falling back to cp -a\n`);
      for (const d of ["upper", "work", "rootfs"]) fs.rmSync(path.join(dir, d), { recursive: true, force: true });
      meta.storage = "copy";
      writeMeta(dir, meta);
    }
  }
  if (meta.storage === "copy") await execCheck("cp", ["-a", "--reflink=auto", "--", base, path.join(dir, "rootfs")], "copying the rootfs");
  await execCheck("cp", ["-a", "--", `${path.join(dir, "identity")}/.`, path.join(dir, "rootfs")], "laying the host identity");
}

/** A fresh writable copy of the base rootfs with its own identity. Not booted yet. */
export async function createHost(name: string, opts: CreateHostOptions): Promise<TestHost> {
  const base = await ensureRootfs();
  const { dir, meta } = await newHostDir(name, "nspawn", opts);
  meta.storage = process.env.WORKSTATIONS_TESTHOST_STORAGE === "copy" ? "copy" : "overlay";
  meta.lower = base;
  writeMeta(dir, meta);
  try {
    meta.hostKey = await makeIdentity(dir, meta, base);
    await layRootfs(dir, meta);
    writeMeta(dir, meta);
    return loadHost(dir);
  } catch (e) {
    removeHostDirSync(dir);
    releasePort(meta.port);
    throw e;
  }
}

/** Back to the state createHost left: powered off, the writable layer dropped, the identity laid again. */
export async function reset(h: TestHost): Promise<void> {
  if (nspawnPid(h) !== undefined) await poweroff(h);
  const meta = readMeta(h.dir);
  if (!meta) throw new Error(`reset ${h.machine}: no host at ${h.dir} (destroyed?)`);
  unmountSync(h.dir);
  if (isMountPoint(h.rootfs)) throw new Error(`reset ${h.machine}: cannot unmount ${h.rootfs}`);
  for (const d of ["upper", "work", "rootfs"]) await fsp.rm(path.join(h.dir, d), { recursive: true, force: true, maxRetries: 3 });
  await layRootfs(h.dir, meta);
}

// ---------------------------------------------------------------------------------------
// boot / poweroff / reboot / destroy

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
    if (!meta.lower || !fs.existsSync(meta.lower)) throw new Error(`boot ${h.machine}: base rootfs ${meta.lower} is gone`);
    const m = mountOverlaySync(h.dir, meta.lower);
    if (m.code !== 0) throw new Error(`boot ${h.machine}: overlay mount failed: ${m.stderr.trim()}`);
  }
  cleanupNspawnRuntime(h.machine);

  const logStart = fileSize(h.logPath);
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
  const cg = makeHostCgroups(h.machine);
  if ("why" in cg) fs.appendFileSync(h.logPath, `testhost: nspawn starts in the runner's cgroup (${cg.why})\n`);
  const argv = "why" in cg ? { cmd: "systemd-nspawn", args } : spawnInCgroups(cg.procs, args);
  let child: ChildProcess;
  try {
    child = spawn(argv.cmd, argv.args, { detached: true, stdio: ["ignore", log, log] });
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
  if (!meta.persistent) onExitCleanup(h.dir, () => exitCleanupSync(h));

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
  const dead = () => (exited !== undefined ? `systemd-nspawn exited (code ${exited}) before sshd answered` : undefined);
  await waitBooted(h, { deadline, dead, fail });
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

function waitExit(h: TestHost, pid: number, timeoutMs: number): Promise<boolean> {
  const known = children.get(h.dir);
  return waitPidExit(
    pid,
    timeoutMs,
    () => known !== undefined && known.child.pid === pid && (known.child.exitCode !== null || known.child.signalCode !== null),
  );
}

function forget(h: TestHost): void {
  dropExitCleanup(h.dir);
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
  const logStart = fileSize(h.logPath);
  // The connection may be cut by sshd stopping (exit 255): that is fine.
  const r = await run(h, "systemctl poweroff", { check: false, timeoutMs: 30_000 }).catch((e: Error) => ({
    code: -1,
    stdout: "",
    stderr: e.message,
  }));
  if (r.code !== 0 && r.code !== 255) {
    // Could not ask systemd over ssh: SIGTERM makes nspawn request a clean poweroff of PID 1.
    killQuietly(pid, "SIGTERM");
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
  releasePort(h.port);
  unmountSync(h.dir);
  if (isMountPoint(h.rootfs)) throw new Error(`destroyHost ${h.machine}: cannot unmount ${h.rootfs}`);
  await fsp.rm(h.dir, { recursive: true, force: true, maxRetries: 3 });
}
