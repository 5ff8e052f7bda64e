/**
 * `npm run takeover -- plan` (tools/takeover.ts, issue 21 item 4) against a booted nspawn host
 * dressed as the team's devvm (../shared/notes/team-devvm.md): an admin not in the uid ledger
 * in `sudo`, `docker` and a team group with home 0700 and `/usr/bin/bash`, two lines in their
 * `~/.ssh/authorized_keys`; an existing account the roster does not adopt; a user whose
 * authorized_keys is a link to /etc/shadow; the legacy reconcile timer enabled; the legacy
 * tmux-persist and its store. The plan names each item; the probe changes nothing on the host
 * and never reads a file with root's rights on a user's behalf; a wrong host key is refused.
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { legacyRetireScript } from "../../components/scripts/legacy";
import { ed25519Key } from "../../dev/sshkeys";
import { runToolAgainst } from "../../dev/tools";
import { boot, createHost, destroyHost, run, type TestHost } from "../../dev/testhost/testhost";
import { tempDir } from "../../dev/tmp";

const ROOT = path.resolve(__dirname, "..", "..");
let h: TestHost;
let dir: string;
const sh = async (cmd: string) => (await run(h, cmd)).stdout;

const FIXTURE = `set -euo pipefail
groupadd -f docker; groupadd -f code-shared
useradd -m -u 3000 -s /usr/bin/bash -G sudo,docker,code-shared wizard && chmod 0700 /home/wizard
install -d -o wizard -g wizard -m 0700 /home/wizard/.ssh
printf '%s\\n%s\\n' "${ed25519Key("wizard@laptop")}" 'command="sudo -n /usr/local/bin/tl-reconcile",restrict ${ed25519Key("deploy")}' >/home/wizard/.ssh/authorized_keys
chown wizard: /home/wizard/.ssh/authorized_keys
useradd -m -u 3001 -s /bin/bash sneaky
useradd -m -u 3002 -s /bin/bash mallory
install -d -o mallory -g mallory -m 0700 /home/mallory/.ssh && ln -s /etc/shadow /home/mallory/.ssh/authorized_keys
printf '[Service]\\nType=oneshot\\nExecStart=/bin/true\\n' >/etc/systemd/system/t3-provision-users.service
printf '[Timer]\\nOnCalendar=hourly\\n[Install]\\nWantedBy=timers.target\\n' >/etc/systemd/system/t3-provision-users.timer
systemctl daemon-reload && systemctl enable --now t3-provision-users.timer
printf '#!/bin/bash\\necho legacy\\n' >/usr/local/bin/tmux-persist && chmod 0755 /usr/local/bin/tmux-persist
install -d /etc/claude-code && printf '{"env":{"LEGACY":"1"}}\\n' >/etc/claude-code/managed-settings.json
install -d -m 0700 /var/lib/tmux-persist/snapshots/wizard
printf 'main\\t/home/wizard\\t-\\n' >/var/lib/tmux-persist/snapshots/wizard/20261201T000000.tsv
printf 'main\\t/home/wizard\\t-\\n' >/var/lib/tmux-persist/snapshots/wizard/20261202T000000.tsv
printf 'old\\t1764547200\\n' >/var/lib/tmux-persist/wizard.forgotten.tsv
`;

const ROSTER = `version: 1
users:
  - {name: wizard, uid: 3000, role: admin, email: wizard@x.io, forgejo: wizard, groups: [code-shared], adopt: true, sshKeys: ["${ed25519Key("wizard@laptop")}"]}
  - {name: sneaky, uid: 3001, role: power-user, email: s@x.io, forgejo: sneaky}
  - {name: mallory, uid: 3002, role: power-user, email: m@x.io, forgejo: mallory, adopt: true}
  - {name: newbie, uid: 3003, role: power-user, email: n@x.io, forgejo: newbie}
`;

/** Everything a probe could touch: it must be the same after. */
const STATE =
  "sha256sum /etc/passwd /etc/group /etc/shadow /etc/gshadow; ls -la --time-style=full-iso /home/* /home/*/.ssh /var/lib/tmux-persist /var/lib/workstations 2>&1; systemctl is-enabled t3-provision-users.timer";

