// The decisions of one claude-token-renew run, without I/O: scripts/agents/token/decide.mjs
// against the table "What one run decides" in docs/CONTRACTS.md, one test per row, plus
// property-style checks of the ordering and backoff rules. `drive` plays the executor: it
// answers decide's questions from a script and collects what the pass does.
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import path from "node:path";
import { REPO } from "../../dev/token";

// a real dynamic import (ts-node would turn `import()` into require() of an ES module)
const load = new Function("p", "return import(p)") as (p: string) => Promise<any>;
let D: any;
let EXIT: Record<string, number>;
before(async () => {
  D = await load(path.join(REPO, "scripts", "agents", "token", "decide.mjs"));
  EXIT = (await load(path.join(REPO, "scripts", "agents", "token", "core.mjs"))).EXIT;
});

const NOW = Date.UTC(2025, 0, 10, 12);
const H = 3_600_000;
const sha = (s: string) => crypto.createHash("sha256").update(s).digest("hex");
interface Login {
  refreshHash: string;
  accessHash: string;
  expiresAt: number;
  refreshTokenExpiresAt?: number | null;
}
const login = (name: string, expiresIn = 8 * H, deadlineIn: number | null = 30 * 24 * H): Login => ({
  refreshHash: sha(`r-${name}`),
  accessHash: sha(`a-${name}`),
  expiresAt: NOW + expiresIn,
  refreshTokenExpiresAt: deadlineIn === null ? null : NOW + deadlineIn,
});
const EMAIL = "emo@example.com";
const CFG = {
  email: EMAIL,
  credFile: "/home/emo/.claude/.credentials.json",
  refreshMarginMs: H,
  backoffBaseMs: 300_000,
  backoffMaxMs: 7_200_000,
  loginDeadlineWarnMs: 3 * 24 * H,
};
const state = (o: Record<string, unknown> = {}) => ({ history: [] as string[], deadRefreshHash: null, backoff: null, verified: null, mismatch: null, ...o });
const meta = (l: Login | null, o: Record<string, unknown> = {}) => ({
  version: 3,
  deleted: false,
  hash: l ? l.refreshHash : null,
  expiresAt: l ? l.expiresAt : null,
  ...o,
});
const verifiedFor = (l: Login) => ({ refreshHash: l.refreshHash, accessHash: l.accessHash, email: EMAIL, at: new Date(NOW).toISOString() });

