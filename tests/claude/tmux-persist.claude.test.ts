/**
 * tmux-persist (scripts/agents/tmux-persist.mjs) with the REAL Claude Code CLI 2.1.332 in
 * real tmux servers of throwaway users (dev/tmux.ts), against the fake Messages API
 * (dev/fakes/anthropic-messages.ts, its own process). Claude keeps
 * ~/.claude/sessions/<pid>.json for each running process; save reads it first (checked
 * against /proc), restore runs `claude --resume <uuid>` in the saved cwd.
 *
 * Needs root (useradd, uid switching). Under CI=true a missing claude binary fails.
 *
 *   CI=true node --require ts-node/register/transpile-only --test --test-concurrency=1 tests/claude/*.test.ts
 */
import { after, before, beforeEach, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as L from "../../dev/tmux";
import * as C from "../../dev/claude";

const skip = C.claudeSkip();

describe("tmux-persist with real claude", { skip: skip ?? false, timeout: 30 * 60_000 }, () => {
  let env: L.Env;
  let A: L.TUser;
  let B: L.TUser;
  let X: L.TUser; // not in the roster: owner of a planted file
  let inst: C.ClaudeInstall;
  let fake: C.FakeApiProcess;
  let usersFile: string;
  let stateDir: string;
  let n = 0;

  // WORKSTATIONS_TP_SCRIPT: run another tmux-persist (e.g. an older commit's) to see these tests fail on it
  const tp = (cmd: string, ...args: string[]) =>
    L.runTP(cmd, { usersFile, stateDir, claudeBin: inst.bin, args, script: process.env.WORKSTATIONS_TP_SCRIPT || undefined });
  const ok = (r: L.TPResult, what: string) => assert.equal(r.status, 0, `${what} failed (${r.status}):\n${r.stderr}`);
  const lastSnap = (u: L.TUser) => JSON.parse(fs.readFileSync(path.join(stateDir, u.name, "last"), "utf8"));
  const claudePanes = (snap: any): any[] =>
    snap.sessions.flatMap((s: any) =>
      s.windows.flatMap((w: any) =>
        w.panes.filter((p: any) => p.claude).map((p: any) => ({ session: s.name, window: w.index, pane: p.index, cwd: p.cwd, ...p.claude })),
      ),
    );
  const bySession = (snap: any) => new Map(claudePanes(snap).map((c) => [c.session, c]));
  /** a fresh project dir per test, trusted in ~/.claude.json */
  const proj = (u: L.TUser, rel: string) => {
    const d = L.userDir(u, path.join(`t${n}`, rel));
    C.seedUser(u, { url: fake.url, projects: [d] });
    return d;
  };
  /** a session running claude (argv `cmd`, default the npm .bin link) in cwd; waits for the prompt */
  function startClaude(u: L.TUser, session: string, cwd: string, cmd: string[] = [inst.bin]) {
    L.makeSession(env, u, session, [{ panes: [{ cwd, cmd }] }]);
    C.waitReady(env, u, session);
    return C.waitSession(env, u, session);
  }
  /** live claude per session of u: pid, its session file, argv, cwd */
  function live(u: L.TUser) {
    const out = new Map<string, { pid: number; sessionId: string; argv: string[]; cwd: string }>();
    for (const p of L.livePanes(env, u)) {
      const pid = C.claudeOfPane(u, p.panePid);
      if (!pid) continue;
      const f = C.sessionFile(u, pid);
      const proc = C.claudeProcs(u.uid).find((q) => q.pid === pid)!;
      if (f) out.set(p.session, { pid, sessionId: f.sessionId, argv: proc.argv, cwd: proc.cwd });
    }
    return out;
  }

  before(() => {
    if (skip === undefined) C.requireClaude(); // under CI=true a missing binary fails here
    env = L.setupEnv(3);
    [A, B, X] = env.users;
    inst = C.installNpmLayout(env.base);
    fake = new C.FakeApiProcess(env.base).start();
    usersFile = path.join(env.base, "users.json");
    L.writeUsersJson(usersFile, [{ u: A }, { u: B }]);
    for (const u of env.users) C.seedUser(u, { url: fake.url, projects: [] });
  });
  after(() => {
    fake?.stop();
    if (env) L.teardownEnv(env);
  });
  beforeEach(() => {
    n++;
    for (const u of env.users) L.killUser(env, u);
    stateDir = path.join(env.base, `state-${n}`);
  });

  test("save takes each pane's uuid from the session file; /clear + a message, and /resume, are tracked by the next save", () => {
    const p1 = proj(A, "one");
    const p2 = proj(A, "two");
    const s1 = startClaude(A, "s1", p1);
    const s2 = startClaude(A, "s2", p2);
    C.say(env, A, "s1", fake, "first conversation alpha");
    C.say(env, A, "s2", fake, "second conversation bravo");
    ok(tp("save"), "save");
    let snap = bySession(lastSnap(A));
    for (const [name, s] of [
      ["s1", s1],
      ["s2", s2],
    ] as const) {
      const c = snap.get(name);
      assert.ok(c, `${name} recorded as a claude pane`);
      assert.equal(c.uuid, C.sessionFile(A, s.pid)!.sessionId);
      assert.equal(c.status, "ok");
      assert.equal(c.source, "session-file");
      assert.equal(c.pid, s.pid);
      assert.equal(c.identifiedBy, "exe-argv");
    }
    const first = snap.get("s1").uuid;
    // /clear, then a message: a new conversation in the same process, argv unchanged
    const cleared = C.clear(env, A, "s1", s1.pid);
    assert.notEqual(cleared, first);
    C.say(env, A, "s1", fake, "after clear charlie");
    ok(tp("save"), "save after /clear");
    snap = bySession(lastSnap(A));
    assert.equal(snap.get("s1").uuid, cleared, "the next save records the new conversation");
    assert.equal(snap.get("s1").source, "session-file");
    assert.equal(snap.get("s2").uuid, C.sessionFile(A, s2.pid)!.sessionId, "the other pane is unchanged");
    // /resume <first> inside the running process: back to the first conversation
    C.type(env, A, "s1", `/resume ${first}`);
    L.waitFor("the session file back on the first conversation", () => C.sessionFile(A, s1.pid)?.sessionId === first, 20000);
    ok(tp("save"), "save after /resume");
    assert.equal(bySession(lastSnap(A)).get("s1").uuid, first);
  });

  test("restore after the server is killed: `claude --resume <uuid>` in its cwd, the earlier answer on screen, nothing started twice", () => {
    const p1 = proj(A, "rest one");
    const p2 = proj(A, "rest-two");
    const pb = proj(B, "b proj");
    startClaude(A, "r1", p1);
    startClaude(A, "r2", p2);
    startClaude(B, "rb", pb);
    const ans1 = C.say(env, A, "r1", fake, "restore me delta");
    const ans2 = C.say(env, A, "r2", fake, "restore me echo");
    const ansB = C.say(env, B, "rb", fake, "restore me foxtrot");
    const before = { a: live(A), b: live(B) };
    ok(tp("save"), "save");
    for (const u of [A, B]) L.killUser(env, u);
    assert.equal(C.claudeProcs(A.uid).length + C.claudeProcs(B.uid).length, 0);
    fake.clear();
    const r = tp("restore");
    ok(r, "restore");
    for (const [u, sess, ans] of [
      [A, "r1", ans1],
      [A, "r2", ans2],
      [B, "rb", ansB],
    ] as const) {
      C.waitScreen(env, u, sess, "the earlier conversation", (t) => t.includes(ans) && t.includes(`Claude Code v${C.CLAUDE_VERSION}`));
    }
    const after = { a: L.waitFor("A's claudes", () => live(A).size === 2 && live(A)), b: L.waitFor("B's claude", () => live(B).size === 1 && live(B)) };
    for (const [bef, aft] of [
      [before.a, after.a],
      [before.b, after.b],
    ] as const) {
      for (const [name, was] of bef) {
        const now = aft.get(name)!;
        assert.equal(now.sessionId, was.sessionId, `${name}: the same conversation`);
        assert.equal(now.cwd, was.cwd, `${name}: in its cwd`);
        assert.deepEqual(now.argv.slice(1), ["--resume", was.sessionId], `${name}: claude --resume <uuid>`);
        assert.equal(now.argv[0], inst.bin);
      }
    }
    assert.equal(fake.messages().length, 0, "resuming sends nothing to the API");
    // restore again: nothing new (the sessions exist; the conversations run)
    const r2 = tp("restore");
    ok(r2, "second restore");
    L.sleep(1500);
    assert.equal(C.claudeProcs(A.uid).length, 2, "no conversation started twice");
    assert.equal(new Set([...live(A).values()].map((c) => c.sessionId)).size, 2);
    // a restored claude keeps working: a new message reaches the fake in the same conversation
    C.say(env, A, "r1", fake, "after restore golf");
    const [q] = fake.requestsFor("after restore golf");
    assert.equal(q.headers["x-claude-code-session-id"], before.a.get("r1")!.sessionId);
    assert.ok(JSON.stringify(q.body.messages).includes("restore me delta"), "the earlier turns are in the request");
  });

  test("two real claudes in one cwd, in two sessions: told apart exactly, each restored to its own conversation", () => {
    const p = proj(A, "shared");
    const t1 = startClaude(A, "twin1", p);
    const t2 = startClaude(A, "twin2", p);
    const a1 = C.say(env, A, "twin1", fake, "twin one hotel");
    const a2 = C.say(env, A, "twin2", fake, "twin two india");
    ok(tp("save"), "save");
    const snap = bySession(lastSnap(A));
    assert.equal(snap.get("twin1").status, "ok", "not ambiguous");
    assert.equal(snap.get("twin2").status, "ok", "not ambiguous");
    assert.equal(snap.get("twin1").uuid, C.sessionFile(A, t1.pid)!.sessionId);
    assert.equal(snap.get("twin2").uuid, C.sessionFile(A, t2.pid)!.sessionId);
    assert.notEqual(snap.get("twin1").uuid, snap.get("twin2").uuid);
    L.killUser(env, A);
    ok(tp("restore"), "restore");
    C.waitScreen(env, A, "twin1", "twin1's own conversation", (t) => t.includes(a1));
    C.waitScreen(env, A, "twin2", "twin2's own conversation", (t) => t.includes(a2));
    assert.ok(!C.capture(env, A, "twin1").includes(a2) && !C.capture(env, A, "twin2").includes(a1), "not each other's");
    // both by name: another session (a claude restored from an earlier test) must not count
    const now = L.waitFor("both claudes", () => {
      const m = live(A);
      return m.has("twin1") && m.has("twin2") && m;
    });
    assert.equal(now.get("twin1")!.sessionId, snap.get("twin1").uuid);
    assert.equal(now.get("twin2")!.sessionId, snap.get("twin2").uuid);
  });

  test("stale or forged session files are ignored with a log line: wrong procStart, another user's file, a path outside the home", () => {
    const p = proj(A, "forge");
    // conversation Z, from a claude that has exited: what a forged file would point at
    startClaude(A, "old", p);
    C.say(env, A, "old", fake, "the older conversation juliet");
    const z = C.sessionFile(A, C.claudeOfPane(A, L.livePanes(env, A)[0].panePid)!)!.sessionId;
    L.killUser(env, A);
    L.sleep(700); // the next claude starts clearly after Z's transcript was created
    const f = startClaude(A, "forge", p);
    C.say(env, A, "forge", fake, "the real conversation kilo");
    const real = C.sessionFile(A, f.pid)!.sessionId;
    assert.notEqual(real, z);
    const file = path.join(A.home, ".claude/sessions", `${f.pid}.json`);
    C.settle(file); // claude writes its status once more after an answer; then it stays idle
    const genuine = fs.readFileSync(file, "utf8");
    const plant = (text: string, owner: L.TUser) => {
      fs.writeFileSync(`${file}.t`, text, { mode: 0o644 });
      fs.chownSync(`${file}.t`, owner.uid, owner.gid);
      fs.renameSync(`${file}.t`, file);
    };
    const forged = (o: Record<string, unknown>) => JSON.stringify({ ...JSON.parse(genuine), sessionId: z, ...o });
    const check = (what: string, log: RegExp) => {
      const planted = fs.readFileSync(file, "utf8");
      const r = tp("save");
      ok(r, `save (${what})`);
      assert.equal(fs.readFileSync(file, "utf8"), planted, `${what}: claude rewrote its file during the save; the test is void`);
      const c = bySession(lastSnap(A)).get("forge");
      assert.notEqual(c.uuid, z, `${what}: the forged conversation must not be recorded\n${r.stderr}`);
      assert.notEqual(c.source, "session-file", `${what}\n${r.stderr}`);
      assert.match(r.stderr, log, `${what}: a log line`);
      return c;
    };
    // 1. wrong procStart (a file left by a dead claude whose pid was reused looks like this)
    plant(forged({ procStart: "1" }), A);
    const c1 = check("wrong procStart", /claude session file ignored.*procStart.*stale or forged/);
    assert.equal(c1.uuid, real, "the fallback (transcripts) still finds the real one");
    assert.equal(c1.source, "transcript");
    // 2. the right content, but another user's file
    plant(forged({}), X);
    check("another user's file", /claude session file ignored.*not owned by the user/);
    // 3. ~/.claude/sessions a symlink to a dir outside the home (the user's own, with a file that matches)
    fs.writeFileSync(file, genuine);
    fs.chownSync(file, A.uid, A.gid);
    const outside = fs.mkdtempSync(path.join(env.base, "outside-"));
    fs.chownSync(outside, A.uid, A.gid);
    fs.writeFileSync(path.join(outside, `${f.pid}.json`), forged({}));
    fs.chownSync(path.join(outside, `${f.pid}.json`), A.uid, A.gid);
    const sessions = path.join(A.home, ".claude/sessions");
    fs.renameSync(sessions, `${sessions}.real`);
    fs.symlinkSync(outside, sessions);
    try {
      check("sessions dir a symlink out of the home", /claude sessions dir not read.*symlink or not a directory \(not followed\)/);
    } finally {
      fs.rmSync(sessions);
      fs.renameSync(`${sessions}.real`, sessions);
    }
    // 4. a process whose CLAUDE_CONFIG_DIR is outside the home: its session file there is never read
    L.killUser(env, A);
    const out2 = fs.mkdtempSync(path.join(env.base, "cfg-out-"));
    fs.chownSync(out2, A.uid, A.gid);
    for (const [from, to] of [
      [".claude/settings.json", "settings.json"],
      [".claude.json", ".claude.json"],
    ]) {
      fs.cpSync(path.join(A.home, from), path.join(out2, to));
      fs.chownSync(path.join(out2, to), A.uid, A.gid);
    }
    L.makeSession(env, A, "outcfg", [{ panes: [{ cwd: p, cmd: ["env", `CLAUDE_CONFIG_DIR=${out2}`, inst.bin] }] }]);
    C.waitReady(env, A, "outcfg");
    const outFile = L.waitFor("the session file under CLAUDE_CONFIG_DIR", () => fs.readdirSync(path.join(out2, "sessions")).find((x) => x.endsWith(".json")));
    assert.ok(outFile);
    const r4 = tp("save");
    ok(r4, "save (CLAUDE_CONFIG_DIR outside)");
    const c4 = bySession(lastSnap(A)).get("outcfg");
    assert.notEqual(c4.source, "session-file");
    assert.match(r4.stderr, /CLAUDE_CONFIG_DIR outside the home ignored/);
    assert.ok(!JSON.stringify(lastSnap(A)).includes(out2), "nothing of the outside dir in the snapshot");
    // the control: the genuine file is used again
    L.killUser(env, A);
    const g = startClaude(A, "genuine", p);
    ok(tp("save"), "save (genuine)");
    assert.equal(bySession(lastSnap(A)).get("genuine").source, "session-file");
    assert.equal(bySession(lastSnap(A)).get("genuine").status, "no-transcript", "never messaged: the session has no transcript yet");
    void g;
  });

  test("identification: npm's claude.exe by its own path, the native installer's versions/<v>, and a renamed binary by its session file", () => {
    const p = proj(A, "ident");
    const native = C.installNativeLayout(A, inst);
    const renamed = path.join(env.bin, "my-assistant");
    fs.rmSync(renamed, { force: true });
    fs.linkSync(fs.realpathSync(inst.exe), renamed);
    const a = startClaude(A, "exe", p, [inst.exe]);
    const b = startClaude(A, "native", p, [native.bin]);
    const c = startClaude(A, "renamed", p, [renamed]);
    for (const [s, want] of [
      [a, inst.exe],
      [b, native.exe],
      [c, renamed],
    ] as const)
      assert.equal(fs.readlinkSync(`/proc/${s.pid}/exe`), want);
    // comm is the name that was exec'd (the kernel's rule), not something claude sets
    assert.equal(fs.readFileSync(`/proc/${a.pid}/comm`, "utf8").trim(), "claude.exe");
    assert.equal(fs.readFileSync(`/proc/${b.pid}/comm`, "utf8").trim(), "claude");
    assert.equal(fs.readFileSync(`/proc/${c.pid}/comm`, "utf8").trim(), "my-assistant");
    C.say(env, A, "exe", fake, "via claude.exe lima");
    C.say(env, A, "native", fake, "via versions mike");
    C.say(env, A, "renamed", fake, "via a renamed binary november");
    ok(tp("save"), "save");
    const snap = bySession(lastSnap(A));
    for (const [name, s] of [
      ["exe", a],
      ["native", b],
      ["renamed", c],
    ] as const) {
      assert.equal(snap.get(name)?.uuid, C.sessionFile(A, s.pid)!.sessionId, `${name} recorded with its conversation`);
      assert.equal(snap.get(name).source, "session-file");
    }
    assert.equal(snap.get("exe").identifiedBy, "exe-argv");
    assert.equal(snap.get("native").identifiedBy, "exe-argv");
    assert.equal(snap.get("renamed").identifiedBy, "session-file", "only Claude's own record says it is claude");
  });
});

describe("claude identification rules (pure)", () => {
  const load = new Function("p", "return import(p)") as (p: string) => Promise<any>;
  test("isClaudeProcess: every layout of the npm package and the native installer", async () => {
    const m = await load(L.SCRIPT);
    const yes: [string[], string][] = [
      [["/opt/x/node_modules/.bin/claude"], "/opt/x/node_modules/@anthropic-ai/claude-code/bin/claude.exe"],
      [["/opt/x/node_modules/@anthropic-ai/claude-code/bin/claude.exe", "--resume", "u"], "/opt/x/node_modules/@anthropic-ai/claude-code/bin/claude.exe"],
      [["whatever"], "/usr/lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe"],
      [["/opt/x/node_modules/@anthropic-ai/claude-code-linux-x64/claude"], "/opt/x/node_modules/@anthropic-ai/claude-code-linux-x64/claude"],
      [["claude"], "/home/u/.local/share/claude/versions/2.1.332"],
      [["2.1.332"], "/home/u/.local/share/claude/versions/2.1.332 (deleted)"],
      [["node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"], "/usr/bin/node"],
    ];
    for (const [argv, exe] of yes) assert.equal(m.isClaudeProcess(argv, exe), true, JSON.stringify([argv, exe]));
    const no: [string[], string][] = [
      [["bash"], "/usr/bin/bash"],
      [["vim", "claude.exe"], "/usr/bin/vim"],
      [["/usr/bin/claudex"], "/usr/bin/claudex"],
      [["claude.exe.bak"], "/tmp/claude.exe.bak"],
    ];
    for (const [argv, exe] of no) assert.equal(m.isClaudeProcess(argv, exe), false, JSON.stringify([argv, exe]));
  });
});
