/**
 * `npm run access-diff`: real roster pairs in a scratch git repository (base = a commit,
 * head = the working tree, a ref or a file), the CLI's exit codes, and `--ci` for a pull
 * request and a push.
 */
import { after, test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { planRoster } from "../../components/plan";
import { parseRoster } from "../../components/roster/load";
import { accessDiff, diffPlans, formatDiff } from "../../tools/access-diff";
import { formatReport, planJson } from "../../tools/access-report";
import { tempDir } from "../../dev/tmp";

const ROOT = path.resolve(__dirname, "../..");
const EXAMPLE = fs.readFileSync(path.join(ROOT, "roster.example.yaml"), "utf8");
const scratch: string[] = [];
after(() => scratch.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
type U = Record<string, unknown> & { name: string };
type R = { version: number; users: U[] };

/** A fresh ed25519 public key line (the roster parses keys in full). */
function sshKey(comment: string): string {
  const { publicKey } = crypto.generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const len = (b: Buffer) => {
    const l = Buffer.alloc(4);
    l.writeUInt32BE(b.length);
    return Buffer.concat([l, b]);
  };
  return `ssh-ed25519 ${Buffer.concat([len(Buffer.from("ssh-ed25519")), len(raw)]).toString("base64")} ${comment}`;
}

/** What a checkout needs to plan a roster with its own code (and the stack config naming the roster). */
const CODE = ["components", "tools", "package.json", "tsconfig.json", "Pulumi.yaml", "Pulumi.devvm.yaml"];

interface Repo {
  dir: string;
  git: (...a: string[]) => string;
  commit: (r: R | string, msg: string) => string;
  write: (r: R | string) => void;
  /** Rewrites a file of the checkout (relative path) through `edit`. */
  edit: (file: string, edit: (text: string) => string) => void;
}

/**
 * A scratch repository: this project's planning code, its stack config and node_modules (a
 * link, ignored), as a real checkout has them; `code: false` leaves only what the test writes.
 */
function repo(o: { code?: boolean } = {}): Repo {
  const dir = tempDir("ws-adiff-");
  scratch.push(dir);
  const git = (...a: string[]) =>
    execFileSync("git", ["-C", dir, ...a], {
      encoding: "utf8",
      env: { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@x", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@x" },
    }).trim();
  git("init", "-q", "-b", "master");
  if (o.code !== false) {
    for (const f of CODE) fs.cpSync(path.join(ROOT, f), path.join(dir, f), { recursive: true });
    fs.writeFileSync(path.join(dir, ".gitignore"), "node_modules\n");
    fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  }
  const write = (r: R | string) => fs.writeFileSync(path.join(dir, "roster.yaml"), typeof r === "string" ? r : YAML.stringify(r));
  const commit = (r: R | string, msg: string) => {
    write(r);
    git("add", "-A");
    git("commit", "-qm", msg);
    return git("rev-parse", "HEAD");
  };
  const edit = (file: string, f: (text: string) => string) => {
    const p = path.join(dir, file);
    const before = fs.readFileSync(p, "utf8");
    const after = f(before);
    assert.notEqual(after, before, `the edit of ${file} changed nothing`);
    fs.writeFileSync(p, after);
  };
  return { dir, git, commit, write, edit };
}
const base = (): R => YAML.parse(EXAMPLE);
const user = (r: R, n: string) => r.users.find((u) => u.name === n)!;
/** The diff of `edit(example)` against the example, as the CLI prints it. */
function diffOf(edit: (r: R) => void): { code: number; out: string; err: string } {
  const g = repo();
  g.commit(EXAMPLE, "base");
  const r = base();
  edit(r);
  g.write(r);
  const res = accessDiff(["HEAD"], g.dir, {});
  return { code: res.code, out: res.stdout, err: res.stderr };
}

test("an unchanged roster, and one changed only in comments and layout, print nothing", () => {
  assert.deepEqual(
    diffOf(() => undefined),
    { code: 0, out: "", err: "" },
  );
  const g = repo();
  g.commit(EXAMPLE, "base");
  g.write("# reviewed\n" + YAML.stringify(base(), { indent: 4 }));
  assert.deepEqual(accessDiff(["HEAD"], g.dir, {}), { code: 0, stdout: "", stderr: "" });
});

test("onboarding prints every grant the new user gets", () => {
  const key = sshKey("alice@example");
  const d = diffOf((r) => r.users.push({ name: "alice", uid: 2010, role: "power-user", email: "alice@example.com", forgejo: "alice", sshKeys: [key] }));
  assert.equal(d.code, 0);
  const lines = d.out.split("\n");
  assert.match(lines[0], /^access changes HEAD:roster\.yaml → roster\.yaml:$/);
  assert.equal(lines[1], "alice (uid 2010): onboarded (power-user)");
  for (const l of [
    "  + login: shell /bin/bash",
    `  + login: ssh key ssh-ed25519 …${key.split(" ")[1].replace(/=+$/, "").slice(-8)} "alice@example"`,
    "  + groups: workstation-users",
    "  + forgejo: alice: write collaborator on infra",
    "  + vault: policy claude-renew-alice on claude-tokens/users/alice, AppRole claude-renew-alice",
    "  + units: timer claude-token-renew@alice.timer",
    "  + units: linger",
  ])
    assert.ok(lines.includes(l), `missing ${l}\n${d.out}`);
  assert.equal(lines.filter((l) => l.startsWith("  - ")).length, 0, "nothing is removed");
  assert.ok(!/^(viktor|emo|nadia|sam|olga) /m.test(d.out), "nobody else changed");
});

test("suspend, reactivate and offboard are state changes with the grants they cut or restore", () => {
  const s = diffOf((r) => (user(r, "emo").state = "suspended")).out;
  assert.match(s, /^emo \(uid 2001\): suspended$/m);
  for (const l of [
    "  - login: shell /bin/bash",
    "  - forgejo: ebarzin: master push whitelist",
    "  - forgejo: ebarzin: master merge whitelist",
    "  - vault: policy claude-renew-emo on claude-tokens/users/emo, AppRole claude-renew-emo",
    "  - units: timer claude-token-renew@emo.timer",
    "  - units: linger",
  ])
    assert.ok(s.split("\n").includes(l), `missing ${l}\n${s}`);
  assert.ok(s.includes("  - login: ssh key ssh-ed25519 …"));
  // The program removes a suspended user's collaboration and token (plan.grants.forgejo is null).
  assert.ok(s.split("\n").includes("  - forgejo: ebarzin: write collaborator on infra"), `a suspension ends the collaboration\n${s}`);

  const a = diffOf((r) => delete user(r, "sam").state).out;
  assert.match(a, /^sam \(uid 2003\): reactivated$/m);
  assert.match(a, /^  \+ vault: policy claude-renew-sam/m);

  const o = diffOf((r) => (user(r, "nadia").state = "offboarded")).out;
  assert.match(o, /^nadia \(uid 2002\): offboarded$/m);
  for (const l of [
    "  - forgejo: nadia: read collaborator on infra",
    "  - kubernetes: tier namespace",
    "  - kubernetes: namespace nadia-apps (admin RoleBinding)",
    "  - dashboard: dashboard-nav-readonly ClusterRole",
    "  - groups: workstation-users",
  ])
    assert.ok(o.split("\n").includes(l), `missing ${l}\n${o}`);
  assert.ok(!o.includes("  + "), "offboarding grants nothing");
});

test("a purge approval is flagged as destructive", () => {
  const d = diffOf((r) => (user(r, "olga").purge = { approvedBy: "viktor", approvedOn: "2026-01-15" }));
  assert.equal(d.code, 0);
  assert.equal(
    d.out.split("\n").slice(1).join("\n"),
    "olga (uid 2004): purge approved by viktor on 2026-01-15\n  ! destructive: the purge archives /home/olga, then deletes the account, its group, the home and the user's Vault data",
  );
});

test("a renamed user is one entry: flagged, with the grants that follow the name", () => {
  const d = diffOf((r) => (user(r, "emo").name = "emil")).out;
  assert.match(d, /^emo → emil \(uid 2001\): renamed$/m);
  assert.match(d, /^  ! renamed emo → emil \(uid 2001\): the host refuses uid 2001 under a new name/m);
  assert.match(d, /^  - vault: policy claude-renew-emo/m);
  assert.match(d, /^  \+ vault: policy claude-renew-emil/m);
  assert.ok(!/removed from the roster|onboarded/.test(d), "not shown as a removal plus an onboarding");
  assert.ok(!d.includes("forgejo"), "the Forgejo user did not change");
});

test("a changed uid of an existing name is flagged as a re-onboarding the host refuses", () => {
  const d = diffOf((r) => (user(r, "emo").uid = 2005)).out;
  assert.match(d, /^emo \(uid 2001 → 2005\)$/m);
  assert.match(
    d,
    /^  ! uid 2001 → 2005: a changed uid is a re-onboarding under a new uid; while the account exists with uid 2001 the account script refuses it/m,
  );
});

test("a uid the checker refuses (a duplicate) fails with the checker's file:line:col lines", () => {
  const g = repo();
  g.commit(EXAMPLE, "base");
  const r = base();
  user(r, "emo").uid = 2000;
  g.write(r);
  const res = accessDiff(["HEAD"], g.dir, {});
  assert.equal(res.code, 1);
  assert.equal(res.stdout, "");
  assert.match(res.stderr, /^roster\.yaml:\d+:\d+: users\[1\]\.uid: expected a unique uid: 2000 is already used by users\[0\] \(viktor\)$/m);
  // and the CLI says the same, with exit 1
  const cli = spawnSync(process.execPath, ["--require", "ts-node/register/transpile-only", path.join(ROOT, "tools/access-diff.ts"), "-C", g.dir, "HEAD"], {
    cwd: ROOT,
    encoding: "utf8",
  });
  assert.equal(cli.status, 1, cli.stderr);
  assert.match(cli.stderr, /^roster\.yaml:\d+:\d+: users\[1\]\.uid: /m);
});

test("removing an entry (instead of offboarding it) is flagged", () => {
  const d = diffOf((r) => (r.users = r.users.filter((u) => u.name !== "olga"))).out;
  assert.match(d, /^olga \(uid 2004\): removed from the roster\n  ! removed from the roster: olga's offboarding cut runs and uid 2004 is no longer reserved/m);
});

test("overrides, namespaces, role, Forgejo user and credential rotation", () => {
  const d = diffOf((r) => {
    user(r, "nadia").namespaces = ["nadia-apps", "nadia-ml"];
    user(r, "emo").overrides = { sudo: true, pushWhitelist: true, mergeWhitelist: true };
    user(r, "emo").credentialRotation = 1;
    user(r, "viktor").forgejo = "viktor2";
  }).out;
  assert.match(d, /^nadia \(uid 2002\)\n  \+ kubernetes: namespace nadia-ml \(admin RoleBinding\)$/m);
  assert.match(d, /^emo \(uid 2001\)\n  ~ Vault credential rotated \(credentialRotation 0 → 1\)\n  \+ sudo: passwordless sudo$/m);
  assert.match(d, /^viktor \(uid 2000\)\n  ~ Forgejo user viktor → viktor2\n  - forgejo: viktor: admin collaborator on infra/m);
  assert.match(d, /^  \+ forgejo: viktor2: master push whitelist$/m);
  const role = diffOf((r) => (user(r, "emo").role = "admin")).out;
  assert.match(role, /^emo \(uid 2001\)\n  ~ role power-user → admin\n/m);
  assert.match(role, /^  \+ sudo: passwordless sudo$/m);
  assert.match(role, /^  \+ kubernetes: tier cluster-admin$/m);
});

test("HEAD may be a ref or a file; a bad ref is a usage error", () => {
  const g = repo();
  const c1 = g.commit(EXAMPLE, "base");
  const r = base();
  user(r, "emo").state = "suspended";
  g.commit(r, "suspend emo");
  assert.match(accessDiff([c1, "HEAD"], g.dir, {}).stdout, /^emo \(uid 2001\): suspended$/m);
  fs.writeFileSync(path.join(g.dir, "other.yaml"), EXAMPLE);
  assert.match(accessDiff(["HEAD", "other.yaml"], g.dir, {}).stdout, /^emo \(uid 2001\): reactivated$/m);
  const bad = accessDiff(["no-such-ref"], g.dir, {});
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^access-diff: cannot read no-such-ref: not a commit of /);
  assert.equal(accessDiff([], g.dir, {}).code, 2);
});

test("a base without a roster, or with one its checker refuses, shows every grant as added", () => {
  const g = repo();
  fs.writeFileSync(path.join(g.dir, "README"), "x");
  g.git("add", "-A");
  g.git("commit", "-qm", "first");
  g.write(EXAMPLE);
  const none = accessDiff(["HEAD"], g.dir, {});
  assert.match(none.stdout, /\(the base has no roster\.yaml\):\nviktor \(uid 2000\): onboarded \(admin\)/);
  const r = base();
  user(r, "emo").uid = 2000; // invalid at the base
  g.commit(r, "broken");
  g.write(EXAMPLE);
  const inv = accessDiff(["HEAD"], g.dir, {});
  assert.equal(inv.code, 0);
  assert.match(inv.stdout, /does not pass its checker, 1 problem\(s\)/);
  assert.match(inv.stderr, /^base: HEAD:roster\.yaml:\d+:\d+: users\[1\]\.uid: /m);
});

test("--ci on a pull request: the PR's own changes against its merge base, not master's newer ones", () => {
  const g = repo();
  g.commit(EXAMPLE, "base");
  g.git("checkout", "-qb", "feature");
  const pr = base();
  user(pr, "emo").state = "suspended";
  g.commit(pr, "suspend emo");
  g.git("checkout", "-q", "master");
  const m = base();
  m.users.push({ name: "bob", uid: 2011, role: "power-user", email: "bob@example.com", forgejo: "bob", sshKeys: [sshKey("bob@x")] });
  g.commit(m, "onboard bob");
  g.git("checkout", "-q", "feature");
  const res = accessDiff(["--ci"], g.dir, { CI_PIPELINE_EVENT: "pull_request", CI_COMMIT_TARGET_BRANCH: "master", CI_COMMIT_BRANCH: "master" });
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^emo \(uid 2001\): suspended$/m);
  assert.ok(!res.stdout.includes("bob"), `master's newer change is not the PR's:\n${res.stdout}`);
  const missing = accessDiff(["--ci"], g.dir, { CI_PIPELINE_EVENT: "pull_request", CI_COMMIT_TARGET_BRANCH: "main" });
  assert.equal(missing.code, 2);
  assert.match(
    missing.stderr,
    /origin\/main is not in this clone; the clone step must fetch the pull request's target branch \(plugin-git setting fetch_target_branch: true\)/,
  );
});

test("--ci on a push: the commits of the push (previous pipeline's commit, else the first parent)", () => {
  const g = repo();
  const c1 = g.commit(EXAMPLE, "base");
  const r = base();
  user(r, "emo").state = "suspended";
  g.commit(r, "suspend emo");
  delete user(r, "sam").state;
  const c3 = g.commit(r, "reactivate sam");
  const both = accessDiff(["--ci"], g.dir, { CI_PIPELINE_EVENT: "push", CI_COMMIT_SHA: c3, CI_PREV_COMMIT_SHA: c1 });
  assert.match(both.stdout, /^emo \(uid 2001\): suspended$/m);
  assert.match(both.stdout, /^sam \(uid 2003\): reactivated$/m);
  // A previous pipeline that is not on master's line (a pull request's head): HEAD's first parent.
  const last = accessDiff(["--ci"], g.dir, { CI_PIPELINE_EVENT: "push", CI_COMMIT_SHA: c3, CI_PREV_COMMIT_SHA: "0".repeat(40) });
  assert.ok(!last.stdout.includes("emo"), last.stdout);
  assert.match(last.stdout, /^sam \(uid 2003\): reactivated$/m);
  const root = repo();
  root.commit(EXAMPLE, "only");
  assert.deepEqual(accessDiff(["--ci"], root.dir, { CI_PIPELINE_EVENT: "push" }), {
    code: 0,
    stdout: "",
    stderr: "access-diff --ci: nothing to compare with (HEAD is a root commit)",
  });
});

// ---- free text is data, never terminal control (issue 19, item 7) ----

/** Raw control characters a terminal acts on (the output's own line breaks excepted). */
// eslint-disable-next-line no-control-regex -- raw control characters are what must not be printed
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

test("an escape sequence in a purge reason cannot hide a '+ sudo' line: the checker refuses the roster", () => {
  // In a terminal, "\x1b[1A\x1b[2K" (cursor up, erase line) printed on olga's line would erase
  // the line above it: emo's "+ sudo".
  const d = diffOf((r) => {
    user(r, "emo").overrides = { sudo: true };
    user(r, "olga").purge = { approvedBy: "viktor", approvedOn: "2026-01-15", reason: "\x1b[1A\x1b[2K" };
  });
  assert.equal(d.code, 1, d.out);
  assert.equal(d.out, "");
  assert.match(d.err, /^roster\.yaml:\d+:\d+: users\[4\]\.purge\.reason: expected text without control characters \(U\+001B at character 1\)/m);
  assert.ok(!RAW_CONTROL.test(d.err), JSON.stringify(d.err));
});

test("even handed to the printer directly, free text is quoted and no raw control character is printed", () => {
  const roster = parseRoster(EXAMPLE, "roster.yaml").roster!;
  const head = structuredClone(roster);
  const emo = head.users.find((u) => u.name === "emo")!;
  emo.overrides = { ...emo.overrides, sudo: true };
  emo.sshKeys = [emo.sshKeys[0].replace(/emo@example$/, "emo\r  + units: linger\u202e")];
  const olga = head.users.find((u) => u.name === "olga")!;
  olga.purge = { approvedBy: "viktor", approvedOn: "2026-01-15", reason: "\x1b[1A\x1b[2K\x9b1A\u2028" };
  const diff = formatDiff(diffPlans(planRoster(roster), planRoster(head)));
  const report = formatReport(planRoster(head));
  for (const out of [diff, report]) assert.ok(!RAW_CONTROL.test(out), JSON.stringify(out));
  const lines = diff.split("\n");
  assert.ok(lines.includes("  + sudo: passwordless sudo"), diff);
  assert.ok(lines.includes('olga (uid 2004): purge approved by viktor on 2026-01-15, reason "\\u001b[1A\\u001b[2K\\u009b1A\\u2028"'), diff);
  assert.ok(
    lines.some((l) => /^ {2}\+ login: ssh key ssh-ed25519 …\S{8} "emo\\r {2}\+ units: linger\\u202e"$/.test(l)),
    diff,
  );
  assert.match(report, /^olga \(uid 2004, offboarded: no access; purge approved by viktor on 2026-01-15, reason "\\u001b\[1A\\u001b\[2K\\u009b1A\\u2028"\)$/m);
  // The JSON report escapes them too (JSON.stringify leaves DEL, C1 and bidi raw).
  const json = planJson(planRoster(head));
  assert.ok(!RAW_CONTROL.test(json.replace(/\n/g, "")), json);
  assert.equal(JSON.parse(json).offboarded.find((o: { name: string }) => o.name === "olga").purge.reason, "\x1b[1A\x1b[2K\x9b1A\u2028");
});

// ---- every change in access: each side's own code, config and roster (issue 19, item 6) ----

/** The `!` lines about the repository (under the header, before the users). */
const repoFlags = (out: string) => out.split("\n").filter((l) => /^ {2}! /.test(l) && !/^ {2}! (renamed|removed|uid|destructive)/.test(l));
const GIVE_POWER_USERS_SUDO = (t: string) => t.replace(/("power-user": \{\n\s+groups: \[\],\n\s+sudo: )false/, "$1true");

test("a PR that edits DEFAULT_PROFILES to give sudo shows '+ sudo': the base is planned with the base's code", () => {
  const g = repo();
  const c1 = g.commit(EXAMPLE, "base");
  g.edit("components/plan.ts", GIVE_POWER_USERS_SUDO);
  const expectSudo = (out: string, how: string) => {
    assert.match(out, /^emo \(uid 2001\)\n {2}\+ sudo: passwordless sudo$/m, `${how}:\n${out}`);
    assert.deepEqual(
      repoFlags(out),
      ["  ! planning code changed (components/plan.ts): each side was planned with its own code, so what the change grants is in the lines below"],
      how,
    );
    assert.ok(!/^sam /m.test(out), `${how}: a suspended power-user gets nothing`);
  };
  // The working tree, a committed ref, and CI's view of the pull request.
  const wt = accessDiff(["HEAD"], g.dir, {});
  assert.equal(wt.code, 0, wt.stderr);
  expectSudo(wt.stdout, "working tree");
  g.git("checkout", "-qb", "pr");
  g.git("commit", "-qam", "power-users get sudo");
  expectSudo(accessDiff([c1, "HEAD"], g.dir, {}).stdout, "HEAD as a ref");
  const ci = accessDiff(["--ci"], g.dir, { CI_PIPELINE_EVENT: "pull_request", CI_COMMIT_TARGET_BRANCH: "master" });
  assert.equal(ci.code, 0, ci.stderr);
  expectSudo(ci.stdout, "--ci");
  // and the other way round: a base whose code gave sudo, a head that takes it away
  assert.match(accessDiff(["HEAD", c1], g.dir, {}).stdout, /^emo \(uid 2001\)\n {2}- sudo: passwordless sudo$/m);
});

test("a PR that points workstations:roster at another file shows the change and the new file's grants", () => {
  const g = repo();
  // The base already holds a second roster (a stale copy, say) that gives emo sudo.
  const other = base();
  user(other, "emo").overrides = { sudo: true, pushWhitelist: true, mergeWhitelist: true };
  fs.writeFileSync(path.join(g.dir, "team.yaml"), YAML.stringify(other));
  const c1 = g.commit(EXAMPLE, "base");
  g.edit("Pulumi.devvm.yaml", (t) => t.replace("workstations:roster: roster.yaml", "workstations:roster: team.yaml"));
  const d = accessDiff(["HEAD"], g.dir, {});
  assert.equal(d.code, 0, d.stderr);
  const lines = d.stdout.split("\n");
  assert.equal(lines[0], "access changes HEAD:roster.yaml → team.yaml:");
  assert.deepEqual(repoFlags(d.stdout), [
    "  ! workstations:roster roster.yaml → team.yaml (Pulumi.devvm.yaml): the program applies team.yaml from now on; the users below are compared across the two files",
  ]);
  assert.match(d.stdout, /^emo \(uid 2001\)\n {2}\+ sudo: passwordless sudo$/m);

  // The same through Pulumi.yaml's project default (the stack file no longer sets the key).
  g.git("checkout", "-q", "--", "Pulumi.devvm.yaml");
  g.edit("Pulumi.devvm.yaml", (t) => t.replace(/^ {2}workstations:roster: roster\.yaml\n/m, ""));
  g.edit("Pulumi.yaml", (t) => t.replace("default: roster.yaml", "default: team.yaml"));
  const p = accessDiff([c1], g.dir, {}).stdout;
  assert.match(p, /^ {2}! workstations:roster roster\.yaml → team\.yaml \(Pulumi\.yaml \(project default\)\): /m, p);
  assert.match(p, /^emo \(uid 2001\)\n {2}\+ sudo: passwordless sudo$/m, p);

  // And through Pulumi.yaml's stackConfigDir (a stack file elsewhere).
  g.git("checkout", "-q", "--", "Pulumi.devvm.yaml", "Pulumi.yaml");
  fs.mkdirSync(path.join(g.dir, "stacks"));
  fs.writeFileSync(path.join(g.dir, "stacks/Pulumi.devvm.yaml"), "config:\n  workstations:roster: team.yaml\n");
  g.edit("Pulumi.yaml", (t) => t.replace("runtime:", "stackConfigDir: stacks\nruntime:"));
  const s = accessDiff([c1], g.dir, {}).stdout;
  assert.match(s, /^ {2}! workstations:roster roster\.yaml → team\.yaml \(stacks\/Pulumi\.devvm\.yaml\): /m, s);
  assert.match(s, /^emo \(uid 2001\)\n {2}\+ sudo: passwordless sudo$/m, s);
  // A key that leaves the repository is refused (the diff could not show it).
  fs.writeFileSync(path.join(g.dir, "stacks/Pulumi.devvm.yaml"), "config:\n  workstations:roster: ../elsewhere/roster.yaml\n");
  const out = accessDiff([c1], g.dir, {});
  assert.equal(out.code, 2);
  assert.match(
    out.stderr,
    /^access-diff: workstations:roster in stacks\/Pulumi\.devvm\.yaml is "\.\.\/elsewhere\/roster\.yaml": expected a file inside the repository/,
  );
});

test("changes to this tooling, the rest of the program and the stack config's keys are flagged", () => {
  const g = repo();
  g.commit(EXAMPLE, "base");
  g.edit("tools/access-diff.ts", (t) => t + "\n// reviewed\n");
  g.edit("components/scripts/account.ts", (t) => t + "\n// sudoers\n");
  g.edit("Pulumi.devvm.yaml", (t) => t.replace("workstations:adminSource: roster", "workstations:adminSource: config\n  workstations:admins: [emo]"));
  const d = accessDiff(["HEAD"], g.dir, {});
  assert.equal(d.code, 0, d.stderr);
  assert.deepEqual(repoFlags(d.stdout), [
    "  ! access tooling changed (tools/access-diff.ts): this diff and CI's roster check are the head's own code; review these files as access changes",
    "  ! program code changed (components/scripts/account.ts): how the plan is applied (accounts, sudoers, Forgejo, Vault, Kubernetes) is not shown per user",
    "  ! stack config changed (Pulumi.devvm.yaml): workstations:adminSource, workstations:admins",
  ]);
  // A comment in the stack file is no change.
  g.git("checkout", "-q", "--", ".");
  g.edit("Pulumi.devvm.yaml", (t) => t + "# reviewed\n");
  assert.deepEqual(accessDiff(["HEAD"], g.dir, {}), { code: 0, stdout: "", stderr: "" });
});

test("when a side's own planning code cannot run, it is planned with this checkout's code and the diff says so", () => {
  // A base whose planner throws.
  const g = repo();
  g.edit("components/plan.ts", (t) => t.replace(/^import /m, 'throw new Error("the base planner is broken");\nimport '));
  g.commit(EXAMPLE, "broken planner");
  g.git("checkout", "-q", "-b", "fix");
  fs.copyFileSync(path.join(ROOT, "components/plan.ts"), path.join(g.dir, "components/plan.ts"));
  const r = base();
  user(r, "emo").state = "suspended";
  g.write(r);
  const d = accessDiff(["master"], g.dir, {});
  assert.equal(d.code, 0, d.stderr);
  assert.ok(
    repoFlags(d.stdout).includes(
      "  ! the base's planning code could not run (exit 1: Error: the base planner is broken): the base was planned with this checkout's code, so a change to the planning code is not in the lines below",
    ),
    d.stdout,
  );
  assert.match(d.stdout, /^emo \(uid 2001\): suspended$/m);
  // A repository with a roster and no code at all: both sides.
  const bare = repo({ code: false });
  bare.commit(EXAMPLE, "base");
  bare.write(r);
  const b = accessDiff(["HEAD"], bare.dir, {}).stdout;
  for (const which of ["base", "head"])
    assert.ok(
      repoFlags(b).some((l) => l.startsWith(`  ! the ${which}'s planning code could not run (it has no tools/access-report.ts)`)),
      b,
    );
  assert.match(b, /^emo \(uid 2001\): suspended$/m);
});

test("CI's roster check checks the configured roster (workstations:roster), not only roster.yaml", () => {
  const g = repo();
  g.commit(EXAMPLE, "base");
  const bad = base();
  user(bad, "emo").uid = 2000; // a duplicate uid
  fs.writeFileSync(path.join(g.dir, "team.yaml"), YAML.stringify(bad));
  g.edit("Pulumi.devvm.yaml", (t) => t.replace("workstations:roster: roster.yaml", "workstations:roster: team.yaml"));
  // preview.yaml's roster-check step, as written, in the checkout (deploy.yaml runs the same step).
  const wf = YAML.parse(fs.readFileSync(path.join(ROOT, ".woodpecker/preview.yaml"), "utf8"));
  const step = wf.steps.find((s: { name: string }) => s.name === "roster-check");
  const run = spawnSync("bash", ["-ec", step.commands.join("\n")], { cwd: g.dir, encoding: "utf8", env: { ...process.env, npm_config_loglevel: "silent" } });
  assert.equal(run.status, 1, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stderr, /^team\.yaml:\d+:\d+: users\[1\]\.uid: expected a unique uid: 2000 is already used by users\[0\] \(viktor\)$/m);
  assert.match(run.stdout + run.stderr, /workstations:roster in Pulumi\.devvm\.yaml/);
  // With the key back on roster.yaml the same command checks (and passes) roster.yaml.
  g.git("checkout", "-q", "--", "Pulumi.devvm.yaml");
  const ok = spawnSync("bash", ["-ec", step.commands.join("\n")], { cwd: g.dir, encoding: "utf8" });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^roster\.yaml: ok \(5 users: 3 active, 1 suspended, 1 offboarded\)/m);
});

// ---- whose Forgejo token (issue 19, item 5) ----

test("the Forgejo grant says whose access token it is, and a forgejoEmail exception is flagged", () => {
  const key = sshKey("alice@example");
  const on = diffOf((r) => r.users.push({ name: "alice", uid: 2010, role: "power-user", email: "alice@example.com", forgejo: "alice", sshKeys: [key] }));
  assert.ok(on.out.split("\n").includes("  + forgejo: access token of alice in ~/.git-credentials"), on.out);
  const moved = diffOf((r) => (user(r, "emo").forgejo = "viktor2")).out.split("\n");
  for (const l of [
    "  ~ Forgejo user ebarzin → viktor2",
    "  - forgejo: access token of ebarzin in ~/.git-credentials",
    "  + forgejo: access token of viktor2 in ~/.git-credentials",
  ])
    assert.ok(moved.includes(l), `missing ${l}\n${moved.join("\n")}`);
  const ex = diffOf((r) => (user(r, "emo").forgejoEmail = "emo@contractor.example"));
  assert.equal(ex.code, 0, ex.err);
  assert.equal(
    ex.out.split("\n").slice(1).join("\n"),
    [
      "emo (uid 2001)",
      "  ! forgejoEmail exception: the Forgejo login ebarzin is checked against emo@contractor.example, not emo's email emo@example.com; confirm that account is emo's",
      "  - forgejo: access token of ebarzin in ~/.git-credentials",
      "  + forgejo: access token of ebarzin (account email emo@contractor.example: the roster's forgejoEmail exception) in ~/.git-credentials",
    ].join("\n"),
  );
  const report = formatReport(planRoster(parseRoster(EXAMPLE, "roster.yaml").roster!));
  assert.match(report, /^ {2}forgejo: {4}ebarzin: write on infra, master push whitelist, merge whitelist; access token of ebarzin in ~\/\.git-credentials$/m);
});
