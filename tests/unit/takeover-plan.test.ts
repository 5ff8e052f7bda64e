/**
 * The takeover plan's pure part (tools/takeover-plan.ts, issue 21 item 4): from a roster's plan
 * and the facts a read-only probe found, per user and for the host what the first `up` will
 * create, adopt, change and leave alone, and what blocks it. The probe itself runs on a real
 * host in tests/host/takeover.host.test.ts.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { planRoster } from "../../components/plan";
import { parseRoster } from "../../components/roster/load";
import { ed25519Key } from "../../dev/sshkeys";
import { OUR_TMUX_PERSIST, parseFacts, takeoverPlan } from "../../tools/takeover-plan";

const ROSTER = `version: 1
users:
  - {name: wizard, uid: 1000, role: admin, email: w@x.io, forgejo: wizard, shell: /bin/bash, groups: [code-shared], adopt: true, codeLayout: workspace, repos: [team/lobby], sshKeys: ["${ed25519Key("w")}"]}
  - {name: emo, uid: 1001, role: power-user, email: e@x.io, forgejo: emo, adopt: true, tighten: true}
  - {name: ana, uid: 1005, role: power-user, email: a@x.io, forgejo: ana}
  - {name: kept, uid: 1006, role: power-user, email: k@x.io, forgejo: kept}
  - {name: sneaky, uid: 1007, role: power-user, email: s@x.io, forgejo: sneaky}
  - {name: moved, uid: 1008, role: power-user, email: m@x.io, forgejo: moved, adopt: true, groups: [ghosts]}
  - {name: late, uid: 1009, role: power-user, email: l@x.io, forgejo: late, adopt: true, tighten: true}
`;

/** What the probe prints for a host like the team's. */
const PROBE = [
  "passwd\troot:x:0:0:root:/root:/bin/bash",
  "passwd\twizard:x:1000:1000::/home/wizard:/usr/bin/bash",
  "passwd\temo:x:1001:1001::/home/emo:/bin/bash",
  "passwd\tkept:x:1006:1006::/home/kept:/bin/bash",
  "passwd\tsneaky:x:1007:1007::/home/sneaky:/bin/bash",
  "passwd\tmoved:x:1108:1108::/srv/moved:/bin/bash",
  "passwd\tbob:x:1002:1002::/home/bob:/bin/bash",
  "passwd\tlate:x:1009:1009::/home/late:/bin/bash",
  "group\tsudo:x:27:wizard",
  "group\tdocker:x:998:wizard,emo,late",
  "group\tplugdev:x:46:late",
  "group\tcode-shared:x:1500:wizard",
  "ledger\t1006 kept",
  "ledger\t1009 late",
  "home\tlate\t1009 700",
  "home\twizard\t1000 700",
  "home\temo\t1001 750",
  "home\tana\tmissing",
  "keys\twizard\t2",
  "keys\temo\tnone",
  "code\twizard\tsingle",
  "code\temo\tnone",
  "unit\tt3-provision-users.timer\tenabled\tactive",
  "unit\tt3-provision-users.service\tstatic\tinactive",
  "unit\ttmux-persist-save.timer\tenabled\tactive",
  "rfile\t/etc/claude-code/managed-settings.json",
  "tpbin\t/usr/local/bin/tmux-persist",
  "legacy\twizard\t12\t3",
  "merged-usr",
  "",
].join("\n");

