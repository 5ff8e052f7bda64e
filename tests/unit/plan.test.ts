import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fc from "fast-check";
import * as YAML from "yaml";
import { DEFAULT_PROFILES, planRoster, USERS_GROUP } from "../../components/plan";
import { parseRoster } from "../../components/roster/load";
import { Roster } from "../../components/roster/schema";
import { readExampleRoster } from "../../dev/mocks";
import { ed25519Key } from "../../dev/sshkeys";

const example = () => parseRoster(readExampleRoster(), "roster.example.yaml").roster!;
// One key per generated user: a roster refuses the same key on two users.
const KEYS = Array.from({ length: 30 }, (_, i) => ed25519Key(`u${i}@gen`));

test("plan of the example roster: roles map to the SPEC §2 grants", () => {
  const plan = planRoster(example());
  const by = Object.fromEntries(plan.users.map((u) => [u.name, u]));
  assert.deepEqual(Object.keys(by).sort(), ["emo", "nadia", "sam", "viktor"]);
  assert.equal(by.viktor.grants.sudo, true);
  assert.equal(by.viktor.grants.forgejo?.siteAdmin, true);
  assert.equal(by.viktor.grants.kube?.tier, "cluster-admin");
  assert.equal(by.viktor.grants.kube?.clusterAdmin, true);
  assert.equal(by.emo.grants.sudo, false);
  assert.equal(by.emo.grants.forgejo?.permission, "write");
  assert.equal(by.emo.grants.forgejo?.pushWhitelist, true, "emo's override puts him on the push whitelist");
  assert.equal(by.nadia.grants.kube?.tier, "namespace");
  assert.deepEqual(by.nadia.namespaces, ["nadia-apps"]);
  assert.deepEqual(by.nadia.grants.kube?.namespaceAdmin, ["nadia-apps"]);
  assert.equal(by.nadia.grants.kube?.defaultNamespace, "nadia-apps");
  assert.equal(by.nadia.grants.kube?.dashboardNav, true);
  assert.equal(by.sam.state, "suspended");
  assert.deepEqual(by.sam.grants.timers, [], "suspended users get no timers");
  assert.equal(by.sam.grants.linger, false);
  assert.deepEqual(plan.branchProtection.pushWhitelist, ["ebarzin", "viktor"]);
  assert.deepEqual(
    plan.offboarded.map((o) => o.name),
    ["olga"],
  );
  assert.deepEqual(plan.reservedUids, [2000, 2001, 2002, 2003, 2004]);
  assert.deepEqual(plan.admins, ["viktor"]);
  for (const u of plan.users) assert.ok(u.groups.includes(USERS_GROUP));
});

test("overrides beat role defaults, and unset overrides keep them", () => {
  const r = example();
  const emo = r.users.find((u) => u.name === "emo")!;
  emo.overrides = { sudo: true, tmuxPersist: false };
  const p = planRoster(r).users.find((u) => u.name === "emo")!;
  assert.equal(p.grants.sudo, true);
  assert.equal(p.grants.tmuxPersist, false);
  assert.equal(p.grants.forgejo?.permission, DEFAULT_PROFILES["power-user"].forgejoPermission);
  assert.equal(p.grants.forgejo?.pushWhitelist, false);
});

// ---- property tests over generated valid rosters ----
const role = fc.constantFrom("admin", "power-user", "namespace-owner" as const);
const state = fc.constantFrom("active", "suspended", "offboarded" as const);
const rosterArb: fc.Arbitrary<Roster> = fc
  .uniqueArray(
    fc.record({
      role,
      state,
      wl: fc.boolean(),
      perm: fc.constantFrom(undefined, "none", "read", "write", "admin" as const),
      nsCount: fc.integer({ min: 1, max: 3 }),
    }),
    { minLength: 1, maxLength: 30, selector: () => Math.random() },
  )
  .chain((entries) =>
    fc
      .shuffledSubarray(
        Array.from({ length: 500 }, (_, i) => 1000 + i * 7),
        { minLength: entries.length, maxLength: entries.length },
      )
      .map((uids) => {
        const users = entries.map((e, i) => {
          const perm = e.perm ?? (e.role === "namespace-owner" ? "read" : undefined);
          const canWl = perm === undefined ? e.role !== "namespace-owner" : perm === "write" || perm === "admin";
          return {
            name: `u${i}`,
            uid: uids[i],
            role: e.role,
            email: `u${i}@example.com`,
            forgejo: `F${i}`,
            sshKeys: [KEYS[i]],
            shell: "/bin/bash" as const,
            codeLayout: "single" as const,
            repos: [],
            groups: [],
            namespaces: e.role === "namespace-owner" ? Array.from({ length: e.nsCount }, (_, j) => `ns-${i}-${j}`) : [],
            overrides: { ...(e.perm ? { forgejoPermission: e.perm } : {}), ...(e.wl && canWl ? { pushWhitelist: true, mergeWhitelist: true } : {}) },
            state: e.state,
            credentialRotation: 0,
            adopt: false,
            tighten: false,
            limits: {},
          };
        });
        users[0] = { ...users[0], role: "admin", state: "active", namespaces: [], overrides: {} };
        return { version: 1 as const, users };
      }),
  );

