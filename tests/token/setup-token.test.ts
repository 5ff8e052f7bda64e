// The setup-token mode (issue 24 item 1; README "Claude logins"): the real agent against the
// real Vault dev server, the fake Messages API (which sees which credential each request
// carried, by hash, and answers a revoked one 401 as the real API does) and the real notifier.
// The real Claude reading the delivered token is tests/claude/setup-token.claude.test.ts.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { AgentEnv, describeRun, EXIT, findLeaks, readVaultSecret, sha256, TokenSuite, vaultApi, writeVaultSecret } from "../../dev/token";
import { authHash, FakeAnthropicMessages, startFakeMessages } from "../../dev/fakes/anthropic-messages";

const suite = new TokenSuite({ prefix: "ctr-setup-", users: "s", clocked: true, slackAndProxy: true });
const { clock, envs } = suite;
let api: FakeAnthropicMessages;
const tokens: string[] = [];
const DAY = 86_400_000;

/** A token shaped as `claude setup-token` prints it. */
function newToken(): string {
  const t = `sk-ant-oat01-${crypto.randomBytes(60).toString("base64url")}`;
  tokens.push(t);
  return t;
}

before(async () => {
  await suite.start();
  api = await startFakeMessages();
});
after(async () => {
  const leaks = findLeaks(
    envs.flatMap((e) => e.outputs),
    [...tokens, ...suite.oauth.issued, suite.slack.webhookUrl],
  );
  await api?.stop();
  await suite.stop();
  assert.deepEqual(leaks, []);
});

async function setupUser(): Promise<AgentEnv> {
  const e = await suite.newUser({ config: { apiUrl: api.url } });
  e.writeUsers({ claudeLogin: "setup-token" });
  return e;
}
const tokenFile = (e: AgentEnv) => path.join(e.home, ".claude-oauth-token");
const posts = (e: AgentEnv) => suite.slack.delivered.filter((p) => p.text.includes(` ${e.o.user} (`)).map((p) => p.text);
const checks = (t: string) => api.messages.filter((r) => r.auth === authHash(t));
async function store(e: AgentEnv, input: string, extra: string[] = []) {
  return e.run("store-setup-token", extra, {}, input);
}

test("store-setup-token: from stdin only, checked for real, merged into the secret beside the rotating login; delivered 0600; runs then change nothing", async () => {
  const e = await setupUser();
  // the secret already holds the rotating login and a key of the team's: both must stay
  const login = suite.oauth.login(e.o.email);
  await writeVaultSecret(suite.vault, e.o.user, login, e.o.email);
  const before = await readVaultSecret(suite.vault, e.o.user);
  const v = suite.vault;
  const cur = before!.data;
  await vaultApi(v.addr, v.rootToken, "POST", `claude-tokens/data/users/${e.o.user}`, {
    options: { cas: before!.version },
    data: { ...cur, teamKey: "keep-me" },
  });

  const t = newToken();
  const r = await store(e, `${t}\n`);
  assert.equal(r.code, EXIT.OK, describeRun(r));
  assert.match(r.stdout, /stored \(Vault version \d+, expires \d{4}-\d{2}-\d{2}\) and delivered/);
  assert.equal(checks(t).length, 1, "the token was checked with one real request");
  const req = checks(t)[0];
  assert.equal(req.body.max_tokens, 1, "the cheapest request: one output token");
  assert.equal(req.headers["anthropic-beta"], "oauth-2025-04-20");
  const after1 = await readVaultSecret(suite.vault, e.o.user);
  assert.equal(after1!.data.setupToken, t);
  assert.equal(after1!.data.teamKey, "keep-me", "a sibling key survives");
  assert.deepEqual(after1!.data.claudeAiOauth, login, "the rotating login survives byte for byte");
  const expires = Number(after1!.data.setupTokenExpiresAt);
  assert.ok(Math.abs(expires - (Date.now() + 365 * DAY)) < 60_000, "a year by default");
  assert.equal(fs.readFileSync(tokenFile(e), "utf8"), `${t}\n`);
  assert.equal(fs.lstatSync(tokenFile(e)).mode & 0o777, 0o600);

  const r2 = await e.run();
  assert.equal(r2.code, EXIT.OK, describeRun(r2));
  assert.equal(checks(t).length, 1, "checked by the store: not again within setupTokenCheckHours");
  assert.doesNotMatch(r2.stdout, /delivered/);
  assert.equal(e.notice(), null, "no notice");
  const version = (await readVaultSecret(suite.vault, e.o.user))!.version;
  clock.t += 7 * 3_600_000;
  const r3 = await e.run();
  assert.equal(r3.code, EXIT.OK, describeRun(r3));
  assert.equal(checks(t).length, 2, "checked again after 6 hours");
  assert.equal((await readVaultSecret(suite.vault, e.o.user))!.version, version, "a run never writes Vault in this mode");
  assert.equal(posts(e).length, 0);

  // the file removed or changed by hand: the next run puts it back
  fs.writeFileSync(tokenFile(e), "sk-ant-oat01-something-else-entirely-0000\n");
  const r4 = await e.run();
  assert.match(r4.stdout, /delivered-setup-token/, describeRun(r4));
  assert.equal(fs.readFileSync(tokenFile(e), "utf8"), `${t}\n`);
});

