// Agent behaviour that needs no Vault: CLI and config, Vault down, Claude's locks, overrides,
// status, running as the wrong user, and the systemd units.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { FakeAnthropicOAuth, startFakeAnthropic } from "../../dev/fakes/anthropic-oauth";
import { FakeSlack, startFakeSlack } from "../../dev/fakes/slack";
import { agentFiles } from "../../dev/agents";
import { AgentEnv, deadAddr, describeRun, EXIT, findLeaks, REPO, sleep, tmpdir } from "../../dev/token";

let oauth: FakeAnthropicOAuth;
let slack: FakeSlack;
const envs: AgentEnv[] = [];

before(async () => {
  oauth = await startFakeAnthropic();
  slack = await startFakeSlack();
});
after(async () => {
  const leaks = findLeaks(
    envs.flatMap((e) => e.outputs),
    [...oauth.issued, slack.webhookUrl, "fakewebhooksecret", "OVERRIDE-SECRET-VALUE"],
  );
  for (const e of envs) e.cleanup();
  await oauth.stop();
  await slack.stop();
  assert.deepEqual(leaks, [], "no secret in any agent output of this file");
});

async function env(user: string, extra: Partial<ConstructorParameters<typeof AgentEnv>[0]> = {}): Promise<AgentEnv> {
  const e = new AgentEnv({
    user,
    email: `${user}@example.com`,
    vaultAddr: await deadAddr(),
    oauth,
    slack,
    appRole: { role_id: "r", secret_id: "s-secret-id-value" },
    ...extra,
  });
  envs.push(e);
  return e;
}

test("CLI: usage and config errors exit 2 without touching anything", async () => {
  const e = await env("cli");
  assert.equal((await e.run("bogus")).code, EXIT.USAGE);
  assert.equal((await e.run("run", ["--no-such-option"])).code, EXIT.USAGE);
  assert.equal((await e.run("run", ["--config", path.join(e.root, "missing.json")])).code, EXIT.USAGE);
  fs.writeFileSync(e.configFile, JSON.stringify({ vaultAddr: "http://127.0.0.1:1", tokenUrl: "http://x/t", profileUrl: "http://x/p" }));
  const r = await e.run("run");
  assert.equal(r.code, EXIT.USAGE, describeRun(r));
  assert.match(r.stderr, /clientId/);
  const h = await e.run("--help");
  assert.equal(h.code, 0);
  assert.match(h.stdout, /exit codes/);
});

test("disabled users (not listed, suspended, opted out) are a no-op", async () => {
  const e = await env("dis");
  const l = oauth.login("dis@example.com", { accessTtlSeconds: 60 });
  e.writeCreds(l);
  const before = fs.readFileSync(e.credFile, "utf8");
  for (const entry of [{ state: "suspended" }, { claudeTokenRenew: false }, { name: "someone-else" }]) {
    e.writeUsers(entry);
    const r = await e.run();
    assert.equal(r.code, EXIT.OK, describeRun(r));
    assert.match(r.stderr, /nothing to do/);
  }
  assert.equal(fs.readFileSync(e.credFile, "utf8"), before);
  assert.equal(oauth.isLiveRefresh(l.refreshToken), true);
});

test("Vault down: local credentials untouched (no refresh, no restore), transient exit, no SSO alert", async () => {
  const e = await env("vdown");
  const l = oauth.login("vdown@example.com", { accessTtlSeconds: 120 }); // near expiry
  e.writeCreds(l, { mcpOAuth: { server: { accessToken: "mcp-token" } } });
  const st0 = fs.statSync(e.credFile);
  const text0 = fs.readFileSync(e.credFile, "utf8");
  const refreshes0 = oauth.refreshes;
  const posts0 = slack.posts.length;
  for (let i = 0; i < 3; i++) {
    const r = await e.run();
    assert.equal(r.code, EXIT.TRANSIENT, describeRun(r));
    assert.match(r.stderr, /Vault unreachable/);
  }
  const st1 = fs.statSync(e.credFile);
  assert.equal(fs.readFileSync(e.credFile, "utf8"), text0);
  assert.equal(st1.ino, st0.ino, "file not replaced");
  assert.equal(st1.mtimeMs, st0.mtimeMs);
  assert.equal(oauth.refreshes, refreshes0, "no rotation Vault could not record");
  assert.equal(slack.posts.length, posts0, "no alert");
  assert.equal(e.notice(), null);

  // Local file missing + Vault down: nothing is created, nothing alerted.
  fs.unlinkSync(e.credFile);
  const r = await e.run();
  assert.equal(r.code, EXIT.TRANSIENT, describeRun(r));
  assert.equal(fs.existsSync(e.credFile), false);
  assert.equal(slack.posts.length, posts0);
});

