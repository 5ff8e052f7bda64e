/**
 * Foundation host test: the exact scripts the program generates (captured under mocks),
 * run in engine order on a real systemd Debian host (nspawn), through the whole lifecycle.
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { capture, changes, CommandSpec, MiniEngine } from "../../dev/engine";
import { boot, createHost, destroyHost, run, TestHost } from "../../dev/testhost/testhost";
import { hostLibrary, setHostLibrarySuffixForTesting } from "../../components/scripts/hostLib";
import { WEB_APPLY } from "../../components/hostContract";
import { tempDir } from "../../dev/tmp";

let h: TestHost;
let engine: MiniEngine;
const keyDir = tempDir("ws-keys-");

function keypair(name: string): { priv: string; pub: string } {
  const priv = path.join(keyDir, name);
  if (!fs.existsSync(priv)) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${name}@test`, "-f", priv]);
  return { priv, pub: fs.readFileSync(priv + ".pub", "utf8").trim() };
}

type U = Record<string, unknown> & { name: string };
const users: U[] = [
  { name: "viktor", uid: 2000, role: "admin", email: "viktor@example.com", forgejo: "viktor", sshKeys: [keypair("viktor").pub] },
  {
    name: "emo",
    uid: 2001,
    role: "power-user",
    email: "emo@example.com",
    forgejo: "ebarzin",
    sshKeys: [keypair("emo").pub],
    overrides: { pushWhitelist: true },
  },
  {
    name: "nadia",
    uid: 2002,
    role: "namespace-owner",
    email: "nadia@example.com",
    forgejo: "nadia",
    sshKeys: [keypair("nadia").pub],
    namespaces: ["nadia-apps"],
  },
];
const rosterText = (us: U[]) => YAML.stringify({ version: 1, users: us });
const edit = (name: string, patch: Record<string, unknown>) => {
  const u = users.find((x) => x.name === name)!;
  Object.assign(u, patch);
  for (const [k, v] of Object.entries(patch)) if (v === undefined) delete u[k];
};

const sh = async (cmd: string) => (await run(h, cmd)).stdout.trim();
const apply = async (us: U[] = users) => engine.up(await capture({ roster: rosterText(us) }));

function sshAs(user: string, key: string, cmd = "id -un"): { code: number | null; out: string } {
  const r = spawnSync(
    "ssh",
    [
      "-i",
      key,
      "-p",
      String(h.port),
      "-o",
      `UserKnownHostsFile=${h.knownHostsPath}`,
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      "BatchMode=yes",
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "ConnectTimeout=10",
      `${user}@127.0.0.1`,
      cmd,
    ],
    { encoding: "utf8", env: { ...process.env, SSH_AUTH_SOCK: "" }, timeout: 30_000 },
  );
  return { code: r.status, out: (r.stdout + r.stderr).trim() };
}

/**
 * A fingerprint of a home: every path with type, mode, owner and content hash; without the
 * token agent's own files (its credential, and its state, which its timer writes whenever a
 * quarter hour passes: a re-enabled timer with Persistent=true catches up at once).
 */
const AGENT_FILES = "-path ./.config/claude-token-renew -prune -o -path ./.local/state -prune -o";
const homePrint = (home: string) =>
  sh(
    `cd ${home} && find . ${AGENT_FILES} ! -path ./.local -printf '%y %m %u:%g %p\\n' | sort && find . ${AGENT_FILES} -type f -print0 | sort -z | xargs -0 -r sha256sum`,
  );

before(async () => {
  h = await createHost("ws-foundation");
  await boot(h);
  engine = new MiniEngine((command, stdin) => run(h, command, { stdin, check: false }));
});
after(async () => {
  if (h) await destroyHost(h);
});

