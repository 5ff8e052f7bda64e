/**
 * Claude token renewal on a real systemd host, end to end: the program's own scripts (captured
 * under mocks) install the agent, units, config and the user's AppRole credential; Vault is a
 * real server; Anthropic's OAuth/profile endpoints and Slack are the test fakes.
 *
 * The Vault resources are created in the real Vault by a mock hook doing what the vault
 * plugin would (the plugin cannot be built on these machines; see README "Toolchain").
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as YAML from "yaml";
import { shq } from "../../components/scripts/shell";
import { capture, MiniEngine } from "../lib/engine";
import { setResourceHook } from "../lib/mocks";
import { startVault, vaultRequest, VaultServer } from "../lib/services";
import { FakeAnthropicOAuth, startFakeAnthropic } from "../fakes/anthropic-oauth";
import { FakeSlack, startFakeSlack } from "../fakes/slack";
import { boot, createHost, destroyHost, run, TestHost } from "./lib/testhost";

let h: TestHost;
let vault: VaultServer;
let oauth: FakeAnthropicOAuth;
let slack: FakeSlack;
let engine: MiniEngine;
const issuedSecrets: string[] = [];
const KEY = fs.readFileSync(path.join(__dirname, "../../roster.example.yaml"), "utf8").match(/ssh-ed25519 \S+/)![0];

/** What the vault plugin would do for each resource type, against the real server. */
async function vaultHook(type: string, _name: string, i: Record<string, any>): Promise<Record<string, any> | undefined> {
  const v = (m: string, p: string, b?: unknown) => vaultRequest(vault, vault.rootToken, m, p, b);
  switch (type) {
    case "vault:index/mount:Mount":
      await v("POST", `sys/mounts/${i.path}`, { type: i.type, options: i.options });
      return { path: i.path };
    case "vault:kv/secretBackendV2:SecretBackendV2":
      await v("POST", `${i.mount}/config`, { cas_required: i.casRequired, max_versions: i.maxVersions });
      return undefined;
    case "vault:index/authBackend:AuthBackend":
      await v("POST", `sys/auth/${i.path}`, { type: i.type });
      return { path: i.path };
    case "vault:index/policy:Policy":
      await v("PUT", `sys/policies/acl/${i.name}`, { policy: i.policy });
      return undefined;
    case "vault:appRole/authBackendRole:AuthBackendRole": {
      await v("POST", `auth/${i.backend}/role/${i.roleName}`, {
        token_policies: i.tokenPolicies, token_no_default_policy: i.tokenNoDefaultPolicy, token_type: i.tokenType,
        token_ttl: i.tokenTtl, token_max_ttl: i.tokenMaxTtl, secret_id_ttl: i.secretIdTtl, secret_id_num_uses: i.secretIdNumUses, bind_secret_id: i.bindSecretId,
      });
      const r = (await v("GET", `auth/${i.backend}/role/${i.roleName}/role-id`)) as { data: { role_id: string } };
      return { roleId: r.data.role_id };
    }
    case "vault:appRole/authBackendRoleSecretId:AuthBackendRoleSecretId": {
      const r = (await v("POST", `auth/${i.backend}/role/${i.roleName}/secret-id`, { metadata: i.metadata })) as { data: { secret_id: string; secret_id_accessor: string } };
      issuedSecrets.push(r.data.secret_id);
      return { secretId: r.data.secret_id, accessor: r.data.secret_id_accessor };
    }
  }
  return undefined;
}

const sh = async (cmd: string) => (await run(h, cmd)).stdout.trim();
const asEmo = (cmd: string, stdin?: string) => run(h, `setpriv --reuid=emo --regid=emo --init-groups --reset-env bash -c ${shq(cmd)}`, { stdin });

before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-token-host-"));
  vault = await startVault({ dir });
  oauth = await startFakeAnthropic({ clientId: "host-test-client" });
  slack = await startFakeSlack();
  h = await createHost("ws-token");
  await boot(h);
  engine = new MiniEngine((command, stdin) => run(h, command, { stdin, check: false }));
  setResourceHook(vaultHook);
  const roster = YAML.stringify({
    version: 1,
    users: [
      { name: "viktor", uid: 2000, role: "admin", email: "viktor@example.com", forgejo: "viktor", sshKeys: [KEY] },
      { name: "emo", uid: 2001, role: "power-user", email: "emo@example.com", forgejo: "ebarzin", sshKeys: [KEY] },
    ],
  });
  const specs = await capture({
    roster,
    config: {
      vaultAddress: vault.addr, claudeTokenUrl: oauth.tokenUrl, claudeProfileUrl: oauth.profileUrl,
      claudeClientId: "host-test-client", slackWebhook: slack.webhookUrl,
    },
  });
  setResourceHook(undefined);
  await engine.up(specs);
});
after(async () => {
  setResourceHook(undefined);
  if (h) await destroyHost(h);
  await oauth?.stop();
  await slack?.stop();
  await vault?.stop();
});

