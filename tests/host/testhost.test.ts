// The test host itself, of the kind $WORKSTATIONS_TESTHOST names (nspawn by default; the VM
// through tests/vm/testhost.vm.test.ts): boots, runs systemd properly, survives a real reboot
// (a unit enabled for boot runs in the new boot), and carries commands and stdin the way
// @pulumi/command does.
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import { hostCgroupDirs } from "../../dev/testhost/cgroup";
import { boot, createHost, defaultKind, destroyHost, isRunning, reboot, run, type TestHost } from "../../dev/testhost/testhost";

const kind = defaultKind();

/** Units allowed to be failed on this host. None today: any failure is a regression. */
const EXPECTED_FAILED_UNITS = new Set<string>();

async function systemState(h: TestHost): Promise<void> {
  const r = await run(h, "systemctl is-system-running", { check: false });
  const state = r.stdout.trim();
  assert.ok(state === "running" || state === "degraded", `system state is ${state}: ${r.stderr}`);
  if (state === "degraded") {
    const failed = (await run(h, "systemctl --failed --plain --no-legend --no-pager")).stdout
      .split("\n")
      .map((l) => l.trim().split(/\s+/)[0])
      .filter((u) => u && u.length > 0);
    const unexpected = failed.filter((u) => !EXPECTED_FAILED_UNITS.has(u));
    if (unexpected.length > 0) {
      const status = await run(h, `systemctl status --no-pager --lines=20 ${unexpected.join(" ")}`, { check: false });
      assert.fail(`degraded, unexpected failed units: ${unexpected.join(", ")}\n${status.stdout}`);
    }
  }
}