interface Script {
  local: { kind: string; login: Login | null; reason?: string; error?: string };
  vault: { status: "ok" | "down" | "denied"; meta: any };
  state?: any;
  /** the Vault copy read for a restore (login null = missing/incomplete), or 'error' */
  copy?: { login: Login | null; email: string | null; version: number } | "error";
  /** the profile endpoint's answers, in order */
  profile?: any[];
  /** the token endpoint's answer, and the login it gives */
  refresh?: { ok: true; login: Login } | { ok: false; kind: string; detail: string; retryAfterMs?: number };
  config?: Partial<typeof CFG>;
}
/** Plays one locked pass: every action decide asks for, answered from the script. */
function drive(s: Script) {
  const st = structuredClone(s.state ?? state());
  const cfg = { ...CFG, ...(s.config ?? {}) };
  let local: any = { ...s.local };
  const vault: any = { ...s.vault };
  const profiles = [...(s.profile ?? [])];
  const done: any[] = [];
  const asked: string[] = [];
  for (let i = 0; i < 50; i++) {
    const acts = D.decide(local, vault, st, NOW, cfg);
    assert.ok(acts.length > 0);
    assert.ok(D.YIELDS.includes(acts[acts.length - 1].type), `the last action is a yield point: ${JSON.stringify(acts.at(-1))}`);
    for (const a of acts.slice(0, -1)) assert.ok(!D.YIELDS.includes(a.type), `a yield point only at the end: ${a.type}`);
    for (const a of acts) {
      done.push(a);
      switch (a.type) {
        case "seen":
          if (!st.history.includes(a.hash)) st.history.push(a.hash);
          break;
        case "clear-backoff":
          st.backoff = null;
          break;
        case "set-backoff":
          st.backoff = a.backoff;
          break;
        case "mark-dead":
          st.deadRefreshHash = a.hash;
          break;
        case "set-verified":
          st.verified = a.verified;
          break;
        case "set-mismatch":
          st.mismatch = a.mismatch;
          break;
        case "read-vault-copy":
          asked.push("read-vault-copy");
          assert.ok(s.copy, "decide read the Vault copy");
          vault.copy = s.copy === "error" ? { error: true } : s.copy;
          if (s.copy === "error") vault.status = "down";
          break;
        case "restore": {
          asked.push("restore");
          const c = vault.copy;
          local = { kind: "ok", login: c.login, synced: { push: false }, restored: true };
          break;
        }
        case "synced":
          local.synced = { push: a.push };
          break;
        case "check-identity":
          asked.push("check-identity");
          assert.ok(profiles.length, "decide asked the profile endpoint");
          local.profile = profiles.shift();
          break;
        case "identity":
          local.identity = a.identity;
          break;
        case "refresh":
          asked.push("refresh");
          assert.ok(s.refresh, "decide refreshed");
          local.refresh = s.refresh.ok ? { ok: true } : { ...s.refresh, at: NOW + 100, jitter: 0.5 };
          break;
        case "apply-refresh":
          asked.push("apply-refresh");
          assert.ok(s.refresh && s.refresh.ok);
          local = { kind: "ok", login: s.refresh.login, synced: local.synced, refreshed: { wasVerified: a.wasVerified, writeFailed: false } };
          break;
        case "end": {
          const raised = new Map(done.filter((x) => x.type === "raise").map((x) => [x.kind, x.detail]));
          const codes = new Set(done.filter((x) => x.type === "code").map((x) => x.code));
          if (vault.status === "denied") raised.set("vault-denied", "denied");
          if (vault.status === "down") codes.add(D.CODE.TRANSIENT);
          return {
            end: a,
            asked,
            done,
            state: st,
            raised,
            exit: D.exitCode(raised, codes, EXIT),
            records: done.filter((x) => x.type === "record").map((x) => x.action),
            local,
          };
        }
      }
    }
  }
  throw new Error("the pass did not end");
}
const ok = { ok: true, email: EMAIL };
const types = (r: { done: any[] }) => r.done.map((a) => a.type);

