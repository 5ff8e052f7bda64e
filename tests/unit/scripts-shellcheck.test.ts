import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FILE_FUNCS, STRICT, unwrapScript } from "../../components/scripts/shell";
import { HOST_LIB_DIR, hostLibrary, libCommand } from "../../components/scripts/hostLib";
import { commands, readExampleRoster, runProgram, unsecret } from "../../dev/mocks";
import * as YAML from "yaml";
import { tempDir } from "../../dev/tmp";

test("every generated remote script and the host library pass shellcheck (and bash -n)", async () => {
  const doc = YAML.parse(readExampleRoster());
  doc.users.find((u: { name: string }) => u.name === "olga").purge = { approvedBy: "viktor", approvedOn: "2026-11-22" };
  const { resources } = await runProgram({ roster: YAML.stringify(doc) });
  const dir = tempDir("ws-sc-");
  const files: string[] = [];
  const seen = new Set<string>();
  let libCalls = 0;
  const lib = hostLibrary();
  for (const r of commands(resources)) {
    for (const f of ["create", "update", "delete"]) {
      const cmd = unsecret(r.inputs[f]);
      if (!cmd || seen.has(cmd)) continue;
      seen.add(cmd);
      if (cmd.startsWith(`${HOST_LIB_DIR}/`)) {
        // host-library calls (one, or two joined by &&): this program's library, a known verb,
        // single-quoted parameters only
        assert.ok(cmd.startsWith(`${lib.path} `), `${r.name}.${f} calls another library version: ${cmd.slice(0, 80)}`);
        const call = `${lib.path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} [a-z-]+( '[A-Z][A-Z0-9_]*=[^']*')*`;
        assert.match(cmd, new RegExp(`^${call}( && ${call})*$`), `${r.name}.${f}`);
        libCalls++;
        continue;
      }
      const file = path.join(dir, `${r.name.replace(/[^A-Za-z0-9.-]/g, "_")}.${f}.sh`);
      fs.writeFileSync(file, "#!/usr/bin/env bash\n" + unwrapScript(cmd));
      files.push(file);
    }
  }
  const libFile = path.join(dir, "host-library.sh");
  fs.writeFileSync(libFile, lib.content);
  files.push(libFile);
  assert.ok(libCalls >= 12, `per-user commands are library calls (${libCalls})`);
  assert.ok(files.length >= 8, `remote scripts found: ${files.length}`);
  for (const f of files) {
    const n = spawnSync("bash", ["-n", f], { encoding: "utf8" });
    assert.equal(n.status, 0, `${f}: ${n.stderr}`);
  }
  const sc = spawnSync("shellcheck", ["-S", "warning", "-s", "bash", ...files], { encoding: "utf8" });
  assert.equal(sc.error, undefined, "shellcheck must be installed (bash dev/setup)");
  assert.equal(sc.status, 0, sc.stdout);
});

test("the host library refuses unknown verbs and parameters, and requires every parameter", () => {
  const lib = hostLibrary();
  const dir = tempDir("ws-lib-");
  const f = path.join(dir, "ws.sh");
  fs.writeFileSync(f, lib.content, { mode: 0o755 });
  const run = (...args: string[]) => spawnSync("bash", [f, ...args], { encoding: "utf8" });
  assert.match(run("frobnicate").stderr, /unknown verb 'frobnicate'/);
  assert.match(run("account-cut", "NAME=x", "UID_=1", "EVIL=1").stderr, /unknown parameter EVIL/);
  assert.match(run("account-cut", "NAME=x").stderr, /missing parameter UID_/);
  assert.match(run("account-cut", "NAME").stderr, /not NAME=value/);
  assert.throws(() => libCommand("account-cut", { NAME: "x" }), /parameters NAME but the verb takes/);
  assert.throws(() => libCommand("nope", {}), /unknown verb/);
});

test("a change written through a pipeline (`… | write_file F`) is counted, so the reload or restart that follows it runs", () => {
  const dir = tempDir("ws-lastpipe-");
  const owner = `${os.userInfo().username}:${spawnSync("id", ["-gn"], { encoding: "utf8" }).stdout.trim()}`;
  const script = `${STRICT}${FILE_FUNCS}
printf 'a\\n' | base64 | base64 -d | write_file ${dir}/f 0644 ${owner}
{ printf 'b\\n'; printf 'c\\n'; } | write_file ${dir}/g 0644 ${owner}
printf 'a\\n' | write_file ${dir}/f 0644 ${owner}
echo "changes=$changes"`;
  const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /changes=2$/m, `two files written, one unchanged:\n${r.stdout}`);
  fs.rmSync(dir, { recursive: true });
});
