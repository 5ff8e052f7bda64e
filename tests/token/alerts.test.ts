// Alerts, failure handling, identity and secret hygiene, on a real Vault-API server.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { FailMode } from "../../dev/fakes/anthropic-oauth";
import {
  addVaultUser,
  AgentEnv,
  AppRoleCred,
  deadAddr,
  describeRun,
  EXIT,
  findLeaks,
  readVaultSecret,
  sha256,
  TokenSuite,
  vaultApi,
  VaultProxy,
} from "../../dev/token";

const suite = new TokenSuite({
  prefix: "ctr-alerts-",
  users: "a",
  // Neutral token prefixes: the agent's "sk-ant-" pattern scrub cannot hide a leak here.
  oauth: { accessPrefix: "ACCESSTOKEN", refreshPrefix: "REFRESHTOKEN" },
  clocked: true,
  slackAndProxy: true,
});
const { clock, envs } = suite;
const secrets: string[] = [];

before(() => suite.start());
after(async () => {
  for (const e of envs) {
    try {
      secrets.push(JSON.parse(fs.readFileSync(path.join(e.stateDir, "vault-token.json"), "utf8")).token);
    } catch {
      /* none */
    }
  }
  const leaks = findLeaks(
    envs.flatMap((e) => e.outputs),
    [...suite.oauth.issued, ...secrets, suite.slack.webhookUrl],
  );
  const slackLeaks = findLeaks([{ code: 0, ms: 0, stdout: suite.slack.posts.map((p) => p.text).join("\n"), stderr: "" }], [...suite.oauth.issued, ...secrets]);
  await suite.stop();
  assert.deepEqual(leaks, [], "no token, secret_id, Vault token or webhook in any agent output");
  assert.deepEqual(slackLeaks, [], "no secret in any Slack message");
});

async function newUser(opts: { config?: Record<string, unknown>; vaultAddr?: string } = {}): Promise<AgentEnv & { cred: AppRoleCred }> {
  const e = await suite.newUser(opts);
  secrets.push(e.cred.secret_id, e.cred.role_id);
  return e;
}
const postsFor = (user: string) => suite.slack.delivered.filter((p) => p.text.includes(` ${user} (`));

test("invalid_grant: exactly one alert over many runs, no retry loop, notice shown; a fresh login resolves once", async () => {
  const e = await newUser();
  const l = suite.oauth.login(`${e.o.user}@example.com`, { accessTtlSeconds: 1800 }); // inside the 1 h margin
  e.writeCreds(l);
  suite.oauth.revokeFamily(l.refreshToken); // e.g. revoked by a reuse elsewhere
  const tokenReq0 = suite.oauth.tokenRequests;
  for (let i = 0; i < 6; i++) {
    const r = await e.run();
    assert.equal(r.code, EXIT.LOGIN_REQUIRED, describeRun(r));
    clock.t += 15 * 60_000;
  }
  assert.equal(suite.oauth.tokenRequests - tokenReq0, 1, "the dead refresh token is presented once, never again");
  const alerts = postsFor(e.o.user);
  assert.equal(alerts.length, 1, alerts.map((p) => p.text).join("\n"));
  assert.match(alerts[0].text, /login required/i);
  assert.match(alerts[0].text, /invalid_grant/);
  assert.match(e.notice() ?? "", /\/login/);
  assert.match(e.notice() ?? "", new RegExp(e.o.email));
  assert.equal(await readVaultSecret(suite.vault, e.o.user), null, "a dead login is not pushed");

  // The user logs in again interactively.
  const fresh = suite.oauth.login(`${e.o.user}@example.com`);
  e.writeCreds(fresh);
  const r = await e.run();
  assert.equal(r.code, EXIT.OK, describeRun(r));
  assert.match(r.stdout, /resolved:login-required/);
  assert.equal(e.notice(), null, "notice removed");
  const v = await readVaultSecret(suite.vault, e.o.user);
  assert.equal(v?.custom.refreshTokenSha256, sha256(fresh.refreshToken));
  for (let i = 0; i < 3; i++) assert.equal((await e.run()).code, EXIT.OK);
  const all = postsFor(e.o.user);
  assert.equal(all.length, 2);
  assert.match(all[1].text, /resolved/);
});

