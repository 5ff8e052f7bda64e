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
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { planUser } from "../../components/plan";
import type { RosterUser } from "../../components/roster/schema";
import { accountApplyScript, hostLibInstallScript, hostLibrary, limitsApplyScript } from "../../components/scripts/hostLib";
import { preflightScript } from "../../components/scripts/host";
import { shq } from "../../components/scripts/shell";
import { boot, createHost, destroyHost, run, type TestHost } from "../../dev/testhost/testhost";
import { installAgents } from "../../dev/testhost/agents";
import { waitFor } from "../../dev/wait";

const ROOT = path.resolve(__dirname, "..", "..");
const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-limits-keys-"));
const MiB = 2 ** 20;

function keypair(name: string): string {
  const priv = path.join(keyDir, name);
  if (!fs.existsSync(priv)) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${name}@test`, "-f", priv]);
  return fs.readFileSync(priv + ".pub", "utf8").trim();
}

const user = (name: string, uid: number, limits: RosterUser["limits"]): RosterUser => ({
  name,
  uid,
  role: "power-user",
  email: `${name}@example.com`,
  forgejo: name,
  sshKeys: [keypair(name)],
  shell: "/bin/bash",
  groups: [],
  namespaces: [],
  overrides: {},
  state: "active",
  credentialRotation: 0,
  adopt: false,
  limits,
});
const ana = user("ana", 2201, { memoryMax: "384M", paneMemoryMax: "160M", tasksMax: 256 });
const bob = user("bob", 2202, {});

describe("containment on cgroup v2 (the VM)", { timeout: 60 * 60_000 }, () => {
  let h: TestHost;
  const sh = async (cmd: string, stdin?: string) => (await run(h, cmd, { stdin })).stdout.trim();
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
    for (const u of ["tmux-persist-restore.service", "tmux-persist-save.service", "tmux-persist-save.timer"])
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

  test("a fork bomb of ana stops at her tasks maximum; bob still logs in", async () => {
    // the bomb in a unit of ana's slice: systemd ends it (all of its cgroup) after 25 s
    await sh(
      `systemd-run --uid=2201 --gid=2201 --slice=user-2201.slice --unit=ana-bomb -p RuntimeMaxSec=25 --quiet bash -c ${shq("f() { f | f & }; f; sleep 60")}`,
    );
    await new Promise((res) => setTimeout(res, 5000));
    const t0 = Date.now();
    const b = await sshAsync("bob", "id -un");
    const loginMs = Date.now() - t0;
    await waitFor("the bomb's end", async () => (await tryRun("systemctl is-active ana-bomb.service")).stdout.trim() !== "active", 180_000);
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
    // every process the restore started for ana is inside her slice
    const pids = (await sh(`pgrep -u 2201`)).split("\n").filter(Boolean);
    for (const pid of pids)
      assert.match(await sh(`cat /proc/${pid}/cgroup 2>/dev/null || echo gone`), /user-2201\.slice|gone/, `pid ${pid} outside ana's slice`);
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
    const quiet = Number((await sh(`systemd-run --uid=2202 --slice=user-2202.slice --quiet --wait --pipe bash -c ${shq(probe)}`)).split("\n").pop());
    const cpus = Number(await sh("nproc"));
    await sh(
      `systemd-run --uid=2201 --slice=user-2201.slice --unit=ana-hog --quiet bash -c ${shq(`for i in $(seq ${cpus * 2}); do (while :; do :; done) & done; wait`)}`,
    );
    await new Promise((res) => setTimeout(res, 3000));
    const loaded = Number((await sh(`systemd-run --uid=2202 --slice=user-2202.slice --quiet --wait --pipe bash -c ${shq(probe)}`)).split("\n").pop());
    await sh("systemctl stop ana-hog.service || true");
    const ratio = loaded / quiet;
    console.log(
      `# bob's 200 x /bin/true: ${quiet} ms quiet, ${loaded} ms with ana's ${cpus * 2} spinning processes (weights 100/100): ratio ${ratio.toFixed(2)}`,
    );
    assert.ok(quiet > 0 && loaded > 0);
  });
});
