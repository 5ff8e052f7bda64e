/**
 * The facts README "Real Claude" states about Claude Code 2.1.332, checked on the real CLI
 * (npm layout, in real tmux, as a throwaway user, offline against the fake Messages API).
 * If a new pin changes one of them, this file says which.
 *
 * Needs root. Under CI=true a missing claude binary fails.
 */
import { after, before, beforeEach, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import * as L from "../../dev/tmux";
import * as C from "../../dev/claude";

const skip = C.claudeSkip();

describe("Claude Code 2.1.332: files, processes, resume (real CLI)", { skip: skip ?? false, timeout: 20 * 60_000 }, () => {
  let env: L.Env;
  let U: L.TUser;
  let inst: C.ClaudeInstall;
  let fake: C.FakeApiProcess;
  let n = 0;
  const proj = (rel: string) => {
    const d = L.userDir(U, path.join(`f${n}`, rel));
    C.seedUser(U, { url: fake.url, projects: [d] });
    return d;
  };
  const start = (session: string, cwd: string, args: string[] = []) => {
    L.makeSession(env, U, session, [{ panes: [{ cwd, cmd: [inst.bin, ...args] }] }]);
    C.waitReady(env, U, session);
    return C.waitSession(env, U, session);
  };
  /** ~/.claude/projects/<slug>/<id>.jsonl, slug = the cwd with every char outside [A-Za-z0-9] as '-' */
  const transcript = (cwd: string, id: string) => path.join(U.home, ".claude/projects", cwd.replace(/[^A-Za-z0-9]/g, "-"), `${id}.jsonl`);

  before(() => {
    if (skip === undefined) C.requireClaude();
    env = L.setupEnv(1);
    [U] = env.users;
    inst = C.installNpmLayout(env.base);
    fake = new C.FakeApiProcess(env.base).start();
    C.seedUser(U, { url: fake.url, projects: [] });
  });
  after(() => {
    fake?.stop();
    if (env) L.teardownEnv(env);
  });
  beforeEach(() => {
    n++;
    L.killUser(env, U);
    fake.clear();
    fake.control({ failAll: null });
  });

  test("the npm package: bin/claude.exe is the native binary of the optional dependency; the .bin link points at it", () => {
    assert.equal(fs.readlinkSync(inst.bin), "../@anthropic-ai/claude-code/bin/claude.exe");
    const native = path.join(inst.dir, "node_modules/@anthropic-ai/claude-code-linux-x64/claude");
    assert.equal(fs.statSync(inst.exe).ino, fs.statSync(native).ino, "postinstall links the native binary over the placeholder");
    assert.equal(fs.readFileSync(inst.exe).subarray(0, 4).toString("latin1"), "\x7fELF");
    const v = spawnSync(inst.bin, ["--version"], { encoding: "utf8" }).stdout.trim();
    assert.equal(v, "2.1.332 (Claude Code)");
  });

  test("at start, before any message: sessions/<pid>.json with these fields, procStart = /proc/PID/stat field 22; no API request", () => {
    const p = proj("start");
    const s = start("st", p);
    const f = s.file;
    assert.equal(f.pid, s.pid);
    assert.match(f.sessionId, /^[0-9a-f-]{36}$/);
    assert.equal(f.cwd, p);
    assert.equal(f.procStart, C.procStart(s.pid));
    assert.match(f.procStart, /^[0-9]+$/);
    assert.equal(f.version, "2.1.332");
    assert.equal(f.kind, "interactive");
    assert.equal(f.entrypoint, "cli");
    assert.equal(typeof f.startedAt, "number");
    assert.match(String(f.pidDomain), /^linux:[0-9a-f]{32}:pid:\[[0-9]+\]$/);
    const where = L.tmux(env, U, ["display-message", "-p", "-t", "st", "#{session_name}:#{window_id}.#{pane_id}"]).stdout.trim();
    assert.equal(f.tmux, where, "tmux = session:@window.%pane");
    const dir = path.join(U.home, ".claude/sessions");
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(dir, `${s.pid}.json`)).mode & 0o777, 0o644);
    assert.equal(fs.statSync(path.join(dir, `${s.pid}.json`)).uid, U.uid);
    const key = fs.readdirSync(dir).find((x) => x.startsWith(`${s.pid}.`) && x.endsWith(".key"));
    assert.ok(key, "a <pid>.<hash>.key beside it");
    assert.equal(fs.statSync(path.join(dir, key)).mode & 0o777, 0o600);
    assert.ok(!fs.existsSync(transcript(p, f.sessionId)), "no transcript before the first message");
    assert.equal(fake.records().length, 0, "nothing was sent at start (nonessential traffic off)");
    // /proc: exe is claude.exe, argv[0] the .bin link as exec'd, comm the exec'd basename
    assert.equal(fs.readlinkSync(`/proc/${s.pid}/exe`), inst.exe);
    assert.equal(fs.readFileSync(`/proc/${s.pid}/cmdline`, "utf8").split("\0")[0], inst.bin);
    assert.equal(fs.readFileSync(`/proc/${s.pid}/comm`, "utf8").trim(), "claude");
  });

  test("the transcript is created when the first message is sent, before any answer; only /v1/messages is called", () => {
    const p = proj("first");
    const s = start("fm", p);
    fake.control({ failAll: { kind: "hang" } });
    C.type(env, U, "fm", "a message that gets no answer");
    const t = transcript(p, s.file.sessionId);
    L.waitFor("the transcript while the request hangs", () => fs.existsSync(t) && fake.records().length > 0, 20000);
    L.sleep(500);
    const text = fs.readFileSync(t, "utf8");
    assert.ok(text.includes("a message that gets no answer"), `the user's line is in the transcript:\n${text.slice(0, 2000)}`);
    const outcomes = fake.records().map((r) => r.outcome);
    assert.ok(outcomes.length > 0 && outcomes.every((o) => o === "hang"), `no answer was sent: ${outcomes}`);
    assert.equal(fs.statSync(t).mode & 0o777, 0o600);
    fake.control({ failAll: null });
    L.killUser(env, U);
    const s2 = start("fm2", p);
    C.say(env, U, "fm2", fake, "now answered");
    const paths = new Set(fake.records().map((r) => `${r.method} ${r.path}${r.query}`));
    assert.deepEqual([...paths], ["POST /v1/messages?beta=true"]);
    const [q] = fake.requestsFor("now answered");
    assert.equal(q.body.stream, true);
    assert.equal(q.headers["x-claude-code-session-id"], s2.file.sessionId);
    assert.match(q.headers["user-agent"], /^claude-cli\/2\.1\.332 /);
  });

  test("429, 5xx, a dropped stream: claude retries and the answer arrives", () => {
    const p = proj("retry");
    start("rt", p);
    for (const [text, fail] of [
      ["after a 429", { kind: "429", retryAfterSeconds: 1 }],
      ["after a 500", { kind: "5xx", status: 500 }],
      ["after a dropped stream", { kind: "drop", afterDeltas: 1 }],
    ] as const) {
      fake.control({ failNext: [fail] });
      C.say(env, U, "rt", fake, text, 120_000);
      const outcomes = fake.requestsFor(text).map((r) => r.outcome);
      assert.deepEqual(outcomes, [fail.kind === "5xx" ? "500" : fail.kind, "stream"], text);
    }
  });

  test("/clear switches sessionId at once with a new transcript; /resume <uuid> switches back to the old file; exit removes the file", () => {
    const p = proj("clear");
    const s = start("cl", p);
    C.say(env, U, "cl", fake, "before clear");
    const first = s.file.sessionId;
    const second = C.clear(env, U, "cl", s.pid);
    L.waitFor("the new transcript right at /clear", () => fs.existsSync(transcript(p, second)), 10000);
    assert.deepEqual(fs.readFileSync(`/proc/${s.pid}/cmdline`, "utf8").split("\0").filter(Boolean), [inst.bin], "argv unchanged");
    const size = fs.statSync(transcript(p, first)).size;
    C.type(env, U, "cl", `/resume ${first}`);
    L.waitFor("sessionId back to the first", () => C.sessionFile(U, s.pid)?.sessionId === first, 20000);
    C.say(env, U, "cl", fake, "after resume inside");
    assert.ok(fs.statSync(transcript(p, first)).size > size, "appended to the first transcript");
    assert.equal(fs.readdirSync(path.dirname(transcript(p, first))).filter((x) => x.endsWith(".jsonl")).length, 2, "no fork");
    C.type(env, U, "cl", "/exit");
    L.waitFor("the session file gone after /exit", () => !C.sessionFile(U, s.pid), 20000);
    // that pane was the server's last: the server is exiting now, and a client that connects
    // meanwhile gets "server exited unexpectedly" (landing CI of ee9f0c8); wait until it is gone
    L.killUser(env, U);
    // SIGHUP (tmux kill-server) removes it too; SIGKILL leaves it behind (stale)
    const h = start("hup", p);
    L.killUser(env, U);
    assert.equal(C.sessionFile(U, h.pid), null);
    const k = start("kill", p);
    process.kill(k.pid, "SIGKILL");
    L.waitFor("gone", () => !L.alive(k.pid));
    assert.ok(C.sessionFile(U, k.pid), "a SIGKILLed claude leaves its session file");
  });

  test("--resume <uuid> offline: the earlier conversation on screen, no API request, same id; from another cwd too; an unknown id exits 1", () => {
    const p = proj("res");
    const other = proj("elsewhere");
    const s = start("r0", p);
    const answer = C.say(env, U, "r0", fake, "remember papa");
    const id = s.file.sessionId;
    L.killUser(env, U);
    fake.clear();
    const r = start("r1", p, ["--resume", id]);
    C.waitScreen(env, U, "r1", "the earlier answer", (t) => t.includes(answer));
    assert.equal(r.file.sessionId, id);
    assert.equal(fake.records().length, 0, "resuming sends nothing");
    L.killUser(env, U);
    const o = start("r2", other, ["--resume", id]);
    C.waitScreen(env, U, "r2", "the earlier answer, from another cwd", (t) => t.includes(answer));
    assert.equal(o.file.sessionId, id);
    assert.equal(o.file.cwd, other, "the session file has the new cwd");
    L.killUser(env, U);
    const bad = spawnSync("/usr/sbin/runuser", ["-u", U.name, "--", inst.bin, "--resume", "11111111-2222-4333-8444-555555555555"], {
      cwd: p,
      encoding: "utf8",
      env: L.userEnv(env, U),
      timeout: 60000,
      input: "",
    });
    assert.equal(bad.status, 1);
    assert.match(bad.stdout + bad.stderr, /No conversation found with session ID: 11111111-2222-4333-8444-555555555555/);
  });
});