test("the program installs the agent, its units and emo's AppRole credential; the timer is enabled", async () => {
  assert.equal(await sh("systemctl is-enabled claude-token-renew@emo.timer"), "enabled");
  assert.equal(await sh("systemctl is-active claude-token-renew@emo.timer"), "active");
  assert.equal(await sh("stat -c '%a %U' /etc/workstations/claude-token-renew.slack"), "600 root");
  const cfg = JSON.parse(await sh("cat /etc/workstations/claude-token-renew.json"));
  assert.equal(cfg.tokenUrl, oauth.tokenUrl);
  assert.equal(await sh("stat -c '%a %U' /home/emo/.config/claude-token-renew/vault.json"), "600 emo");
});

test("a run on the host, as the user, refreshes near expiry and backs up to emo's Vault path", async () => {
  // An 8 h login whose access token (as the local file says) expires in a minute.
  const login = oauth.login("emo@example.com", { accessTtlSeconds: 8 * 3600 });
  const creds = { claudeAiOauth: { ...login, expiresAt: Date.now() + 60_000 }, mcpOAuth: { keep: "me" } };
  await asEmo("umask 077; mkdir -p ~/.claude; cat > ~/.claude/.credentials.json", JSON.stringify(creds));
  await sh("systemctl start claude-token-renew@emo.service");
  const show = await sh("systemctl show -p Result -p ExecMainStatus -p User claude-token-renew@emo.service");
  assert.match(show, /Result=success/);
  if (!/ExecMainStatus=0/.test(show)) assert.fail(`agent exit: ${show}\n${await sh("journalctl -u claude-token-renew@emo.service --no-pager -o cat | tail -20")}`);
  assert.match(show, /User=emo/);
  const local = JSON.parse(await sh("cat /home/emo/.claude/.credentials.json"));
  assert.notEqual(local.claudeAiOauth.refreshToken, login.refreshToken, "rotated");
  assert.deepEqual(local.mcpOAuth, { keep: "me" });
  assert.equal(await sh("stat -c '%a %U' /home/emo/.claude/.credentials.json"), "600 emo");
  const secret = (await vaultRequest(vault, vault.rootToken, "GET", "claude-tokens/data/users/emo")) as { data: { data: { claudeAiOauth: { refreshToken: string } }; metadata: { version: number } } };
  assert.equal(secret.data.data.claudeAiOauth.refreshToken, local.claudeAiOauth.refreshToken);
  assert.equal(oauth.revocations, 0);
  // A second run with nothing to do writes nothing to Vault.
  await sh("systemctl start claude-token-renew@emo.service");
  const again = (await vaultRequest(vault, vault.rootToken, "GET", "claude-tokens/metadata/users/emo")) as { data: { current_version: number } };
  assert.equal(again.data.current_version, secret.data.metadata.version);
  // Nothing secret reached the journal.
  const journal = await sh("journalctl -u claude-token-renew@emo.service --no-pager -o cat");
  for (const s of [...oauth.issued, ...issuedSecrets, slack.webhookUrl]) assert.ok(!journal.includes(s), "a secret reached the journal");
});

test("emo's credential cannot touch viktor's path on the real Vault", async () => {
  const cred = JSON.parse(await sh("cat /home/emo/.config/claude-token-renew/vault.json"));
  const login = (await vaultRequest(vault, "", "POST", "auth/approle/login", cred)) as { auth: { client_token: string } };
  await assert.rejects(vaultRequest(vault, login.auth.client_token, "GET", "claude-tokens/data/users/viktor"), /HTTP 403/);
  await assert.rejects(vaultRequest(vault, login.auth.client_token, "POST", "claude-tokens/data/users/viktor", { data: { x: crypto.randomUUID() } }), /HTTP 403/);
});
