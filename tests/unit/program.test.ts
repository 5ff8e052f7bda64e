import { test } from "node:test";
import * as assert from "node:assert/strict";
import { hostLibrary } from "../../components/scripts/hostLib";
import { agentConfig } from "../../components/program";
import type { WorkstationsConfig } from "../../components/config";
import * as YAML from "yaml";
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { commands, PROJECT_DIR, readExampleRoster, redactSecrets, runProgram, SECRET_ID_MARKER, TEST_HOST_KEY, unsecret } from "../../dev/mocks";

function editRoster(text: string, edit: (doc: any) => void): string {
  const doc = YAML.parse(text);
  edit(doc);
  return YAML.stringify(doc);
}

test("exactly one UserWorkstation per active or suspended entry; offboarded create nothing", async () => {
  const { resources } = await runProgram({ roster: readExampleRoster() });
  const ws = resources
    .filter((r) => r.type === "workstations:index:UserWorkstation")
    .map((r) => r.name)
    .sort();
  assert.deepEqual(ws, ["emo", "nadia", "sam", "viktor"]);
  assert.equal(resources.filter((r) => r.name.includes("olga")).length, 0, "offboarded olga (no purge approval) must create nothing");
  assert.equal(resources.filter((r) => r.type === "workstations:index:Host").length, 1);
  // Each workstation owns the account (with its home step), limits and units commands.
  for (const u of ws)
    assert.deepEqual(
      commands(resources)
        .filter((r) => r.name.startsWith(`${u}-`))
        .map((r) => r.name)
        .sort(),
      [`${u}-account`, `${u}-limits`, `${u}-units`, ...(u === "sam" ? [] : [`${u}-vault-credential`])].sort(),
    );
});

test("an approved purge creates only a UserPurge for that user", async () => {
  const roster = editRoster(readExampleRoster(), (d) => {
    d.users.find((u: any) => u.name === "olga").purge = { approvedBy: "viktor", approvedOn: "2026-11-20" };
  });
  const { resources } = await runProgram({ roster });
  const olga = resources.filter((r) => r.name.startsWith("olga"));
  assert.deepEqual(olga.map((r) => `${r.type} ${r.name}`).sort(), [
    "command:local:Command olga-purge-vault",
    "command:remote:Command olga-purge",
    "workstations:index:UserPurge olga",
  ]);
  const cmd = olga.find((r) => r.name === "olga-purge")!;
  assert.match(cmd.inputs.create, / purge 'NAME=olga' 'UID_=2004' .*'APPROVED_BY=viktor'/);
  assert.match(hostLibrary().content, /verb_purge\(\) \{[^]*tar --numeric-owner/, "the purge verb archives with tar");
  assert.equal(cmd.inputs.delete, undefined, "purge has no delete action");
});

test("no secret value appears in any command string, argv, or non-secret input or output", async () => {
  const { resources, program } = await runProgram({ roster: readExampleRoster() });
  const markers = ["S3CR3T-MARKER", "S3CR3T-VAULT-TOKEN-MARKER", "S3CR3T-SLACK-MARKER", SECRET_ID_MARKER];
  const seen = new Set<string>();
  for (const r of resources) {
    const all = JSON.stringify(unsecret(r.inputs));
    for (const m of markers) if (all.includes(m)) seen.add(m);
    const plain = JSON.stringify(redactSecrets(r.inputs));
    for (const m of markers) assert.ok(!plain.includes(m), `${r.type} ${r.name}: ${m} outside a secret`);
    // Command strings become argv of the remote bash: no secret, marked or not.
    for (const f of ["create", "update", "delete"]) {
      const cmd = JSON.stringify(unsecret(r.inputs[f] ?? ""));
      for (const m of markers) assert.ok(!cmd.includes(m), `${r.name}.${f} carries ${m}`);
    }
  }
  // Every secret does reach where it must (so the check above is not vacuous).
  assert.deepEqual([...seen].sort(), [...markers].sort());
  // Secrets travel only on stdin of the delivery commands, or in connections and the provider.
  const carriers = resources
    .filter((r) => /S3CR3T-SECRET-ID|S3CR3T-SLACK/.test(JSON.stringify(unsecret(r.inputs.stdin ?? ""))))
    .map((r) => r.name)
    .sort();
  assert.deepEqual(carriers, ["emo-vault-credential", "host-slack-webhook", "nadia-vault-credential", "viktor-vault-credential"]);
  const outs = await new Promise<unknown>((res) => pulumi.all(program.workstations.map((w) => [w.userName, w.uid, w.home, w.state, w.groups])).apply(res));
  for (const m of markers) assert.ok(!JSON.stringify(outs).includes(m));
});

test("vault: shared mount and approle once; per-user policy, role and credential only for active users", async () => {
  const { resources } = await runProgram({ roster: readExampleRoster() });
  const of = (t: string) => resources.filter((r) => r.type === t);
  assert.equal(of("vault:index/mount:Mount").length, 1);
  assert.equal(of("vault:index/authBackend:AuthBackend").length, 1);
  assert.equal(of("vault:kv/secretBackendV2:SecretBackendV2")[0].inputs.casRequired, true);
  const policies = of("vault:index/policy:Policy");
  assert.deepEqual(
    policies.map((p) => p.inputs.name).sort(),
    ["claude-renew-emo", "claude-renew-nadia", "claude-renew-viktor"],
    "suspended sam has no Vault access",
  );
  const emo = policies.find((p) => p.inputs.name === "claude-renew-emo")!.inputs.policy as string;
  assert.match(emo, /path "claude-tokens\/data\/users\/emo"/);
  assert.doesNotMatch(emo, /viktor|nadia|\*|delete|list/);
  const roles = of("vault:appRole/authBackendRole:AuthBackendRole");
  for (const r of roles) assert.deepEqual(r.inputs.tokenPolicies, [r.inputs.roleName]);
});

test("the policy text equals the one in docs/CONTRACTS.md", async () => {
  const { vaultPolicyHcl } = await import("../../components/vault");
  const doc = fs.readFileSync(path.join(PROJECT_DIR, "docs/CONTRACTS.md"), "utf8");
  const block = /```hcl\n([\s\S]*?)```/.exec(doc)![1];
  assert.equal(vaultPolicyHcl("emo"), block.replace(/<user>/g, "emo"));
});

test("rotation: bumping credentialRotation replaces only that user's secret_id and delivery", async () => {
  const before = await runProgram({ roster: readExampleRoster() });
  const after = await runProgram({
    roster: editRoster(readExampleRoster(), (d) => {
      d.users.find((u: any) => u.name === "emo").credentialRotation = 1;
    }),
  });
  const key = (r: { type: string; name: string }) => `${r.type}::${r.name}`;
  const b = new Map(before.resources.map((r) => [key(r), JSON.stringify(unsecret(r.inputs))]));
  const changed = after.resources
    .filter((r) => b.get(key(r)) !== JSON.stringify(unsecret(r.inputs)))
    .map((r) => r.name)
    .sort();
  assert.deepEqual(changed, ["emo-vault-credential", "emo-vault-secret-id"]);
});

test("blast radius: editing one user's groups changes only that user's resource inputs", async () => {
  const before = await runProgram({ roster: readExampleRoster() });
  const roster = editRoster(readExampleRoster(), (d) => {
    d.users.find((u: any) => u.name === "emo").groups = ["audio", "video"];
  });
  const after = await runProgram({ roster });
  const key = (r: { type: string; name: string }) => `${r.type}::${r.name}`;
  const b = new Map(before.resources.map((r) => [key(r), JSON.stringify(r.inputs)]));
  const a = new Map(after.resources.map((r) => [key(r), JSON.stringify(r.inputs)]));
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), "same set of resources");
  const changed = [...a.keys()].filter((k) => a.get(k) !== b.get(k));
  assert.deepEqual(changed, ["command:remote:Command::emo-account"]);
});

