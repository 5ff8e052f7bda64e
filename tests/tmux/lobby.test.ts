/**
 * The web lobby's tmux-persist verbs (scripts/agents/tmux/lobby.mjs) against real tmux servers
 * of real (throwaway) local users, with the fake claude (tests/tmux/fake-claude): the output
 * formats of the legacy tool field by field (../shared/notes/team-devvm.md), what `snapshot`
 * decides for each kind of live session, `restore-selection` restoring exactly the named
 * sessions, `restore-one`, `forget` keeping a session from ever coming back, `history`, the
 * lobby's name rule and a configured resume command line. Needs root, like tests/tmux.
 *
 *   node --require ts-node/register/transpile-only --test tests/tmux/lobby.test.ts
 */
import { after, before, beforeEach, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as L from "../../dev/tmux";

const skip = L.cannotRun();
const TS = /^[0-9]{8}T[0-9]{6}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("tmux-persist: the lobby's verbs (real tmux, local users)", { skip: skip ?? false }, () => {
  let env: L.Env;
  let A: L.TUser;
  let B: L.TUser;
  let usersFile: string;
  let stateDir: string;
  let n = 0;
  const tp = (cmd: string, ...args: string[]) => L.runTP(cmd, { usersFile, stateDir, claudeBin: env.claudeBin, args });
  const ok = (r: L.TPResult, what: string) => {
    assert.equal(r.status, 0, `${what} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  const rows = (out: string) =>
    out
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split("\t"));
  const dir = (u: L.TUser, rel: string) => L.userDir(u, path.join(`l${n}`, rel));
  const starts = (u: L.TUser) => L.fakeLog(u).filter((e) => e.event === "start");
  const waitStarts = (u: L.TUser, count: number) => L.waitFor(`${count} claude starts of ${u.name}`, () => starts(u).length >= count, 15000);
  /** The conversation each live session's claude runs (from the fake's log, by pane pid). */
  const liveUuids = (u: L.TUser) => {
    const panes = L.livePanes(env, u);
    const byPid = L.claudeByPanePid(u, panes);
    const out: Record<string, string[]> = {};
    for (const p of panes) {
      const c = byPid.get(p.panePid);
      if (c) (out[p.session] ??= []).push(c.uuid);
    }
    return out;
  };

  before(() => {
    env = L.setupEnv(2);
    [A, B] = env.users;
    usersFile = path.join(env.base, "users.json");
    L.writeUsersJson(usersFile, [{ u: A }, { u: B }]);
  });
  after(() => {
    if (env) L.teardownEnv(env);
  });
  beforeEach(() => {
    n++;
    L.resetUsers(env);
    stateDir = path.join(env.base, `lobby-state-${n}`);
  });

  test("the lobby's names only: a pool slot or any other name is neither saved nor restored (--names all keeps them)", () => {
    L.makeSession(env, A, "work_1", [{ panes: [{ cwd: dir(A, "w") }] }]);
    L.makeSession(env, A, "pool slot", [{ panes: [{ cwd: dir(A, "p") }] }]);
    L.makeSession(env, A, "x".repeat(33), [{ panes: [{ cwd: dir(A, "x") }] }]);
    const r = tp("save");
    ok(r, "save");
    const last = JSON.parse(fs.readFileSync(path.join(stateDir, A.name, "last"), "utf8"));
    assert.deepEqual(
      last.sessions.map((s: { name: string }) => s.name),
      ["work_1"],
    );
    assert.match(r.stderr, /sessions outside the lobby's names not saved .*sessions=2/);
    // a snapshot saved with every name: the default restore still leaves the others out
    ok(tp("save", "--names", "all"), "save --names all");
    L.killUser(env, A);
    const back = tp("restore");
    ok(back, "restore");
    assert.deepEqual(L.sessionNames(env, A), ["work_1"]);
    assert.match(back.stderr, /session skipped .*reason="name outside the lobby's/);
  });

  test("snapshots, snapshot, restore-selection, restore-one, forget and history, field by field", () => {
    const c = (s: string) => dir(A, s);
    for (const s of ["gone", "same", "other", "bare", "dead"]) L.makeSession(env, A, s, [{ panes: [{ cwd: c(s), cmd: ["claude"] }, { cwd: c(s) }] }]);
    L.makeSession(env, A, "shell", [{ panes: [{ cwd: c("shell") }] }]);
    L.makeSession(env, B, "bwork", [{ panes: [{ cwd: dir(B, "b"), cmd: ["claude"] }] }]);
    waitStarts(A, 5);
    waitStarts(B, 1);
    const saved = liveUuids(A);
    ok(tp("save"), "save 1");
    // a second, different snapshot (one session more), a second later: the series has two
    L.sleep(1100);
    L.makeSession(env, A, "later", [{ panes: [{ cwd: c("later") }] }]);
    ok(tp("save"), "save 2");

    // snapshots: ts, count, newest|-, newest first
    const snaps = rows(ok(tp("snapshots", A.name), "snapshots"));
    assert.equal(snaps.length, 2, JSON.stringify(snaps));
    for (const s of snaps) {
      assert.equal(s.length, 3);
      assert.match(s[0], TS);
    }
    assert.ok(snaps[0][0] > snaps[1][0], "newest first");
    assert.deepEqual(
      snaps.map((s) => [s[1], s[2]]),
      [
        ["7", "newest"],
        ["6", "-"],
      ],
    );
    const ts = snaps[1][0];

    // the live sessions change: gone is lost, other and bare lose their conversation (other
    // runs another one now, bare a shell), dead is killed on purpose and forgotten
    for (const s of ["gone", "other", "bare", "dead"]) L.tmux(env, A, ["kill-session", "-t", `=${s}`]);
    L.makeSession(env, A, "other", [{ panes: [{ cwd: c("other"), cmd: ["claude"] }] }]);
    L.makeSession(env, A, "bare", [{ panes: [{ cwd: c("bare") }] }]);
    waitStarts(A, 6);
    ok(tp("forget", A.name, "dead"), "forget");
    const tomb = fs.readFileSync(path.join(stateDir, `${A.name}.forgotten.tsv`), "utf8");
    assert.match(tomb, /^dead\t[0-9]{10}\n$/, "the legacy store's tombstone format");

    const picker = rows(ok(tp("snapshot", A.name, ts), "snapshot"));
    for (const r of picker) assert.equal(r.length, 8, `8 fields: ${r.join("|")}`);
    const by = Object.fromEntries(picker.map((r) => [r[0], r]));
    assert.deepEqual(Object.keys(by).sort(), ["bare", "dead", "gone", "other", "same", "shell"]);
    for (const s of ["gone", "same", "other", "bare", "dead"]) {
      assert.equal(by[s][1], c(s), `${s}: cwd`);
      assert.equal(by[s][2], saved[s][0], `${s}: the saved conversation`);
      assert.match(by[s][2], UUID);
    }
    const hhmm = ts.slice(9, 13);
    assert.deepEqual(by.gone.slice(3, 7), ["missing", "new", "gone", "on"]);
    assert.deepEqual(by.same.slice(3, 7), ["live_same", "skip", "same", "off"]);
    assert.deepEqual(by.other.slice(3, 7), ["live_other_conv", "suffixed", `other-${hhmm}`, "on"]);
    assert.deepEqual(by.bare.slice(3, 7), ["live_no_claude", "in_place", "bare", "on"]);
    assert.deepEqual(by.dead.slice(3, 7), ["missing", "skip", "dead", "off"]);
    assert.equal(by.dead[7], "forgotten");
    assert.deepEqual(by.shell.slice(1, 7), [c("shell"), "-", "live_no_claude", "skip", "shell", "off"]);

    // restore-selection: exactly the named sessions, each as the picker said
    const startsBefore = starts(A).length;
    const livePanesBefore = L.livePanes(env, A).filter((p) => p.session === "same");
    const sel = rows(ok(tp("restore-selection", A.name, ts, "gone", "other", "bare", "dead"), "restore-selection"));
    const res = Object.fromEntries(sel.map((r) => [r[0], r]));
    assert.deepEqual(res.gone.slice(1, 4), ["new", "gone", "restored"]);
    assert.deepEqual(res.other.slice(1, 4), ["suffixed", `other-${hhmm}`, "restored"]);
    assert.deepEqual(res.bare.slice(1, 4), ["in_place", "bare", "restored"]);
    assert.deepEqual(res.dead.slice(1, 4), ["skip", "dead", "skipped"]);
    waitStarts(A, startsBefore + 3);
    L.sleep(500);
    assert.deepEqual(L.sessionNames(env, A), ["bare", "gone", "later", `other-${hhmm}`, "other", "same", "shell"].sort());
    const now = liveUuids(A);
    assert.deepEqual(now.gone, [saved.gone[0]], "gone resumed its conversation");
    assert.deepEqual(now[`other-${hhmm}`], [saved.other[0]], "other's saved conversation beside the new one");
    assert.deepEqual(now.bare, [saved.bare[0]], "bare got its conversation as a new window");
    assert.equal(Number(L.tmux(env, A, ["display-message", "-p", "-t", "=bare:", "#{session_windows}"]).stdout.trim()), 2);
    assert.deepEqual(
      L.livePanes(env, A).filter((p) => p.session === "same"),
      livePanesBefore,
      "a session not named is untouched",
    );
    const resumed = starts(A).slice(startsBefore);
    assert.ok(
      resumed.every((e) => e.resumed),
      "only resumes",
    );

    // forget keeps dead from coming back, by any verb
    L.killUser(env, A);
    const r1 = tp("restore", A.name);
    ok(r1, "restore USER");
    assert.ok(!L.sessionNames(env, A).includes("dead"), "restore: dead stays forgotten");
    assert.match(r1.stderr, /session skipped .*session=dead .*forgotten/);
    const one = tp("restore-one", A.name, saved.dead[0]);
    ok(one, "restore-one by uuid");
    assert.deepEqual(rows(one.stdout)[0].slice(0, 4), ["dead", "skip", "dead", "skipped"]);
    assert.ok(!L.sessionNames(env, A).includes("dead"));
    assert.deepEqual(L.sessionNames(env, B), ["bwork"], "B's server untouched by A's restores");

    // restore-one by name: the newest snapshot holding it
    L.tmux(env, A, ["kill-session", "-t", "=later"]);
    const byName = rows(ok(tp("restore-one", A.name, "later"), "restore-one by name"));
    assert.deepEqual(byName[0].slice(0, 4), ["later", "new", "later", "restored"]);
    assert.ok(L.sessionNames(env, A).includes("later"));

    // history: saved, forgot, restored; newest first
    const h = rows(ok(tp("history", A.name), "history"));
    for (const r of h) {
      assert.equal(r.length, 4);
      assert.match(r[0], TS);
      assert.equal(r[1], A.name);
    }
    const events = h.map((r) => r[2]);
    assert.equal(events.filter((e) => e === "saved").length, 2);
    assert.deepEqual(
      h.filter((r) => r[2] === "forgot").map((r) => r[3]),
      ["dead"],
    );
    assert.ok(events.filter((e) => e === "restored").length >= 3, JSON.stringify(h));
    assert.deepEqual(
      [...h.map((r) => r[0])].sort().reverse(),
      h.map((r) => r[0]),
      "newest first",
    );
    const all = rows(ok(tp("history"), "history (every user)"));
    assert.ok(all.some((r) => r[1] === B.name && r[2] === "saved"));
  });

  test("a configured resume command line (the team's flags and --name <session>); save still knows the conversation", () => {
    const cfg = path.join(env.base, `tp-${n}.json`);
    fs.writeFileSync(cfg, JSON.stringify({ resumeArgs: ["--dangerously-skip-permissions", "--resume", "{uuid}", "--name", "{session}"] }), { mode: 0o644 });
    L.makeSession(env, A, "team", [{ panes: [{ cwd: dir(A, "t"), cmd: ["claude"] }] }]);
    waitStarts(A, 1);
    const uuid = liveUuids(A).team[0];
    ok(tp("save", "--config", cfg), "save");
    L.killUser(env, A);
    L.clearFakeLog(A);
    ok(tp("restore", "--config", cfg), "restore");
    waitStarts(A, 1);
    assert.deepEqual(starts(A)[0].argv, ["--dangerously-skip-permissions", "--resume", uuid, "--name", "team"]);
    // the restored pane is recognised again (through the wrapper's argv): a second save keeps it
    L.sleep(300);
    ok(tp("save", "--config", cfg), "save again");
    const last = JSON.parse(fs.readFileSync(path.join(stateDir, A.name, "last"), "utf8"));
    assert.equal(last.sessions[0].windows[0].panes[0].claude.uuid, uuid);
    // refused: no {uuid}, {uuid} twice, a config file others may write
    for (const bad of ["--name {session}", "--resume {uuid} -r {uuid}", "{uuid} --resume"]) {
      const r = tp("status", "--resume-args", bad);
      assert.equal(r.status, 2, `${bad}: ${r.stderr}`);
      assert.match(r.stderr, /resume arguments must hold/);
    }
    fs.chmodSync(cfg, 0o666);
    const w = tp("status", "--config", cfg);
    assert.equal(w.status, 2);
    assert.match(w.stderr, /must be a regular file owned by root, not group\/world-writable/);
  });

  test("import-legacy: the legacy store's snapshots become ours; restore brings back its sessions and conversations, never a tombstoned one; twice changes nothing", () => {
    L.makeSession(env, A, "conv1", [{ panes: [{ cwd: dir(A, "c1"), cmd: ["claude"] }] }]);
    L.makeSession(env, A, "conv2", [{ panes: [{ cwd: dir(A, "c2"), cmd: ["claude"] }] }]);
    waitStarts(A, 2);
    const [u1, u2] = [liveUuids(A).conv1[0], liveUuids(A).conv2[0]];
    L.killUser(env, A);
    L.clearFakeLog(A);
    // the legacy store as the note describes it: a series, the newest linked, an older flat file, tombstones
    const legacy = path.join(stateDir, "snapshots", A.name);
    fs.mkdirSync(legacy, { recursive: true, mode: 0o700 });
    const files: Record<string, string> = {
      [path.join(legacy, "20261201T080000.tsv")]: `old\t${dir(A, "c1")}\t-\n`,
      [path.join(legacy, "20261202T090000.tsv")]: [
        `main\t${dir(A, "c1")}\t${u1}`,
        `side\t${dir(A, "c2")}\t${u2}`,
        `shell\t${dir(A, "sh")}\t-`,
        `gone\t${dir(A, "c1")}\t-`,
        "pool slot 3\t/tmp\t-",
        "rel\tsome/where\t-",
      ].join("\n"),
      [path.join(stateDir, `${A.name}.tsv`)]: `flat\t${dir(A, "c1")}\t-\n`,
      [path.join(stateDir, `${A.name}.forgotten.tsv`)]: `gone\t${Date.parse("2026-12-03T00:00:00Z") / 1000}\n`,
    };
    for (const [f, t] of Object.entries(files)) fs.writeFileSync(f, t);
    fs.utimesSync(path.join(stateDir, `${A.name}.tsv`), new Date("2026-11-30T12:00:00Z"), new Date("2026-11-30T12:00:00Z"));
    fs.symlinkSync(`${A.name}/20261202T090000.tsv`, path.join(stateDir, "snapshots", `${A.name}.tsv`));
    const imp = tp("import-legacy");
    ok(imp, "import-legacy");
    assert.match(imp.stderr, /legacy rows left out .*rows=2/);
    assert.deepEqual(rows(ok(tp("snapshots", A.name), "snapshots")), [
      ["20261202T090000", "4", "newest"],
      ["20261201T080000", "1", "-"],
      ["20261130T120000", "1", "-"],
    ]);
    const ours = fs.readdirSync(path.join(stateDir, A.name)).sort();
    ok(tp("import-legacy"), "import-legacy again");
    assert.deepEqual(fs.readdirSync(path.join(stateDir, A.name)).sort(), ours, "a second import writes nothing");
    const r = tp("restore", A.name);
    ok(r, "restore");
    waitStarts(A, 2);
    L.sleep(500);
    assert.deepEqual(L.sessionNames(env, A), ["main", "shell", "side"], "the newest legacy snapshot, without the forgotten session");
    assert.deepEqual(liveUuids(A), { main: [u1], side: [u2] }, "each conversation resumed in its session");
    assert.ok(starts(A).every((e) => e.resumed));
    for (const [f, t] of Object.entries(files)) assert.equal(fs.readFileSync(f, "utf8"), t, `${f} untouched`);
  });

  test("bad arguments: one line each, exit 1 or 2, nothing changed", () => {
    L.makeSession(env, A, "keep", [{ panes: [{ cwd: dir(A, "k") }] }]);
    ok(tp("save"), "save");
    const cases: Array<[string[], number, RegExp]> = [
      [["snapshot", A.name, "yesterday"], 1, /not a snapshot time/],
      [["snapshot", A.name, "20000101T000000"], 1, /has no snapshot 20000101T000000/],
      [["snapshot", "nobody", "20000101T000000"], 1, /nobody is not an active, opted-in roster user/],
      [["forget", A.name, "a;b"], 1, /not a session name the lobby uses/],
      [["restore-one", A.name, "$(id)"], 1, /neither a session name nor a conversation uuid/],
      [["snapshots"], 2, /wrong number of arguments/],
      [["restore", A.name, "extra"], 2, /wrong number of arguments/],
    ];
    for (const [args, code, msg] of cases) {
      const r = tp(args[0], ...args.slice(1));
      assert.equal(r.status, code, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, msg);
    }
    assert.ok(!fs.existsSync(path.join(stateDir, `${A.name}.forgotten.tsv`)));
    assert.deepEqual(L.sessionNames(env, A), ["keep"]);
  });
});