test("onboard three users, one per role: id, getent, ownership and modes", async () => {
  const actions = await apply();
  assert.ok(actions.every((a) => a.op === "create"));
  for (const u of users) {
    assert.equal(await sh(`id -u ${u.name}`), String(u.uid));
    assert.equal(await sh(`id -g ${u.name}`), String(u.uid));
    const pw = (await sh(`getent passwd ${u.name}`)).split(":");
    assert.deepEqual([pw[5], pw[6]], [`/home/${u.name}`, "/bin/bash"]);
    assert.match(await sh(`id -nG ${u.name}`), /\bworkstation-users\b/);
    assert.equal(await sh(`stat -c '%a %U:%G' /home/${u.name}`), `750 ${u.name}:${u.name}`);
    assert.equal(await sh(`stat -c '%a %U' /home/${u.name}/.claude`), `700 ${u.name}`);
    assert.equal(await sh(`stat -c '%a %U' /home/${u.name}/.claude/settings.json`), `600 ${u.name}`);
    assert.equal(await sh(`readlink /home/${u.name}/.claude/skills`), "/usr/local/share/workstations/claude-base/skills");
    assert.equal(await sh(`test -f /home/${u.name}/.claude/skills/commit-intent/SKILL.md && echo ok`), "ok");
    assert.match(await sh(`head -1 /home/${u.name}/.codex/AGENTS.md`), /^<!-- managed-by: workstations/);
    assert.equal(await sh(`stat -c '%a %U' /home/${u.name}/start-claude.sh`), `755 ${u.name}`);
    assert.equal(await sh(`cat /etc/ssh/authorized_keys.d/${u.name}`), (u.sshKeys as string[]).join("\n"));
    assert.equal(sshAs(u.name, path.join(keyDir, u.name)).out, u.name, `${u.name} logs in with the roster key`);
    const cred = `/home/${u.name}/.config/claude-token-renew/vault.json`;
    assert.equal(await sh(`stat -c '%a %U' ${cred} && stat -c '%a' $(dirname ${cred})`), `600 ${u.name}\n700`);
    assert.equal(JSON.parse(await sh(`cat ${cred}`)).role_id, `role-id-of-claude-renew-${u.name}`);
    assert.equal(await sh(`systemctl is-enabled claude-token-renew@${u.name}.timer`), "enabled");
  }
  assert.match(await sh("sudo -l -U viktor"), /NOPASSWD: ALL/);
  assert.match(await sh("sudo -l -U emo || true"), /not allowed/);
  assert.equal(
    await sh(
      "cmp /etc/claude-code/managed-settings.json /dev/stdin <<'EOF' && echo same\n" +
        fs.readFileSync(path.join(__dirname, "../../config/managed-settings.json"), "utf8") +
        "EOF",
    ),
    "same",
  );
  const index = JSON.parse(await sh("cat /etc/workstations/users.json"));
  assert.deepEqual(index.users.map((u: { name: string }) => u.name).sort(), ["emo", "nadia", "viktor"]);
  assert.equal(await sh("stat -c %a /var/lib/workstations"), "700");
  // The host component installed and enabled the units; they verify on this systemd.
  assert.equal(await sh("systemctl is-enabled tmux-persist-save.timer tmux-persist-restore.service | sort -u"), "enabled");
  assert.equal(await sh("systemctl is-active tmux-persist-save.timer"), "active");
  await sh(
    "systemd-analyze verify /etc/systemd/system/tmux-persist-*.service /etc/systemd/system/tmux-persist-save.timer /etc/systemd/system/claude-token-renew@viktor.timer",
  );
  // The bundled scripts run on the host's node and read the program's users index.
  const status = await sh("tmux-persist status --json");
  for (const u of ["viktor", "emo", "nadia"]) assert.ok(status.includes(`"${u}"`), `tmux-persist sees ${u}`);
  assert.match(await sh("claude-token-renew status --user viktor --offline 2>&1 || true"), /viktor/);
});

test("apply again: zero changes (engine no-op, and every script re-run reports nothing)", async () => {
  assert.deepEqual(await apply(), []);
  const rerun = await engine.rerunAll();
  const noisy = rerun.filter((a) => changes(a.stdout).length > 0).map((a) => `${a.name}: ${changes(a.stdout).join("; ")}`);
  assert.deepEqual(noisy, []);
});

