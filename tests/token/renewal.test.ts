// Renewal, Vault sync, the race with Claude, and recovery, on a real Vault-API server.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { startFakeAnthropic } from "../../dev/fakes/anthropic-oauth";
import {
  AgentEnv,
  claudeStandInRefresh,
  describeRun,
  EXIT,
  findLeaks,
  readVaultSecret,
  sha256,
  sleep,
  TokenSuite,
  vaultApi,
  writeVaultSecret,
} from "../../dev/token";

const suite = new TokenSuite({ prefix: "ctr-renew-", users: "r", clocked: true, slackAndProxy: true });
const { clock, envs } = suite;
const secretIds: string[] = [];

before(() => suite.start());
after(async () => {
  const leaks = findLeaks(
    envs.flatMap((e) => e.outputs),
    [...suite.oauth.issued, ...secretIds, suite.slack.webhookUrl],
  );
  await suite.stop();
  assert.deepEqual(leaks, [], "no token, secret_id or webhook in any agent output");
});

async function newUser(opts: { config?: Record<string, unknown>; clock?: boolean } = {}): Promise<AgentEnv> {
  const e = await suite.newUser(opts);
  secretIds.push(e.cred.secret_id);
  return e;
}

async function runOk(e: AgentEnv, expect: number = EXIT.OK) {
  const r = await e.run();
  assert.equal(r.code, expect, describeRun(r));
  return r;
}

test("refresh near expiry: Vault gets the new version; the local file keeps mcpOAuth and other keys at 0600", async () => {
  const e = await newUser();
  const l = suite.oauth.login(`${e.o.user}@example.com`); // 8 h access token
  const extra = { mcpOAuth: { "linear|abc": { serverName: "linear", accessToken: "mcp-access" } }, someFutureKey: [1, 2, 3] };
  e.writeCreds(l, extra);
  fs.chmodSync(e.credFile, 0o644); // even a loose file ends up 0600 after a write

  // First run: not near expiry -> no refresh, first push (v1).
  let r = await runOk(e);
  assert.match(r.stdout, /pushed-to-vault\(v1\)/);
  assert.doesNotMatch(r.stdout, /refreshed/);
  let v = await readVaultSecret(suite.vault, e.o.user);
  assert.equal(v?.version, 1);
  assert.equal(v?.custom.refreshTokenSha256, sha256(l.refreshToken));
  assert.equal(v?.data.email, e.o.email);
  assert.equal(v?.data.mcpOAuth, undefined, "only claudeAiOauth goes to Vault");

  // 7.5 h later the access token is within the 1 h margin.
  clock.t += 7.5 * 3600_000;
  const refreshes0 = suite.oauth.refreshes;
  r = await runOk(e);
  assert.match(r.stdout, /refreshed/);
  assert.equal(suite.oauth.refreshes, refreshes0 + 1);
  const local = e.readCreds();
  assert.notEqual(local.claudeAiOauth.refreshToken, l.refreshToken);
  const exp = local.claudeAiOauth.expiresAt - (clock.t + 8 * 3600_000); // computed at the answer
  assert.ok(exp >= 0 && exp < 30_000, `expiresAt off by ${exp} ms`);
  // refresh does not extend the login (the server answers in whole seconds, so allow 2 s)
  assert.ok(Math.abs(local.claudeAiOauth.refreshTokenExpiresAt - l.refreshTokenExpiresAt!) < 2000, "refresh does not extend the login");
  assert.equal(local.claudeAiOauth.subscriptionType, "enterprise", "unknown oauth fields kept");
  assert.deepEqual(local.mcpOAuth, extra.mcpOAuth);
  assert.deepEqual(local.someFutureKey, extra.someFutureKey);
  assert.equal(e.credMode(), 0o600);
  assert.equal(fs.readdirSync(e.claudeDir).filter((f) => f.includes(".tmp.")).length, 0, "no temp files left");
  v = await readVaultSecret(suite.vault, e.o.user);
  assert.equal(v?.version, 2);
  assert.deepEqual(v?.data.claudeAiOauth, local.claudeAiOauth);
  assert.equal(v?.custom.refreshTokenSha256, sha256(local.claudeAiOauth.refreshToken));
  assert.equal(v?.custom.expiresAt, String(local.claudeAiOauth.expiresAt));
  assert.equal(suite.oauth.revocations, 0);

  // Nothing to do: zero Vault writes, zero Anthropic calls.
  suite.proxy.reset();
  const req0 = suite.oauth.tokenRequests + suite.oauth.profileRequests;
  r = await runOk(e);
  assert.match(r.stdout, /nothing to do/);
  assert.equal(suite.proxy.kvWrites.length, 0);
  assert.equal(suite.oauth.tokenRequests + suite.oauth.profileRequests, req0);

  // status sees the same thing and writes nothing
  const cache0 = fs.readFileSync(path.join(e.stateDir, "vault-token.json"), "utf8");
  const s = await e.run("status", ["--json"]);
  assert.equal(s.code, 0, describeRun(s));
  const st = JSON.parse(s.stdout);
  assert.equal(st.vault.inSync, true);
  assert.equal(st.vault.version, 2);
  assert.equal(st.identityVerified.email, e.o.email);
  assert.equal(suite.proxy.kvWrites.length, 0);
  assert.equal(fs.readFileSync(path.join(e.stateDir, "vault-token.json"), "utf8"), cache0);
});

