/**
 * Taking over the team's devvm as it runs today (issue 21; ../shared/notes/team-devvm.md), end to
 * end under the real engine, every surface on (the nspawn host, Vault, Forgejo on the toolchain's
 * Gitea, Kubernetes on its API server) and the REAL Claude Code CLI in the host:
 *
 * - the fixture: three accounts the program did not create (`wizard`, the admin, in `sudo`,
 *   `docker` and a team group, home 0700, `/bin/zsh`, a forced-command deploy key
 *   `command="sudo -n /usr/local/bin/tl-reconcile",restrict` in `~/.ssh/authorized_keys`; `emo`
 *   with a live tmux server holding a real Claude conversation and a login shell; `nadia`, a
 *   namespace owner), the legacy snapshots and a tombstone, the legacy reconcile timer (which
 *   re-installs its tmux-persist, units and managed settings every period) and the legacy
 *   tmux-persist units enabled, a clone with 75 untracked files and one with a local commit, and
 *   the Kubernetes objects Terraform made;
 * - `roster:import` of the legacy roster and the host's accounts, then `takeover plan` naming
 *   every item; `up`: every live process keeps its pid, each home is byte for byte the same
 *   outside the files the program manages, groups and sudo stay, both keys still work, the
 *   legacy units are masked and do not come back over six of their periods, the token Terraform
 *   made stays; the refresh is not frozen by untracked files; a reboot restores the migrated
 *   sessions (the conversation resumed) and not the tombstoned one; `tighten: true` removes the
 *   group the access diff and the plan named; the rollback brings the legacy setup back.
 *
 * The fixture's reconcile runs every 10 s where the team's runs hourly, so that six of its
 * periods pass in a minute of the test.
 *
 * One suite, two hosts: `takeover.e2e.test.ts` runs it on the bookworm nspawn host (the Claude
 * CLI bound in read-only), `tests/vm/takeover.vm.test.ts` on the trixie VM (the CLI copied in;
 * the machine's loopback services relayed into the VM, dev/testhost reachMachine).
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { planRoster } from "../../components/plan";
import { loadRoster } from "../../components/roster/load";
import { TMUX_PERSIST_PROGRAM } from "../../components/hostContract";
import { changeCollector, E2E, homesFingerprintCommand, PROJECT_DIR, setupE2E, timed, urnName } from "../../dev/e2e";
import { boot, poweroff, run, type HostKind } from "../../dev/testhost/testhost";
import { restoreUnitDone } from "../../dev/testhost/agents";
import { FakeAnthropicMessages, lastUserText } from "../../dev/fakes/anthropic-messages";
import { runToolAgainst } from "../../dev/tools";
import { sleep, waitFor as wait } from "../../dev/wait";
import * as C from "../../dev/claude";
import { diffPlans, formatDiff } from "../../tools/access-diff";

const BIND = "/opt/claude-code";
const claudeSkip = C.claudeSkip();
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

const LEGACY_ROSTER = `users:
  wizard:
    authentik_user: wizard
    tier: admin
    code_layout: single
    claude_auth: true
  emo:
    authentik_user: ebarzin
    tier: power-user
    code_layout: workspace
    claude_auth: true
  nadia:
    authentik_user: nadia
    tier: namespace-owner
    namespaces: [nadia-apps]
`;

/** The team's reconcile (a stand-in with its real effect): every period it re-installs its tmux-persist, units and managed settings. */
const RECONCILE = `#!/bin/bash
set -euo pipefail
install -m 0755 /opt/legacy/tmux-persist /usr/local/bin/tmux-persist
for u in tmux-persist-save.service tmux-persist-save.timer tmux-persist-restore.service; do
  cmp -s /opt/legacy/$u /etc/systemd/system/$u || install -m 0644 /opt/legacy/$u /etc/systemd/system/$u
done
install -d -m 0755 /etc/claude-code
install -m 0644 /opt/legacy/managed-settings.json /etc/claude-code/managed-settings.json
for u in emo nadia; do # the non-admins' launcher
  cmp -s /opt/legacy/start-claude.sh /home/$u/start-claude.sh || install -o $u -g $u -m 0755 /opt/legacy/start-claude.sh /home/$u/start-claude.sh
done
echo "reconciled $(date +%s)" >>/var/log/t3-provision-users.log
`;

