// tmux-persist on a real systemd host (nspawn, systemd as PID 1) across a real reboot:
// the script and units installed as the host component installs them, two roster users with
// tmux sessions running the fake claude, a save through the unit the timer starts, poweroff,
// boot, and the boot oneshot brings every session back with the right name, cwd and
// `claude --resume <uuid>`, in servers that live outside the oneshot's cgroup. Saves fired
// during the shutdown (servers alive, and servers already dead) must leave `last` alone.
import { waitFor } from "../../dev/wait";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import { boot, createHost, destroyHost, poweroff, run, type TestHost } from "../../dev/testhost/testhost";
import { installAgents, installUsersIndex, restoreUnitDone } from "../../dev/testhost/agents";

const ROOT = path.resolve(__dirname, "..", "..");
const UNITS = ["tmux-persist-restore.service", "tmux-persist-save.service", "tmux-persist-save.timer"];
const USERS = [
  { name: "alice", uid: 2001 },
  { name: "bob", uid: 2002 },
];
/** printable, unambiguous separators for tmux -F output read over ssh */
const FS = "|F|";

interface Pane {
  session: string;
  window: number;
  windowName: string;
  pane: number;
  panePid: number;
  cwd: string;
}

/** Test-only units whose ExecStop runs `tmux-persist save` while the host shuts down. */
function shutdownSaveUnit(name: string, order: string): string {
  return `[Unit]
Description=test: tmux-persist save fired during shutdown (${name})
DefaultDependencies=no
After=local-fs.target
Conflicts=shutdown.target
Before=shutdown.target
${order}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
# ($$ is a literal $ for systemd)
ExecStop=/bin/sh -c 'pgrep -x "tmux: server" >/dev/null && echo up >/var/lib/tp-test/${name}.tmux || echo down >/var/lib/tp-test/${name}.tmux; tmux-persist save 2>/var/lib/tp-test/${name}.err; echo $$? >/var/lib/tp-test/${name}.rc; for u in alice bob; do readlink /var/lib/tmux-persist/$$u/last; done >/var/lib/tp-test/${name}.last'

[Install]
WantedBy=multi-user.target
`;
}