test("a customised AGENTS.md is never overwritten; settings.json goes back to 0600", async () => {
  await sh("echo 'my own rules' >> /home/emo/.codex/AGENTS.md && chmod 0664 /home/emo/.claude/settings.json");
  const before = await sh("sha256sum /home/emo/.codex/AGENTS.md");
  const r = await engine.rerunAll();
  assert.equal(await sh("sha256sum /home/emo/.codex/AGENTS.md"), before);
  assert.equal(await sh("stat -c %a /home/emo/.claude/settings.json"), "600");
  assert.ok(r.some((a) => a.name === "emo-account" && changes(a.stdout).some((c) => /settings.json mode/.test(c))));
});

test("change groups and keys: updated in place, only that user's account", async () => {
  const newKey = keypair("emo2");
  edit("emo", { groups: ["audio", "video"], sshKeys: [newKey.pub] });
  const actions = await apply();
  assert.deepEqual(
    actions.map((a) => `${a.op} ${a.name}`),
    ["update emo-account"],
  );
  assert.equal(await sh("id -u emo"), "2001");
  assert.deepEqual((await sh("id -nG emo")).split(" ").sort(), ["audio", "emo", "video", "workstation-users"]);
  assert.notEqual(sshAs("emo", path.join(keyDir, "emo")).code, 0, "the old key no longer works");
  assert.equal(sshAs("emo", newKey.priv).out, "emo");
});

test("suspend: no ssh login, processes gone; re-activate: same uid and files", async () => {
  // A running session of emo.
  await sh("setpriv --reuid=2001 --regid=2001 --init-groups bash -c 'nohup sleep 9999 >/dev/null 2>&1 &'");
  assert.notEqual(await sh("pgrep -u emo || true"), "");
  const filesBefore = await homePrint("/home/emo");
  edit("emo", { state: "suspended" });
  const actions = await apply();
  assert.ok(actions.some((a) => a.name === "emo-account"));
  assert.notEqual(sshAs("emo", path.join(keyDir, "emo2")).code, 0, "suspended emo cannot log in");
  assert.equal(await sh("pgrep -u emo || true"), "", "no process of emo is left");
  assert.equal(await sh("test -e /etc/sudoers.d/ws-emo && echo yes || echo no"), "no");
  assert.equal(await sh("test -e /home/emo/.config/claude-token-renew/vault.json && echo yes || echo no"), "no", "Vault credential removed");
  assert.notEqual(await sh("systemctl is-enabled claude-token-renew@emo.timer || true"), "enabled");
  edit("emo", { state: "active" });
  await apply();
  assert.equal(await sh("id -u emo"), "2001");
  assert.equal(await homePrint("/home/emo"), filesBefore);
  assert.equal(sshAs("emo", path.join(keyDir, "emo2")).out, "emo");
  assert.equal(await sh("systemctl is-enabled claude-token-renew@emo.timer"), "enabled");
});

let nadiaHome = "";
test("offboard without approval: locked, home intact, nothing else of hers is managed", async () => {
  nadiaHome = await homePrint("/home/nadia");
  edit("nadia", { state: "offboarded" });
  const actions = await apply();
  const hers = actions.filter((a) => a.name.startsWith("nadia-"));
  assert.deepEqual(hers.map((a) => `${a.op} ${a.name}`).sort(), [
    "delete nadia-account",
    "delete nadia-limits",
    "delete nadia-units",
    "delete nadia-vault-credential",
  ]);
  // besides hers, only the web surfaces' identity files change (she leaves them)
  assert.deepEqual([...new Set(actions.filter((a) => !a.name.startsWith("nadia-")).map((a) => a.name))], actions.length > hers.length ? ["web-files"] : []);
  assert.equal(await sh("test -e /home/nadia/.config/claude-token-renew/vault.json && echo yes || echo no"), "no", "her machine credential is gone");
  assert.equal(await sh("id -u nadia"), "2002", "the account stays (uid reserved)");
  assert.notEqual(sshAs("nadia", path.join(keyDir, "nadia")).code, 0);
  assert.equal(await homePrint("/home/nadia"), nadiaHome);
  const index = JSON.parse(await sh("cat /etc/workstations/users.json"));
  assert.ok(!index.users.some((u: { name: string }) => u.name === "nadia"));
});

