/**
 * scripts/agents/workstations-refresh-clone on real git clones in temp dirs (a local bare repo as
 * the remote; the same script over HTTP with a token is in git.test.ts): it fast-forwards a
 * clean clone on master, and one with untracked files (kept), and leaves alone, each with its
 * own warning, a clone with tracked changes, an untracked file the fast-forward would overwrite, a clone
 * on another branch, a diverged one, one ahead of its upstream, one without an upstream; it
 * never resets or cleans; and its units pass systemd-analyze verify.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { git, gitOk, ROOT, run, tmp } from "./lib";

const SCRIPT = path.join(ROOT, "scripts/agents/workstations-refresh-clone");

interface Fixture {
  remote: string;
  upstream: string;
  clone: string;
  home: string;
  /** Adds a commit to the remote's master (through a second clone). */
  advance(msg?: string): string;
}

function fixture(): Fixture {
  const d = tmp("refresh");
  const home = path.join(d, "home");
  fs.mkdirSync(home);
  const remote = path.join(d, "infra.git");
  gitOk(["init", "-q", "--bare", "-b", "master", remote], { home });
  const upstream = path.join(d, "upstream");
  gitOk(["clone", "-q", remote, upstream], { home });
  gitOk(["symbolic-ref", "HEAD", "refs/heads/master"], { cwd: upstream, home });
  fs.writeFileSync(path.join(upstream, "README"), "infra\n");
  gitOk(["add", "README"], { cwd: upstream, home });
  gitOk(["commit", "-qm", "init"], { cwd: upstream, home });
  gitOk(["push", "-q", "origin", "master"], { cwd: upstream, home });
  const clone = path.join(d, "code");
  gitOk(["clone", "-q", "--origin", "forgejo", "--branch", "master", remote, clone], { home });
  let n = 0;
  const advance = (msg = `upstream ${++n}`) => {
    fs.appendFileSync(path.join(upstream, "README"), `${msg}\n`);
    gitOk(["commit", "-qam", msg], { cwd: upstream, home });
    gitOk(["push", "-q", "origin", "master"], { cwd: upstream, home });
    return gitOk(["rev-parse", "HEAD"], { cwd: upstream, home });
  };
  return { remote, upstream, clone, home, advance };
}

const refresh = (f: Fixture, dir = f.clone) =>
  run("bash", [SCRIPT, dir], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: f.home,
      GIT_AUTHOR_NAME: "t",
      GIT_AUTHOR_EMAIL: "t@x",
      GIT_COMMITTER_NAME: "t",
      GIT_COMMITTER_EMAIL: "t@x",
    },
  });
const head = (f: Fixture, ref = "HEAD") => gitOk(["rev-parse", ref], { cwd: f.clone, home: f.home });
const tracking = (f: Fixture) => gitOk(["rev-parse", "forgejo/master"], { cwd: f.clone, home: f.home });

test("a clean clone on master with an upstream is fast-forwarded", () => {
  const f = fixture();
  const tip = f.advance();
  const r = refresh(f);
  assert.equal(r.code, 0, r.out);
  assert.match(r.stderr, /master fast-forwarded to forgejo\/master/);
  assert.equal(head(f), tip);
  const again = refresh(f);
  assert.equal(again.code, 0);
  assert.equal(again.stderr, "", "up to date: silent");
});

test("untracked files do not block the fast-forward (75 of them, as froze the team's refresh) and are kept", () => {
  const f = fixture();
  for (let i = 0; i < 75; i++) fs.writeFileSync(path.join(f.clone, `scratch-${i}.txt`), `mine ${i}\n`);
  fs.mkdirSync(path.join(f.clone, "notes"));
  fs.writeFileSync(path.join(f.clone, "notes", "todo.md"), "- x\n");
  const tip = f.advance();
  const r = refresh(f);
  assert.equal(r.code, 0, r.out);
  assert.match(r.stderr, /master fast-forwarded to forgejo\/master/);
  assert.equal(head(f), tip);
  assert.equal(fs.readdirSync(f.clone).filter((n) => n.startsWith("scratch-")).length, 75, "every untracked file kept");
  assert.equal(fs.readFileSync(path.join(f.clone, "notes", "todo.md"), "utf8"), "- x\n");
});

test("an untracked file the fast-forward would overwrite: left alone, the file untouched, one warning naming it", () => {
  const f = fixture();
  fs.writeFileSync(path.join(f.clone, "plan.md"), "my draft\n");
  const before = head(f);
  fs.writeFileSync(path.join(f.upstream, "plan.md"), "the team's plan\n");
  gitOk(["add", "plan.md"], { cwd: f.upstream, home: f.home });
  gitOk(["commit", "-qm", "plan"], { cwd: f.upstream, home: f.home });
  gitOk(["push", "-q", "origin", "master"], { cwd: f.upstream, home: f.home });
  const r = refresh(f);
  assert.equal(r.code, 0, r.out);
  assert.equal(r.stderr.trim().split("\n").length, 1, `one warning: ${r.stderr}`);
  assert.match(r.stderr, /the fast-forward to forgejo\/master stopped \(.*untracked working tree files would be overwritten.*plan\.md.*\); left alone/);
  assert.equal(head(f), before, "HEAD did not move");
  assert.equal(fs.readFileSync(path.join(f.clone, "plan.md"), "utf8"), "my draft\n", "the user's file untouched");
});

