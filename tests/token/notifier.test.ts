// The root-side alert notifier (scripts/agents/workstations-alert.mjs) behind an emulation of its
// Accept=yes socket (dev/token.ts AlertSocket), with the fake Slack. No Vault needed.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { loadBundle } from "../../components/bundle";
import { FakeSlack, startFakeSlack } from "../../dev/fakes/slack";
import { agentFiles } from "../../dev/agents";
import { AlertSocket, AlertSocketOptions, deadAddr, findLeaks, NOTIFIER, REPO, RunResult, runNode, sendToAlertSocket, tmpdir } from "../../dev/token";

let slack: FakeSlack;
let dir: string;
let usersFile: string;
let credsDir: string;
const sockets: AlertSocket[] = [];
/** every answer and every notifier stderr, for the leak check */
const seen: RunResult[] = [];

const USERS = [
  { name: "viktor", uid: 2000, home: "/home/viktor", state: "active", email: "viktor@example.com" },
  { name: "emo", uid: 2001, home: "/home/emo", state: "active", email: "emo@example.com" },
  { name: "sus", uid: 2002, home: "/home/sus", state: "suspended", email: "sus@example.com" },
];

before(async () => {
  slack = await startFakeSlack();
  dir = tmpdir("ctr-notifier-");
  usersFile = path.join(dir, "users.json");
  fs.writeFileSync(usersFile, JSON.stringify({ version: 1, users: USERS }));
  credsDir = path.join(dir, "credentials");
  fs.mkdirSync(credsDir, { mode: 0o700 });
  fs.writeFileSync(path.join(credsDir, "slack-webhook"), `${slack.webhookUrl}\n`, { mode: 0o600 });
});
after(async () => {
  for (const s of sockets) {
    await s.stop();
    seen.push(...s.outputs);
  }
  await slack.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  const u = new URL(slack.webhookUrl);
  assert.deepEqual(findLeaks(seen, [slack.webhookUrl, u.pathname, "fakewebhooksecret"]), [], "the webhook never appears in an answer or the journal");
  for (const o of seen) assert.ok(!o.stdout.includes("fakewebhooksecret") && !o.stderr.includes("fakewebhooksecret"));
});

let n = 0;
/** A fresh emulated socket; `peer` is who the kernel says is connecting. */
async function socket(peer: { pid: number; uid: number } | null, o: Partial<AlertSocketOptions> = {}): Promise<AlertSocket> {
  const s = await new AlertSocket({
    socketPath: path.join(dir, `alert-${++n}.sock`),
    usersFile,
    credentialsDir: credsDir,
    peer: () => peer,
    hostLabel: "testhost",
    args: ["--slack-timeout", "1", "--read-timeout", "1"],
    ...o,
  }).start();
  sockets.push(s);
  return s;
}
async function ask(s: AlertSocket, payload: string | Buffer, opts: { halfClose?: boolean } = {}): Promise<string> {
  const answer = await sendToAlertSocket(s.o.socketPath, payload, opts);
  await s.idle();
  seen.push({ code: 0, ms: 0, stdout: answer, stderr: "" });
  return answer;
}
const msg = (text: unknown) => `${JSON.stringify({ text })}\n`;
const lastExit = (s: AlertSocket) => s.outputs[s.outputs.length - 1].code;
const lastLog = (s: AlertSocket) => s.outputs[s.outputs.length - 1].stderr;

/**
 * The notifier run directly (stdin/stdout pipes) with an explicit instance name. Async: the
 * fake Slack lives in this process.
 */
async function direct(
  instance: string,
  input: string,
  env: Record<string, string> = { CREDENTIALS_DIRECTORY: credsDir },
): Promise<{ code: number; answer: string; log: string }> {
  const r = await runNode([NOTIFIER, "--instance", instance, "--users-file", usersFile, "--host-label", "testhost", "--slack-timeout", "1"], {
    env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8", ...env },
    input,
  });
  seen.push(r);
  return { code: r.code, answer: r.stdout, log: r.stderr };
}

