/**
 * What each user costs in state (issue 12), under mocks: one user's serialized resource
 * inputs stay under a budget; the per-user logic lives in the host library, so a change to
 * the library changes the inputs of every user's commands (and so still reaches every user)
 * while a one-user edit still touches only that user; the program is not type-checked at
 * deploy time (npm test does that).
 */
import { afterEach, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { HOST_ARCHIVE_DIR, hostArchive, loadBundle, writeHostArchive } from "../../components/bundle";
import * as YAML from "yaml";
import * as pulumi from "@pulumi/pulumi";
import { hostLibrary, libCommand, libSteps, setHostLibrarySuffixForTesting } from "../../components/scripts/hostLib";
import { syntheticRoster } from "../../bench/eval";
import { Captured, PROJECT_DIR, readExampleRoster, runProgram, unsecret } from "../../dev/mocks";
import { setForgejoPreflightForTests } from "../../components/forgejo";
import { KUBE_CONFIG } from "../kube/fixtures";
import { tempDir } from "../../dev/tmp";

const FORGEJO_CONFIG = {
  forgejoUrl: "http://forgejo.runner.test:3000/",
  forgejoUrlFromHost: "http://forgejo.internal:3000/",
  forgejoRepo: "viktor/infra",
  forgejoAdminUser: "forgeadmin",
  forgejoAdminPassword: "not-a-real-password",
};

/** Serialized inputs of one user's resources, in bytes (mocks: plain values, no ciphertext). */
export const INPUT_BUDGET_PER_USER = 6 * 1024;
/**
 * The serialised provider of one Forgejo dynamic resource (`__provider`): a loader of
 * components/forgejo/providers.js, 1.0 KB when this was written (it was the whole client
 * before: 12.7 KB for a token, 22.5 KB for the protection).
 */
export const PROVIDER_CODE_BUDGET = 1536;
/**
 * With Forgejo and Kubernetes on, the provider code included: about 16 resources for a
 * namespace owner (the kubeconfig carries the cluster CA). 7.1 to 8.9 KB besides the provider
 * code and 20.4 to 35.6 KB with it before the loader (12.8 to 25.6 KB of it provider code); 7.5 to 11.2 KB with it after.
 * The Kubernetes access cut adds 1.2 KB per owned namespace (a `KubeNamespaceCut`, 1.0 KB of
 * it its loader of components/kube/sweep.js) and the Pod Security labels 0.1 KB: nadia 12.6 KB.
 * Adopting the team's existing Kubernetes objects (issue 21) puts `pulumi.com/patchForce` on
 * each of them (about 45 bytes an object, seven of nadia's) and the clone names its place
 * (`DIR`, `ALT`): nadia 13.2 KB.
 */
export const FULL_INPUT_BUDGET_PER_USER = 13.5 * 1024;

/**
 * The loaders keep the checkout's absolute path (components/forgejo/provider.ts), so the bytes
 * depend on where the program is checked out (a Woodpecker workspace is 110 characters deep).
 * The budgets are for a checkout at a 10-character path (/srv/infra).
 */
const atCanonicalCheckout = (json: string) => json.split(PROJECT_DIR).join("/srv/infra");

function bytesPerUser(resources: Captured[], users: string[]): Map<string, number> {
  const out = new Map(users.map((u) => [u, 0]));
  for (const r of resources) {
    const u = users.find((n) => r.name === n || r.name.startsWith(`${n}-`));
    if (u) out.set(u, out.get(u)! + Buffer.byteLength(atCanonicalCheckout(JSON.stringify(unsecret(r.inputs)))));
  }
  return out;
}

afterEach(() => setHostLibrarySuffixForTesting(""));

test(`one user's resource inputs stay under ${INPUT_BUDGET_PER_USER} bytes (example roster and 20 users)`, async () => {
  for (const roster of [readExampleRoster(), syntheticRoster(20)]) {
    const names = (YAML.parse(roster).users as Array<{ name: string; state?: string }>).filter((u) => u.state !== "offboarded").map((u) => u.name);
    const { resources } = await runProgram({ roster });
    const per = bytesPerUser(resources, names);
    for (const [u, b] of per) {
      assert.ok(b > 500, `${u}: ${b} bytes: the user's resources were not found`);
      assert.ok(b <= INPUT_BUDGET_PER_USER, `${u}: ${b} bytes of inputs, over the ${INPUT_BUDGET_PER_USER} budget`);
    }
    console.log(`# input bytes per user: ${JSON.stringify(Object.fromEntries([...per].slice(0, 4)))}`);
  }
});

test(`with Forgejo and Kubernetes on, one user's resource inputs, provider code included, stay under ${FULL_INPUT_BUDGET_PER_USER} bytes`, async () => {
  setForgejoPreflightForTests(() => ({ ok: true, message: "Forgejo (mock)" }));
  try {
    const roster = readExampleRoster();
    const { resources } = await runProgram({ roster, config: { ...FORGEJO_CONFIG, ...KUBE_CONFIG } });
    assert.ok(
      resources.some((r) => r.name === "emo-git-credentials") && resources.some((r) => r.name === "nadia-kubeconfig"),
      "the Forgejo and Kubernetes parts are on",
    );
    // A dynamic resource stores its provider object (`__provider`), serialised with all it
    // references: here a loader of providers.js (components/forgejo/provider.ts), bounded on
    // its own, and counted in the user's budget like everything else.
    const dynamic = resources.filter((r) => "__provider" in r.inputs);
    assert.ok(dynamic.length >= 5, "the Forgejo resources are dynamic");
    const code = Math.max(...dynamic.map((r) => atCanonicalCheckout(String(unsecret(r.inputs.__provider))).length));
    assert.ok(code <= PROVIDER_CODE_BUDGET, `a Forgejo resource stores ${code} bytes of provider code, over ${PROVIDER_CODE_BUDGET}`);
    for (const r of dynamic) assert.ok(!String(unsecret(r.inputs.__provider)).includes("forgejoRequest"), `${r.name}: the client itself is not serialised`);
    const per = bytesPerUser(resources, ["viktor", "emo", "nadia", "sam"]);
    for (const [u, b] of per) assert.ok(b <= FULL_INPUT_BUDGET_PER_USER, `${u}: ${b} bytes of inputs, over the ${FULL_INPUT_BUDGET_PER_USER} budget`);
    const withoutCode = bytesPerUser(
      resources.map((r) => ({ ...r, inputs: Object.fromEntries(Object.entries(r.inputs).filter(([k]) => k !== "__provider")) })),
      ["viktor", "emo", "nadia", "sam"],
    );
    console.log(`# provider code per Forgejo resource: ${code} bytes (${dynamic.length} resources)`);
    console.log(`# input bytes per user besides the provider code (Forgejo and Kubernetes on): ${JSON.stringify(Object.fromEntries(withoutCode))}`);
    // The account (and home), clone, credential and kubeconfig commands are host-library calls
    // (one, or two joined by &&), not scripts.
    for (const r of resources.filter((x) => /-(account|code-clone-.*|git-credentials|kubeconfig)$/.test(x.name)))
      for (const f of ["create", "update", "delete"])
        if (r.inputs[f])
          for (const call of String(unsecret(r.inputs[f])).split(" && "))
            assert.ok(call.startsWith(hostLibrary().path + " "), `${r.name}.${f} is a library call: ${call.slice(0, 80)}`);
    console.log(`# input bytes per user (Forgejo and Kubernetes on): ${JSON.stringify(Object.fromEntries(per))}`);
  } finally {
    setForgejoPreflightForTests(undefined);
  }
});

test("a new host library version changes every user's commands; nothing per-user carries the script itself", async () => {
  const roster = readExampleRoster();
  const before = (await runProgram({ roster })).resources;
  const libBefore = hostLibrary();
  setHostLibrarySuffixForTesting("a new version");
  const after = (await runProgram({ roster })).resources;
  assert.notEqual(hostLibrary().digest, libBefore.digest);
  const perUser = /^(viktor|emo|nadia|sam)-(account|home|units|vault-credential|limits)$/;
  const cmds = (rs: Captured[]) => new Map(rs.filter((r) => r.type === "command:remote:Command").map((r) => [r.name, JSON.stringify(unsecret(r.inputs))]));
  const [b, a] = [cmds(before), cmds(after)];
  const userCmds = [...b.keys()].filter((n) => perUser.test(n));
  assert.ok(userCmds.length >= 14, String(userCmds));
  for (const n of userCmds) {
    assert.notEqual(a.get(n), b.get(n), `${n} must change with the library`);
    assert.ok(b.get(n)!.includes(libBefore.path) && a.get(n)!.includes(hostLibrary().path), `${n} calls the library by its versioned path`);
    assert.ok(!b.get(n)!.includes("rebuild_index()"), `${n} carries script text`);
  }
  // web-files and host-earlyoom are host-level but library calls (web-apply, earlyoom-apply): they run the new version too.
  const hostCalls = ["web-files", "host-earlyoom"];
  for (const n of b.keys())
    if (!perUser.test(n) && n !== "host-files" && !hostCalls.includes(n)) assert.equal(a.get(n), b.get(n), `${n} must not change with the library`);
  assert.notEqual(a.get("host-files"), b.get("host-files"), "the host files' install (its archive digest) installs the new version");
  for (const n of hostCalls)
    assert.ok(a.get(n)!.includes(hostLibrary().path) && b.get(n)!.includes(libBefore.path), `${n} calls the library by its versioned path`);
});

/**
 * The host component's inputs (every resource named host…), example roster: was 1.2 MB of state
 * with the files' text. 24 KB until the takeover's legacy step (about 2.5 KB, once per host:
 * it runs before the host files, so it cannot be a call of the host library they install),
 * 27 KB until it moved the reconcile's managed settings aside too (128 bytes).
 */
export const HOST_INPUT_BUDGET = 27 * 1024 + 256;

test("libSteps joins calls of this library only, in order; anything else is refused", () => {
  const a = libCommand("web-remove", {});
  const b = libCommand("earlyoom-remove", {});
  assert.equal(libSteps(a, b), `${a} && ${b}`);
  assert.throws(() => libSteps(a, "rm -rf /home"), /libSteps: not one call of this host library: rm -rf \/home/);
  assert.throws(() => libSteps(a, `${b} && rm -rf /home`), /not one call of this host library/, "a call that is itself a chain");
  assert.throws(() => libSteps(`/usr/local/lib/workstations/ws-0000000000000000.sh web-remove`), /not one call/, "another library version");
});

test(`the host files are one archive: the state keeps its digest, no shipped file's text; the host's inputs stay under ${HOST_INPUT_BUDGET} bytes`, async () => {
  const { resources, program } = await runProgram({ roster: readExampleRoster() });
  const host = resources.filter((r) => /^host(-|$)/.test(r.name));
  const bytes = host.reduce((n, r) => n + Buffer.byteLength(JSON.stringify(unsecret(r.inputs))), 0);
  console.log(`# host component input bytes: ${bytes} (${host.map((r) => r.name).join(", ")})`);
  assert.ok(bytes <= HOST_INPUT_BUDGET, `${bytes} bytes of host inputs, over ${HOST_INPUT_BUDGET}`);
  const shipped = loadBundle(PROJECT_DIR).files.filter((f) => f.content.length > 2000);
  assert.ok(shipped.length >= 5);
  const all = JSON.stringify(resources.map((r) => unsecret(r.inputs)));
  for (const f of shipped) assert.ok(!all.includes(f.content.slice(200, 400)), `${f.path}'s text is in a resource's inputs`);
  // The copy's asset is the archive whose digest the install checks.
  const copy = host.find((r) => r.type === "command:remote:CopyToRemote")!;
  const file = await copy.inputs.source.path;
  const digest = crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
  assert.equal(digest, program.host.filesDigest);
  assert.ok(String(unsecret(host.find((r) => r.name === "host-files")!.inputs.create)).includes(digest));
  // Everything a user's resources wait for is one resource (its dependencies are a list of URNs in the state).
  assert.equal(program.host.ready.length, 1);
});

test("the archive: deterministic, every file and the library with its mode, extractable by tar", () => {
  const b = loadBundle(PROJECT_DIR);
  const lib = hostLibrary();
  const files = [...b.files, { path: lib.path, mode: "0755", content: lib.content, keep: true }];
  const a = hostArchive(files);
  assert.equal(hostArchive(files).digest, a.digest, "same files, same bytes");
  assert.notEqual(hostArchive([...files.slice(1), files[0]]).digest, a.digest);
  const dir = tempDir("ws-archive-");
  const tar = spawnSync("tar", ["-x", "-C", dir], { input: a.bytes });
  assert.equal(tar.status, 0, String(tar.stderr));
  const lines = fs.readFileSync(path.join(dir, "MANIFEST"), "utf8").trim().split("\n");
  assert.equal(lines.length, files.length);
  lines.forEach((l, i) => {
    const [idx, mode, p, link, keep] = l.split(" ");
    assert.deepEqual(
      [Number(idx), mode, p, link, keep],
      [i, files[i].mode, files[i].path, (files[i] as { link?: string }).link ?? "-", p === lib.path ? "1" : "0"],
    );
    assert.equal(fs.readFileSync(path.join(dir, "files", idx), "utf8"), files[i].content, p);
  });
  assert.throws(() => hostArchive([{ path: "/etc/a b", mode: "0644", content: "" }]), /refusing to ship/);
  assert.throws(() => hostArchive([{ path: "/etc/../x", mode: "0644", content: "" }]), /refusing to ship/);
  assert.throws(() => hostArchive([files[0], files[0]]), /shipped twice/);
});

test("the archive file: in the project's own cache, written once per content, archives unused for a week removed", () => {
  assert.equal(HOST_ARCHIVE_DIR, path.join(PROJECT_DIR, "node_modules", ".cache", "workstations-host-files"), "not a shared temp dir");
  const dir = path.join(tempDir("ws-archive-file-"), "cache");
  const day = 24 * 3600 * 1000;
  const now = Date.now();
  const a = hostArchive([{ path: "/etc/a", mode: "0644", content: "a\n" }]);
  const file = writeHostArchive(a, dir, now - 3 * day);
  assert.equal(path.dirname(file), dir);
  assert.deepEqual(fs.readFileSync(file), a.bytes);
  assert.equal((fs.statSync(dir).mode & 0o777).toString(8), "700");
  assert.equal((fs.statSync(file).mode & 0o777).toString(8), "600");
  // another release's archive, used 8 days ago; a third one, used yesterday
  const old = writeHostArchive(hostArchive([{ path: "/etc/b", mode: "0644", content: "b\n" }]), dir, now - 8 * day);
  const recent = writeHostArchive(hostArchive([{ path: "/etc/c", mode: "0644", content: "c\n" }]), dir, now - day);
  assert.equal(writeHostArchive(a, dir, now), file, "the same content, the same path");
  assert.equal(Math.round(fs.statSync(file).mtimeMs / 1000), Math.round(now / 1000), "marked used");
  assert.deepEqual(
    fs.readdirSync(dir).sort(),
    [path.basename(file), path.basename(recent)].sort(),
    `unused for 8 days: ${path.basename(old)} removed; nothing else left`,
  );
});

test("the state records each resource's source position, not the program's whole call stack", async () => {
  // What the SDK sends with each registration (runtime/resource.registerResource's arguments).
  const runtimeResource = require("@pulumi/pulumi/runtime/resource");
  const seen = new Map<string, { pos?: { uri: string; line: number }; trace?: unknown[] }>();
  const orig = runtimeResource.registerResource;
  runtimeResource.registerResource = function (...args: any[]) {
    seen.set(args[3], { pos: args[9], trace: args[10] });
    return orig.apply(this, args);
  };
  try {
    await runProgram({ roster: readExampleRoster() });
  } finally {
    runtimeResource.registerResource = orig;
  }
  const R = pulumi.Resource as unknown as { __workstationsOneFrame?: boolean };
  assert.equal(R.__workstationsOneFrame, true, "buildProgram cuts the recorded stack (components/provenance.ts)");
  assert.ok(seen.size > 30);
  for (const [name, { trace }] of seen) assert.ok((trace ?? []).length <= 1, `${name}: ${(trace ?? []).length} frames recorded`);
  // The one frame is the construction site, as the SDK's own first frame was.
  for (const [name, file, text] of [
    ["emo-account", "userWorkstation.ts", "new command.remote.Command("],
    ["host-files", "host.ts", "new command.remote.Command("],
    ["emo-vault-policy", "vault.ts", "new vault.Policy("],
    ["host", "program.ts", "new WorkstationHost("],
  ]) {
    const pos = seen.get(name)?.pos;
    assert.ok(pos && pos.uri.endsWith(`/components/${file}`), `${name}: ${JSON.stringify(pos)}`);
    const line = fs.readFileSync(path.join(PROJECT_DIR, "components", file), "utf8").split("\n")[pos.line - 1];
    assert.ok(line.includes(text), `${name}: line ${pos.line} of ${file} is ${JSON.stringify(line)}`);
  }
});

test("create and update share one command (no update script is stored)", async () => {
  const { resources } = await runProgram({ roster: readExampleRoster() });
  for (const r of resources.filter(
    (x) => /^((viktor|emo)-(account|home|units|vault-credential)|host-.*)$/.test(x.name) && x.type === "command:remote:Command",
  )) {
    assert.equal(r.inputs.update, undefined, `${r.name} stores a separate update`);
    assert.ok(r.inputs.create);
  }
});

test("the deploy-time program is transpiled only: tsconfig.pulumi.json = tsconfig.json + noCheck; the engine runs components/start.js", () => {
  const read = (f: string) => JSON.parse(fs.readFileSync(path.join(PROJECT_DIR, f), "utf8"));
  const main = read("tsconfig.json");
  const dep = read("tsconfig.pulumi.json");
  assert.deepEqual(dep.compilerOptions, { ...main.compilerOptions, noCheck: true });
  const yaml = YAML.parse(fs.readFileSync(path.join(PROJECT_DIR, "Pulumi.yaml"), "utf8"));
  assert.deepEqual([yaml.main, yaml.runtime.options.typescript], ["components/start.js", false]);
});

/** A temp project with components/start.js, tsconfig.pulumi.json, node_modules and `files`. */
function startJsProject(files: Record<string, string>): string {
  const dir = tempDir("ws-start-");
  fs.mkdirSync(path.join(dir, "components"));
  fs.copyFileSync(path.join(PROJECT_DIR, "components/start.js"), path.join(dir, "components/start.js"));
  fs.copyFileSync(path.join(PROJECT_DIR, "tsconfig.pulumi.json"), path.join(dir, "tsconfig.pulumi.json"));
  fs.symlinkSync(path.join(PROJECT_DIR, "node_modules"), path.join(dir, "node_modules"));
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
  return dir;
}

test("components/start.js: transpiles with tsconfig.pulumi.json's options, once; a run with unchanged sources never loads the compiler", () => {
  const dir = startJsProject({
    "lib.ts": "export const twice = (n: number): number => n * 2;\n",
    "index.ts": 'import { twice } from "./lib";\nimport * as path from "path";\nexport const out: string = `${twice(21)} ${path.basename(__filename)}`;\n',
  });
  const cache = path.join(dir, "cache");
  const probe = `const m = require(${JSON.stringify(path.join(dir, "components/start.js"))}); const ts = Object.keys(require.cache).some((k) => /node_modules\\/typescript\\/lib\\/typescript\\.js$/.test(k)); console.log(JSON.stringify({ out: m.out, ts }));`;
  const runOnce = () => {
    const r = spawnSync(process.execPath, ["-e", probe], { encoding: "utf8", env: { ...process.env, WORKSTATIONS_TS_CACHE: cache } });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { out: string; ts: boolean };
  };
  assert.deepEqual(runOnce(), { out: "42 index.ts", ts: true }, "a cold cache transpiles");
  const files = fs.readdirSync(cache, { recursive: true }).filter((f) => String(f).endsWith(".js"));
  assert.equal(files.length, 2, "one cached file per source");
  assert.deepEqual(runOnce(), { out: "42 index.ts", ts: false }, "a warm cache does not load TypeScript");
  fs.writeFileSync(path.join(dir, "lib.ts"), "export const twice = (n: number): number => n * 2 + 1;\n");
  assert.deepEqual(runOnce(), { out: "43 index.ts", ts: true }, "a changed source is transpiled again");
});

test("components/start.js: a program error's stack points at the TypeScript; the SDK's promise stacks are not mapped", () => {
  // Line 5 of lib.ts throws; the transpiled line differs (the import helpers come first).
  const dir = startJsProject({
    "lib.ts":
      'import * as os from "os";\nimport * as fs from "fs";\nexport function fail(): never {\n  void os.EOL, void fs.constants;\n  throw new Error("boom");\n}\n',
    "index.ts": 'import { fail } from "./lib";\nexport const run = (): never => fail();\n',
  });
  // As the language host does: source-map-support first, then the program.
  const probe = `require("source-map-support/register");
const m = require(${JSON.stringify(path.join(dir, "components/start.js"))});
let stack = ""; try { m.run(); } catch (e) { stack = e.stack; }
function debuggablePromise() { return new Error().stack; }
console.log(JSON.stringify({ stack, promise: debuggablePromise() }));`;
  const r = spawnSync(process.execPath, ["-e", probe], { cwd: dir, encoding: "utf8", env: { ...process.env, WORKSTATIONS_TS_CACHE: path.join(dir, "cache") } });
  assert.equal(r.status, 0, r.stderr);
  const { stack, promise } = JSON.parse(r.stdout) as { stack: string; promise: string };
  assert.match(stack, /^Error: boom\n\s+at fail \(.*\/lib\.ts:5:\d+\)/, stack);
  assert.match(promise, /^Error\n    at debuggablePromise \(\[eval\]:4:/, promise);
});

test("components/start.js: the SDK's debug messages are not sent to the engine (WORKSTATIONS_SDK_DEBUG=1 keeps them)", () => {
  const dir = startJsProject({ "index.ts": "export const ok = true;\n" });
  // The SDK instance the program uses (as the language host loads it), its log module before
  // and after start.js; the replacement must not reach the engine: no getEngine() call.
  const probe = `const log = require(require.resolve("@pulumi/pulumi/log", { paths: [${JSON.stringify(dir)}] }));
const settings = require(require.resolve("@pulumi/pulumi/runtime/settings", { paths: [${JSON.stringify(dir)}] }));
const before = log.debug;
require(${JSON.stringify(path.join(dir, "components/start.js"))});
let asked = 0; const getEngine = settings.getEngine; settings.getEngine = () => (asked++, getEngine());
const p = log.debug("Registering resource: t=x, name=y");
p.then(() => console.log(JSON.stringify({ replaced: log.debug !== before, promise: typeof p.then === "function", asked })));`;
  const run = (env: Record<string, string>) => {
    const r = spawnSync(process.execPath, ["-e", probe], {
      cwd: dir,
      encoding: "utf8",
      env: { ...process.env, WORKSTATIONS_TS_CACHE: path.join(dir, "cache"), ...env },
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { replaced: boolean; promise: boolean; asked: number };
  };
  assert.deepEqual(run({ WORKSTATIONS_SDK_DEBUG: "" }), { replaced: true, promise: true, asked: 0 });
  assert.deepEqual(run({ WORKSTATIONS_SDK_DEBUG: "1" }), { replaced: false, promise: true, asked: 1 });
});