function fixtureScript(k: { wizard: string; deploy: string; emo: string; nadia: string }): string {
  return `set -euo pipefail
groupadd -f docker; groupadd -f code-shared
useradd -m -u 3000 -U -s /bin/zsh -G sudo,docker,code-shared wizard && chmod 0700 /home/wizard
useradd -m -u 3001 -U -s /bin/zsh -G docker,plugdev,code-shared emo && chmod 0750 /home/emo
useradd -m -u 3002 -U -s /bin/bash nadia && chmod 0750 /home/nadia
printf '#!/bin/sh\\necho "tl-reconcile ran as $(id -un)"\\n' >/usr/local/bin/tl-reconcile && chmod 0755 /usr/local/bin/tl-reconcile
echo 'wizard ALL=(root) NOPASSWD: /usr/local/bin/tl-reconcile' >/etc/sudoers.d/tl-reconcile && chmod 0440 /etc/sudoers.d/tl-reconcile
keys() { install -d -o "$1" -g "$1" -m 0700 /home/$1/.ssh; cat >/home/$1/.ssh/authorized_keys; chown "$1": /home/$1/.ssh/authorized_keys; chmod 0600 /home/$1/.ssh/authorized_keys; }
printf '%s\\n%s\\n' ${q(k.wizard)} ${q(`command="sudo -n /usr/local/bin/tl-reconcile",restrict ${k.deploy}`)} | keys wizard
printf '%s\\n' ${q(k.emo)} | keys emo
printf '%s\\n' ${q(k.nadia)} | keys nadia
install -d -m 0755 /opt/legacy
printf '#!/bin/bash\\necho "legacy tmux-persist $*"\\n' >/opt/legacy/tmux-persist
printf '[Service]\\nType=oneshot\\nExecStart=/usr/local/bin/tmux-persist save\\n' >/opt/legacy/tmux-persist-save.service
printf '[Timer]\\nOnBootSec=5min\\nOnUnitActiveSec=5min\\n[Install]\\nWantedBy=timers.target\\n' >/opt/legacy/tmux-persist-save.timer
printf '[Service]\\nType=oneshot\\nExecStart=/usr/local/bin/tmux-persist restore\\n[Install]\\nWantedBy=multi-user.target\\n' >/opt/legacy/tmux-persist-restore.service
printf '{"env":{"LEGACY_MANAGED":"1"}}\\n' >/opt/legacy/managed-settings.json
printf '#!/bin/bash\\n# the legacy launcher\\nexec claude --dangerously-skip-permissions "$@"\\n' >/opt/legacy/start-claude.sh
cat >/usr/local/sbin/t3-provision-users <<'EOF'
${RECONCILE}EOF
chmod 0755 /usr/local/sbin/t3-provision-users
printf '[Service]\\nType=oneshot\\nExecStart=/usr/local/sbin/t3-provision-users\\n' >/etc/systemd/system/t3-provision-users.service
printf '[Timer]\\nOnActiveSec=1s\\nOnUnitActiveSec=10s\\nAccuracySec=1s\\n[Install]\\nWantedBy=timers.target\\n' >/etc/systemd/system/t3-provision-users.timer
/usr/local/sbin/t3-provision-users
systemctl daemon-reload
systemctl enable --now t3-provision-users.timer tmux-persist-save.timer
systemctl enable tmux-persist-restore.service
`;
}