for (const [label, mode] of [
  ["429", { kind: "429", retryAfterSeconds: 60 }],
  ["503", { kind: "5xx", status: 503 }],
  ["timeout", { kind: "timeout" }],
] as [string, FailMode][]) {
  test(`${label} from the token endpoint: backoff and retry, no SSO alert`, async () => {
    const e = await newUser({ config: { httpTimeoutSeconds: 1 } });
    const l = suite.oauth.login(`${e.o.user}@example.com`, { accessTtlSeconds: 1800 });
    e.writeCreds(l);
    suite.oauth.failNext(mode, 1);
    const req0 = suite.oauth.tokenRequests;
    let r = await e.run();
    assert.equal(r.code, EXIT.TRANSIENT, describeRun(r));
    assert.match(r.stdout, /refresh-deferred/);
    assert.ok(e.state().backoff.failures === 1);
    // within the backoff window: no new token request
    clock.t += 60_000;
    r = await e.run();
    assert.equal(suite.oauth.tokenRequests - req0, 1, "backing off");
    // after the window (>= 5 min * 1.2, or Retry-After): retried and fine
    clock.t += 10 * 60_000;
    r = await e.run();
    assert.equal(r.code, EXIT.OK, describeRun(r));
    assert.match(r.stdout, /refreshed/);
    assert.equal(e.state().backoff, null);
    assert.deepEqual(postsFor(e.o.user), [], "no alert at all");
    assert.equal(e.notice(), null);
    assert.equal(suite.oauth.revocations, 0);
  });
}

test("token endpoint unreachable (network error): no SSO alert, local untouched", async () => {
  const e = await newUser();
  const l = suite.oauth.login(`${e.o.user}@example.com`, { accessTtlSeconds: 1800 });
  e.writeCreds(l);
  e.writeConfig({ tokenUrl: `${await deadAddr()}/v1/oauth/token` });
  const text0 = fs.readFileSync(e.credFile, "utf8");
  for (let i = 0; i < 3; i++) {
    const r = await e.run();
    assert.equal(r.code, EXIT.TRANSIENT, describeRun(r));
    clock.t += 15 * 60_000;
  }
  assert.equal(fs.readFileSync(e.credFile, "utf8"), text0);
  assert.deepEqual(postsFor(e.o.user), []);
  assert.ok(suite.oauth.isLiveRefresh(l.refreshToken));
});

test('login deadline: one "ends soon" alert, then one "login required" when it passes, then one resolved', async () => {
  const e = await newUser();
  const l = suite.oauth.login(`${e.o.user}@example.com`, { loginTtlSeconds: 2 * 86400 }); // < 3 warn days
  e.writeCreds(l);
  for (let i = 0; i < 4; i++) {
    const r = await e.run();
    assert.equal(r.code, EXIT.OK, describeRun(r));
    clock.t += 15 * 60_000;
  }
  let posts = postsFor(e.o.user);
  assert.equal(posts.length, 1);
  assert.match(posts[0].text, /ends soon/);
  assert.match(e.notice() ?? "", /Heads up/);
  clock.t = l.refreshTokenExpiresAt! + 60_000;
  const tokenReq0 = suite.oauth.tokenRequests;
  for (let i = 0; i < 3; i++) {
    const r = await e.run();
    assert.equal(r.code, EXIT.LOGIN_REQUIRED, describeRun(r));
  }
  assert.equal(suite.oauth.tokenRequests, tokenReq0, "an expired login is not even tried");
  posts = postsFor(e.o.user);
  assert.equal(posts.length, 2, posts.map((p) => p.text).join("\n"));
  assert.match(posts[1].text, /login required/i);
  e.writeCreds(suite.oauth.login(`${e.o.user}@example.com`));
  assert.equal((await e.run()).code, EXIT.OK);
  posts = postsFor(e.o.user);
  assert.equal(posts.length, 3);
  assert.match(posts[2].text, /resolved/);
  assert.equal(e.notice(), null);
});

