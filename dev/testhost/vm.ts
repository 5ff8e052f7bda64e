/**
 * The VM test host (kind "vm"; the interface is dev/testhost/testhost.ts): Debian trixie
 * (systemd 257, tmux 3.5a, cgroup v2) on Debian's cloud kernel in qemu, the kernel and its
 * initrd booted directly (-kernel/-initrd/-append), root's sshd reached through qemu's
 * user-mode network (hostfwd 127.0.0.1:<port> -> guest 22), the serial console in console.log.
 *
 * Layout under ${WORKSTATIONS_CACHE:-$HOME/.cache/workstations}:
 *   vm/trixie-<hash>/                 the image (vm-image.sh): disk.qcow2, vmlinuz, initrd.img,
 *                                     root's key, the host key, image.env
 *   vm/trixie-<hash>/golden-<accel>-<hash>/   the booted snapshot: disk.qcow2 (an overlay of the
 *                                     image's disk as it was when the state was saved) and
 *                                     state (qemu's migration stream: RAM and devices)
 *   vm/accel.json                     which accelerator works here, and why (see chooseAccel)
 *   hosts/<name>-<pid>[-n]/           one host: disk.qcow2 (its overlay over the snapshot's or
 *                                     the image's disk), console.log (serial, every boot),
 *                                     qemu.log, qmp.sock, qemu.pid, host.json, keys, known_hosts
 *
 * The snapshot: booting the image costs a minute or more under emulation, so it is booted
 * once (per image, accelerator and qemu configuration), its state saved with `migrate` to a
 * file, and every new host starts from that state (`-incoming`) on a fresh qcow2 overlay:
 * seconds, no boot. reset() does the same to a used host. After a restore the guest's clock
 * is set from this machine's; a vmgenid device makes the guest's kernel reseed its RNG (the
 * saved RNG state would otherwise repeat in every host). Every later boot (boot after poweroff, reboot) is a real
 * kernel boot from the host's own disk.
 *
 * Environment knobs:
 *   WORKSTATIONS_VM_ACCEL          auto (default: the recorded verdict, else probe kvm by booting) | kvm | tcg
 *   WORKSTATIONS_VM_MEMORY_MB      guest memory (default 2048)
 *   WORKSTATIONS_VM_CPUS           guest CPUs (default 2)
 *   WORKSTATIONS_TESTHOST_EXTRA_PACKAGES   extra trixie packages in the image
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { sleep } from "../wait";
import {
  bootTimeoutMs,
  cacheDir,
  closeMux,
  dropExitCleanup,
  execCheck,
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
  type HostMeta,
  type TestHost,
  type VmMeta,
} from "./common";
import { ROOTFS_PACKAGES } from "./nspawn";
import { hmp, qmp, vmStatus } from "./qmp";

export type Accel = "kvm" | "tcg";

/** Bump to rebuild the cached image when its configuration changes. */
export const IMAGE_CONFIG_VERSION = 1;

/** The image's trixie packages: the nspawn host's, plus a kernel and what a booting machine needs, plus earlyoom. */
export const VM_PACKAGES: readonly string[] = [...ROOTFS_PACKAGES, "linux-image-cloud-amd64", "initramfs-tools", "udev", "kmod", "earlyoom"];

/** Packages trixie does not have, from sid. */
export const VM_SID_PACKAGES: readonly string[] = ["ttyd"];

const IMAGE_SCRIPT = path.join(__dirname, "vm-image.sh");
const QEMU = "qemu-system-x86_64";

/** Markers on the serial console of a boot that will not come up. */
const CONSOLE_FATAL = [
  /Kernel panic - not syncing[^\n]*/,
  /ALERT! [^\n]*/,
  /Dropping to a shell[^\n]*/,
  /You are in emergency mode[^\n]*/,
  /Give root password for maintenance[^\n]*/,
];
/** Markers in qemu's own output of a guest that stopped for good (qemu stays up, paused). */
const QEMU_FATAL = [/KVM internal error[^\n]*/, /emulation failure[^\n]*/];