test("offboard with approval: a verified archive matching the home, then the account is gone", async () => {
  edit("nadia", { purge: { approvedBy: "viktor", approvedOn: "2026-11-22" } });
  const actions = await apply();
  assert.deepEqual(
    actions.map((a) => `${a.op} ${a.name}`),
    ["create nadia-purge"],
  );
  const archive = await sh("ls /var/lib/workstations/archives/nadia-2002-*.tar.gz");
  assert.equal(await sh(`stat -c '%a %U' ${archive}`), "600 root");
  assert.match(await sh(`cd /var/lib/workstations/archives && sha256sum -c ${path.basename(archive)}.sha256`), /OK$/);
  // Restore the archive elsewhere and compare it with the fingerprint taken before.
  await sh(`rm -rf /tmp/restore && mkdir /tmp/restore && tar --numeric-owner -xpzf ${archive} -C /tmp/restore`);
  const restored = (await homePrint("/tmp/restore/nadia")).replace(/\b2002:2002\b/g, "nadia:nadia");
  assert.equal(restored, nadiaHome);
  assert.equal((await run(h, "getent passwd nadia", { check: false })).code, 2, "account is gone");
  assert.equal(await sh("test -e /home/nadia && echo yes || echo no"), "no");
  assert.match(await sh("cat /var/lib/workstations/uid-ledger"), /^2002 nadia$/m, "uid stays reserved");
});

test("a reserved uid is never reused, even after its entry leaves the roster", async () => {
  const others = users.filter((u) => u.name !== "nadia");
  const nora = { name: "nora", uid: 2002, role: "power-user", email: "nora@example.com", forgejo: "nora", sshKeys: [keypair("nora").pub] };
  await assert.rejects(apply([...others, nora]), /uid 2002 was used by 'nadia'.*never reused/s);
  assert.equal((await run(h, "getent passwd nora", { check: false })).code, 2, "nothing was created for nora");
  // Back to the last good roster.
  engine.state.delete("nora-account");
});

test("a run killed halfway converges on the next run", async () => {
  const kim = { name: "kim", uid: 2010, role: "power-user", email: "kim@example.com", forgejo: "kim", sshKeys: [keypair("kim").pub], groups: ["audio"] };
  const specs = await capture({ roster: rosterText([...users, kim]) });
  const kimAccount = specs.find((s) => s.name === "kim-account") as CommandSpec;
  // The command is the account step, then the home step: the account step is the one killed.
  const accountStep = String(kimAccount.create).split(" && ")[0];
  assert.match(accountStep, / account-apply 'NAME=kim' /);
  // Kill the account script right after its 1st, 2nd, 3rd... change: each run is cut off
  // part-way through, leaving the host half-converged for the next.
  let kills = 0;
  for (let n = 1; n <= 4; n++) {
    const r = await run(
      h,
      [
        "rm -f /tmp/kf; mkfifo /tmp/kf; exec 3<>/tmp/kf",
        `${accountStep} >/tmp/kf 2>/dev/null & pid=$!`,
        `for i in $(seq ${n}); do IFS= read -r -t 120 l <&3 || exit 0; done`, // a slow (emulated) host may take many seconds per line
        `st=$(awk '/^State/{print $2}' /proc/$pid/status 2>/dev/null || true)`,
        `if [ -n "$st" ] && [ "$st" != Z ] && kill -KILL $pid 2>/dev/null; then echo KILLED; fi`,
      ].join("\n"),
      { check: false },
    );
    if (r.stdout.includes("KILLED")) kills++;
  }
  assert.ok(kills >= 2, `the account script was killed part-way ${kills} times`);
  const actions = await engine.up(specs);
  assert.ok(actions.some((a) => a.name === "kim-account"));
  assert.equal(await sh("id -u kim"), "2010");
  assert.deepEqual((await sh("id -nG kim")).split(" ").sort(), ["audio", "kim", "workstation-users"]);
  assert.equal(sshAs("kim", path.join(keyDir, "kim")).out, "kim");
  const rerun = await engine.rerunAll();
  assert.deepEqual(
    rerun.filter((a) => changes(a.stdout).length).map((a) => a.name),
    [],
  );
  assert.equal(await sh("grep -c '^2010 kim$' /var/lib/workstations/uid-ledger"), "1");
});

