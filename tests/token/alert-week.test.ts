// Alerts people act on (issue 24 item 3): a simulated week of the real agent, one run per user
// every simulated hour (the timer runs every 15 min; every alert is one-shot, so the counts are
// the same), against the real Vault, the fake OAuth on the same clock and the real notifier,
// for each kind of user. Counted: the Slack posts each kind produced. Every alert names what the
// user must do; every alert is followed by its "resolved" once fixed; a user who never logged
// in, or opted out, posts nothing (the notice in their home says what to do).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import { AgentEnv, describeRun, EXIT, findLeaks, TokenSuite } from "../../dev/token";
import { FakeAnthropicMessages, startFakeMessages } from "../../dev/fakes/anthropic-messages";

const suite = new TokenSuite({ prefix: "ctr-week-", users: "w", clocked: true, slackAndProxy: true });
const { clock, envs } = suite;

let api: FakeAnthropicMessages;
const setupTokens: string[] = [];
before(async () => {
  await suite.start();
  api = await startFakeMessages();
});
after(async () => {
  const leaks = findLeaks(
    envs.flatMap((e) => e.outputs),
    [...suite.oauth.issued, suite.slack.webhookUrl, ...setupTokens],
  );
  await api?.stop();
  await suite.stop();
  assert.deepEqual(leaks, []);
});

const HOURS = 7 * 24;
interface Kind {
  label: string;
  /** what happens to this user, by simulated hour */
  events?: Record<number, (e: AgentEnv) => void | Promise<void>>;
  setup?: (e: AgentEnv) => void | Promise<void>;
  posts: number;
}

test("a simulated week: the Slack posts of each kind of user", { timeout: 900_000 }, async () => {
  const login = (e: AgentEnv, email = e.o.email) => e.writeCreds(suite.oauth.login(email));
  // the setup-token mode (README "Claude logins"): the user stores a token with the real command
  const storeToken = async (e: AgentEnv) => {
    const t = `sk-ant-oat01-${crypto.randomBytes(60).toString("base64url")}`;
    setupTokens.push(t);
    const r = await e.run("store-setup-token", [], {}, `${t}\n`);
    assert.equal(r.code, EXIT.OK, describeRun(r));
    return t;
  };
  const setupMode = (e: AgentEnv) => {
    e.writeConfig({ apiUrl: api.url });
    e.writeUsers({ claudeLogin: "setup-token" });
  };
  const stored = new Map<AgentEnv, string>();
  const kinds: Kind[] = [
    { label: "logged in all week", setup: (e) => login(e), posts: 0 },
    { label: "never logged in", posts: 0 },
    { label: "opted out (claudeTokenRenew: false)", setup: (e) => e.writeUsers({ claudeTokenRenew: false }), posts: 0 },
    {
      label: "login revoked on day 2, logs in again on day 3",
      setup: (e) => login(e),
      events: { 30: (e) => suite.oauth.revokeFamily(e.readCreds().claudeAiOauth.refreshToken), 54: (e) => login(e) },
      posts: 2,
    },
    {
      label: "logs in as another account on day 5, fixed on day 6",
      setup: (e) => login(e),
      events: { 110: (e) => login(e, "someone-else@example.com"), 130: (e) => login(e) },
      posts: 2,
    },
    {
      label: "setup-token mode, a token stored all week",
      setup: async (e) => {
        setupMode(e);
        stored.set(e, await storeToken(e));
      },
      posts: 0,
    },
    { label: "setup-token mode, none stored", setup: (e) => setupMode(e), posts: 0 },
    {
      label: "setup-token mode, token revoked on day 2, a new one stored on day 3",
      setup: async (e) => {
        setupMode(e);
        stored.set(e, await storeToken(e));
      },
      events: {
        30: (e) => api.revoke(stored.get(e)!),
        54: async (e) => {
          stored.set(e, await storeToken(e));
        },
      },
      posts: 2,
    },
  ];
  const users: Array<{ k: Kind; e: AgentEnv }> = [];
  for (const k of kinds) {
    const e = await suite.newUser();
    await k.setup?.(e);
    users.push({ k, e });
  }
  const runs = { n: 0, ms: 0 };
  for (let h = 0; h < HOURS; h++) {
    suite.proxy.down = h >= 72 && h < 96; // Vault down for a day, for everyone
    for (const { k, e } of users) await k.events?.[h]?.(e);
    await Promise.all(
      users.map(async ({ e }) => {
        const r = await e.run();
        runs.n++;
        runs.ms += r.ms;
        assert.ok(([EXIT.OK, EXIT.TRANSIENT, EXIT.LOGIN_REQUIRED, EXIT.IDENTITY_MISMATCH] as number[]).includes(r.code), describeRun(r));
      }),
    );
    clock.t += 3_600_000;
  }
  const rows = users.map(({ k, e }) => {
    const posts = suite.slack.delivered.filter((p) => p.text.includes(` ${e.o.user} (`)).map((p) => p.text);
    return { k, e, posts };
  });
  console.log(`# alert-week: ${runs.n} agent runs (${(runs.ms / runs.n).toFixed(0)} ms each), Vault down hours 72-95 for everyone`);
  for (const { k, posts } of rows) console.log(`# alert-week: ${k.label} | ${posts.length} | ${posts.map((t) => t.slice(0, 90)).join(" / ")}`);
  for (const { k, e, posts } of rows) {
    assert.equal(posts.length, k.posts, `${k.label}:\n${posts.join("\n")}`);
    const alerts = posts.filter((t) => !/resolved/.test(t));
    const resolved = posts.filter((t) => /resolved/.test(t));
    assert.equal(resolved.length, alerts.length, `${k.label}: every alert is resolved once fixed`);
    for (const a of alerts)
      assert.match(a, /must (start claude and run \/login|log in again with|run `claude setup-token`)/, `${k.label}: says what to do: ${a}`);
    if (k.label === "never logged in")
      assert.match(e.notice() ?? "", /You have not logged in to Claude on this host yet\.\nRun claude and use \/login, signing in as /);
  }
});
