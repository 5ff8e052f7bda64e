/**
 * Hardening on the real systemd test host (issue 8): no path from a user to root, and the
 * account scripts refuse what the roster or the host does not back up.
 *
 *  - PATH hijack: a user plants fake systemd-run, runuser, tmux, setpriv, sudo, node, bash,
 *    sh and env in ~/.local/bin (each records `id -u`), has a saved session, and restore runs
 *    in every spawn mode (direct, scope, auto through the real unit): nothing ran as uid 0.
 *  - Purge identity: an account whose uid differs from the roster, one the ledger does not
 *    know, and a home owned by someone else: the purge exits non-zero, says why, and changes
 *    nothing (no cut, no archive, account and home intact).
 *  - Groups: a system group (docker) or another user's personal group is refused on the host
 *    before any change, even when the roster check is bypassed; a team group is granted.
 *  - A login shell that is not installed fails the preflight and the account script before
 *    any account change.
 *  - A missing home is rebuilt from skel in a root-only staging dir, owned by the user.
 */
import { waitFor } from "../../dev/wait";
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { planUser } from "../../components/plan";
import type { RosterUser } from "../../components/roster/schema";
import { accountApplyScript, hostLibInstallScript, hostLibrary, purgeScript } from "../../components/scripts/hostLib";
import { preflightScript } from "../../components/scripts/host";
import { shq } from "../../components/scripts/shell";
import { boot, createHost, destroyHost, run, type TestHost } from "../../dev/testhost/testhost";
import { installAgents } from "../../dev/testhost/agents";
import { rosterUser as baseUser } from "../../dev/mocks";

const ROOT = path.resolve(__dirname, "..", "..");
const LEDGER = "/var/lib/workstations/uid-ledger";
const HIJACKED = ["systemd-run", "runuser", "tmux", "setpriv", "sudo", "node", "bash", "sh", "env"];

const rosterUser = (name: string, uid: number, extra: Partial<RosterUser> = {}): RosterUser => baseUser(name, uid, extra);

