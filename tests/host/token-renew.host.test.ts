/**
 * Claude token renewal on a real systemd host, end to end: the program's own scripts (captured
 * under mocks) install the agent, units, config and the user's AppRole credential; Vault is a
 * real server; Anthropic's OAuth/profile endpoints and Slack are the test fakes. Alerts go
 * through the real workstations-alert.socket (Accept=yes) to the root-side notifier; no user
 * can read the Slack webhook by any path.
 *
 * The Vault resources are created in the real Vault by a mock hook doing what the vault
 * plugin would (the plugin cannot be built on these machines; see README "Toolchain").
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { shq } from "../../components/scripts/shell";
import { capture, MiniEngine } from "../../dev/engine";
import { setResourceHook } from "../../dev/mocks";
import { startVault, vaultRequest, VaultServer } from "../../dev/services";
import { FakeAnthropicOAuth, startFakeAnthropic } from "../../dev/fakes/anthropic-oauth";
import { FakeSlack, startFakeSlack } from "../../dev/fakes/slack";
import { boot, createHost, destroyHost, run, TestHost } from "../../dev/testhost/testhost";
import { tempDir } from "../../dev/tmp";

let h: TestHost;
let vault: VaultServer;
let oauth: FakeAnthropicOAuth;
let slack: FakeSlack;
let engine: MiniEngine;
const issuedSecrets: string[] = [];
// Two distinct keys: a roster refuses the same key on two users.
const [KEY, KEY2] = fs.readFileSync(path.join(__dirname, "../../roster.example.yaml"), "utf8").match(/ssh-ed25519 \S+/g)!;

/** What the vault plugin would do for each resource type, against the real server. */
async function vaultHook(type: string, _name: string, i: Record<string, any>): Promise<Record<string, any> | undefined> {
  const v = (m: string, p: string, b?: unknown) => vaultRequest(vault, vault.rootToken, m, p, b);
  switch (type) {
    case "vault:index/mount:Mount":
      await v("POST", `sys/mounts/${i.path}`, { type: i.type, options: i.options });
      return { path: i.path };
    case "vault:kv/secretBackendV2:SecretBackendV2":
      await v("POST", `${i.mount}/config`, { cas_required: i.casRequired, max_versions: i.maxVersions });
      return undefined;
    case "vault:index/authBackend:AuthBackend":
      await v("POST", `sys/auth/${i.path}`, { type: i.type });
      return { path: i.path };
    case "vault:index/policy:Policy":
      await v("PUT", `sys/policies/acl/${i.name}`, { policy: i.policy });
      return undefined;
    case "vault:appRole/authBackendRole:AuthBackendRole": {
      await v("POST", `auth/${i.backend}/role/${i.roleName}`, {
        token_policies: i.tokenPolicies,
        token_no_default_policy: i.tokenNoDefaultPolicy,
        token_type: i.tokenType,
        token_ttl: i.tokenTtl,
        token_max_ttl: i.tokenMaxTtl,
        secret_id_ttl: i.secretIdTtl,
        secret_id_num_uses: i.secretIdNumUses,
        bind_secret_id: i.bindSecretId,
      });
      const r = (await v("GET", `auth/${i.backend}/role/${i.roleName}/role-id`)) as { data: { role_id: string } };
      return { roleId: r.data.role_id };
    }
    case "vault:appRole/authBackendRoleSecretId:AuthBackendRoleSecretId": {
      const r = (await v("POST", `auth/${i.backend}/role/${i.roleName}/secret-id`, { metadata: i.metadata })) as {
        data: { secret_id: string; secret_id_accessor: string };
      };
      issuedSecrets.push(r.data.secret_id);
      return { secretId: r.data.secret_id, accessor: r.data.secret_id_accessor };
    }
  }
  return undefined;
}

const sh = async (cmd: string) => (await run(h, cmd)).stdout.trim();
const asEmo = (cmd: string, stdin?: string) => run(h, `setpriv --reuid=emo --regid=emo --init-groups --reset-env bash -c ${shq(cmd)}`, { stdin });
/** As `user` (its own groups), without failing on a non-zero exit. */
const asUser = (user: string, cmd: string) => run(h, `setpriv --reuid=${user} --regid=${user} --init-groups --reset-env bash -c ${shq(cmd)}`, { check: false });
const SOCK = "/run/workstations/alert.sock";
/** A one-shot client in the host's Node: prints the notifier's answer, or `connect-error CODE`. */
const CLIENT =
  `const c=require("net").connect(process.argv[1]);let b="";c.setEncoding("utf8");` +
  `c.on("connect",()=>c.end(process.argv[2]+"\\n"));c.on("data",d=>b+=d);` +
  `c.on("error",e=>{console.log("connect-error "+e.code);process.exit(2)});c.on("close",()=>process.stdout.write(b))`;
