/**
 * Hardening round two on the real systemd test host (issue 19, items 1-4): the cut always
 * completes, and nothing a user plants or a roster entry names gets around it.
 *
 *  - Planted files: vault.json as a directory, ~/.codex and ~/.kube as files,
 *    ~/.git-credentials as a directory, start-claude.sh as a fifo. Every user-side step
 *    (deliver and remove, home) warns, exits 0 and leaves them; the cut then completes.
 *  - Fork-hopping processes (one and eight, each forking itself and exiting, forever), in a
 *    plain ssh session and in a tmux session restored by tmux-persist into its scope: gone
 *    after suspend, offboard (the cut) and purge, and no scope of the user is left.
 *  - The host lock: a user cannot open it (so cannot hold it), and no process a root verb
 *    starts as the user (a git hook the clone verb runs) holds any fd of root's.
 *  - An existing account this program did not create is not taken over by a roster entry
 *    naming it (nothing changes) unless the entry says adopt: true.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { planUser } from "../../components/plan";
import type { RosterUser } from "../../components/roster/schema";
import {
  accountApplyScript,
  accountCutScript,
  cloneScript,
  gitCredentialsDeliverScript,
  gitCredentialsRemoveScript,
  homeApplyScript,
  hostLibInstallScript,
  hostLibrary,
  kubeconfigDeliverScript,
  kubeconfigRemoveScript,
  purgeScript,
  vaultCredDeliverScript,
  vaultCredRemoveScript,
} from "../../components/scripts/hostLib";
import { guardedKubeconfig } from "../../components/scripts/kubeconfig";
import { preflightScript } from "../../components/scripts/host";
import { shq } from "../../components/scripts/shell";
import { GRANTED_DIR, HOST_LOCK_FILE, LAUNCHER_FILE, MIRROR_FILE } from "../../components/hostContract";
import { USERS_GROUP } from "../../components/plan";
import { mirrorContent } from "../../components/scripts/home";
import { boot, createHost, destroyHost, run, type TestHost } from "../../dev/testhost/testhost";
import { installAgents } from "../../dev/testhost/agents";
import { rosterUser as baseUser } from "../../dev/mocks";
import { waitFor } from "../../dev/wait";
import { tempDir } from "../../dev/tmp";

const ROOT = path.resolve(__dirname, "..", "..");
const keyDir = tempDir("ws-cut-keys-");
const HOME_INPUTS = { claudeMd: "# managed\n", startClaude: '#!/bin/sh\nexec claude "$@"\n' };

function keypair(name: string): { priv: string; pub: string } {
  const priv = path.join(keyDir, name);
  if (!fs.existsSync(priv)) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${name}@test`, "-f", priv]);
  return { priv, pub: fs.readFileSync(priv + ".pub", "utf8").trim() };
}

function rosterUser(name: string, uid: number, extra: Partial<RosterUser> = {}): RosterUser {
  return baseUser(name, uid, { sshKeys: [keypair(name).pub], ...extra });
}

// A process that forks a copy of itself and exits, forever: a new pid every generation.
const HOPPER = `#!/bin/bash
( exec /bin/bash /usr/local/bin/hop ) &
exit 0
`;

describe("the cut on the systemd host", { timeout: 30 * 60_000 }, () => {
  let h: TestHost;
  const tryRun = (cmd: string, stdin?: string) => run(h, cmd, { stdin, check: false });
  const sh = async (cmd: string, stdin?: string) => (await run(h, cmd, { stdin })).stdout.trim();
  const as = (user: string, cmd: string) =>
    sh(`runuser -u ${user} -- env -C / HOME=/home/${user} PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 sh -c ${shq(cmd)}`);
  const procsOf = async (uid: number) => (await tryRun(`pgrep -a -U ${uid}; pgrep -a -u ${uid}`)).stdout.trim();
  /** No process of the uid, seen three times over a second (a hopper between pids shows up). */
  const noneLeft = async (name: string, uid: number, what: string) => {
    for (let i = 0; i < 3; i++) {
      const left = await procsOf(uid);
      assert.equal(left, "", `${what}: processes of uid ${uid} still running:\n${left}`);
      await new Promise((r) => setTimeout(r, 400));
    }
    assert.equal(await sh(`systemctl list-units --no-legend --plain 'tmux-persist-${name}-*.scope' | wc -l`), "0", `${what}: a scope of ${name} is left`);
  };
  const sshAs = (user: string, cmd: string) =>
    spawnSync(
      "ssh",
      [
        "-i",
        path.join(keyDir, user),
        "-p",
        String(h.port),
        "-o",
        `UserKnownHostsFile=${h.knownHostsPath}`,
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
      ].concat(["-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", `${user}@127.0.0.1`, cmd]),
      { encoding: "utf8", env: { ...process.env, SSH_AUTH_SOCK: "" }, timeout: 30_000 },
    );
  const apply = async (u: RosterUser) => {
    const r = await tryRun(accountApplyScript(planUser(u)));
    assert.equal(r.code, 0, `account-apply ${u.name} (${u.state}): ${r.stderr}`);
    return r;
  };

  /** Hoppers in a plain ssh session and in a tmux session restored by tmux-persist. */
  const startHoppers = async (u: RosterUser, n: number) => {
    const s = sshAs(u.name, `for i in $(seq ${n}); do setsid /usr/local/bin/hop </dev/null >/dev/null 2>&1; done; echo started`);
    assert.equal(s.status, 0, `ssh as ${u.name}: ${s.stderr}`);
    await as(u.name, "tmux -u new-session -d -s work -c ~ bash");
    await sh("tmux-persist save");
    await tryRun(`runuser -u ${u.name} -- /usr/bin/tmux kill-server`);
    const r = await tryRun("tmux-persist restore --spawn scope");
    assert.equal(r.code, 0, `restore: ${r.stderr}`);
    await waitFor(`${u.name}'s restored session`, async () => (await tryRun(`runuser -u ${u.name} -- /usr/bin/tmux has-session -t work`)).code === 0);
    await sh(`runuser -u ${u.name} -- /usr/bin/tmux send-keys -t work ${shq(`for i in $(seq ${n}); do /usr/local/bin/hop; done`)} Enter`);
    await waitFor(`${u.name}'s hoppers`, async () => Number(await sh(`pgrep -c -u ${u.uid} -f /usr/local/bin/hop || true`)) >= 1);
    const server = await sh(`runuser -u ${u.name} -- /usr/bin/tmux display-message -p -t work '#{pid}'`);
    assert.match(
      await sh(`cat /proc/${server}/cgroup`),
      new RegExp(`user-${u.uid}\\.slice/tmux-persist-${u.name}-`),
      "the restored server runs in its tmux-persist scope, in the user's slice",
    );
  };

  before(async () => {
    h = await createHost("cut");
    await boot(h);
    await sh(
      "install -d -m 0755 /usr/local/lib/workstations /etc/workstations && install -d -m 0700 /var/lib/workstations && install -d -m 0711 /var/lib/tmux-persist",
    );
    await installAgents(sh);
    for (const u of ["tmux-persist-restore.service", "tmux-persist-save.service", "tmux-persist-save.timer"])
      await sh(`cat > /etc/systemd/system/${u}`, fs.readFileSync(path.join(ROOT, "scripts/units", u), "utf8"));
    await sh("systemctl daemon-reload");
    await sh(preflightScript(["/bin/bash"]));
    await sh(hostLibInstallScript(), hostLibrary().content);
    await sh(`install -d -m 0755 $(dirname ${MIRROR_FILE}) && cat > ${MIRROR_FILE}`, mirrorContent(HOME_INPUTS.claudeMd));
    await sh(`cat > ${LAUNCHER_FILE}`, HOME_INPUTS.startClaude);
    await sh("cat > /usr/local/bin/hop && chmod 0755 /usr/local/bin/hop", HOPPER);
  });
  after(async () => {
    if (h) await destroyHost(h);
  });

  test("planted files: every user-side step warns, exits 0 and leaves them; the cut completes", async () => {
    const u = rosterUser("pia", 2101);
    await apply(u);
    await as(
      "pia",
      "mkdir -p ~/.config/claude-token-renew/vault.json/x ~/.git-credentials && echo mine > ~/.codex && echo mine > ~/.kube && mkfifo ~/start-claude.sh",
    );
    const planted = () =>
      sh(
        "cd /home/pia && find .config/claude-token-renew/vault.json .git-credentials .codex .kube start-claude.sh -printf '%y %m %s %T@ %p\\n' | sort && cat .codex .kube",
      );
    const before = await planted();
    const p = planUser(u);
    // [verb, command, stdin, warns]: kubeconfig-remove has nothing to say when ~/.kube is a file
    const steps: Array<[string, string, string | undefined, boolean]> = [
      ["home-apply", homeApplyScript(p, HOME_INPUTS), undefined, true],
      ["vault-deliver", vaultCredDeliverScript(p), '{"role_id":"r","secret_id":"s"}', true],
      ["git-credentials-deliver", gitCredentialsDeliverScript(p, "http://git.test:3000/"), "http://pia:tok@git.test:3000\n", true],
      ["kubeconfig-deliver", kubeconfigDeliverScript(p), guardedKubeconfig("apiVersion: v1\n"), true],
      ["vault-remove", vaultCredRemoveScript(p), undefined, true],
      ["git-credentials-remove", gitCredentialsRemoveScript(p, "http://git.test:3000/"), undefined, true],
      ["kubeconfig-remove", kubeconfigRemoveScript(p), undefined, false],
    ];
    for (const [verb, cmd, stdin, warns] of steps) {
      const r = await tryRun(cmd, stdin);
      assert.equal(r.code, 0, `${verb} with planted files: exit ${r.code}: ${r.stderr}`);
      if (warns) assert.match(r.stderr, /warning: .*(not a directory|not a regular file)/, `${verb} says what it left alone`);
    }
    assert.equal(await planted(), before, "the planted files are untouched");
    const cut = await tryRun(accountCutScript(p));
    assert.equal(cut.code, 0, cut.stderr);
    assert.equal(await sh("getent shadow pia | cut -d: -f8"), "1", "the account expired");
    assert.equal(await sh("cat /etc/ssh/authorized_keys.d/pia"), "");
  });

  for (const n of [1, 8])
    test(`${n} fork-hopping process(es) in an ssh session and a restored tmux session: gone after suspend, offboard and purge`, async () => {
      const u = rosterUser(`hop${n}`, 2110 + n);
      await apply(u);
      await startHoppers(u, n);
      await apply({ ...u, state: "suspended" });
      await noneLeft(u.name, u.uid, "after suspend");

      await apply(u);
      await startHoppers(u, n);
      const cut = await tryRun(accountCutScript(planUser(u)));
      assert.equal(cut.code, 0, `account-cut: ${cut.stderr}`);
      await noneLeft(u.name, u.uid, "after the offboarding cut");

      await apply(u);
      await startHoppers(u, n);
      const r = await tryRun(
        purgeScript({ name: u.name, uid: u.uid, home: `/home/${u.name}`, purge: { approvedBy: "viktor", approvedOn: "2026-12-01" } } as never),
      );
      assert.equal(r.code, 0, `purge: ${r.stderr}`);
      await noneLeft(u.name, u.uid, "after purge");
    });

  test("the host lock: no user can open it, and nothing a root verb starts as the user holds a root fd", async () => {
    const u = rosterUser("lox", 2120);
    await apply(u);
    assert.equal(await sh(`stat -c '%a %U' $(dirname ${HOST_LOCK_FILE}) ${HOST_LOCK_FILE}`), "700 root\n600 root");
    const hold = await tryRun(`runuser -u lox -- flock -n ${HOST_LOCK_FILE} true`);
    assert.notEqual(hold.code, 0, "a user could open and hold the host lock");
    // a git hook the clone verb runs as the user: records its fds, leaves a child behind
    await sh("git init -q --bare /srv/infra.git && git -C /srv/infra.git symbolic-ref HEAD refs/heads/master");
    await sh(
      "d=$(mktemp -d) && cd $d && git init -q -b master && git -c user.email=a@b -c user.name=a commit -q --allow-empty -m init && git push -q /srv/infra.git master",
    );
    await as("lox", "mkdir -p ~/hooks && git config --global core.hooksPath ~/hooks && git config --global safe.directory '*'");
    await sh(
      "runuser -u lox -- sh -c 'cat > /home/lox/hooks/post-checkout && chmod 0755 /home/lox/hooks/post-checkout'",
      "#!/bin/sh\nls -l /proc/$$/fd > /home/lox/hook-fds\nsetsid sleep 300 </dev/null >/dev/null 2>&1 &\necho $! > /home/lox/hook-child\n",
    );
    const r = await tryRun(cloneScript(planUser(u), "file:///srv/infra.git"));
    assert.equal(r.code, 0, r.stderr);
    const fds = await sh("cat /home/lox/hook-fds");
    assert.doesNotMatch(fds, /workstations/, `the hook held a root fd:\n${fds}`);
    const child = await sh("cat /home/lox/hook-child");
    assert.doesNotMatch(await sh(`ls -l /proc/${child}/fd`), /workstations/);
    const lockHolders = await sh(`for p in $(pgrep -u lox); do ls -l /proc/$p/fd 2>/dev/null | grep -F ${HOST_LOCK_FILE} && echo $p; done; true`);
    assert.equal(lockHolders, "");
  });

  test("an existing account not in the uid ledger is refused (nothing changes) unless adopt: true", async () => {
    await sh("useradd -m -u 2130 -U -s /bin/bash -G users wiz && chmod 0700 /home/wiz");
    const print = () =>
      sh(
        "id wiz; getent shadow wiz | cut -d: -f2-; stat -c '%a' /home/wiz; ls /etc/ssh/authorized_keys.d; ls /etc/sudoers.d; cat /var/lib/workstations/uid-ledger",
      );
    const before = await print();
    const u = rosterUser("wiz", 2130, { role: "admin" });
    const r = await tryRun(accountApplyScript(planUser(u)));
    assert.notEqual(r.code, 0, "a roster entry took over an existing account");
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^error: account wiz \(uid 2130\) already exists on .*not in \/var\/lib\/workstations\/uid-ledger.*adopt: true/);
    assert.equal(await print(), before, "nothing changed");
    await apply({ ...u, adopt: true });
    assert.match(await sh("cat /var/lib/workstations/uid-ledger"), /^2130 wiz$/m);
  });

  test("a forced-command key from the roster runs its command and nothing else; the plain key gives a shell; the cut ends both", async () => {
    const plain = keypair("kit");
    const deploy = keypair("kit-deploy");
    const u = rosterUser("kit", 2132, { sshKeys: [plain.pub, `restrict,command="/usr/bin/id -un" ${deploy.pub}`] });
    await apply(u);
    const ssh = (key: string, cmd: string) =>
      spawnSync(
        "ssh",
        ["-i", path.join(keyDir, key), "-p", String(h.port), "-o", `UserKnownHostsFile=${h.knownHostsPath}`, "-o", "StrictHostKeyChecking=yes"].concat([
          "-o",
          "BatchMode=yes",
          "-o",
          "IdentitiesOnly=yes",
          "-o",
          "ConnectTimeout=10",
          "kit@127.0.0.1",
          cmd,
        ]),
        { encoding: "utf8", env: { ...process.env, SSH_AUTH_SOCK: "" }, timeout: 30_000 },
      );
    assert.equal(ssh("kit", "echo shell-$((6*7))").stdout.trim(), "shell-42", "the plain key gives a shell");
    const forcedRun = ssh("kit-deploy", "echo shell-$((6*7)); cat /etc/hostname");
    assert.equal(forcedRun.status, 0, forcedRun.stderr);
    assert.equal(forcedRun.stdout.trim(), "kit", "the deploy key runs its forced command, never the one asked for");
    assert.match(await sh("cat /etc/ssh/authorized_keys.d/kit"), /^restrict,command="\/usr\/bin\/id -un" ssh-ed25519 /m);
    const cut = await tryRun(accountCutScript(planUser(u)));
    assert.equal(cut.code, 0, cut.stderr);
    assert.notEqual(ssh("kit", "true").status, 0, "no login after the cut");
    assert.notEqual(ssh("kit-deploy", "true").status, 0, "nor with the deploy key");
  });

  test("adopting is additive: other groups, the home's mode, the shell (by what it resolves to) and running processes stay; tighten takes away what the roster does not grant", async () => {
    // the team's admin as their devvm has it: sudo, docker and a team group, home 0700, /usr/bin/bash
    await sh(
      "getent group docker >/dev/null || groupadd -r docker; groupadd -g 3100 team1; groupadd -g 3101 team2; " +
        "useradd -m -u 2131 -U -s /usr/bin/bash -G sudo,docker,team1 ada && chmod 0700 /home/ada",
    );
    await sh("runuser -u ada -- setsid sleep 99999 </dev/null >/dev/null 2>&1 & sleep 1");
    const pid = await sh("pgrep -u ada -x sleep");
    const groups = async () => (await sh("id -nG ada")).split(" ").sort();
    const u = rosterUser("ada", 2131, { adopt: true, groups: ["team2"] });
    const first = await apply(u);
    assert.deepEqual(await groups(), ["ada", "docker", "sudo", "team1", "team2", USERS_GROUP].sort(), first.stdout);
    assert.equal(await sh("stat -c %a /home/ada"), "700", "the home keeps its mode");
    assert.equal(await sh("getent passwd ada | cut -d: -f7"), "/usr/bin/bash", "/usr/bin/bash is /bin/bash: unchanged");
    assert.equal(await sh(`kill -0 ${pid} && echo alive`), "alive", "a running process keeps its pid");
    assert.equal(await sh(`cat ${GRANTED_DIR}/ada`), [USERS_GROUP, "team2"].sort().join("\n"), "only what the program added is recorded");
    assert.match((await apply(u)).stdout, /changes=0$/m, "a second apply changes nothing");
    // the roster stops granting team2: only that goes
    const dropped = await apply({ ...u, groups: [] });
    assert.match(dropped.stdout, /changed: group team2 removed \(this program granted it; the roster no longer does\)/);
    assert.deepEqual(await groups(), ["ada", "docker", "sudo", "team1", USERS_GROUP].sort());
    // tighten: exactly the roster's groups, the home 0750
    const tight = await apply({ ...u, groups: [], tighten: true });
    assert.deepEqual(await groups(), ["ada", USERS_GROUP].sort(), tight.stdout);
    assert.equal(await sh("stat -c %a /home/ada"), "750");
    assert.equal(await sh(`kill -0 ${pid} && echo alive`), "alive");
    await sh(`kill ${pid}`);
  });
});
