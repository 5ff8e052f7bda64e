/**
 * The whole program under the real engine, every surface on (the nspawn host, Vault, Forgejo on
 * the toolchain's Gitea, Kubernetes on its API server), in one booted host: the example roster
 * up from scratch, then each lifecycle step by a roster edit (onboard, keys and groups changed,
 * suspend, re-activate with the same uid and the home unchanged, offboard, approved purge) and
 * `destroy --target` of one user. Every `up` is followed by `up --expect-no-changes`; after
 * every step the host is checked over ssh and the state is read as an attacker would (no
 * plaintext secret). Each step's time is printed.
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { changeCollector, E2E, PROJECT_DIR, setupE2E, timed, urnName } from "../../dev/e2e";
import { vaultRequest } from "../../dev/services";
import { hasCiphertext, readStateAsAttacker } from "../../dev/state-audit";

type User = { name: string; uid: number; forgejo: string; state?: string; groups?: string[]; sshKeys: string[] } & Record<string, unknown>;
let e: E2E;
const roster = YAML.parse(fs.readFileSync(path.join(PROJECT_DIR, "roster.example.yaml"), "utf8")) as { users: User[] };
const user = (name: string) => roster.users.find((u) => u.name === name)!;
const keys: Record<string, string> = {};
const times: Array<[string, number]> = [];
/** Every secret seen so far (delivered credentials, tokens): none may be in the state in plaintext, ever. */
const seen = new Set<string>();

const step = <T>(label: string, f: () => Promise<T>): Promise<T> => timed(times, label, f);

/** Writes the roster, `up`, `up --expect-no-changes`; returns the names of what the up touched. */
async function apply(label: string): Promise<string[]> {
  e.writeRoster(roster);
  const c = changeCollector();
  const r = await step(`${label}: up + no-op up`, () => e.converge({ onEvent: c.onEvent }));
  times.push([`${label}: up`, r.upMs], [`${label}: up --expect-no-changes`, r.noopMs]);
  assert.equal(r.up.summary.result, "succeeded");
  // what this up applied is what its records say (README "Drift"): the heal finds nothing to do
  const drift = await e.sh("workstations-heal --check; echo rc=$?");
  assert.match(drift, /^no drift \(\d+ records\)\s+rc=0\s*$/m, `${label}: drift right after the up\n${drift}`);
  return c.changed.map((x) => `${x.op} ${urnName(x.urn)}`);
}

/** The delivered credentials on the host and the cluster's dashboard tokens. */
async function collectSecrets(): Promise<void> {
  const out = await e.sh(
    "for h in /home/*; do cat $h/.config/claude-token-renew/vault.json 2>/dev/null; echo; cat $h/.git-credentials 2>/dev/null; echo; done",
  );
  for (const m of out.matchAll(/"secret_id"\s*:\s*"([^"]+)"/g)) seen.add(m[1]);
  for (const m of out.matchAll(/^https?:\/\/[^:]+:([^@]+)@/gm)) seen.add(m[1]);
  const secrets = await e.kube!.request("GET", "/api/v1/secrets?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dworkstations");
  for (const s of secrets.json.items ?? [])
    if (s.data?.token) {
      seen.add(s.data.token);
      seen.add(Buffer.from(s.data.token, "base64").toString());
    }
}

/** The state audit of every step: no secret in plaintext, and the secrets are there as ciphertext. */
async function audit(label: string): Promise<void> {
  await collectSecrets();
  await step(`${label}: state audit`, async () => {
    assert.deepEqual(e.auditState([...seen]), []);
  });
}

const login = (name: string) => e.sshAs(name, keys[name]);
const collaborator = async (login: string) => {
  const f = e.forgejo!;
  const r = await f.api("GET", `repos/${f.repo.owner}/${f.repo.name}/collaborators/${login}/permission`);
  const is = await f.api("GET", `repos/${f.repo.owner}/${f.repo.name}/collaborators/${login}`);
  return is.status === 204 ? (r.json as { permission: string }).permission : "none";
};
const approleLogin = async (name: string) => {
  const cred = JSON.parse(await e.sh(`cat /home/${name}/.config/claude-token-renew/vault.json`));
  return { cred, login: (await vaultRequest(e.vault, "", "POST", "auth/approle/login", cred)) as { auth: { policies: string[] } } };
};
const gitToken = async (name: string) => /\/\/[^:/]+:([^@]+)@/.exec(await e.sh(`cat /home/${name}/.git-credentials`))?.[1] ?? "";
/**
 * Host-wide resources that list the active users (the web surfaces' identity files): a change of
 * who is active (onboarding, suspend) updates them too, by design.
 */