const alertCmd = (text: string) => `/usr/bin/node -e ${shq(CLIENT)} ${SOCK} ${shq(JSON.stringify({ text }))}`;
/** Every string that would give the webhook away. */
const webhookSecrets = () => [slack.webhookUrl, new URL(slack.webhookUrl).pathname, "fakewebhooksecret"];

before(async () => {
  const dir = tempDir("ws-token-host-");
  vault = await startVault({ dir });
  oauth = await startFakeAnthropic({ clientId: "host-test-client" });
  slack = await startFakeSlack();
  h = await createHost("ws-token");
  await boot(h);
  engine = new MiniEngine((command, stdin) => run(h, command, { stdin, check: false }));
  setResourceHook(vaultHook);
  const roster = YAML.stringify({
    version: 1,
    users: [
      { name: "viktor", uid: 2000, role: "admin", email: "viktor@example.com", forgejo: "viktor", sshKeys: [KEY] },
      { name: "emo", uid: 2001, role: "power-user", email: "emo@example.com", forgejo: "ebarzin", sshKeys: [KEY2] },
    ],
  });
  const specs = await capture({
    roster,
    config: {
      vaultAddress: vault.addr,
      claudeTokenUrl: oauth.tokenUrl,
      claudeProfileUrl: oauth.profileUrl,
      claudeClientId: "host-test-client",
      slackWebhook: slack.webhookUrl,
    },
  });
  setResourceHook(undefined);
  await engine.up(specs);
});
after(async () => {
  setResourceHook(undefined);
  if (h) await destroyHost(h);
  await oauth?.stop();
  await slack?.stop();
  await vault?.stop();
});

test("the program installs the agent, its units and emo's AppRole credential; the timer is enabled", async () => {
  assert.equal(await sh("systemctl is-enabled claude-token-renew@emo.timer"), "enabled");
  assert.equal(await sh("systemctl is-active claude-token-renew@emo.timer"), "active");
  assert.equal(await sh("stat -c '%a %U' /etc/workstations/claude-token-renew.slack"), "600 root");
  const cfg = JSON.parse(await sh("cat /etc/workstations/claude-token-renew.json"));
  assert.equal(cfg.tokenUrl, oauth.tokenUrl);
  assert.equal(await sh("stat -c '%a %U' /home/emo/.config/claude-token-renew/vault.json"), "600 emo");
});

test("a run on the host, as the user, refreshes near expiry and backs up to emo's Vault path", async () => {
  // An 8 h login whose access token (as the local file says) expires in a minute.
  const login = oauth.login("emo@example.com", { accessTtlSeconds: 8 * 3600 });
  const creds = { claudeAiOauth: { ...login, expiresAt: Date.now() + 60_000 }, mcpOAuth: { keep: "me" } };
  await asEmo("umask 077; mkdir -p ~/.claude; cat > ~/.claude/.credentials.json", JSON.stringify(creds));
  await sh("systemctl start claude-token-renew@emo.service");
  const show = await sh("systemctl show -p Result -p ExecMainStatus -p User claude-token-renew@emo.service");
  assert.match(show, /Result=success/);
  if (!/ExecMainStatus=0/.test(show))
    assert.fail(`agent exit: ${show}\n${await sh("journalctl -u claude-token-renew@emo.service --no-pager -o cat | tail -20")}`);
  assert.match(show, /User=emo/);
  const local = JSON.parse(await sh("cat /home/emo/.claude/.credentials.json"));
  assert.notEqual(local.claudeAiOauth.refreshToken, login.refreshToken, "rotated");
  assert.deepEqual(local.mcpOAuth, { keep: "me" });
  assert.equal(await sh("stat -c '%a %U' /home/emo/.claude/.credentials.json"), "600 emo");
  const secret = (await vaultRequest(vault, vault.rootToken, "GET", "claude-tokens/data/users/emo")) as {
    data: { data: { claudeAiOauth: { refreshToken: string } }; metadata: { version: number } };
  };
  assert.equal(secret.data.data.claudeAiOauth.refreshToken, local.claudeAiOauth.refreshToken);
  assert.equal(oauth.revocations, 0);
  // A second run with nothing to do writes nothing to Vault.
  await sh("systemctl start claude-token-renew@emo.service");
  const again = (await vaultRequest(vault, vault.rootToken, "GET", "claude-tokens/metadata/users/emo")) as { data: { current_version: number } };
  assert.equal(again.data.current_version, secret.data.metadata.version);
  // Nothing secret reached the journal.
  const journal = await sh("journalctl -u claude-token-renew@emo.service --no-pager -o cat");
  for (const s of [...oauth.issued, ...issuedSecrets, slack.webhookUrl]) assert.ok(!journal.includes(s), "a secret reached the journal");
});

