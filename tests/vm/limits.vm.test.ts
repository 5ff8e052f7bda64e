/**
 * Containment on cgroup v2 (issue 23), on the trixie VM test host (systemd 257, tmux 3.5a):
 * the limits the plan decides, applied by the limits verbs before the account exists, hold.
 *
 *  - ana's slice carries her caps (memory.max, memory.swap.max, pids.max, cpu.weight).
 *  - A fork bomb of ana stops at her tasks maximum; bob still logs in.
 *  - A memory hog in one pane of ana's restored tmux session is killed alone: her other pane
 *    and her tmux server live, bob answers at once; the kernel's kill line gives the memory.
 *  - Every process tmux-persist's restore starts for ana is inside ana's slice.
 *  - A CPU hog of ana and bob's latency for a small command: measured, reported (the ratio).
 *  - earlyoom (trixie's package) runs with the program's arguments, and the real binary picks
 *    Claude's tool child, never claude, even when claude is the largest.
 *  - workstations-status shows each user's use against the cap, as root and as a user.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { planUser } from "../../components/plan";
import type { RosterUser } from "../../components/roster/schema";
import { USER_SLICE_UNITS } from "../../components/scripts/limits";
import { accountApplyScript, earlyoomApplyScript, hostLibInstallScript, hostLibrary, limitsApplyScript } from "../../components/scripts/hostLib";
import { preflightScript } from "../../components/scripts/host";
import { shq } from "../../components/scripts/shell";

import { DEFAULT_EARLYOOM, EARLYOOM_AVOID, EARLYOOM_PREFER, earlyoomArgs, earlyoomDropIn } from "../../components/plan/earlyoom";
import { boot, createHost, destroyHost, run, type TestHost } from "../../dev/testhost/testhost";
import { installAgents } from "../../dev/testhost/agents";
import { rosterUser } from "../../dev/mocks";
import { waitFor } from "../../dev/wait";
import { tempDir } from "../../dev/tmp";

const ROOT = path.resolve(__dirname, "..", "..");
const keyDir = tempDir("ws-limits-keys-");
const MiB = 2 ** 20;

function keypair(name: string): string {
  const priv = path.join(keyDir, name);
  if (!fs.existsSync(priv)) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${name}@test`, "-f", priv]);
  return fs.readFileSync(priv + ".pub", "utf8").trim();
}

const user = (name: string, uid: number, limits: RosterUser["limits"]): RosterUser => rosterUser(name, uid, { sshKeys: [keypair(name)], limits });
const ana = user("ana", 2201, { memoryMax: "384M", paneMemoryMax: "160M", tasksMax: 256 });
const bob = user("bob", 2202, {});

describe("containment on cgroup v2 (the VM)", { timeout: 60 * 60_000 }, () => {
  let h: TestHost;
  // One retry of a dropped connection (ssh's 255): the emulated VM's sshd can drop one under load.
  const sh = async (cmd: string, stdin?: string) => {
    let r = await run(h, cmd, { stdin, check: false });
    if (r.code === 255) r = await run(h, cmd, { stdin, check: false });
    if (r.code !== 0) throw new Error(`on the VM: ${cmd.slice(0, 300)}: exit ${r.code}\n${r.stderr}${r.stdout}`);
    return r.stdout.trim();
  };
  const tryRun = (cmd: string) => run(h, cmd, { check: false });
  const sshAs = (name: string, cmd: string, timeout = 120_000) =>
    spawnSync(
      "ssh",
      ["-i", path.join(keyDir, name), "-p", String(h.port), "-o", `UserKnownHostsFile=${h.knownHostsPath}`, "-o", "StrictHostKeyChecking=yes"].concat([
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=60",
        `${name}@127.0.0.1`,
        cmd,
      ]),
      { encoding: "utf8", env: { ...process.env, SSH_AUTH_SOCK: "" }, timeout },
    );
  const sshAsync = (name: string, cmd: string) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const c = execFile(
        "ssh",
        ["-i", path.join(keyDir, name), "-p", String(h.port), "-o", `UserKnownHostsFile=${h.knownHostsPath}`, "-o", "StrictHostKeyChecking=yes"].concat([
          "-o",
          "BatchMode=yes",
          "-o",
          "IdentitiesOnly=yes",
          "-o",
          "ConnectTimeout=120",
          `${name}@127.0.0.1`,
          cmd,
        ]),
        { env: { ...process.env, SSH_AUTH_SOCK: "" }, timeout: 240_000 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: (stdout + stderr).trim() }),
      );
      void c;
    });
  const slice = (uid: number) => `/sys/fs/cgroup/user.slice/user-${uid}.slice`;
  const tmux = (name: string, args: string) => sh(`runuser -u ${name} -- /usr/bin/tmux ${args}`);

  before(async () => {
    h = await createHost("limits", { kind: "vm" });
    await boot(h);
    await sh(
      "install -d -m 0755 /usr/local/lib/workstations /etc/workstations && install -d -m 0700 /var/lib/workstations && install -d -m 0711 /var/lib/tmux-persist",
    );
    await installAgents(sh);
    for (const u of [
      "tmux-persist-restore.service",
      "tmux-persist-save.service",
      "tmux-persist-save.timer",
      "t3-serve@.service",
      "claude-token-renew@.service",
      "workstations-refresh-clone@.service",
    ])
      await sh(`cat > /etc/systemd/system/${u}`, fs.readFileSync(path.join(ROOT, "scripts/units", u), "utf8"));
    await sh("systemctl daemon-reload");
    await sh(preflightScript(["/bin/bash"]));
    await sh(hostLibInstallScript(), hostLibrary().content);
    // the program's order: the limits first (keyed by uid), then the account (its linger starts the manager)
    for (const u of [ana, bob]) {
      await sh(limitsApplyScript(planUser(u)));
      await sh(accountApplyScript(planUser(u)));
      await sh(`loginctl enable-linger ${u.name}`);
      await waitFor(`${u.name}'s manager`, async () => (await tryRun(`systemctl is-active user@${u.uid}.service`)).stdout.trim() === "active", 180_000);
    }
  });
  after(async () => {
    if (h) await destroyHost(h);
  });

  test("ana's slice carries her caps; bob's the role's", async () => {
    assert.equal(await sh(`cat ${slice(2201)}/memory.max`), String(384 * MiB));
    assert.equal(await sh(`cat ${slice(2201)}/memory.swap.max`), "0");
    assert.equal(await sh(`cat ${slice(2201)}/pids.max`), "256");
    assert.equal(await sh(`cat ${slice(2201)}/cpu.weight`), "100");
    const ram = Number(await sh("awk '/^MemTotal:/ {printf \"%.0f\", $2 * 1024}' /proc/meminfo"));
    const bobMax = Number(await sh(`cat ${slice(2202)}/memory.max`));
    assert.ok(Math.abs(bobMax - ram * 0.25) < 2 * MiB, `bob's 25% of ${ram}: ${bobMax}`);
    // the manager reads its pane caps from its own root-owned directory
    assert.match(await sh("systemctl show user@2201.service -p Environment"), /XDG_CONFIG_DIRS=\/etc\/workstations\/limits\/2201\/xdg:\/etc\/xdg/);
  });

  test("the per-user units root starts as ana (T3, token renewal, clone refresh) run in her slice", async () => {
    for (const unit of USER_SLICE_UNITS) assert.equal(await sh(`systemctl show -p Slice --value ${unit}@ana.service`), "user-2201.slice", unit);
    assert.equal(await sh("systemctl show -p Slice --value t3-serve@bob.service"), "user-2202.slice");
  });

  test("a changed limit reaches ana's running slice in the same apply (daemon-reload follows the drop-in's change)", async () => {
    const smaller = await sh(limitsApplyScript(planUser({ ...ana, limits: { ...ana.limits, memoryMax: "320M" } })));
    assert.match(smaller, /changed: .*user-2201\.slice\.d\/50-workstations\.conf/);
    assert.equal(await sh(`cat ${slice(2201)}/memory.max`), String(320 * MiB), smaller);
    assert.match(await sh(limitsApplyScript(planUser(ana))), /changes=[1-9]/);
    assert.equal(await sh(`cat ${slice(2201)}/memory.max`), String(384 * MiB));
    assert.match(await sh(limitsApplyScript(planUser(ana))), /changes=0$/, "a second apply changes nothing");
  });

  test("a fork bomb of ana stops at her tasks maximum; bob still logs in", async () => {
    // the bomb in a unit of ana's slice: systemd ends it (all of its cgroup) after 25 s
    await sh(
      `systemd-run --uid=2201 --gid=2201 --slice=user-2201.slice --unit=ana-bomb -p RuntimeMaxSec=25 --quiet bash -c ${shq("f() { f | f & }; f; sleep 60")}`,
    );
    await new Promise((res) => setTimeout(res, 5000));
    const t0 = Date.now();
    const b = await sshAsync("bob", "id -un");
    const loginMs = Date.now() - t0;
    // Ended: the unit inactive (not merely "deactivating", while systemd still kills the forks)
    // and ana's slice back to a few tasks, or the next test's processes hit her cap.
    await waitFor(
      "the bomb's end",
      async () =>
        /^(inactive|failed)$/.test((await tryRun("systemctl is-active ana-bomb.service")).stdout.trim()) &&
        Number((await tryRun(`cat ${slice(2201)}/pids.current`)).stdout.trim()) < 64,
      240_000,
    );
    const peak = Number(await sh(`cat ${slice(2201)}/pids.peak 2>/dev/null || cat ${slice(2201)}/pids.current`));
    const events = await sh(`cat ${slice(2201)}/pids.events`);
    console.log(`# fork bomb: pids.peak ${peak} of pids.max 256; ${events.replace(/\n/g, " ")}; bob's ssh login during it: ${loginMs} ms`);
    assert.equal(b.code, 0, b.out);
    assert.equal(b.out, "bob");
    assert.ok(peak <= 256, `pids.peak ${peak}`);
    assert.match(events, /max [1-9]/, "forks were refused at the cap");
  });

  test("a memory hog in one pane of ana's restored session is killed alone", async () => {
    await sh(`runuser -u ana -- env -C / HOME=/home/ana /usr/bin/tmux new-session -d -s work -c /home/ana`);
    await tmux("ana", "split-window -t work -c /home/ana");
    await sh("tmux-persist save");
    await tryRun("runuser -u ana -- /usr/bin/tmux kill-server");
    const r = await tryRun("tmux-persist restore");
    assert.equal(r.code, 0, r.stderr);
    await waitFor("ana's restored session", async () => (await tryRun("runuser -u ana -- /usr/bin/tmux has-session -t work")).code === 0);
    const server = await tmux("ana", "display-message -p -t work '#{pid}'");
    // every process the restore started for ana is inside her slice (one seen outside must stay
    // outside a second later to count: the restore's own short-lived helpers come and go)
    const outside = async () => {
      const out: string[] = [];
      for (const pid of (await sh(`pgrep -u 2201`)).split("\n").filter(Boolean)) {
        const cg = await sh(`cat /proc/${pid}/cgroup 2>/dev/null || echo gone`);
        if (!/user-2201\.slice|gone/.test(cg)) out.push(`${pid} ${cg} ${await sh(`tr '\\0' ' ' < /proc/${pid}/cmdline 2>/dev/null || true`)}`);
      }
      return out;
    };
    if ((await outside()).length) await new Promise((res) => setTimeout(res, 1500));
    assert.deepEqual(await outside(), [], `ana's processes outside her slice\n${await sh("ps -eo pid,user,cgroup:80,args | grep -E '^ *[0-9]+ ana' || true")}`);
    const panes = (await tmux("ana", "list-panes -t work -F '#{pane_id} #{pane_pid}'")).split("\n").map((l) => l.split(" "));
    assert.equal(panes.length, 2);
    const [[hogPane], [quietPane, quietPid]] = panes;
    console.log(`# pane cgroups: ${await sh(`for p in ${panes.map((p) => p[1]).join(" ")}; do cat /proc/$p/cgroup; done`)}`);
    await tmux("ana", `send-keys -t ${quietPane} 'sleep 100000' Enter`);
    await sh("dmesg -C");
    await tmux("ana", `send-keys -t ${hogPane} ${shq("head -c 2000M /dev/zero | tail")} Enter`);
    await waitFor("the OOM kill", async () => /Killed process \d+ \(tail\)/.test(await sh("dmesg")), 300_000);
    const kill = (await sh("dmesg")).split("\n").find((l) => /Killed process \d+ \(tail\)/.test(l))!;
    console.log(`# the kill: ${kill.trim()}`);
    const rss = Number(/anon-rss:(\d+)kB/.exec(kill)?.[1] ?? 0);
    assert.ok(rss > 64 * 1024 && rss <= 384 * 1024, `killed at anon-rss ${rss} kB`);
    await new Promise((res) => setTimeout(res, 3000));
    assert.equal(await sh(`kill -0 ${server} && echo alive`), "alive", "ana's tmux server lives");
    assert.equal((await tmux("ana", "list-panes -t work -F '#{pane_id}'")).split("\n").length, 2, "both panes live");
    assert.match(await sh(`pgrep -u 2201 -x sleep || true`), /\d+/, `the quiet pane's sleep (shell ${quietPid}) lives`);
    const b = sshAs("bob", "id -un");
    assert.equal(b.stdout.trim(), "bob");
  });

  test("a CPU hog of ana: bob's latency for a small command, with and without (the ratio)", async () => {
    const probe = "s=$(date +%s%N); for i in $(seq 200); do /bin/true; done; echo $(( ($(date +%s%N) - s) / 1000000 ))";
    const measure = async () => {
      const out = await sh(`systemd-run --uid=2202 --slice=user-2202.slice --quiet --wait --pipe bash -c ${shq(probe)}`);
      const ms = Number(out.split("\n").pop());
      assert.ok(ms > 0, `the probe printed ${JSON.stringify(out)}`);
      return ms;
    };
    await sh("systemctl stop ana-hog.service 2>/dev/null || true; systemctl reset-failed ana-hog.service 2>/dev/null || true");
    const quiet = await measure();
    const cpus = Number(await sh("nproc"));
    await sh(
      `systemd-run --uid=2201 --slice=user-2201.slice --unit=ana-hog --quiet bash -c ${shq(`for i in $(seq ${cpus * 2}); do (while :; do :; done) & done; wait`)}`,
    );
    await new Promise((res) => setTimeout(res, 3000));
    const loaded = await measure();
    await sh("systemctl stop ana-hog.service || true");
    const ratio = loaded / quiet;
    console.log(
      `# bob's 200 x /bin/true: ${quiet} ms quiet, ${loaded} ms with ana's ${cpus * 2} spinning processes (weights 100/100): ratio ${ratio.toFixed(2)}`,
    );
  });
  test("earlyoom runs with the program's arguments (the drop-in); a second apply changes nothing", async () => {
    const apply = earlyoomApplyScript(earlyoomDropIn(DEFAULT_EARLYOOM));
    assert.match(await sh(apply), /earlyoom changes=[1-9]/);
    await waitFor("earlyoom active", async () => (await tryRun("systemctl is-active earlyoom.service")).stdout.trim() === "active", 60_000);
    // (right after a restart the main pid can still be systemd's fork, named "(earlyoom)", before its exec)
    let pid = "";
    let argv: string[] = [];
    await waitFor(
      "earlyoom's exec",
      async () => {
        pid = await sh("systemctl show -p MainPID --value earlyoom.service");
        argv = (await sh(`tr '\\0' '\\n' < /proc/${pid}/cmdline 2>/dev/null || true`)).split("\n");
        return argv[0] === "/usr/bin/earlyoom";
      },
      30_000,
    );
    assert.deepEqual(argv, ["/usr/bin/earlyoom", ...earlyoomArgs(DEFAULT_EARLYOOM)], "systemd passed the regular expressions through unchanged ($$ is one $)");
    assert.match(await sh(apply), /earlyoom changes=0/);
    assert.equal(await sh("systemctl show -p MainPID --value earlyoom.service"), pid, "not restarted by a no-op apply");
  });

  test("earlyoom's choice, by the real binary: Claude's tool child before claude, even when claude is the largest", async () => {
    // Processes are named by their executable: copies of node, each holding memory in ana's slice.
    await sh("install -d -m 0755 /opt/eo && for n in claude 2.1.332; do cp /usr/bin/node /opt/eo/$n; done");
    const hold = (name: string, mib: number) =>
      sh(
        `systemd-run --uid=2201 --gid=2201 --slice=user-2201.slice --unit=eo-${name.replace(/[.]/g, "-")} -p RuntimeMaxSec=300 --quiet /opt/eo/${name} -e ${shq(`const b = Buffer.alloc(${mib} * 2 ** 20, 1); setInterval(() => b[0]++, 1e9)`)}`,
      );
    await hold("claude", 140);
    await hold("2.1.332", 40);
    await waitFor("both holding", async () => (await sh("ps -o rss= -C claude -C 2.1.332 | awk '$1 > 30000' | wc -l")) === "2", 60_000);
    // With the SIGTERM threshold at 99% of RAM earlyoom acts at once; --dryrun names the victim and kills nothing.
    const pick = async () => {
      const out = await sh(
        `timeout 8 /usr/bin/earlyoom --dryrun -m 99,98 -s 100,100 --prefer ${shq(EARLYOOM_PREFER)} --avoid ${shq(EARLYOOM_AVOID)} 2>&1 || true`,
      );
      const m = /process \d+ uid \d+ "([^"]+)"/.exec(out);
      assert.ok(m, out.slice(0, 2000));
      return m[1];
    };
    const first = await pick();
    console.log(`# earlyoom's first victim with claude (140 MiB) and a tool child (40 MiB): ${first}`);
    assert.equal(first, "2.1.332");
    await sh("systemctl stop eo-2-1-332.service");
    const second = await pick();
    console.log(`# and without the tool child: ${second}`);
    assert.notEqual(second, "claude", "claude is avoided");
    await sh("systemctl stop eo-claude.service; rm -rf /opt/eo");
  });

  test("workstations-status: each user's use against the cap, for root and for a user", async () => {
    const j = JSON.parse(await sh("workstations-status --json")) as {
      users: { user: string; memory: number; memoryMax: number; swapMax: number; tasksMax: number; cpuWeight: number; oomKills: number | null }[];
      earlyoom: { state: string; args: string };
    };
    const ana = j.users.find((u) => u.user === "ana")!;
    assert.equal(ana.memoryMax, 384 * MiB);
    assert.equal(ana.swapMax, 0);
    assert.equal(ana.tasksMax, 256);
    assert.equal(ana.cpuWeight, 100);
    assert.ok(ana.memory > 0 && ana.memory < ana.memoryMax, `ana uses ${ana.memory}`);
    assert.ok((ana.oomKills ?? 0) >= 1, "the pane hog's kill is counted");
    assert.equal(j.earlyoom.state, "active");
    assert.equal(j.earlyoom.args, earlyoomArgs(DEFAULT_EARLYOOM).join(" "), "earlyoom's arguments as it got them (one $, not the unit file's $$)");
    const table = await sh("workstations-status");
    console.log(table.replace(/^/gm, "# "));
    assert.match(table, /^USER\s+UID\s+STATE\s+MEMORY\s+SWAP\s+TASKS\s+CPU\s+OOM-KILLS$/m);
    assert.match(table, /^ana\s+2201\s+active\s+\d+M\/384M \d+%\s+(0M|\?)\/0M\s+\d+\/256 \d+%\s+100\s+[1-9]/m);
    const asBob = sshAs("bob", "workstations-status bob");
    assert.equal(asBob.status, 0, asBob.stderr);
    assert.match(asBob.stdout, /^bob\s+2202\s+active/m);
    assert.doesNotMatch(asBob.stdout, /^ana/m, "only the names asked for");
    const unknown = await tryRun("workstations-status nobody-here");
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /nobody-here is not a user of this host/);
  });
});