test("an invalid roster creates no resource at all", async () => {
  const roster = readExampleRoster().replace("uid: 2001", "uid: 2000");
  await assert.rejects(runProgram({ roster }), (e: Error) => {
    assert.match(e.message, /roster\.yaml:\d+:\d+: users\[1\]\.uid: expected a unique uid/);
    assert.match(e.message, /nothing was applied/);
    return true;
  });
});

test("missing config keys fail with the key and the exact pulumi config set command", async () => {
  for (const [key, secret] of [
    ["host", false],
    ["hostKey", false],
    ["sshPrivateKey", true],
    ["vaultAddress", false],
    ["claudeClientId", false],
  ] as const) {
    await assert.rejects(runProgram({ roster: readExampleRoster(), config: { [key]: undefined } }), (e: Error) => {
      assert.match(e.message, new RegExp(`workstations:${key}\\b`));
      assert.match(e.message, new RegExp(`pulumi config set ${secret ? "--secret " : ""}--stack test workstations:${key} `));
      return true;
    });
  }
  await assert.rejects(runProgram({ roster: readExampleRoster(), config: { sshPort: "99999" } }), /workstations:sshPort/);
  for (const bad of ["0", "365", "30.5", "soon"])
    await assert.rejects(
      runProgram({ roster: readExampleRoster(), config: { claudeSetupTokenWarnDays: bad } }),
      /whole number of days from 1 to 364: workstations:claudeSetupTokenWarnDays/,
    );
});

test("a missing roster file names the file and the config key", async () => {
  await assert.rejects(
    runProgram({ roster: "", config: { roster: "/nonexistent/roster.yaml" } }),
    /\/nonexistent\/roster\.yaml:1:1: .*ENOENT.*workstations:roster/,
  );
});

test("every remote command verifies the host key and sends no environment over SSH", async () => {
  const { resources } = await runProgram({ roster: readExampleRoster() });
  const remote = commands(resources);
  assert.ok(remote.length >= 15);
  for (const r of remote) {
    const c = unsecret(r.inputs.connection);
    assert.equal(c.hostKey, TEST_HOST_KEY, `${r.name} checks the host key`);
    assert.equal(c.host, "devvm.test");
    assert.equal(r.inputs.addPreviousOutputInEnv, false, `${r.name} would need AcceptEnv`);
    assert.equal(r.inputs.environment, undefined, `${r.name} would need AcceptEnv`);
  }
  // The host files' copy (sftp) checks the host key too.
  const copies = resources.filter((r) => r.type === "command:remote:CopyToRemote");
  assert.equal(copies.length, 1);
  for (const r of copies) assert.equal(unsecret(r.inputs.connection).hostKey, TEST_HOST_KEY, `${r.name} checks the host key`);
});

test("the renewal agent's config carries the setup-token warning (workstations:claudeSetupTokenWarnDays, default 30)", () => {
  const c = {
    vault: { addressFromHost: "https://vault.example:8200" },
    claude: { tokenUrl: "https://t", profileUrl: "https://p", apiUrl: "https://a", clientId: "id", setupTokenWarnDays: 45 },
  };
  const j = JSON.parse(agentConfig(c as unknown as WorkstationsConfig));
  assert.equal(j.setupTokenWarnDays, 45);
  assert.equal(j.apiUrl, "https://a");
});
