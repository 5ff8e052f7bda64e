/**
 * The secret check itself, under the real Pulumi CLI (only the CLI, the nodejs language host
 * and the dynamic-provider host are needed, all from the offline toolchain): a test-only
 * dynamic resource that leaks a secret into a plain output is caught, in the CLI's export
 * without --show-secrets and in the raw backend files; the same resource with the output
 * marked secret passes, and the value is there as ciphertext. The Automation API's
 * exportStack() would have decrypted it and is therefore not used for this check.
 */
import { before, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { hasCiphertext, plaintextSecrets, readStateAsAttacker } from "../../dev/state-audit";
import { tempDir } from "../../dev/tmp";

const ROOT = path.resolve(__dirname, "../..");
let env: NodeJS.ProcessEnv = {};

const PROGRAM = `"use strict";
const pulumi = require("@pulumi/pulumi");
// A test-only resource that "creates a token": the value comes from the runner's environment
// at run time (never from inputs), like the Forgejo token resource.
const provider = {
  async create() {
    return { id: "t1", outs: { token: process.env.AUDIT_TOKEN, note: "made" } };
  },
};
class Token extends pulumi.dynamic.Resource {
  constructor(name, args, opts) {
    super(provider, name, { token: undefined, note: undefined, ...args }, opts);
  }
}
const cfg = new pulumi.Config();
const leak = cfg.getBoolean("leak") === true;
const t = new Token("t", { version: "1" }, leak ? {} : { additionalSecretOutputs: ["token"] });
// a secret from config: an export of it must stay secret too
exports.fromConfig = leak ? pulumi.unsecret(cfg.requireSecret("pass")) : cfg.requireSecret("pass");
exports.token = t.token;
`;

function pulumi(cwd: string, args: string[], extra: NodeJS.ProcessEnv = {}) {
  const r = spawnSync("pulumi", ["--non-interactive", "--color", "never", ...args], { cwd, env: { ...env, ...extra }, encoding: "utf8", timeout: 300_000 });
  assert.equal(r.status, 0, `pulumi ${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function project(name: string) {
  const dir = tempDir(`ws-audit-${name}-`);
  fs.writeFileSync(path.join(dir, "Pulumi.yaml"), `name: audit\nruntime:\n  name: nodejs\n  options:\n    typescript: false\nmain: index.js\n`);
  fs.writeFileSync(path.join(dir, "index.js"), PROGRAM);
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "audit", main: "index.js" }));
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  const backend = path.join(dir, "state");
  fs.mkdirSync(backend);
  const e = { PULUMI_BACKEND_URL: `file://${backend}`, PULUMI_CONFIG_PASSPHRASE: crypto.randomBytes(12).toString("hex") };
  return { dir, backend, e };
}

before(() => {
  // Fail (never skip) without the CLI: it is part of the offline toolchain.
  const tc = spawnSync("bash", [path.join(ROOT, "dev/toolchain"), "env"], { encoding: "utf8" });
  env = { ...process.env, PULUMI_SKIP_UPDATE_CHECK: "true", PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true" };
  for (const line of tc.stdout.split("\n")) {
    const m = /^export ([A-Z_]+)="(.*)"$/.exec(line.trim());
    if (m) env[m[1]] = m[2].replace(/\$PATH/g, process.env.PATH ?? "");
  }
  const v = spawnSync("pulumi", ["version"], { env, encoding: "utf8" });
  assert.equal(v.status, 0, "no Pulumi CLI: build it with bash dev/toolchain build pulumi");
});

for (const leak of [true, false]) {
  test(
    leak
      ? "a secret put into a plain output on purpose is caught in the CLI export and the backend files"
      : "the same resource with its output marked secret passes, and the secrets are there as ciphertext",
    () => {
      const p = project(leak ? "leak" : "safe");
      const token = `tok-${crypto.randomBytes(12).toString("hex")}`;
      const pass = `pass-${crypto.randomBytes(12).toString("hex")}`;
      const e = { ...p.e, AUDIT_TOKEN: token };
      pulumi(p.dir, ["stack", "init", "audit"], e);
      pulumi(p.dir, ["config", "set", "--secret", "pass", pass], e);
      pulumi(p.dir, ["config", "set", "leak", String(leak)], e);
      pulumi(p.dir, ["up", "--yes", "--skip-preview"], e);
      pulumi(p.dir, ["up", "--yes", "--skip-preview", "--refresh"], e); // history and backups too
      const texts = readStateAsAttacker({ cwd: p.dir, env: { ...env, ...e }, stack: "audit", backendDir: p.backend });
      assert.ok(
        texts.some((t) => /history/.test(t.where)),
        `backend files read: ${texts.map((t) => t.where).join(", ")}`,
      );
      assert.ok(
        texts.some((t) => /backups/.test(t.where) || /\.bak$/.test(t.where)),
        `backend files read: ${texts.map((t) => t.where).join(", ")}`,
      );
      const hits = plaintextSecrets(texts, [token, pass]);
      if (leak) {
        assert.ok(
          hits.some((h) => h.startsWith("pulumi stack export")),
          `the export must show the leak: ${hits}`,
        );
        assert.ok(hits.some((h) => h.includes("tok-")) && hits.some((h) => h.includes("pass-")), `both leaks found: ${hits}`);
        assert.ok(
          hits.some((h) => /stacks\//.test(h)),
          `the checkpoint file must show the leak: ${hits}`,
        );
      } else {
        assert.deepEqual(hits, []);
        assert.ok(hasCiphertext(texts), "the secrets are in the state, encrypted");
        // and the decrypting export (what Stack.exportStack() runs) does show them: the check above is not vacuous
        const shown = pulumi(p.dir, ["stack", "export", "--show-secrets"], e);
        assert.ok(shown.includes(token) && shown.includes(pass));
      }
    },
  );
}