describe(`${kind} test host`, { timeout: 40 * 60_000 }, () => {
  let h: TestHost;

  before(async () => {
    // Fails with the reason (nspawn output, console tail) when nspawn cannot run here.
    h = await createHost("selftest");
    await boot(h);
  });

  after(async () => {
    if (h) await destroyHost(h);
  });

  test("host key is the one we pinned; root login by key only", async () => {
    assert.match(h.hostKey, /^ssh-ed25519 [A-Za-z0-9+/=]+$/);
    assert.ok(h.privateKey.includes("OPENSSH PRIVATE KEY"));
    const keys = (await run(h, "cat /etc/ssh/ssh_host_ed25519_key.pub")).stdout.trim();
    assert.equal(keys.split(/\s+/).slice(0, 2).join(" "), h.hostKey);
    // nspawn shares this machine's network: sshd itself listens on the port, loopback only;
    // the VM's sshd listens on 22, which qemu forwards from 127.0.0.1:port
    const port = kind === "vm" ? 22 : h.port;
    const cfg = (await run(h, "sshd -T -C user=root,host=localhost,addr=127.0.0.1,lport=" + port)).stdout;
    assert.match(cfg, /^permitrootlogin without-password$/m);
    assert.match(cfg, /^passwordauthentication no$/m);
    assert.match(cfg, new RegExp(`^port ${port}$`, "m"));
    if (kind === "nspawn") assert.match(cfg, new RegExp(`^listenaddress 127\\.0\\.0\\.1:${h.port}$`, "m"));
  });

  test("systemd is PID 1 and the system is running (no unexpected failed units)", async () => {
    assert.equal((await run(h, "cat /proc/1/comm")).stdout.trim(), "systemd");
    if (kind === "nspawn") assert.equal((await run(h, "systemd-detect-virt --container")).stdout.trim(), "systemd-nspawn");
    else assert.match((await run(h, "systemd-detect-virt --vm")).stdout.trim(), /^(qemu|kvm)$/);
    await systemState(h);
  });

  test("a command string goes over unchanged and exit codes come back", async () => {
    const r = await run(h, `printf '%s|' "$0" a\\ b 'c d'; echo; exit 7`, { check: false });
    assert.equal(r.code, 7);
    assert.match(r.stdout, /^(-?bash|bash|sh|\/bin\/bash)\|a b\|c d\|\n$/);
    await assert.rejects(run(h, "echo out; echo err >&2; false"), (e: Error) => /exit 1/.test(e.message) && /out/.test(e.message) && /err/.test(e.message));
  });

  test("stdin round trip with a 1 MiB payload", async () => {
    const payload = crypto.randomBytes(768 * 1024).toString("base64"); // 1 MiB of text
    assert.equal(payload.length, 1024 * 1024);
    const r = await run(h, "cat > /root/payload && sha256sum /root/payload && wc -c < /root/payload", { stdin: payload });
    const [sum, size] = r.stdout.trim().split("\n");
    assert.equal(sum.split(/\s+/)[0], crypto.createHash("sha256").update(payload).digest("hex"));
    assert.equal(Number(size), payload.length);
    const back = await run(h, "cat /root/payload");
    assert.equal(back.stdout, payload);
  });

  test("a transient timer fires", async () => {
    // AccuracySec: a transient timer defaults to 1 min accuracy, i.e. fires up to a minute late.
    await run(
      h,
      "rm -f /root/timer-fired && systemd-run --unit=testhost-selftest-timer --on-active=1s --timer-property=AccuracySec=100ms touch /root/timer-fired",
    );
    const t0 = Date.now();
    await run(
      h,
      "for i in $(seq 1 150); do [ -e /root/timer-fired ] && exit 0; sleep 0.1; done; systemctl status --no-pager testhost-selftest-timer.timer testhost-selftest-timer.service; exit 1",
    );
    assert.ok(Date.now() - t0 < 10_000, `timer took ${Date.now() - t0} ms`);
  });

  test("systemd-analyze verify accepts a trivial unit", async () => {
    const unit = "[Unit]\nDescription=testhost verify probe\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n";
    await run(h, "mkdir -p /root/units && cat > /root/units/testhost-probe.service", { stdin: unit });
    const r = await run(h, "systemd-analyze verify /root/units/testhost-probe.service 2>&1");
    assert.equal(r.stdout.trim(), "");
    // and it does reject a broken one, so the check above means something
    await run(h, "printf '[Service]\\nExecStart=relative-path\\n' > /root/units/testhost-bad.service");
    const bad = await run(h, "systemd-analyze verify /root/units/testhost-bad.service", { check: false });
    assert.notEqual(bad.code, 0);
  });

  test("a real reboot: persistent files survive, /tmp is cleared, boot id changes, host key stays, a boot unit runs", async () => {
    await run(h, "echo kept > /root/persistent && echo gone > /tmp/volatile && echo gone > /run/volatile");
    // a unit that must start at boot: it records the boot it ran in
    const unit =
      "[Unit]\nDescription=testhost boot probe\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n" +
      "ExecStart=/bin/sh -c 'cat /proc/sys/kernel/random/boot_id >> /var/lib/testhost-boot-probe'\n\n[Install]\nWantedBy=multi-user.target\n";
    await run(h, "cat > /etc/systemd/system/testhost-boot-probe.service && systemctl daemon-reload && systemctl enable testhost-boot-probe.service", {
      stdin: unit,
    });
    const askedAt = Math.floor(Date.now() / 1000);
    const bootId1 = (await run(h, "cat /proc/sys/kernel/random/boot_id")).stdout.trim();
    const pid1Start1 = (await run(h, "stat -c %Z /proc/1")).stdout.trim();
    const hostKey1 = h.hostKey;

    await reboot(h);
    assert.ok(isRunning(h));

    assert.equal((await run(h, "cat /root/persistent")).stdout, "kept\n");
    assert.equal((await run(h, "test -e /root/timer-fired && echo yes")).stdout, "yes\n");
    assert.equal((await run(h, "ls -A /tmp | grep -c volatile || true")).stdout.trim(), "0");
    assert.equal((await run(h, "test -e /run/volatile && echo present || echo absent")).stdout.trim(), "absent");
    const bootId2 = (await run(h, "cat /proc/sys/kernel/random/boot_id")).stdout.trim();
    assert.match(bootId2, /^[0-9a-f-]{36}$/);
    assert.notEqual(bootId2, bootId1, "boot id must change across a reboot");
    const pid1Start2 = (await run(h, "stat -c %Z /proc/1")).stdout.trim();
    assert.ok(Number(pid1Start2) >= Number(pid1Start1));
    const keys = (await run(h, "cat /etc/ssh/ssh_host_ed25519_key.pub")).stdout.trim();
    assert.equal(keys.split(/\s+/).slice(0, 2).join(" "), hostKey1);
    // the boot unit ran once, in this boot
    assert.equal((await run(h, "cat /var/lib/testhost-boot-probe")).stdout.trim(), bootId2);
    assert.equal((await run(h, "systemctl is-active testhost-boot-probe.service")).stdout.trim(), "active");
    if (kind === "vm") {
      // a new kernel, booted after the reboot was asked for (a container shares this machine's kernel)
      const btime = Number((await run(h, "awk '/^btime/ {print $2}' /proc/stat")).stdout.trim());
      assert.ok(btime >= askedAt - 5, `kernel booted at ${btime}, reboot asked at ${askedAt}`);
    }
    // the previous boot's journal is there
    const boots = (await run(h, "journalctl --list-boots --no-pager | wc -l")).stdout.trim();
    assert.ok(Number(boots) >= 2, `journal lists ${boots} boots`);
    await systemState(h);
  });

  // Two test files may each boot a host at once (`npm test` runs two lanes). From one cgroup
  // the two containers would share nspawn's `payload/` subtree: a unit of the same name in both
  // lands in one cgroup, and stopping it in one container fails ("Failed to kill control group
  // …: Input/output error", the other container's pid), so a unit's processes could outlive it.
  if (kind === "nspawn") {
    test("a second host beside it: each container in a cgroup of its own, removed with it", async () => {
      const h2 = await createHost("selftest-beside");
      try {
        await boot(h2);
        await systemState(h2);
        await run(h2, "systemd-run -q --unit=ws-beside sleep 600");
        const r = await run(h, "systemd-run -q --wait --unit=ws-beside true; journalctl -q -o cat -u ws-beside --no-pager");
        assert.doesNotMatch(r.stdout, /Failed to kill|Input\/output error/, r.stdout);
        assert.equal((await run(h2, "systemctl is-active ws-beside", { check: false })).stdout.trim(), "active");
        // seen from this machine: nspawn and the container's init of each host under its own dir
        for (const x of [h, h2]) {
          const dirs = hostCgroupDirs(x.machine);
          assert.ok(dirs.length > 0, "no cgroup hierarchy found for nspawn");
          for (const d of dirs) assert.ok(fs.existsSync(path.join(d, "payload", "init.scope")), `${d}/payload/init.scope is missing`);
        }
        // this host's unit is done and its cgroup removed; the beside host's holds its sleep
        const unitDir = (x: TestHost) => path.join(hostCgroupDirs(x.machine)[0], "payload", "system.slice", "ws-beside.service");
        assert.equal(fs.existsSync(unitDir(h)), false, `${unitDir(h)} is left after its unit finished`);
        assert.match(fs.readFileSync(path.join(unitDir(h2), "cgroup.procs"), "utf8").trim(), /^\d+$/);
      } finally {
        await destroyHost(h2);
      }
      for (const d of hostCgroupDirs(h2.machine)) assert.equal(fs.existsSync(d), false, `${d} is left after destroyHost`);
      await systemState(h);
    });
  }

  test("destroyHost is idempotent and removes everything", async () => {
    const dir = h.dir;
    await destroyHost(h);
    assert.equal(isRunning(h), false);
    assert.equal(fs.existsSync(dir), false);
    await destroyHost(h);
  });
});
