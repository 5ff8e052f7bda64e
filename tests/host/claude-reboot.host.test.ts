// tmux-persist across a real reboot of the nspawn host (systemd as PID 1) with the REAL
// Claude Code CLI 2.1.332: the toolchain's npm tree bound read-only into the machine at
// /opt/claude-code (a /run/systemd/nspawn/<machine>.nspawn [Files] BindReadOnly=, applied at
// every boot), /usr/local/bin/claude -> its node_modules/.bin/claude, the program's
// /etc/claude-code/managed-settings.json, and the fake Messages API in this process (the
// container shares the host's network, so 127.0.0.1 is this machine). Two users, three
// conversations (two of them in one cwd), a save through the unit, poweroff, boot: the boot
// oneshot brings every session back resuming its own conversation. Under CI=true a missing
// binary fails.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import { boot, createHost, destroyHost, poweroff, run, type TestHost } from "../../dev/testhost/testhost";
import { installAgents, installUsersIndex, restoreUnitDone } from "../../dev/testhost/agents";
import { sleep, waitFor as wait } from "../../dev/wait";
import { FakeAnthropicMessages, lastUserText, requestTexts } from "../../dev/fakes/anthropic-messages";
import * as C from "../../dev/claude";

const ROOT = path.resolve(__dirname, "..", "..");
const UNITS = ["tmux-persist-restore.service", "tmux-persist-save.service", "tmux-persist-save.timer"];
const USERS = [
  { name: "alice", uid: 2001 },
  { name: "bob", uid: 2002 },
];
/** session -> [user, cwd, the message sent] */
const SESSIONS: Record<string, [string, string, string]> = {
  main: ["alice", "/home/alice/proj", "reboot conversation one"],
  twin: ["alice", "/home/alice/proj", "reboot conversation two, same cwd"],
  work: ["bob", "/home/bob/w x", "reboot conversation three"],
};
const BIND = "/opt/claude-code";
const claudeSkip = C.claudeSkip();

