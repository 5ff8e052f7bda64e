/**
 * Restricted keys in the roster (issue 21 item 2): a key line may carry exactly one options
 * field, `restrict,command="…"` (a forced command, every other permission off); anything else
 * is refused at its file:line:col. Such a key is no way back into the host (the "an active user
 * with sudo and an ssh key" rule does not count it), is the same key as its bare form for the
 * one-user-per-key rule, and the access report names its command. The real sshd honouring it:
 * tests/host/cut.host.test.ts.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as YAML from "yaml";
import { planRoster } from "../../components/plan";
import { parseRoster } from "../../components/roster/load";
import { isRestrictedKey, splitKeyOptions } from "../../components/roster/schema";
import { keyLabel } from "../../tools/access-report";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPh0RB7kWL7cA1TpA3SjC6GuvWkfglADuzK5d5Ri7UvQ viktor@example";
const KEY2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOClLW8eqAnuysmY3rHF9jyfP+D4orY+MBV5ORgkOZXz w0@gen";
const forced = (cmd: string, key = KEY) => `restrict,command="${cmd}" ${key}`;

const roster = (users: Array<Record<string, unknown>>) =>
  YAML.stringify({
    version: 1,
    users: users.map((u, i) => ({ name: `u${i}`, uid: 2000 + i, role: "admin", email: `u${i}@example.com`, forgejo: `u${i}`, ...u })),
  });
const problems = (text: string) => parseRoster(text, "roster.yaml").problems.map((p) => `${p.line}:${p.col} ${p.message}`);

test("a forced-command key is accepted in exactly one form; every other option is refused in words", () => {
  assert.deepEqual(splitKeyOptions(KEY), { key: KEY });
  assert.deepEqual(splitKeyOptions(forced("/usr/local/bin/ws-deploy --stack devvm")), { key: KEY, command: "/usr/local/bin/ws-deploy --stack devvm" });
  assert.ok(isRestrictedKey(forced("/usr/bin/id -un")) && !isRestrictedKey(KEY));
  for (const [line, why] of [
    [`command="/usr/bin/id" ${KEY}`, /optionally after exactly restrict,command=/],
    [`restrict ${KEY}`, /optionally after exactly restrict,command=/],
    [`no-pty ${KEY}`, /optionally after exactly restrict,command=/],
    [`command="/usr/bin/id",restrict ${KEY}`, /optionally after exactly restrict,command=/],
    [`restrict,from="10.0.0.1",command="/usr/bin/id" ${KEY}`, /optionally after exactly restrict,command=/],
    [`restrict,command="/usr/bin/id",permitopen="localhost:22" ${KEY}`, /optionally after exactly restrict,command=/],
    [forced("/bin/sh -c id; bash"), /a forced command that is an absolute program with plain arguments/],
    [forced("/usr/bin/env $(id)"), /a forced command that is an absolute program/],
    [forced("id -un"), /a forced command that is an absolute program/],
    [`restrict,command="/usr/bin/id \\"x\\"" ${KEY}`, /optionally after exactly|a forced command/],
  ] as const) {
    const r = splitKeyOptions(line);
    assert.ok("problem" in r, `${line} was accepted`);
    assert.match(r.problem, why, line);
    assert.ok(
      problems(roster([{ sshKeys: [line] }])).some((p) => /^\d+:\d+ /.test(p)),
      `${line}: refused at a position`,
    );
  }
  assert.deepEqual(problems(roster([{ sshKeys: [KEY, forced("/usr/bin/id -un", KEY2)] }])), []);
});

test("the same key with and without a forced command is one key: listed once, one user only", () => {
  assert.match(
    problems(roster([{ sshKeys: [KEY, forced("/usr/bin/id", KEY)] }])).join("\n"),
    /a key listed once: the same key is already users\[0\]\.sshKeys\[0\]/,
  );
  assert.match(
    problems(roster([{ sshKeys: [KEY] }, { role: "power-user", sshKeys: [forced("/usr/bin/id", KEY)] }])).join("\n"),
    /a key used by one user only: the same key is already users\[0\] \(u0\)/,
  );
});

test("a forced-command key is no way back in: an admin with only one is refused as having no key", () => {
  assert.match(
    problems(roster([{ sshKeys: [forced("/usr/bin/id")] }])).join("\n"),
    /an active user with sudo and an ssh key \(the only way back into the host\)/,
  );
  assert.deepEqual(problems(roster([{ sshKeys: [forced("/usr/bin/id"), KEY2] }])), []);
});

test("the plan delivers the line as written; the access report names the forced command", () => {
  const r = parseRoster(roster([{ sshKeys: [KEY2, forced("/usr/local/bin/ws-deploy --ci")] }]), "roster.yaml");
  const u = planRoster(r.roster!).users[0];
  assert.deepEqual(u.grants.sshKeys, [KEY2, forced("/usr/local/bin/ws-deploy --ci")]);
  assert.equal(
    keyLabel(forced("/usr/local/bin/ws-deploy --ci")),
    'ssh-ed25519 …d5Ri7UvQ "viktor@example" (forced command "/usr/local/bin/ws-deploy --ci", nothing else)',
  );
  assert.equal(keyLabel(KEY), 'ssh-ed25519 …d5Ri7UvQ "viktor@example"');
});