test("emo's credential cannot touch viktor's path on the real Vault", async () => {
  const cred = JSON.parse(await sh("cat /home/emo/.config/claude-token-renew/vault.json"));
  const login = (await vaultRequest(vault, "", "POST", "auth/approle/login", cred)) as { auth: { client_token: string } };
  await assert.rejects(vaultRequest(vault, login.auth.client_token, "GET", "claude-tokens/data/users/viktor"), /HTTP 403/);
  await assert.rejects(
    vaultRequest(vault, login.auth.client_token, "POST", "claude-tokens/data/users/viktor", { data: { x: crypto.randomUUID() } }),
    /HTTP 403/,
  );
});

test("systemd-analyze verify passes for every unit in scripts/units on the host", async () => {
  // ws-ttyd.service runs ttyd, which bookworm has not got: it is verified on the trixie VM, where
  // the program installs it (tests/e2e/web-terminal.e2e.test.ts).
  const names = fs
    .readdirSync(path.join(__dirname, "../../scripts/units"))
    .filter((n) => n !== "ws-ttyd.service")
    .sort();
  assert.ok(names.includes("workstations-alert.socket") && names.includes("workstations-alert@.service"));
  // Templates are verified as an instance: renewal/timers as a roster user, the notifier with
  // an Accept=yes instance name.
  const paths = names.map((n) => `/etc/systemd/system/${n.replace(/@\./, n.startsWith("workstations-alert@") ? "@0-1-2001." : "@emo.")}`);
  // The units' programs must exist: T3 (unreachable here) is the fake that stands in for it
  // wherever the web tests run.
  await run(h, "cat > /usr/local/bin/t3 && chmod 0755 /usr/local/bin/t3", { stdin: fs.readFileSync(path.join(__dirname, "../../dev/fakes/t3"), "utf8") });
  // --man=no: the test host has no man pages (Documentation=man:... would fail the check).
  const r = await run(h, `systemd-analyze verify --man=no ${paths.join(" ")} 2>&1`, { check: false });
  const noise = r.stdout.split("\n").filter((l) => l.trim() && !/Failed to read \$container|Found container virtualization|PR_SET_MM/.test(l));
  assert.equal(r.code, 0, r.stdout);
  assert.deepEqual(noise, [], "no warnings");
});

test("the alert socket is root:workstation-users 0660, enabled, and pulled in by the renewal unit", async () => {
  assert.equal(await sh("systemctl is-enabled workstations-alert.socket"), "enabled");
  // The earlier runs of claude-token-renew@emo.service started it (Wants=), whatever the units step did.
  assert.equal(await sh("systemctl is-active workstations-alert.socket"), "active");
  assert.equal(await sh(`stat -c '%F %a %U %G' ${SOCK}`), "socket 660 root workstation-users");
  assert.equal(await sh("systemctl show -p Accept --value workstations-alert.socket"), "yes");
  assert.match(await sh("id -nG emo"), /\bworkstation-users\b/);
});