const SHARED_BY_ACTIVE_USERS = /^update web-files$/;
const gitStatus = async (login: string, token: string) => {
  const f = e.forgejo!;
  const auth = Buffer.from(`${login}:${token}`).toString("base64");
  return (await fetch(`${f.url}${f.repo.owner}/${f.repo.name}.git/info/refs?service=git-upload-pack`, { headers: { Authorization: `Basic ${auth}` } })).status;
};
const exists = async (p: string) => (await e.sh(`test -e ${p} && echo yes || echo no`)) === "yes";

before(async () => {
  // Real keys for the roster's users, so their own logins can be checked.
  const t0 = Date.now();
  e = await setupE2E("engine", roster);
  for (const u of roster.users) {
    const k = e.keypair(u.name);
    keys[u.name] = k.priv;
    u.sshKeys = [k.pub];
  }
  times.push(["set-up: host boot, Vault, Gitea, kube-apiserver, stack", Date.now() - t0]);
});
after(async () => {
  console.log("# e2e step times:");
  for (const [label, ms] of times) console.log(`#   ${label}: ${(ms / 1000).toFixed(1)} s`);
  if (e) await e.stop();
});

test("the example roster up from scratch: every surface, on the host, in Vault, Forgejo and Kubernetes", async () => {
  await apply("up from scratch");
  for (const [name, uid] of Object.entries({ viktor: 2000, emo: 2001, nadia: 2002, sam: 2003 })) assert.equal(await e.sh(`id -u ${name}`), String(uid));
  assert.equal(await e.sh("getent passwd olga || true"), "", "offboarded olga gets nothing");
  // host-legacy ran (before the host files) on a host with no legacy pieces: it moved nothing
  assert.equal(await exists("/var/lib/workstations/legacy"), false, "no legacy folder on a host without legacy pieces");
  assert.equal(await e.sh("readlink /usr/local/bin/tmux-persist"), "/usr/local/lib/workstations/tmux-persist.mjs");
  assert.equal(login("viktor").out, "viktor");
  assert.notEqual(login("sam").code, 0, "suspended sam cannot log in");
  const policies = (await vaultRequest(e.vault, e.vault.rootToken, "LIST", "sys/policies/acl")) as { data: { keys: string[] } };
  assert.deepEqual(policies.data.keys.filter((k) => k.startsWith("claude-renew-")).sort(), ["claude-renew-emo", "claude-renew-nadia", "claude-renew-viktor"]);
  for (const u of ["viktor", "emo", "nadia"]) assert.deepEqual((await approleLogin(u)).login.auth.policies, [`claude-renew-${u}`]);
  // Forgejo: the plan's permissions, tokens that work over git's HTTP, the ~/code clone.
  assert.deepEqual(
    [await collaborator("viktor"), await collaborator("ebarzin"), await collaborator("nadia"), await collaborator("sam")],
    ["admin", "write", "read", "none"],
  );
  assert.equal(await gitStatus("ebarzin", await gitToken("emo")), 200);
  assert.equal(await e.sh("runuser -u emo -- git -C /home/emo/code rev-parse --abbrev-ref HEAD"), "master");
  // Kubernetes: nadia's namespace and kubeconfig; emo (power user) gets none.
  assert.equal((await e.kube!.request("GET", "/api/v1/namespaces/nadia-apps")).status, 200);
  assert.match(await e.sh("cat /home/nadia/.kube/config"), new RegExp(e.kube!.server.replace(/[.]/g, "\\.")));
  assert.equal(await exists("/home/emo/.kube/config"), false);
  await audit("up from scratch");
  assert.ok(hasCiphertext(readStateAsAttacker(e.audit)), "the secrets are in the state, encrypted");
});

test("a no-op preview and up change nothing", async () => {
  const pv = await step("no-op preview", () => e.preview({ expectNoChanges: true }));
  assert.deepEqual(
    Object.keys(pv.changeSummary).filter((k) => k !== "same"),
    [],
  );
});

