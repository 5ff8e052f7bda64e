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
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ed25519Key } from "../../dev/sshkeys";
import { boot, createHost, destroyHost, run, type TestHost } from "../../dev/testhost/testhost";

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
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-takeover-test-"));
    fs.writeFileSync(path.join(dir, "roster.yaml"), ROSTER);
  },
  { timeout: 300_000 },
);
after(async () => {
  if (h) await destroyHost(h);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const takeover = (hostKey = h.hostKey) =>
  spawnSync(
    process.execPath,
    [
      "--require",
      "ts-node/register/transpile-only",
      "tools/takeover.ts",
      "plan",
      "--roster",
      path.join(dir, "roster.yaml"),
      "--host",
      "127.0.0.1",
      "--port",
      String(h.port),
      "--identity",
      h.privateKeyPath,
      "--host-key",
      hostKey,
    ],
    { cwd: ROOT, encoding: "utf8", timeout: 180_000 },
  );

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
    /^ {2}host: the legacy reconcile t3-provision-users\.timer is enabled\/active/m,
    /^ {2}host: \/usr\/local\/bin\/tmux-persist is the legacy one/m,
  ])
    assert.match(out, want);
  assert.ok(out.indexOf("blocked (3):") > out.indexOf("wizard: adopt"), "the blockers come after the plan");
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