test("an alert from an active roster user reaches Slack, prefixed with the user and the host", async () => {
  const s = await socket({ pid: 4242, uid: 2001 });
  const before = slack.posts.length;
  assert.equal(await ask(s, msg(":rotating_light: Claude login required for emo (emo@example.com) on testhost: invalid_grant.")), "ok\n");
  assert.equal(slack.posts.length, before + 1);
  const p = slack.posts[slack.posts.length - 1];
  assert.equal(p.delivered, true);
  assert.equal(p.text, "[emo@testhost] :rotating_light: Claude login required for emo (emo@example.com) on testhost: invalid_grant.");
  assert.deepEqual(p.body, { text: p.text }, 'exactly {"text": ...}');
  assert.equal(p.path, new URL(slack.webhookUrl).pathname);
  assert.equal(lastExit(s), 0);
  assert.match(lastLog(s), /^workstations-alert: sent from emo \(uid 2001, pid 4242\): /);
  assert.equal(lastLog(s).trim().split("\n").length, 1, "one journal line");
  assert.match(s.instances[0], /^0-4242-2001$/);
});

test("the sender is the peer uid: another uid gets its own name; nothing in the message can change it", async () => {
  const s = await socket({ pid: 1, uid: 2000 });
  assert.equal(await ask(s, msg("hello")), "ok\n");
  assert.equal(slack.posts[slack.posts.length - 1].text, "[viktor@testhost] hello");
  const before = slack.posts.length;
  for (const body of [JSON.stringify({ text: "x", user: "emo" }), JSON.stringify({ text: "x", from: "emo", host: "elsewhere" })]) {
    const a = await ask(s, `${body}\n`);
    assert.match(a, /^error invalid message: unknown field/);
    assert.equal(lastExit(s), 1);
  }
  assert.equal(slack.posts.length, before);
  // The message cannot fake a prefix either: it stays inside the sender's own.
  assert.equal(await ask(s, msg("[emo@testhost] I am emo")), "ok\n");
  assert.equal(slack.posts[slack.posts.length - 1].text, "[viktor@testhost] [emo@testhost] I am emo");
});

test("refused: unknown uid, root, a suspended user, no peer credentials; nothing is posted", async () => {
  const before = slack.posts.length;
  for (const [peer, why] of [
    [{ pid: 9, uid: 4242 }, /uid 4242 is not a roster user/],
    [{ pid: 9, uid: 0 }, /uid 0 is not a roster user/],
    [{ pid: 9, uid: 2002 }, /sus \(uid 2002\) is not active/],
    [null, /unknown sender/],
  ] as [{ pid: number; uid: number } | null, RegExp][]) {
    const s = await socket(peer);
    const a = await ask(s, msg("let me in"));
    assert.match(a, /^error refused: /);
    assert.match(a, why);
    assert.equal(lastExit(s), 1);
    assert.match(lastLog(s), /^workstations-alert: refused/);
  }
  // A user not in users.json at all (offboarded) and a duplicated uid are refused too.
  fs.writeFileSync(usersFile, JSON.stringify({ version: 1, users: [...USERS, { name: "dup", uid: 2001, state: "active" }] }));
  try {
    assert.match((await direct("1-9-2001", msg("x"))).answer, /^error refused: uid 2001 is not a roster user/);
  } finally {
    fs.writeFileSync(usersFile, JSON.stringify({ version: 1, users: USERS }));
  }
  for (const bad of ["", "emo", "1-2001", "1-unknown", "1-2-3-unknown", "1-9-2001x", "1-9--2001", "../../2001"]) {
    const r = await direct(bad, msg("x"));
    assert.equal(r.answer, "error refused: unknown sender\n", `instance ${JSON.stringify(bad)}`);
    assert.equal(r.code, 1);
  }
  assert.equal(slack.posts.length, before);
});

test("instance names: systemd 252's <n>-<pid>-<uid> and the later <n>-<cookie>-<pid>[_<pidfd id>]-<uid>", async () => {
  for (const instance of ["0-123-2001", "17-123-2001", "3-88172-123-2001", "3-88172-123_9911-2001"]) {
    const r = await direct(instance, msg(`via ${instance}`));
    assert.equal(r.answer, "ok\n", `${instance}: ${r.log}`);
    assert.match(r.log, /sent from emo \(uid 2001, pid 123\)/);
    assert.equal(slack.posts[slack.posts.length - 1].text, `[emo@testhost] via ${instance}`);
  }
});