test("an oversubscribed roster: preview and up stop with the capacity line naming the numbers, and write nothing", async () => {
  // two users at 60% of the host's RAM each (2 may be active at once by default; 90% is the share)
  const ram = Number(await e.sh("awk '/^MemTotal:/ {printf \"%.0f\", $2 * 1024}' /proc/meminfo"));
  const big = `${Math.ceil((ram * 0.6) / 2 ** 30)}G`;
  const dropIn = "/etc/systemd/system/user-2000.slice.d/50-workstations.conf";
  const before = await e.sh(`cat ${dropIn}`);
  const saved = JSON.stringify(roster.users);
  for (const n of ["viktor", "emo"]) user(n).limits = { memoryMax: big };
  e.writeRoster(roster);
  // one line per problem, as its own error diagnostic (the users in name order)
  const line = new RegExp(
    `^ *error: capacity: the memory maxima of the 2 user\\(s\\) who may be active at once \\(emo ${big}, viktor ${big}\\) sum to [0-9.]+ GiB, over 90% of \\S+'s [0-9.]+ GiB RAM \\([0-9.]+ GiB\\) by [0-9.]+ GiB; lower limits.memoryMax in the roster, or raise workstations:capacity \\(memoryShare, concurrentUsers\\)$`,
    "m",
  );
  try {
    await step("oversubscribed: preview", () => assert.rejects(e.preview(), (err: Error) => (assert.match(err.message, line), true)));
    await step("oversubscribed: up", () => assert.rejects(e.up(), (err: Error) => (assert.match(err.message, line), true)));
    assert.equal(await e.sh(`cat ${dropIn}`), before, "viktor's slice drop-in is as it was");
  } finally {
    roster.users = JSON.parse(saved) as User[];
    e.writeRoster(roster);
  }
  await step("back within capacity: no-op preview", () => e.preview({ expectNoChanges: true }));
});

test("onboard: a new user gets everything, and only that user's resources are touched", async () => {
  const kim = e.keypair("kim");
  keys.kim = kim.priv;
  roster.users.push({ name: "kim", uid: 2010, role: "power-user", email: "kim@example.com", forgejo: "kim", sshKeys: [kim.pub] });
  const changed = await apply("onboard kim");
  assert.ok(changed.length >= 6, changed.join(", "));
  for (const c of changed.filter((x) => !SHARED_BY_ACTIVE_USERS.test(x))) assert.match(c, /^create kim(-|$)/, `onboarding touches ${c}`);
  assert.equal(await e.sh("id -u kim"), "2010");
  assert.equal(login("kim").out, "kim");
  assert.deepEqual((await approleLogin("kim")).login.auth.policies, ["claude-renew-kim"]);
  assert.equal(await collaborator("kim"), "write");
  assert.equal(await gitStatus("kim", await gitToken("kim")), 200);
  assert.equal(await e.sh("runuser -u kim -- git -C /home/kim/code rev-parse --abbrev-ref HEAD"), "master");
  await audit("onboard kim");
});

test("keys and groups changed: one update of that user's account, the new key logs in, the old one not", async () => {
  const emo2 = e.keypair("emo2");
  Object.assign(user("emo"), { sshKeys: [emo2.pub], groups: ["audio"] });
  const changed = await apply("emo's keys and groups");
  assert.deepEqual(changed, ["update emo-account"]);
  assert.notEqual(login("emo").code, 0, "the old key no longer works");
  keys.emo = emo2.priv;
  assert.equal(login("emo").out, "emo");
  assert.match(await e.sh("id -nG emo"), /\baudio\b/);
  await audit("keys and groups");
});

let emoHome = "";
let emoCred: unknown;
test("suspend: no login, no Vault credential, no Forgejo access; the home stays", async () => {
  await e.sh("echo 'work in progress' > /home/emo/notes.txt && chown emo:emo /home/emo/notes.txt");
  emoHome = await e.sh("stat -c '%i %u %a' /home/emo && sha256sum /home/emo/notes.txt");
  emoCred = (await approleLogin("emo")).cred;
  const token = await gitToken("emo");
  user("emo").state = "suspended";
  const changed = await apply("suspend emo");
  for (const c of changed.filter((x) => !SHARED_BY_ACTIVE_USERS.test(x)))
    assert.match(c, /^(update|delete) (emo-|forgejo-master-protection$)/, `suspending touches ${c}`);
  assert.notEqual(login("emo").code, 0);
  await assert.rejects(vaultRequest(e.vault, "", "POST", "auth/approle/login", emoCred), /HTTP 400/, "emo's AppRole is gone");
  assert.equal(await exists("/home/emo/.config/claude-token-renew/vault.json"), false);
  assert.equal(await collaborator("ebarzin"), "none");
  assert.equal(await gitStatus("ebarzin", token), 401, "the access token is revoked");
  assert.equal(await e.sh("stat -c '%i %u %a' /home/emo && sha256sum /home/emo/notes.txt"), emoHome);
  await audit("suspend emo");
});

