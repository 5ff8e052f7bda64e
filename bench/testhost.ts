// Timings of the test hosts (dev/testhost/): the nspawn host and the VM, side by side.
//
//   npm run bench:testhost                 warm: the cached rootfs and VM image (built if missing)
//   npm run bench:testhost -- --cold       also builds the rootfs, the VM image, the KVM verdict
//                                          and the VM's snapshot from nothing, in a throwaway
//                                          cache dir (downloads every .deb again)
//   npm run bench:testhost -- --kind vm    one kind only (nspawn | vm)
//
// VM rows, per accelerator (KVM when the probe boots it, else why not; TCG always):
// bootToSsh (a cold kernel boot of a fresh disk to ssh and systemd running; this is also what
// "re-create the overlay and reboot" costs), snapshotBuild (that boot plus saving the state),
// restoreToSsh (a new host from the snapshot), rebootToSsh (guest `systemctl reboot`, qemu
// stays), poweroff, reset (back to the snapshot), savevm/loadvm (qemu's internal snapshot in the
// host's own qcow2, the alternative to reset). Every row carries the 1-minute load average
// when it ended: this machine is shared, so the figures are noisy.
//
// Prints one JSON object on stdout.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

type Row = { ms: number; load1: number } | { unavailable: string } | string;
type Rows = Record<string, Row>;

async function time<T>(rows: Rows, key: string, f: () => Promise<T>): Promise<T> {
  const t0 = process.hrtime.bigint();
  const r = await f();
  const ms = Math.round(Number(process.hrtime.bigint() - t0) / 1e6);
  rows[key] = { ms, load1: Number(os.loadavg()[0].toFixed(1)) };
  process.stderr.write(`${key}: ${ms} ms (load ${os.loadavg()[0].toFixed(1)})\n`);
  return r;
}

/** Runs `f` on a fresh set of rows; a failure is recorded as the row "failed", after the rows it got. */
async function rowsOf(f: (t: Rows) => Promise<void>): Promise<Rows> {
  const t: Rows = {};
  await f(t).catch((e: Error) => {
    t.failed = e.message.split("\n")[0];
  });
  return t;
}

async function benchNspawn(t: Rows, cold: boolean): Promise<void> {
  const th = await import("../dev/testhost/testhost");
  await time(t, cold ? "rootfsCold" : "rootfs", () => th.ensureRootfs());
  const h = await time(t, "createHost", () => th.createHost("bench", { kind: "nspawn" }));
  try {
    await time(t, "bootToSsh", () => th.boot(h));
    await time(t, "ssh10xTrue", async () => {
      for (let i = 0; i < 10; i++) await th.run(h, "true");
    });
    await time(t, "rebootToSsh", () => th.reboot(h));
    await time(t, "poweroff", () => th.poweroff(h));
    await time(t, "reset", () => th.reset(h));
    await time(t, "bootAgain", () => th.boot(h));
  } finally {
    await time(t, "destroyHost", () => th.destroyHost(h));
  }
}

async function benchVmAccel(t: Rows, image: string, accel: "kvm" | "tcg"): Promise<void> {
  const th = await import("../dev/testhost/testhost");
  const vm = await import("../dev/testhost/vm");
  const coldHost = await vm.createHost("bench-cold", { vmColdBoot: true }, accel);
  try {
    await time(t, "bootToSsh", () => th.boot(coldHost));
  } finally {
    await th.destroyHost(coldHost);
  }
  const golden = await time(t, "snapshotBuild", () => vm.ensureGolden(image, accel));
  t.snapshot = fs.readFileSync(path.join(golden, "golden.json"), "utf8").replace(/\s+/g, " "); // its boot, size, when
  const h = await time(t, "createHost", () => vm.createHost("bench", {}, accel));
  try {
    await time(t, "restoreToSsh", () => th.boot(h));
    await time(t, "ssh10xTrue", async () => {
      for (let i = 0; i < 10; i++) await th.run(h, "true");
    });
    await time(t, "rebootToSsh", () => th.reboot(h));
    await time(t, "reset", () => th.reset(h));
    await time(t, "savevm", () => vm.saveSnapshot(h, "bench"));
    await th.run(h, "echo changed > /root/changed");
    await time(t, "loadvm", () => vm.loadSnapshot(h, "bench"));
    if ((await th.run(h, "test -e /root/changed", { check: false })).code === 0) throw new Error("loadvm left a file written after savevm");
    await time(t, "poweroff", () => th.poweroff(h));
  } finally {
    await time(t, "destroyHost", () => th.destroyHost(h));
  }
}

async function benchVm(cold: boolean): Promise<Record<string, unknown>> {
  const vm = await import("../dev/testhost/vm");
  const image: Rows = {};
  const dir = await time(image, cold ? "imageCold" : "image", () => vm.ensureImage());
  const verdict = await vm.chooseAccel(dir, cold);
  const out: Record<string, unknown> = { image: image[cold ? "imageCold" : "image"], verdict, env: fs.readFileSync(path.join(dir, "image.env"), "utf8") };
  if (verdict.accel === "kvm") out.kvm = await rowsOf((t) => benchVmAccel(t, dir, "kvm"));
  else out.kvm = { unavailable: verdict.why };
  out.tcg = await rowsOf((t) => benchVmAccel(t, dir, "tcg"));
  return out;
}

async function main(): Promise<void> {
  const cold = process.argv.includes("--cold");
  const k = process.argv.indexOf("--kind");
  const kinds = k >= 0 ? [process.argv[k + 1]] : ["nspawn", "vm"];
  let tmpCache: string | undefined;
  if (cold) {
    const parent = process.env.WORKSTATIONS_CACHE ?? path.join(os.homedir(), ".cache", "workstations");
    fs.mkdirSync(parent, { recursive: true });
    tmpCache = fs.mkdtempSync(path.join(parent, "bench-cold-"));
    process.env.WORKSTATIONS_CACHE = tmpCache;
  }
  const out: Record<string, unknown> = { cold, cpus: os.cpus().length, loadAtStart: os.loadavg().map((l) => Number(l.toFixed(1))) };
  try {
    // one kind failing (a host that does not stop, say) still leaves the other's figures
    const attempt = async (f: () => Promise<unknown>) => f().catch((e: Error) => ({ failed: e.message.split("\n")[0] }));
    if (kinds.includes("nspawn")) out.nspawn = await rowsOf((t) => benchNspawn(t, cold));
    if (kinds.includes("vm")) out.vm = await attempt(() => benchVm(cold));
  } finally {
    if (tmpCache) fs.rmSync(tmpCache, { recursive: true, force: true });
  }
  out.loadAtEnd = os.loadavg().map((l) => Number(l.toFixed(1)));
  console.log(JSON.stringify(out, null, 2));
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
