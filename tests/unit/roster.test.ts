import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseRoster } from "../../components/roster/load";
import { PROJECT_DIR, readExampleRoster } from "../../dev/mocks";
import { tempDir } from "../../dev/tmp";

const KEY = readExampleRoster().match(/ssh-ed25519 \S+/)![0];
const base = (extra = "") => `version: 1
users:
  - name: viktor
    uid: 2000
    role: admin
    email: viktor@example.com
    forgejo: viktor
    sshKeys: ["${KEY} viktor@laptop"]
${extra}`;

/** Each case: a roster, and the expected [line, col, path, message regexp] of (one of) its problems. */
const INVALID: Array<[string, string, [number, number, string, RegExp]]> = [
  ["duplicate name", base(`  - {name: viktor, uid: 2001, role: power-user, email: b@x.io, forgejo: b}\n`), [9, 12, "users[1].name", /unique name/]],
  ["duplicate uid", base(`  - {name: bob, uid: 2000, role: power-user, email: b@x.io, forgejo: b}\n`), [9, 22, "users[1].uid", /unique uid/]],
  [
    "duplicate forgejo user (case-insensitive)",
    base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: Viktor}\n`),
    [9, 70, "users[1].forgejo", /unique forgejo/],
  ],
  ["duplicate email", base(`  - {name: bob, uid: 2001, role: power-user, email: viktor@example.com, forgejo: b}\n`), [9, 53, "users[1].email", /unique email/]],
  ["invalid unix name", base(`  - {name: Bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b}\n`), [9, 12, "users[1].name", /unix name/]],
  ["name with a dot", base(`  - {name: bo.b, uid: 2001, role: power-user, email: b@x.io, forgejo: b}\n`), [9, 12, "users[1].name", /unix name/]],
  ["reserved name root", base(`  - {name: root, uid: 2001, role: power-user, email: b@x.io, forgejo: b}\n`), [9, 12, "users[1].name", /not reserved/]],
  ["reserved name nobody", base(`  - {name: nobody, uid: 2001, role: power-user, email: b@x.io, forgejo: b}\n`), [9, 12, "users[1].name", /not reserved/]],
  ["system uid", base(`  - {name: bob, uid: 999, role: power-user, email: b@x.io, forgejo: b}\n`), [9, 22, "users[1].uid", /at least 1000/]],
  [
    "uid in the reserved top range",
    base(`  - {name: bob, uid: 65534, role: power-user, email: b@x.io, forgejo: b}\n`),
    [9, 22, "users[1].uid", /at most 59999/],
  ],
  ["uid as a string", base(`  - {name: bob, uid: "2001", role: power-user, email: b@x.io, forgejo: b}\n`), [9, 22, "users[1].uid", /expected number/]],
  ["fractional uid", base(`  - {name: bob, uid: 2001.5, role: power-user, email: b@x.io, forgejo: b}\n`), [9, 22, "users[1].uid", /an integer/]],
  ["unknown role", base(`  - {name: bob, uid: 2001, role: superuser, email: b@x.io, forgejo: b}\n`), [9, 34, "users[1].role", /one of "admin"/]],
  [
    "namespace-owner without namespace",
    base(`  - {name: bob, uid: 2001, role: namespace-owner, email: b@x.io, forgejo: b}\n`),
    [9, 5, "users[1].namespaces", /at least one namespace/],
  ],
  [
    "two owners of one namespace",
    base(
      `  - {name: bob, uid: 2001, role: namespace-owner, email: b@x.io, forgejo: b, namespaces: [lab]}\n  - {name: eve, uid: 2002, role: namespace-owner, email: e@x.io, forgejo: e, namespaces: [lab]}\n`,
    ),
    [10, 91, "users[2].namespaces[0]", /already owned by bob/],
  ],
  [
    "system namespace",
    base(`  - {name: bob, uid: 2001, role: namespace-owner, email: b@x.io, forgejo: b, namespaces: [kube-system]}\n`),
    [9, 91, "users[1].namespaces[0]", /system namespace/],
  ],
  [
    "namespaces on a power-user",
    base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b, namespaces: [lab]}\n`),
    [9, 85, "users[1].namespaces", /only namespace-owners/],
  ],
  ["unknown top-level key", base().replace("version: 1", "version: 1\nextra: true"), [2, 1, "extra", /unknown key/]],
  ["unknown user key", base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b, sudo: true}\n`), [9, 73, "users[1].sudo", /unknown key/]],
  [
    "unknown override key",
    base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b, overrides: {root: true}}\n`),
    [9, 85, "users[1].overrides.root", /unknown key/],
  ],
  ["bad email", base(`  - {name: bob, uid: 2001, role: power-user, email: not-an-email, forgejo: b}\n`), [9, 53, "users[1].email", /email/]],
  [
    "bad ssh key",
    base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b, sshKeys: ["ssh-ed25519 AAAAB3NzaC1yc2E= bob"]}\n`),
    [9, 83, "users[1].sshKeys[0]", /OpenSSH public key/],
  ],
  ["bad state", base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b, state: gone}\n`), [9, 80, "users[1].state", /one of "active"/]],
  ["wrong version", base().replace("version: 1", "version: 2"), [1, 10, "version", /expected/]],
  ["users not a list", "version: 1\nusers: {viktor: 1}\n", [2, 8, "users", /expected array/]],
  ["missing required field", base(`  - {name: bob, uid: 2001, role: power-user, forgejo: b}\n`), [9, 5, "users[1].email", /expected/]],
  [
    "YAML alias bomb",
    `version: 1\na: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nusers: [*c]\n`,
    [3, 8, "", /alias/],
  ],
  ["YAML syntax error", "version: 1\nusers:\n  - name: [unclosed\n", [4, 1, "", /YAML/]],
  ["duplicate YAML key", base().replace("    uid: 2000", "    uid: 2000\n    uid: 2001"), [5, 5, "", /YAML DUPLICATE_KEY/]],
  [
    "purge without offboarding",
    base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b, purge: {approvedBy: viktor, approvedOn: "2026-01-01"}}\n`),
    [9, 80, "users[1].purge", /unless state is offboarded/],
  ],
  [
    "purge approved by a non-admin",
    base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b, state: offboarded, purge: {approvedBy: bob, approvedOn: "2026-01-01"}}\n`),
    [9, 112, "users[1].purge.approvedBy", /active admin/],
  ],
  [
    "whitelist without write",
    base(`  - {name: bob, uid: 2001, role: namespace-owner, email: b@x.io, forgejo: b, namespaces: [lab], overrides: {pushWhitelist: true}}\n`),
    [9, 108, "users[1].overrides", /write or admin/],
  ],
  [
    "setup-token without the agent that delivers it",
    base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b, overrides: {claudeTokenRenew: false, claudeLogin: setup-token}}\n`),
    [9, 123, "users[1].overrides.claudeLogin", /claudeTokenRenew for setup-token \(its agent delivers the token\)/],
  ],
  [
    "privileged extra group",
    base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b, groups: [sudo]}\n`),
    [9, 82, "users[1].groups[0]", /allowed group: sudo is a system group/],
  ],
  [
    "repos without the workspace layout",
    base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b, repos: [team/tools]}\n`),
    [9, 80, "users[1].repos", /no repos unless codeLayout is workspace/],
  ],
  [
    "a further repo named infra",
    base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b, codeLayout: workspace, repos: [team/infra]}\n`),
    [9, 104, "users[1].repos[0]", /not named infra/],
  ],
  [
    "two further repos of one name (case-insensitive)",
    base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b, codeLayout: workspace, repos: [a/tools, b/Tools]}\n`),
    [9, 113, "users[1].repos[1]", /one repo per name: ~\/code\/tools is already repos\[0\]/],
  ],
  [
    "a further repo that is no owner/name",
    base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b, codeLayout: workspace, repos: [tools.git]}\n`),
    [9, 104, "users[1].repos[0]", /a Forgejo repository owner\/name/],
  ],
  [
    "an unknown code layout",
    base(`  - {name: bob, uid: 2001, role: power-user, email: b@x.io, forgejo: b, codeLayout: nested}\n`),
    [9, 85, "users[1].codeLayout", /"single", "workspace"/],
  ],
  ["no active admin", base().replace("role: admin", "role: power-user"), [3, 3, "users", /at least one active admin/]],
  ["empty file", "", [1, 1, "", /expected object/]],
];