test("a rotation Claude did itself is pushed (detected by refresh-token hash), without the agent refreshing", async () => {
  const e = await newUser();
  e.writeCreds(suite.oauth.login(`${e.o.user}@example.com`));
  await runOk(e);
  const res = await e.claudeRefresh();
  assert.equal(res, "refreshed");
  const refreshes0 = suite.oauth.refreshes;
  const r = await runOk(e);
  assert.match(r.stdout, /pushed-to-vault\(v2\)/);
  assert.equal(suite.oauth.refreshes, refreshes0, "the agent did not rotate");
  const v = await readVaultSecret(suite.vault, e.o.user);
  assert.equal(v?.custom.refreshTokenSha256, sha256(e.readCreds().claudeAiOauth.refreshToken));
});

test("the race: 10 agent runs while a claude stand-in refreshes under its locks -> zero revocations", async () => {
  // Both sides want to refresh every time (huge margin, real clock), so they contend constantly.
  const e = await newUser({ config: { refreshMarginSeconds: 1e9 }, clock: false });
  const o2 = await startFakeAnthropic({ accessTtlSeconds: 3600 });
  e.writeConfig({ refreshMarginSeconds: 1e9, tokenUrl: o2.tokenUrl, profileUrl: o2.profileUrl, clientId: o2.opts.clientId });
  try {
    e.writeCreds(o2.login(`${e.o.user}@example.com`), { mcpOAuth: { keep: true } });
    let stop = false;
    const standIn: string[] = [];
    const claude = (async () => {
      while (!stop) {
        standIn.push(await claudeStandInRefresh({ credFile: e.credFile, home: e.home, tokenUrl: o2.tokenUrl, clientId: o2.opts.clientId, marginMs: 1e12 }));
        await sleep(Math.random() * 30);
      }
    })();
    const codes: number[] = [];
    // two streams of 5 agent runs, so agents also race each other
    await Promise.all(
      [0, 1].map(async () => {
        for (let i = 0; i < 5; i++) codes.push((await e.run()).code);
      }),
    );
    stop = true;
    await claude;
    const agentOut = e.outputs.slice(-10);
    assert.equal(o2.revocations, 0, `family revoked! stand-in: ${JSON.stringify(standIn.slice(-5))}\n${agentOut.map(describeRun).join("\n")}`);
    assert.equal(o2.invalidGrants, 0);
    assert.deepEqual(
      codes.filter((c) => c !== EXIT.OK),
      [],
      agentOut.map(describeRun).join("\n"),
    );
    // (a run that hits a CAS conflict redoes its pass, and with this huge margin refreshes again)
    const agentRefreshes = agentOut.reduce((k, r) => k + (r.stdout.match(/\brefreshed\b/g) ?? []).length, 0);
    assert.ok(agentRefreshes >= 5, `agent refreshed ${agentRefreshes} times`);
    assert.ok(standIn.filter((s) => s === "refreshed").length >= 5, `stand-in: ${standIn.length} tries`);
    assert.deepEqual(
      standIn.filter((s) => s.startsWith("error")),
      [],
    );
    assert.equal(o2.refreshes, agentRefreshes + standIn.filter((s) => s === "refreshed").length);
    const local = e.readCreds();
    assert.ok(o2.isLiveRefresh(local.claudeAiOauth.refreshToken), "the file holds the live token");
    assert.deepEqual(local.mcpOAuth, { keep: true });
    // settle: a normal run brings Vault in step
    e.writeConfig({ refreshMarginSeconds: 60, tokenUrl: o2.tokenUrl, profileUrl: o2.profileUrl, clientId: o2.opts.clientId });
    await runOk(e);
    const v = await readVaultSecret(suite.vault, e.o.user);
    assert.equal(v?.custom.refreshTokenSha256, sha256(e.readCreds().claudeAiOauth.refreshToken));
    assert.equal(fs.existsSync(path.join(e.claudeDir, ".oauth_refresh.lock")), false);
    assert.equal(fs.existsSync(path.join(e.home, ".claude.lock")), false);
    secretIds.push(...o2.issued); // leak-check these too
  } finally {
    await o2.stop();
  }
});

