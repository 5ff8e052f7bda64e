/**
 * scripts/agents/tmux-persist.mjs against real tmux servers of real (throwaway) local users.
 *
 * Needs root: it creates users wst<tag>{a,b,c,d} with useradd (removed in after(), also on
 * failure or Ctrl-C), runs the users' own tmux servers on their default sockets
 * (/tmp/tmux-<uid>/default), and runs the script as root the way the units do. `claude` is
 * tests/tmux/fake-claude (records argv + cwd, writes transcripts in the right slug dir, keeps
 * running). Without systemd as PID 1 the script starts servers with runuser directly.
 *
 *   node --require ts-node/register/transpile-only --test tests/tmux/tmux-persist.test.ts
 */
import { after, before, beforeEach, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import * as L from "../../dev/tmux";

const skip = L.cannotRun();

describe("tmux-persist (real tmux, local users)", { skip: skip ?? false }, () => {
  let env: L.Env;
  let A: L.TUser; // active
  let B: L.TUser; // active
  let C: L.TUser; // opted out (tmuxPersist: false)
  let D: L.TUser; // suspended
  let usersFile: string;
  let stateDir: string;
  let n = 0;

  // `--names all`: this suite's names are hostile on purpose (tabs, newlines, '$', 200 bytes);
  // the lobby's name rule, the default, is tested in tests/tmux/lobby.test.ts.
  const tp = (cmd: string, ...args: string[]) => L.runTP(cmd, { usersFile, stateDir, claudeBin: env.claudeBin, args: ["--names", "all", ...args] });
  const ok = (r: L.TPResult, what: string) => assert.equal(r.status, 0, `${what} failed (${r.status}):\n${r.stderr}`);
  const snapDir = (u: L.TUser) => path.join(stateDir, u.name);
  const lastSnap = (u: L.TUser) => JSON.parse(fs.readFileSync(path.join(snapDir(u), "last"), "utf8"));
  const snapFiles = (u: L.TUser) =>
    fs
      .readdirSync(snapDir(u))
      .filter((f) => /^snap-.*\.json$/.test(f))
      .sort();
  /** wait until `count` fake claudes of u have started since the log was cleared */
  const waitStarts = (u: L.TUser, count: number, pred: (e: L.FakeEvent) => boolean = () => true) =>
    L.waitFor(`${count} claude starts of ${u.name}`, () => L.fakeLog(u).filter((e) => e.event === "start" && pred(e)).length >= count);
  /** a fresh project dir per test */
  const dir = (u: L.TUser, rel: string) => L.userDir(u, path.join(`t${n}`, rel));

  /** The comparable shape of a user's live tmux state: names, window/pane layout, cwds, uuids. */
  function model(u: L.TUser) {
    const panes = L.livePanes(env, u);
    const claude = L.claudeByPanePid(u, panes);
    return panes
      .map((p) => ({
        session: p.session,
        window: p.windowIndex,
        windowName: p.autoName ? "(auto)" : p.windowName,
        pane: p.paneIndex,
        cwd: p.cwd,
        uuid: claude.get(p.panePid)?.uuid ?? null,
      }))
      .sort((a, b) => (a.session + "\0" + a.window + "\0" + a.pane < b.session + "\0" + b.window + "\0" + b.pane ? -1 : 1));
  }
  /** tmux clients the restore started for u (its `restore done ... tmuxCalls=N` line) */
  const tmuxCalls = (r: L.TPResult, u: L.TUser) => {
    const m = new RegExp(`restore done user=${u.name} .*tmuxCalls=([0-9]+)`).exec(r.stderr);
    assert.ok(m, `no tmuxCalls for ${u.name}:\n${r.stderr}`);
    return Number(m[1]);
  };
  /** windows of u: index, name, focus, layout shape (no checksum, no pane ids), focused pane */
  function windowsShape(u: L.TUser) {
    const sep = "\u0002";
    const r = L.tmux(
      env,
      u,
      [
        "list-windows",
        "-a",
        "-F",
        ["#{session_name}", "#{window_index}", "#{window_active}", "#{window_layout}", "#{P:#{?pane_active,#{pane_index},}}"].join(sep),
      ],
      true,
    );
    if (r.status !== 0) return [];
    return r.stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => {
        const [session, index, active, layout, activePane] = l.split(sep);
        return {
          session,
          index: Number(index),
          active: active === "1",
          layout: layout.replace(/^[0-9a-f]{4},/, "").replace(/([0-9]+x[0-9]+,[0-9]+,[0-9]+),[0-9]+/g, "$1"),
          activePane,
        };
      })
      .sort((a, b) => (a.session + "\0" + a.index < b.session + "\0" + b.index ? -1 : 1));
  }
  const claudePanes = (snap: any) =>
    snap.sessions.flatMap((s: any) =>
      s.windows.flatMap((w: any) => w.panes.filter((p: any) => p.claude).map((p: any) => ({ session: s.name, window: w.index, pane: p.index, ...p.claude }))),
    );

  before(() => {
    env = L.setupEnv(4);
    [A, B, C, D] = env.users;
    usersFile = path.join(env.base, "users.json");
    L.writeUsersJson(usersFile, [{ u: A }, { u: B }, { u: C, tmuxPersist: false }, { u: D, state: "suspended" }]);
  });
  after(() => {
    if (env) L.teardownEnv(env);
  });
  beforeEach(() => {
    n++;
    L.resetUsers(env);
    stateDir = path.join(env.base, `state-${n}`);
  });

  test("several users x several sessions: save, kill the servers, restore, same names/cwds/uuids", () => {
    const a1 = dir(A, "alpha");
    const a2 = dir(A, "alpha/sub");
    const a3 = dir(A, "beta");
    const a4 = dir(A, "gamma");
    L.makeSession(env, A, "alpha", [
      { name: "editor", panes: [{ cwd: a1, cmd: ["claude"] }, { cwd: a2 }] },
      { panes: [{ cwd: a2 }, { cwd: a4 }, { cwd: a1 }] },
    ]);
    L.makeSession(env, A, "beta", [{ panes: [{ cwd: a3, cmd: ["claude"] }] }]);
    L.makeSession(env, A, "gamma", [{ name: "logs", panes: [{ cwd: a4 }] }]);
    const b1 = dir(B, "alpha");
    const b2 = dir(B, "delta");
    L.makeSession(env, B, "alpha", [{ panes: [{ cwd: b1, cmd: ["claude"] }] }]);
    L.makeSession(env, B, "delta", [
      { name: "one", panes: [{ cwd: b2, cmd: ["claude"] }] },
      { name: "two", panes: [{ cwd: b2 }] },
      { name: "three", panes: [{ cwd: b1 + "/..", cmd: ["claude"] }] },
    ]);
    waitStarts(A, 2);
    waitStarts(B, 3);
    const before = { a: model(A), b: model(B) };
    assert.equal(before.a.filter((p) => p.uuid).length, 2);
    assert.equal(before.b.filter((p) => p.uuid).length, 3);

    ok(tp("save"), "save");
    for (const [u, m] of [
      [A, before.a],
      [B, before.b],
    ] as const) {
      const snap = lastSnap(u);
      assert.equal(snap.user, u.name);
      const cps = claudePanes(snap);
      assert.deepEqual(
        cps.map((c: any) => c.uuid).sort(),
        m
          .filter((p) => p.uuid)
          .map((p) => p.uuid)
          .sort(),
      );
      for (const c of cps) assert.equal(c.status, "ok");
    }

    for (const u of [A, B]) L.killUser(env, u);
    for (const u of [A, B]) L.clearFakeLog(u);
    const r = tp("restore");
    ok(r, "restore");
    waitStarts(A, 2);
    waitStarts(B, 3);
    assert.deepEqual(model(A), before.a);
    assert.deepEqual(model(B), before.b);
    // claude came back as `claude --resume <uuid>` in the saved cwd
    for (const u of [A, B]) {
      for (const e of L.fakeLog(u).filter((x) => x.event === "start")) {
        assert.deepEqual(e.argv, ["--resume", e.uuid]);
        assert.equal(e.resumed, true);
      }
    }
    // the restored servers belong to the users, with their supplementary groups, not root's
    for (const u of [A, B]) {
      const pid = Number(L.tmux(env, u, ["display-message", "-p", "#{pid}"]).stdout.trim());
      const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
      assert.match(status, new RegExp(`^Uid:\\s+${u.uid}\\s+${u.uid}\\s+${u.uid}\\s+${u.uid}$`, "m"));
      const groups = /^Groups:\s*(.*)$/m.exec(status)![1].trim().split(/\s+/).map(Number);
      assert.ok(groups.includes(100), `server of ${u.name} lacks group users: ${groups}`);
      assert.ok(!groups.includes(0), `server of ${u.name} kept root's group: ${groups}`);
      assert.ok(fs.existsSync(`/tmp/tmux-${u.uid}/default`), "server on the default socket");
    }
    // when claude exits the pane stays, with the user's shell
    const panes = L.livePanes(env, A);
    const claude = L.claudeByPanePid(A, panes);
    const [panePid, c] = [...claude.entries()][0];
    process.kill(c.pid, "SIGTERM");
    L.waitFor("login shell in the pane", () => {
      try {
        return fs.readFileSync(`/proc/${panePid}/cmdline`, "utf8").split("\0")[0] === "/bin/bash";
      } catch {
        return false;
      }
    });
    assert.ok(
      L.livePanes(env, A).some((p) => p.panePid === panePid),
      "pane still there",
    );
    // opted-out and suspended users have no state at all
    assert.ok(!fs.existsSync(snapDir(C)) && !fs.existsSync(snapDir(D)));
  });

  test("hostile session/window names and paths (tabs, newlines, spaces, quotes, unicode, #, backslash)", () => {
    const paths = [
      "sp ace",
      "tab\there",
      "new\nline",
      `quo'te"s`,
      "ünïcødé ✓ 日本",
      "hash #{pane_id} ##",
      "back\\slash",
      "-dash",
      "emoji 😀",
      "semi;",
      "bs-semi\\;",
    ];
    const dirs = paths.map((p) => dir(A, p));
    const names = [
      "tab\tname",
      "new\nline",
      `sp ace 'q' "dq"`,
      "ünï ✓ 日本",
      "#{session_id} ##x",
      "-dash",
      "back\\slash",
      "a.b:c",
      "$1 `id` ;&|",
      "semi;",
      "bs\\;",
      ";",
      "{ }",
      "$HOME x${y}_$_z",
      "\\$v",
    ];
    const stored: string[] = [];
    names.forEach((nm, i) => {
      stored.push(
        L.makeSession(env, A, nm, [
          {
            name: i === 9 ? "win;" : `w\t${i} #{x} "q"`,
            panes: [{ cwd: dirs[i % dirs.length], cmd: i % 2 === 0 ? ["claude"] : undefined }, { cwd: dirs[(i + 3) % dirs.length] }],
          },
          { panes: [{ cwd: dirs[(i + 5) % dirs.length] }] },
        ]),
      );
    });
    assert.equal(new Set(stored).size, names.length);
    const claudes = names.filter((_, i) => i % 2 === 0).length;
    waitStarts(A, claudes);
    const before = model(A);
    assert.equal(before.filter((p) => p.uuid).length, claudes);
    ok(tp("save"), "save");
    const snap = lastSnap(A);
    assert.deepEqual(snap.sessions.map((s: any) => s.name).sort(), [...stored].sort());
    for (const c of claudePanes(snap)) assert.equal(c.status, "ok", JSON.stringify(c));
    const shapes = windowsShape(A);
    L.killUser(env, A);
    L.clearFakeLog(A);
    const r = tp("restore");
    ok(r, "restore");
    waitStarts(A, claudes);
    assert.deepEqual(model(A), before);
    assert.deepEqual(windowsShape(A), shapes);
    // ... through the batched path: list-sessions, the new-sessions, the rest (+1 per 16 KB)
    assert.doesNotMatch(r.stderr, /batched tmux call failed/);
    assert.equal((r.stderr.match(/session restored .*batched=true/g) ?? []).length, names.length, r.stderr);
    assert.ok(tmuxCalls(r, A) <= 5, `restore of ${names.length} sessions took ${tmuxCalls(r, A)} tmux calls`);
    L.sleep(300);
    assert.equal(L.fakeLog(A).filter((e) => e.event === "start").length, claudes, "every conversation started once");
    // a second save of the restored state is identical (nothing drifts across a cycle)
    ok(tp("save"), "save again");
    assert.equal(snapFiles(A).length, 1, "restored state saved as unchanged");
  });

  test("two claude panes in one cwd are recorded as ambiguous, never guessed", () => {
    const same = dir(A, "same");
    const other = dir(A, "other");
    L.makeSession(env, A, "twins", [
      {
        panes: [
          { cwd: same, cmd: ["claude"] },
          { cwd: same, cmd: ["claude"] },
        ],
      },
    ]);
    L.makeSession(env, A, "single", [{ panes: [{ cwd: other, cmd: ["claude"] }] }]);
    waitStarts(A, 3);
    const twinUuids = L.fakeLog(A)
      .filter((e) => e.event === "start" && e.cwd === same)
      .map((e) => e.uuid)
      .sort();
    const singleUuid = L.fakeLog(A).find((e) => e.event === "start" && e.cwd === other)!.uuid;
    ok(tp("save"), "save");
    const cps = claudePanes(lastSnap(A));
    const twins = cps.filter((c: any) => c.session === "twins");
    assert.equal(twins.length, 2);
    for (const t of twins) {
      assert.equal(t.status, "ambiguous");
      assert.equal(t.uuid, null);
      assert.deepEqual(t.candidates, twinUuids);
    }
    assert.equal(cps.find((c: any) => c.session === "single").uuid, singleUuid);
    L.killUser(env, A);
    L.clearFakeLog(A);
    const r = tp("restore");
    ok(r, "restore");
    waitStarts(A, 1);
    L.sleep(500);
    const starts = L.fakeLog(A).filter((e) => e.event === "start");
    assert.deepEqual(
      starts.map((e) => e.uuid),
      [singleUuid],
      "only the unambiguous conversation was resumed",
    );
    assert.deepEqual(L.sessionNames(env, A), ["single", "twins"]);
    assert.equal(L.livePanes(env, A).filter((p) => p.session === "twins").length, 2, "both panes back, as shells");
    assert.match(r.stderr, /pane restored as a shell .*session=twins .*ambiguous/);
  });

  test("stale --resume in argv: the conversation created after start wins; a current argv is kept", () => {
    const pa = dir(A, "a");
    const pb = dir(A, "b");
    const pc = dir(A, "c");
    // earlier conversations, then their processes end (the transcripts stay)
    L.makeSession(env, A, "seed", [
      { panes: [{ cwd: pa, cmd: ["claude"] }] },
      { panes: [{ cwd: pb, cmd: ["claude"] }] },
      { panes: [{ cwd: pc, cmd: ["claude"] }] },
    ]);
    waitStarts(A, 3);
    const seed = (cwd: string) => L.fakeLog(A).find((e) => e.event === "start" && e.cwd === cwd)!.uuid;
    const [ua, ub, uc] = [seed(pa), seed(pb), seed(pc)];
    L.tmux(env, A, ["kill-session", "-t", "=seed"]);
    L.waitFor("seed claudes gone", () => L.fakeLog(A).filter((e) => e.event === "exit").length >= 3);
    L.sleep(1100); // make "created before start" unambiguous for the slack window
    L.clearFakeLog(A);
    L.makeSession(env, A, "stale", [{ panes: [{ cwd: pa, cmd: ["claude", "--resume", ua] }] }]);
    L.makeSession(env, A, "current", [{ panes: [{ cwd: pb, cmd: ["claude", `--resume=${ub}`] }] }]);
    L.makeSession(env, A, "short", [{ panes: [{ cwd: pc, cmd: ["claude", "-r", uc] }] }]);
    waitStarts(A, 3);
    const stalePid = L.fakeLog(A).find((e) => e.event === "start" && e.uuid === ua)!.pid;
    process.kill(stalePid, "SIGUSR1"); // "/clear" + a message: a new conversation, argv unchanged
    const cleared = L.waitFor("clear", () => L.fakeLog(A).find((e) => e.event === "clear"))!.uuid;
    assert.notEqual(cleared, ua);
    ok(tp("save"), "save");
    const cps = claudePanes(lastSnap(A));
    const by = (s: string) => cps.find((c: any) => c.session === s);
    assert.equal(by("stale").uuid, cleared);
    assert.equal(by("stale").source, "transcript");
    assert.match(by("stale").note, /stale/);
    assert.equal(by("current").uuid, ub);
    assert.equal(by("current").source, "argv");
    assert.equal(by("short").uuid, uc);
    L.killUser(env, A);
    L.clearFakeLog(A);
    ok(tp("restore"), "restore");
    waitStarts(A, 3);
    assert.deepEqual(
      L.fakeLog(A)
        .filter((e) => e.event === "start")
        .map((e) => e.uuid)
        .sort(),
      [cleared, ub, uc].sort(),
    );
    // after the restore, argv (via the restore wrapper) is current again: a save keeps it
    ok(tp("save"), "save after restore");
    const again = claudePanes(lastSnap(A));
    assert.deepEqual(again.map((c: any) => c.uuid).sort(), [cleared, ub, uc].sort());
  });

  test("a never-messaged session (no transcript) comes back as a shell in its cwd", () => {
    const q = dir(A, "quiet");
    const t = dir(A, "talk");
    L.makeSession(env, A, "quiet", [{ panes: [{ cwd: q, cmd: ["env", "FAKE_CLAUDE_SILENT=1", "claude"] }] }]);
    L.makeSession(env, A, "talk", [{ panes: [{ cwd: t, cmd: ["claude"] }] }]);
    waitStarts(A, 2);
    ok(tp("save"), "save");
    const quiet = claudePanes(lastSnap(A)).find((c: any) => c.session === "quiet");
    assert.equal(quiet.status, "no-transcript");
    assert.equal(quiet.uuid, null);
    L.killUser(env, A);
    L.clearFakeLog(A);
    const r = tp("restore");
    ok(r, "restore");
    waitStarts(A, 1);
    L.sleep(300);
    assert.deepEqual(L.sessionNames(env, A), ["quiet", "talk"]);
    const qp = L.livePanes(env, A).find((p) => p.session === "quiet")!;
    assert.equal(qp.cwd, q);
    assert.equal(L.fakeLog(A).filter((e) => e.event === "start").length, 1, "no claude started for the quiet session");
    assert.match(r.stderr, /session=quiet .*never messaged/);
  });

  test("missing cwd or transcript: skipped with a log line, the rest restored", () => {
    const gone = dir(A, "gone");
    const goneClaude = dir(A, "gone-claude");
    const kept = dir(A, "kept");
    const lost = dir(A, "lost-transcript");
    const gone2 = dir(A, "gone2");
    L.makeSession(env, A, "gone", [{ panes: [{ cwd: gone }] }]);
    L.makeSession(env, A, "gone-claude", [{ panes: [{ cwd: goneClaude, cmd: ["claude"] }] }]);
    L.makeSession(env, A, "kept", [{ panes: [{ cwd: kept }] }]);
    L.makeSession(env, A, "lost", [{ panes: [{ cwd: lost, cmd: ["claude"] }] }]);
    L.makeSession(env, A, "partial", [
      { name: "here", panes: [{ cwd: kept }] },
      { name: "there", panes: [{ cwd: gone2 }] },
    ]);
    waitStarts(A, 2);
    ok(tp("save"), "save");
    const lostTx = claudePanes(lastSnap(A)).find((c: any) => c.session === "lost").transcript;
    L.killUser(env, A);
    for (const d of [gone, goneClaude, gone2]) fs.rmSync(d, { recursive: true });
    fs.rmSync(lostTx);
    L.clearFakeLog(A);
    const r = tp("restore");
    ok(r, "restore");
    assert.deepEqual(L.sessionNames(env, A), ["kept", "partial"]);
    const partial = L.livePanes(env, A).filter((p) => p.session === "partial");
    assert.deepEqual(
      partial.map((p) => p.windowName),
      ["here"],
    );
    assert.match(r.stderr, /pane skipped .*session=gone .*reason="cwd missing"/);
    assert.match(r.stderr, /session skipped .*session=gone .*nothing restorable/);
    assert.match(r.stderr, /pane skipped .*session=gone-claude .*reason="cwd missing"/);
    assert.match(r.stderr, /pane skipped .*session=lost .*reason="transcript missing"/);
    assert.match(r.stderr, /pane skipped .*session=partial window=1 .*reason="cwd missing"/);
    L.sleep(300);
    assert.equal(L.fakeLog(A).filter((e) => e.event === "start" || e.event === "error").length, 0, "no claude started");
  });

  test("restore twice: no duplicate sessions, windows or conversations", () => {
    const p = dir(A, "p");
    L.makeSession(env, A, "one", [{ panes: [{ cwd: p, cmd: ["claude"] }, { cwd: p }] }]);
    L.makeSession(env, A, "two", [{ panes: [{ cwd: dir(A, "q"), cmd: ["claude"] }] }]);
    L.makeSession(env, B, "three", [{ panes: [{ cwd: dir(B, "r"), cmd: ["claude"] }] }]);
    waitStarts(A, 2);
    waitStarts(B, 1);
    ok(tp("save"), "save");
    for (const u of [A, B]) {
      L.killUser(env, u);
      L.clearFakeLog(u);
    }
    ok(tp("restore"), "restore 1");
    waitStarts(A, 2);
    waitStarts(B, 1);
    const first = { a: model(A), b: model(B) };
    const r2 = tp("restore");
    ok(r2, "restore 2");
    L.sleep(500);
    assert.deepEqual(model(A), first.a);
    assert.deepEqual(model(B), first.b);
    assert.equal(L.fakeLog(A).filter((e) => e.event === "start").length, 2);
    assert.equal(L.fakeLog(B).filter((e) => e.event === "start").length, 1);
    assert.match(r2.stderr, /session skipped .*session=one .*reason="session exists"/);
  });

  test("partial loss: only the killed sessions come back, the others are untouched", () => {
    for (const s of ["s1", "s2", "s3", "s4"]) L.makeSession(env, A, s, [{ panes: [{ cwd: dir(A, s), cmd: s === "s3" ? undefined : ["claude"] }] }]);
    L.makeSession(env, A, "s6", [{ panes: [{ cwd: dir(A, "s6"), cmd: ["claude"] }] }]);
    L.makeSession(env, B, "s5", [{ panes: [{ cwd: dir(B, "s5"), cmd: ["claude"] }] }]);
    waitStarts(A, 4);
    waitStarts(B, 1);
    const before = { a: model(A), b: model(B) };
    ok(tp("save"), "save");
    const untouched = L.livePanes(env, A)
      .filter((p) => p.session === "s1" || p.session === "s4")
      .map((p) => [p.session, p.panePid, p.paneId]);
    const bPanes = L.livePanes(env, B).map((p) => [p.session, p.panePid, p.paneId]);
    const u6 = before.a.find((p) => p.session === "s6")!.uuid!;
    for (const s of ["s2", "s3", "s6"]) L.tmux(env, A, ["kill-session", "-t", `=${s}`]);
    // s6's conversation is meanwhile running somewhere else
    L.makeSession(env, A, "moved", [{ panes: [{ cwd: dir(A, "s6"), cmd: ["claude", "--resume", u6] }] }]);
    L.waitFor("moved claude", () => L.fakeLog(A).some((e) => e.event === "start" && e.resumed));
    const startsBefore = L.fakeLog(A).filter((e) => e.event === "start").length;
    const r = tp("restore");
    ok(r, "restore");
    waitStarts(A, startsBefore + 1);
    L.sleep(500);
    assert.deepEqual(L.sessionNames(env, A), ["moved", "s1", "s2", "s3", "s4", "s6"]);
    assert.deepEqual(
      L.livePanes(env, A)
        .filter((p) => p.session === "s1" || p.session === "s4")
        .map((p) => [p.session, p.panePid, p.paneId]),
      untouched,
    );
    assert.deepEqual(
      L.livePanes(env, B).map((p) => [p.session, p.panePid, p.paneId]),
      bPanes,
    );
    const newStarts = L.fakeLog(A)
      .filter((e) => e.event === "start")
      .slice(startsBefore);
    assert.deepEqual(
      newStarts.map((e) => e.uuid),
      [before.a.find((p) => p.session === "s2")!.uuid],
    );
    assert.match(r.stderr, /pane restored as a shell .*session=s6 .*already running/);
    const m = model(A).filter((p) => p.session !== "moved" && p.session !== "s6");
    assert.deepEqual(
      m,
      before.a.filter((p) => p.session !== "s6"),
    );
  });

  test("an empty or failed save never replaces the good snapshot", () => {
    L.makeSession(env, A, "keep-me", [{ panes: [{ cwd: dir(A, "k"), cmd: ["claude"] }] }]);
    waitStarts(A, 1);
    ok(tp("save"), "save");
    const good = fs.readlinkSync(path.join(snapDir(A), "last"));
    const goodText = fs.readFileSync(path.join(snapDir(A), good), "utf8");
    // failed save: /proc unreadable while the server is up
    const bad = tp("save", "--proc", path.join(env.base, "no-proc"));
    assert.equal(bad.status, 3, bad.stderr);
    assert.equal(fs.readlinkSync(path.join(snapDir(A), "last")), good);
    // server gone (shutdown, crash): nothing written
    L.killUser(env, A);
    const r = tp("save");
    ok(r, "empty save");
    assert.match(r.stderr, new RegExp(`no tmux server or no sessions; previous snapshot kept user=${A.name}`));
    assert.equal(fs.readlinkSync(path.join(snapDir(A), "last")), good);
    assert.deepEqual(snapFiles(A), [good]);
    assert.equal(fs.readFileSync(path.join(snapDir(A), "last"), "utf8"), goodText);
    // and it still restores
    ok(tp("restore"), "restore");
    assert.deepEqual(L.sessionNames(env, A), ["keep-me"]);
  });

  test("state is root-only: user dirs 0700, files 0600, state dir 0700/0711, unreadable by the users", () => {
    fs.mkdirSync(stateDir, { mode: 0o755 }); // even if someone created it open
    fs.chmodSync(stateDir, 0o755);
    L.makeSession(env, A, "private", [{ panes: [{ cwd: dir(A, "p") }] }]);
    L.makeSession(env, B, "private", [{ panes: [{ cwd: dir(B, "p") }] }]);
    ok(tp("save"), "save");
    // the state dir loses group/other read+write (0711, as the host component creates it)
    assert.equal(fs.statSync(stateDir).mode & 0o777, 0o711);
    assert.equal(fs.statSync(stateDir).uid, 0);
    for (const d of [snapDir(A), snapDir(B)]) {
      const st = fs.statSync(d);
      assert.equal(st.mode & 0o777, 0o700, d);
      assert.equal(st.uid, 0);
    }
    const fresh = path.join(env.base, `fresh-state-${n}`);
    ok(L.runTP("save", { usersFile, stateDir: fresh, claudeBin: env.claudeBin }), "save into a new state dir");
    assert.equal(fs.statSync(fresh).mode & 0o777, 0o700);
    for (const f of snapFiles(A)) {
      const st = fs.statSync(path.join(snapDir(A), f));
      assert.equal(st.mode & 0o777, 0o600);
      assert.equal(st.uid, 0);
    }
    for (const [who, whose] of [
      [B, A],
      [A, B],
      [A, A],
    ] as const) {
      const r = L.asUser(env, who, ["cat", path.join(snapDir(whose), "last")], true);
      assert.notEqual(r.status, 0, `${who.name} could read ${whose.name}'s snapshot`);
      assert.match(r.stderr, /Permission denied/);
    }
  });

  test("keep-N pruning, identical saves dropped, the restored snapshot stays pinned", () => {
    const p = dir(A, "k");
    L.makeSession(env, A, "k0", [{ panes: [{ cwd: p }] }]);
    ok(tp("save", "--keep", "3"), "save");
    const first = fs.readlinkSync(path.join(snapDir(A), "last"));
    ok(tp("save", "--keep", "3"), "identical save");
    assert.deepEqual(snapFiles(A), [first], "identical save is dropped");
    L.killUser(env, A);
    ok(tp("restore"), "restore"); // pins `first` as boot
    assert.equal(fs.readlinkSync(path.join(snapDir(A), "boot")), first);
    for (let i = 1; i <= 5; i++) {
      L.makeSession(env, A, `k${i}`, [{ panes: [{ cwd: p }] }]);
      ok(tp("save", "--keep", "3"), `save ${i}`);
    }
    const files = snapFiles(A);
    const last = fs.readlinkSync(path.join(snapDir(A), "last"));
    assert.equal(files.length, 4, files.join(" ")); // 3 newest + the pinned boot snapshot
    assert.ok(files.includes(first));
    assert.equal(files[files.length - 1], last);
    assert.equal(lastSnap(A).sessions.length, 6);
    assert.ok(!fs.readdirSync(snapDir(A)).some((f) => f.includes(".tmp-")), "no temp files left");
  });

  test("opted-out and suspended users are ignored by save and restore", () => {
    for (const u of [A, C, D]) L.makeSession(env, u, "mine", [{ panes: [{ cwd: dir(u, "m") }] }]);
    ok(tp("save"), "save");
    assert.ok(fs.existsSync(snapDir(A)));
    assert.ok(!fs.existsSync(snapDir(C)), "opted-out user saved");
    assert.ok(!fs.existsSync(snapDir(D)), "suspended user saved");
    // C had a snapshot from before opting out: restore must not touch C
    const optedIn = path.join(env.base, `users-optin-${n}.json`);
    L.writeUsersJson(optedIn, [{ u: A }, { u: B }, { u: C }, { u: D, state: "suspended" }]);
    ok(L.runTP("save", { usersFile: optedIn, stateDir, claudeBin: env.claudeBin }), "save while opted in");
    assert.ok(fs.existsSync(path.join(snapDir(C), "last")));
    for (const u of [A, C]) L.killUser(env, u);
    const r = tp("restore");
    ok(r, "restore");
    assert.deepEqual(L.sessionNames(env, A), ["mine"]);
    assert.deepEqual(L.sessionNames(env, C), [], "opted-out user restored");
    assert.match(r.stderr, new RegExp(`opted out .*user=${C.name}`));
    const st = tp("status");
    assert.ok(!st.stdout.includes(C.name) && !st.stdout.includes(D.name));
  });

  test("status is a dry run: last snapshot per user and the plan, nothing changed", () => {
    const p = dir(A, "s");
    L.makeSession(env, A, "dry", [{ panes: [{ cwd: p, cmd: ["claude"] }] }]);
    L.makeSession(env, A, "stays", [{ panes: [{ cwd: p }] }]);
    waitStarts(A, 1);
    ok(tp("save"), "save");
    const uuid = claudePanes(lastSnap(A))[0].uuid;
    const pid = L.fakeLog(A).find((e) => e.event === "start")!.pid;
    L.tmux(env, A, ["kill-session", "-t", "=dry"]);
    L.waitFor("claude of the killed session gone", () => !L.alive(pid));
    L.clearFakeLog(A);
    const st = tp("status");
    ok(st, "status");
    assert.match(st.stdout, new RegExp(`user ${A.name}: last snapshot snap-`));
    assert.match(st.stdout, /create session "dry"/);
    assert.ok(st.stdout.includes(`claude --resume ${uuid} in ${JSON.stringify(p)}`), st.stdout);
    assert.match(st.stdout, /skip {3}session "stays": session exists/);
    assert.match(st.stdout, new RegExp(`user ${B.name}: no snapshot`));
    const js = JSON.parse(tp("status", "--json").stdout);
    const ua = js.users.find((x: any) => x.user === A.name);
    assert.deepEqual(
      ua.sessions.map((s: any) => [s.name, s.action]),
      [
        ["dry", "create"],
        ["stays", "skip"],
      ],
    );
    const dry = tp("restore", "--dry-run");
    ok(dry, "restore --dry-run");
    L.sleep(300);
    assert.deepEqual(L.sessionNames(env, A), ["stays"], "status/dry-run created nothing");
    assert.equal(L.fakeLog(A).length, 0);
  });

  test("grouped sessions come back grouped, windows not duplicated", () => {
    const p = dir(A, "g");
    L.makeSession(env, A, "main", [{ panes: [{ cwd: p }] }, { panes: [{ cwd: p }] }]);
    L.tmux(env, A, ["new-session", "-d", "-s", "view", "-t", "=main"]);
    ok(tp("save"), "save");
    L.killUser(env, A);
    ok(tp("restore"), "restore");
    const panes = L.livePanes(env, A);
    assert.deepEqual([...new Set(panes.map((p) => p.paneId))].length, 2, "two windows, shared");
    const grouped = L.tmux(env, A, ["list-sessions", "-F", "#{session_name}:#{session_grouped}"]).stdout.trim().split("\n").sort();
    assert.deepEqual(grouped, ["main:1", "view:1"]);
    // only the member is lost: it rejoins the running session (found by id), which is untouched
    const mainPanes = L.livePanes(env, A)
      .filter((p) => p.session === "main")
      .map((p) => [p.paneId, p.panePid]);
    L.tmux(env, A, ["kill-session", "-t", "=view"]);
    const r = tp("restore");
    ok(r, "restore of the member");
    assert.match(r.stderr, /session restored \(grouped\) .*session=view .*group=main/);
    assert.match(r.stderr, /session skipped .*session=main .*session exists/);
    assert.deepEqual(
      L.livePanes(env, A)
        .filter((p) => p.session === "main")
        .map((p) => [p.paneId, p.panePid]),
      mainPanes,
    );
    assert.deepEqual(
      L.livePanes(env, A)
        .filter((p) => p.session === "view")
        .map((p) => p.paneId)
        .sort(),
      mainPanes.map((p) => p[0]).sort(),
    );
    assert.equal(tmuxCalls(r, A), 2, "list-sessions, then one call for the member");
  });

  test("batched restore: 3 windows x 3 panes in one tmux call, the same result as one call per pane", () => {
    const d = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => dir(A, `b${i}`));
    const stored = L.makeSession(env, A, "thr\tee; #{x}", [
      { name: "one", panes: [{ cwd: d[0], cmd: ["claude"] }, { cwd: d[1] }, { cwd: d[2], cmd: ["claude"] }] },
      { panes: [{ cwd: d[3] }, { cwd: d[4], cmd: ["claude"] }, { cwd: d[5] }] },
      { name: "thr#ee", panes: [{ cwd: d[6] }, { cwd: d[7] }, { cwd: d[8], cmd: ["claude"] }] },
    ]);
    L.makeSession(env, A, "plain", [{ panes: [{ cwd: d[0] }, { cwd: d[1] }] }]);
    // saved indexes 2, 5, 7 (not base-index 0), distinct layouts, focus on window 5, pane 2
    // (by id: the test's own targets must not depend on the name)
    const sid = L.tmux(env, A, ["list-sessions", "-F", "#{session_id}\u0002#{session_name}"])
      .stdout.split("\n")
      .find((l) => l.endsWith(`\u0002${stored}`))!
      .split("\u0002")[0];
    const t = (x: string) => `${sid}:${x}`;
    L.tmux(env, A, ["move-window", "-s", t("2"), "-t", t("7")]);
    L.tmux(env, A, ["move-window", "-s", t("1"), "-t", t("5")]);
    L.tmux(env, A, ["move-window", "-s", t("0"), "-t", t("2")]);
    L.tmux(env, A, ["select-layout", "-t", t("2"), "main-vertical"]);
    L.tmux(env, A, ["select-layout", "-t", t("5"), "even-horizontal"]);
    L.tmux(env, A, ["resize-pane", "-t", `${t("5")}.0`, "-x", "37"]);
    L.tmux(env, A, ["select-pane", "-t", `${t("5")}.2`]);
    L.tmux(env, A, ["select-window", "-t", t("5")]);
    waitStarts(A, 4);
    const before = model(A);
    const shapes = windowsShape(A);
    assert.deepEqual(
      shapes.filter((w) => w.session === stored).map((w) => [w.index, w.active, w.activePane]),
      [
        [2, false, "0"],
        [5, true, "2"],
        [7, false, "0"],
      ],
    );
    ok(tp("save"), "save");
    for (const mode of ["batched", "per-pane", "batched, server running", "batched, after a reboot"]) {
      if (mode.includes("reboot")) L.rebootUser(env, A);
      else L.killUser(env, A);
      L.clearFakeLog(A);
      // a live session the restore must not touch, its focus on a middle pane
      let bystander: [string, number, string][] = [];
      let bystanderShape: ReturnType<typeof windowsShape> = [];
      if (mode.includes("running")) {
        L.makeSession(env, A, "bystander", [{ panes: [{ cwd: d[0] }, { cwd: d[1] }, { cwd: d[2] }] }]);
        L.tmux(env, A, ["select-pane", "-t", "=bystander:0.1"]);
        bystander = L.livePanes(env, A).map((p) => [p.paneId, p.panePid, p.cwd]);
        bystanderShape = windowsShape(A);
      }
      const r = tp("restore", ...(mode === "per-pane" ? ["--per-pane"] : []));
      ok(r, `restore ${mode}`);
      waitStarts(A, 4);
      assert.deepEqual(
        model(A).filter((p) => p.session !== "bystander"),
        before,
        mode,
      );
      assert.deepEqual(
        windowsShape(A).filter((w) => w.session !== "bystander"),
        shapes,
        mode,
      );
      L.sleep(300);
      assert.equal(L.fakeLog(A).filter((e) => e.event === "start").length, 4, "each conversation started once");
      if (mode === "batched") {
        // list-sessions (the stale socket of the killed server), then everything in one list
        assert.equal(tmuxCalls(r, A), 2, r.stderr);
        assert.match(r.stderr, /session restored .*windows=3 panes=9 claude=4 batched=true/);
      } else if (mode === "per-pane") {
        assert.ok(tmuxCalls(r, A) >= 14, `--per-pane made ${tmuxCalls(r, A)} calls`);
        assert.match(r.stderr, /session restored .*windows=3 panes=9 claude=4 batched=false/);
      } else if (mode.includes("reboot")) {
        // no socket: not even list-sessions; one client, which also starts the server
        assert.equal(tmuxCalls(r, A), 1, r.stderr);
      } else {
        assert.equal(tmuxCalls(r, A), 2, r.stderr);
        const live = L.livePanes(env, A);
        assert.deepEqual(
          live.filter((p) => p.session === "bystander").map((p) => [p.paneId, p.panePid, p.cwd]),
          bystander,
        );
        assert.deepEqual(
          windowsShape(A).filter((w) => w.session === "bystander"),
          bystanderShape,
        );
      }
    }
  });

  test("a user's ~/.tmux.conf with base-index 1, pane-base-index 1 and a chatty hook: indexes, focus and layouts come back", () => {
    const conf = path.join(A.home, ".tmux.conf");
    fs.writeFileSync(conf, "set -g base-index 1\nset -g pane-base-index 1\n");
    try {
      const d = [0, 1, 2, 3].map((i) => dir(A, `c${i}`));
      L.makeSession(env, A, "one", [
        { name: "a", panes: [{ cwd: d[0] }, { cwd: d[1], cmd: ["claude"] }, { cwd: d[2] }] },
        { name: "b", panes: [{ cwd: d[3] }, { cwd: d[0] }] },
      ]);
      L.makeSession(env, A, "two", [{ panes: [{ cwd: d[2], cmd: ["claude"] }] }]);
      L.tmux(env, A, ["select-layout", "-t", "=one:1", "even-vertical"]);
      L.tmux(env, A, ["select-pane", "-t", "=one:1.3"]);
      L.tmux(env, A, ["select-window", "-t", "=one:2"]);
      waitStarts(A, 2);
      const before = model(A);
      const shapes = windowsShape(A);
      assert.deepEqual(
        shapes.map((w) => [w.session, w.index, w.active, w.activePane]),
        [
          ["one", 1, false, "3"],
          ["one", 2, true, "1"],
          ["two", 1, true, "1"],
        ],
      );
      ok(tp("save"), "save");
      // and a hook that prints into the restore's tmux client (its lines are not records)
      fs.appendFileSync(conf, "set-hook -g after-split-window 'display-message -p \"tpstep0 from a hook\"'\n");
      L.killUser(env, A);
      L.clearFakeLog(A);
      const r = tp("restore");
      ok(r, "restore");
      waitStarts(A, 2);
      assert.deepEqual(model(A), before);
      assert.deepEqual(windowsShape(A), shapes);
      assert.equal(tmuxCalls(r, A), 2, r.stderr);
      assert.doesNotMatch(r.stderr, /batched tmux call failed/);
      // the snapshot's base-index was wrong (config changed since the save): still right, in more calls
      const file = path.join(snapDir(A), fs.readlinkSync(path.join(snapDir(A), "last")));
      const snap = JSON.parse(fs.readFileSync(file, "utf8"));
      assert.deepEqual(
        snap.sessions.map((x: any) => x.baseIndex),
        [1, 1],
      );
      for (const x of snap.sessions) x.baseIndex = 0;
      fs.writeFileSync(file, JSON.stringify(snap));
      L.rebootUser(env, A);
      L.clearFakeLog(A);
      const r2 = tp("restore");
      ok(r2, "restore with a stale base-index");
      waitStarts(A, 2);
      assert.deepEqual(model(A), before);
      assert.deepEqual(windowsShape(A), shapes);
    } finally {
      fs.rmSync(conf, { force: true });
    }
  });

  test("a session name starting with '$' (tmux reads `=$…` as an id): one more call, the same result", () => {
    const d = [0, 1].map((i) => dir(A, `d${i}`));
    L.makeSession(env, A, "$1 `id` ;&|", [{ panes: [{ cwd: d[0], cmd: ["claude"] }, { cwd: d[1] }] }, { name: "$2", panes: [{ cwd: d[1] }] }]);
    L.makeSession(env, A, "plain", [{ panes: [{ cwd: d[1] }] }]);
    // a member of the '$' session's group (the join must wait for that session's id too)
    const sid = L.tmux(env, A, ["list-sessions", "-F", "#{session_id}\u0002#{session_name}"])
      .stdout.split("\n")
      .find((l) => l.endsWith("\u0002$1 `id` ;&|"))!
      .split("\u0002")[0];
    L.tmux(env, A, ["new-session", "-d", "-s", "$9 v", "-t", sid]);
    waitStarts(A, 1);
    const before = model(A);
    ok(tp("save"), "save");
    L.rebootUser(env, A);
    L.clearFakeLog(A);
    const r = tp("restore");
    ok(r, "restore");
    waitStarts(A, 1);
    assert.deepEqual(model(A), before);
    assert.equal(tmuxCalls(r, A), 2, r.stderr);
    assert.doesNotMatch(r.stderr, /batched tmux call failed/);
    const grouped = L.tmux(env, A, ["list-sessions", "-F", "#{session_name}:#{session_grouped}"]).stdout.trim().split("\n").sort();
    assert.deepEqual(grouped, ["$1 `id` ;&|:1", "$9 v:1", "plain:0"]);
  });

  test("batched restore: lists over 16 KB are cut at step boundaries; long hostile paths round-trip", () => {
    // 16 panes in one window, 13 of them with a cwd of ~1.2 KB of unicode, quotes, tabs, '#',
    // ';' (shells: the fake claude cannot shorten a long slug), 3 claude panes
    const seg = (i: number) => `${"ü✓".repeat(20)} #{x} 'q' "dq"\t;${String(i).padStart(3, "0")}${"x".repeat(125)}`;
    const cwds = Array.from({ length: 13 }, (_, i) => dir(A, [seg(i), seg(i + 100), seg(i + 200), seg(i + 300), seg(i + 400)].join("/") + ";"));
    assert.ok(cwds.every((c) => Buffer.byteLength(c) > 1000));
    const short = [dir(A, "c1;"), dir(A, "c2 #{d}"), dir(A, "c3\\")];
    const panes: L.PaneSpec[] = cwds.map((cwd) => ({ cwd }));
    short.forEach((cwd, i) => panes.splice(i * 5, 0, { cwd, cmd: ["claude"] }));
    L.makeSession(env, A, "long", [{ panes }]);
    waitStarts(A, 3);
    const before = model(A);
    ok(tp("save"), "save");
    L.killUser(env, A);
    L.clearFakeLog(A);
    const r = tp("restore");
    ok(r, "restore");
    waitStarts(A, 3);
    assert.deepEqual(model(A), before);
    assert.doesNotMatch(r.stderr, /batched tmux call failed/);
    const calls = tmuxCalls(r, A);
    // list-sessions (the killed server's socket), then the one list cut in 2-3 parts
    assert.ok(calls >= 3 && calls <= 4, `${calls} tmux calls: expected the list cut in 2-3 parts`);
  });

  test("a failure in a batched list degrades to one call per step for that session only, nothing lost or started twice", () => {
    const p = (x: string) => dir(A, x);
    L.makeSession(env, A, "first", [{ panes: [{ cwd: p("f0"), cmd: ["claude"] }, { cwd: p("f1") }] }]);
    L.makeSession(env, A, "broken", [
      { name: "w0", panes: [{ cwd: p("b0") }, { cwd: p("b1"), cmd: ["claude"] }] },
      { name: "w1", panes: [{ cwd: p("b2") }, { cwd: p("b3") }] },
      { name: "w2", panes: [{ cwd: p("b4"), cmd: ["claude"] }] },
    ]);
    L.makeSession(env, A, "last", [{ panes: [{ cwd: p("l0"), cmd: ["claude"] }, { cwd: p("l1") }] }]);
    waitStarts(A, 4);
    ok(tp("save"), "save");
    // make the snapshot fail twice inside tmux: an unusable layout, and two windows on one index
    const file = path.join(snapDir(A), fs.readlinkSync(path.join(snapDir(A), "last")));
    const snap = JSON.parse(fs.readFileSync(file, "utf8"));
    const broken = snap.sessions.find((s: any) => s.name === "broken");
    broken.windows[0].layout = "ffff,nonsense";
    broken.windows[2].index = broken.windows[1].index;
    fs.writeFileSync(file, JSON.stringify(snap));
    L.killUser(env, A);
    L.clearFakeLog(A);
    const r = tp("restore");
    ok(r, "restore");
    waitStarts(A, 4);
    L.sleep(300);
    assert.match(r.stderr, /batched tmux call failed; .*session=broken .*step=select-layout/);
    assert.match(r.stderr, /session restored user=\S+ session=broken windows=3 panes=5 claude=2 batched=false/);
    assert.match(r.stderr, /session restored user=\S+ session=first .*batched=true/);
    assert.match(r.stderr, /session restored user=\S+ session=last .*batched=true/);
    assert.deepEqual(L.sessionNames(env, A), ["broken", "first", "last"]);
    const names = L.livePanes(env, A)
      .filter((x) => x.session === "broken")
      .map((x) => x.windowName);
    assert.deepEqual([...new Set(names)].sort(), ["w0", "w1", "w2"], "the window whose index was taken came back at a free index");
    assert.equal(L.livePanes(env, A).length, 9);
    assert.equal(L.fakeLog(A).filter((e) => e.event === "start").length, 4, "every conversation started exactly once");
    assert.ok(tmuxCalls(r, A) < 16, `${tmuxCalls(r, A)} calls`);
  });

  test("CLAUDE_CONFIG_DIR of the claude process is honoured on save and on restore", () => {
    const alt = dir(A, "alt-config");
    const p = dir(A, "proj");
    L.makeSession(env, A, "alt", [{ panes: [{ cwd: p, cmd: ["env", `CLAUDE_CONFIG_DIR=${alt}`, "claude"] }] }]);
    waitStarts(A, 1);
    const uuid = L.fakeLog(A)[0].uuid;
    assert.ok(fs.existsSync(path.join(alt, "projects", p.replace(/[^A-Za-z0-9]/g, "-"), `${uuid}.jsonl`)));
    ok(tp("save"), "save");
    const c = claudePanes(lastSnap(A))[0];
    assert.equal(c.uuid, uuid);
    assert.equal(c.configDir, alt);
    L.killUser(env, A);
    L.clearFakeLog(A);
    ok(tp("restore"), "restore");
    const e = waitStarts(A, 1) && L.fakeLog(A).find((x) => x.event === "start" || x.event === "error")!;
    assert.equal(e.event, "start", "the fake found the transcript under CLAUDE_CONFIG_DIR");
    assert.deepEqual(e.argv, ["--resume", uuid]);
  });

  test("root never reads another user's Claude tree: CLAUDE_CONFIG_DIR outside the home, or ~/.claude a symlink", () => {
    // B's conversation, created after A's claude started, in the project dir A's cwd maps to.
    const p = dir(A, "snoop");
    const slug = p.replace(/[^A-Za-z0-9]/g, "-");
    const plantB = () => {
      const bdir = path.join(B.home, ".claude", "projects", slug);
      fs.mkdirSync(bdir, { recursive: true });
      for (let d = bdir; d !== B.home; d = path.dirname(d)) fs.chownSync(d, B.uid, B.gid);
      const uuid = crypto.randomUUID();
      const f = path.join(bdir, `${uuid}.jsonl`);
      fs.writeFileSync(f, "{}\n", { mode: 0o600 });
      fs.chownSync(f, B.uid, B.gid);
      return uuid;
    };
    // 1. CLAUDE_CONFIG_DIR pointing into B's 0700 home
    L.makeSession(env, A, "snoop", [{ panes: [{ cwd: p, cmd: ["env", `CLAUDE_CONFIG_DIR=${B.home}/.claude`, "FAKE_CLAUDE_SILENT=1", "claude"] }] }]);
    waitStarts(A, 1);
    L.sleep(600); // past START_SLACK_MS
    const b1 = plantB();
    const r1 = tp("save");
    ok(r1, "save");
    const c1 = claudePanes(lastSnap(A))[0];
    assert.notEqual(c1.uuid, b1, "A's snapshot must not learn B's conversation id");
    assert.equal(c1.configDir, path.join(A.home, ".claude"));
    assert.ok(!JSON.stringify(lastSnap(A)).includes(B.home), "no path of B's tree in A's snapshot");
    assert.match(r1.stderr, /CLAUDE_CONFIG_DIR outside the home ignored/);
    // 2. ~/.claude itself a symlink to B's tree
    L.killUser(env, A);
    L.clearFakeLog(A);
    fs.rmSync(path.join(A.home, ".claude"), { recursive: true, force: true });
    fs.symlinkSync(path.join(B.home, ".claude"), path.join(A.home, ".claude"));
    try {
      L.makeSession(env, A, "snoop2", [{ panes: [{ cwd: p, cmd: ["env", "FAKE_CLAUDE_SILENT=1", "claude"] }] }]);
      waitStarts(A, 1);
      L.sleep(600);
      const b2 = plantB();
      const r2 = tp("save");
      ok(r2, "save");
      const c2 = claudePanes(lastSnap(A)).find((c: any) => c.session === "snoop2");
      assert.ok(c2, "the claude pane is recorded");
      assert.notEqual(c2.uuid, b2, "A's snapshot must not learn B's conversation id through a symlink");
      assert.ok(!JSON.stringify(lastSnap(A)).includes(b2));
      assert.match(r2.stderr, /not owned by the user/);
    } finally {
      fs.rmSync(path.join(A.home, ".claude"), { force: true });
      fs.rmSync(path.join(B.home, ".claude"), { recursive: true, force: true });
    }
  });

  test("a pane pid the user's server reports for another user's or root's process: that cwd never enters the snapshot", (t) => {
    const why = L.userNamespaces(env, A);
    if (why) {
      if (process.env.CI === "true") assert.fail(why);
      t.skip(`SKIPPED (not under CI): ${why}`);
      return;
    }
    const mine = dir(A, "mine");
    const bSecret = L.userDir(B, `secret-${env.tag}-${n}`); // in B's 0700 home: A cannot enter it
    const rootOnly = path.join(env.base, `root-only-${n}`);
    const rootSecret = path.join(rootOnly, "secret");
    fs.mkdirSync(rootSecret, { recursive: true, mode: 0o700 });
    const bProc = spawn("sleep", ["600"], { cwd: bSecret, uid: B.uid, gid: B.gid, stdio: "ignore" });
    const rootProc = spawn("sleep", ["600"], { cwd: rootSecret, stdio: "ignore" });
    try {
      // the real attack: A's own (stock) tmux server, in A's own user+pid namespace, gives its
      // panes the numbers of B's and root's processes (dev/tmux.ts foreignPaneServer)
      L.foreignPaneServer(env, A, "evil", mine, [bProc.pid!, rootProc.pid!]);
      const r = tp("save");
      ok(r, "save");
      const text = fs.readFileSync(path.join(snapDir(A), "last"), "utf8");
      assert.ok(!text.includes(bSecret), `B's cwd in A's snapshot:\n${text}`);
      assert.ok(!text.includes(rootSecret), `root's cwd in A's snapshot:\n${text}`);
      const panes = lastSnap(A).sessions.flatMap((s: any) => s.windows.flatMap((w: any) => w.panes));
      for (const pid of [bProc.pid, rootProc.pid]) {
        const p = panes.find((x: any) => x.pid === pid);
        assert.ok(p, `the pane reported with pid ${pid} is saved`);
        assert.equal(p.cwd, mine, "tmux's own path of the pane, checked as A");
      }
      assert.match(r.stderr, new RegExp(`pane pid not the user's own process; its cwd not read user=${A.name} panes=`));
    } finally {
      bProc.kill("SIGKILL");
      rootProc.kill("SIGKILL");
    }
  });

  test("a cwd the user cannot enter is neither saved nor restored; root never checks a path for the user", () => {
    // 1. save: A's shell sits in a directory A can no longer enter
    const locked = path.join(env.base, `locked-${n}`);
    fs.mkdirSync(locked, { mode: 0o755 });
    L.makeSession(env, A, "fine", [{ panes: [{ cwd: dir(A, "fine") }] }]);
    L.makeSession(env, A, "locked", [{ panes: [{ cwd: locked }] }]);
    fs.chmodSync(locked, 0o700);
    const r = tp("save");
    ok(r, "save");
    const snap = lastSnap(A);
    assert.ok(!JSON.stringify(snap).includes(locked), "a cwd A cannot enter is saved");
    assert.equal(snap.sessions.find((s: any) => s.name === "locked").windows[0].panes[0].cwd, A.home);
    assert.match(r.stderr, new RegExp(`cwd not enterable by the user; home saved instead user=${A.name} panes=1`));
    // 2. restore of a snapshot written before that check: a root-only directory that exists
    // and one that does not are the same to A (missing), so restore is no existence oracle
    const rootOnly = path.join(env.base, `root-only-${n}`);
    fs.mkdirSync(path.join(rootOnly, "exists"), { recursive: true, mode: 0o700 });
    const fine = snap.sessions.find((s: any) => s.name === "fine");
    const planted = (name: string, cwd: string) => ({ ...fine, name, windows: [{ ...fine.windows[0], panes: [{ ...fine.windows[0].panes[0], cwd }] }] });
    snap.sessions = [fine, planted("exists", path.join(rootOnly, "exists")), planted("absent", path.join(rootOnly, "absent")), planted("locked", locked)];
    fs.writeFileSync(path.join(snapDir(A), fs.readlinkSync(path.join(snapDir(A), "last"))), JSON.stringify(snap));
    L.killUser(env, A);
    const st = tp("status", "--json");
    ok(st, "status");
    const reasons = JSON.parse(st.stdout)
      .users.find((x: any) => x.user === A.name)
      .sessions.map((x: any) => [x.name, x.windows.flatMap((w: any) => w.panes.map((p: any) => p.reason ?? null))]);
    assert.deepEqual(reasons, [
      ["fine", [null]],
      ["exists", ["cwd missing"]],
      ["absent", ["cwd missing"]],
      ["locked", ["cwd not enterable by the user"]],
    ]);
    const rr = tp("restore");
    ok(rr, "restore");
    assert.deepEqual(L.sessionNames(env, A), ["fine"]);
    for (const s of ["exists", "absent"]) assert.match(rr.stderr, new RegExp(`pane skipped .*session=${s} .*reason="cwd missing"`));
    assert.match(rr.stderr, /pane skipped .*session=locked .*reason="cwd not enterable by the user"/);
  });

  test("names over the cap are left out; a flood of sessions or an oversized snapshot is refused, the last good one kept", () => {
    const p = dir(A, "p");
    L.makeSession(env, A, "good", [{ name: "W".repeat(300), panes: [{ cwd: p }] }]);
    L.makeSession(env, A, "L".repeat(300), [{ panes: [{ cwd: p }] }]);
    const r1 = tp("save");
    ok(r1, "save");
    const snap = lastSnap(A);
    assert.deepEqual(
      snap.sessions.map((s: any) => s.name),
      ["good"],
    );
    assert.equal(snap.sessions[0].windows[0].autoName, true, "a window name over the cap is not kept");
    assert.ok(!/LLLL|WWWW/.test(JSON.stringify(snap)));
    assert.match(r1.stderr, new RegExp(`names over the cap not saved user=${A.name} sessions=1 windowNames=1`));
    const good = fs.readlinkSync(path.join(snapDir(A), "last"));
    const goodText = fs.readFileSync(path.join(snapDir(A), good), "utf8");
    const refusedOnce = (r: L.TPResult) => {
      assert.equal(r.status, 1, r.stderr);
      const lines = r.stderr.split("\n").filter((l) => l.includes("snapshot over the cap refused; previous snapshot kept"));
      assert.equal(lines.length, 1, r.stderr);
      assert.ok(lines[0].includes(`user=${A.name} `), lines[0]);
      assert.equal(fs.readlinkSync(path.join(snapDir(A), "last")), good);
      assert.deepEqual(snapFiles(A), [good]);
      assert.equal(fs.readFileSync(path.join(snapDir(A), good), "utf8"), goodText);
      assert.ok(!fs.readdirSync(snapDir(A)).some((f) => f.includes(".tmp-")), "no temp file left");
    };
    // a flood: 129 more sessions (over the 128 cap), made by one tmux client
    L.tmux(
      env,
      A,
      Array.from({ length: 129 }, (_, i) => [";", "new-session", "-d", "-s", `f${i}`, "cat"])
        .flat()
        .slice(1),
    );
    refusedOnce(tp("save"));
    // within every count, but 300 panes in a ~3.8 KB path: over the 1 MiB snapshot cap
    L.killUser(env, A);
    const deep = dir(A, Array.from({ length: 15 }, (_, i) => String(i).padEnd(250, "d")).join("/"));
    const windows = Array.from({ length: 299 }, () => [";", "new-window", "-d", "cat"]).flat();
    const made = spawnSync("/usr/sbin/runuser", ["-u", A.name, "--", "tmux", "new-session", "-d", "-s", "deep", "cat", ...windows], {
      cwd: deep, // tmux starts panes of a detached client in the client's cwd
      env: L.userEnv(env, A),
      encoding: "utf8",
    });
    assert.equal(made.status, 0, made.stderr);
    assert.equal(L.livePanes(env, A).filter((x) => x.cwd === deep).length, 300);
    refusedOnce(tp("save"));
  });

  test("exit codes: usage 2, bad users file 3", () => {
    assert.equal(spawnSync(process.execPath, [L.SCRIPT], { encoding: "utf8" }).status, 2);
    assert.equal(tp("save", "--keep", "0").status, 2);
    assert.equal(tp("frobnicate").status, 2);
    const r = L.runTP("save", { usersFile: path.join(env.base, "missing.json"), stateDir, claudeBin: env.claudeBin });
    assert.equal(r.status, 3);
    assert.match(r.stderr, /cannot read users file/);
    const badJson = path.join(env.base, "bad.json");
    fs.writeFileSync(badJson, '{"version": 2, "users": []}');
    assert.equal(L.runTP("restore", { usersFile: badJson, stateDir, claudeBin: env.claudeBin }).status, 3);
  });
});