const cases: Array<[string, (f: Fixture) => void, RegExp, (f: Fixture, before: string) => void]> = [
  [
    "tracked files changed (unstaged)",
    (f) => fs.appendFileSync(path.join(f.clone, "README"), "local edit\n"),
    /tracked files have changes; left alone/,
    (f) => assert.match(fs.readFileSync(path.join(f.clone, "README"), "utf8"), /local edit/),
  ],
  [
    "tracked files changed (staged)",
    (f) => {
      fs.writeFileSync(path.join(f.clone, "new.txt"), "x\n");
      gitOk(["add", "new.txt"], { cwd: f.clone, home: f.home });
    },
    /tracked files have changes; left alone/,
    () => undefined,
  ],
  [
    "a clone on another branch",
    (f) => gitOk(["checkout", "-q", "-b", "feature"], { cwd: f.clone, home: f.home }),
    /on branch feature, not master; left alone/,
    (f) => assert.equal(gitOk(["branch", "--show-current"], { cwd: f.clone, home: f.home }), "feature"),
  ],
  [
    "a detached HEAD",
    (f) => gitOk(["checkout", "-q", "--detach"], { cwd: f.clone, home: f.home }),
    /on a detached HEAD, not master; left alone/,
    () => undefined,
  ],
  [
    "a diverged clone",
    (f) => {
      fs.writeFileSync(path.join(f.clone, "local.txt"), "l\n");
      gitOk(["add", "local.txt"], { cwd: f.clone, home: f.home });
      gitOk(["commit", "-qm", "local"], { cwd: f.clone, home: f.home });
    },
    /master has diverged from forgejo\/master; left alone/,
    () => undefined,
  ],
  [
    "a clone without an upstream",
    (f) => gitOk(["branch", "--unset-upstream"], { cwd: f.clone, home: f.home }),
    /master has no upstream; left alone/,
    () => undefined,
  ],
];

for (const [what, make, warning, extra] of cases) {
  test(`${what} is left alone with its warning (remotes still fetched)`, () => {
    const f = fixture();
    make(f);
    const before = head(f);
    const tip = f.advance();
    const r = refresh(f);
    assert.equal(r.code, 0, r.out);
    assert.match(r.stderr, warning);
    assert.equal(r.stderr.trim().split("\n").length, 1, `one warning: ${r.stderr}`);
    assert.equal(head(f), before, "HEAD did not move");
    assert.equal(tracking(f), tip, "the remote-tracking branch was fetched");
    extra(f, before);
  });
}

test("a clone ahead of its upstream (unpushed commits) is left alone, said as such", () => {
  const f = fixture();
  gitOk(["commit", "-q", "--allow-empty", "-m", "unpushed"], { cwd: f.clone, home: f.home });
  const before = head(f);
  const r = refresh(f);
  assert.equal(r.code, 0);
  assert.match(r.stderr, /master is ahead of forgejo\/master \(commits not pushed yet\); left alone/);
  assert.equal(head(f), before);
});

test("a merge in progress is left alone", () => {
  const f = fixture();
  gitOk(["checkout", "-q", "-b", "side"], { cwd: f.clone, home: f.home });
  fs.writeFileSync(path.join(f.clone, "README"), "side\n");
  gitOk(["commit", "-qam", "side"], { cwd: f.clone, home: f.home });
  gitOk(["checkout", "-q", "master"], { cwd: f.clone, home: f.home });
  fs.writeFileSync(path.join(f.clone, "README"), "main\n");
  gitOk(["commit", "-qam", "main"], { cwd: f.clone, home: f.home });
  assert.notEqual(git(["merge", "-q", "side"], { cwd: f.clone, home: f.home }).code, 0, "a conflict");
  const r = refresh(f);
  assert.equal(r.code, 0);
  assert.match(r.stderr, /left alone/);
  assert.ok(fs.existsSync(path.join(f.clone, ".git/MERGE_HEAD")), "the merge is still in progress");
});

test("an unreachable remote is a warning, not a failure; not a clone is exit 2", () => {
  const f = fixture();
  fs.renameSync(f.remote, `${f.remote}.gone`);
  const r = refresh(f);
  assert.equal(r.code, 0);
  assert.match(r.stderr, /fetch failed .*; left alone/);
  const notClone = tmp("notclone");
  const n = refresh(f, notClone);
  assert.equal(n.code, 2);
  assert.match(n.stderr, /is not a git clone/);
  const sub = refresh(f, path.join(f.clone, ".git"));
  assert.equal(sub.code, 2, "a directory inside a clone is not the clone");
  assert.equal(run("bash", [SCRIPT]).code, 2);
});

