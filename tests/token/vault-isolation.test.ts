// Isolation on a real Vault-API server (OpenBao dev server), with the exact policy HCL from
// docs/CONTRACTS.md: user A's AppRole can never read or write user B's path.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import {
  addVaultUser,
  AgentEnv,
  AppRoleCred,
  appRoleLogin,
  describeRun,
  EXIT,
  findLeaks,
  policyHcl,
  readVaultSecret,
  TokenSuite,
  vaultApi,
  VaultProxy,
} from "../../dev/token";

const suite = new TokenSuite({ prefix: "ctr-vault-" });
const { envs } = suite;
let alice: AppRoleCred;
let bob: AppRoleCred;

before(async () => {
  await suite.start();
  alice = await addVaultUser(suite.vault, "alice");
  bob = await addVaultUser(suite.vault, "bob");
});
after(async () => {
  const leaks = findLeaks(
    envs.flatMap((e) => e.outputs),
    [...suite.oauth.issued, alice.secret_id, bob.secret_id],
  );
  await suite.stop();
  assert.deepEqual(leaks, []);
});

const data = (v: string) => ({ options: { cas: 0 }, data: { claudeAiOauth: { accessToken: v } } });

test("the CONTRACTS policy confines a user to their own path", async () => {
  assert.match(policyHcl("alice"), /path "claude-tokens\/data\/users\/alice"/);
  assert.doesNotMatch(policyHcl("alice"), /<user>|\*/, "no placeholders or globs left");
  const a = await appRoleLogin(suite.vault.addr, alice);
  const b = await appRoleLogin(suite.vault.addr, bob);

  // own path: create, read, metadata read/update of custom_metadata
  assert.equal((await vaultApi(suite.vault.addr, a, "POST", "claude-tokens/data/users/alice", data("a1"))).status, 200);
  assert.equal((await vaultApi(suite.vault.addr, b, "POST", "claude-tokens/data/users/bob", data("b1"))).status, 200);
  assert.equal((await vaultApi(suite.vault.addr, a, "GET", "claude-tokens/data/users/alice")).status, 200);
  assert.equal((await vaultApi(suite.vault.addr, a, "GET", "claude-tokens/metadata/users/alice")).status, 200);
  assert.equal((await vaultApi(suite.vault.addr, a, "POST", "claude-tokens/metadata/users/alice", { custom_metadata: { k: "v" } })).status, 204);

  // B's path with A's token: every operation denied
  const denied: [string, string, unknown?][] = [
    ["GET", "claude-tokens/data/users/bob"],
    ["POST", "claude-tokens/data/users/bob", { options: { cas: 1 }, data: { claudeAiOauth: { accessToken: "evil" } } }],
    ["PATCH", "claude-tokens/data/users/bob", { data: { x: 1 } }],
    ["GET", "claude-tokens/metadata/users/bob"],
    ["POST", "claude-tokens/metadata/users/bob", { custom_metadata: { refreshTokenSha256: "x" } }],
    ["DELETE", "claude-tokens/data/users/bob"],
    ["DELETE", "claude-tokens/metadata/users/bob"],
    ["POST", "claude-tokens/destroy/users/bob", { versions: [1] }],
    ["POST", "claude-tokens/undelete/users/bob", { versions: [1] }],
    ["GET", "claude-tokens/data/users/bobby"],
    ["LIST", "claude-tokens/metadata/users"],
    ["GET", "claude-tokens/config"],
  ];
  for (const [m, p, body] of denied) {
    const r = await vaultApi(suite.vault.addr, a, m, p, body);
    assert.equal(r.status, 403, `${m} ${p} with alice's token must be denied, got ${r.status}`);
  }
  // nor can A delete or destroy its own history, change its metadata settings, or touch Vault itself
  for (const [m, p, body] of [
    ["DELETE", "claude-tokens/data/users/alice"],
    ["DELETE", "claude-tokens/metadata/users/alice"],
    ["POST", "claude-tokens/destroy/users/alice", { versions: [1] }],
    ["POST", "claude-tokens/metadata/users/alice", { max_versions: 1 }],
    ["POST", "claude-tokens/metadata/users/alice", { cas_required: false }],
    ["GET", "sys/policies/acl/claude-renew-bob"],
    ["POST", "auth/approle/role/claude-renew-bob/secret-id", {}],
  ] as [string, string, unknown?][]) {
    const r = await vaultApi(suite.vault.addr, a, m, p, body);
    assert.equal(r.status, 403, `${m} ${p} with alice's token must be denied, got ${r.status}`);
  }
  const still = await readVaultSecret(suite.vault, "bob");
  assert.equal(still?.data.claudeAiOauth.accessToken, "b1", "bob's secret unchanged");
  // CAS is required on the mount: a write without cas is refused
  const nocas = await vaultApi(suite.vault.addr, a, "POST", "claude-tokens/data/users/alice", { data: { x: 1 } });
  assert.equal(nocas.status, 400);
});

