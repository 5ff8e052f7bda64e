import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { unwrapScript } from "../../components/scripts/shell";
import { commands, readExampleRoster, runProgram, unsecret } from "../lib/mocks";
import * as YAML from "yaml";

test("every generated remote script passes shellcheck (and bash -n)", async () => {
  const doc = YAML.parse(readExampleRoster());
  doc.users.find((u: { name: string }) => u.name === "olga").purge = { approvedBy: "viktor", approvedOn: "2026-11-22" };
  const { resources } = await runProgram({ roster: YAML.stringify(doc) });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-sc-"));
  const files: string[] = [];
  const seen = new Set<string>();
  for (const r of commands(resources)) {
    for (const f of ["create", "update", "delete"]) {
      const cmd = unsecret(r.inputs[f]);
      if (!cmd || seen.has(cmd)) continue;
      seen.add(cmd);
      const file = path.join(dir, `${r.name.replace(/[^A-Za-z0-9.-]/g, "_")}.${f}.sh`);
      fs.writeFileSync(file, "#!/usr/bin/env bash\n" + unwrapScript(cmd));
      files.push(file);
    }
  }
  // The part of the home script that runs as the user is embedded as a string: check it too.
  const { userPart } = await import("../../components/scripts/home");
  const { planRoster } = await import("../../components/plan");
  const { parseRoster } = await import("../../components/roster/load");
  const plan = planRoster(parseRoster(readExampleRoster(), "r.yaml").roster!);
  const up = path.join(dir, "home-user-part.sh");
  fs.writeFileSync(up, "#!/usr/bin/env bash\n" + userPart(plan.users[0], { claudeMd: "# md\n", startClaude: "#!/bin/sh\n" }));
  files.push(up);
  assert.ok(files.length > 20);
  for (const f of files) {
    const n = spawnSync("bash", ["-n", f], { encoding: "utf8" });
    assert.equal(n.status, 0, `${f}: ${n.stderr}`);
  }
  const sc = spawnSync("shellcheck", ["-S", "warning", "-s", "bash", ...files], { encoding: "utf8" });
  assert.equal(sc.error, undefined, "shellcheck must be installed (bash scripts/dev/setup)");
  assert.equal(sc.status, 0, sc.stdout);
});
