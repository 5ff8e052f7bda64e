// The fakes must behave like the real services, failure modes included (SPEC §5).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { startFakeAnthropic } from "../../dev/fakes/anthropic-oauth";
import { startFakeSlack } from "../../dev/fakes/slack";
import { claudeStandInRefresh, tmpdir } from "../../dev/token";

async function refresh(url: string, clientId: string, token: string, form = false): Promise<{ status: number; json: any; headers: Headers }> {
  const body = form
    ? new URLSearchParams({ grant_type: "refresh_token", refresh_token: token, client_id: clientId }).toString()
    : JSON.stringify({ grant_type: "refresh_token", refresh_token: token, client_id: clientId });
  const r = await fetch(url, { method: "POST", headers: { "Content-Type": form ? "application/x-www-form-urlencoded" : "application/json" }, body });
  return { status: r.status, json: await r.json().catch(() => null), headers: r.headers };
}

test("fake OAuth: rotates refresh tokens; a spent token revokes the whole family for good", async () => {
  const o = await startFakeAnthropic();
  try {
    const l = o.login("a@example.com");
    const r1 = await refresh(o.tokenUrl, o.opts.clientId, l.refreshToken);
    assert.equal(r1.status, 200);
    assert.notEqual(r1.json.refresh_token, l.refreshToken);
    assert.equal(r1.json.expires_in, 8 * 3600);
    assert.ok(r1.json.refresh_token_expires_in > 27 * 86400 && r1.json.refresh_token_expires_in <= 28 * 86400);
    const r2 = await refresh(o.tokenUrl, o.opts.clientId, r1.json.refresh_token, true); // form encoding too
    assert.equal(r2.status, 200);
    assert.equal(o.refreshes, 2);
    // reuse of a spent token
    const reuse = await refresh(o.tokenUrl, o.opts.clientId, l.refreshToken);
    assert.equal(reuse.status, 400);
    assert.equal(reuse.json.error, "invalid_grant");
    assert.equal(o.revocations, 1);
    // ... and the newest token of that family is dead too, forever
    const after = await refresh(o.tokenUrl, o.opts.clientId, r2.json.refresh_token);
    assert.equal(after.json.error, "invalid_grant");
    assert.equal(o.revocations, 1, "a revoked family is revoked once");
    const prof = await fetch(o.profileUrl, { headers: { Authorization: `Bearer ${r2.json.access_token}`, "anthropic-beta": "oauth-2025-04-20" } });
    assert.equal(prof.status, 401);
    // another family is unaffected
    const other = o.login("b@example.com");
    assert.equal((await refresh(o.tokenUrl, o.opts.clientId, other.refreshToken)).status, 200);
  } finally {
    await o.stop();
  }
});

test("fake OAuth: refresh does not extend the login deadline; an expired login is invalid_grant", async () => {
  let now = Date.now();
  const o = await startFakeAnthropic({ now: () => now, accessTtlSeconds: 60, loginTtlSeconds: 3600 });
  try {
    const l = o.login("a@example.com");
    now += 1800_000;
    const r1 = await refresh(o.tokenUrl, o.opts.clientId, l.refreshToken);
    assert.equal(r1.json.refresh_token_expires_in, 1800);
    now += 1801_000;
    const r2 = await refresh(o.tokenUrl, o.opts.clientId, r1.json.refresh_token);
    assert.equal(r2.json.error, "invalid_grant");
    assert.equal(o.revocations, 0);
  } finally {
    await o.stop();
  }
});