test("message limits: more than 4 KiB, too long a text, bad JSON, no or empty text, silence", async () => {
  const s = await socket({ pid: 5, uid: 2001 });
  const before = slack.posts.length;
  assert.equal(await ask(s, msg("x".repeat(5000))), "error message too large (max 4096 bytes)\n");
  assert.equal(await ask(s, Buffer.alloc(64 * 1024, "a")), "error message too large (max 4096 bytes)\n", "no newline at all");
  assert.equal(await ask(s, msg("y".repeat(3500))), 'error invalid message: "text" too long (max 3000 characters)\n');
  for (const [payload, why] of [
    ["not json\n", /not a JSON object/],
    ['["text"]\n', /not a JSON object/],
    ["{}\n", /"text" must be a string/],
    [msg(42), /"text" must be a string/],
    [msg("  \n\t "), /"text" is empty/],
    ["", /not a JSON object/],
  ] as [string, RegExp][]) {
    const a = await ask(s, payload);
    assert.match(a, /^error invalid message: /, JSON.stringify(payload));
    assert.match(a, why);
  }
  // Connected, but never sends a complete line: the notifier gives up after --read-timeout.
  const t0 = Date.now();
  assert.equal(await ask(s, '{"text": "no newline, no EOF', { halfClose: false }), "error no complete message within 1 s\n");
  assert.ok(Date.now() - t0 < 10_000);
  assert.equal(slack.posts.length, before, "nothing posted");
  assert.ok(s.outputs.every((o) => o.code === 1));
  // A text just under the limits is fine; only the first line counts.
  assert.equal(await ask(s, `${msg("z".repeat(3000)).trimEnd()}\nsecond line ignored\n`), "ok\n");
  assert.equal(slack.posts[slack.posts.length - 1].text, `[emo@testhost] ${"z".repeat(3000)}`);
});

test("Slack's control characters are escaped: a message cannot mention @channel or forge a link", async () => {
  const s = await socket({ pid: 5, uid: 2001 });
  assert.equal(await ask(s, msg("<!channel> see <https://evil.example|your login> & <@U123>\u0007")), "ok\n");
  assert.equal(slack.posts[slack.posts.length - 1].text, "[emo@testhost] &lt;!channel&gt; see &lt;https://evil.example|your login&gt; &amp; &lt;@U123&gt;");
});

test('Slack 500, a Slack that never answers, an unreachable Slack: "error", exit 1, nothing leaks', async () => {
  const s = await socket({ pid: 5, uid: 2001 });
  slack.failNext(1, 500);
  assert.equal(await ask(s, msg("first")), "error slack answered 500\n");
  assert.equal(lastExit(s), 1);
  assert.match(lastLog(s), /not sent from emo .*slack answered 500/);
  slack.failNext(1, 404);
  assert.equal(await ask(s, msg("second")), "error slack answered 404\n");
  slack.hangNext(1);
  const t0 = Date.now();
  assert.equal(await ask(s, msg("third")), "error slack timed out after 1 s\n");
  assert.ok(Date.now() - t0 < 10_000);
  const dead = path.join(dir, "dead-creds");
  fs.mkdirSync(dead, { mode: 0o700 });
  fs.writeFileSync(path.join(dead, "slack-webhook"), `${await deadAddr()}/services/T0/B0/deadwebhooksecret`);
  const s2 = await socket({ pid: 5, uid: 2001 }, { credentialsDir: dead });
  assert.equal(await ask(s2, msg("fourth")), "error slack unreachable (ECONNREFUSED)\n");
  assert.ok(!lastLog(s2).includes("deadwebhooksecret"));
  assert.ok(!lastLog(s2).includes("127.0.0.1"), "not even the webhook host");
  // after the failures it works again
  assert.equal(await ask(s, msg("fifth")), "ok\n");
});

test('Slack disabled (no credential, empty, "disabled", not an http(s) URL): "disabled", exit 0, nothing posted', async () => {
  const before = slack.posts.length;
  const cases: [string, string | null][] = [
    ["none", null],
    ["empty", ""],
    ["default", "disabled"],
    ["ftp", "ftp://example.com/x"],
    ["junk", "https:// spaces in it"],
  ];
  for (const [label, content] of cases) {
    let creds: string | null = null;
    if (content !== null) {
      creds = path.join(dir, `creds-${label}`);
      fs.mkdirSync(creds, { mode: 0o700 });
      fs.writeFileSync(path.join(creds, "slack-webhook"), content);
    }
    const s = await socket({ pid: 5, uid: 2001 }, { credentialsDir: creds });
    assert.equal(await ask(s, msg(`alert ${label}`)), "disabled\n", label);
    assert.equal(lastExit(s), 0);
    assert.match(lastLog(s), /Slack is disabled; not sent from emo/);
  }
  // still refuses bad input when disabled
  const s = await socket({ pid: 5, uid: 4242 }, { credentialsDir: null });
  assert.match(await ask(s, msg("x")), /^error refused/);
  assert.equal(slack.posts.length, before);
});