test("the agent given alice's credential for bob's account is denied, does not loop, leaves files alone", async () => {
  const proxy = await new VaultProxy(suite.vault.addr).start();
  try {
    const e = new AgentEnv({ user: "bob", email: "bob@example.com", vaultAddr: proxy.url, oauth: suite.oauth, appRole: alice });
    envs.push(e);
    const l = suite.oauth.login("bob@example.com", { accessTtlSeconds: 60 });
    e.writeCreds(l);
    const text0 = fs.readFileSync(e.credFile, "utf8");
    const before = await readVaultSecret(suite.vault, "bob");
    const r = await e.run();
    assert.equal(r.code, EXIT.VAULT_DENIED, describeRun(r));
    assert.match(r.stderr, /permission denied/);
    assert.ok(proxy.logins.length <= 2, `at most one re-login, saw ${proxy.logins.length}`);
    assert.ok(proxy.requests.length <= 5, `bounded requests, saw ${proxy.requests.length}`);
    assert.equal(proxy.kvWrites.length, 0);
    assert.equal(fs.readFileSync(e.credFile, "utf8"), text0, "local untouched");
    assert.ok(suite.oauth.isLiveRefresh(l.refreshToken), "no rotation while Vault cannot record it");
    assert.deepEqual(await readVaultSecret(suite.vault, "bob"), before);
  } finally {
    await proxy.stop();
  }
});

test("suspend: deleting the policy and secret_ids cuts an already-issued token at once", async () => {
  const carol = await addVaultUser(suite.vault, "carol");
  const t = await appRoleLogin(suite.vault.addr, carol);
  assert.equal((await vaultApi(suite.vault.addr, t, "POST", "claude-tokens/data/users/carol", data("c1"))).status, 200);
  // what the program does on suspend (docs/CONTRACTS.md, Lifecycle)
  const acc = await vaultApi(suite.vault.addr, suite.vault.rootToken, "LIST", "auth/approle/role/claude-renew-carol/secret-id");
  for (const a of acc.json.data.keys as string[]) {
    assert.equal(
      (
        await vaultApi(suite.vault.addr, suite.vault.rootToken, "POST", "auth/approle/role/claude-renew-carol/secret-id-accessor/destroy", {
          secret_id_accessor: a,
        })
      ).status,
      204,
    );
  }
  assert.equal((await vaultApi(suite.vault.addr, suite.vault.rootToken, "DELETE", "auth/approle/role/claude-renew-carol")).status, 204);
  assert.equal((await vaultApi(suite.vault.addr, suite.vault.rootToken, "DELETE", "sys/policies/acl/claude-renew-carol")).status, 204);
  assert.equal((await vaultApi(suite.vault.addr, t, "GET", "claude-tokens/data/users/carol")).status, 403, "issued token powerless");
  assert.notEqual((await vaultApi(suite.vault.addr, null, "POST", "auth/approle/login", carol)).status, 200, "no new login");
  // purge
  assert.equal((await vaultApi(suite.vault.addr, suite.vault.rootToken, "DELETE", "claude-tokens/metadata/users/carol")).status, 204);
  assert.equal(await readVaultSecret(suite.vault, "carol"), null);
});