before(
  async () => {
    h = await createHost("takeover");
    await boot(h);
    await sh(FIXTURE);
    dir = tempDir("ws-takeover-test-");
    fs.writeFileSync(path.join(dir, "roster.yaml"), ROSTER);
  },
  { timeout: 300_000 },
);
after(async () => {
  if (h) await destroyHost(h);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const takeover = (hostKey = h.hostKey) => runToolAgainst(h, "takeover", ["plan", "--roster", path.join(dir, "roster.yaml")], hostKey);

test("the plan of the team's devvm names each account, the legacy pieces and the blockers; the host is unchanged", async () => {
  const before_ = await sh(STATE);
  const r = takeover();
  assert.equal(r.status, 1, `${r.stdout}\n${r.stderr}`);
  const out = r.stdout;
  for (const want of [
    /^ {2}wizard: adopt: uid 3000, password state and running processes stay, home mode 700 stays$/m,
    /^ {2}wizard: leave alone: keeps docker, sudo \(not granted by the program\)$/m,
    /^ {2}wizard: leave alone: login shell \/usr\/bin\/bash \(the same program as \/bin\/bash\)$/m,
    /^ {2}wizard: change: sshd stops reading ~\/\.ssh\/authorized_keys \(2 lines\); the roster's 1 keys go to/m,
    /^ {2}wizard: migrate: 2 legacy snapshots into tmux-persist's store .*its 1 tombstones are read where they are$/m,
    /^ {2}newbie: create: a new account, uid 3003/m,
    /^ {2}sneaky: the account exists and this program did not create it: add `adopt: true`/m,
    /^ {2}host: retire: the legacy reconcile t3-provision-users\.timer \(enabled\/active\)/m,
    /^ {2}host: retire: the legacy tmux-persist \(\/usr\/local\/bin\/tmux-persist\)/m,
    /^ {2}host: retire: \/etc\/claude-code\/managed-settings\.json \(not the program's\) moved to/m,
  ])
    assert.match(out, want);
  assert.ok(out.indexOf("blocked (1):") > out.indexOf("wizard: adopt"), "the blockers come after the plan");
  // mallory's link to /etc/shadow was followed with mallory's rights: nothing counted, nothing shown
  assert.doesNotMatch(out, /mallory: change: sshd stops/);
  assert.doesNotMatch(out + r.stderr, /root:[$*!]/, "no line of /etc/shadow");
  assert.equal(await sh(STATE), before_, "the probe changed nothing");
});

test("a host key that is not the host's: refused before anything is read, exit 2", () => {
  const r = takeover(ed25519Key("impostor").split(" ").slice(0, 2).join(" "));
  assert.equal(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /^takeover: reading root@127\.0\.0\.1:[0-9]+ failed .*Host key verification failed/m);
  assert.equal(r.stdout, "");
});

/** The legacy files and their content (sha256), and the reconcile timer's state. */
const LEGACY_STATE =
  "sha256sum /usr/local/bin/tmux-persist /etc/systemd/system/t3-provision-users.timer /etc/systemd/system/t3-provision-users.service /etc/claude-code/managed-settings.json; systemctl is-enabled t3-provision-users.timer || true; systemctl is-active t3-provision-users.timer || true";

test("the first up's legacy step: the reconcile stopped, moved aside and masked, the legacy tmux-persist moved aside, nothing deleted; twice changes nothing; the rollback puts it all back", async () => {
  const legacyBefore = await sh(LEGACY_STATE);
  assert.match(legacyBefore, /^enabled\nactive\n$/m);
  const first = await run(h, legacyRetireScript());
  assert.match(first.stdout, /legacy changes=[1-9]/, first.stdout + first.stderr);
  const folder = (await sh("ls -d /var/lib/workstations/legacy/20*Z")).trim();
  assert.match(folder, /^\/var\/lib\/workstations\/legacy\/[0-9]{8}T[0-9]{6}Z$/);
  assert.equal((await sh("stat -c %a /var/lib/workstations/legacy " + folder)).trim(), "700\n700");
  assert.equal((await sh("systemctl is-enabled t3-provision-users.timer || true")).trim(), "masked");
  assert.equal((await sh("systemctl is-active t3-provision-users.timer || true")).trim(), "inactive");
  assert.equal((await sh("test -e /usr/local/bin/tmux-persist && echo there || echo gone")).trim(), "gone");
  // moved, byte for byte
  const moved = await sh(
    `cd ${folder} && sha256sum usr/local/bin/tmux-persist etc/systemd/system/t3-provision-users.timer etc/systemd/system/t3-provision-users.service etc/claude-code/managed-settings.json`,
  );
  const sums = (t: string) =>
    t
      .split("\n")
      .filter((l) => /^[0-9a-f]{64} /.test(l))
      .map((l) => l.split(/\s+/)[0]);
  assert.deepEqual(sums(moved), sums(legacyBefore));
  const manifest = await sh(`cat ${folder}/MANIFEST`);
  assert.match(manifest, /^unit t3-provision-users\.timer enabled active$/m);
  assert.match(manifest, /^masked t3-provision-users\.timer$/m);
  assert.match(manifest, /^file \/usr\/local\/bin\/tmux-persist$/m);
  assert.match(manifest, /^file \/etc\/claude-code\/managed-settings\.json$/m);
  assert.equal((await sh("test -e /etc/claude-code/managed-settings.json && echo there || echo gone")).trim(), "gone");
  const second = await run(h, legacyRetireScript());
  assert.match(second.stdout, /legacy changes=0$/m, "a second run changes nothing");
  assert.equal((await sh("ls -d /var/lib/workstations/legacy/20*Z")).trim(), folder, "and makes no new folder");
  // the takeover plan now has only the account that is not adopted in its way
  const plan = takeover();
  assert.doesNotMatch(plan.stdout, /retire:/, plan.stdout);
  assert.match(plan.stdout, /^ {2}host: install \/usr\/local\/bin\/tmux-persist -> /m);
  assert.match(plan.stdout, /^blocked \(1\):\n {2}sneaky: /m);
  // rollback
  await run(h, "cat > /usr/local/sbin/workstations-legacy-rollback && chmod 0755 /usr/local/sbin/workstations-legacy-rollback", {
    stdin: fs.readFileSync(path.join(ROOT, "scripts/agents/workstations-legacy-rollback")),
  });
  const rb = await run(h, "workstations-legacy-rollback");
  assert.match(rb.stdout, /^restored \/usr\/local\/bin\/tmux-persist$/m);
  assert.match(rb.stdout, /^restored \/etc\/claude-code\/managed-settings\.json$/m);
  assert.equal(await sh(LEGACY_STATE), legacyBefore, "the legacy files and the reconcile timer are back as they were");
  assert.equal((await sh(`ls -d ${folder}.rolled-back`)).trim(), `${folder}.rolled-back`);
  const again = await run(h, "workstations-legacy-rollback", { check: false });
  assert.equal(again.code, 1);
  assert.match(again.stderr, /no folder to roll back/);
});