describe("hardening on the systemd host", { timeout: 20 * 60_000 }, () => {
  let h: TestHost;
  const sh = async (cmd: string, stdin?: string) => (await run(h, cmd, { stdin })).stdout.trim();
  const tryRun = (cmd: string, stdin?: string) => run(h, cmd, { stdin, check: false });
  const as = (user: string, cmd: string) =>
    sh(`runuser -u ${user} -- env -C / HOME=/home/${user} PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 sh -c ${shq(cmd)}`);

  before(async () => {
    h = await createHost("hardening");
    await boot(h);
    await sh(
      "install -d -m 0755 /usr/local/lib/workstations /etc/workstations && install -d -m 0700 /var/lib/workstations && install -d -m 0711 /var/lib/tmux-persist",
    );
    await installAgents(sh); // scripts/agents as the host component ships it (entry points, modules, links)
    for (const u of ["tmux-persist-restore.service", "tmux-persist-save.service", "tmux-persist-save.timer"])
      await sh(`cat > /etc/systemd/system/${u}`, fs.readFileSync(path.join(ROOT, "scripts/units", u), "utf8"));
    await sh("cat > /usr/local/bin/claude && chmod 0755 /usr/local/bin/claude", fs.readFileSync(path.join(ROOT, "tests/tmux/fake-claude"), "utf8"));
    await sh("systemctl daemon-reload");
    // the host component's preflight lays down the shared directories the account scripts use
    await sh(preflightScript(["/bin/bash"]));
    await sh(hostLibInstallScript(), hostLibrary().content); // the per-user verbs
  });
  after(async () => {
    if (h) await destroyHost(h);
  });

  test("PATH hijack: fakes in ~/.local/bin never run as root, in every restore spawn mode", async () => {
    await sh("useradd -m -u 2050 -U -G users -s /bin/bash mallory");
    const doc = {
      version: 1,
      users: [{ name: "mallory", uid: 2050, home: "/home/mallory", state: "active", email: "m@example.com", tmuxPersist: true, claudeTokenRenew: false }],
    };
    await sh("cat > /etc/workstations/users.json", JSON.stringify(doc));
    await as("mallory", "mkdir -p ~/proj && tmux -u new-session -d -s keep -c ~/proj claude");
    await waitFor("mallory's claude", async () => (await as("mallory", "cat ~/.fake-claude.log 2>/dev/null || true")).includes('"start"'));
    await sh("tmux-persist save");
    const snap = JSON.parse(await sh("cat /var/lib/tmux-persist/mallory/last"));
    const uuid: string = snap.sessions[0].windows[0].panes[0].claude.uuid;
    assert.match(uuid, /^[0-9a-f-]{36}$/, "the saved session has a conversation to resume");

    // the fakes: record who ran them, then run the real program so that everything still works
    const fake = (name: string) => `#!/bin/sh
echo "$(/usr/bin/id -u) ${name}" >> /home/mallory/hijack.log
for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do [ -x "$d/${name}" ] && exec "$d/${name}" "$@"; done
exit 127
`;
    await as("mallory", "mkdir -p ~/.local/bin && : > ~/hijack.log && chmod 0666 ~/hijack.log");
    for (const n of HIJACKED)
      await sh(`runuser -u mallory -- sh -c ${shq(`cat > /home/mallory/.local/bin/${n} && chmod 0755 /home/mallory/.local/bin/${n}`)}`, fake(n));
    // the fakes work and record (so the check below can fail): the user's own PATH finds them
    await as("mallory", "PATH=$HOME/.local/bin:$PATH; export PATH; tmux -V >/dev/null; env true");
    const own = await sh("cat /home/mallory/hijack.log");
    assert.match(own, /^2050 tmux$/m);
    assert.match(own, /^2050 env$/m);

    const killServer = async () => {
      await tryRun("runuser -u mallory -- /usr/bin/tmux kill-server");
      await waitFor("mallory's processes gone", async () => (await tryRun("pgrep -u mallory")).code !== 0);
    };
    const restored = () =>
      waitFor("the restored session resuming its conversation", async () => {
        const r = await tryRun("runuser -u mallory -- /usr/bin/tmux list-sessions -F '#{session_name}'");
        if (r.code !== 0 || !r.stdout.split("\n").includes("keep")) return false;
        return (await sh("cat /home/mallory/.fake-claude.log")).split("\n").some((l) => l.includes(uuid) && l.includes("--resume"));
      });
    const modes: Array<[string, string]> = [
      ["direct", "tmux-persist restore --spawn direct"],
      ["scope", "tmux-persist restore --spawn scope"],
      // auto = systemd detected: the boot unit itself, in root's systemd environment
      ["auto (tmux-persist-restore.service)", "systemctl restart tmux-persist-restore.service"],
    ];
    for (const [mode, cmd] of modes) {
      await killServer();
      await sh(": > /home/mallory/hijack.log; : > /home/mallory/.fake-claude.log");
      const r = await tryRun(cmd);
      assert.equal(r.code, 0, `${mode}: ${r.stderr}`);
      await restored();
      const log = await sh("cat /home/mallory/hijack.log");
      const asRoot = log.split("\n").filter((l) => /^0 /.test(l));
      assert.deepEqual(asRoot, [], `${mode}: programs from ~/.local/bin ran as root:\n${log}`);
    }
    await killServer();
  });

  test("purge refuses an account that is not the roster's (uid, ledger, home owner) and changes nothing", async () => {
    const state = async (name: string) => ({
      passwd: await sh(`getent passwd ${name} || true`),
      shadow: await sh(`getent shadow ${name} | cut -d: -f2,8`),
      home: await sh(`stat -c '%u %a' /home/${name}; cat /home/${name}/keep.txt`),
      archives: await sh("ls /var/lib/workstations/archives 2>/dev/null || true"),
    });
    const approval = { approvedBy: "viktor", approvedOn: "2026-11-30" };
    const cases: Array<{ what: string; setup: string; plan: { name: string; uid: number }; err: RegExp }> = [
      {
        what: "uid differs from the roster",
        setup: `useradd -m -u 2061 -U olga && echo '2060 olga' >> ${LEDGER}`,
        plan: { name: "olga", uid: 2060 },
        err: /olga refused: the account on .* has uid 2061 but roster.yaml pins 2060/,
      },
      {
        what: "account not in the ledger",
        setup: "useradd -m -u 2070 -U pete",
        plan: { name: "pete", uid: 2070 },
        err: /pete refused: '2070 pete' is not in \/var\/lib\/workstations\/uid-ledger/,
      },
      {
        what: "home owned by another uid",
        setup: `useradd -m -u 2080 -U quinn && echo '2080 quinn' >> ${LEDGER} && chown -R 2999:2999 /home/quinn`,
        plan: { name: "quinn", uid: 2080 },
        err: /quinn refused: \/home\/quinn on .* is owned by uid 2999, not 2080/,
      },
    ];
    await sh(`install -d -m 0700 /var/lib/workstations && touch ${LEDGER} && chmod 0600 ${LEDGER}`);
    for (const c of cases) {
      await sh(c.setup);
      await sh(`echo precious > /home/${c.plan.name}/keep.txt && chown ${c.plan.name === "quinn" ? 2999 : c.plan.name} /home/${c.plan.name}/keep.txt`);
      const before_ = await state(c.plan.name);
      const r = await tryRun(purgeScript({ ...c.plan, home: `/home/${c.plan.name}`, purge: approval }));
      assert.notEqual(r.code, 0, `${c.what}: the purge must fail`);
      assert.match(r.stderr, c.err, `${c.what}: ${r.stderr}`);
      assert.match(r.stderr, /nothing changed/);
      assert.equal(r.stdout.includes("changed:"), false, `${c.what}: reported a change: ${r.stdout}`);
      assert.deepEqual(await state(c.plan.name), before_, `${c.what}: something changed`);
    }
    // positive control: the same script purges the account that does match
    await sh(`useradd -m -u 2090 -U rita && echo '2090 rita' >> ${LEDGER} && echo x > /home/rita/f`);
    const ok = await tryRun(purgeScript({ name: "rita", uid: 2090, home: "/home/rita", purge: approval }));
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(await sh("getent passwd rita || echo gone"), "gone");
    assert.match(await sh("ls /var/lib/workstations/archives"), /^rita-2090-.*\.tar\.gz$/m);
  });

  test("groups: a system group or another user's personal group is refused on the host before any change; a team group is granted", async () => {
    await sh("groupadd --system docker && groupadd -g 3000 infra-ops && useradd -m -u 2100 -U alice2");
    const refused: Array<[string, RegExp]> = [
      ["docker", /group 'docker' .* has system gid \d+ .* only team groups/],
      ["alice2", /personal group of user 'alice2'/],
    ];
    for (const [g, err] of refused) {
      const p = planUser(rosterUser("gary", 2110, { groups: [g] }));
      const r = await tryRun(accountApplyScript(p));
      assert.notEqual(r.code, 0, `group ${g} must be refused`);
      assert.match(r.stderr, err);
      assert.equal(await sh("getent passwd gary || echo none"), "none", `group ${g}: the account was created anyway`);
      assert.equal(await sh(`grep -c '^2110 ' ${LEDGER} || true`), "0", `group ${g}: the uid was recorded anyway`);
    }
    const p = planUser(rosterUser("gary", 2110, { groups: ["infra-ops", "audio"] }));
    const r = await tryRun(accountApplyScript(p));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await sh("id -nG gary")).split(" ").sort(), ["audio", "gary", "infra-ops", "workstation-users"]);
  });

  test("a login shell that is not installed fails the preflight and the account script, before any change", async () => {
    const pre = await tryRun(preflightScript(["/bin/bash", "/usr/bin/fish"]));
    assert.notEqual(pre.code, 0);
    assert.match(pre.stderr, /login shell \/usr\/bin\/fish .* is not installed on /);
    assert.equal(pre.stdout.includes("changed:"), false);
    const p = planUser(rosterUser("zed", 2120, { shell: "/usr/bin/fish" }));
    const r = await tryRun(accountApplyScript(p));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /login shell \/usr\/bin\/fish of zed is not installed/);
    assert.equal(await sh("getent passwd zed || echo none"), "none");
    assert.equal(await sh(`grep -c '^2120 ' ${LEDGER} || true`), "0");
  });

  test("a missing home is rebuilt from skel in a root-only staging dir, owned by the user", async () => {
    await sh(
      "install -d /etc/skel/.claude && printf '{}\\n' > /etc/skel/.claude/settings.json && chmod 0600 /etc/skel/.claude/settings.json && echo hi > /etc/skel/.skelmark",
    );
    const p = planUser(rosterUser("sue", 2130));
    assert.equal((await tryRun(accountApplyScript(p))).code, 0);
    await sh("rm -rf /home/sue");
    const r = await tryRun(accountApplyScript(p));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /home \/home\/sue recreated from skel/);
    assert.equal(await sh("stat -c '%a %U:%G' /home/sue"), "750 sue:sue");
    assert.equal(await sh("stat -c '%a %U:%G' /home/sue/.claude/settings.json /home/sue/.skelmark"), "600 sue:sue\n644 sue:sue");
    assert.equal(await sh("find /home -maxdepth 1 -name '.ws-home.*' | wc -l"), "0", "no staging dir left behind");
    assert.equal(await sh("find /home/sue ! -user sue | wc -l"), "0", "everything in the home belongs to the user");
  });
});