test("Slack down: the alert is retried on the next run and delivered exactly once", async () => {
  const e = await newUser();
  const l = suite.oauth.login(`${e.o.user}@example.com`, { accessTtlSeconds: 1800 });
  e.writeCreds(l);
  suite.oauth.revokeFamily(l.refreshToken);
  suite.slack.failAll(500);
  try {
    assert.equal((await e.run()).code, EXIT.LOGIN_REQUIRED);
    assert.equal((await e.run()).code, EXIT.LOGIN_REQUIRED);
  } finally {
    suite.slack.failAll(null);
  }
  assert.equal(postsFor(e.o.user).length, 0);
  assert.equal((await e.run()).code, EXIT.LOGIN_REQUIRED);
  assert.equal((await e.run()).code, EXIT.LOGIN_REQUIRED);
  assert.equal(postsFor(e.o.user).length, 1);
  assert.match(e.notice() ?? "", /needs attention/, "the notice does not depend on Slack");
});

test("notifier unreachable (no socket) or Slack timing out: the alert is retried next run and delivered exactly once", async () => {
  const e = await newUser();
  const l = suite.oauth.login(`${e.o.user}@example.com`, { accessTtlSeconds: 1800 });
  e.writeCreds(l);
  suite.oauth.revokeFamily(l.refreshToken);
  let r = await e.run("run", ["--alert-socket", path.join(e.root, "gone.sock")]);
  assert.equal(r.code, EXIT.LOGIN_REQUIRED, describeRun(r));
  assert.match(r.stderr, /alert socket \S*gone\.sock: .*ENOENT.*will retry the alert next run/);
  suite.slack.hangAll(true);
  try {
    r = await e.run();
    assert.equal(r.code, EXIT.LOGIN_REQUIRED, describeRun(r));
    assert.match(r.stderr, /the notifier did not send the alert \(error slack timed out after 2 s\); will retry/);
  } finally {
    suite.slack.hangAll(false);
  }
  assert.equal(postsFor(e.o.user).length, 0);
  r = await e.run();
  assert.match(r.stdout, /alerted:login-required/);
  assert.equal((await e.run()).code, EXIT.LOGIN_REQUIRED);
  assert.equal(postsFor(e.o.user).length, 1);
  assert.match(postsFor(e.o.user)[0].text, new RegExp(`^\\[${e.o.user}@testhost\\] `), "prefixed by the notifier");
});

test("Slack disabled on the host: the alert counts as handled (journal only), not retried", async () => {
  const e = await newUser();
  fs.writeFileSync(e.slackFile, "");
  const l = suite.oauth.login(`${e.o.user}@example.com`, { accessTtlSeconds: 1800 });
  e.writeCreds(l);
  suite.oauth.revokeFamily(l.refreshToken);
  const r = await e.run();
  assert.equal(r.code, EXIT.LOGIN_REQUIRED, describeRun(r));
  assert.match(r.stderr, /Slack is disabled on this host; alert not sent: .*login required/i);
  assert.match(r.stdout, /alerted:login-required/);
  fs.writeFileSync(e.slackFile, suite.slack.webhookUrl);
  assert.equal((await e.run()).code, EXIT.LOGIN_REQUIRED);
  assert.equal(postsFor(e.o.user).length, 0, "not re-sent once Slack is enabled");
  assert.match(e.notice() ?? "", /needs attention/);
});

test("Vault down after a good sync: local untouched even when corrupt or near expiry", async () => {
  const p2 = await new VaultProxy(suite.vault.addr).start();
  try {
    const e = await newUser({ vaultAddr: p2.url });
    const l = suite.oauth.login(`${e.o.user}@example.com`);
    e.writeCreds(l);
    assert.equal((await e.run()).code, EXIT.OK);
    p2.down = true;
    clock.t += 7.5 * 3600_000; // near expiry
    const text0 = fs.readFileSync(e.credFile, "utf8");
    let r = await e.run();
    assert.equal(r.code, EXIT.TRANSIENT, describeRun(r));
    assert.equal(fs.readFileSync(e.credFile, "utf8"), text0);
    assert.ok(suite.oauth.isLiveRefresh(l.refreshToken), "not rotated while Vault is down");
    fs.writeFileSync(e.credFile, "{broken");
    r = await e.run();
    assert.equal(r.code, EXIT.TRANSIENT, describeRun(r));
    assert.equal(fs.readFileSync(e.credFile, "utf8"), "{broken", "nothing is replaced while Vault is down");
    assert.deepEqual(postsFor(e.o.user), []);
    p2.down = false;
    r = await e.run();
    assert.equal(r.code, EXIT.OK, describeRun(r));
    assert.match(r.stdout, /restored-from-vault/);
    assert.match(r.stdout, /refreshed/);
  } finally {
    await p2.stop();
  }
});

