// bench:token — cost of claude-token-renew on a real Vault-API server (toolchain OpenBao/Vault)
// with the fake Anthropic OAuth server.
//  1. wall time of one `run` with nothing to do (process start to exit), vs bare `node -e 0`;
//  2. a simulated day of timer runs (96 = every 15 min) per user, counting Vault KV writes,
//     AppRole logins and Anthropic calls:
//       a. steady state, nothing rotates (access token valid all day)  -> goal: 0 KV writes
//       b. realistic 8 h access tokens, the agent is the only refresher
//       c. realistic 8 h access tokens, Claude refreshes itself first (its 5 min margin is
//          made larger than the agent's here so Claude always wins)
// Usage: npm run bench:token [-- --runs N] [--json]
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { startFakeAnthropic } from "../dev/fakes/anthropic-oauth";
import { addVaultUser, AgentEnv, NODE, setupVaultLayout, startRealVault, tmpdir, VaultProxy } from "../dev/token";

const argv = process.argv.slice(2);
const RUNS = Number(argv[argv.indexOf("--runs") + 1]) || 20;
const JSON_OUT = argv.includes("--json");

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, min: +s[0].toFixed(1), median: +q(0.5).toFixed(1), p95: +q(0.95).toFixed(1), max: +s[s.length - 1].toFixed(1) };
}

async function main() {
  const dir = tmpdir("ctr-bench-");
  const vault = await startRealVault(dir);
  const proxy = await new VaultProxy(vault.addr).start();
  const clock = { t: Date.now() };
  const oauth = await startFakeAnthropic({ now: () => clock.t });
  const envs: AgentEnv[] = [];
  const result: Record<string, unknown> = {
    node: spawnSync(NODE, ["--version"], { encoding: "utf8" }).stdout.trim(),
    vault: vault.addr ? "toolchain dev server" : "",
  };
  try {
    await setupVaultLayout(vault);
    let n = 0;
    const mk = async (accessTtlSeconds: number) => {
      const user = `b${++n}`;
      const cred = await addVaultUser(vault, user);
      const e = new AgentEnv({ user, email: `${user}@example.com`, vaultAddr: proxy.url, oauth, appRole: cred, clock });
      envs.push(e);
      e.writeCreds(oauth.login(e.o.email, { accessTtlSeconds }), { mcpOAuth: {} });
      const first = await e.run();
      if (first.code !== 0) throw new Error(`first run failed: ${first.stderr}`);
      return e;
    };

    // 1. idle run wall time
    const e1 = await mk(48 * 3600);
    const base: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = process.hrtime.bigint();
      spawnSync(NODE, ["-e", "0"]);
      base.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const idle: number[] = [];
    proxy.reset();
    for (let i = 0; i < RUNS; i++) {
      const r = await e1.run();
      if (r.code !== 0 || !/nothing to do/.test(r.stdout)) throw new Error(`idle run did something: ${r.stdout} ${r.stderr}`);
      idle.push(r.ms);
    }
    result.idleRunMs = stats(idle);
    result.bareNodeStartMs = stats(base);
    result.idleRunVaultRequests = +(proxy.requests.length / RUNS).toFixed(2);

    // 2. simulated days
    const day = async (label: string, accessTtlSeconds: number, claudeFirst: boolean) => {
      const e = await mk(accessTtlSeconds);
      proxy.reset();
      const tok0 = oauth.tokenRequests;
      const prof0 = oauth.profileRequests;
      const ref0 = oauth.refreshes;
      let claudeRefreshes = 0;
      const codes: Record<number, number> = {};
      for (let i = 0; i < 96; i++) {
        clock.t += 15 * 60_000;
        if (claudeFirst) {
          const r = await e.claudeRefresh(90 * 60_000);
          if (r === "refreshed") claudeRefreshes++;
        }
        const r = await e.run();
        codes[r.code] = (codes[r.code] ?? 0) + 1;
      }
      const kv = proxy.kvWrites;
      result[label] = {
        runs: 96,
        exitCodes: codes,
        vaultKvWrites: kv.length,
        vaultKvDataWrites: kv.filter((q) => q.path.includes("/data/")).length,
        vaultKvMetadataWrites: kv.filter((q) => q.path.includes("/metadata/")).length,
        vaultReads: proxy.requests.filter((q) => q.method === "GET").length,
        approleLogins: proxy.logins.length,
        rotations: oauth.refreshes - ref0,
        agentRotations: oauth.refreshes - ref0 - claudeRefreshes,
        claudeRotations: claudeRefreshes,
        anthropicTokenRequests: oauth.tokenRequests - tok0,
        anthropicProfileRequests: oauth.profileRequests - prof0,
        familyRevocations: oauth.revocations,
      };
    };
    await day("dayNothingRotates", 48 * 3600, false);
    await day("dayAgentRotates8h", 8 * 3600, false);
    await day("dayClaudeRotates8h", 8 * 3600, true);
    result.note =
      "AppRole logins in a simulated day are undercounted: the cached Vault token lives in real time " +
      "(token_ttl=24h in docs/CONTRACTS.md), so a real day has about 1 login per user; each login also " +
      "writes a token entry to Vault's own storage.";
  } finally {
    for (const e of envs) e.cleanup();
    await proxy.stop();
    await oauth.stop();
    await vault.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (JSON_OUT) console.log(JSON.stringify(result, null, 2));
  else {
    const idle = result.idleRunMs as ReturnType<typeof stats>;
    const bare = result.bareNodeStartMs as ReturnType<typeof stats>;
    console.log(`claude-token-renew bench (${result.node})`);
    console.log(
      `idle run: median ${idle.median} ms, p95 ${idle.p95} ms (bare node start: median ${bare.median} ms); Vault requests per idle run: ${result.idleRunVaultRequests}`,
    );
    for (const k of ["dayNothingRotates", "dayAgentRotates8h", "dayClaudeRotates8h"]) console.log(`${k}: ${JSON.stringify(result[k])}`);
    console.log(result.note);
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