describe("tmux-persist on the systemd host: save, poweroff, boot, restore", { timeout: 20 * 60_000 }, () => {
  let h: TestHost;
  const sh = (cmd: string, stdin?: string) => run(h, cmd, { stdin });
  const as = (user: string, cmd: string) =>
    sh(`runuser -u ${user} -- env -C / PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 sh -c ${JSON.stringify(cmd).replace(/\$/g, "\\$")}`);
  /** the command that starts the user's server, in a known scope (like a login session) */
  const asScoped = (user: string, cmd: string) =>
    sh(
      `systemd-run --scope --quiet --unit=tp-tmux-${user}.scope -- runuser -u ${user} -- env -C / PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 sh -c ${JSON.stringify(cmd).replace(/\$/g, "\\$")}`,
    );

  async function panes(user: string): Promise<Pane[]> {
    const fmt = ["#{session_name}", "#{window_index}", "#{?automatic-rename,(auto),#{window_name}}", "#{pane_index}", "#{pane_pid}"].join(FS);
    const r = await run(h, `runuser -u ${user} -- tmux -u list-panes -a -F '${fmt}'`, { check: false });
    if (r.code !== 0) return [];
    const out: Pane[] = [];
    for (const line of r.stdout.split("\n").filter(Boolean)) {
      const f = line.split(FS);
      const cwd = (await sh(`readlink /proc/${f[4]}/cwd`)).stdout.trim();
      out.push({ session: f[0], window: Number(f[1]), windowName: f[2], pane: Number(f[3]), panePid: Number(f[4]), cwd });
    }
    return out.sort((a, b) => (`${a.session}/${a.window}/${a.pane}` < `${b.session}/${b.window}/${b.pane}` ? -1 : 1));
  }
  async function fakeLog(user: string): Promise<any[]> {
    const r = await sh(`cat /home/${user}/.fake-claude.log 2>/dev/null || true`);
    return r.stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  }
  /** live claude (fake) conversations keyed "session/window/pane" */
  async function conversations(user: string): Promise<Map<string, { uuid: string; argv: string[]; cwd: string }>> {
    const ps = await panes(user);
    const byPid = new Map(ps.map((p) => [p.panePid, `${p.session}/${p.window}/${p.pane}`]));
    // pid -> the process's start (epoch seconds). The log outlives reboots and a new boot
    // hands out the same small pids again, so an entry counts only if its process is the one
    // alive now: started no later than the entry was written.
    const [now, ...rows] = (await sh(`date +%s; ps -e -o pid= -o etimes= -o stat= | awk '$3 !~ /Z/ {print $1, $2}'`)).stdout.trim().split("\n");
    const started = new Map(rows.map((l) => l.trim().split(/\s+/).map(Number)).map(([pid, age]) => [pid, Number(now) - age]));
    const out = new Map<string, { uuid: string; argv: string[]; cwd: string }>();
    for (const e of await fakeLog(user)) {
      if (e.event !== "start" && e.event !== "clear") continue;
      const key = byPid.get(e.pid) ?? byPid.get(e.ppid);
      const since = started.get(e.pid);
      if (key && since !== undefined && e.time / 1000 >= since - 2) out.set(key, { uuid: e.uuid, argv: e.argv, cwd: e.cwd });
    }
    return out;
  }

  const before_: Record<string, { panes: Pane[]; conv: Map<string, { uuid: string; argv: string[]; cwd: string }> }> = {};
  const lastBefore: Record<string, { link: string; sha: string }> = {};

  before(async () => {
    h = await createHost("tmux-persist");
    await boot(h);
    // the script and units, as the host component bundles them (docs/CONTRACTS.md)
    await sh("install -d -m 0755 /usr/local/lib/workstations /etc/workstations /var/lib/tp-test");
    await installAgents(sh); // scripts/agents as the host component ships it (entry points, modules, links)
    for (const u of UNITS) await sh(`cat > /etc/systemd/system/${u}`, fs.readFileSync(path.join(ROOT, "scripts/units", u), "utf8"));
    await sh("cat > /usr/local/bin/claude && chmod 0755 /usr/local/bin/claude", fs.readFileSync(path.join(ROOT, "tests/tmux/fake-claude"), "utf8"));
    for (const u of USERS) await sh(`useradd -m -u ${u.uid} -U -G users -s /bin/bash ${u.name}`);
    await installUsersIndex(sh, USERS);
    await sh("systemctl daemon-reload && systemctl enable --now tmux-persist-restore.service tmux-persist-save.timer");
  });

  after(async () => {
    if (h) await destroyHost(h);
  });

  test("the host runs the script with its own node (bookworm's 18, trixie's 20 on the VM) and the units verify", async () => {
    const v = (await sh("node --version")).stdout.trim();
    assert.match(v, h.kind === "vm" ? /^v20\./ : /^v18\./, `host node is ${v}`);
    const r = await run(h, `systemd-analyze verify ${UNITS.map((u) => "/etc/systemd/system/" + u).join(" ")}`, { check: false });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.trim(), "", r.stderr);
    assert.equal((await sh("tmux-persist --help")).code, 0);
    assert.equal((await sh("systemctl is-enabled tmux-persist-restore.service tmux-persist-save.timer")).stdout.trim(), "enabled\nenabled");
    assert.equal((await sh("systemctl is-active tmux-persist-save.timer")).stdout.trim(), "active");
  });

  test("sessions of two users are saved by the save unit", async () => {
    await sh("install -d -o alice -g alice '/home/alice/proj-a' '/home/alice/dir with space' /home/alice/notes");
    await sh("install -d -o bob -g bob /home/bob/w /home/bob/idle /home/bob/sh");
    await asScoped("alice", "tmux -u new-session -d -s main -c /home/alice/proj-a claude");
    await as(
      "alice",
      "tmux -u new-session -d -s notes -n todo -c /home/alice/notes && tmux -u split-window -d -t =notes: -c /home/alice && tmux -u new-window -d -t =notes: -n other -c /home/alice/notes",
    );
    await as("alice", "tmux -u new-session -d -s two-words -c '/home/alice/dir with space' claude");
    await asScoped("bob", "tmux -u new-session -d -s work -c /home/bob/w claude");
    await as("bob", "tmux -u new-session -d -s idle -c /home/bob/idle env FAKE_CLAUDE_SILENT=1 claude");
    await as("bob", "tmux -u new-session -d -s sh -c /home/bob/sh");
    await waitFor("fake claudes", async () => (await fakeLog("alice")).length >= 2 && (await fakeLog("bob")).length >= 2);
    // saves fired during the coming shutdown. Stop order is the reverse of start order:
    // "early" stops before the users' tmux scopes (servers up), "late" after them (gone).
    await sh(`cat > /etc/systemd/system/tp-shutdown-save-early.service`, shutdownSaveUnit("early", "After=tp-tmux-alice.scope tp-tmux-bob.scope"));
    await sh(`cat > /etc/systemd/system/tp-shutdown-save-late.service`, shutdownSaveUnit("late", "Before=tp-tmux-alice.scope tp-tmux-bob.scope"));
    await sh("systemctl daemon-reload && systemctl start tp-shutdown-save-early.service tp-shutdown-save-late.service");
    for (const u of USERS) before_[u.name] = { panes: await panes(u.name), conv: await conversations(u.name) };
    assert.equal(before_.alice.conv.size, 2);
    assert.equal(before_.bob.conv.size, 2);

    await sh("systemctl start tmux-persist-save.service");
    assert.equal((await sh("systemctl show -p Result --value tmux-persist-save.service")).stdout.trim(), "success");
    for (const u of USERS) {
      const snap = JSON.parse((await sh(`cat /var/lib/tmux-persist/${u.name}/last`)).stdout);
      const saved = snap.sessions.flatMap((s: any) => s.windows.flatMap((w: any) => w.panes.filter((p: any) => p.claude?.uuid).map((p: any) => p.claude.uuid)));
      // bob's idle session never got a message: no uuid, recorded as such
      const want = [...before_[u.name].conv.entries()].filter(([k]) => !k.startsWith("idle/")).map(([, c]) => c.uuid);
      assert.deepEqual(saved.sort(), want.sort());
      if (u.name === "bob") {
        const idle = snap.sessions.find((x: any) => x.name === "idle").windows[0].panes[0].claude;
        assert.equal(idle.status, "no-transcript");
      }
      const link = (await sh(`readlink /var/lib/tmux-persist/${u.name}/last`)).stdout.trim();
      const sha = (await sh(`sha256sum /var/lib/tmux-persist/${u.name}/last | cut -d' ' -f1`)).stdout.trim();
      lastBefore[u.name] = { link, sha };
      const modes = (await sh(`stat -c %a:%U /var/lib/tmux-persist /var/lib/tmux-persist/${u.name} /var/lib/tmux-persist/${u.name}/${link}`)).stdout
        .trim()
        .split("\n");
      assert.match(modes[0], /^7(00|11):root$/);
      assert.deepEqual(modes.slice(1), ["700:root", "600:root"]);
    }
    const st = JSON.parse((await sh("tmux-persist status --json")).stdout);
    // (not vacuous: every roster user is listed, each with its saved sessions)
    assert.deepEqual(st.users.map((u: any) => u.user).sort(), USERS.map((u) => u.name).sort(), "status lists every user");
    for (const u of st.users) {
      assert.ok(u.sessions.length > 0, `status: ${u.user} has saved sessions`);
      assert.ok(
        u.sessions.every((s: any) => s.action === "skip"),
        "status: everything exists",
      );
    }
  });

  test("poweroff then boot: the restore unit brings every session back, outside its cgroup", async () => {
    await poweroff(h);
    await boot(h);
    await waitFor("restore unit done", () => restoreUnitDone(h), 120_000);
    for (const u of USERS) {
      const now = await panes(u.name);
      assert.deepEqual(
        now.map((p) => [p.session, p.window, p.windowName, p.pane, p.cwd]),
        before_[u.name].panes.map((p) => [p.session, p.window, p.windowName, p.pane, p.cwd]),
        `${u.name}: sessions, windows, panes and cwds`,
      );
      const conv = await waitFor(`${u.name} claudes`, async () => {
        const c = await conversations(u.name);
        return c.size >= (u.name === "alice" ? 2 : 1) ? c : null;
      });
      for (const [key, c] of before_[u.name].conv) {
        if (key.startsWith("idle/")) {
          assert.ok(!conv.has(key), "never-messaged session comes back as a shell");
          continue;
        }
        const got = conv.get(key);
        assert.ok(got, `${u.name} ${key}: claude back`);
        assert.equal(got.uuid, c.uuid, `${u.name} ${key}: same conversation`);
        assert.deepEqual(got.argv, ["--resume", c.uuid]);
        assert.equal(got.cwd, c.cwd);
      }
      // the server: the user's, on the default socket, in its own scope in the user's slice (their limits)
      const pid = (await run(h, `runuser -u ${u.name} -- tmux display-message -p '#{pid}'`)).stdout.trim();
      const cg = (await sh(`cat /proc/${pid}/cgroup`)).stdout;
      assert.match(cg, new RegExp(`user-${u.uid}\\.slice/tmux-persist-${u.name}-[0-9a-z]+\\.scope`), cg);
      assert.doesNotMatch(cg, /tmux-persist-restore\.service/);
      assert.equal((await sh(`stat -c %u /proc/${pid}`)).stdout.trim(), String(u.uid));
      assert.equal((await sh(`test -S /tmp/tmux-${u.uid}/default && echo ok`)).stdout.trim(), "ok");
      const groups = (await sh(`awk '/^Groups:/{$1=""; print}' /proc/${pid}/status`)).stdout.trim().split(/\s+/);
      assert.ok(groups.includes("100") && !groups.includes("0"), `server groups ${groups}`);
    }
    // nothing is left in the oneshot's cgroup
    const cgRestore = (await run(h, "systemd-cgls --no-pager -u tmux-persist-restore.service", { check: false })).stdout;
    assert.doesNotMatch(cgRestore, /tmux|claude|node/, cgRestore);
    // restarting the oneshot (stop kills whatever is in its cgroup) leaves the servers alone,
    // and the second restore duplicates nothing
    const pids = async () => (await Promise.all(USERS.map((u) => panes(u.name)))).flat().map((p) => `${p.session}/${p.window}/${p.pane}:${p.panePid}`);
    const beforeRestart = await pids();
    await sh("systemctl restart tmux-persist-restore.service");
    assert.deepEqual(await pids(), beforeRestart);
    const journal = (await sh("journalctl -b --no-pager -o cat")).stdout;
    assert.doesNotMatch(journal, /ordering cycle/i);
    assert.match((await sh("journalctl -b -u tmux-persist-restore.service --no-pager -o cat")).stdout, /session restored user=alice session=main/);
  });

  test("saves fired during the shutdown left the snapshot alone", async () => {
    for (const name of ["early", "late"]) {
      const rc = (await sh(`cat /var/lib/tp-test/${name}.rc`)).stdout.trim();
      const err = (await sh(`cat /var/lib/tp-test/${name}.err`)).stdout;
      const tmux = (await sh(`cat /var/lib/tp-test/${name}.tmux`)).stdout.trim();
      assert.equal(rc, "75", `${name} save (tmux ${tmux}) exit ${rc}: ${err}`);
      // early ran while the tmux servers were still up, late after they were gone
      assert.equal(tmux, name === "early" ? "up" : "down");
      assert.match(err, /not saving reason="system shutdown in progress"/);
      const links = (await sh(`cat /var/lib/tp-test/${name}.last`)).stdout.trim().split("\n");
      assert.deepEqual(
        links,
        USERS.map((u) => lastBefore[u.name].link),
      );
    }
    // and `last` is still the pre-shutdown snapshot, byte for byte (the restore only pinned it as boot)
    for (const u of USERS) {
      assert.equal((await sh(`readlink /var/lib/tmux-persist/${u.name}/last`)).stdout.trim(), lastBefore[u.name].link);
      assert.equal((await sh(`readlink /var/lib/tmux-persist/${u.name}/boot`)).stdout.trim(), lastBefore[u.name].link);
      assert.equal((await sh(`sha256sum /var/lib/tmux-persist/${u.name}/last | cut -d' ' -f1`)).stdout.trim(), lastBefore[u.name].sha);
    }
  });

  test("a second reboot, now with the restored servers in their scopes, restores everything again", async () => {
    await sh("systemctl start tmux-persist-save.service"); // the restored state: saved as unchanged
    assert.match((await sh("journalctl -b -u tmux-persist-save.service --no-pager -o cat")).stdout, /snapshot unchanged, not rewritten user=alice/);
    const snapBefore = Object.fromEntries(
      await Promise.all(USERS.map(async (u) => [u.name, (await sh(`readlink /var/lib/tmux-persist/${u.name}/last`)).stdout.trim()])),
    );
    await poweroff(h);
    await boot(h);
    await waitFor(
      "restore unit done",
      async () => (await run(h, "systemctl show -p SubState --value tmux-persist-restore.service", { check: false })).stdout.trim() === "exited",
      120_000,
    );
    assert.equal((await sh("systemctl show -p Result --value tmux-persist-restore.service")).stdout.trim(), "success");
    for (const u of USERS) {
      assert.equal((await sh(`readlink /var/lib/tmux-persist/${u.name}/boot`)).stdout.trim(), snapBefore[u.name]);
      const now = await panes(u.name);
      assert.deepEqual(
        now.map((p) => [p.session, p.window, p.windowName, p.pane, p.cwd]),
        before_[u.name].panes.map((p) => [p.session, p.window, p.windowName, p.pane, p.cwd]),
      );
      const conv = await waitFor(`${u.name} claudes`, async () => {
        const c = await conversations(u.name);
        return c.size >= (u.name === "alice" ? 2 : 1) ? c : null;
      });
      const want = [...before_[u.name].conv.entries()].filter(([k]) => !k.startsWith("idle/")).map(([k, c]) => [k, c.uuid]);
      assert.deepEqual([...conv.entries()].map(([k, c]) => [k, c.uuid]).sort(), want.sort());
    }
  });

  test("after the restore, the timer's save works and sees the same conversations", async () => {
    assert.equal((await sh("systemctl is-active tmux-persist-save.timer")).stdout.trim(), "active");
    await sh("systemctl start tmux-persist-save.service");
    assert.equal((await sh("systemctl show -p Result --value tmux-persist-save.service")).stdout.trim(), "success");
    for (const u of USERS) {
      const snap = JSON.parse((await sh(`cat /var/lib/tmux-persist/${u.name}/last`)).stdout);
      const saved = snap.sessions
        .flatMap((s: any) => s.windows.flatMap((w: any) => w.panes.filter((p: any) => p.claude?.uuid).map((p: any) => p.claude.uuid)))
        .sort();
      const want = [...before_[u.name].conv.entries()]
        .filter(([k]) => !k.startsWith("idle/"))
        .map(([, c]) => c.uuid)
        .sort();
      assert.deepEqual(saved, want);
    }
  });
});
