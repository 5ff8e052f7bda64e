/**
 * Hardening checks that need no host (issue 8): script names cannot inject code, the bundle
 * refuses unsafe file names, root's programs come from root's own PATH, and the preflight's
 * input is the set of shells only.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { checkBundlePath, loadBundle } from "../../components/bundle";
import { preflightScript } from "../../components/scripts/host";
import { remoteScript, unwrapScript } from "../../components/scripts/shell";
import { PROJECT_DIR } from "../../dev/mocks";
import { AGENTS_DIR, scriptFiles, scriptSource } from "../../dev/tmux";
import { tempDir } from "../../dev/tmp";

test("remoteScript refuses a name that would end its comment line (newline, CR, quote, NUL)", () => {
  for (const bad of ["a\nrm -rf /", "a\rb", "it's", "a\0b", "x\u2028y", ""])
    assert.throws(() => remoteScript(bad, "true"), /unsafe script name/, JSON.stringify(bad));
  assert.match(remoteScript("install /usr/local/lib/workstations/tmux-persist.mjs", "true"), /^bash -c '# workstations: install \/usr\/local\/lib/);
});

test("the bundle refuses file names with newlines, spaces, quotes or leading dots, naming the file", () => {
  const root = tempDir("ws-bundle-");
  fs.cpSync(path.join(PROJECT_DIR, "config"), path.join(root, "config"), { recursive: true });
  fs.mkdirSync(path.join(root, "scripts/units"), { recursive: true });
  fs.mkdirSync(path.join(root, "scripts/agents"), { recursive: true });
  fs.writeFileSync(path.join(root, "scripts/agents/ok.mjs"), "");
  assert.equal(loadBundle(root).files.filter((f) => f.path === "/usr/local/lib/workstations/ok.mjs").length, 1);
  for (const [where, name] of [
    ["scripts/agents", "evil\necho pwned"],
    ["scripts/agents", "two words"],
    ["scripts/units", "x'y.service"],
    ["config/claude-base/rules", ".hidden"],
  ] as const) {
    const f = path.join(root, where, name);
    fs.writeFileSync(f, "");
    assert.throws(
      () => loadBundle(root),
      (e: Error) => e.message.includes("refusing to ship") && e.message.includes(JSON.stringify(name).slice(1, -1)),
      `${where}/${JSON.stringify(name)}`,
    );
    fs.rmSync(f);
  }
  assert.doesNotThrow(() => checkBundlePath("skills/commit-intent/SKILL.md"));
  assert.doesNotThrow(() => loadBundle(PROJECT_DIR));
});

test("the preflight's input is the set of roster shells only (onboarding with a known shell does not change it)", () => {
  assert.equal(preflightScript(["/bin/bash", "/usr/bin/zsh", "/bin/bash"]), preflightScript(["/usr/bin/zsh", "/bin/bash"]));
  assert.notEqual(preflightScript(["/bin/bash"]), preflightScript(["/bin/bash", "/usr/bin/zsh"]));
  assert.match(unwrapScript(preflightScript(["/usr/bin/zsh"])), /^SHELLS='\/usr\/bin\/zsh'$/m);
});

test("tmux-persist resolves what root runs from root's fixed PATH to root-owned files", async () => {
  const load = new Function("p", "return import(p)") as (p: string) => Promise<any>;
  const m = await load(path.join(PROJECT_DIR, "scripts/agents/tmux-persist.mjs"));
  assert.deepEqual([...m.ROOT_PATH], ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]);
  assert.deepEqual(Object.keys(m.ROOT_ENV).sort(), ["LANG", "LC_ALL", "PATH"]);
  for (const n of ["tmux", "env", "getent"]) {
    const p: string = m.trustedBin(n);
    assert.ok(path.isAbsolute(p), p);
    const st = fs.statSync(p);
    assert.equal(st.uid, 0, `${p} is root's`);
    assert.equal(st.mode & 0o022, 0, `${p} is writable by no one else`);
  }
  assert.throws(() => m.trustedBin("no-such-program-ws"), /not found in root's PATH/);
  assert.throws(() => m.trustedBin("../bin/sh"), /not a program name/);
  // every spawn in the script goes through trustedBin (or a command built from it)
  const src = scriptSource(); // the entry point and every module it imports
  const spawns = [...src.matchAll(/spawnSync\(([^,]+),/g)].map((x) => x[1].trim());
  assert.ok(spawns.length >= 3, String(spawns));
  for (const s of spawns) assert.ok(/^trustedBin\(/.test(s) || s === "cmd[0]", `spawnSync(${s}, ...) does not use trustedBin`);
});

test("the agents import only node: builtins and their own modules, by relative paths inside scripts/agents", () => {
  // root loads these modules: nothing may come through PATH, NODE_PATH, a package or a user's file
  const entries = fs.readdirSync(AGENTS_DIR).filter((f) => f.endsWith(".mjs"));
  assert.deepEqual(entries.sort(), [
    "claude-token-renew.mjs",
    "tmux-persist.mjs",
    "workstations-alert.mjs",
    "workstations-heal.mjs",
    "workstations-status.mjs",
  ]);
  const files = new Set(entries.flatMap((e) => scriptFiles(path.join(AGENTS_DIR, e))));
  assert.ok(
    [...files].some((f) => f.includes(`${path.sep}tmux${path.sep}`)),
    "tmux-persist is made of modules",
  );
  for (const f of files) {
    const rel = path.relative(AGENTS_DIR, f);
    assert.ok(!rel.startsWith("..") && fs.existsSync(f), `${rel}: imported, and inside scripts/agents`);
    assert.notEqual(rel.split(path.sep)[0], "lib", `${rel}: lib/ is the host library's`);
    const src = fs.readFileSync(f, "utf8");
    assert.match(src, /^(#!\/usr\/bin\/env node\n)?\/\/ @ts-check\n/, `${rel} is type-checked`);
    for (const m of src.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]/gm)) {
      const spec = m[1] ?? m[2] ?? m[3];
      assert.ok(/^node:[a-z_/]+$/.test(spec) || /^\.{1,2}\/[A-Za-z0-9_./-]+\.mjs$/.test(spec), `${rel} imports ${spec}`);
    }
    assert.ok(!/\brequire\(|createRequire/.test(src), `${rel} uses require`);
  }
});