test("units: workstations-alert.socket and @.service pass systemd-analyze verify; the renew unit loads no credential", () => {
  const have = spawnSync("systemd-analyze", ["--version"], { stdio: "ignore" }).status === 0;
  assert.ok(have, "systemd-analyze is needed for this test (apt-get install systemd)");
  const units = path.join(REPO, "scripts", "units");
  const tmp = tmpdir("ctr-alert-units-");
  try {
    for (const f of ["workstations-alert.socket", "workstations-alert@.service"]) fs.copyFileSync(path.join(units, f), path.join(tmp, f));
    fs.symlinkSync("workstations-alert@.service", path.join(tmp, "workstations-alert@0-4242-2001.service"));
    const r = spawnSync("systemd-analyze", ["verify", path.join(tmp, "workstations-alert.socket"), path.join(tmp, "workstations-alert@0-4242-2001.service")], {
      encoding: "utf8",
    });
    const noise = (r.stderr ?? "").split("\n").filter((l) => l.trim() && !/Failed to read \$container|Found container virtualization|PR_SET_MM/.test(l));
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(noise, [], "no warnings");
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const sock = fs.readFileSync(path.join(units, "workstations-alert.socket"), "utf8");
  for (const l of [
    "ListenStream=/run/workstations/alert.sock",
    "Accept=yes",
    "SocketUser=root",
    "SocketGroup=workstation-users",
    "SocketMode=0660",
    "WantedBy=sockets.target",
  ]) {
    assert.match(sock, new RegExp(`^${l.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}$`, "m"), l);
  }
  assert.match(sock, /^MaxConnections=\d+$/m);
  const svc = fs.readFileSync(path.join(units, "workstations-alert@.service"), "utf8");
  for (const l of [
    "ExecStart=/usr/bin/node /usr/local/lib/workstations/workstations-alert.mjs --instance %i",
    "StandardInput=socket",
    "StandardOutput=socket",
    "StandardError=journal",
    "DynamicUser=yes",
    "LoadCredential=slack-webhook:/etc/workstations/claude-token-renew.slack",
    "SetCredential=slack-webhook:disabled",
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "CollectMode=inactive-or-failed",
  ]) {
    assert.match(svc, new RegExp(`^${l.replace(/[.*+?^${}()|[\]\\/%]/g, "\\$&")}$`, "m"), l);
  }
  assert.match(svc, /^RuntimeMaxSec=\d+s$/m);
  assert.doesNotMatch(svc, /^User=/m, "a dynamic user, never the sender");
  const renew = fs.readFileSync(path.join(units, "claude-token-renew@.service"), "utf8");
  assert.doesNotMatch(renew, /^(Load|Set|Import)Credential/m, "the user-run unit gets no credential");
  assert.doesNotMatch(renew, /claude-token-renew\.slack/, "nor the webhook file");
  assert.match(renew, /^Wants=.*\bworkstations-alert\.socket\b/m);
  assert.match(renew, /^After=.*\bworkstations-alert\.socket\b/m);
});

test("the host component ships the notifier and enables the socket", () => {
  const b = loadBundle(REPO);
  const f = b.files.find((x) => x.path === "/usr/local/lib/workstations/workstations-alert.mjs");
  assert.ok(f, "bundled");
  assert.equal(f.link, "/usr/local/bin/workstations-alert");
  assert.equal(f.mode, "0755");
  assert.ok(b.enable.includes("workstations-alert.socket"), b.enable.join(" "));
  assert.ok(!b.enable.some((u) => u.startsWith("workstations-alert@")));
  assert.ok(b.units.some((u) => u.path === "/etc/systemd/system/workstations-alert@.service"));
});

test("the notifier is plain Node ESM with no dependencies and executes nothing", () => {
  assert.match(fs.readFileSync(NOTIFIER, "utf8"), /^#!\/usr\/bin\/env node\n\/\/ @ts-check/);
  // the entry point and the shared modules it imports (../common/)
  const imports = agentFiles(NOTIFIER).flatMap((f) => [...fs.readFileSync(f, "utf8").matchAll(/^(?:import|export) .* from '([^']+)';$/gm)].map((m) => m[1]));
  assert.ok(imports.length > 0);
  for (const i of imports) assert.match(i, /^(node:|\.\/common\/|\.\/)/, `only node: builtins and the agents' own modules, found ${i}`);
  assert.ok(imports.includes("./common/users.mjs"), "users.json through the one shared reader");
  assert.ok(!imports.includes("node:child_process"), "spawns nothing");
});