// ---------------------------------------------------------------------------------------
// the image

function vmCacheDir(): string {
  return path.join(cacheDir(), "vm");
}

function packageList(): string[] {
  const extra = (process.env.WORKSTATIONS_TESTHOST_EXTRA_PACKAGES ?? "").split(/[\s,]+/).filter((p) => p.length > 0);
  return [...new Set([...VM_PACKAGES, ...extra])].sort();
}

/** The cache path of the image for the current package list and configuration. */
export function imagePath(): string {
  const hash = crypto
    .createHash("sha256")
    .update(`${packageList().join(",")}\nsid=${VM_SID_PACKAGES.join(",")}\nconfig=${IMAGE_CONFIG_VERSION}\n${fs.readFileSync(IMAGE_SCRIPT, "utf8")}`)
    .digest("hex")
    .slice(0, 12);
  return path.join(vmCacheDir(), `trixie-${hash}`);
}

/** The cached image: built once by debootstrap (minutes), then reused. */
export async function ensureImage(): Promise<string> {
  const final = imagePath();
  if (fs.existsSync(path.join(final, "disk.qcow2"))) return final;
  for (const tool of [QEMU, "qemu-img", "debootstrap", "mkfs.ext4"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      throw new Error(`VM test host: ${tool} is missing (install: apt-get install qemu-system-x86 qemu-utils debootstrap e2fsprogs; or run bash dev/setup)`);
    }
  }
  await fsp.mkdir(path.dirname(final), { recursive: true });
  const mirror = process.env.WORKSTATIONS_DEBIAN_MIRROR || "http://deb.debian.org/debian";
  const logFile = `${final}.build.log`;
  process.stderr.write(`testhost: building the VM image ${final} (debootstrap trixie, minutes); log: ${logFile}\n`);
  const log = fs.openSync(logFile, "w");
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn("bash", [IMAGE_SCRIPT, final, packageList().join(","), VM_SID_PACKAGES.join(","), mirror], { stdio: ["ignore", log, log] });
      child.on("error", reject);
      child.on("close", (c) => resolve(c));
    });
    if (code !== 0 || !fs.existsSync(path.join(final, "disk.qcow2"))) {
      throw new Error(`VM image build failed (exit ${code}); log ${logFile}:\n${fileTail(logFile, 40)}`);
    }
  } finally {
    fs.closeSync(log);
  }
  return final;
}

// ---------------------------------------------------------------------------------------
// qemu

function memoryMb(): number {
  const n = Number(process.env.WORKSTATIONS_VM_MEMORY_MB ?? "2048");
  return Number.isInteger(n) && n >= 512 ? n : 2048;
}

function cpus(): number {
  const n = Number(process.env.WORKSTATIONS_VM_CPUS ?? "2");
  return Number.isInteger(n) && n >= 1 ? n : 2;
}

/**
 * The kernel command line. mitigations=off: under emulation, page-table isolation turns
 * every system call into a TLB flush; this is a test machine.
 */
export function kernelCmdline(extra = ""): string {
  return `root=/dev/vda rw console=ttyS0,115200 panic=-1 mitigations=off ${extra}`.trim();
}

/**
 * The machine: what must be identical between the VM whose state was saved and the one that
 * loads it (the snapshot's key hashes it). Files, the port and -incoming come on top.
 */
function machineArgs(image: string, accel: Accel, cmdline: string): string[] {
  return [
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-machine",
    "pc",
    "-accel",
    accel === "kvm" ? "kvm" : "tcg,thread=multi",
    "-cpu",
    // arch-capabilities: KVM here refuses to set that MSR for "host" (qemu aborts)
    accel === "kvm" ? "host,-arch-capabilities" : "max",
    "-m",
    String(memoryMb()),
    "-smp",
    String(cpus()),
    "-kernel",
    path.join(image, "vmlinuz"),
    "-initrd",
    path.join(image, "initrd.img"),
    "-append",
    kernelCmdline(cmdline),
    "-device",
    "virtio-rng-pci",
    // a new generation id at every start, restores included: the guest's kernel reseeds its
    // RNG when it changes, so hosts restored from one saved state do not share random numbers
    "-device",
    "vmgenid,guid=auto",
  ];
}