test("a new host library version reaches every user; a delete runs the version its resource was created with", async () => {
  const v1 = hostLibrary();
  await engine.up(await capture({ roster: rosterText(users) })); // converged on v1 first (kim leaves)
  setHostLibrarySuffixForTesting("v2, for the host test");
  try {
    const v2 = hostLibrary();
    assert.notEqual(v2.path, v1.path);
    const specs = await capture({ roster: rosterText(users) });
    const actions = await engine.up(specs);
    const updated = actions.filter((a) => a.op === "update").map((a) => a.name);
    for (const u of users.filter((x) => x.state !== "offboarded")) {
      for (const part of ["account", "units"]) assert.ok(updated.includes(`${u.name}-${part}`), `${u.name}-${part} not updated: ${updated}`);
    }
    // host-files installs the new version; web-files re-points its drift-restore entry
    // (WEB_APPLY) at it; nothing else changes.
    const changed = actions.filter(
      (a) => a.name !== "host-files" && changes(a.stdout).filter((c) => !(a.name === "web-files" && c === `changed: ${WEB_APPLY}`)).length,
    );
    assert.deepEqual(changes(actions.find((a) => a.name === "web-files")!.stdout), [`changed: ${WEB_APPLY}`]);
    assert.deepEqual(
      changed.map((a) => a.name),
      [],
      `the new version converges with no change:\n${changed.map((a) => `${a.name}: ${changes(a.stdout).join("; ")}`).join("\n")}`,
    );
    assert.equal(await sh(`test -x ${v1.path} && test -x ${v2.path} && echo both`), "both", "versions are kept side by side");
    // a user onboarded under v2, then removed: its delete (stored in state) calls v2
    const kai = { name: "kai", uid: 2011, role: "power-user", email: "kai@example.com", forgejo: "kai", sshKeys: [keypair("kai").pub] };
    await engine.up(await capture({ roster: rosterText([...users, kai]) }));
    assert.ok(engine.state.get("kai-account")!.delete!.startsWith(v2.path));
    setHostLibrarySuffixForTesting("");
    const back = await engine.up(await capture({ roster: rosterText(users) }));
    const cut = back.find((a) => a.name === "kai-account" && a.op === "delete");
    assert.ok(cut, "kai's account was cut");
    assert.match(cut!.stdout, /cut kai uid=2011/);
    assert.equal(await sh("getent shadow kai | cut -d: -f8"), "1", "kai's account expired by the cut");
  } finally {
    setHostLibrarySuffixForTesting("");
  }
});

test("destroy everything: nothing the host component copied is left behind; homes and accounts stay", async () => {
  // The host files ship as one archive (components/host.ts): its manifest lists them.
  const copied = (await sh("cut -d' ' -f3 /var/lib/workstations/host-files.manifest")).split("\n");
  assert.ok(copied.includes("/etc/claude-code/managed-settings.json") && copied.length > 5);
  assert.equal(await sh(`for f in ${copied.join(" ")}; do [ -e "$f" ] || echo "$f"; done; true`), "", "installed before the destroy");
  const actions = await engine.destroy(() => true);
  assert.ok(actions.some((a) => a.op === "delete" && a.name === "host-files"));
  const left = await sh(`for f in ${copied.join(" ")} /usr/local/lib/workstations/lib; do [ -e "$f" ] && echo "$f"; done; true`);
  assert.equal(left, "", "copied files left behind");
  assert.equal(await sh("ls /usr/local/bin | grep -E 'tmux-persist|claude-token-renew|workstations-' || true"), "");
  assert.equal(await sh("test -e /etc/ssh/sshd_config.d/50-workstations.conf && echo yes || echo no"), "no");
  assert.equal(await sh("id -u viktor"), "2000", "destroy is the cut, never a deletion of accounts");
  assert.equal(await sh("test -d /home/viktor/.claude && echo yes"), "yes");
  assert.notEqual(sshAs("viktor", path.join(keyDir, "viktor")).code, 0, "but nobody can log in any more");
});
