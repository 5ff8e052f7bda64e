/**
 * `adopt` (issue 19 item 4): an existing account this program did not create is taken over
 * only when its roster entry says so. The host side (account-apply refuses, in one line,
 * and changes nothing) is tested on the real host in tests/host/cut.host.test.ts; here: the
 * schema's default, the plan and the account verb's parameter, and the access diff's line.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as YAML from "yaml";
import { planRoster } from "../../components/plan";
import { parseRoster } from "../../components/roster/load";
import { accountApplyParams } from "../../components/scripts/account";
import { diffPlans, formatDiff } from "../../tools/access-diff";

const ADMIN = {
  name: "viktor",
  uid: 2000,
  role: "admin",
  email: "viktor@example.com",
  forgejo: "viktor",
  sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPh0RB7kWL7cA1TpA3SjC6GuvWkfglADuzK5d5Ri7UvQ viktor@example"],
};
const roster = (adopt?: boolean, tighten?: boolean) =>
  YAML.stringify({
    version: 1,
    users: [
      ADMIN,
      {
        name: "wiz",
        uid: 2130,
        role: "power-user",
        email: "wiz@example.com",
        forgejo: "wiz",
        groups: ["video"],
        ...(adopt === undefined ? {} : { adopt }),
        ...(tighten === undefined ? {} : { tighten }),
      },
    ],
  });
const plan = (text: string) => {
  const r = parseRoster(text, "roster.yaml");
  if (!r.roster) throw new Error(JSON.stringify(r.problems));
  return planRoster(r.roster);
};

test("adopt defaults to false; the plan and account-apply carry it", () => {
  const off = plan(roster()).users[1];
  assert.equal(off.adopt, false);
  assert.equal(accountApplyParams(off).ADOPT, false);
  const on = plan(roster(true)).users[1];
  assert.equal(on.adopt, true);
  assert.equal(accountApplyParams(on).ADOPT, true);
});

test("the access diff flags an adoption, and only when it starts", () => {
  const out = formatDiff(diffPlans(plan(roster()), plan(roster(true))));
  assert.match(out, /! adoption: the existing account wiz \(uid 2130\), which this program did not create, is taken over/);
  assert.doesNotMatch(formatDiff(diffPlans(plan(roster(true)), plan(roster(true)))), /adoption/);
  // a new entry that adopts is flagged too
  assert.match(formatDiff(diffPlans(plan(YAML.stringify({ version: 1, users: [ADMIN] })), plan(roster(true)))), /! adoption: the existing account wiz/);
});

test("tighten defaults to false; the access diff flags it when it starts, and says when it has no effect", () => {
  assert.equal(accountApplyParams(plan(roster(true)).users[1]).TIGHTEN, false);
  assert.equal(accountApplyParams(plan(roster(true, true)).users[1]).TIGHTEN, true);
  const out = formatDiff(diffPlans(plan(roster(true)), plan(roster(true, true))));
  assert.match(
    out,
    /! tighten: the adopted account wiz loses every supplementary group the roster does not name \(it keeps video, workstation-users\) and its home becomes 0750/,
  );
  assert.doesNotMatch(formatDiff(diffPlans(plan(roster(true, true)), plan(roster(true, true)))), /tighten/);
  assert.match(formatDiff(diffPlans(plan(roster(false)), plan(roster(false, true)))), /tighten: set, but the account is not adopted: it has no effect/);
  assert.doesNotMatch(formatDiff(diffPlans(plan(roster(false, true)), plan(roster(false, true)))), /tighten/);
});
