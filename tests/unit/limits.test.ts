/**
 * Limits as data (issue 23): role defaults, the roster's per-user limits over them, the
 * schema's refusals at file:line:col, and the capacity check's one-line messages with the
 * numbers. The drop-ins themselves are tested on a host (tests/host/limits.host.test.ts).
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import fc from "fast-check";
import * as YAML from "yaml";
import { planRoster } from "../../components/plan";
import { capacityProblems, DEFAULT_CAPACITY, DEFAULT_LIMITS, planLimits, sizeBytes } from "../../components/plan/limits";
import { parseRoster } from "../../components/roster/load";
import { limitsParams } from "../../components/scripts/limits";
import { parseHostFacts } from "../../components/capacity";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPh0RB7kWL7cA1TpA3SjC6GuvWkfglADuzK5d5Ri7UvQ viktor@example";
const ADMIN = { name: "viktor", uid: 2000, role: "admin", email: "viktor@example.com", forgejo: "viktor", sshKeys: [KEY] };
const GiB = 2 ** 30;
const facts = { host: "devvm", memoryBytes: 32 * GiB, cpus: 16 };

function parse(users: unknown[]) {
  return parseRoster(YAML.stringify({ version: 1, users: [ADMIN, ...users] }), "roster.yaml");
}

test("role defaults, and the roster's limits over them; suspended users keep theirs", () => {
  const r = parse([
    { name: "emo", uid: 2001, role: "power-user", email: "emo@example.com", forgejo: "emo", limits: { memoryMax: "8G", cpuQuota: "200%" } },
    { name: "sam", uid: 2003, role: "namespace-owner", email: "sam@example.com", forgejo: "sam", state: "suspended", namespaces: ["sam-lab"] },
  ]);
  assert.ok(r.roster, JSON.stringify(r.problems));
  const [viktor, emo, sam] = planRoster(r.roster).users;
  assert.deepEqual(viktor.limits, DEFAULT_LIMITS.admin);
  assert.deepEqual(emo.limits, { ...DEFAULT_LIMITS["power-user"], memoryMax: "8G", cpuQuota: "200%" });
  assert.deepEqual(sam.limits, DEFAULT_LIMITS["namespace-owner"]);
  assert.deepEqual(limitsParams(emo), {
    NAME: "emo",
    UID_: 2001,
    MEMORY_MAX: "8G",
    SWAP_MAX: "0",
    CPU_WEIGHT: 100,
    CPU_QUOTA: "200%",
    TASKS_MAX: 4096,
    PANE_MEMORY_MAX: "15%",
  });
});

test("bad limits are refused at their file:line:col", () => {
  for (const [limits, field] of [
    [{ memoryMax: "8 G" }, "memoryMax"],
    [{ memoryMax: "150%" }, "memoryMax"],
    [{ swapMax: "-1" }, "swapMax"],
    [{ cpuWeight: 0 }, "cpuWeight"],
    [{ cpuQuota: "2" }, "cpuQuota"],
    [{ tasksMax: 10 }, "tasksMax"],
    [{ paneMemoryMax: "1E" }, "paneMemoryMax"],
    [{ memorymax: "8G" }, "limits"],
  ] as const) {
    const r = parse([{ name: "emo", uid: 2001, role: "power-user", email: "emo@example.com", forgejo: "emo", limits }]);
    assert.equal(r.roster, undefined, JSON.stringify(limits));
    assert.ok(
      r.problems.some((p) => p.path.includes(field) && p.file === "roster.yaml" && p.line > 0),
      `${JSON.stringify(limits)}: ${JSON.stringify(r.problems)}`,
    );
  }
});

test("sizes: suffixes are powers of 1024, percentages are of the host's RAM", () => {
  assert.equal(sizeBytes("8G", 0), 8 * GiB);
  assert.equal(sizeBytes("512M", 0), 512 * 2 ** 20);
  assert.equal(sizeBytes("25%", 32 * GiB), 8 * GiB);
  assert.equal(sizeBytes("0", 32 * GiB), 0);
  assert.deepEqual(parseHostFacts("devvm 34359738368 16\n"), facts);
  assert.throws(() => parseHostFacts("devvm 32G"), /unexpected output/);
});

test("the capacity check: one line per problem, naming the numbers and by how much", () => {
  const u = (name: string, memoryMax: string, more: object = {}) => ({ name, active: true, limits: { ...DEFAULT_LIMITS["power-user"], memoryMax, ...more } });
  assert.deepEqual(capacityProblems([u("a", "12G"), u("b", "12G"), u("c", "14G")], facts), []);
  const over = capacityProblems([u("a", "16G"), u("b", "14G"), u("c", "5G")], facts);
  assert.equal(over.length, 1);
  assert.equal(
    over[0],
    "capacity: the memory maxima of the 2 user(s) who may be active at once (a 16G, b 14G) sum to 30.0 GiB, over 90% of devvm's 32.0 GiB RAM (28.8 GiB) by 1.2 GiB; lower limits.memoryMax in the roster, or raise workstations:capacity (memoryShare, concurrentUsers)",
  );
  // every active user at once: the team's 24G each on 32G fails by far
  const team = ["a", "b", "c", "d"].map((n) => u(n, "24G"));
  assert.match(capacityProblems(team, facts, { memoryShare: 0.9 })[0], /4 user\(s\).* sum to 96\.0 GiB, over .* by 67\.2 GiB/);
  assert.deepEqual(capacityProblems(team, facts, { memoryShare: 0.9, concurrentUsers: 1 }), []);
  // suspended users are not active at once
  assert.deepEqual(capacityProblems([u("a", "20G"), { ...u("b", "20G"), active: false }], facts), []);
  assert.match(capacityProblems([u("a", "30G")], facts, { memoryShare: 0.9, concurrentUsers: 1 }).join("\n"), /a's memoryMax 30G \(30\.0 GiB\) is over 90%/);
  assert.match(capacityProblems([u("a", "8G", { paneMemoryMax: "10G" })], facts).join("\n"), /a's paneMemoryMax 10G \(10\.0 GiB\) is over their memoryMax 8G/);
  assert.match(capacityProblems([u("a", "8G", { cpuQuota: "1700%" })], facts).join("\n"), /a's cpuQuota 1700% is over devvm's 16 CPU\(s\) \(1600%\)/);
});

test("property: any roster of role defaults holds under the default capacity, on any host", () => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom("admin", "power-user", "namespace-owner"), { minLength: 1, maxLength: 300 }),
      fc.integer({ min: 1, max: 1024 }),
      fc.integer({ min: 1, max: 256 }),
      (roles, gib, cpus) => {
        const users = roles.map((role, i) => ({ name: `u${i}`, active: true, limits: planLimits(role, {}) }));
        return capacityProblems(users, { host: "h", memoryBytes: gib * GiB, cpus }, DEFAULT_CAPACITY).length === 0;
      },
    ),
  );
});