test("an alert reaches Slack through the real socket, named after the peer uid; resolved once fixed", async () => {
  const host = await sh("hostname");
  const before = slack.delivered.length;
  const cursor = await sh("journalctl --show-cursor -n 0 --no-pager | sed -n 's/^-- cursor: //p'");
  // A dead login: the agent must alert "login required" (exit 4).
  const dead = oauth.login("emo@example.com", { accessTtlSeconds: 1800 });
  oauth.revokeFamily(dead.refreshToken);
  await asEmo("umask 077; cat > ~/.claude/.credentials.json", JSON.stringify({ claudeAiOauth: dead }));
  await run(h, "systemctl start claude-token-renew@emo.service", { check: false });
  assert.match(await sh("systemctl show -p ExecMainStatus claude-token-renew@emo.service"), /ExecMainStatus=4/);
  const posts = slack.delivered.slice(before);
  const diag = async () =>
    sh(`journalctl --after-cursor=${shq(cursor)} --no-pager -o short-precise | grep -E 'claude-token-renew|workstations-alert' | tail -40`);
  assert.equal(posts.length, 1, `${posts.map((p) => p.text).join("\n")}\n${await diag()}`);
  assert.ok(posts[0].text.startsWith(`[emo@${host}] :rotating_light: Claude login required for emo (emo@example.com)`), posts[0].text);
  // The notifier ran as workstations-alert@<n>-<peer pid>-<peer uid>.service (systemd 252) with
  // emo's uid from the kernel, as a dynamic user, and logged one line without the URL.
  let raw = "";
  let j: Record<string, string>[] = [];
  for (let i = 0; i < 50 && j.length === 0; i++) {
    if (i) await new Promise((r) => setTimeout(r, 100)); // journald may lag behind the exit
    // No journalctl match here: systemd 252's --after-cursor plus a match misses the entries
    // of the dynamic user (they are in another journal file).
    raw = await sh(`journalctl --after-cursor=${shq(cursor)} -o json --no-pager`);
    j = raw
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, string>)
      .filter((e) => e.SYSLOG_IDENTIFIER === "workstations-alert" && typeof e.MESSAGE === "string" && e.MESSAGE.startsWith("workstations-alert: ")); // not Node 18's ExperimentalWarning
  }
  assert.equal(j.length, 1, await diag());
  assert.match(j[0]._SYSTEMD_UNIT, /^workstations-alert@\d+-\d+-2001\.service$/);
  const [, pid] = /^workstations-alert@\d+-(\d+)-2001\.service$/.exec(j[0]._SYSTEMD_UNIT)!;
  assert.match(j[0].MESSAGE, new RegExp(`^workstations-alert: sent from emo \\(uid 2001, pid ${pid}\\): `));
  assert.notEqual(j[0]._UID, "0", "not root");
  assert.notEqual(j[0]._UID, "2001", "not the sender");
  // Finished instances are garbage-collected, failed ones too (CollectMode=inactive-or-failed).
  let left = "";
  for (let i = 0; i < 50; i++) {
    left = await sh("systemctl list-units --all --no-legend --plain 'workstations-alert@*'");
    if (!left) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(left, "", "instances are collected");
  // The user logs in again: one "resolved".
  const fresh = oauth.login("emo@example.com");
  await asEmo("umask 077; cat > ~/.claude/.credentials.json", JSON.stringify({ claudeAiOauth: fresh }));
  await sh("systemctl start claude-token-renew@emo.service");
  const all = slack.delivered.slice(before);
  assert.equal(all.length, 2, all.map((p) => p.text).join("\n"));
  assert.ok(all[1].text.startsWith(`[emo@${host}] :white_check_mark: resolved: `), all[1].text);
  const journal = await sh(`journalctl --after-cursor=${shq(cursor)} --no-pager -o cat`);
  for (const s of [...oauth.issued, ...issuedSecrets, ...webhookSecrets()]) assert.ok(!journal.includes(s), "a secret reached the journal");
});

test("the sender cannot be faked: emo alerts as emo, root and non-members are refused", async () => {
  const host = await sh("hostname");
  const before = slack.delivered.length;
  const emo = await asUser("emo", alertCmd("hello from a shell"));
  assert.equal(emo.stdout, "ok\n", emo.stderr);
  assert.equal(
    slack.delivered
      .slice(before)
      .map((p) => p.text)
      .join("|"),
    `[emo@${host}] hello from a shell`,
  );
  // Nothing in the message decides the sender.
  const forged = await asUser("emo", `/usr/bin/node -e ${shq(CLIENT)} ${SOCK} ${shq(JSON.stringify({ text: "x", user: "viktor" }))}`);
  assert.match(forged.stdout, /^error invalid message: unknown field/);
  // root is not a roster user; nobody is not in workstation-users (the socket is 0660).
  assert.match((await run(h, alertCmd("from root"), { check: false })).stdout, /^error refused: uid 0 is not a roster user/);
  const nobody = await run(h, `setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env ${alertCmd("from nobody")}`, { check: false });
  assert.equal(nobody.stdout.trim(), "connect-error EACCES");
  assert.equal(slack.delivered.length, before + 1);
});

