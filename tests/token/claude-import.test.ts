// The team's Claude logins carried into the agent's layout (tools/claude-import.ts, issue 24
// item 4), on a real Vault dev server: the team's layout at secret/workstation/claude-users/<user>
// with sibling keys of theirs; the dry run writes nothing; --apply writes the rotating login
// into claude-tokens/users/<user> and nothing else; the team's keys, versions and metadata stay
// byte for byte; a second --apply changes nothing; the real agent then restores that login into
// the user's credentials file; no token is ever printed.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ed25519Key } from "../../dev/sshkeys";
import { AgentEnv, describeRun, EXIT, readVaultSecret, REPO, TokenSuite, vaultApi } from "../../dev/token";
import { teamLogin } from "../../tools/claude-import";

const suite = new TokenSuite({ prefix: "ctr-import-", users: "m", clocked: true });
const printed: string[] = [];
let roster = "";
let m1: AgentEnv;
const SETUP = `sk-ant-oat01-${"x".repeat(40)}`;
const team = (user: string) => `secret/data/workstation/claude-users/${user}`;
const teamMeta = (user: string) => `secret/metadata/workstation/claude-users/${user}`;
let login1: ReturnType<typeof suite.oauth.login>;

async function must(method: string, p: string, body?: unknown) {
  const r = await vaultApi(suite.vault.addr, suite.vault.rootToken, method, p, body);
  assert.ok(r.status === 200 || r.status === 204, `${method} ${p}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}
/** The team's path as an attacker-free reader sees it: every version's data and the metadata. */
async function teamSnapshot(user: string): Promise<string> {
  const meta = (await must("GET", teamMeta(user))).data;
  const versions = [];
  for (let v = 1; v <= meta.current_version; v++) versions.push((await must("GET", `${team(user)}?version=${v}`)).data.data);
  return JSON.stringify({ meta, versions });
}
function runImport(...args: string[]): { code: number; out: string } {
  const r = spawnSync(process.execPath, ["--require", "ts-node/register/transpile-only", "tools/claude-import.ts", "--roster", roster, ...args], {
    cwd: REPO,
    encoding: "utf8",
    env: { ...process.env, VAULT_ADDR: suite.vault.addr, VAULT_TOKEN: suite.vault.rootToken },
    timeout: 120_000,
  });
  const out = `${r.stdout}${r.stderr}`;
  printed.push(out);
  return { code: r.status ?? -1, out };
}

before(async () => {
  await suite.start();
  m1 = await suite.newUser({ vaultAddr: suite.vault.addr }); // m1: a rotating login (and a setup token) beside keys of theirs
  login1 = suite.oauth.login("m1@example.com");
  const creds = JSON.stringify({ claudeAiOauth: login1 });
  await must("POST", team("m1"), { data: { claude_ai_oauth_json: "{}", github_pat: "ghp_old" } }); // an older version
  await must("POST", team("m1"), {
    data: {
      claude_ai_oauth_json: creds,
      credential_expires_at_ms: String(login1.expiresAt),
      backed_up_at: "2026-12-01T10:00:00Z",
      setup_token: SETUP,
      github_pat: "ghp_keep_me",
      notes: "theirs",
    },
  });
  await must("POST", teamMeta("m1"), { custom_metadata: { owner: "team" } });
  await must("POST", team("m2"), { data: { setup_token: SETUP, other: "x" } }); // m2: a setup token only
  // m3: nothing; m4: a credentials field that is not JSON
  await must("POST", team("m4"), { data: { claude_ai_oauth_json: "{not json", other: "y" } });
  const entry = (n: string) => `  - {name: ${n}, uid: ${2100 + Number(n.slice(1))}, role: power-user, email: ${n}@example.com, forgejo: ${n}}\n`;
  roster = path.join(suite.dir, "roster.yaml");
  fs.writeFileSync(
    roster,
    `version: 1\nusers:\n  - {name: boss, uid: 2099, role: admin, email: boss@example.com, forgejo: boss, sshKeys: ["${ed25519Key("b")}"]}\n${["m1", "m2", "m3", "m4"].map(entry).join("")}`,
  );
});
after(async () => {
  const secrets = [...suite.oauth.issued, SETUP, suite.vault.rootToken];
  const leaks = secrets.filter((s) => printed.some((o) => o.includes(s)));
  await suite.stop();
  assert.deepEqual(leaks, [], "no token in anything the import printed");
});

test("the team's credentials field: the file's JSON or its inner object; anything else is a reason", () => {
  const o = { accessToken: "a", refreshToken: "r", expiresAt: 5 };
  assert.deepEqual(teamLogin(JSON.stringify({ claudeAiOauth: o })), o);
  assert.deepEqual(teamLogin(JSON.stringify(o)), o);
  assert.equal(teamLogin(undefined), "no claude_ai_oauth_json");
  assert.equal(teamLogin("{x"), "claude_ai_oauth_json is not JSON");
  assert.equal(teamLogin('{"claudeAiOauth":{"accessToken":"a"}}'), "claude_ai_oauth_json has no accessToken, refreshToken and expiresAt");
});

test("dry run: per user what it found; nothing written anywhere", async () => {
  const before = await Promise.all(["m1", "m2", "m4"].map(teamSnapshot));
  const r = runImport();
  assert.equal(r.code, 0, r.out);
  const exp = new Date(login1.expiresAt).toISOString().replace(/\.\d+Z$/, "Z");
  assert.match(r.out, /^dry run \(nothing written; --apply writes\): secret\/workstation\/claude-users\/<user> -> claude-tokens\/users\/<user>$/m);
  assert.match(
    r.out,
    new RegExp(
      `^  m1: a rotating login \\(expires ${exp}\\), a setup token; would write the login and the setup token \\(its expiry is unknown.*\\) to the agent's path \\(v1\\)$`,
      "m",
    ),
  );
  assert.match(
    r.out,
    /^ {2}m2: no rotating login \(no claude_ai_oauth_json\), a setup token; would write the setup token \(its expiry is unknown.*\) to the agent's path \(v1\)$/m,
  );
  assert.match(r.out, /^ {2}m3: nothing at the team's path$/m);
  assert.match(r.out, /^ {2}m4: no rotating login \(claude_ai_oauth_json is not JSON\)$/m);
  assert.match(r.out, /^ {2}boss: nothing at the team's path$/m);
  for (const u of ["m1", "m2", "m3", "m4", "boss"]) assert.equal(await readVaultSecret(suite.vault, u), null, `${u}: nothing in the agent's path`);
  assert.deepEqual(await Promise.all(["m1", "m2", "m4"].map(teamSnapshot)), before);
});

