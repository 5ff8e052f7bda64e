import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as YAML from "yaml";
import { commands, readExampleRoster, runProgram, SECRET_KEY_MARKER } from "../lib/mocks";

function editRoster(text: string, edit: (doc: any) => void): string {
  const doc = YAML.parse(text);
  edit(doc);
  return YAML.stringify(doc);
}

test("exactly one UserWorkstation per active or suspended entry; offboarded create nothing", async () => {
  const { resources } = await runProgram({ roster: readExampleRoster() });
  const ws = resources.filter((r) => r.type === "workstations:index:UserWorkstation").map((r) => r.name).sort();
  assert.deepEqual(ws, ["emo", "nadia", "sam", "viktor"]);
  assert.equal(resources.filter((r) => r.name.includes("olga")).length, 0, "offboarded olga (no purge approval) must create nothing");
  assert.equal(resources.filter((r) => r.type === "workstations:index:Host").length, 1);
  // Each workstation owns account, home and units commands.
  for (const u of ws)
    assert.deepEqual(commands(resources).filter((r) => r.name.startsWith(`${u}-`)).map((r) => r.name).sort(), [`${u}-account`, `${u}-home`, `${u}-units`]);
});

test("an approved purge creates only a UserPurge for that user", async () => {
  const roster = editRoster(readExampleRoster(), (d) => {
    d.users.find((u: any) => u.name === "olga").purge = { approvedBy: "viktor", approvedOn: "2026-11-20" };
  });
  const { resources } = await runProgram({ roster });
  const olga = resources.filter((r) => r.name.startsWith("olga"));
  assert.deepEqual(olga.map((r) => `${r.type} ${r.name}`).sort(), ["command:remote:Command olga-purge", "workstations:index:UserPurge olga"]);
  const cmd = olga.find((r) => r.name === "olga-purge")!;
  assert.match(cmd.inputs.create, /tar --numeric-owner/);
  assert.equal(cmd.inputs.delete, undefined, "purge has no delete action");
});

test("no secret value appears in any command string, stdin or non-secret output", async () => {
  const { resources, program } = await runProgram({ roster: readExampleRoster() });
  const marker = "S3CR3T-MARKER";
  let connections = 0;
  for (const r of resources) {
    for (const [k, v] of Object.entries(r.inputs)) {
      if (k === "connection") {
        connections++;
        assert.ok(JSON.stringify(v).includes(marker), "the key reaches the connection (kept secret by Pulumi)");
        continue;
      }
      assert.ok(!JSON.stringify(v ?? "").includes(marker), `${r.name}.${k} contains the private key`);
    }
  }
  assert.ok(connections > 5);
  // Command strings are argv of the remote `bash -c`: the key must never be there.
  for (const r of commands(resources)) for (const f of ["create", "update", "delete"]) assert.ok(!String(r.inputs[f] ?? "").includes(SECRET_KEY_MARKER));
  const outs = await new Promise<unknown>((res) => require("@pulumi/pulumi").all(program.workstations.map((w) => [w.userName, w.uid, w.home, w.state, w.groups])).apply(res));
  assert.ok(!JSON.stringify(outs).includes(marker));
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
  for (const [key, secret] of [["host", false], ["hostKey", false], ["sshPrivateKey", true]] as const) {
    await assert.rejects(runProgram({ roster: readExampleRoster(), config: { [key]: undefined } }), (e: Error) => {
      assert.match(e.message, new RegExp(`workstations:${key}\\b`));
      assert.match(e.message, new RegExp(`pulumi config set ${secret ? "--secret " : ""}workstations:${key} `));
      return true;
    });
  }
  await assert.rejects(runProgram({ roster: readExampleRoster(), config: { sshPort: "99999" } }), /workstations:sshPort/);
});

test("a missing roster file names the file and the config key", async () => {
  await assert.rejects(runProgram({ roster: "", config: { roster: "/nonexistent/roster.yaml" } }), /\/nonexistent\/roster\.yaml:1:1: .*ENOENT.*workstations:roster/);
});
