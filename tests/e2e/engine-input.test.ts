/**
 * Bad input under the real Pulumi engine (the CLI and nodejs language host from the offline
 * toolchain; no resource plugin needed): an invalid roster and a missing config key stop
 * `pulumi preview` and `pulumi up` with a clear message, and nothing is created.
 */
import { before, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { tempDir } from "../../dev/tmp";

const ROOT = path.resolve(__dirname, "../..");
let work = "";
let env: NodeJS.ProcessEnv = {};

function pulumi(args: string[], input?: string) {
  const r = spawnSync("pulumi", ["--non-interactive", "--color", "never", ...args], { cwd: work, env, encoding: "utf8", input, timeout: 300_000 });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

before(() => {
  // Only the CLI and the language host are needed here; fail (never skip) without them.
  const tc = spawnSync("bash", [path.join(ROOT, "dev/toolchain"), "env"], { encoding: "utf8" });
  env = { ...process.env };
  for (const line of tc.stdout.split("\n")) {
    const m = /^export ([A-Z_]+)="(.*)"$/.exec(line.trim());
    if (m) env[m[1]] = m[2].replace(/\$PATH/g, process.env.PATH ?? "");
  }
  const v = spawnSync("pulumi", ["version"], { env, encoding: "utf8" });
  assert.equal(v.status, 0, "no Pulumi CLI: build it with bash dev/toolchain build pulumi");
  work = tempDir("ws-engine-input-");
  for (const f of ["Pulumi.yaml", "index.ts", "tsconfig.json", "tsconfig.pulumi.json", "package.json", "components", "config", "scripts"])
    fs.cpSync(path.join(ROOT, f), path.join(work, f), { recursive: true, filter: (src) => !src.split(path.sep).includes("dev") });
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(work, "node_modules"));
  fs.mkdirSync(path.join(work, "state"));
  Object.assign(env, { PULUMI_BACKEND_URL: `file://${path.join(work, "state")}`, PULUMI_CONFIG_PASSPHRASE: "engine-input-test", VAULT_TOKEN: "unused" });
  assert.equal(pulumi(["stack", "init", "input"]).code, 0);
  const set = (k: string, v: string, secret = false) =>
    assert.equal(pulumi(["config", "set", ...(secret ? ["--secret"] : []), `workstations:${k}`, "--", v]).code, 0);
  set("host", "127.0.0.1");
  set("hostKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyForMocksOnly0000000000000000000");
  set("sshPrivateKey", "not-a-key", true);
  set("vaultAddress", "http://127.0.0.1:9");
  set("claudeClientId", "input-test");
});

test("an invalid roster: preview and up stop with file:line:col and create nothing", () => {
  fs.writeFileSync(path.join(work, "roster.yaml"), fs.readFileSync(path.join(ROOT, "roster.example.yaml"), "utf8").replace("uid: 2001", "uid: 2000"));
  for (const cmd of [["preview"], ["up", "--yes"]]) {
    const r = pulumi(cmd);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /roster\.yaml:\d+:\d+: users\[1\]\.uid: expected a unique uid: 2000 is already used by users\[0\] \(viktor\)/);
    assert.match(r.out, /nothing was applied/);
    assert.doesNotMatch(r.out, /at loadRoster|unhandled exception/, "a clean message, no stack trace");
  }
  const state = pulumi(["stack", "export"]);
  assert.doesNotMatch(state.out, /workstations:index/, "no resource was created");
});

test("a missing config key: the exact pulumi config set command, nothing created", () => {
  fs.copyFileSync(path.join(ROOT, "roster.example.yaml"), path.join(work, "roster.yaml"));
  assert.equal(pulumi(["config", "rm", "workstations:hostKey"]).code, 0);
  const r = pulumi(["preview"]);
  assert.notEqual(r.code, 0);
  assert.match(r.out, /Missing required config key: workstations:hostKey\. Set it with:\s+pulumi config set --stack input workstations:hostKey /);
  assert.doesNotMatch(pulumi(["stack", "export"]).out, /workstations:index/);
});