test("per user: create, managed, adopt (groups joined and kept, shell by what it resolves to, keys, legacy store), tighten; blockers named", () => {
  const parsed = parseRoster(ROSTER, "roster.yaml");
  assert.deepEqual(parsed.problems, []);
  const t = takeoverPlan(planRoster(parsed.roster!), parseFacts(PROBE));
  const lines = t.lines.join("\n");
  for (const want of [
    /^wizard: adopt: uid 1000, password state and running processes stay, home mode 700 stays$/m,
    /^wizard: change: joins workstation-users$/m,
    /^wizard: leave alone: keeps docker, sudo \(not granted by the program\)$/m,
    /^wizard: leave alone: login shell \/usr\/bin\/bash \(the same program as \/bin\/bash\)$/m,
    /^wizard: change: sshd stops reading ~\/\.ssh\/authorized_keys \(2 lines\); the roster's 1 keys go to \/etc\/ssh\/authorized_keys\.d\/wizard$/m,
    /^wizard: migrate: 12 legacy snapshots into tmux-persist's store .*its 3 tombstones are read where they are$/m,
    /^emo: change \(tighten\): leaves docker$/m,
    // adopted by an earlier up, tightened now: the plan still lists what goes, one line each
    /^late: managed already \(in the uid ledger\): the usual update\nlate: change \(tighten\): leaves docker\nlate: change \(tighten\): leaves plugdev\nlate: change \(tighten\): home mode 700 -> 750$/m,
    /^ana: create: a new account, uid 1005, home \/home\/ana, active$/m,
    /^kept: managed already \(in the uid ledger\): the usual update$/m,
    /^bob: not in the roster: left alone$/m,
    /^wizard: adopt: ~\/code is a clone \(the single layout\), kept where it is; nothing is cloned into it \(move it to ~\/code\/infra to switch\)$/m,
    /^emo: create: the infra repo cloned into ~\/code$/m,
  ])
    assert.match(lines, want);
  assert.doesNotMatch(lines, /^emo: change: sshd stops/m, "no keys file: nothing to say");
  assert.doesNotMatch(lines, /^emo: change \(tighten\): home/m, "emo's home is 0750 already");
  assert.doesNotMatch(lines, /team\/lobby/, "no further repo inside a single-layout clone");
  for (const want of [
    /^host: retire: the legacy reconcile t3-provision-users\.timer \(enabled\/active\) stopped, its unit moved to \/var\/lib\/workstations\/legacy\/<time>\/ and masked \(workstations-legacy-rollback puts it back\)$/m,
    /^host: retire: the legacy tmux-persist \(\/usr\/local\/bin\/tmux-persist\) and its units stopped and moved to/m,
    /^host: install \/usr\/local\/bin\/tmux-persist -> \/usr\/local\/lib\/workstations\/tmux-persist\.mjs and its units$/m,
    /^host: retire: \/etc\/claude-code\/managed-settings\.json \(not the program's\) moved to \/var\/lib\/workstations\/legacy\/<time>\/ before the program installs its own/m,
  ])
    assert.match(lines, want);
  assert.match(lines, /^host: retire: the legacy reconcile t3-provision-users\.service \(static\/inactive\)/m);
  assert.deepEqual(t.blockers.sort(), [
    "moved: group ghosts (named in the roster) does not exist on the host; create it or drop it from the entry",
    "moved: the account has uid 1108, the roster says 1008; pin 1108 in the roster",
    "sneaky: the account exists and this program did not create it: add `adopt: true` to the entry to take it over",
  ]);
});

test("a host the program already runs: nothing blocks; a uid someone else holds blocks", () => {
  const parsed = parseRoster(ROSTER.split("\n").slice(0, 5).join("\n").replace(", adopt: true, tighten: true", ""), "roster.yaml");
  assert.deepEqual(parsed.problems, []);
  const ours = PROBE.replace(/^unit\tt3-provision-users\.timer.*$/m, "unit\tt3-provision-users.timer\tnot-found\tinactive")
    .replace(/^tpbin\t.*$/m, `tpbin\t${OUR_TMUX_PERSIST}`)
    .replace(/^ledger.*$/m, "ledger\t1000 wizard\nledger\t1001 emo");
  const t = takeoverPlan(planRoster(parsed.roster!), parseFacts(ours));
  assert.deepEqual(t.blockers, []);
  assert.match(t.lines.join("\n"), /^host: tmux-persist is the program's$/m);
  const taken = takeoverPlan(planRoster(parsed.roster!), parseFacts(ours.replace("passwd\tbob:x:1002", "passwd\tbob:x:1005")));
  assert.ok(taken.blockers.includes("ana: uid 1005 belongs to bob on the host; pin another uid in the roster"), taken.blockers.join("\n"));
});