test("Claude's locks: a live lock is never stolen; a stale one is cleared; the agent never deadlocks", async () => {
  const e = await env("locks", { config: { lockWaitSeconds: 2 } });
  e.writeCreds(oauth.login("locks@example.com"));
  const lockA = path.join(e.claudeDir, ".oauth_refresh.lock");
  const lockB = path.join(e.home, ".claude.lock");

  // Live: held and heartbeated by "Claude".
  fs.mkdirSync(lockB);
  const ino = fs.statSync(lockB).ino;
  const hb = setInterval(() => fs.utimesSync(lockB, new Date(), new Date()), 500);
  try {
    const t0 = Date.now();
    const r = await e.run();
    assert.equal(r.code, EXIT.TRANSIENT, describeRun(r));
    assert.match(r.stderr, /locks are held by a live process/);
    assert.ok(Date.now() - t0 < 15_000);
    assert.equal(fs.statSync(lockB).ino, ino, "live lock untouched");
    assert.equal(fs.existsSync(lockA), false, "the other lock was released, not kept while waiting");
  } finally {
    clearInterval(hb);
  }

  // Stale: no heartbeat for 2 minutes (e.g. Claude was killed mid-refresh).
  const old = new Date(Date.now() - 120_000);
  fs.utimesSync(lockB, old, old);
  fs.mkdirSync(lockA);
  fs.utimesSync(lockA, old, old);
  const r = await e.run();
  assert.equal(r.code, EXIT.TRANSIENT, describeRun(r)); // Vault is down in this file
  assert.match(r.stderr, /removing stale lock/);
  assert.equal(fs.existsSync(lockA), false, "released after the pass");
  assert.equal(fs.existsSync(lockB), false);
});

test("overrides: env tokens in the unit environment, rc files and Claude settings are reported by name only", async () => {
  const e = await env("ovr");
  e.writeCreds(oauth.login("ovr@example.com"));
  fs.writeFileSync(path.join(e.home, ".bashrc"), "# ANTHROPIC_API_KEY=commented-out\nexport ANTHROPIC_API_KEY=OVERRIDE-SECRET-VALUE\n");
  fs.writeFileSync(path.join(e.home, ".profile"), 'CLAUDE_CODE_OAUTH_TOKEN="OVERRIDE-SECRET-VALUE"\n');
  fs.writeFileSync(path.join(e.claudeDir, "settings.json"), JSON.stringify({ env: { ANTHROPIC_AUTH_TOKEN: "OVERRIDE-SECRET-VALUE" } }));
  const r = await e.run("run", [], { CLAUDE_CODE_OAUTH_TOKEN: "OVERRIDE-SECRET-VALUE" });
  assert.match(r.stderr, /CLAUDE_CODE_OAUTH_TOKEN \(agent environment\)/);
  assert.match(r.stderr, /ANTHROPIC_API_KEY \(~\/\.bashrc\)/);
  assert.match(r.stderr, /CLAUDE_CODE_OAUTH_TOKEN \(~\/\.profile\)/);
  assert.match(r.stderr, /ANTHROPIC_AUTH_TOKEN \(~\/\.claude\/settings\.json "env"\)/);
  assert.equal((r.stderr.match(/ANTHROPIC_API_KEY/g) ?? []).length, 1, "the commented line is not reported");
  const notice = e.notice();
  assert.ok(notice && /ANTHROPIC_API_KEY/.test(notice) && !notice.includes("OVERRIDE-SECRET-VALUE"), String(notice));
  const s = await e.run("status", ["--offline", "--json"]);
  assert.equal(s.code, 0, describeRun(s));
  assert.ok((JSON.parse(s.stdout).overrides as string[]).some((x) => x.startsWith("ANTHROPIC_API_KEY")));
});

test("status: shows state without secrets and changes nothing", async () => {
  const e = await env("stat");
  const l = oauth.login("stat@example.com");
  e.writeCreds(l, { mcpOAuth: {} });
  const text0 = fs.readFileSync(e.credFile, "utf8");
  const r = await e.run("status", ["--json"]);
  assert.equal(r.code, 0, describeRun(r));
  const s = JSON.parse(r.stdout);
  assert.equal(s.local.state, "ok");
  assert.deepEqual(s.local.otherKeys, ["mcpOAuth"]);
  assert.equal(s.local.accessTokenExpired, false);
  assert.match(String(s.vault.error), /unreachable/);
  assert.ok(!r.stdout.includes(l.accessToken) && !r.stdout.includes(l.refreshToken));
  assert.equal(fs.readFileSync(e.credFile, "utf8"), text0);
  assert.equal(fs.existsSync(e.stateDir), false, "status writes no state");
  const t = await e.run("status", ["--offline"]);
  assert.match(t.stdout, /^user: stat$/m);
});