test("property: generated rosters validate and their plans keep the invariants", () => {
  fc.assert(
    fc.property(rosterArb, (roster) => {
      const parsed = parseRoster(YAML.stringify(roster), "gen.yaml");
      assert.ok(parsed.roster, JSON.stringify(parsed.problems));
      const plan = planRoster(parsed.roster!);
      // unique uids (planned users and reserved)
      assert.equal(new Set(plan.reservedUids).size, plan.reservedUids.length);
      assert.equal(new Set(plan.users.map((u) => u.uid)).size, plan.users.length);
      // every namespace has exactly one owner, and that owner lists it
      const owners = new Map<string, string[]>();
      for (const u of plan.users) for (const ns of u.namespaces) owners.set(ns, [...(owners.get(ns) ?? []), u.name]);
      for (const [ns, os] of owners) {
        assert.equal(os.length, 1, `${ns} owners ${os}`);
        assert.equal(plan.namespaces[ns], os[0]);
      }
      // whitelist members are write collaborators and active
      for (const f of [...plan.branchProtection.pushWhitelist, ...plan.branchProtection.mergeWhitelist]) {
        const u = plan.users.find((x) => x.forgejoUser === f)!;
        assert.ok(u, `whitelisted ${f} is a planned user`);
        assert.ok(u.grants.forgejo?.permission === "write" || u.grants.forgejo?.permission === "admin", `${f} is a collaborator with write`);
        assert.equal(u.state, "active");
      }
      // offboarded users get nothing planned
      const off = roster.users.filter((u) => u.state === "offboarded").map((u) => u.name);
      assert.deepEqual(
        plan.users.filter((u) => off.includes(u.name)),
        [],
      );
      // suspended users hold nothing: the grants are the cut; active users hold their profile
      for (const u of plan.users) {
        const g = u.grants;
        if (u.state === "suspended") {
          // every grant, including any added later, is off: false, empty or null
          for (const [k, v] of Object.entries(g))
            assert.ok(v === false || v === null || (Array.isArray(v) && v.length === 0), `${u.name}: suspended but ${k} = ${JSON.stringify(v)}`);
          assert.ok(Object.keys(g).length >= 10, "the grants were checked");
          continue;
        }
        assert.equal(g.login, true);
        assert.equal(g.sudo, u.profile.sudo);
        assert.equal(g.forgejo?.permission ?? "none", u.profile.forgejoPermission);
        assert.equal(g.kube?.tier ?? "none", u.profile.kubeTier);
        assert.deepEqual(g.kube?.namespaceAdmin ?? [], u.profile.kubeTier === "none" ? [] : u.namespaces);
        assert.equal(!!g.vault, u.profile.claudeTokenRenew);
        assert.equal(g.timers.includes(`workstations-refresh-clone@${u.name}.timer`), !!g.forgejo, "the clone's refresh timer iff Forgejo access");
        assert.equal(g.linger, g.tmuxPersist || g.claudeTokenRenew);
      }
      // planning is deterministic
      assert.deepEqual(planRoster(parsed.roster!), plan);
    }),
    { numRuns: 150 },
  );
});

test("property: any duplicated uid or name in a valid roster is rejected at the duplicate", () => {
  fc.assert(
    fc.property(
      rosterArb.filter((r) => r.users.length >= 2),
      fc.nat(),
      fc.constantFrom("uid", "name" as const),
      (roster, k, field) => {
        const i = 1 + (k % (roster.users.length - 1));
        const users = roster.users.map((u) => ({ ...u }));
        (users[i] as any)[field] = users[0][field];
        const r = parseRoster(YAML.stringify({ ...roster, users }), "dup.yaml");
        assert.ok(!r.roster);
        assert.ok(
          r.problems.some((p) => p.path === `users[${i}].${field}` && /unique/.test(p.message)),
          JSON.stringify(r.problems),
        );
      },
    ),
    { numRuns: 100 },
  );
});