interface QemuRun {
  dir: string;
  image: string;
  accel: Accel;
  cmdline: string;
  port: number;
  /** A saved state to start from (`-incoming`). */
  incoming?: string;
}

function qemuArgs(r: QemuRun): string[] {
  const q = (p: string) => `'${p.replace(/'/g, `'\\''`)}'`;
  return [
    "-name",
    path.basename(r.dir),
    ...machineArgs(r.image, r.accel, r.cmdline),
    // cache=unsafe: a guest's fsync does not reach this (loaded, shared) disk; the disk is disposable
    "-drive",
    `file=${path.join(r.dir, "disk.qcow2")},format=qcow2,if=virtio,cache=unsafe`,
    "-netdev",
    `user,id=net0,hostfwd=tcp:127.0.0.1:${r.port}-:22`,
    "-device",
    "virtio-net-pci,netdev=net0",
    "-chardev",
    `file,id=console,path=${path.join(r.dir, "console.log")},append=on`,
    "-serial",
    "chardev:console",
    "-qmp",
    `unix:${path.join(r.dir, "qmp.sock")},server=on,wait=off`,
    ...(r.incoming ? ["-incoming", `exec:cat ${q(r.incoming)}`] : []),
  ];
}

const children = new Map<string, ChildProcess>();

function qemuPidFile(dir: string): string {
  return path.join(dir, "qemu.pid");
}

/** The pid of the qemu running the host in `dir`, or undefined (guards against pid reuse). */
function qemuPid(dir: string): number | undefined {
  return livePid(qemuPidFile(dir), (argv) => argv[0]?.endsWith(QEMU) === true && argv.includes(path.basename(dir)));
}

export function isRunning(h: TestHost): boolean {
  return qemuPid(h.dir) !== undefined;
}

function qemuVersion(): string {
  const r = spawnSync(QEMU, ["--version"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`VM test host: ${QEMU} does not run (${r.error?.message ?? r.stderr}); install: apt-get install qemu-system-x86`);
  return r.stdout.split("\n")[0].trim();
}

/** Start qemu in the background (it outlives nothing: the exit hook and the reaper kill it). */
function startQemu(r: QemuRun, meta: HostMeta): ChildProcess {
  const qemuLog = path.join(r.dir, "qemu.log");
  fs.appendFileSync(qemuLog, `\n===== ${new Date().toISOString()} ${QEMU} ${r.incoming ? "(restore)" : "(boot)"} =====\n`);
  fs.appendFileSync(path.join(r.dir, "console.log"), `\n===== testhost ${r.incoming ? "restore" : "boot"} ${new Date().toISOString()} (${r.accel}) =====\n`);
  fs.rmSync(path.join(r.dir, "qmp.sock"), { force: true });
  const log = fs.openSync(qemuLog, "a");
  let child: ChildProcess;
  try {
    child = spawn(QEMU, qemuArgs(r), { detached: true, stdio: ["ignore", log, log] });
  } finally {
    fs.closeSync(log);
  }
  child.on("error", (e) => fs.appendFileSync(qemuLog, `testhost: spawn ${QEMU} failed: ${e.message}\n`));
  child.unref();
  if (child.pid !== undefined) fs.writeFileSync(qemuPidFile(r.dir), `${child.pid}\n`);
  children.set(r.dir, child);
  if (!meta.persistent) onExitCleanup(r.dir, () => exitCleanupSync(r.dir));
  return child;
}

function exitCleanupSync(dir: string): void {
  const pid = qemuPid(dir);
  if (pid !== undefined) killQuietly(pid);
  closeMux({ dir, kind: "vm" });
  if (process.env.WORKSTATIONS_TESTHOST_KEEP !== "1") fs.rmSync(dir, { recursive: true, force: true });
}

async function killQemu(dir: string): Promise<void> {
  closeMux({ dir, kind: "vm" });
  const pid = qemuPid(dir);
  if (pid === undefined) return;
  killQuietly(pid);
  if (!(await waitPidExit(pid, 15_000))) throw new Error(`VM ${path.basename(dir)}: qemu (pid ${pid}) did not die`);
}

/** Kill and remove a stale host (its owner died). */
export function reapDir(dir: string, _meta: HostMeta): boolean {
  closeMux({ dir, kind: "vm" });
  const pid = qemuPid(dir);
  if (pid !== undefined) killQuietly(pid);
  for (let i = 0; i < 50 && qemuPid(dir) !== undefined; i++) spawnSync("sleep", ["0.1"]);
  fs.rmSync(dir, { recursive: true, force: true });
  return true;
}

// ---------------------------------------------------------------------------------------
// watching a boot

function firstMatch(text: string, patterns: RegExp[]): string | undefined {
  for (const p of patterns) {
    const m = p.exec(text);
    if (m) return m[0].trim();
  }
  return undefined;
}

/** This boot's part of a log (from `offset`). */
function logSince(file: string, offset: number): string {
  try {
    const buf = fs.readFileSync(file);
    return buf.subarray(Math.min(offset, buf.length)).toString("utf8");
  } catch {
    return "";
  }
}

interface Watch {
  dir: string;
  child: ChildProcess | undefined;
  consoleStart: number;
  qemuStart: number;
  started: number;
  /** Fail when the kernel has printed nothing after this long (a hung accelerator). */
  bannerMs: number;
}

function watchOf(dir: string, bannerMs: number, child?: ChildProcess): Watch {
  return {
    dir,
    child,
    consoleStart: fileSize(path.join(dir, "console.log")),
    qemuStart: fileSize(path.join(dir, "qemu.log")),
    started: Date.now(),
    bannerMs,
  };
}

/** Why this boot cannot succeed any more, or undefined while it still may. */
function deadReason(w: Watch, expectBanner: boolean): string | undefined {
  const qlog = logSince(path.join(w.dir, "qemu.log"), w.qemuStart);
  const qfatal = firstMatch(qlog, QEMU_FATAL);
  if (qfatal) return `qemu: ${qfatal}`;
  if (qemuPid(w.dir) === undefined && (w.child === undefined || w.child.exitCode !== null || w.child.signalCode !== null)) {
    return `qemu exited${w.child?.exitCode != null ? ` (code ${w.child.exitCode})` : ""}: ${qlog.trim().split("\n").slice(-3).join(" | ") || "(no output)"}`;
  }
  const con = logSince(path.join(w.dir, "console.log"), w.consoleStart);
  const fatal = firstMatch(con, CONSOLE_FATAL);
  if (fatal) return `the serial console shows: ${fatal}`;
  if (expectBanner && Date.now() - w.started > w.bannerMs && !/Linux version /.test(con)) {
    return `the kernel printed nothing on the serial console within ${w.bannerMs / 1000}s`;
  }
  return undefined;
}

/** The error of a failed boot: why, then the serial console and qemu's output of that boot. */
async function failBoot(h: TestHost, w: Watch, what: string, why: string, extra = ""): Promise<never> {
  // The kernel's console output can lag behind what the initramfs writes to the console
  // (seconds, under emulation): let it drain before qemu goes.
  for (let size = -1, i = 0; i < 20 && isRunning(h) && fileSize(h.logPath) !== size; i++) {
    size = fileSize(h.logPath);
    await sleep(500);
  }
  await killQemu(h.dir).catch(() => undefined);
  const con = logSince(h.logPath, w.consoleStart);
  throw new Error(
    `${what} ${h.machine}: ${why}\n${extra}` +
      markerContext(con) +
      `--- serial console (${h.logPath}), last lines of this boot:\n${tailLines(con, 50)}\n` +
      `--- qemu (${path.join(h.dir, "qemu.log")}):\n${tailLines(logSince(path.join(h.dir, "qemu.log"), w.qemuStart), 10)}`,
  );
}

/** The lines around the console's first fatal marker, when the last lines do not hold it. */
function markerContext(con: string): string {
  const lines = tailText(con, 1_000_000).split("\n");
  const at = lines.findIndex((l) => CONSOLE_FATAL.some((p) => p.test(l)));
  if (at < 0 || at >= lines.length - 50) return "";
  return `--- serial console around that line:\n${lines.slice(Math.max(0, at - 15), at + 5).join("\n")}\n`;
}

function tailLines(text: string, n: number): string {
  return tailText(text, n).trim() || "(empty)";
}

// ---------------------------------------------------------------------------------------
// create, boot, restore

function vmMeta(h: TestHost): { meta: HostMeta; vm: VmMeta } {
  const meta = readMeta(h.dir);
  if (!meta?.vm) throw new Error(`VM ${h.machine}: no host at ${h.dir} (destroyed?)`);
  return { meta, vm: meta.vm };
}

/** A new VM host: its directory, keys and port; no disk yet (boot lays it). */
export async function createHost(name: string, opts: CreateHostOptions, accel?: Accel): Promise<TestHost> {
  const image = await ensureImage();
  const chosen = accel ?? (await chooseAccel(image)).accel;
  const { dir, meta } = await newHostDir(name, "vm", opts);
  try {
    meta.hostKey = fs.readFileSync(path.join(image, "ssh_host_ed25519_key.pub"), "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
    fs.copyFileSync(path.join(image, "id_ed25519"), path.join(dir, "id_ed25519"));
    fs.chmodSync(path.join(dir, "id_ed25519"), 0o600);
    fs.writeFileSync(path.join(dir, "known_hosts"), `[127.0.0.1]:${meta.port} ${meta.hostKey}\n`);
    meta.vm = { image, accel: chosen, cmdline: opts.vmCmdline ?? "", coldBoot: opts.vmColdBoot === true, golden: "", started: false };
    writeMeta(dir, meta);
    return loadHost(dir);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    releasePort(meta.port);
    throw e;
  }
}

/** A new qcow2 overlay as the host's disk, over `backing` (the image's or the snapshot's disk). */
async function layDisk(dir: string, backing: string): Promise<void> {
  const disk = path.join(dir, "disk.qcow2");
  fs.rmSync(disk, { force: true });
  await execCheck("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing, disk], "qemu-img create");
}

/**
 * Boot the VM. A new host (or one after reset) starts from the booted snapshot (built here
 * the first time: one real boot); after a poweroff it boots its own disk.
 */
export async function boot(h: TestHost): Promise<void> {
  if (isRunning(h)) throw new Error(`boot ${h.machine}: already running`);
  const { meta, vm } = vmMeta(h);
  if (!vm.started && !vm.coldBoot && vm.cmdline === "") {
    await restore(h, meta, await ensureGolden(vm.image, vm.accel));
  } else {
    if (!fs.existsSync(h.rootfs)) await layDisk(h.dir, path.join(vm.image, "disk.qcow2"));
    await coldBoot(h, meta);
  }
  meta.vm!.started = true;
  writeMeta(h.dir, meta);
}

/** A real kernel boot of the host's disk; fails early, with the serial console, when the boot cannot come up. */
async function coldBoot(h: TestHost, meta: HostMeta, timeoutMs = bootTimeoutMs(600), bannerMs = 60_000): Promise<void> {
  const vm = meta.vm!;
  const w = watchOf(h.dir, bannerMs);
  w.child = startQemu({ dir: h.dir, image: vm.image, accel: vm.accel, cmdline: vm.cmdline, port: meta.port }, meta);
  const deadline = Date.now() + timeoutMs;
  await waitBooted(h, {
    deadline,
    dead: () => deadReason(w, true),
    fail: (why, extra) => failBoot(h, w, "boot", Date.now() > deadline ? `${why} (within ${timeoutMs / 1000}s, ${vm.accel})` : why, extra),
  });
}

/** Start the host from a saved state on a fresh overlay of the state's disk, then set its clock and stir its entropy. */
async function restore(h: TestHost, meta: HostMeta, golden: string): Promise<void> {
  const vm = meta.vm!;
  await layDisk(h.dir, path.join(golden, "disk.qcow2"));
  const w = watchOf(h.dir, 0);
  w.child = startQemu({ dir: h.dir, image: vm.image, accel: vm.accel, cmdline: vm.cmdline, port: meta.port, incoming: path.join(golden, "state") }, meta);
  const deadline = Date.now() + 120_000;
  const fail = (why: string, extra?: string) => failBoot(h, w, "restore", `${why} (snapshot ${golden})`, extra);
  // The state was saved from a stopped VM: it arrives paused, and runs on `cont`.
  for (let st = ""; st !== "running"; await sleep(100)) {
    const dead = deadReason(w, false);
    if (dead !== undefined || Date.now() > deadline) return fail(dead ?? `the saved state did not load within 120s (qemu status ${st || "unknown"})`);
    st = await vmStatus(path.join(h.dir, "qmp.sock")).catch(() => "");
    if (st === "paused") await qmp(path.join(h.dir, "qmp.sock"), [{ execute: "cont" }]);
  }
  await waitBooted(h, { deadline, dead: () => deadReason(w, false), fail });
  const now = Date.now();
  await run(h, `date -u -s @${Math.floor(now / 1000)}.${String(now % 1000).padStart(3, "0")} >/dev/null && cat > /dev/urandom`, {
    stdin: crypto.randomBytes(256),
    timeoutMs: 30_000,
  });
  vm.golden = golden;
}

// ---------------------------------------------------------------------------------------
// the booted snapshot

function goldenPath(image: string, accel: Accel): string {
  const hash = crypto
    .createHash("sha256")
    .update(`${qemuVersion()}\n${machineArgs(image, accel, "").join("\n")}`)
    .digest("hex")
    .slice(0, 12);
  return path.join(image, `golden-${accel}-${hash}`);
}

/**
 * The booted snapshot of `image` under `accel`: one real boot of a scratch host, quiesced
 * (caches dropped, so the saved RAM is small), its state migrated to a file, its disk kept
 * as the snapshot's disk. Built once; concurrent builders race and one rename wins.
 */
export async function ensureGolden(image: string, accel: Accel): Promise<string> {
  const final = goldenPath(image, accel);
  if (fs.existsSync(path.join(final, "state"))) return final;
  process.stderr.write(`testhost: booting the VM once to save its booted state (${accel}): ${final}\n`);
  const h = await createHost("vm-snapshot", {}, accel);
  try {
    const { meta } = vmMeta(h);
    await layDisk(h.dir, path.join(image, "disk.qcow2"));
    const t0 = Date.now();
    await coldBoot(h, meta);
    const bootMs = Date.now() - t0;
    await run(h, "journalctl --flush --sync; sync; echo 3 > /proc/sys/vm/drop_caches; fstrim / 2>/dev/null || true", { timeoutMs: 120_000 });
    const tmp = `${final}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    const sock = path.join(h.dir, "qmp.sock");
    const state = path.join(tmp, "state");
    await qmp(sock, [{ execute: "stop" }, { execute: "migrate", arguments: { uri: `exec:cat > '${state.replace(/'/g, `'\\''`)}'` } }]);
    await waitMigrated(sock);
    await qmp(sock, [{ execute: "quit" }]).catch(() => undefined);
    await waitPidExit(children.get(h.dir)?.pid ?? -1, 30_000);
    fs.renameSync(h.rootfs, path.join(tmp, "disk.qcow2"));
    fs.chmodSync(path.join(tmp, "disk.qcow2"), 0o444);
    const info = { accel, bootMs, stateBytes: fs.statSync(state).size, qemu: qemuVersion(), created: new Date().toISOString() };
    fs.writeFileSync(path.join(tmp, "golden.json"), JSON.stringify(info, null, 2) + "\n");
    try {
      fs.renameSync(tmp, final);
    } catch {
      fs.rmSync(tmp, { recursive: true, force: true }); // another process made it first
    }
    return final;
  } finally {
    await destroyHost(h);
  }
}

async function waitMigrated(sock: string): Promise<void> {
  for (const deadline = Date.now() + 600_000; Date.now() < deadline; await sleep(250)) {
    const [m] = (await qmp(sock, [{ execute: "query-migrate" }])) as { status?: string; "error-desc"?: string }[];
    if (m.status === "completed") return;
    if (m.status === "failed" || m.status === "cancelled") throw new Error(`saving the VM state: migration ${m.status}: ${m["error-desc"] ?? ""}`);
  }
  throw new Error("saving the VM state: migration did not complete within 600s");
}

// ---------------------------------------------------------------------------------------
// poweroff, reboot, reset, destroy

function forget(h: TestHost): void {
  closeMux(h);
  dropExitCleanup(h.dir);
  children.delete(h.dir);
  fs.rmSync(qemuPidFile(h.dir), { force: true });
}

/** Clean shutdown: `systemctl poweroff` in the guest, then qemu exits. */
export async function poweroff(h: TestHost): Promise<void> {
  const pid = qemuPid(h.dir);
  if (pid === undefined) return forget(h);
  const w = watchOf(h.dir, 0);
  await run(h, "systemctl poweroff", { check: false, timeoutMs: 30_000 }).catch(() => undefined);
  const stopped = await waitPidExit(pid, 180_000);
  if (!stopped)
    await failBoot(h, w, "poweroff", "qemu did not exit within 180s of systemctl poweroff (killed)").catch((e: Error) => {
      forget(h);
      throw e;
    });
  forget(h);
}

/** A real reboot: `systemctl reboot` in the guest; qemu resets the machine and boots the kernel again. */
export async function reboot(h: TestHost): Promise<void> {
  if (!isRunning(h)) throw new Error(`reboot ${h.machine}: not running`);
  const bootId = (await run(h, "cat /proc/sys/kernel/random/boot_id", { timeoutMs: 30_000 })).stdout.trim();
  const w = watchOf(h.dir, 60_000);
  await run(h, "systemctl reboot", { check: false, timeoutMs: 30_000 }).catch(() => undefined);
  const timeoutMs = bootTimeoutMs(600);
  const deadline = Date.now() + timeoutMs;
  await waitBooted(h, {
    deadline,
    notBootId: bootId,
    dead: () => deadReason(w, true),
    fail: (why, extra) => failBoot(h, w, "reboot", Date.now() > deadline ? `${why} (within ${timeoutMs / 1000}s)` : why, extra),
  });
}

/** Back to the booted snapshot, running (a cold-boot host: its image's disk, booted). */
export async function reset(h: TestHost): Promise<void> {
  await killQemu(h.dir);
  forget(h);
  const { meta } = vmMeta(h);
  meta.vm!.started = false;
  fs.rmSync(h.rootfs, { force: true });
  writeMeta(h.dir, meta);
  await boot(h);
}

/** Kill the VM if it runs and remove the host directory. Idempotent. */
export async function destroyHost(h: TestHost): Promise<void> {
  await killQemu(h.dir);
  forget(h);
  releasePort(h.port);
  await fsp.rm(h.dir, { recursive: true, force: true, maxRetries: 3 });
}

// ---------------------------------------------------------------------------------------
// internal snapshots (savevm/loadvm in the host's own disk), for comparison in bench:testhost

export async function saveSnapshot(h: TestHost, name: string): Promise<void> {
  await hmp(path.join(h.dir, "qmp.sock"), `savevm ${name}`);
}

export async function loadSnapshot(h: TestHost, name: string): Promise<void> {
  closeMux(h); // the guest's end of the shared login goes back to the saved moment: it is gone
  await hmp(path.join(h.dir, "qmp.sock"), `loadvm ${name}`);
  if ((await vmStatus(path.join(h.dir, "qmp.sock"))) !== "running") await qmp(path.join(h.dir, "qmp.sock"), [{ execute: "cont" }]);
  const now = Date.now();
  await run(h, `date -u -s @${Math.floor(now / 1000)}.${String(now % 1000).padStart(3, "0")} >/dev/null`, { timeoutMs: 30_000 });
}

// ---------------------------------------------------------------------------------------
// the accelerator

export interface AccelVerdict {
  accel: Accel;
  /** Why: the KVM probe's outcome, or what forced the choice. */
  why: string;
  /** qemu version, this kernel, the image: a verdict holds for these only. */
  key: string;
  at: string;
  /** The KVM probe's boot time, when it booted. */
  kvmBootMs?: number;
}

function accelFile(): string {
  return path.join(vmCacheDir(), "accel.json");
}

/** Whether this process may open /dev/kvm read-write. */
function kvmDevice(): string | undefined {
  try {
    fs.accessSync("/dev/kvm", fs.constants.R_OK | fs.constants.W_OK);
    return undefined;
  } catch (e) {
    return `/dev/kvm is not usable: ${(e as Error).message}`;
  }
}

/**
 * The accelerator: $WORKSTATIONS_VM_ACCEL if kvm or tcg; else (auto) the verdict recorded for
 * this qemu, kernel and image, else a probe: boot the image under KVM with short limits (kernel
 * output within 30 s, ssh within 3 min); a failure or hang means TCG. The device's presence
 * proves nothing: here a KVM guest dies in the kernel's decompressor (see README).
 */
export async function chooseAccel(image: string, reprobe = false): Promise<AccelVerdict> {
  const want = process.env.WORKSTATIONS_VM_ACCEL ?? "auto";
  const key = `${qemuVersion()} | host ${os.release()} | ${path.basename(image)}`;
  const at = new Date().toISOString();
  if (want === "kvm" || want === "tcg") return { accel: want, why: `WORKSTATIONS_VM_ACCEL=${want}`, key, at };
  if (want !== "auto") throw new Error(`WORKSTATIONS_VM_ACCEL=${want}: expected auto, kvm or tcg`);
  if (!reprobe) {
    try {
      const v = JSON.parse(fs.readFileSync(accelFile(), "utf8")) as AccelVerdict;
      if (v.key === key) return v;
    } catch {
      /* none yet */
    }
  }
  const noDevice = kvmDevice();
  const verdict: AccelVerdict = noDevice ? { accel: "tcg", why: noDevice, key, at } : await probeKvm(image, key);
  fs.mkdirSync(vmCacheDir(), { recursive: true });
  fs.writeFileSync(accelFile(), JSON.stringify(verdict, null, 2) + "\n");
  process.stderr.write(`testhost: VM accelerator ${verdict.accel}: ${verdict.why}\n`);
  return verdict;
}

async function probeKvm(image: string, key: string): Promise<AccelVerdict> {
  const at = new Date().toISOString();
  const h = await createHost("vm-kvm-probe", { vmColdBoot: true }, "kvm");
  try {
    const { meta } = vmMeta(h);
    await layDisk(h.dir, path.join(image, "disk.qcow2"));
    const t0 = Date.now();
    await coldBoot(h, meta, 180_000, 30_000);
    return { accel: "kvm", why: "a KVM boot of the image reached ssh", key, at, kvmBootMs: Date.now() - t0 };
  } catch (e) {
    const first = (e as Error).message.split("\n")[0];
    return { accel: "tcg", why: `the KVM probe boot failed: ${first}`, key, at };
  } finally {
    await destroyHost(h);
  }
}