// The rules themselves, without tmux (no root needed).
describe("tmux-persist rules (pure functions)", () => {
  // a real dynamic import (ts-node would turn `import()` into require() of an ES module)
  const load = new Function("p", "return import(p)") as (p: string) => Promise<any>;
  let m: any;
  before(async () => {
    m = await load(L.SCRIPT);
  });
  const U = ["11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", "33333333-3333-4333-8333-333333333333"];
  const t = (uuid: string, birthMs: number, mtimeMs: number) => ({ uuid, path: `/x/${uuid}.jsonl`, birthMs, mtimeMs });
  const base = { startMs: 10_000, argvUuid: null, argvSource: null, shared: false, transcripts: [], argvTranscript: null };

  test("argv uuid forms", () => {
    assert.equal(m.argvUuid(["claude", "--resume", U[0]]), U[0]);
    assert.equal(m.argvUuid(["node", "/usr/bin/claude", `--resume=${U[1]}`]), U[1]);
    assert.equal(m.argvUuid(["claude", "-r", U[2].toUpperCase()]), U[2]);
    assert.equal(m.argvUuid(["claude", "--session-id", U[0]]), U[0]);
    assert.equal(m.argvUuid(["claude", "--resume", "search words"]), null);
    assert.equal(m.argvUuid(["claude", "--", "--resume", U[0]]), null);
    assert.equal(m.argvUuid(["claude"]), null);
  });

  test("claude is recognised by executable/argv, not by title", () => {
    assert.ok(m.isClaudeProcess(["claude", "--resume", U[0]], "/home/u/.local/share/claude/versions/2.0.14"));
    assert.ok(m.isClaudeProcess(["2.0.14"], "/home/u/.local/share/claude/versions/2.0.14"));
    assert.ok(m.isClaudeProcess(["node", "/usr/bin/claude"], "/usr/bin/node"));
    assert.ok(m.isClaudeProcess(["node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"], "/usr/bin/node"));
    assert.ok(!m.isClaudeProcess(["node", "/srv/app.js"], "/usr/bin/node"));
    assert.ok(!m.isClaudeProcess(["vim", "claude.md"], "/usr/bin/vim.basic"));
    assert.ok(!m.isClaudeProcess(["/bin/sh", "-c", "x", "tmux-persist-resume", "claude", U[0]], "/usr/bin/dash"));
  });

  test("every child root starts (spawn and spawnSync) is a program from trustedBin", () => {
    // tests/unit/hardening.test.ts checks the spawnSync calls; the batched paths also spawn()
    const src = L.scriptSource(); // the entry point and every module it imports
    const calls = [...src.matchAll(/\b(spawn|spawnSync)\(([^,]+),/g)].map((x) => [x[1], x[2].trim()]);
    assert.ok(calls.filter(([f]) => f === "spawn").length >= 2, JSON.stringify(calls));
    for (const [f, first] of calls) assert.ok(/^trustedBin\(/.test(first) || first === "cmd[0]", `${f}(${first}, ...) does not use trustedBin`);
    // cmd[0] is always the first element of serverStartCommand's result, built from trustedBin
    assert.match(src, /const cmd = serverStartCommand\(o, u, args\);\n[^]*?spawn\(cmd\[0\]/);
    // and no other way to start a child: child_process gives the script spawn and spawnSync only
    // (JSDoc type references `import('node:child_process').T` aside)
    assert.deepEqual(src.match(/from ['"](node:)?child_process['"]/g), ["from 'node:child_process'"]);
    assert.match(src, /^import \{ spawn, spawnSync \} from 'node:child_process';$/m);
    assert.ok(!/require\(|import\(['"](node:)?child_process['"]\)(?!\.)/.test(src));
  });

  test("what a user's server may put into a snapshot: names and paths within their caps", () => {
    assert.ok(m.usablePath("/home/u/tab\there\nnl ✓"));
    assert.ok(m.usablePath("/" + "x".repeat(4094)));
    assert.ok(!m.usablePath("/" + "x".repeat(4095)), "4096 bytes: longer than any cwd");
    assert.ok(!m.usablePath("/" + "ü".repeat(2048)), "the cap is in bytes");
    assert.ok(!m.usablePath("relative/x"));
    assert.ok(!m.usablePath("/a\0b"));
    assert.ok(m.usableName("tab\tname ✓") && m.usableName("x".repeat(256)));
    assert.ok(!m.usableName("x".repeat(257)) && !m.usableName("a\0b"));
    // a forged list (tmux itself never sends these): left out or reduced, counted
    const row = { sessionId: "$1", session: "s", group: null, windowId: "@1", windowIndex: 0, windowName: "w", autoName: false, layout: "abcd,80x24,0,0,0" };
    const pane = (k: number) => ({
      paneId: `%${k}`,
      paneIndex: k,
      paneActive: k === 0,
      panePid: 100 + k,
      paneDead: false,
      tmuxPath: "/",
      baseIndex: 0,
      windowActive: true,
    });
    const out = m.screenRows([
      { ...row, ...pane(0) },
      { ...row, ...pane(1), sessionId: "$2", session: "nul\0name" },
      { ...row, ...pane(2), windowId: "@2", windowIndex: 1, windowName: "n".repeat(300), layout: "x".repeat(20000), group: "g\0" },
    ]);
    assert.deepEqual(
      out.rows.map((r: any) => [r.session, r.windowName, r.autoName, r.layout.length, r.group]),
      [
        ["s", "w", false, 16, null],
        ["s", "", true, 0, null],
      ],
    );
    assert.deepEqual(out.left, { sessions: 1, windowNames: 1, groups: 1, layouts: 1 });
    assert.equal(out.over, null);
    const many = Array.from({ length: 1025 }, (_, k) => ({ ...row, ...pane(k), sessionId: `$${k % 100}` }));
    assert.match(m.screenRows(many).over, /1025 panes/);
  });

  test("slug and tmux name escapes", () => {
    assert.equal(m.slugify("/home/a b/ü.x\n😀"), "-home-a-b---x---");
    assert.equal(m.unvis("tab\\there\\nnl\\\\bs\\303\\274"), "tab\there\nnl\\bsü");
    // tmux 3.3a writes "$v" as "\$v"; a literal "\$v" is stored "\\\$v"
    assert.equal(m.unvis("\\$view a\\${x} $1"), "$view a${x} $1");
    assert.equal(m.unvis("\\\\\\$v"), "\\$v");
    assert.equal(m.tmuxLiteral("#{x};"), "##{x}\\;");
  });

  test("no argv: newest (last written) transcript created after start; none: no-transcript", () => {
    const old = t(U[0], 5_000, 20_000); // created before start, written since: not ours by the rule
    assert.deepEqual(m.decideUuid({ ...base, transcripts: [old] }).status, "no-transcript");
    const a = t(U[1], 11_000, 12_000);
    const b = t(U[2], 13_000, 14_000);
    assert.equal(m.decideUuid({ ...base, transcripts: [old, a, b] }).uuid, U[2]);
    // /clear then /resume back to the first conversation: the one written last wins
    assert.equal(m.decideUuid({ ...base, transcripts: [old, { ...a, mtimeMs: 15_000 }, b] }).uuid, U[1]);
  });

  test("argv: kept while current, replaced when stale, kept (inference off) in a shared dir", () => {
    const argvT = t(U[0], 1_000, 12_000);
    const cur = m.decideUuid({ ...base, argvUuid: U[0], argvSource: "argv", transcripts: [argvT], argvTranscript: argvT });
    assert.deepEqual([cur.uuid, cur.source], [U[0], "argv"]);
    const after = t(U[1], 13_000, 14_000);
    const stale = m.decideUuid({ ...base, argvUuid: U[0], argvSource: "argv", transcripts: [argvT, after], argvTranscript: argvT });
    assert.deepEqual([stale.uuid, stale.source], [U[1], "transcript"]);
    assert.match(stale.note, /stale/);
    // the argv conversation was written again after the new one: back to argv
    const back = m.decideUuid({
      ...base,
      argvUuid: U[0],
      argvSource: "argv",
      transcripts: [{ ...argvT, mtimeMs: 15_000 }, after],
      argvTranscript: { ...argvT, mtimeMs: 15_000 },
    });
    assert.equal(back.uuid, U[0]);
    const shared = m.decideUuid({ ...base, shared: true, argvUuid: U[0], argvSource: "argv", transcripts: [argvT, after], argvTranscript: argvT });
    assert.deepEqual([shared.uuid, shared.status], [U[0], "ok"]);
    const amb = m.decideUuid({ ...base, shared: true, transcripts: [argvT, after] });
    assert.deepEqual([amb.uuid, amb.status, amb.candidates], [null, "ambiguous", [U[1]]]);
  });
});
