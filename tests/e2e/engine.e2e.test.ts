/**
 * The real engine: up from scratch, no-op up, a one-user edit, destroy --target of one user,
 * removal from the roster, and no plaintext secret in the exported state.
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { changeCollector, E2E, PROJECT_DIR, setupE2E } from "../../dev/e2e";
import { vaultRequest } from "../../dev/services";
import { hasCiphertext, plaintextSecrets, readStateAsAttacker } from "../../dev/state-audit";

let e: E2E;
const roster = YAML.parse(fs.readFileSync(path.join(PROJECT_DIR, "roster.example.yaml"), "utf8"));
const emo = () => roster.users.find((u: { name: string }) => u.name === "emo");
const timings: Record<string, number> = {};
const timed = async <T>(label: string, f: () => Promise<T>): Promise<T> => {
  const t0 = Date.now();
  try {
    return await f();
  } finally {
    timings[label] = Date.now() - t0;
  }
};
const secretIds: string[] = [];

before(async () => {
  e = await setupE2E("engine", roster);
});
after(async () => {
  if (Object.keys(timings).length) console.log(`# e2e timings (ms): ${JSON.stringify(timings)}`);
  if (e) await e.stop();
});

test("up from scratch creates every user's workstation on the host and in Vault", async () => {
  const r = await timed("up-scratch", () => e.stack.up({ color: "never" }));
  assert.equal(r.summary.result, "succeeded");
  for (const [name, uid] of [
    ["viktor", 2000],
    ["emo", 2001],
    ["nadia", 2002],
    ["sam", 2003],
  ] as const)
    assert.equal(await e.sh(`id -u ${name}`), String(uid));
  assert.equal(await e.sh("getent passwd olga || true"), "", "offboarded olga gets nothing");
  const policies = (await vaultRequest(e.vault, e.vault.rootToken, "LIST", "sys/policies/acl")) as { data: { keys: string[] } };
  assert.deepEqual(policies.data.keys.filter((k) => k.startsWith("claude-renew-")).sort(), ["claude-renew-emo", "claude-renew-nadia", "claude-renew-viktor"]);
  for (const u of ["viktor", "emo", "nadia"]) {
    const cred = JSON.parse(await e.sh(`cat /home/${u}/.config/claude-token-renew/vault.json`));
    secretIds.push(cred.secret_id);
    // The delivered AppRole credential really logs in, with only that user's policy.
    const login = (await vaultRequest(e.vault, "", "POST", "auth/approle/login", cred)) as { auth: { policies: string[] } };
    assert.deepEqual(login.auth.policies, [`claude-renew-${u}`]);
  }
  assert.equal(r.outputs.admins.value.join(","), "viktor");
});

test("a second up changes nothing; no-op preview and up are timed", async () => {
  const pv = await timed("preview-noop", () => e.stack.preview({ color: "never" }));
  assert.deepEqual(
    Object.keys(pv.changeSummary).filter((k) => k !== "same"),
    [],
  );
  const r = await timed("up-noop", () => e.stack.up({ color: "never" }));
  assert.deepEqual(
    Object.keys(r.summary.resourceChanges ?? {}).filter((k) => k !== "same"),
    [],
  );
});

test("editing one user's groups: preview and up touch only that user's resources", async () => {
  emo().groups = ["audio"];
  e.writeRoster(roster);
  const pc = changeCollector();
  await e.stack.preview({ color: "never", onEvent: pc.onEvent });
  assert.ok(pc.changed.length > 0);
  for (const c of pc.changed) assert.match(c.urn, /::emo-/, `preview touches ${c.urn}`);
  const uc = changeCollector();
  const r = await timed("up-one-user-edit", () => e.stack.up({ color: "never", onEvent: uc.onEvent }));
  assert.deepEqual(
    uc.changed.map((c) => `${c.op} ${c.urn.split("::").pop()}`),
    ["update emo-account"],
  );
  assert.equal(r.summary.resourceChanges?.update, 1);
  assert.match(await e.sh("id -nG emo"), /\baudio\b/);
});

test("destroy --target one user's component: the cut on the host and in Vault; others untouched", async () => {
  const urn = (await e.stack.exportStack()).deployment.resources.find(
    (r: { type: string; urn: string }) => r.type === "workstations:index:UserWorkstation" && r.urn.endsWith("::emo"),
  ).urn;
  const viktorBefore = await e.sh("id viktor; ls -la /home/viktor | md5sum");
  const emoCred = JSON.parse(await e.sh("cat /home/emo/.config/claude-token-renew/vault.json"));
  await e.stack.destroy({ color: "never", target: [urn], targetDependents: true });
  assert.equal(await e.sh("id -u emo"), "2001", "account kept");
  assert.equal(await e.sh("getent shadow emo | cut -d: -f8"), "1", "account expired");
  assert.equal(await e.sh("cat /etc/ssh/authorized_keys.d/emo"), "");
  assert.equal(await e.sh("test -d /home/emo/.claude && echo kept"), "kept");
  await assert.rejects(vaultRequest(e.vault, "", "POST", "auth/approle/login", emoCred), /HTTP 400/, "emo's AppRole is gone");
  assert.equal(await e.sh("id viktor; ls -la /home/viktor | md5sum"), viktorBefore);
  const viktorCred = JSON.parse(await e.sh("cat /home/viktor/.config/claude-token-renew/vault.json"));
  await vaultRequest(e.vault, "", "POST", "auth/approle/login", viktorCred);
});

test("removing that user from the roster, then up: converges with no errors", async () => {
  roster.users = roster.users.filter((u: { name: string }) => u.name !== "emo");
  e.writeRoster(roster);
  const r = await e.stack.up({ color: "never" });
  assert.equal(r.summary.result, "succeeded");
  const again = await e.stack.up({ color: "never" });
  assert.deepEqual(
    Object.keys(again.summary.resourceChanges ?? {}).filter((k) => k !== "same"),
    [],
  );
});

test("the state holds no plaintext secret, read as an attacker would (CLI export without --show-secrets, backend files)", async () => {
  const texts = readStateAsAttacker(e.audit);
  const secrets = [...e.secrets, ...secretIds];
  assert.ok(secrets.length >= 6);
  assert.deepEqual(plaintextSecrets(texts, secrets), []);
  // And they are there, encrypted: the state does carry ciphertext for them.
  assert.ok(hasCiphertext(texts));
});
