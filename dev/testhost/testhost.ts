/**
 * The test host interface: a real systemd machine reached over SSH on a loopback port exactly
 * the way @pulumi/command's remote.Command reaches the devvm (one remote command string,
 * stdin piped, user root, host key pinned). Two kinds behind the same calls:
 *
 *   "nspawn" (default)  Debian bookworm (systemd 252, tmux 3.3a) in systemd-nspawn on this
 *                       machine's cgroup hierarchy: seconds to boot (dev/testhost/nspawn.ts)
 *   "vm"                Debian trixie (systemd 257, tmux 3.5a, cgroup v2) in a qemu VM with the
 *                       cloud kernel: a real kernel, real reboots, memory and OOM behaviour
 *                       (dev/testhost/vm.ts)
 *
 * The kind is createHost's `kind` option, else $WORKSTATIONS_TESTHOST (nspawn | vm), else
 * nspawn; so every host suite runs on either (tests/vm/ runs the host suites on the VM).
 *
 *   createHost(name, opts)  a new host, not booted (the VM's first boot restores its snapshot)
 *   boot(h)                 boot; resolves when root's ssh works and systemd is running
 *   run(h, cmd, opts)       one command string over ssh as root
 *   reboot(h)               a real reboot (nspawn: poweroff and a new container; vm: the guest reboots)
 *   poweroff(h)             clean shutdown; boot(h) starts it again from its disk
 *   reset(h)                back to a fresh host (vm: the booted snapshot, running; nspawn: the base, powered off)
 *   destroyHost(h)          kill and remove (idempotent)
 *
 * Layout under ${WORKSTATIONS_CACHE:-$HOME/.cache/workstations}: hosts/<name>-<pid>[-n]/ per host
 * (host.json, id_ed25519, known_hosts, console.log, and the kind's own files); the cached
 * images are rootfs/ (nspawn) and vm/ (the VM): see each kind's file.
 *
 * Environment knobs (both kinds):
 *   WORKSTATIONS_TESTHOST                 nspawn (default) | vm
 *   WORKSTATIONS_CACHE                    cache root (see docs/CONTRACTS.md)
 *   WORKSTATIONS_DEBIAN_MIRROR            debootstrap mirror (default http://deb.debian.org/debian)
 *   WORKSTATIONS_TESTHOST_BOOT_TIMEOUT    seconds to wait for a boot (nspawn 180, vm 600)
 *   WORKSTATIONS_TESTHOST_KEEP=1          on process exit, kill leftover hosts but keep their dirs
 */
import * as nspawn from "./nspawn";
import * as vm from "./vm";
import { fileTail, listHostDirs, ownerAlive, run, type CreateHostOptions, type HostKind, type TestHost } from "./common";
import * as fs from "node:fs";

export { cacheDir, loadHost, run } from "./common";
export type { CreateHostOptions, HostKind, RunOptions, RunResult, TestHost } from "./common";
export { ROOTFS_CONFIG_VERSION, ROOTFS_PACKAGES, ensureRootfs, rootfsPath } from "./nspawn";

/** The kind createHost makes without a `kind` option: $WORKSTATIONS_TESTHOST, else "nspawn". */
export function defaultKind(): HostKind {
  const k = process.env.WORKSTATIONS_TESTHOST ?? "";
  if (k === "" || k === "nspawn") return "nspawn";
  if (k === "vm") return "vm";
  throw new Error(`WORKSTATIONS_TESTHOST=${k}: expected nspawn or vm`);
}

const impl = (h: Pick<TestHost, "kind">) => (h.kind === "vm" ? vm : nspawn);

/** A new host of `opts.kind` (default: defaultKind()), with its own identity and port. Not booted yet. */
export async function createHost(name = "testhost", opts: CreateHostOptions = {}): Promise<TestHost> {
  reapStaleHosts();
  const kind = opts.kind ?? defaultKind();
  return kind === "vm" ? vm.createHost(name, opts) : nspawn.createHost(name, opts);
}

/** Boot the host. Resolves when root's ssh works and `systemctl is-system-running --wait` says running or degraded. */
export function boot(h: TestHost): Promise<void> {
  return impl(h).boot(h);
}