test(
  "refuses to run on a home owned by another uid (root must not write a user's files)",
  { skip: process.getuid?.() !== 0 && process.env.CI !== "true" ? "SKIPPED (not under CI): needs root to chown" : false },
  async () => {
    assert.equal(process.getuid?.(), 0, "this test needs root (to chown a home to another uid); under CI=true it fails instead of skipping");
    const e = await env("owner");
    e.writeCreds(oauth.login("owner@example.com"));
    fs.chownSync(e.home, 54321, 54321);
    try {
      const r = await e.run();
      assert.equal(r.code, EXIT.USAGE, describeRun(r));
      assert.match(r.stderr, /run as that user/);
    } finally {
      fs.chownSync(e.home, 0, 0);
    }
  },
);

test("units: claude-token-renew@.service and .timer pass systemd-analyze verify", () => {
  const have = spawnSync("systemd-analyze", ["--version"], { stdio: "ignore" }).status === 0;
  assert.ok(have, "systemd-analyze is needed for this test (apt-get install systemd)");
  const dir = tmpdir("ctr-units-");
  try {
    for (const f of ["claude-token-renew@.service", "claude-token-renew@.timer"]) fs.copyFileSync(path.join(REPO, "scripts", "units", f), path.join(dir, f));
    // verify needs an instance whose User= exists here
    const user = "root";
    fs.symlinkSync("claude-token-renew@.service", path.join(dir, `claude-token-renew@${user}.service`));
    fs.symlinkSync("claude-token-renew@.timer", path.join(dir, `claude-token-renew@${user}.timer`));
    const r = spawnSync(
      "systemd-analyze",
      ["verify", path.join(dir, `claude-token-renew@${user}.service`), path.join(dir, `claude-token-renew@${user}.timer`)],
      { encoding: "utf8" },
    );
    const noise = (r.stderr ?? "")
      .split("\n")
      .filter((l) => l.trim() && !/Failed to read \$container|Found container virtualization|PR_SET_MM/.test(l) && !/Special user root configured/.test(l));
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(noise, [], "no warnings");
    const svc = fs.readFileSync(path.join(dir, "claude-token-renew@.service"), "utf8");
    assert.match(svc, /^Type=oneshot$/m);
    assert.match(svc, /^User=%i$/m);
    assert.match(svc, /^ProtectSystem=strict$/m);
    assert.match(svc, /^ReadWritePaths=-\/home$/m);
    assert.doesNotMatch(svc, /^MemoryDenyWriteExecute=yes/m, "V8 needs W+X pages");
    const timer = fs.readFileSync(path.join(dir, "claude-token-renew@.timer"), "utf8");
    assert.match(timer, /^Persistent=true$/m);
    assert.match(timer, /^RandomizedDelaySec=/m);
    assert.match(timer, /^OnCalendar=/m, "Persistent= only works with OnCalendar=");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the agent is plain Node ESM with no dependencies", () => {
  const entry = path.join(REPO, "scripts", "agents", "claude-token-renew.mjs");
  assert.match(fs.readFileSync(entry, "utf8"), /^#!\/usr\/bin\/env node\n\/\/ @ts-check/);
  const files = agentFiles(entry); // the entry point and every module it imports
  assert.ok(
    files.some((f) => f.endsWith(path.join("token", "decide.mjs"))),
    files.join(" "),
  );
  for (const f of files) {
    const src = fs.readFileSync(f, "utf8");
    assert.match(src, /^(#!\/usr\/bin\/env node\n)?\/\/ @ts-check\n/, `${f} is type-checked`);
    const imports = [...src.matchAll(/^(?:import|export) .* from '([^']+)';$/gm)].map((m) => m[1]);
    for (const i of imports) assert.match(i, /^(node:|\.{1,2}\/)/, `only node: builtins and the agent's own modules, found ${i} in ${f}`);
    assert.ok(path.relative(path.join(REPO, "scripts", "agents"), f).split(path.sep)[0] !== "..", f);
  }
  void sleep;
});
