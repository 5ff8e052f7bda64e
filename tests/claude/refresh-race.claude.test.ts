/**
 * The refresh race, settled with the real CLI (issue 24 item 2; README "Claude logins"): N real
 * Claude Code 2.1.332 processes of one user (N up to 5) and the renewal agent, all started at
 * once on a login whose access token has expired, refresh against the fake OAuth (single-use
 * refresh tokens; presenting a spent one revokes the whole family, as the real server does),
 * round after round (each round one expiry: three a day). The real CLI keeps its prod OAuth
 * configuration; its name resolution and CA are redirected (dev/fakes/claude-endpoints.ts).
 * Counted per round: refreshes, spent tokens presented again, family revocations, processes
 * that ended without an answer; the file must end on the family's live refresh token.
 *
 * Needs root and 127.0.0.1:443. Under CI=true a missing claude binary fails.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import * as L from "../../dev/tmux";
import * as C from "../../dev/claude";
import { CLAUDE_CODE_CLIENT_ID, FakeClaudeEndpoints } from "../../dev/fakes/claude-endpoints";
import { addVaultUser, AGENT, NODE, setupVaultLayout, startRealVault, VaultHandle } from "../../dev/token";

const NODE_BIN = NODE; // /usr/bin/node here; the user must be able to run it

const skip = C.claudeSkip();

function spawnSyncOk(argv: string[]): void {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
}

async function waitUntil(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Ran {
  code: number;
  out: string;
}
function run(argv: string[], timeoutMs = 120_000): Promise<Ran> {
  return new Promise((resolve) => {
    const p = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.on("close", (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, out });
    });
  });
}

describe("the refresh race: N real Claudes and the agent on one rotating login", { skip: skip ?? false, timeout: 25 * 60_000 }, () => {
  let env: L.Env;
  let U: L.TUser;
  let inst: C.ClaudeInstall;
  let ep: FakeClaudeEndpoints;
  let proj: string;
  let agentConfig: string;
  let agent: string;
  let vault: VaultHandle;
  const email = () => `${U.name}@example.com`;
  const credFile = () => path.join(U.home, ".claude/.credentials.json");
  const asUser = (o: { uid: number; gid: number; name: string; home: string }, uid = o.uid) => ({ ...o, uid });

  /** A fresh login (a new family) whose access token expired a minute ago, as Claude keeps it. */
  function seedExpired() {
    const login = ep.oauth.login(email());
    const tmp = `${credFile()}.seed`;
    fs.writeFileSync(tmp, JSON.stringify({ claudeAiOauth: { ...login, expiresAt: Date.now() - 60_000 } }), { mode: 0o600 });
    fs.chownSync(tmp, U.uid, U.gid);
    fs.renameSync(tmp, credFile());
    return login;
  }
  const claudeP = (text: string) => ep.asUser(asUser(U), proj, {}, [inst.bin, "-p", text]);
  const agentRun = () => ep.asUser(asUser(U), "/", {}, [NODE_BIN, agent, "run", "--config", agentConfig, "--user", U.name]);

  before(async () => {
    if (skip === undefined) C.requireClaude();
    env = L.setupEnv(1);
    [U] = env.users;
    inst = C.installNpmLayout(env.base);
    ep = await new FakeClaudeEndpoints(path.join(env.base, "endpoints")).start();
    proj = L.userDir(U, "race");
    // the agent as the user runs it: a copy the user can read wherever the checkout is
    const agents = path.join(env.base, "agents");
    fs.cpSync(path.dirname(AGENT), agents, { recursive: true });
    spawnSyncOk(["chmod", "-R", "go+rX", agents]);
    agent = path.join(agents, path.basename(AGENT));
    // no API key, no base URL: the CLI's own login, its prod endpoints (redirected), nothing else
    C.seedUser(U, { url: "https://api.anthropic.com", projects: [proj], apiKey: false });
    const settings = path.join(U.home, ".claude/settings.json");
    const s = JSON.parse(fs.readFileSync(settings, "utf8"));
    delete s.env.ANTHROPIC_BASE_URL;
    fs.writeFileSync(settings, JSON.stringify(s, null, 2));
    const usersFile = path.join(env.base, "users.json");
    fs.writeFileSync(
      usersFile,
      JSON.stringify({
        version: 1,
        users: [
          { name: U.name, uid: U.uid, home: U.home, state: "active", email: email(), tmuxPersist: false, claudeTokenRenew: true, claudeLogin: "rotating" },
        ],
      }),
      { mode: 0o644 },
    );
    // the real Vault dev server and the user's own AppRole: the agent rotates only when it can
    // push the new login to Vault (with Vault down it leaves the refresh to Claude)
    vault = await startRealVault(path.join(env.base, "vault"));
    await setupVaultLayout(vault);
    const appRole = await addVaultUser(vault, U.name);
    const cred = path.join(U.home, ".config/claude-token-renew");
    spawnSyncOk(["install", "-d", "-m", "0700", "-o", String(U.uid), "-g", String(U.gid), path.join(U.home, ".config"), cred]);
    fs.writeFileSync(path.join(cred, "vault.json"), JSON.stringify(appRole), { mode: 0o600 });
    fs.chownSync(path.join(cred, "vault.json"), U.uid, U.gid);
    agentConfig = path.join(env.base, "claude-token-renew.json");
    fs.writeFileSync(
      agentConfig,
      JSON.stringify({
        vaultAddr: vault.addr,
        tokenUrl: "https://platform.claude.com/v1/oauth/token",
        profileUrl: "https://api.anthropic.com/api/oauth/profile",
        clientId: CLAUDE_CODE_CLIENT_ID,
        usersFile,
        alertSocket: "",
        httpTimeoutSeconds: 10,
        lockWaitSeconds: 60,
      }),
      { mode: 0o644 },
    );
  });
  after(async () => {
    await ep?.stop();
    await vault?.stop();
    if (env) L.teardownEnv(env);
  });

  test("20 rounds of N = 2, 3, 5 real `claude -p` and the agent on an expired access token (a slow token endpoint, the agent first): one refresh each, no spent token reused, no family revoked, nobody logged out", async () => {
    const tally = { rounds: 0, claudes: 0, agentRuns: 0, refreshes: 0, reused: 0, revocations: 0, loggedOut: 0, agentRefreshed: 0 };
    // [N, rounds, token endpoint delay, the agent first]: 12 rounds all at once, 4 with a slow
    // token endpoint, 4 where the agent holds Claude's lock (refreshing, slowly) when the Claudes start
    const plan: Array<[number, number, number, boolean]> = [
      [2, 4, 0, false],
      [3, 4, 0, false],
      [5, 4, 0, false],
      [3, 2, 3000, false],
      [5, 2, 3000, false],
      [3, 2, 3000, true],
      [5, 2, 3000, true],
    ];
    const lockDir = () => path.join(U.home, ".claude/.oauth_refresh.lock");
    for (const [n, rounds, delay, agentFirst] of plan) {
      ep.tokenDelayMs = delay;
      for (let round = 0; round < rounds; round++) {
        const login = seedExpired();
        const fam = ep.oauth.familyOf(login.refreshToken)!.id;
        const from = ep.oauth.log.length;
        const texts = Array.from({ length: n }, (_, i) => `race n${n} d${delay}${agentFirst ? " a" : ""} r${round} p${i}`);
        const agentP = run(agentRun());
        if (agentFirst)
          await waitUntil("the agent holds Claude's refresh lock", () => fs.existsSync(lockDir()), 15_000).catch(async (e) => {
            throw new Error(`${(e as Error).message}; the agent: ${(await agentP).out}`);
          });
        const [agent, ...claudes] = await Promise.all([agentP, ...texts.map((t) => run(claudeP(t)))]);
        if (agentFirst) assert.match(agent.out, /refreshed/, "the agent refreshed, the Claudes waited and took its token");
        const log = ep.oauth.log.slice(from).filter((l) => l.familyId === fam);
        const rotated = log.filter((l) => l.outcome === "rotated").length;
        const bad = log.filter((l) => l.outcome !== "rotated");
        const file = JSON.parse(fs.readFileSync(credFile(), "utf8")).claudeAiOauth;
        const where = `n=${n} delay ${delay} ms${agentFirst ? " agent first" : ""} round ${round}: token requests ${log.map((l) => l.outcome).join(",")}; agent ${agent.code}: ${agent.out.slice(-300)}`;
        tally.rounds++;
        tally.claudes += n;
        tally.agentRuns++;
        tally.refreshes += rotated;
        tally.reused += bad.filter((l) => l.outcome === "reuse-revoked").length;
        tally.revocations += ep.oauth.familyOf(login.refreshToken)!.revoked ? 1 : 0;
        if (/refreshed/.test(agent.out)) tally.agentRefreshed++;
        for (const [i, c] of claudes.entries()) {
          if (c.code !== 0 || !c.out.includes("CANNED-ANSWER")) tally.loggedOut++;
          assert.equal(c.code, 0, `${where}\nclaude ${i}: ${c.out.slice(-400)}`);
          assert.match(c.out, new RegExp(`CANNED-ANSWER #\\d+ to "${texts[i]}"`), `${where}\nclaude ${i} answered`);
        }
        assert.equal(agent.code, 0, `${where}\nthe agent`);
        assert.deepEqual(bad, [], where);
        assert.equal(rotated, 1, `${where}\nexactly one refresh per expiry`);
        assert.equal(ep.oauth.familyOf(login.refreshToken)!.revoked, false, where);
        assert.ok(ep.oauth.isLiveRefresh(file.refreshToken), `${where}\nthe file ends on the family's live refresh token`);
        assert.ok(file.expiresAt > Date.now() + 3_600_000, where);
        for (const lock of [path.join(U.home, ".claude/.oauth_refresh.lock"), path.join(U.home, ".claude.lock")])
          assert.ok(!fs.existsSync(lock), `${where}\nno lock left: ${lock}`);
      }
    }
    ep.tokenDelayMs = 0;
    console.log(`# refresh-race: ${JSON.stringify(tally)}`);
    assert.equal(tally.reused + tally.revocations + tally.loggedOut, 0);
  });

  test("control: a refresh token spent elsewhere first is caught (invalid_grant, the family revoked) and claude logs out (empty tokens in its file)", async () => {
    const login = seedExpired();
    // spend it from outside, as a stale copy restored somewhere else would
    const r = await fetch(`${ep.oauth.url}/v1/oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ grant_type: "refresh_token", refresh_token: login.refreshToken, client_id: CLAUDE_CODE_CLIENT_ID }),
    });
    assert.equal(r.status, 200);
    const c = await run(claudeP("control after a stolen refresh"));
    assert.notEqual(c.code, 0, c.out);
    assert.ok(ep.oauth.familyOf(login.refreshToken)!.revoked, "presenting the spent token revoked the family");
    assert.ok(
      ep.oauth.log.some((l) => l.outcome === "reuse-revoked"),
      "the fake saw the reuse",
    );
    const file = JSON.parse(fs.readFileSync(credFile(), "utf8")).claudeAiOauth;
    assert.equal(file.refreshToken, "", "claude wrote its logged-out state: empty tokens");
    assert.match(c.out, /OAuth session expired and could not be refreshed/);
  });
});
