// The VM test host's own machinery (dev/testhost/vm.ts): what runs in it (trixie, systemd 257,
// tmux 3.5a, cgroup v2, ttyd, earlyoom), the snapshot reset (a clean disk, the right clock,
// entropy that differs between restores), and a VM that does not boot: it fails early with
// its serial console in the error, not with a timeout alone.
import "./vm-env";
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { boot, createHost, destroyHost, reset, run, type TestHost } from "../../dev/testhost/testhost";
import { chooseAccel, ensureImage } from "../../dev/testhost/vm";

describe("VM test host", { timeout: 40 * 60_000 }, () => {
  let h: TestHost;
  const sh = async (cmd: string) => (await run(h, cmd)).stdout.trim();

  before(async () => {
    h = await createHost("vm-harness");
    await boot(h);
  });
  after(async () => {
    if (h) await destroyHost(h);
  });

  test("Debian trixie on its cloud kernel: systemd 257, tmux 3.5a, cgroup v2, ttyd 1.7.7, earlyoom running", async () => {
    assert.match(await sh("uname -r"), /-cloud-amd64$/);
    assert.match(await sh(". /etc/os-release && echo $VERSION_CODENAME"), /^trixie$/);
    assert.match(await sh("systemctl --version | head -1"), /^systemd 257\b/);
    assert.equal(await sh("tmux -V"), "tmux 3.5a");
    assert.equal(await sh("stat -fc %T /sys/fs/cgroup"), "cgroup2fs");
    assert.match(await sh("ttyd --version"), /1\.7\.7/);
    assert.equal(await sh("systemctl is-active earlyoom.service"), "active");
    assert.match(await sh("cat /sys/fs/cgroup/cgroup.controllers"), /\bmemory\b/);
  });

  test("the accelerator that ran is the one recorded", async () => {
    const verdict = await chooseAccel(await ensureImage());
    assert.ok(verdict.why.length > 0);
    const virt = await sh("systemd-detect-virt --vm");
    assert.equal(virt, verdict.accel === "kvm" ? "kvm" : "qemu", `recorded ${verdict.accel} (${verdict.why}), the guest sees ${virt}`);
  });

  test("reset: back to the snapshot (the disk too), the clock set, the entropy pool stirred", async () => {
    await sh("echo scribbled > /root/scribble && systemctl mask --now earlyoom.service");
    const random1 = await sh("head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'");
    await reset(h);
    assert.equal(await sh("test -e /root/scribble && echo present || echo absent"), "absent");
    assert.equal(await sh("systemctl is-active earlyoom.service"), "active");
    const guest = Number(await sh("date +%s"));
    assert.ok(Math.abs(guest - Date.now() / 1000) < 30, `guest clock ${guest}, here ${Date.now() / 1000}`);
    // Without the stirring, the same saved RNG state gives the same bytes after every restore.
    await reset(h);
    const random2 = await sh("head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'");
    await reset(h);
    const random3 = await sh("head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'");
    assert.notEqual(random2, random3);
    assert.notEqual(random1, random2);
  });

  test("a VM that does not boot (root on a disk it has not got) fails early, with its serial console", async () => {
    const bad = await createHost("vm-badroot", { vmCmdline: "root=/dev/vdz rootdelay=3" });
    try {
      await assert.rejects(boot(bad), (e: Error) => {
        assert.match(e.message, /serial console shows: ALERT! .*\/dev\/vdz/, e.message);
        assert.match(e.message, /--- serial console \(.*console\.log\)/);
        assert.match(e.message, /^\[ *\d+\.\d+\] /m, "the kernel's lines of that boot are in the error");
        assert.ok(
          e.message
            .split("\n")
            .slice(1)
            .some((l) => /ALERT! /.test(l)),
          "the console's lines around the failure are in the error",
        );
        assert.doesNotMatch(e.message.split("\n")[0], /in time/, "failed on the console's marker, not the timeout");
        return true;
      });
    } finally {
      await destroyHost(bad);
    }
  });
});