test("fake OAuth: 429, 5xx, timeout and drop-after-rotate on demand; wrong client id rejected", async () => {
  const o = await startFakeAnthropic();
  try {
    const l = o.login("a@example.com");
    o.failNext({ kind: "429", retryAfterSeconds: 7 });
    const a = await refresh(o.tokenUrl, o.opts.clientId, l.refreshToken);
    assert.equal(a.status, 429);
    assert.equal(a.headers.get("retry-after"), "7");
    o.failNext({ kind: "5xx", status: 502 });
    assert.equal((await refresh(o.tokenUrl, o.opts.clientId, l.refreshToken)).status, 502);
    o.failNext({ kind: "timeout" });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    await assert.rejects(
      fetch(o.tokenUrl, {
        method: "POST",
        signal: ac.signal,
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ grant_type: "refresh_token", refresh_token: l.refreshToken, client_id: o.opts.clientId }),
      }),
    );
    assert.equal(o.refreshes, 0, "failures do not rotate");
    assert.ok(o.isLiveRefresh(l.refreshToken));
    assert.equal((await refresh(o.tokenUrl, "wrong-client", l.refreshToken)).json.error, "invalid_client");
    o.failNext({ kind: "drop-after-rotate" });
    await assert.rejects(refresh(o.tokenUrl, o.opts.clientId, l.refreshToken));
    assert.equal(o.refreshes, 1);
    assert.ok(!o.isLiveRefresh(l.refreshToken), "the dropped answer still spent the token");
  } finally {
    await o.stop();
  }
});

test("fake OAuth: profile returns the family email; needs the beta header and a live token", async () => {
  let now = Date.now();
  const o = await startFakeAnthropic({ now: () => now, accessTtlSeconds: 60 });
  try {
    const l = o.login("emo@example.com");
    const h = { Authorization: `Bearer ${l.accessToken}`, "anthropic-beta": "oauth-2025-04-20" };
    const p = await fetch(o.profileUrl, { headers: h });
    assert.equal(p.status, 200);
    assert.equal(((await p.json()) as any).account.email, "emo@example.com");
    assert.equal((await fetch(o.profileUrl, { headers: { Authorization: h.Authorization } })).status, 401);
    now += 61_000;
    assert.equal((await fetch(o.profileUrl, { headers: h })).status, 401, "expired access token");
  } finally {
    await o.stop();
  }
});

test("race detector sanity: two refreshers WITHOUT locks revoke the family; with Claude locks they do not", async () => {
  const o = await startFakeAnthropic({ accessTtlSeconds: 1 });
  const dir = tmpdir();
  try {
    // Naive: two clients read the same file and both refresh.
    const l = o.login("a@example.com");
    await Promise.all([refresh(o.tokenUrl, o.opts.clientId, l.refreshToken), refresh(o.tokenUrl, o.opts.clientId, l.refreshToken)]);
    assert.equal(o.revocations, 1, "the fake must catch a racing double refresh");

    // Cooperative: many stand-ins under Claude's locks, re-reading under the lock.
    const home = path.join(dir, "home");
    fs.mkdirSync(path.join(home, ".claude"), { recursive: true });
    const credFile = path.join(home, ".claude", ".credentials.json");
    fs.writeFileSync(credFile, JSON.stringify({ claudeAiOauth: o.login("b@example.com") }), { mode: 0o600 });
    const before = o.refreshes;
    const results = await Promise.all(
      Array.from({ length: 8 }, () => claudeStandInRefresh({ credFile, home, tokenUrl: o.tokenUrl, clientId: o.opts.clientId, marginMs: 1e12 })),
    );
    assert.deepEqual(
      results.filter((r) => r !== "refreshed"),
      [],
    );
    assert.equal(o.refreshes - before, 8);
    assert.equal(o.revocations, 1, "no new revocation");
  } finally {
    await o.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("fake Slack records posts and fails on demand", async () => {
  const s = await startFakeSlack();
  try {
    const post = (text: string) => fetch(s.webhookUrl, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text }) });
    assert.equal((await post("one")).status, 200);
    s.failNext(1, 500);
    assert.equal((await post("two")).status, 500);
    s.failAll(404);
    assert.equal((await post("three")).status, 404);
    s.failAll(null);
    assert.equal((await post("")).status, 400);
    assert.deepEqual(
      s.posts.map((p) => [p.text, p.delivered]),
      [
        ["one", true],
        ["two", false],
        ["three", false],
        ["", false],
      ],
    );
    assert.deepEqual(
      s.delivered.map((p) => p.text),
      ["one"],
    );
  } finally {
    await s.stop();
  }
});