describe("decide: one test per row of the table in docs/CONTRACTS.md", () => {
  test("Vault unreachable / 5xx / sealed: touch nothing local (no restore, no refresh); exit 3", () => {
    const l = login("a", 10 * 60_000); // near expiry
    const r = drive({ local: { kind: "ok", login: l }, vault: { status: "down", meta: null }, state: state({ verified: verifiedFor(l) }) });
    assert.deepEqual(r.asked, []);
    assert.equal(r.end.push, false);
    assert.equal(r.exit, EXIT.TRANSIENT);
    assert.ok(r.done.some((a) => a.type === "log" && /not rotating/.test(a.msg)));
    // and a missing local file is not "restored" from a Vault that is down
    const m = drive({ local: { kind: "missing", login: null }, vault: { status: "down", meta: null } });
    assert.deepEqual(m.asked, []);
    assert.ok(!m.raised.has("login-required"), "no SSO alert while Vault is down");
  });

  test("Vault denies: touch nothing local; vault-denied; exit 6", () => {
    const l = login("a", 10 * 60_000);
    const r = drive({ local: { kind: "ok", login: l }, vault: { status: "denied", meta: null }, state: state({ verified: verifiedFor(l) }) });
    assert.deepEqual(r.asked, []);
    assert.equal(r.exit, EXIT.VAULT_DENIED);
  });

  test("local missing / corrupt / symlink / no claudeAiOauth: restore a valid, live, roster-email Vault copy", () => {
    const v = login("v");
    for (const kind of ["missing", "corrupt", "symlink", "nologin"]) {
      const r = drive({
        local: { kind, login: null, reason: "invalid JSON" },
        vault: { status: "ok", meta: meta(v) },
        copy: { login: v, email: EMAIL, version: 3 },
        profile: [ok],
      });
      assert.deepEqual(r.asked.slice(0, 2), ["read-vault-copy", "restore"], kind);
      assert.equal(r.end.push, false, "a restored copy is not pushed back");
      assert.equal(r.exit, EXIT.OK);
    }
    // not restored: incomplete, past its deadline, known dead, another email
    const refuse: [string, Script["copy"], any][] = [
      ["incomplete", { login: null, email: EMAIL, version: 3 }, state()],
      ["past its deadline", { login: { ...v, refreshTokenExpiresAt: NOW - 1 }, email: EMAIL, version: 3 }, state()],
      ["known dead", { login: v, email: EMAIL, version: 3 }, state({ deadRefreshHash: v.refreshHash })],
      ["another email", { login: v, email: "mallory@example.com", version: 3 }, state()],
    ];
    for (const [why, copy, st] of refuse) {
      const r = drive({ local: { kind: "missing", login: null }, vault: { status: "ok", meta: meta(v) }, copy, state: st });
      assert.ok(!r.asked.includes("restore"), why);
      assert.ok(r.raised.has("login-required"), `${why}: no usable credentials anywhere`);
      assert.equal(r.exit, EXIT.LOGIN_REQUIRED, why);
    }
  });

  test("never logged in (nothing local, nothing in Vault, no login ever seen): login-required, quiet; once a login was seen: not quiet", () => {
    for (const kind of ["missing", "nologin"]) {
      const r = drive({ local: { kind, login: null }, vault: { status: "ok", meta: null } });
      const raise = r.done.find((a: any) => a.type === "raise");
      assert.deepEqual(raise, { type: "raise", kind: "login-required", detail: D.NEVER_LOGGED_IN, quiet: true }, kind);
      assert.equal(r.exit, EXIT.LOGIN_REQUIRED);
    }
    const seen = drive({ local: { kind: "missing", login: null }, vault: { status: "ok", meta: null }, state: state({ history: [sha("old")] }) });
    assert.equal(seen.done.find((a: any) => a.type === "raise")?.quiet, undefined, "a user who had a login is alerted");
    const corrupt = drive({ local: { kind: "corrupt", login: null }, vault: { status: "ok", meta: null } });
    assert.equal(corrupt.done.find((a: any) => a.type === "raise")?.quiet, undefined, "a damaged credentials file is alerted");
  });

  test("local and Vault hashes equal: in sync, nothing", () => {
    const l = login("a");
    const r = drive({ local: { kind: "ok", login: l }, vault: { status: "ok", meta: meta(l) }, state: state({ verified: verifiedFor(l) }) });
    assert.deepEqual(r.asked, []);
    assert.equal(r.end.push, false);
    assert.deepEqual(r.records, []);
    assert.equal(r.exit, EXIT.OK);
  });

  test("Vault strictly newer (by the order this host saw the hashes, re-checked on the data): restore", () => {
    const old = login("old");
    const nu = login("new", 7 * H); // expires EARLIER: the order of first sight decides, not expiresAt
    const st = state({ history: [old.refreshHash, nu.refreshHash] });
    const r = drive({
      local: { kind: "ok", login: old },
      vault: { status: "ok", meta: meta(nu) },
      state: st,
      copy: { login: nu, email: EMAIL, version: 4 },
      profile: [ok],
    });
    assert.deepEqual(r.asked.slice(0, 2), ["read-vault-copy", "restore"]);
    // the metadata says newer but the data is the local login's own older copy: keep local, push it
    const r2 = drive({
      local: { kind: "ok", login: nu },
      vault: { status: "ok", meta: meta(null) },
      state: st,
      copy: { login: old, email: EMAIL, version: 4 },
      profile: [ok],
    });
    assert.ok(!r2.asked.includes("restore"));
    assert.equal(r2.end.push, true);
    // a local hash never seen before is newer than a Vault hash seen before
    const r3 = drive({ local: { kind: "ok", login: login("fresh", 1 * H + 60_000) }, vault: { status: "ok", meta: meta(nu) }, state: st, profile: [ok] });
    assert.ok(!r3.asked.includes("read-vault-copy"));
    assert.equal(r3.end.push, true);
    // neither order known: the larger expiresAt
    const a = login("x", 5 * H);
    const b = login("y", 6 * H);
    const r4 = drive({ local: { kind: "ok", login: a }, vault: { status: "ok", meta: meta(b) }, copy: { login: b, email: EMAIL, version: 2 }, profile: [ok] });
    assert.ok(r4.asked.includes("restore"));
  });

  test("local login dead (invalid_grant seen, or past its deadline) and Vault holds a different, live copy: restore", () => {
    const dead = login("dead");
    const v = login("v");
    for (const st of [state({ deadRefreshHash: dead.refreshHash, history: [v.refreshHash, dead.refreshHash] }), state({ history: [v.refreshHash] })]) {
      const local = st.deadRefreshHash ? dead : { ...dead, refreshTokenExpiresAt: NOW - 1 };
      const r = drive({
        local: { kind: "ok", login: local },
        vault: { status: "ok", meta: meta(v) },
        state: st,
        copy: { login: v, email: EMAIL, version: 5 },
        profile: [ok],
      });
      assert.deepEqual(r.asked.slice(0, 2), ["read-vault-copy", "restore"]);
      assert.equal(r.exit, EXIT.OK);
    }
  });

  test("local newer, or Vault empty or deleted: push local (CAS) after the identity check", () => {
    const l = login("l");
    for (const m of [meta(login("older", 2 * H)), null, meta(login("gone"), { deleted: true })]) {
      const r = drive({ local: { kind: "ok", login: l }, vault: { status: "ok", meta: m }, profile: [ok] });
      assert.ok(r.asked.includes("check-identity"));
      assert.equal(r.end.push, true, JSON.stringify(m));
    }
    // identity unknown (profile down): no push this run, transient
    const r = drive({
      local: { kind: "ok", login: l },
      vault: { status: "ok", meta: null },
      profile: [{ ok: false, kind: "transient", detail: "profile endpoint answered 502" }],
    });
    assert.equal(r.end.push, false);
    assert.equal(r.exit, EXIT.TRANSIENT);
  });

  test("refresh token already got invalid_grant, or login deadline passed: never presented; login-required; exit 4", () => {
    const l = login("l", 60_000);
    for (const [st, local] of [
      [state({ deadRefreshHash: l.refreshHash }), l],
      [state(), { ...l, refreshTokenExpiresAt: NOW - 1 }],
    ] as const) {
      const r = drive({ local: { kind: "ok", login: local }, vault: { status: "ok", meta: meta(l) }, state: st });
      assert.ok(!r.asked.includes("refresh"));
      assert.ok(!r.asked.includes("check-identity"));
      assert.ok(r.raised.has("login-required"));
      assert.equal(r.exit, EXIT.LOGIN_REQUIRED);
    }
  });

  test("access token expires within the margin (or the profile says 401), Vault up, no backoff: refresh, verify, push", () => {
    const l = login("l", 30 * 60_000);
    const n = login("n");
    const r = drive({ local: { kind: "ok", login: l }, vault: { status: "ok", meta: meta(l) }, profile: [ok, ok], refresh: { ok: true, login: n } });
    assert.deepEqual(r.asked, ["check-identity", "refresh", "apply-refresh", "check-identity"]);
    assert.equal(r.end.push, true);
    assert.deepEqual(r.state.history, [l.refreshHash, n.refreshHash]);
    assert.equal(r.exit, EXIT.OK);
    // not within the margin: no refresh
    const far = drive({ local: { kind: "ok", login: login("far", 2 * H) }, vault: { status: "ok", meta: null }, profile: [ok] });
    assert.ok(!far.asked.includes("refresh"));
    // the profile endpoint rejects the access token (401): refresh although it is not near expiry
    const rej = drive({
      local: { kind: "ok", login: login("rej", 5 * H) },
      vault: { status: "ok", meta: null },
      profile: [{ ok: false, kind: "unauthorized", detail: "profile endpoint answered 401" }, ok],
      refresh: { ok: true, login: n },
    });
    assert.ok(rej.asked.includes("refresh"));
    // backing off: no refresh
    const bo = drive({
      local: { kind: "ok", login: l },
      vault: { status: "ok", meta: meta(l) },
      profile: [ok],
      state: state({ backoff: { failures: 1, until: NOW + 60_000, lastError: "x" } }),
    });
    assert.ok(!bo.asked.includes("refresh"));
    // a verified login refreshed while the profile endpoint is down keeps its verification
    const carry = drive({
      local: { kind: "ok", login: l },
      vault: { status: "ok", meta: meta(l) },
      state: state({ verified: verifiedFor(l) }),
      profile: [{ ok: false, kind: "transient", detail: "down" }],
      refresh: { ok: true, login: n },
    });
    assert.equal(carry.end.push, true);
    assert.equal(carry.state.verified.refreshHash, n.refreshHash);
  });

  test("refresh: network error, timeout, 429, 5xx, other 4xx: backoff base·2^n (±20 %, ≥ Retry-After, ≤ max); no SSO alert; exit 3", () => {
    const l = login("l", 60_000);
    for (const kind of ["transient", "rejected"]) {
      const r = drive({
        local: { kind: "ok", login: l },
        vault: { status: "ok", meta: meta(l) },
        state: state({ verified: verifiedFor(l), backoff: { failures: 2, until: NOW - 1, lastError: "x" } }),
        refresh: { ok: false, kind, detail: "token endpoint answered 503" },
      });
      assert.equal(r.state.backoff.failures, 3);
      assert.equal(r.state.backoff.until, NOW + 100 + 300_000 * 4, "jitter 0.5 = the base itself");
      assert.ok(!r.raised.has("login-required"));
      assert.equal(r.exit, EXIT.TRANSIENT);
      assert.deepEqual(r.records, ["refresh-deferred"]);
    }
  });

  test("refresh: invalid_grant: the token hash is remembered as dead; login-required; exit 4", () => {
    const l = login("l", 60_000);
    const r = drive({
      local: { kind: "ok", login: l },
      vault: { status: "ok", meta: meta(l) },
      state: state({ verified: verifiedFor(l) }),
      refresh: { ok: false, kind: "invalid_grant", detail: "invalid_grant" },
    });
    assert.equal(r.state.deadRefreshHash, l.refreshHash);
    assert.equal(r.state.backoff, null);
    assert.ok(r.raised.has("login-required"));
    assert.equal(r.end.push, false);
    assert.equal(r.exit, EXIT.LOGIN_REQUIRED);
  });

  test("profile email differs from the roster: refuse (no refresh, no push); identity-mismatch; exit 5; remembered", () => {
    const l = login("l", 60_000);
    const r = drive({ local: { kind: "ok", login: l }, vault: { status: "ok", meta: null }, profile: [{ ok: true, email: "Mallory@example.com" }] });
    assert.ok(!r.asked.includes("refresh"));
    assert.equal(r.end.push, false);
    assert.equal(r.exit, EXIT.IDENTITY_MISMATCH);
    // the next run knows it without asking
    const again = drive({ local: { kind: "ok", login: l }, vault: { status: "ok", meta: null }, state: r.state });
    assert.ok(!again.asked.includes("check-identity"));
    assert.equal(again.exit, EXIT.IDENTITY_MISMATCH);
    // the roster's email in another case is the same identity
    const same = drive({ local: { kind: "ok", login: login("m") }, vault: { status: "ok", meta: null }, profile: [{ ok: true, email: "EMO@example.com" }] });
    assert.equal(same.exit, EXIT.OK);
  });

  test("login deadline within loginDeadlineWarnDays: deadline-soon (exit 0)", () => {
    assert.equal(D.deadlineCondition({ refreshTokenExpiresAt: NOW + 2 * 24 * H }, NOW, CFG).kind, "deadline-soon");
    assert.equal(D.deadlineCondition({ refreshTokenExpiresAt: NOW + 3 * 24 * H }, NOW, CFG).kind, "deadline-soon", "the boundary is inside");
    assert.equal(D.deadlineCondition({ refreshTokenExpiresAt: NOW + 3 * 24 * H + 1 }, NOW, CFG), null);
    assert.equal(D.deadlineCondition({ refreshTokenExpiresAt: null }, NOW, CFG), null);
    assert.equal(D.exitCode(new Map([["deadline-soon", "x"]]), new Set(), EXIT), EXIT.OK);
  });

  test("CAS conflict on push: the executor redoes the pass; decide is the same on the same inputs", () => {
    // the executor re-reads the metadata and calls decide again; with the conflicting (newer)
    // Vault copy now in the metadata, the pass restores instead of overwriting
    const l = login("l");
    const theirs = login("theirs");
    const first = drive({
      local: { kind: "ok", login: l },
      vault: { status: "ok", meta: meta(login("old", 2 * H)) },
      state: state({ verified: verifiedFor(l), history: [] }),
    });
    assert.equal(first.end.push, true);
    const st = { ...first.state, history: [...first.state.history, theirs.refreshHash] };
    const second = drive({
      local: { kind: "ok", login: l },
      vault: { status: "ok", meta: meta(theirs) },
      state: st,
      copy: { login: theirs, email: EMAIL, version: 4 },
      profile: [ok],
    });
    assert.ok(second.asked.includes("restore"), "never overwrite: the newer copy wins");
    assert.equal(second.end.push, false);
  });

  test('an incident gone: "resolved" once; an SSO incident replaced by another ends silently', () => {
    const plan = (active: string[], evaluated: string[], incidents: Record<string, { alerted: boolean }>) =>
      Object.fromEntries(D.incidentPlan(new Set(active), new Set(evaluated), incidents).map((p: any) => [p.kind, `${p.do}${p.alert ? "+alert" : ""}`]));
    assert.deepEqual(plan(["login-required"], ["login-required"], {}), {
      "login-required": "raise+alert",
      "deadline-soon": "keep",
      "identity-mismatch": "keep",
      "vault-denied": "keep",
    });
    assert.equal(plan(["login-required"], [], { "login-required": { alerted: true } })["login-required"], "raise", "alerted once");
    assert.equal(plan([], ["vault-denied"], { "vault-denied": { alerted: true } })["vault-denied"], "resolve+alert");
    assert.equal(plan([], [], { "vault-denied": { alerted: true } })["vault-denied"], "keep", "not evaluated: kept");
    assert.equal(plan([], ["vault-denied"], { "vault-denied": { alerted: false } })["vault-denied"], "drop", "never alerted: no resolved message");
    assert.equal(
      plan(["login-required"], ["deadline-soon", "login-required"], { "deadline-soon": { alerted: true } })["deadline-soon"],
      "drop",
      "replaced by another SSO incident",
    );
  });
});