describe("real claude on the systemd host: save, poweroff, boot, every conversation resumed", { skip: claudeSkip ?? false, timeout: 25 * 60_000 }, () => {
  let h: TestHost;
  let fake: FakeAnthropicMessages;
  let nspawnFile = "";
  const sh = (cmd: string, stdin?: string) => run(h, cmd, { stdin });
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const as = (user: string, cmd: string) =>
    sh(`runuser -u ${user} -- env -C / PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/home/${user} sh -c ${q(cmd)}`);
  // probes of a host that may still be booting: a thrown probe is "not yet" (dev/wait.ts)
  const waitFor = <T>(what: string, fn: () => Promise<T | null | false | undefined>, timeoutMs = 60_000) => wait(what, fn, timeoutMs, 300, true);
  const capture = async (user: string, s: string) =>
    (await run(h, `runuser -u ${user} -- tmux -u capture-pane -p -J -S -200 -t ${q("=" + s + ":")}`, { check: false })).stdout;
  /** pid, argv, cwd and session file of the claude in session s (found through the session files: tmux field) */
  async function claudeOf(user: string, s: string) {
    const r = await run(h, `for f in /home/${user}/.claude/sessions/*.json; do [ -f "$f" ] && cat "$f" && echo; done`, { check: false });
    for (const line of r.stdout.split("\n").filter(Boolean)) {
      const f = JSON.parse(line);
      if (typeof f.tmux !== "string" || !f.tmux.startsWith(`${s}:`)) continue;
      const alive = await run(
        h,
        `test -d /proc/${f.pid} && tr '\\0' '\\n' </proc/${f.pid}/cmdline && echo "@@$(readlink /proc/${f.pid}/cwd)" && echo "@@$(cut -d' ' -f22 /proc/${f.pid}/stat)"`,
        { check: false },
      );
      if (alive.code !== 0) continue;
      const lines = alive.stdout.split("\n").filter(Boolean);
      const [cwd, start] = lines.filter((l) => l.startsWith("@@")).map((l) => l.slice(2));
      if (start !== f.procStart) continue; // a stale file
      return { pid: f.pid as number, sessionId: f.sessionId as string, argv: lines.filter((l) => !l.startsWith("@@")), cwd };
    }
    return null;
  }
  const saved: Record<string, { uuid: string; answer: string }> = {};

  before(async () => {
    const dir = C.requireClaude(); // under CI=true a missing binary fails here
    fake = await new FakeAnthropicMessages().start();
    h = await createHost("claude-reboot");
    // systemd-nspawn reads /run/systemd/nspawn/<machine>.nspawn (trusted) at every boot
    nspawnFile = `/run/systemd/nspawn/${h.machine}.nspawn`;
    fs.mkdirSync(path.dirname(nspawnFile), { recursive: true });
    fs.writeFileSync(nspawnFile, `[Files]\nBindReadOnly=${dir}:${BIND}\n`);
    await boot(h);
    await sh("install -d -m 0755 /usr/local/lib/workstations /etc/workstations /etc/claude-code");
    await installAgents(sh);
    for (const u of UNITS) await sh(`cat > /etc/systemd/system/${u}`, fs.readFileSync(path.join(ROOT, "scripts/units", u), "utf8"));
    await sh(
      "cat > /etc/claude-code/managed-settings.json && chmod 0644 /etc/claude-code/managed-settings.json",
      fs.readFileSync(path.join(ROOT, "config/managed-settings.json"), "utf8"),
    );
    await sh(`ln -sfn ${BIND}/node_modules/.bin/claude /usr/local/bin/claude`);
    for (const u of USERS) await sh(`useradd -m -u ${u.uid} -U -G users -s /bin/bash ${u.name}`);
    await installUsersIndex(sh, USERS);
    // each user's Claude config as a first run would leave it, pointed at the fake
    for (const u of USERS) {
      const projects = Object.values(SESSIONS)
        .filter(([who]) => who === u.name)
        .map(([, cwd]) => cwd);
      for (const p of projects) await sh(`install -d -o ${u.name} -g ${u.name} ${q(p)}`);
      const cfg = {
        hasCompletedOnboarding: true,
        customApiKeyResponses: { approved: [C.FAKE_KEY.slice(-20)], rejected: [] },
        projects: Object.fromEntries(projects.map((p) => [p, { hasTrustDialogAccepted: true }])),
      };
      const put = (file: string, text: string) => sh(`cat > ${file} && chown ${u.name}: ${file} && chmod 0600 ${file}`, text);
      await put(`/home/${u.name}/.claude.json`, JSON.stringify(cfg));
      await sh(`install -d -m 0700 -o ${u.name} -g ${u.name} /home/${u.name}/.claude`);
      await put(`/home/${u.name}/.claude/settings.json`, JSON.stringify({ env: C.offlineEnv(fake.url) }));
    }
    await sh("systemctl daemon-reload && systemctl enable --now tmux-persist-restore.service tmux-persist-save.timer");
  });

  after(async () => {
    if (h) await destroyHost(h);
    if (nspawnFile) fs.rmSync(nspawnFile, { force: true });
    await fake?.stop();
  });

  test("the real binary runs in the machine: the npm layout through the bind", async () => {
    assert.equal((await sh("claude --version")).stdout.trim(), `${C.CLAUDE_VERSION} (Claude Code)`);
    assert.equal((await sh("readlink -f /usr/local/bin/claude")).stdout.trim(), `${BIND}/node_modules/@anthropic-ai/claude-code/bin/claude.exe`);
  });

  test("three conversations (two in one cwd) saved by the save unit from the session files", async () => {
    for (const [s, [user, cwd]] of Object.entries(SESSIONS)) {
      await sh(
        `systemd-run --scope --quiet --unit=tp-${s}.scope -- runuser -u ${user} -- env -C / PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/home/${user} tmux -u new-session -d -s ${s} -x 200 -y 50 -c ${q(cwd)} claude`,
      );
      await waitFor(`claude's prompt in ${s}`, async () => /Claude Code v2\.1\.332/.test(await capture(user, s)) && /^❯\s*$/m.test(await capture(user, s)));
    }
    for (const [s, [user, , text]] of Object.entries(SESSIONS)) {
      await as(user, `tmux -u send-keys -t ${q("=" + s + ":")} -l ${q(text)}`);
      await sleep(300);
      await as(user, `tmux -u send-keys -t ${q("=" + s + ":")} Enter`);
      const rec = await waitFor(`the fake to get ${s}'s message`, async () => fake.messages.find((r) => lastUserText(r.body) === text && r.answer));
      await waitFor(`the answer on ${s}'s screen`, async () => (await capture(user, s)).includes(rec.answer!));
      const c = await waitFor(`${s}'s claude`, () => claudeOf(user, s));
      saved[s] = { uuid: c.sessionId, answer: rec.answer! };
      // the managed claudeMd reached the request from this host too
      const t = requestTexts(rec.body);
      assert.ok((t.system + t.messages).includes("# Devvm rules (managed by workstations)"), "managed claudeMd in the request");
    }
    assert.notEqual(saved.main.uuid, saved.twin.uuid);
    await sleep(1500); // claude's last status write after the answer
    await sh("systemctl start tmux-persist-save.service");
    assert.equal((await sh("systemctl show -p Result --value tmux-persist-save.service")).stdout.trim(), "success");
    for (const u of USERS) {
      const snap = JSON.parse((await sh(`cat /var/lib/tmux-persist/${u.name}/last`)).stdout);
      for (const s of snap.sessions) {
        const c = s.windows[0].panes[0].claude;
        assert.ok(c, `${s.name}: a claude pane`);
        assert.equal(c.status, "ok", `${s.name}: ${JSON.stringify(c)}`);
        assert.equal(c.source, "session-file");
        assert.equal(c.uuid, saved[s.name].uuid);
      }
    }
  });

  test("poweroff then boot: every session resumes its own conversation, the earlier answer on screen", async () => {
    const before = fake.messages.length;
    await poweroff(h);
    await boot(h);
    await waitFor("restore unit done", () => restoreUnitDone(h), 180_000);
    for (const [s, [user, cwd]] of Object.entries(SESSIONS)) {
      await waitFor(`${s}: the earlier conversation on screen`, async () => (await capture(user, s)).includes(saved[s].answer), 90_000);
      const c = await waitFor(`${s}'s resumed claude`, () => claudeOf(user, s));
      assert.equal(c.sessionId, saved[s].uuid, `${s}: its own conversation`);
      assert.deepEqual(c.argv.slice(1), ["--resume", saved[s].uuid], `${s}: claude --resume <uuid>`);
      assert.equal(c.cwd, cwd);
      const other = Object.entries(saved)
        .filter(([k]) => k !== s)
        .map(([, v]) => v.answer);
      const screen = await capture(user, s);
      for (const a of other) assert.ok(!screen.includes(a), `${s} shows another conversation`);
    }
    assert.equal(fake.messages.length, before, "resuming sent nothing to the API");
    const exes = (
      await sh(
        `for p in /proc/[0-9]*; do readlink $p/exe; done 2>/dev/null | grep -c '^${BIND}/node_modules/@anthropic-ai/claude-code/bin/claude.exe$' || true`,
      )
    ).stdout.trim();
    assert.equal(exes, "3", "three claudes, none started twice");
  });
});