test("--apply writes the rotating login and the setup token into the agent's path only; the team's path stays byte for byte; a second run changes nothing", async () => {
  const before = await Promise.all(["m1", "m2", "m4"].map(teamSnapshot));
  const r = runImport("--apply");
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^ {2}m1: a rotating login .*; wrote the login and the setup token .* to the agent's path \(v1\)$/m);
  assert.match(r.out, /^ {2}m2: no rotating login .*; wrote the setup token .* to the agent's path \(v1\)$/m);
  const ours = await readVaultSecret(suite.vault, "m1");
  assert.deepEqual(ours?.data.claudeAiOauth, login1);
  assert.equal(ours?.data.email, "m1@example.com");
  assert.equal(ours?.custom.expiresAt, String(login1.expiresAt));
  assert.equal(ours?.custom.writer, "claude-import");
  assert.equal(ours?.data.setupToken, SETUP);
  const m2 = await readVaultSecret(suite.vault, "m2");
  assert.deepEqual(Object.keys(m2?.data ?? {}).sort(), ["setupToken", "setupTokenStoredAt"], "m2: the setup token only (the team's other keys are theirs)");
  assert.equal(m2?.data.setupToken, SETUP);
  for (const u of ["m3", "m4"]) assert.equal(await readVaultSecret(suite.vault, u), null, `${u}: nothing written`);
  assert.deepEqual(await Promise.all(["m1", "m2", "m4"].map(teamSnapshot)), before, "the team's keys, versions and metadata are as they were");
  const again = runImport("--apply");
  assert.equal(again.code, 0, again.out);
  assert.match(again.out, /^ {2}m1: .*; the login is already in the agent's path; the setup token is already in the agent's path: nothing to do$/m);
  assert.match(again.out, /^ {2}m2: .*; the setup token is already in the agent's path: nothing to do$/m);
  assert.equal((await readVaultSecret(suite.vault, "m1"))?.version, 1);
  assert.equal((await readVaultSecret(suite.vault, "m2"))?.version, 1);
});

test("the real agent then puts the imported login in the user's credentials file", async () => {
  assert.equal(fs.existsSync(m1.credFile), false);
  const r = await m1.run();
  assert.equal(r.code, EXIT.OK, describeRun(r));
  assert.match(r.stdout, /restored-from-vault\(v1\)/);
  assert.deepEqual(m1.readCreds().claudeAiOauth, login1);
  assert.equal(fs.statSync(m1.credFile).mode & 0o777, 0o600);
});

test("a later login already in the agent's path is kept", async () => {
  suite.clock.t += 3_600_000;
  await m1.claudeRefresh(); // Claude rotated; the agent pushes it (v2, a later expiry)
  assert.equal((await m1.run()).code, EXIT.OK);
  const r = runImport("--apply");
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^ {2}m1: .*; the agent's path holds a later login: kept; the setup token is already in the agent's path: nothing to do$/m);
  const ours = await readVaultSecret(suite.vault, "m1");
  assert.equal(ours?.version, 2);
  assert.equal(ours?.data.setupToken, SETUP, "the agent's push (a merge) kept the imported setup token");
});