describe("decide: properties", () => {
  // a small deterministic generator
  let seed = 42;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)];

  test("vaultIsNewer is a strict order on the hashes this host has seen: irreflexive, asymmetric, by first sight", () => {
    for (let i = 0; i < 300; i++) {
      const names = Array.from({ length: 5 }, (_, k) => `t${i}-${k}`);
      const hist = names.filter(() => rnd() < 0.7).map((n) => sha(`r-${n}`));
      const a = login(pick(names), Math.floor(rnd() * 10) * H);
      const b = login(pick(names), Math.floor(rnd() * 10) * H);
      assert.equal(D.vaultIsNewer(hist, a.refreshHash, a.expiresAt, a), false, "never newer than itself");
      const ab = D.vaultIsNewer(hist, a.refreshHash, a.expiresAt, b);
      const ba = D.vaultIsNewer(hist, b.refreshHash, b.expiresAt, a);
      if (a.refreshHash !== b.refreshHash) assert.ok(!(ab && ba), "not both newer");
      const iA = hist.indexOf(a.refreshHash);
      const iB = hist.indexOf(b.refreshHash);
      if (iA !== -1 && iB !== -1 && iA !== iB) assert.equal(ab, iA > iB, "both seen: the later one");
      if (iA !== -1 && iB === -1) assert.equal(ab, false, "a local hash never seen is newer");
      if (iA === -1 && iB === -1 && a.refreshHash !== b.refreshHash) assert.equal(ab, a.expiresAt > b.expiresAt, "neither seen: expiresAt");
    }
  });

  test("backoff: within ±20 % of base·2^(n-1), capped, never below Retry-After, growing with n", () => {
    for (let i = 0; i < 500; i++) {
      const n = 1 + Math.floor(rnd() * 12);
      const jitter = rnd();
      const ra = rnd() < 0.3 ? Math.floor(rnd() * 20_000_000) : undefined;
      const w = D.backoffMs(n, CFG, jitter, ra);
      const base = Math.min(CFG.backoffBaseMs * 2 ** (n - 1), CFG.backoffMaxMs);
      assert.ok(w >= (ra ?? 0), "at least Retry-After");
      if (ra === undefined || ra <= base * 0.8) assert.ok(w >= base * 0.8 - 1e-6 && w <= base * 1.2 + 1e-6, `${w} around ${base}`);
      assert.ok(D.backoffMs(n + 1, CFG, jitter) >= D.backoffMs(n, CFG, jitter), "monotone in n");
    }
  });

  test("whatever the inputs, decide never refreshes or restores while Vault is down or denied, never pushes an unverified login, and always ends", () => {
    for (let i = 0; i < 400; i++) {
      const l = login(`p${i}`, pick([-H, 10 * 60_000, 2 * H]), pick([null, -1, 2 * 24 * H, 30 * 24 * H]));
      const v = login(`v${i}`, pick([5 * H, 9 * H]));
      const status = pick(["ok", "down", "denied"] as const);
      const kind = pick(["ok", "ok", "missing", "corrupt", "nologin"]);
      const profile = [
        pick([ok, { ok: true, email: "other@example.com" }, { ok: false, kind: "transient", detail: "x" }, { ok: false, kind: "unauthorized", detail: "401" }]),
        ok,
      ];
      const st = state({
        history: pick([[], [v.refreshHash], [l.refreshHash, v.refreshHash]]),
        deadRefreshHash: pick([null, l.refreshHash]),
        verified: pick([null, verifiedFor(l)]),
      });
      const r = drive({
        local: { kind, login: kind === "ok" ? l : null, reason: "x" },
        vault: { status, meta: status === "ok" ? pick([null, meta(v), meta(l)]) : null },
        state: st,
        copy: { login: v, email: EMAIL, version: 2 },
        profile,
        refresh: pick([
          { ok: true, login: login(`n${i}`) },
          { ok: false, kind: "transient", detail: "x" },
          { ok: false, kind: "invalid_grant", detail: "invalid_grant" },
        ]),
      });
      if (status !== "ok") {
        assert.ok(!r.asked.includes("refresh") && !r.asked.includes("restore") && !r.asked.includes("read-vault-copy"), JSON.stringify(r.asked));
        assert.equal(r.end.push, false);
      }
      if (r.end.push)
        assert.ok(
          r.done.some((a) => a.type === "identity" && a.identity === "ok") || r.done.some((a) => a.type === "set-verified"),
          "only a verified login is pushed",
        );
      if (r.asked.includes("refresh")) assert.notEqual(st.deadRefreshHash, r.local.login?.refreshHash ?? null, "a dead token is never presented");
      assert.equal(types(r).filter((t) => t === "end").length, 1);
    }
  });
});