test("re-activate: the same uid, the home unchanged, fresh credentials", async () => {
  user("emo").state = "active";
  await apply("re-activate emo");
  assert.equal(await e.sh("id -u emo"), "2001");
  assert.equal(await e.sh("stat -c '%i %u %a' /home/emo && sha256sum /home/emo/notes.txt"), emoHome);
  assert.equal(login("emo").out, "emo");
  const again = await approleLogin("emo");
  assert.notDeepEqual(again.cred, emoCred, "a new secret_id");
  assert.deepEqual(again.login.auth.policies, ["claude-renew-emo"]);
  assert.equal(await collaborator("ebarzin"), "write");
  assert.equal(await gitStatus("ebarzin", await gitToken("emo")), 200);
  await audit("re-activate emo");
});

test("offboard: the cut (no login, no credentials, no access), the account and home kept", async () => {
  user("emo").state = "offboarded";
  await apply("offboard emo");
  assert.equal(await e.sh("id -u emo"), "2001", "the account stays (uid reserved)");
  assert.notEqual(login("emo").code, 0);
  assert.equal(await exists("/home/emo/.config/claude-token-renew/vault.json"), false);
  assert.equal(await collaborator("ebarzin"), "none");
  assert.equal(await e.sh("sha256sum /home/emo/notes.txt"), emoHome.split("\n")[1]);
  await audit("offboard emo");
});

test("approved purge: a verified archive, then the account and home are gone; the uid stays reserved", async () => {
  user("emo").purge = { approvedBy: "viktor", approvedOn: new Date().toISOString().slice(0, 10) };
  const changed = await apply("purge emo");
  assert.ok(changed.includes("create emo-purge"), changed.join(", "));
  const archive = await e.sh("ls /var/lib/workstations/archives/emo-2001-*.tar.gz");
  assert.match(await e.sh(`cd /var/lib/workstations/archives && sha256sum -c ${path.basename(archive)}.sha256`), /OK$/);
  assert.equal(await e.sh("getent passwd emo || true"), "");
  assert.equal(await exists("/home/emo"), false);
  assert.match(await e.sh("cat /var/lib/workstations/uid-ledger"), /^2001 emo$/m);
  await audit("purge emo");
});

test("destroy --target of one user's component: the cut on the host, in Vault and Forgejo; others untouched; the namespace kept", async () => {
  const urn = (await e.stack.exportStack()).deployment.resources.find(
    (r: { type: string; urn: string }) => r.type === "workstations:index:UserWorkstation" && r.urn.endsWith("::nadia"),
  ).urn;
  const viktorBefore = await e.sh("id viktor; ls -la /home/viktor | md5sum; cat /home/viktor/.config/claude-token-renew/vault.json | md5sum");
  const nadiaCred = (await approleLogin("nadia")).cred;
  await step("destroy --target nadia", () => e.stack.destroy({ color: "never", target: [urn], targetDependents: true }));
  assert.equal(await e.sh("id -u nadia"), "2002", "account kept");
  assert.notEqual(login("nadia").code, 0);
  await assert.rejects(vaultRequest(e.vault, "", "POST", "auth/approle/login", nadiaCred), /HTTP 400/);
  assert.equal(await collaborator("nadia"), "none");
  assert.equal((await e.kube!.request("GET", "/api/v1/namespaces/nadia-apps")).status, 200, "namespaces are never deleted");
  assert.equal(await e.sh("id viktor; ls -la /home/viktor | md5sum; cat /home/viktor/.config/claude-token-renew/vault.json | md5sum"), viktorBefore);
  await approleLogin("viktor");
  await audit("destroy --target nadia");
  // Then out of the roster: converges with no errors.
  roster.users = roster.users.filter((u) => u.name !== "nadia");
  await apply("nadia removed from the roster");
  assert.equal((await e.kube!.request("GET", "/api/v1/namespaces/nadia-apps")).status, 200);
  await audit("nadia removed");
});
