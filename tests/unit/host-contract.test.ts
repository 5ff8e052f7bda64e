/**
 * The host contract (components/hostContract.ts) is the one definition of every host path,
 * unit name and the users.json format. The agents and units ship without it and repeat some
 * of its values as literals: these tests pin each of them, so a change on either side fails
 * here instead of on the host.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import * as C from "../../components/hostContract";
import { loadBundle } from "../../components/bundle";
import { planRoster } from "../../components/plan";
import { usersEntry } from "../../components/plan/usersIndex";
import { parseRoster } from "../../components/roster/load";
import { PROJECT_DIR, readExampleRoster } from "../../dev/mocks";
import { tempDir } from "../../dev/tmp";

const load = new Function("p", "return import(p)") as (p: string) => Promise<Record<string, unknown>>;
const agentsDir = path.join(PROJECT_DIR, C.AGENTS_SOURCE_DIR);
const unitsDir = path.join(PROJECT_DIR, C.UNITS_SOURCE_DIR);

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/** Every string value the contract exports (paths and fixed unit names). */
function contractValues(): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (typeof v === "string") out.push(v);
    else if (typeof v === "function") out.push((v as (u: string) => string)("%i"));
    else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  for (const v of Object.values(C)) walk(v);
  return out;
}

// Absolute paths of the OS itself that agents and units may name (not the program's contract).
const SYSTEM_PATHS = [
  "/usr/local/sbin",
  "/usr/local/bin",
  "/usr/sbin",
  "/usr/bin",
  "/sbin",
  "/bin",
  "/run/systemd/system",
  "/run/user",
  "/proc",
  "/dev/null",
  "/etc/passwd",
  "/etc/shells",
  "/bin/bash",
  "/bin/sh",
  "/usr/bin/env",
  "/usr/bin/tmux",
  "/usr/bin/git",
  "/tmp",
];

// Contract folders whose contents are not each named in the contract (per-user entries and
// snapshots, the shipped agents tree, the Claude base, archives). Anything else must be exact.
const OPEN_DIRS = [C.USERS_DIR, C.TMUX_STATE_DIR, C.LIB_DIR, C.CLAUDE_BASE, C.ARCHIVE_DIR];

test("every program path the agents and units name is a contract path (or inside one)", () => {
  const allowed = [...contractValues().filter((v) => v.startsWith("/")), ...SYSTEM_PATHS];
  const program = /^\/(etc\/workstations|var\/lib\/(workstations|tmux-persist)|usr\/local\/(lib|share)\/workstations|run\/workstations|etc\/claude-code)(\/|$)/;
  const seen = new Map<string, string>();
  for (const f of [...files(agentsDir), ...files(unitsDir)]) {
    const src = fs.readFileSync(f, "utf8");
    for (const m of src.matchAll(/(?<![\w.~$}])\/(?:etc|var|run|usr)\/[A-Za-z0-9._@%/-]*[A-Za-z0-9_@%-]/g)) seen.set(m[0], path.relative(PROJECT_DIR, f));
  }
  assert.ok(seen.size >= 8, `found the agents' host paths (${[...seen.keys()]})`);
  for (const [p, where] of seen) {
    if (!program.test(p)) continue;
    const ok = allowed.includes(p) || OPEN_DIRS.some((d) => p.startsWith(d + "/"));
    assert.ok(ok, `${where} names ${p}, which components/hostContract.ts does not define: add it there (and use it in components/) or use a contract path`);
  }
});

test("the agents' defaults are the contract's values", async () => {
  const users = await load(path.join(agentsDir, "common/users.mjs"));
  assert.equal(users.USERS_FILE, C.USERS_INDEX, "common/users.mjs USERS_FILE");
  assert.equal(users.USERS_INDEX_VERSION, C.USERS_INDEX_VERSION, "common/users.mjs USERS_INDEX_VERSION");
  const all = files(agentsDir)
    .map((f) => fs.readFileSync(f, "utf8"))
    .join("\n");
  for (const v of [C.TMUX_STATE_DIR, C.TOKEN_RENEW_CONFIG, C.ALERT_SOCKET])
    assert.ok(all.includes(`'${v}'`) || all.includes(`"${v}"`), `an agent default is ${v}`);
});

test("the users.json the account verb writes is what the agents' reader accepts", async () => {
  const { readUsersIndex } = (await load(path.join(agentsDir, "common/users.mjs"))) as {
    readUsersIndex: (f: string) => { version: number; users: C.UsersIndexEntry[] };
  };
  const plan = planRoster(parseRoster(readExampleRoster(), "roster.example.yaml").roster!);
  // Built exactly as rebuild_index does: the version header, then the users.d entries joined by commas.
  const doc = `{"version":${C.USERS_INDEX_VERSION},"users":[${plan.users.map(usersEntry).sort().join(",")}]}\n`;
  const tmp = tempDir("ws-contract-");
  fs.writeFileSync(path.join(tmp, "users.json"), doc);
  const got = readUsersIndex(path.join(tmp, "users.json"));
  assert.equal(got.version, C.USERS_INDEX_VERSION);
  assert.deepEqual(got.users.map((u) => u.name).sort(), plan.users.map((u) => u.name).sort());
  const sam = got.users.find((u) => u.name === "sam")!;
  assert.equal(sam.state, "suspended");
  assert.equal(sam.tmuxPersist, false, "a suspended user's entry carries the effective grant");
  fs.writeFileSync(path.join(tmp, "users.json"), doc.replace(`"version":${C.USERS_INDEX_VERSION}`, `"version":${C.USERS_INDEX_VERSION + 1}`));
  assert.throws(() => readUsersIndex(path.join(tmp, "users.json")), /version/, "another version is refused");
  fs.rmSync(tmp, { recursive: true });
});

test("units run the shipped entry points by absolute path, and their names are the contract's", () => {
  const b = loadBundle(PROJECT_DIR);
  const shipped = new Set(b.files.map((f) => f.path));
  for (const u of b.units) {
    for (const m of u.content.matchAll(/^ExecStart=(\S+) (\S+)/gm)) {
      assert.ok(m[1].startsWith("/"), `${u.path}: ${m[1]} is absolute`);
      if (m[1] === C.NODE || m[1] === "/bin/bash") assert.ok(shipped.has(m[2]), `${u.path} runs ${m[2]}, which the bundle ships`);
    }
    assert.ok(u.path.startsWith(C.UNIT_DIR + "/"), u.path);
  }
  const names = b.units.map((u) => path.basename(u.path));
  for (const n of [C.UNITS.tmuxSaveTimer, C.UNITS.tmuxRestore, C.UNITS.alertSocket, C.UNITS.tokenRenewTimer(""), C.UNITS.refreshCloneTimer("")])
    assert.ok(names.includes(n), `unit ${n} exists`);
  for (const f of b.files) if (f.link) assert.equal(path.dirname(f.link), C.BIN_DIR);
  for (const f of b.files.filter((x) => x.path.startsWith(C.LIB_DIR + "/")))
    assert.ok(!f.path.startsWith(C.HOST_LIB_DIR + "/"), `${f.path}: the host library's folder`);
});