test("no user can read the webhook: not the file, not /run/credentials, not the renewal unit's view", async () => {
  const url = slack.webhookUrl;
  assert.equal(await sh("cat /etc/workstations/claude-token-renew.slack"), url, "root has it");
  // Listening already when the earlier tests ran the renewal unit (Wants=); this test alone too.
  await sh("systemctl start workstations-alert.socket");
  const leaked = (out: string) => webhookSecrets().some((s) => out.includes(s));
  const tries: string[] = [
    "cat /etc/workstations/claude-token-renew.slack",
    "cat /run/credentials/*/* /run/credentials/*/.* 2>&1",
    "grep -rs fakewebhooksecret /etc /run /var /tmp /home /usr/local 2>/dev/null",
    "sudo -n cat /etc/workstations/claude-token-renew.slack",
    // the system manager refuses emo (polkit); emo's own manager (linger) cannot read the file (exit 243)
    "systemd-run --wait --pipe --quiet -p LoadCredential=w:/etc/workstations/claude-token-renew.slack /bin/sh -c 'cat $CREDENTIALS_DIRECTORY/w' </dev/null",
    "export XDG_RUNTIME_DIR=/run/user/$(id -u); systemd-run --user --wait --pipe --quiet -p LoadCredential=w:/etc/workstations/claude-token-renew.slack /bin/sh -c 'cat $CREDENTIALS_DIRECTORY/w' </dev/null",
  ];
  for (const cmd of tries) {
    const r = await asUser("emo", cmd);
    assert.ok(!leaked(r.stdout + r.stderr), `emo read the webhook with: ${cmd}`);
  }
  assert.match((await asUser("emo", "cat /etc/workstations/claude-token-renew.slack")).stderr, /Permission denied/);

  // While a notifier instance holds the credential (emo connects and sends nothing; the
  // notifier waits up to 5 s for the message), it exists, root can read it, emo cannot reach
  // it: not the directory, not the file, not the process' environment or memory.
  const probe = [
    `setpriv --reuid=emo --regid=emo --init-groups --reset-env /usr/bin/node -e ${shq(`const c=require("net").connect("${SOCK}");setTimeout(()=>c.destroy(),4000)`)} &`,
    "for i in $(seq 50); do ls -d /run/credentials/workstations-alert@* >/dev/null 2>&1 && break; sleep 0.1; done",
    "d=$(ls -d /run/credentials/workstations-alert@* | head -1)",
    'echo "DIR=$d"',
    'echo "ROOT=$(cat "$d/slack-webhook")"',
    'pid=$(systemctl show -p MainPID --value "$(basename "$d")")',
    'echo "PID=$pid"',
    `setpriv --reuid=emo --regid=emo --init-groups --reset-env bash -c ${shq('echo "EMO=$(cat $0/slack-webhook 2>&1; ls $0 2>&1; cat /proc/$1/environ 2>&1; head -c 64 /proc/$1/mem 2>&1)"')} "$d" "$pid"`,
    "wait",
  ].join("\n");
  const out = (await run(h, probe)).stdout;
  assert.match(out, /^DIR=\/run\/credentials\/workstations-alert@\d+-\d+-2001\.service$/m, out);
  assert.ok(out.includes(`ROOT=${url}`), "the instance really holds the webhook");
  assert.match(out, /^PID=[1-9]\d*$/m);
  const emoLine = out.slice(out.indexOf("EMO="));
  assert.ok(!leaked(emoLine), emoLine);
  assert.match(emoLine, /Permission denied/);

  // The renewal unit's own view (User=emo, its sandbox): no credential, no webhook.
  const dropin = "/run/systemd/system/claude-token-renew@emo.service.d";
  await sh(
    `mkdir -p ${dropin} && printf '%s\\n' '[Service]' 'ExecStart=' ${shq("ExecStart=/bin/sh -c 'echo \"view: uid=$$(id -u) CD=[$${CREDENTIALS_DIRECTORY}]\"; ls -la /run/credentials 2>&1; cat /run/credentials/*/* 2>&1; cat /etc/workstations/claude-token-renew.slack 2>&1; true'")} > ${dropin}/probe.conf && systemctl daemon-reload`,
  );
  try {
    const cursor = await sh("journalctl --show-cursor -n 0 --no-pager | sed -n 's/^-- cursor: //p'");
    await sh("systemctl start claude-token-renew@emo.service");
    const view = await sh(`journalctl --after-cursor=${shq(cursor)} -u claude-token-renew@emo.service --no-pager -o cat`);
    assert.match(view, /view: uid=2001 CD=\[\]/, view);
    assert.ok(!leaked(view), view);
    assert.doesNotMatch(await sh("systemctl cat claude-token-renew@emo.service"), /^[^#]*Credential/m, "no credential in the unit or its drop-ins");
  } finally {
    await sh(`rm -rf ${dropin} && systemctl daemon-reload`);
  }
});