/** Clean shutdown: `systemctl poweroff` inside, then wait for the host's process (nspawn, qemu) to exit. */
export function poweroff(h: TestHost): Promise<void> {
  return impl(h).poweroff(h);
}

/** A real reboot: new PID 1, fresh /run and /tmp, new boot id (the VM: a new kernel boot). */
export async function reboot(h: TestHost): Promise<void> {
  if (h.kind === "vm") return vm.reboot(h);
  await nspawn.poweroff(h);
  await nspawn.boot(h);
}

/** Back to a fresh host: the VM to its booted snapshot (running); nspawn to its base (powered off: boot it). */
export function reset(h: TestHost): Promise<void> {
  return impl(h).reset(h);
}

/** The VM's view of this machine's loopback (qemu's user network: 10.0.2.2 is the machine's 127.0.0.1). */
export const VM_MACHINE_ADDR = "10.0.2.2";
/** The unit that forwards the VM's 127.0.0.1:PORT to this machine's (reachMachine). */
export const LOOPBACK_UNIT = "testhost-loopback.service";

/**
 * Makes this machine's loopback services on `ports` (Vault, Gitea, the API server, a fake)
 * reachable inside the host at the same URL, `127.0.0.1:PORT`, so one configuration serves the
 * Pulumi runner here and the programs on the host. nspawn shares this machine's network: nothing
 * to do. The VM gets an enabled unit (so it holds across its reboots) running a TCP relay in
 * Node from its 127.0.0.1:PORT to 10.0.2.2:PORT. Test plumbing only, like nspawn's shared
 * network: the program never sees it.
 */
export async function reachMachine(h: TestHost, ports: readonly number[]): Promise<void> {
  if (h.kind !== "vm" || ports.length === 0) return;
  for (const p of ports) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`reachMachine: bad port ${p}`);
  const relay = `const net=require("net");for(const p of process.argv.slice(1).map(Number))net.createServer((c)=>{const u=net.connect(p,"${VM_MACHINE_ADDR}");c.pipe(u);u.pipe(c);c.on("error",()=>u.destroy());u.on("error",()=>c.destroy());}).listen(p,"127.0.0.1");`;
  const unit = [
    "[Unit]",
    `Description=test plumbing: this VM's 127.0.0.1 ports ${ports.join(" ")} relayed to the machine's`,
    "After=network.target",
    "[Service]",
    `ExecStart=/usr/bin/node -e '${relay}' ${ports.join(" ")}`,
    "Restart=always",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
  await run(
    h,
    `cat >/etc/systemd/system/${LOOPBACK_UNIT} && systemctl daemon-reload && systemctl enable ${LOOPBACK_UNIT} && systemctl restart ${LOOPBACK_UNIT}`,
    {
      stdin: unit,
    },
  );
  for (const p of ports)
    await run(h, `for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/${p}) 2>/dev/null && exit 0; sleep 0.1; done; echo "port ${p} not relayed" >&2; exit 1`);
}

/** True when the host's container or VM is running. */
export function isRunning(h: TestHost): boolean {
  return impl(h).isRunning(h);
}

/** Kill the host if it runs and remove its directory. Idempotent. */
export function destroyHost(h: TestHost): Promise<void> {
  return impl(h).destroyHost(h);
}

/**
 * Kill and remove hosts left behind by processes that died without cleaning up
 * (SIGKILL, OOM, a crashed test runner). Persistent (CLI) hosts and hosts whose owner is
 * still alive are left alone.
 */
export function reapStaleHosts(): string[] {
  const reaped: string[] = [];
  for (const { dir, meta } of listHostDirs()) {
    if (!meta) {
      // Possibly being created right now by another process: only old dirs are debris.
      try {
        const st = fs.statSync(dir);
        if (!st.isDirectory() || Date.now() - st.mtimeMs < 30 * 60_000) continue;
      } catch {
        continue;
      }
      nspawn.removeDebrisSync(dir);
      reaped.push(dir);
      continue;
    }
    if (meta.persistent) continue;
    if (ownerAlive(meta)) continue;
    if (impl({ kind: meta.kind ?? "nspawn" }).reapDir(dir, meta)) reaped.push(dir);
  }
  return reaped;
}

/** The last lines of a host's console log (nspawn output or the VM's serial console). */
export function consoleTail(h: TestHost, lines = 60): string {
  return fileTail(h.logPath, lines);
}