test("a revoked or expired Vault token re-authenticates with AppRole", async () => {
  const e = await newUser();
  e.writeCreds(suite.oauth.login(`${e.o.user}@example.com`));
  assert.equal((await e.run()).code, EXIT.OK);
  const cacheFile = path.join(e.stateDir, "vault-token.json");
  assert.equal(fs.statSync(cacheFile).mode & 0o777, 0o600);
  const t1 = JSON.parse(fs.readFileSync(cacheFile, "utf8")).token;
  secrets.push(t1);
  // the cached token is reused while valid
  suite.proxy.reset();
  assert.equal((await e.run()).code, EXIT.OK);
  assert.equal(suite.proxy.logins.length, 0);
  // revoked
  assert.equal((await vaultApi(suite.vault.addr, suite.vault.rootToken, "POST", "auth/token/revoke", { token: t1 })).status, 204);
  suite.proxy.reset();
  let r = await e.run();
  assert.equal(r.code, EXIT.OK, describeRun(r));
  assert.equal(suite.proxy.logins.length, 1);
  const t2 = JSON.parse(fs.readFileSync(cacheFile, "utf8")).token;
  secrets.push(t2);
  assert.notEqual(t2, t1);
  // expired (by its recorded TTL)
  fs.writeFileSync(cacheFile, JSON.stringify({ token: t2, expiresAt: Date.now() - 1000 }), { mode: 0o600 });
  suite.proxy.reset();
  r = await e.run();
  assert.equal(r.code, EXIT.OK, describeRun(r));
  assert.equal(suite.proxy.logins.length, 1);
});

test("permission denied (secret_id revoked, policy gone) does not loop; one alert; resolved when fixed", async () => {
  const e = await newUser();
  const l = suite.oauth.login(`${e.o.user}@example.com`, { accessTtlSeconds: 1800 });
  e.writeCreds(l);
  // the policy is removed and the secret_id destroyed (as on suspend), while a token is cached
  assert.equal((await e.run()).code, EXIT.OK);
  await vaultApi(suite.vault.addr, suite.vault.rootToken, "DELETE", `sys/policies/acl/claude-renew-${e.o.user}`);
  const acc = await vaultApi(suite.vault.addr, suite.vault.rootToken, "LIST", `auth/approle/role/claude-renew-${e.o.user}/secret-id`);
  for (const a of acc.json.data.keys as string[])
    await vaultApi(suite.vault.addr, suite.vault.rootToken, "POST", `auth/approle/role/claude-renew-${e.o.user}/secret-id-accessor/destroy`, {
      secret_id_accessor: a,
    });
  clock.t += 7.5 * 3600_000;
  const text0 = fs.readFileSync(e.credFile, "utf8");
  for (let i = 0; i < 3; i++) {
    suite.proxy.reset();
    const t0 = Date.now();
    const r = await e.run();
    assert.equal(r.code, EXIT.VAULT_DENIED, describeRun(r));
    assert.ok(suite.proxy.requests.length <= 3, `bounded: ${suite.proxy.requests.map((q) => `${q.method} ${q.path} ${q.status}`).join(", ")}`);
    assert.ok(suite.proxy.logins.length <= 1);
    assert.ok(Date.now() - t0 < 10_000);
  }
  assert.equal(fs.readFileSync(e.credFile, "utf8"), text0);
  let posts = postsFor(e.o.user);
  assert.equal(posts.length, 1);
  assert.match(posts[0].text, /cannot use Vault/);
  // the program re-creates the policy and a secret_id
  const cred = await addVaultUser(suite.vault, e.o.user);
  secrets.push(cred.secret_id);
  e.writeAppRole(cred);
  const r = await e.run();
  assert.equal(r.code, EXIT.OK, describeRun(r));
  posts = postsFor(e.o.user);
  assert.equal(posts.length, 2);
  assert.match(posts[1].text, /resolved/);
});