for (const kind of ["missing", "truncated", "invalid JSON", "symlink", "no claudeAiOauth"] as const) {
  test(`recovery: local file ${kind} -> restored from Vault`, async () => {
    const e = await newUser();
    const l = suite.oauth.login(`${e.o.user}@example.com`);
    e.writeCreds(l, { mcpOAuth: { a: 1 } });
    await runOk(e); // v1 in Vault
    const full = fs.readFileSync(e.credFile, "utf8");
    const decoy = path.join(e.root, "decoy.json");
    fs.writeFileSync(decoy, '{"not":"this"}');
    switch (kind) {
      case "missing":
        fs.unlinkSync(e.credFile);
        break;
      case "truncated":
        fs.writeFileSync(e.credFile, full.slice(0, Math.floor(full.length / 2)));
        break;
      case "invalid JSON":
        fs.writeFileSync(e.credFile, '{"claudeAiOauth": nope}');
        break;
      case "symlink":
        fs.unlinkSync(e.credFile);
        fs.symlinkSync(decoy, e.credFile);
        break;
      case "no claudeAiOauth":
        fs.writeFileSync(e.credFile, JSON.stringify({ mcpOAuth: { a: 2 } }));
        break;
    }
    const r = await runOk(e);
    assert.match(r.stdout, /restored-from-vault\(v1\)/);
    const st = fs.lstatSync(e.credFile);
    assert.ok(st.isFile() && !st.isSymbolicLink(), "a regular file, the symlink replaced");
    assert.equal(st.mode & 0o777, 0o600);
    assert.deepEqual(e.readCreds().claudeAiOauth, l);
    if (kind === "no claudeAiOauth") assert.deepEqual(e.readCreds().mcpOAuth, { a: 2 }, "other keys kept");
    assert.equal(fs.readFileSync(decoy, "utf8"), '{"not":"this"}', "symlink target untouched");
    assert.ok(suite.oauth.isLiveRefresh(l.refreshToken));
    const again = await runOk(e);
    assert.match(again.stdout, /nothing to do/);
  });
}

test("recovery: a strictly newer Vault copy replaces an older local file (e.g. home restored from backup)", async () => {
  const e = await newUser();
  const l = suite.oauth.login(`${e.o.user}@example.com`);
  e.writeCreds(l, { mcpOAuth: { keep: 1 } });
  await runOk(e);
  const old = fs.readFileSync(e.credFile, "utf8");
  clock.t += 60_000;
  await e.claudeRefresh();
  await runOk(e); // pushes the rotated token (v2)
  fs.writeFileSync(e.credFile, old, { mode: 0o600 }); // the old (spent!) copy comes back
  const r = await runOk(e);
  assert.match(r.stdout, /restored-from-vault\(v2\)/);
  assert.equal(suite.oauth.revocations, 0, "the spent token was never presented");
  assert.ok(suite.oauth.isLiveRefresh(e.readCreds().claudeAiOauth.refreshToken));
  assert.deepEqual(e.readCreds().mcpOAuth, { keep: 1 });
});

test("a stale Vault copy is never restored over a newer local file (even if its metadata claims newer)", async () => {
  const e = await newUser();
  const l = suite.oauth.login(`${e.o.user}@example.com`);
  e.writeCreds(l);
  await runOk(e); // v1 = l
  clock.t += 60_000;
  await e.claudeRefresh();
  const newer = e.readCreds().claudeAiOauth;
  // Vault still holds l (older). Lie in its metadata: claim it is newer.
  await vaultApi(suite.vault.addr, suite.vault.rootToken, "POST", `claude-tokens/metadata/users/${e.o.user}`, {
    custom_metadata: { refreshTokenSha256: sha256(l.refreshToken), expiresAt: String(newer.expiresAt + 3600_000) },
  });
  const r = await runOk(e);
  assert.doesNotMatch(r.stdout, /restored/);
  assert.match(r.stdout, /pushed-to-vault\(v2\)/);
  assert.deepEqual(e.readCreds().claudeAiOauth, newer);
  assert.equal(suite.oauth.revocations, 0);
  // plain case: Vault older by metadata too -> push, never restore
  clock.t += 60_000;
  await e.claudeRefresh();
  const newest = e.readCreds().claudeAiOauth;
  const r2 = await runOk(e);
  assert.match(r2.stdout, /pushed-to-vault\(v3\)/);
  assert.deepEqual(e.readCreds().claudeAiOauth, newest);
});