export function takeoverSuite(kind: HostKind): void {
  describe(
    `taking over the team's devvm under the real engine (${kind === "vm" ? "trixie VM" : "bookworm nspawn"} host)`,
    { skip: claudeSkip ?? false, timeout: 60 * 60_000 },
    () => {
      let e: E2E;
      let fake: FakeAnthropicMessages;
      let nspawnFile = "";
      let dir = "";
      const k: Record<string, { priv: string; pub: string }> = {};
      const times: Array<[string, number]> = [];
      let roster: { users: Array<Record<string, unknown>> };
      let conversation = { uuid: "", answer: "" };
      let before_: Awaited<ReturnType<typeof snapshot>>;
      let terraformToken = "";
      let gone = "";

      const sh = (cmd: string) => e.sh(cmd);
      // the VM runs under emulation (TCG) here: its waits are longer
      const slow = kind === "vm" ? 4 : 1;
      const waitFor = <T>(what: string, fn: () => Promise<T | null | false | undefined>, timeoutMs = 60_000) => wait(what, fn, timeoutMs * slow, 300, true);
      const asEmo = (cmd: string) => sh(`runuser -u emo -- env -C / PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/home/emo sh -c ${q(cmd)}`);
      const capture = async (s: string) =>
        (await run(e.host, `runuser -u emo -- tmux -u capture-pane -p -J -S -200 -t ${q("=" + s + ":")}`, { check: false })).stdout;
      const step = <T>(label: string, f: () => Promise<T>): Promise<T> => timed(times, label, f);
      const tokenOf = async () => {
        const d = (await e.kube!.request("GET", "/api/v1/namespaces/nadia-apps/secrets/dashboard-nadia-token")).json?.data?.token;
        return d ? Buffer.from(d, "base64").toString("utf8") : "";
      };
      const rosterFile = () => path.join(e.work, "roster.yaml");
      const takeover = (file = rosterFile()) => runToolAgainst(e.host, "takeover", ["plan", "--roster", file, "--kubeconfig", e.kube!.adminKubeconfig]);

      /** pid, session uuid and argv of the claude in emo's session s (through its session files). */
      async function claudeOf(s: string) {
        const r = await run(e.host, `for f in /home/emo/.claude/sessions/*.json; do [ -f "$f" ] && cat "$f" && echo; done`, { check: false });
        for (const line of r.stdout.split("\n").filter(Boolean)) {
          const f = JSON.parse(line);
          if (typeof f.tmux !== "string" || !f.tmux.startsWith(`${s}:`)) continue;
          const alive = await run(e.host, `test -d /proc/${f.pid} && tr '\\0' '\\n' </proc/${f.pid}/cmdline`, { check: false });
          if (alive.code === 0) return { pid: f.pid as number, sessionId: f.sessionId as string, argv: alive.stdout.split("\n").filter(Boolean) };
        }
        return null;
      }

      /** What must not change: the users' processes, their homes, groups and sudo. */
      async function snapshot() {
        return {
          procs: await sh("ps -u wizard,emo,nadia -o pid=,lstart=,args= | sort -n"),
          homes: await sh(homesFingerprintCommand(["wizard", "emo", "nadia"])),
          groups: await sh("for u in wizard emo nadia; do echo \"$u: $(id -Gn $u | tr ' ' '\\n' | sort | tr '\\n' ' ')\"; done"),
          sudo: await sh("sudo -l -U wizard | sed -n '/may run/,$p'"),
          modes: await sh("stat -c '%n %a %U:%G' /home/wizard /home/emo /home/nadia; getent passwd wizard emo nadia"),
        };
      }

      before(async () => {
        const t0 = Date.now();
        const claude = C.requireClaude(); // under CI=true a missing binary fails here
        fake = await new FakeAnthropicMessages().start();
        e = await setupE2E(
          `takeover-${kind}`,
          { version: 1, users: [] },
          {
            kind,
            reachMachine: { extraPorts: [Number(new URL(fake.url).port)] },
            beforeBoot: (h) => {
              if (h.kind !== "nspawn") return;
              // systemd-nspawn reads /run/systemd/nspawn/<machine>.nspawn (trusted) at every boot
              nspawnFile = `/run/systemd/nspawn/${h.machine}.nspawn`;
              fs.mkdirSync(path.dirname(nspawnFile), { recursive: true });
              fs.writeFileSync(nspawnFile, `[Files]\nBindReadOnly=${claude}:${BIND}\n`);
            },
          },
        );
        if (kind === "vm")
          await step("the Claude CLI copied into the VM", async () => {
            const tar = spawnSync("tar", ["-C", claude, "-cf", "-", "node_modules"], { maxBuffer: 1 << 30 });
            assert.equal(tar.status, 0, String(tar.stderr));
            await run(e.host, `install -d -m 0755 ${BIND} && tar -C ${BIND} -xf -`, { stdin: tar.stdout, timeoutMs: 600_000 });
          });
        dir = path.join(e.dir, "takeover");
        fs.mkdirSync(dir, { recursive: true });
        for (const n of ["wizard", "deploy", "emo", "nadia"]) k[n] = e.keypair(n);
        times.push(["set-up: host boot, Vault, Gitea, kube-apiserver, stack", Date.now() - t0]);
        await step("fixture: accounts, keys, legacy units", () =>
          sh(fixtureScript({ wizard: k.wizard.pub, deploy: k.deploy.pub, emo: k.emo.pub, nadia: k.nadia.pub })),
        );
        await step("fixture: clones", () => fixtureClones());
        await step("fixture: Kubernetes objects", () => fixtureKube());
        await step("fixture: emo's live sessions with the real Claude", () => fixtureSessions());
        await step("fixture: legacy snapshots and a tombstone", () => fixtureSnapshots());
      });

      async function fixtureClones() {
        const f = e.forgejo!;
        const url = `${f.url}${f.repo.owner}/${f.repo.name}.git`;
        const auth = Buffer.from(`${f.adminUser}:${f.adminPassword}`).toString("base64");
        const git = (user: string, args: string) =>
          sh(`runuser -u ${user} -- env -C /home/${user} HOME=/home/${user} git -c user.name=${user} -c user.email=${user}@corp.example ${args}`);
        // the team's clones: credentials from ~/.git-credentials (the program delivers it), never in the URL
        await git("wizard", `-c http.extraHeader=${q(`Authorization: Basic ${auth}`)} clone --quiet ${url} code`);
        await git("wizard", "-C code config credential.helper store");
        await sh("cd /home/wizard/code && for i in $(seq 75); do echo $i >scratch-$i.txt; done && chown wizard: scratch-*.txt");
        await sh("install -d -o emo -g emo /home/emo/code");
        await git("emo", `-c http.extraHeader=${q(`Authorization: Basic ${auth}`)} clone --quiet ${url} code/infra`);
        await git("emo", "-C code/infra config credential.helper store");
        await sh("echo local >/home/emo/code/infra/LOCAL.md && chown emo: /home/emo/code/infra/LOCAL.md");
        await git("emo", "-C code/infra add LOCAL.md");
        await git("emo", "-C code/infra commit --quiet -m 'a local commit'");
      }

      async function fixtureKube() {
        const kube = e.kube!;
        const TF_LABELS = { "app.kubernetes.io/managed-by": "Terraform" };
        const create = async (apiPath: string, body: object) => {
          const r = await kube.request("POST", `${apiPath}?fieldManager=Terraform`, { body });
          assert.equal(r.status, 201, `${apiPath}: ${JSON.stringify(r.json).slice(0, 300)}`);
        };
        await create("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
          metadata: { name: "dashboard-nav-readonly", labels: TF_LABELS },
          rules: [{ apiGroups: [""], resources: ["namespaces", "nodes"], verbs: ["get", "list", "watch"] }],
        });
        await create("/api/v1/namespaces", { metadata: { name: "nadia-apps", labels: TF_LABELS } });
        await create("/api/v1/namespaces/nadia-apps/serviceaccounts", { metadata: { name: "dashboard-nadia", labels: TF_LABELS } });
        await create("/api/v1/namespaces/nadia-apps/secrets", {
          metadata: { name: "dashboard-nadia-token", labels: TF_LABELS, annotations: { "kubernetes.io/service-account.name": "dashboard-nadia" } },
          type: "kubernetes.io/service-account-token",
        });
        terraformToken = await waitFor("the tokens controller to fill Terraform's token", async () => (await tokenOf()) || false);
      }

      async function fixtureSessions() {
        await sh(`ln -sfn ${BIND}/node_modules/.bin/claude /usr/local/bin/claude`);
        await sh("install -d -o emo -g emo /home/emo/proj");
        const cfg = {
          hasCompletedOnboarding: true,
          customApiKeyResponses: { approved: [C.FAKE_KEY.slice(-20)], rejected: [] },
          projects: { "/home/emo/proj": { hasTrustDialogAccepted: true } },
        };
        const put = (file: string, text: string) =>
          run(e.host, `cat > ${file} && chown emo: ${file} && chmod 0600 ${file}`, { stdin: text }).then(() => undefined);
        await put("/home/emo/.claude.json", JSON.stringify(cfg));
        await sh("install -d -m 0700 -o emo -g emo /home/emo/.claude");
        await put("/home/emo/.claude/settings.json", JSON.stringify({ env: C.offlineEnv(fake.url) }));
        // the team's sessions: a tmux server of emo's in its own scope, one Claude and one login shell
        await sh(
          `systemd-run --scope --quiet --unit=team-emo-tmux.scope -- runuser -u emo -- env -C / PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/home/emo SHELL=/bin/zsh tmux -u new-session -d -s main -x 200 -y 50 -c /home/emo/proj claude`,
        );
        await asEmo("tmux -u new-session -d -s shell -c /home/emo");
        await waitFor("claude's prompt in main", async () => /Claude Code v2\.1\.332/.test(await capture("main")) && /^❯\s*$/m.test(await capture("main")));
        const text = "takeover conversation one";
        await asEmo(`tmux -u send-keys -t '=main:' -l ${q(text)}`);
        await sleep(300);
        await asEmo("tmux -u send-keys -t '=main:' Enter");
        const rec = await waitFor("the fake to get main's message", async () => fake.messages.find((r) => lastUserText(r.body) === text && r.answer));
        await waitFor("the answer on main's screen", async () => (await capture("main")).includes(rec.answer!));
        const c = await waitFor("main's claude", () => claudeOf("main"));
        conversation = { uuid: c.sessionId, answer: rec.answer! };
        await sleep(1500); // claude's last status write after the answer
      }

      async function fixtureSnapshots() {
        const stamp = (msAgo: number) => new Date(Date.now() - msAgo).toISOString().replace(/[-:]/g, "").slice(0, 15);
        gone = "0b4f6c1e-58a2-4c3e-9d7a-2f1e5c6b7a80";
        const older = stamp(2 * 3600_000);
        const newest = stamp(10 * 60_000);
        await sh(
          [
            "install -d -m 0700 /var/lib/tmux-persist /var/lib/tmux-persist/snapshots /var/lib/tmux-persist/snapshots/emo",
            `printf 'main\\t/home/emo/proj\\t${conversation.uuid}\\n' >/var/lib/tmux-persist/snapshots/emo/${older}.tsv`,
            `printf 'main\\t/home/emo/proj\\t${conversation.uuid}\\nshell\\t/home/emo\\t-\\ngone\\t/home/emo\\t${gone}\\n' >/var/lib/tmux-persist/snapshots/emo/${newest}.tsv`,
            "chmod 0600 /var/lib/tmux-persist/snapshots/emo/*.tsv",
            `ln -sfn snapshots/emo/${newest}.tsv /var/lib/tmux-persist/emo.tsv`,
            // killed on purpose five minutes ago, after the newest snapshot
            `printf 'gone\\t%s\\n' $(( $(date +%s) - 300 )) >/var/lib/tmux-persist/emo.forgotten.tsv`,
          ].join(" && "),
        );
      }

      /** A copy of what roster:import reads at the host's root: passwd, group, each home's authorized_keys, the names on sshd's PATH. */
      async function copyOfHostRoot(): Promise<string> {
        const root = path.join(dir, "root");
        fs.rmSync(root, { recursive: true, force: true });
        const tarOut = await run(e.host, "tar -C / -cf - etc/passwd etc/group $(cd / && ls -d home/*/.ssh/authorized_keys 2>/dev/null) | base64 -w0");
        fs.mkdirSync(root, { recursive: true });
        const x = spawnSync("tar", ["-C", root, "-xf", "-"], { input: Buffer.from(tarOut.stdout.trim(), "base64") });
        assert.equal(x.status, 0, String(x.stderr));
        for (const d of ["usr/local/bin", "usr/bin", "bin"]) {
          fs.mkdirSync(path.join(root, d), { recursive: true });
          for (const n of (await sh(`ls -1 /${d}`)).split("\n").filter(Boolean)) fs.writeFileSync(path.join(root, d, n), "");
        }
        return root;
      }

      after(async () => {
        console.log("# takeover step times:");
        for (const [label, ms] of times) console.log(`#   ${label}: ${(ms / 1000).toFixed(1)} s`);
        if (e) await e.stop();
        if (nspawnFile) fs.rmSync(nspawnFile, { force: true });
        await fake?.stop();
      });

      test("before: the reconcile flip-flops the legacy files every period; the deploy key runs its one command", async () => {
        await sh("rm -f /usr/local/bin/tmux-persist");
        await waitFor(
          "the legacy reconcile to put its tmux-persist back",
          async () => (await sh("test -f /usr/local/bin/tmux-persist && echo yes || echo no")) === "yes",
          30_000,
        );
        assert.equal(e.sshAs("wizard", k.deploy.priv, "id -un").out, "tl-reconcile ran as root");
        assert.equal(e.sshAs("wizard", k.wizard.priv).out, "wizard");
        assert.equal(e.sshAs("emo", k.emo.priv).out, "emo");
      });

      test("roster:import of the legacy roster and the host's accounts: every entry adopted, the deploy key carried over", async () => {
        // run at the host's root (nspawn: its tree; the VM: a copy of its /etc, keys and sshd's PATH)
        const hostRoot = kind === "nspawn" ? e.host.rootfs : await copyOfHostRoot();
        fs.writeFileSync(path.join(dir, "legacy.yaml"), LEGACY_ROSTER);
        const r = runTool("roster-import", [path.join(dir, "legacy.yaml"), "--root", hostRoot, "--email-domain", "corp.example"]);
        assert.equal(r.status, 0, r.stderr);
        roster = YAML.parse(r.stdout);
        const by = Object.fromEntries(roster.users.map((u) => [u.name as string, u]));
        assert.deepEqual(Object.keys(by).sort(), ["emo", "nadia", "wizard"]);
        for (const u of roster.users) assert.equal(u.adopt, true, `${u.name}`);
        assert.deepEqual(by.wizard.sshKeys, [k.wizard.pub, `restrict,command="/usr/bin/sudo -n /usr/local/bin/tl-reconcile" ${k.deploy.pub}`]);
        assert.match(r.stderr, /^roster-import: wizard: keeps docker, sudo as the host has them/m);
        assert.match(r.stderr, /^roster-import: emo: keeps docker as the host has them/m);
        // what the admin adds by hand: emo pushes to master, as in the team's Forgejo
        by.emo.overrides = { ...(by.emo.overrides as object), pushWhitelist: true };
        e.writeRoster(roster);
      });

      test("takeover plan names each account, what stays, the keys, the migration, the clones, the legacy pieces and the cluster's objects; nothing blocks", () => {
        const r = takeover();
        assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
        const out = r.stdout;
        for (const want of [
          /^ {2}wizard: adopt: uid 3000, password state and running processes stay, home mode 700 stays$/m,
          /^ {2}wizard: leave alone: keeps docker, sudo \(not granted by the program\)$/m,
          /^ {2}wizard: leave alone: login shell \/bin\/zsh \(the same program as \/usr\/bin\/zsh\)$/m,
          /^ {2}wizard: change: sshd stops reading ~\/\.ssh\/authorized_keys \(2 lines\); the roster's 2 keys go to/m,
          /^ {2}wizard: leave alone: ~\/code is a clone already/m,
          /^ {2}emo: adopt: uid 3001, password state and running processes stay, home mode 750 stays$/m,
          /^ {2}emo: leave alone: keeps docker \(not granted by the program\)$/m,
          /^ {2}emo: migrate: 2 legacy snapshots into tmux-persist's store .*its 1 tombstones are read where they are$/m,
          /^ {2}emo: leave alone: ~\/code\/infra is a clone already$/m,
          /^ {2}nadia: adopt: uid 3002/m,
          /^ {2}host: retire: the legacy reconcile t3-provision-users\.timer \(enabled\/active\)/m,
          /^ {2}host: retire: the legacy tmux-persist \(\/usr\/local\/bin\/tmux-persist\)/m,
          /^ {2}host: retire: \/etc\/claude-code\/managed-settings\.json \(not the program's\) moved to/m,
          /adopt: ClusterRole dashboard-nav-readonly exists/,
          /nadia: adopt: Namespace nadia-apps exists/,
          /nadia: adopt: ServiceAccount nadia-apps\/dashboard-nadia exists/,
          /nadia: adopt: Secret nadia-apps\/dashboard-nadia-token exists: its token stays valid/,
        ])
          assert.match(out, want, out);
        assert.doesNotMatch(out, /^blocked/m, out);
      });

      test("up: every process keeps its pid, homes are byte for byte the same outside the managed files, groups, sudo and both keys stay", async () => {
        await sleep(12_000); // the user managers of the logins above stop (systemd's UserStopDelaySec, 10 s)
        before_ = await snapshot();
        const c = changeCollector();
        const r = await step("first up + no-op up", () => e.converge({ onEvent: c.onEvent }));
        // what the first up on a taken-over host does, resource by resource (the note's list)
        console.log(`# the first up: ${c.changed.map((x) => `${x.op} ${urnName(x.urn)}`).join(", ")}`);
        assert.equal(r.up.summary.result, "succeeded");
        const now = await snapshot();
        // the program starts what it grants (the users' systemd managers, their timers): new
        // processes are fine; every process that ran before runs still, with its pid and start time
        const procs = now.procs.split("\n");
        for (const p of before_.procs.split("\n")) assert.ok(procs.includes(p), `still running: ${p}\nnow:\n${now.procs}`);
        assert.equal(now.modes, before_.modes, "homes' modes and owners, uids and shells");
        const sudo = now.sudo.split("\n").map((l) => l.trim());
        for (const l of before_.sudo.split("\n")) assert.ok(sudo.includes(l.trim()), `sudo -l keeps: ${l}\n${now.sudo}`);
        // groups: each kept; the only ones added are the program's own
        const groupsOf = (t: string) => Object.fromEntries(t.split("\n").map((l) => [l.split(":")[0], l.split(":")[1].trim().split(" ")]));
        const [g0, g1] = [groupsOf(before_.groups), groupsOf(now.groups)];
        for (const u of Object.keys(g0)) {
          for (const g of g0[u]) assert.ok(g1[u].includes(g), `${u} keeps ${g}: ${g1[u].join(" ")}`);
          for (const g of g1[u].filter((x) => !g0[u].includes(x))) assert.match(g, /^workstation/, `${u} gained ${g}`);
        }
        // homes: what existed is the same; what is new or changed is a file the program manages
        // (README "Taking over a host": the Vault credential, kubeconfig, git credentials, launcher,
        // token file, the shared rules and skills links, ~/.claude/settings.json and the Codex
        // AGENTS.md when absent, and a clone where there was none)
        const MANAGED =
          /^(wizard|emo|nadia)\/(\.config|\.config\/claude-token-renew(\/.*)?|\.kube|\.kube\/config|\.git-credentials|start-claude\.sh|\.claude-oauth-token|\.claude|\.claude\/(rules|skills)|\.codex)$/;
        const CREATED_WHEN_ABSENT = /^(wizard|emo|nadia)\/(\.claude\/settings\.json|\.codex\/AGENTS\.md|start-claude\.sh\.before-workstations)$/;
        const entries = (t: string) => new Map(t.split("\n").map((l) => [l.split("\t")[0], l]));
        const [h0, h1] = [entries(before_.homes), entries(now.homes)];
        const differs = [...new Set([...h0.keys(), ...h1.keys()])].filter((p) => h0.get(p) !== h1.get(p));
        const newClone = (p: string) => /^(wizard|emo|nadia)\/code(\/|$)/.test(p) && !h0.has(p.split("/").slice(0, 2).join("/"));
        const outside = differs.filter((p) => !MANAGED.test(p) && !newClone(p) && !(CREATED_WHEN_ABSENT.test(p) && !h0.has(p)));
        assert.ok(h0.has("emo/.claude/settings.json"), "emo's own settings.json was there (and must stay as it was)");
        assert.deepEqual(
          outside,
          [],
          `changed outside the managed files:\n${outside.map((p) => `- ${h0.get(p) ?? "(none)"}\n+ ${h1.get(p) ?? "(gone)"}`).join("\n")}`,
        );
        assert.ok(h0.get("wizard/code/scratch-75.txt"), "the untracked files were there");
        // the legacy launcher is kept beside ours, byte for byte; the legacy managed settings are in the legacy folder
        for (const u of ["emo", "nadia"]) {
          assert.equal(
            h1.get(`${u}/start-claude.sh.before-workstations`)?.split("\t").slice(1, 4).join(" "),
            h0.get(`${u}/start-claude.sh`)?.split("\t").slice(1, 4).join(" "),
          );
          assert.equal(await sh(`sha256sum </home/${u}/start-claude.sh.before-workstations`), await sh("sha256sum </opt/legacy/start-claude.sh"));
        }
        assert.equal(await sh("cat /var/lib/workstations/legacy/20*Z/etc/claude-code/managed-settings.json"), '{"env":{"LEGACY_MANAGED":"1"}}');
        // both keys, through the roster's authorized_keys.d now
        assert.equal(e.sshAs("wizard", k.deploy.priv, "id -un").out, "tl-reconcile ran as root", "the forced-command key still runs its one command");
        assert.equal(e.sshAs("wizard", k.wizard.priv).out, "wizard");
        assert.equal(e.sshAs("emo", k.emo.priv).out, "emo");
        assert.equal(await tokenOf(), terraformToken, "the token Terraform made stays");
        assert.match(await sh("workstations-heal --check; echo rc=$?"), /^no drift \(\d+ records\)\s+rc=0\s*$/m);
      });

      test("the legacy units are masked and stay so over six of the reconcile's periods; nothing legacy comes back", async () => {
        for (const u of ["t3-provision-users.timer", "t3-provision-users.service"]) assert.equal(await sh(`systemctl is-enabled ${u} || true`), "masked", u);
        assert.equal(await sh("systemctl is-active t3-provision-users.timer || true"), "inactive");
        const ours = async () =>
          sh(`readlink /usr/local/bin/tmux-persist; sha256sum /etc/claude-code/managed-settings.json /etc/systemd/system/tmux-persist-*`);
        const runs = async () => sh("wc -l </var/log/t3-provision-users.log");
        const [o0, n0] = [await ours(), await runs()];
        assert.match(o0, new RegExp(`^${TMUX_PERSIST_PROGRAM}$`, "m"));
        await step("six reconcile periods", () => sleep(62_000 * (kind === "vm" ? 2 : 1)));
        await sh("systemctl start workstations-heal.service tmux-persist-save.service");
        assert.equal(await runs(), n0, "the reconcile did not run again");
        assert.equal(await ours(), o0, "the program's tmux-persist, units and managed settings are still the program's");
        assert.match(await sh("systemctl start t3-provision-users.service 2>&1 || true"), /masked/);
        assert.match(
          await sh("ls /var/lib/tmux-persist/emo/"),
          /snap-\d{8}T\d{6}\.\d{3}Z-legacy\.json\nsnap-\d{8}T\d{6}\.\d{3}Z-legacy\.json/,
          "both legacy snapshots migrated",
        );
      });

      test("the clone refresh: 75 untracked files do not freeze it; a local commit stays", async () => {
        // a teammate's push to master (emo's, with the token the program delivered; master is protected)
        const f = e.forgejo!;
        const token = /\/\/[^:/]+:([^@]+)@/.exec(await sh("cat /home/emo/.git-credentials"))?.[1];
        assert.ok(token, "emo's delivered Forgejo token");
        const auth = Buffer.from(`ebarzin:${token}`).toString("base64");
        await sh(
          `d=$(mktemp -d) && cd $d && git -c http.extraHeader=${q(`Authorization: Basic ${auth}`)} clone --quiet ${f.url}${f.repo.owner}/${f.repo.name}.git r && cd r && echo upstream >UPSTREAM.md && git add UPSTREAM.md && git -c user.name=emo -c user.email=emo@corp.example commit --quiet -m 'an upstream change' && git -c http.extraHeader=${q(`Authorization: Basic ${auth}`)} push --quiet origin master && cd / && rm -rf $d`,
        );
        const emoHead = await sh("runuser -u emo -- git -C /home/emo/code/infra rev-parse HEAD");
        await sh("systemctl start workstations-refresh-clone@wizard.service workstations-refresh-clone@emo.service");
        assert.equal(await sh("runuser -u wizard -- git -C /home/wizard/code log -1 --format=%s"), "an upstream change", "wizard's clone fast-forwarded");
        assert.equal(await sh("ls /home/wizard/code/scratch-*.txt | wc -l"), "75", "the untracked files stay");
        assert.equal(await sh("runuser -u emo -- git -C /home/emo/code/infra rev-parse HEAD"), emoHead, "emo's local commit stays (diverged: left alone)");
      });

      test("a reboot restores the migrated sessions, the conversation resumed, and not the tombstoned one", async () => {
        await step("reboot", async () => {
          await poweroff(e.host);
          await boot(e.host);
        });
        await waitFor("restore unit done", () => restoreUnitDone(e.host), 180_000);
        await waitFor("main: the earlier conversation on screen", async () => (await capture("main")).includes(conversation.answer), 90_000);
        const c = await waitFor("main's resumed claude", () => claudeOf("main"));
        assert.equal(c.sessionId, conversation.uuid);
        assert.equal(c.argv[c.argv.indexOf("--resume") + 1], conversation.uuid, c.argv.join(" "));
        const sessions = (await asEmo("tmux -u list-sessions -F '#{session_name}'")).split("\n").sort();
        assert.deepEqual(sessions, ["main", "shell"], "main and shell back; gone was killed on purpose");
      });

      test("tighten: true on emo: the access diff and the plan name what goes; up removes exactly that", async () => {
        const baseFile = path.join(dir, "base.yaml");
        fs.copyFileSync(rosterFile(), baseFile);
        const emo = roster.users.find((u) => u.name === "emo")!;
        emo.tighten = true;
        e.writeRoster(roster);
        const diff = formatDiff(diffPlans(planRoster(loadRoster(baseFile)), planRoster(loadRoster(rosterFile()))));
        assert.match(
          diff,
          /tighten: the adopted account emo loses every supplementary group the roster does not name \(it keeps code-shared, plugdev, workstation-users\)/,
          diff,
        );
        const plan = takeover();
        assert.match(diff, /`npm run takeover -- plan` lists them/, diff);
        // the plan reads them from the host: emo is managed already (adopted by the first up)
        assert.match(
          plan.stdout,
          /^ {2}emo: managed already \(in the uid ledger\): the usual update\n {2}emo: change \(tighten\): leaves docker\n {2}(?!emo: change \(tighten\))/m,
          plan.stdout,
        );
        assert.match(plan.stdout, /^ {2}wizard: leave alone: keeps docker, sudo \(not granted by the program\)$/m, plan.stdout);
        await step("tighten up + no-op up", () => e.converge());
        const groups = (await sh("id -Gn emo")).split(" ");
        assert.ok(!groups.includes("docker"), `emo left docker: ${groups.join(" ")}`);
        for (const g of ["emo", "code-shared", "plugdev"]) assert.ok(groups.includes(g), `emo keeps ${g}: ${groups.join(" ")}`);
        assert.match(await sh("id -Gn wizard"), /\bdocker\b/, "wizard, not tightened, keeps docker");
      });

      test("the rollback brings the legacy setup back: the reconcile runs again and re-installs its pieces", async () => {
        const rb = await sh("workstations-legacy-rollback");
        assert.match(rb, /^unmasked t3-provision-users\.timer$/m, rb);
        assert.match(rb, /^restored \/usr\/local\/bin\/tmux-persist$/m, rb);
        assert.match(rb, /^restored \/etc\/claude-code\/managed-settings\.json$/m, rb);
        assert.equal(await sh("systemctl is-enabled t3-provision-users.timer"), "enabled");
        assert.equal(await sh("systemctl is-active t3-provision-users.timer"), "active");
        const n = Number(await sh("wc -l </var/log/t3-provision-users.log"));
        await waitFor("the reconcile to run again", async () => Number(await sh("wc -l </var/log/t3-provision-users.log")) > n, 30_000);
        assert.equal(await sh("cat /usr/local/bin/tmux-persist"), await sh("cat /opt/legacy/tmux-persist"));
        assert.equal(await sh("cat /etc/claude-code/managed-settings.json"), '{"env":{"LEGACY_MANAGED":"1"}}');
      });
    },
  );
}

function runTool(tool: string, args: string[]) {
  return spawnSync(process.execPath, ["--require", "ts-node/register/transpile-only", `tools/${tool}.ts`, ...args], { cwd: PROJECT_DIR, encoding: "utf8" });
}