test("identity mismatch: refused (no refresh, no Vault write), reported once, resolved by the right login", async () => {
  const e = await newUser();
  const wrong = suite.oauth.login("someone.else@example.com", { accessTtlSeconds: 1800 });
  e.writeCreds(wrong);
  suite.proxy.reset();
  const refreshes0 = suite.oauth.refreshes;
  for (let i = 0; i < 3; i++) {
    const r = await e.run();
    assert.equal(r.code, EXIT.IDENTITY_MISMATCH, describeRun(r));
    assert.match(r.stderr, /someone\.else@example\.com/);
  }
  assert.equal(suite.oauth.refreshes, refreshes0, "another identity is not renewed");
  assert.equal(suite.proxy.kvWrites.length, 0, "nor stored in this user’s Vault path");
  assert.equal(await readVaultSecret(suite.vault, e.o.user), null);
  let posts = postsFor(e.o.user);
  assert.equal(posts.length, 1);
  assert.match(posts[0].text, /identity mismatch/i);
  assert.match(e.notice() ?? "", /someone\.else@example\.com/);
  assert.ok(suite.oauth.profileRequests > 0);

  e.writeCreds(suite.oauth.login(e.o.email));
  const r = await e.run();
  assert.equal(r.code, EXIT.OK, describeRun(r));
  posts = postsFor(e.o.user);
  assert.equal(posts.length, 2);
  assert.match(posts[1].text, /resolved/);
  assert.ok(await readVaultSecret(suite.vault, e.o.user));
});

test("no token ever appears in stdout/stderr, even with verbose failures", async () => {
  const e = await newUser({ config: { httpTimeoutSeconds: 1 } });
  const l = suite.oauth.login(`${e.o.user}@example.com`, { accessTtlSeconds: 1800 });
  e.writeCreds(l, { mcpOAuth: { s: { accessToken: "MCPSECRETTOKEN-1234567890" } } });
  secrets.push("MCPSECRETTOKEN-1234567890");
  await e.run();
  await e.run("status", ["--json"]);
  suite.oauth.failNext({ kind: "5xx" });
  clock.t += 8 * 3600_000;
  await e.run();
  clock.t += 3600_000;
  await e.run();
  fs.writeFileSync(e.credFile, '{"claudeAiOauth": {"accessToken": "' + l.accessToken + '", trailing garbage');
  await e.run();
  await e.run("status");
  await e.run("status", ["--json"]);
  const leaks = findLeaks(e.outputs, [...suite.oauth.issued, ...secrets]);
  assert.deepEqual(leaks, []);
  assert.ok(e.outputs.length >= 6);
});

test("a refresh answer lost after the server rotated (timeout after rotation): retried once later, then one login alert", async () => {
  // The server spent the old token but the new one never arrived: the login is lost whatever
  // the client does. The agent must not alert on the ambiguous failure itself, and must not loop.
  const e = await newUser({ config: { httpTimeoutSeconds: 1 } });
  const l = suite.oauth.login(`${e.o.user}@example.com`, { accessTtlSeconds: 1800 });
  e.writeCreds(l);
  suite.oauth.failNext({ kind: "drop-after-rotate" });
  let r = await e.run();
  assert.equal(r.code, EXIT.TRANSIENT, describeRun(r));
  assert.deepEqual(postsFor(e.o.user), []);
  clock.t += 10 * 60_000;
  const req0 = suite.oauth.tokenRequests;
  for (let i = 0; i < 4; i++) {
    r = await e.run();
    assert.equal(r.code, EXIT.LOGIN_REQUIRED, describeRun(r));
    clock.t += 15 * 60_000;
  }
  assert.equal(suite.oauth.tokenRequests - req0, 1);
  assert.equal(postsFor(e.o.user).length, 1);
});