test("CAS conflict with a newer competing write -> re-read, restore it, never overwrite", async () => {
  const e = await newUser();
  const l = suite.oauth.login(`${e.o.user}@example.com`);
  e.writeCreds(l);
  let competing: any = null;
  suite.proxy.before = async (method, p) => {
    if (method === "POST" && p === `/v1/claude-tokens/data/users/${e.o.user}` && !competing) {
      // Another writer rotated the same login and stored it first.
      clock.t += 60_000;
      const r = await fetch(suite.oauth.tokenUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ grant_type: "refresh_token", refresh_token: l.refreshToken, client_id: suite.oauth.opts.clientId }),
      });
      const j: any = await r.json();
      competing = { ...l, accessToken: j.access_token, refreshToken: j.refresh_token, expiresAt: clock.t + j.expires_in * 1000 };
      await writeVaultSecret(suite.vault, e.o.user, competing, e.o.email);
    }
  };
  try {
    const r = await runOk(e);
    assert.match(r.stdout, /cas-conflict/);
    assert.match(r.stdout, /restored-from-vault\(v1\)/);
    assert.doesNotMatch(r.stdout, /pushed-to-vault/);
  } finally {
    suite.proxy.before = null;
  }
  const v = await readVaultSecret(suite.vault, e.o.user);
  assert.equal(v?.version, 1, "the competing version was not overwritten");
  assert.equal(v?.data.claudeAiOauth.refreshToken, competing.refreshToken);
  assert.deepEqual(e.readCreds().claudeAiOauth, competing);
  assert.equal(suite.oauth.revocations, 0);
});

test("CAS conflict with an older competing write -> re-read, then push with the new version", async () => {
  const e = await newUser();
  const l = suite.oauth.login(`${e.o.user}@example.com`);
  e.writeCreds(l);
  await runOk(e); // v1
  clock.t += 60_000;
  await e.claudeRefresh();
  let fired = false;
  suite.proxy.before = async (method, p) => {
    if (method === "POST" && p === `/v1/claude-tokens/data/users/${e.o.user}` && !fired) {
      fired = true;
      await writeVaultSecret(suite.vault, e.o.user, l, e.o.email); // v2 = the old token again
    }
  };
  try {
    const r = await runOk(e);
    assert.match(r.stdout, /cas-conflict/);
    assert.match(r.stdout, /pushed-to-vault\(v3\)/);
  } finally {
    suite.proxy.before = null;
  }
  const v = await readVaultSecret(suite.vault, e.o.user);
  assert.equal(v?.custom.refreshTokenSha256, sha256(e.readCreds().claudeAiOauth.refreshToken));
});

test("the order this host saw rotations in beats expiresAt (the clock stepped back)", async () => {
  const e = await newUser();
  const l = suite.oauth.login(`${e.o.user}@example.com`);
  e.writeCreds(l);
  await runOk(e); // v1 = l, seen first
  clock.t -= 3600_000; // NTP steps the clock back an hour; Claude rotates now
  await e.claudeRefresh();
  const rotated = e.readCreds().claudeAiOauth;
  assert.ok(rotated.expiresAt < l.expiresAt, "the newer token has the smaller expiresAt");
  const r = await runOk(e);
  assert.doesNotMatch(r.stdout, /restored/, "the spent Vault copy must not come back");
  assert.match(r.stdout, /pushed-to-vault\(v2\)/);
  assert.deepEqual(e.readCreds().claudeAiOauth, rotated);
  // and an old copy put back while Vault is down is still known to be old once it is up
  const rotatedText = fs.readFileSync(e.credFile, "utf8");
  e.writeCreds(l);
  suite.proxy.down = true;
  try {
    assert.equal((await e.run()).code, EXIT.TRANSIENT);
  } finally {
    suite.proxy.down = false;
  }
  const r2 = await runOk(e);
  assert.match(r2.stdout, /restored-from-vault\(v2\)/);
  assert.deepEqual(e.readCreds(), JSON.parse(rotatedText));
  assert.equal(suite.oauth.revocations, 0);
  clock.t += 3600_000;
});
