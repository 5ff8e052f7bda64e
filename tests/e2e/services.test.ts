// Smoke test for the dev services (dev/services.ts):
//   node --require ts-node/register/transpile-only --test tests/e2e/services.test.ts
// Fails (never skips) when the offline toolchain is missing.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { requireToolchain, startForgejo, startVault, vaultRequest, ForgejoServer, VaultServer } from "../../dev/services";
import { tempDir } from "../../dev/tmp";

test("dev services: Vault KV v2 round trip and a Forgejo repo collaborator", { timeout: 240_000 }, async (t) => {
  // Throws "... run `dev/toolchain build` ..." when a binary is missing.
  requireToolchain();

  const dir = tempDir("ws-services-");
  let vault: VaultServer | undefined;
  let forgejo: ForgejoServer | undefined;
  try {
    const [vr, fr] = await Promise.allSettled([startVault({ dir: path.join(dir, "vault") }), startForgejo({ dir: path.join(dir, "forgejo") })]);
    if (vr.status === "fulfilled") vault = vr.value;
    if (fr.status === "fulfilled") forgejo = fr.value;
    if (vr.status === "rejected") throw vr.reason;
    if (fr.status === "rejected") throw fr.reason;
    const v = vault as VaultServer;
    const f = forgejo as ForgejoServer;

    await t.test("vault: KV v2 write and read at secret/", async () => {
      const value = `v-${Date.now()}`;
      await vaultRequest(v, v.rootToken, "POST", "secret/data/workstations/smoke", { data: { value } });
      const got = (await vaultRequest(v, v.rootToken, "GET", "secret/data/workstations/smoke")) as {
        data: { data: { value: string }; metadata: { version: number } };
      };
      assert.equal(got.data.data.value, value);
      assert.equal(got.data.metadata.version, 1);
    });

    await t.test("vault: a wrong token is refused", async () => {
      await assert.rejects(vaultRequest(v, "not-a-token", "GET", "secret/data/workstations/smoke"), /HTTP 403/);
    });

    await t.test("forgejo: infra repo exists with master as default branch", async () => {
      const repo = await f.api("GET", `repos/${f.repo.owner}/${f.repo.name}`);
      assert.equal(repo.status, 200);
      assert.equal((repo.json as { default_branch: string }).default_branch, "master");
      const br = await f.api("GET", `repos/${f.repo.owner}/${f.repo.name}/branches/master`);
      assert.equal(br.status, 200);
    });

    await t.test("forgejo: create a user and make them a write collaborator", async () => {
      const u = await f.createUser("smokeuser", "smokeuser@example.invalid");
      assert.ok(u.id > 0);
      const put = await f.api("PUT", `repos/${f.repo.owner}/${f.repo.name}/collaborators/${u.name}`, { permission: "write" });
      assert.equal(put.status, 204, JSON.stringify(put.json));
      const isCollab = await f.api("GET", `repos/${f.repo.owner}/${f.repo.name}/collaborators/${u.name}`);
      assert.equal(isCollab.status, 204);
      const perm = await f.api("GET", `repos/${f.repo.owner}/${f.repo.name}/collaborators/${u.name}/permission`);
      assert.equal(perm.status, 200);
      assert.equal((perm.json as { permission: string }).permission, "write");
    });
  } finally {
    await Promise.all([vault?.stop(), forgejo?.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