test(`${INVALID.length} invalid rosters are rejected with the right position`, () => {
  assert.ok(INVALID.length >= 20);
  for (const [what, text, [line, col, p, re]] of INVALID) {
    const r = parseRoster(text, "r.yaml");
    assert.ok(!r.roster, `${what}: must be rejected`);
    const hit = r.problems.find((x) => x.path === p && re.test(x.message));
    assert.ok(hit, `${what}: expected a problem at ${p} matching ${re}; got ${JSON.stringify(r.problems)}`);
    assert.deepEqual([hit!.line, hit!.col], [line, col], `${what}: position of ${p}`);
  }
});

test("every problem is reported at once", () => {
  const text = base(`  - {name: Bob, uid: 10, role: x, email: y, forgejo: "-", extra: 1}\n`);
  const r = parseRoster(text, "r.yaml");
  const paths = r.problems.map((p) => p.path).sort();
  assert.deepEqual(paths, ["users[1].email", "users[1].extra", "users[1].forgejo", "users[1].name", "users[1].role", "users[1].uid"]);
});

test("the example roster is valid and has all three roles", () => {
  const r = parseRoster(readExampleRoster(), "roster.example.yaml");
  assert.ok(r.roster, JSON.stringify(r.problems));
  assert.deepEqual(new Set(r.roster!.users.map((u) => u.role)), new Set(["admin", "power-user", "namespace-owner"]));
});

test("npm run roster:check: exit 0 when valid, one line per problem and exit 1 when not", () => {
  const tool = path.join(PROJECT_DIR, "tools/roster-check.ts");
  const run = (f: string) => spawnSync(process.execPath, ["--require", "ts-node/register/transpile-only", tool, f], { cwd: PROJECT_DIR, encoding: "utf8" });
  const ok = run(path.join(PROJECT_DIR, "roster.example.yaml"));
  assert.equal(ok.status, 0, ok.stderr);
  const bad = path.join(tempDir("ws-roster-"), "bad.yaml");
  fs.writeFileSync(bad, base(`  - {name: Bob, uid: 10, role: x, email: b@x.io, forgejo: b}\n`));
  const r = run(bad);
  assert.equal(r.status, 1);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 3, r.stderr);
  for (const l of lines) assert.match(l, new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:\\d+:\\d+: users\\[1\\]\\.\\w+: `));
  void execFileSync;
});