test("the workspace layout: ~/code holding clones: each refreshed on its own; other entries ignored", () => {
  const f = fixture();
  const ws = path.join(path.dirname(f.clone), "ws");
  fs.mkdirSync(ws);
  for (const d of ["infra", "tools"]) gitOk(["clone", "-q", "--origin", "forgejo", "--branch", "master", f.remote, path.join(ws, d)], { home: f.home });
  fs.mkdirSync(path.join(ws, "notes")); // not a clone
  fs.symlinkSync(f.clone, path.join(ws, "linked")); // a link to a clone: not followed
  fs.appendFileSync(path.join(ws, "tools/README"), "mine\n"); // tracked change: left alone
  const before = gitOk(["rev-parse", "HEAD"], { cwd: f.clone, home: f.home });
  const tip = f.advance();
  const r = refresh(f, ws);
  assert.equal(r.code, 0, r.out);
  assert.equal(gitOk(["rev-parse", "HEAD"], { cwd: path.join(ws, "infra"), home: f.home }), tip, "infra fast-forwarded");
  assert.match(r.stderr, /ws\/infra: master fast-forwarded/);
  assert.match(r.stderr, /ws\/tools: tracked files have changes; left alone/);
  assert.equal(gitOk(["rev-parse", "HEAD"], { cwd: f.clone, home: f.home }), before, "the linked clone was not refreshed");
  assert.doesNotMatch(r.stderr, /notes|linked/);
  const empty = path.join(path.dirname(f.clone), "empty-ws");
  fs.mkdirSync(path.join(empty, "notes"), { recursive: true });
  const e = refresh(f, empty);
  assert.equal(e.code, 2, "a directory holding no clone");
  assert.match(e.stderr, /is not a git clone \(nor a workspace holding one\)/);
});

test("two refreshes at once: the second says so and leaves the clone alone", () => {
  const f = fixture();
  f.advance();
  const lock = path.join(f.clone, ".git/workstations-refresh.lock");
  const holder = run("bash", ["-c", `exec 9>"${lock}"; flock 9; bash ${SCRIPT} "${f.clone}"; true`], { env: { PATH: process.env.PATH ?? "", HOME: f.home } });
  assert.equal(holder.code, 0);
  assert.match(holder.stderr, /another refresh is running; left alone/);
});

test("the refresh units pass systemd-analyze verify and are hardened like the renewal unit", () => {
  assert.equal(run("systemd-analyze", ["--version"]).code, 0, "systemd-analyze is needed (apt-get install systemd)");
  const dir = tmp("units");
  for (const f of ["workstations-refresh-clone@.service", "workstations-refresh-clone@.timer"])
    fs.copyFileSync(path.join(ROOT, "scripts/units", f), path.join(dir, f));
  // verify needs an instance whose User= exists here
  fs.symlinkSync("workstations-refresh-clone@.service", path.join(dir, "workstations-refresh-clone@root.service"));
  fs.symlinkSync("workstations-refresh-clone@.timer", path.join(dir, "workstations-refresh-clone@root.timer"));
  const r = run("systemd-analyze", [
    "verify",
    path.join(dir, "workstations-refresh-clone@root.service"),
    path.join(dir, "workstations-refresh-clone@root.timer"),
  ]);
  const noise = r.stderr
    .split("\n")
    .filter((l) => l.trim() && !/Failed to read \$container|Found container virtualization|PR_SET_MM|Special user root configured/.test(l));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(noise, [], "no warnings");
  const svc = fs.readFileSync(path.join(dir, "workstations-refresh-clone@.service"), "utf8");
  const renew = fs.readFileSync(path.join(ROOT, "scripts/units/claude-token-renew@.service"), "utf8");
  for (const line of [
    "Type=oneshot",
    "User=%i",
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=",
    "ProtectSystem=strict",
    "ReadWritePaths=-/home",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "RestrictSUIDSGID=yes",
    "SystemCallFilter=~@privileged",
    "RemoveIPC=no",
  ]) {
    assert.ok(svc.split("\n").includes(line), `refresh unit has ${line}`);
    assert.ok(renew.split("\n").includes(line), `(and so does the renewal unit: ${line})`);
  }
  assert.match(svc, /^ConditionPathIsDirectory=\/home\/%i\/code$/m, "skipped while there is no ~/code");
  assert.match(svc, /^ExecStart=\/bin\/bash \/usr\/local\/lib\/workstations\/workstations-refresh-clone \/home\/%i\/code$/m);
  const timer = fs.readFileSync(path.join(dir, "workstations-refresh-clone@.timer"), "utf8");
  assert.match(timer, /^OnCalendar=/m);
  assert.match(timer, /^Persistent=true$/m);
  assert.match(timer, /^WantedBy=timers\.target$/m);
});

test("the script passes shellcheck", () => {
  const r = run("shellcheck", ["-S", "style", SCRIPT]);
  assert.equal(r.code, 0, r.out);
});
