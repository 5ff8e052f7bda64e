/**
 * Web access from the roster (issue 22): the SSO identity (`sso`), shown by the access report
 * and the access diff.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { planRoster } from "../../components/plan";
import { parseRoster } from "../../components/roster/load";
import { readExampleRoster } from "../../dev/mocks";
import { diffPlans, formatDiff } from "../../tools/access-diff";
import { formatReport } from "../../tools/access-report";

const KEY = readExampleRoster().match(/ssh-ed25519 \S+/)![0];
const roster = (extra = "", admin = "") => `version: 1
users:
  - name: viktor
    uid: 2000
    role: admin
    email: viktor@example.com
    forgejo: viktor
    sshKeys: ["${KEY} viktor@laptop"]
${admin}${extra}`;
const user = (name: string, uid: number, more = "") => `  - {name: ${name}, uid: ${uid}, role: power-user, email: ${name}@x.io, forgejo: ${name}${more}}\n`;
const parse = (text: string) => parseRoster(text, "roster.yaml", { today: () => "2030-01-01" });
const plan = (text: string) => {
  const r = parse(text);
  assert.deepEqual(r.problems, [], "the roster is valid");
  return planRoster(r.roster!);
};
const problems = (text: string) => parse(text).problems.map((p) => `${p.line}:${p.col}: ${p.path}: ${p.message}`);

test("sso defaults to the name; an explicit one is kept", () => {
  const p = plan(roster(user("emo", 2001, ", sso: emo.b") + user("nadia", 2002)));
  assert.deepEqual(
    p.users.map((u) => [u.name, u.sso]),
    [
      ["viktor", "viktor"],
      ["emo", "emo.b"],
      ["nadia", "nadia"],
    ],
  );
});

test("sso: the checker refuses a duplicate (explicit or defaulted, any case), 30 bytes or more, and separators", () => {
  const cases: Array<[string, string, RegExp]> = [
    [
      "another's name",
      roster(user("emo", 2001, ", sso: viktor")),
      /^9:82: users\[1\]\.sso: .*unique SSO identity: "viktor" is already the name .* of users\[0\] \(viktor\)/,
    ],
    ["another's name, other case", roster(user("emo", 2001, ", sso: Viktor")), /users\[1\]\.sso: .*unique SSO identity: "Viktor"/],
    [
      "another's sso",
      roster(user("emo", 2001, ", sso: e") + user("nadia", 2002, ", sso: E")),
      /users\[2\]\.sso: .*unique SSO identity: "E" is already the sso of users\[1\] \(emo\)/,
    ],
    [
      "a name equal to another's sso",
      roster(user("emo", 2001, ", sso: nadia") + user("nadia", 2002)),
      /users\[2\]\.name: .*unique SSO identity: "nadia" .*; set sso/,
    ],
    ["30 bytes", roster(user("emo", 2001, `, sso: ${"e".repeat(30)}`)), /users\[1\]\.sso: .*under 30 bytes .*this one has 30/],
    ["an @", roster(user("emo", 2001, ", sso: emo@corp")), /users\[1\]\.sso: .*no '@'/],
    ["a colon", roster(user("emo", 2001, ", sso: 'emo:x'")), /users\[1\]\.sso: .*SSO username/],
    ["an equals sign", roster(user("emo", 2001, ", sso: 'emo=x'")), /users\[1\]\.sso: .*SSO username/],
    ["a leading dot", roster(user("emo", 2001, ", sso: .emo")), /users\[1\]\.sso: .*SSO username/],
    ["a long name without sso", roster(user("e".repeat(30), 2001)), /users\[1\]\.name: .*explicit sso for a name of 30 bytes/],
  ];
  for (const [what, text, re] of cases) {
    const got = problems(text);
    assert.ok(
      got.some((l) => re.test(l)),
      `${what}: expected a problem matching ${re}, got:\n${got.join("\n")}`,
    );
  }
  // At the limits: 29 bytes, and a 30-byte name with a short sso, are accepted.
  plan(roster(user("emo", 2001, `, sso: ${"e".repeat(29)}`)));
  plan(roster(user("e".repeat(30), 2001, ", sso: elong")));
  plan(roster(user("emo", 2001, ", sso: Emo_B-2.x")));
});

test("sso: an offboarded entry keeps its identity reserved", () => {
  const got = problems(roster(user("olga", 2001, ", state: offboarded") + user("emo", 2002, ", sso: olga")));
  assert.ok(
    got.some((l) => /users\[2\]\.sso: .*"olga" is already/.test(l)),
    got.join("\n"),
  );
});

test("the access report shows each user's SSO identity; the diff flags a change of it", () => {
  const base = plan(roster(user("emo", 2001) + user("sam", 2002, ", state: suspended")));
  const report = formatReport(base);
  assert.match(report, /^emo \(uid 2001.*\n(?: .*\n)*? {2}sso: {8}emo$/m);
  assert.match(report, /^ {2}sso: {8}sam \(suspended: mapped to nothing\)$/m);
  const head = plan(roster(user("emo", 2001, ", sso: emil") + user("sam", 2002, ", state: suspended")));
  const diff = formatDiff(diffPlans(base, head));
  assert.match(diff, /^emo \(uid 2001\)/m);
  assert.match(diff, /^ {2}! SSO identity emo → emil: whoever logs in to authentik as emil reaches emo's web terminal/m);
  assert.equal(formatDiff(diffPlans(base, base)), "", "no change, no line");
  // A base planned by older code has no sso: it was the name.
  const old = { ...base, users: base.users.map((u) => ({ ...u, sso: undefined as unknown as string })) };
  assert.doesNotMatch(formatDiff(diffPlans(old, base)), /SSO identity/);
});