test("store-setup-token refuses, storing nothing: no input, not a token, a token the API rejects, a token in argv", async () => {
  const e = await setupUser();
  const empty = await e.run("store-setup-token");
  assert.equal(empty.code, EXIT.USAGE, describeRun(empty));
  assert.match(empty.stderr, /not a setup token/);
  const bad = await store(e, "sk-ant-api03-not-a-setup-token\n");
  assert.equal(bad.code, EXIT.USAGE);
  const revoked = newToken();
  api.revoke(revoked);
  const rej = await store(e, `${revoked}\n`);
  assert.equal(rej.code, EXIT.LOGIN_REQUIRED, describeRun(rej));
  assert.match(rej.stderr, /rejected \(401 authentication_error.*nothing stored/);
  const argv = await e.run("store-setup-token", [newToken()]);
  assert.equal(argv.code, EXIT.USAGE);
  assert.match(argv.stderr, /never pass a token as an argument/);
  assert.equal(await readVaultSecret(suite.vault, e.o.user), null, "nothing reached Vault");
  assert.ok(!fs.existsSync(tokenFile(e)));
  // a user in setup-token mode with nothing stored: a notice says what to do, no alert
  for (let i = 0; i < 3; i++) {
    const r = await e.run();
    assert.equal(r.code, EXIT.LOGIN_REQUIRED, describeRun(r));
    clock.t += 3_600_000;
  }
  assert.match(e.notice() ?? "", /none is stored yet[\s\S]*claude setup-token[\s\S]*store-setup-token/);
  assert.equal(posts(e).length, 0, "nothing to fix on the host's side: no alert");
});

test("a revoked token: one alert over many runs saying what to do; a new token resolves it; the old one is replaced in the file", async () => {
  const e = await setupUser();
  const t = newToken();
  assert.equal((await store(e, t)).code, EXIT.OK);
  api.revoke(t);
  for (let h = 0; h < 24; h++) {
    clock.t += 3_600_000;
    const r = await e.run();
    assert.ok(([EXIT.OK, EXIT.LOGIN_REQUIRED] as number[]).includes(r.code), describeRun(r));
  }
  let p = posts(e);
  assert.equal(p.length, 1, p.join("\n"));
  assert.match(
    p[0],
    /Claude login required .*the setup token was rejected \(401 authentication_error.* must run `claude setup-token` .* then `claude-token-renew store-setup-token`/,
  );
  assert.match(e.notice() ?? "", /rejected[\s\S]*store-setup-token/);
  const t2 = newToken();
  assert.equal((await store(e, t2)).code, EXIT.OK);
  const r = await e.run();
  assert.equal(r.code, EXIT.OK, describeRun(r));
  p = posts(e);
  assert.equal(p.length, 2);
  assert.match(p[1], /resolved: Claude login required/);
  assert.equal(fs.readFileSync(tokenFile(e), "utf8"), `${t2}\n`);
  assert.equal(e.notice(), null);
});

test("expiry: the warning fires once when 30 days are left (not before), is resolved by a newer token; an expired token is login required", async () => {
  const e = await setupUser();
  const t = newToken();
  const ends = new Date(clock.t + 40 * DAY).toISOString().slice(0, 10);
  assert.equal((await store(e, t, ["--expires", ends])).code, EXIT.OK);
  const endMs = Date.parse(`${ends}T00:00:00Z`);
  let warnedAt: number | null = null;
  for (let d = 0; d < 26; d++) {
    const r = await e.run();
    assert.equal(r.code, EXIT.OK, describeRun(r));
    if (warnedAt === null && posts(e).length) warnedAt = clock.t;
    clock.t += DAY / 2;
  }
  const p = posts(e);
  assert.equal(p.length, 1, p.join("\n"));
  assert.match(p[0], /ends soon: the setup token expires .* \(in \d+ days\)\. .*store-setup-token/);
  assert.ok(warnedAt !== null && endMs - warnedAt <= 30 * DAY && endMs - warnedAt > 29 * DAY, "at the threshold, not before");
  assert.match(e.notice() ?? "", /Heads up: the setup token expires/);

  // past the end: login required (the deadline warning ends silently under it)
  clock.t = endMs + 3_600_000;
  const r = await e.run();
  assert.equal(r.code, EXIT.LOGIN_REQUIRED, describeRun(r));
  assert.match(posts(e)[1], /login required .*the setup token expired/);
  assert.equal(posts(e).length, 2);
  // a new token (a year) resolves it
  assert.equal((await store(e, newToken())).code, EXIT.OK);
  assert.equal((await e.run()).code, EXIT.OK);
  assert.match(posts(e)[2], /resolved: Claude login required/);
  assert.equal(posts(e).length, 3);
});

test("rotating mode: a push keeps the stored setup token; back from setup-token mode the token file is removed", async () => {
  const e = await setupUser();
  const t = newToken();
  assert.equal((await store(e, t)).code, EXIT.OK);
  e.writeUsers({ claudeLogin: "rotating" });
  // a login near expiry: the agent refreshes and pushes to Vault
  e.writeCreds(suite.oauth.login(e.o.email, { accessTtlSeconds: 60 }));
  const r = await e.run();
  assert.equal(r.code, EXIT.OK, describeRun(r));
  assert.match(r.stdout, /refreshed.*pushed-to-vault/, r.stdout);
  assert.match(r.stdout, /removed-setup-token-file/);
  assert.ok(!fs.existsSync(tokenFile(e)), "new Claude processes no longer get the long-lived token");
  const s = await readVaultSecret(suite.vault, e.o.user);
  assert.equal(s!.data.setupToken, t, "the setup token stays in Vault beside the pushed login");
  assert.equal(s!.data.claudeAiOauth.refreshToken, e.readCreds().claudeAiOauth.refreshToken);
  assert.equal(sha256(s!.data.claudeAiOauth.refreshToken), s!.custom.refreshTokenSha256);
});
