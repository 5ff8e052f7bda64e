/**
 * `npm run roster:import` (tools/roster-import.ts, issue 21 item 4): the team's legacy roster
 * (../shared/notes/team-devvm.md: a map keyed by os user) plus a host's passwd, group and
 * authorized_keys into a roster of ours with `adopt: true` and pinned uids, which our checker
 * accepts; each thing it could not carry over named on its own line; bad input refused in one
 * line naming the file and position, nothing written.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { parseRoster } from "../../components/roster/load";
import { ed25519Key } from "../../dev/sshkeys";
import { hostAccountsAt, importLegacyRoster } from "../../tools/roster-import";
import { tempDir } from "../../dev/tmp";

const ROOT = path.resolve(__dirname, "../..");
const K = {
  wizard: ed25519Key("wizard@laptop"),
  deploy: ed25519Key("lobby-deploy"),
  emo: ed25519Key("emo@laptop"),
  nadia: ed25519Key("nadia@x"),
  from: ed25519Key("from@x"),
};

const LEGACY = `users:
  wizard:
    authentik_user: wizard
    k8s_user: wizard-k8s@corp.example
    tier: admin
    code_layout: workspace
    repos: [lobby]
    claude_auth: true
  emo:
    authentik_user: ebarzin
    tier: power-user
    namespaces: [emo-x]
  nadia:
    authentik_user: nadia
    tier: namespace-owner
    namespaces: [nadia-apps, nadia-dev]
    parked: true
  ghost:
    authentik_user: ghost
    tier: power-user
#  removed:
#    authentik_user: removed
#    tier: power-user
`;

/** A host as the note describes it: zsh everywhere, homes 0700/0750, the admin in sudo, docker and a team group. */
function fixtureRoot(): string {
  const root = tempDir("ws-import-");
  fs.mkdirSync(path.join(root, "etc"));
  fs.writeFileSync(
    path.join(root, "etc/passwd"),
    [
      "root:x:0:0:root:/root:/bin/bash",
      "wizard:x:1000:1000:Wizard:/home/wizard:/bin/zsh",
      "emo:x:1001:1001::/home/emo:/bin/zsh",
      "nadia:x:1002:1002::/home/nadia:/usr/bin/bash",
      "removed:x:1003:1003::/home/removed:/bin/zsh",
      "",
    ].join("\n"),
  );
  fs.writeFileSync(
    path.join(root, "etc/group"),
    [
      "root:x:0:",
      "sudo:x:27:wizard",
      "docker:x:998:wizard",
      "code-shared:x:1500:wizard,emo",
      "wizard:x:1000:",
      "emo:x:1001:",
      "nadia:x:1002:",
      "workstation-x:x:1600:emo",
      "",
    ].join("\n"),
  );
  const keys: Record<string, string[]> = {
    wizard: [K.wizard, `command="sudo -n /usr/local/bin/tl-reconcile",restrict ${K.deploy}`],
    emo: ["# laptop", K.emo, `from="10.0.0.0/8" ${K.from}`],
    nadia: [`command="/usr/local/bin/tl-status",restrict ${K.nadia}`],
  };
  for (const [u, lines] of Object.entries(keys)) {
    fs.mkdirSync(path.join(root, "home", u, ".ssh"), { recursive: true });
    fs.writeFileSync(path.join(root, "home", u, ".ssh/authorized_keys"), lines.join("\n") + "\n");
  }
  return root;
}

test("the legacy roster and the host's accounts become a roster of ours that the checker accepts; what is not carried over is named", () => {
  const root = fixtureRoot();
  try {
    const r = importLegacyRoster(LEGACY, "legacy.yaml", hostAccountsAt(root), { emailDomain: "corp.example", repoOwner: "team" });
    const text = YAML.stringify(r.roster);
    const checked = parseRoster(text, "imported.yaml");
    assert.deepEqual(checked.problems, [], text);
    const by = Object.fromEntries(r.roster.users.map((u) => [u.name as string, u]));
    assert.deepEqual(Object.keys(by), ["wizard", "emo", "nadia"], "ghost has no account; removed is not in the legacy roster");
    assert.deepEqual(by.wizard, {
      name: "wizard",
      uid: 1000,
      role: "admin",
      email: "wizard@corp.example",
      forgejo: "wizard",
      shell: "/usr/bin/zsh",
      groups: ["code-shared"],
      sshKeys: [K.wizard],
      k8sUser: "wizard-k8s@corp.example",
      codeLayout: "workspace",
      repos: ["team/lobby"],
      adopt: true,
    });
    assert.deepEqual(by.emo, {
      name: "emo",
      uid: 1001,
      role: "power-user",
      email: "ebarzin@corp.example",
      forgejo: "ebarzin",
      sso: "ebarzin",
      shell: "/usr/bin/zsh",
      groups: ["code-shared"],
      sshKeys: [K.emo],
      overrides: { kubeTier: "read-only" },
      adopt: true,
    });
    assert.deepEqual(by.nadia, {
      name: "nadia",
      uid: 1002,
      role: "namespace-owner",
      email: "nadia@corp.example",
      forgejo: "nadia",
      shell: "/bin/bash",
      namespaces: ["nadia-apps", "nadia-dev"],
      sshKeys: [`restrict,command="/usr/local/bin/tl-status" ${K.nadia}`],
      overrides: { tmuxPersist: false, claudeTokenRenew: false, t3: false },
      adopt: true,
    });
    const notes = r.notes.join("\n");
    for (const want of [
      /^ghost: no account on the host; not imported/m,
      /^wizard: keeps docker, sudo as the host has them \(system groups a roster cannot name; tighten: true would remove them\)$/m,
      /^removed: an account on the host \(uid 1003\) not in the legacy roster: left alone$/m,
      /^wizard: a key in ~\/\.ssh\/authorized_keys not carried over \(a forced command that is an absolute program.*"sudo -n \/usr\/local\/bin\/tl-reconcile"/m,
      /^wizard: repo lobby read as team\/lobby$/m,
      /^wizard: claude_auth true not carried over/m,
      /^emo: namespaces emo-x not carried over \(only a namespace-owner owns namespaces\)$/m,
      /^emo: a key in ~\/\.ssh\/authorized_keys not carried over \(an OpenSSH public key line, optionally after exactly/m,
      /^nadia: a forced-command key carried over as restrict,command="\/usr\/local\/bin\/tl-status"$/m,
      /^nadia: parked: kept active with every per-user daemon off/m,
      /^emo: email ebarzin@corp\.example and forgejo ebarzin are guesses/m,
    ])
      assert.match(notes, want);
    assert.doesNotMatch(notes, /^root:/m, "system accounts are not mentioned");
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("a forced command with a bare program (the team's `sudo -n …`) is carried over spelled where sshd's PATH finds it on the host", () => {
  const root = fixtureRoot();
  try {
    // sshd's PATH is /usr/local/bin:/usr/bin:/bin: the first one holding the program wins
    fs.mkdirSync(path.join(root, "usr/bin"), { recursive: true });
    fs.writeFileSync(path.join(root, "usr/bin/sudo"), "");
    fs.mkdirSync(path.join(root, "bin"), { recursive: true });
    fs.writeFileSync(path.join(root, "bin/sudo"), "");
    const r = importLegacyRoster(LEGACY, "legacy.yaml", hostAccountsAt(root), { emailDomain: "corp.example", repoOwner: "team" });
    assert.deepEqual(parseRoster(YAML.stringify(r.roster), "imported.yaml").problems, []);
    const wizard = r.roster.users.find((u) => u.name === "wizard")!;
    assert.deepEqual(wizard.sshKeys, [K.wizard, `restrict,command="/usr/bin/sudo -n /usr/local/bin/tl-reconcile" ${K.deploy}`]);
    const notes = r.notes.join("\n");
    assert.match(notes, /^wizard: the forced command's sudo is spelled \/usr\/bin\/sudo \(where sshd's PATH finds it on this host\)$/m);
    assert.doesNotMatch(notes, /^wizard: a key in ~\/\.ssh\/authorized_keys not carried over/m);
    // a program sshd would not find stays as it is, and is refused as before
    fs.rmSync(path.join(root, "usr/bin/sudo"));
    fs.rmSync(path.join(root, "bin/sudo"));
    const none = importLegacyRoster(LEGACY, "legacy.yaml", hostAccountsAt(root), { emailDomain: "corp.example", repoOwner: "team" });
    assert.match(none.notes.join("\n"), /^wizard: a key in ~\/\.ssh\/authorized_keys not carried over .*"sudo -n \/usr\/local\/bin\/tl-reconcile"/m);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("the command: the roster on stdout, notes on stderr, exit 0; bad YAML or no users map: one line with the position, exit 2, nothing written", () => {
  const root = fixtureRoot();
  const dir = tempDir("ws-import-cli-");
  try {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, ["--require", "ts-node/register/transpile-only", path.join(ROOT, "tools/roster-import.ts"), ...args], {
        cwd: ROOT,
        encoding: "utf8",
      });
    fs.writeFileSync(path.join(dir, "legacy.yaml"), LEGACY);
    const ok = run(path.join(dir, "legacy.yaml"), "--root", root, "--email-domain", "corp.example");
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual(parseRoster(ok.stdout, "stdout").problems, []);
    assert.match(ok.stdout, /^# Imported by npm run roster:import from legacy\.yaml/);
    assert.match(ok.stderr, /^roster-import: ghost: no account on the host/m);
    const out = path.join(dir, "roster.yaml");
    assert.equal(run(path.join(dir, "legacy.yaml"), "--root", root, "--out", out).status, 0);
    assert.deepEqual(parseRoster(fs.readFileSync(out, "utf8"), out).problems, []);
    fs.writeFileSync(path.join(dir, "bad.yaml"), "users:\n  wizard:\n    tier: [admin\n");
    const bad = run(path.join(dir, "bad.yaml"), "--root", root, "--out", path.join(dir, "never.yaml"));
    assert.equal(bad.status, 2);
    assert.match(bad.stderr.trim(), /^roster-import: .*bad\.yaml:[0-9]+:[0-9]+: YAML /);
    assert.equal(bad.stderr.trim().split("\n").length, 1);
    fs.writeFileSync(path.join(dir, "list.yaml"), "users:\n  - wizard\n");
    const list = run(path.join(dir, "list.yaml"), "--root", root);
    assert.equal(list.status, 2);
    assert.match(list.stderr, /list\.yaml:1:1: expected a legacy roster: a map `users:` keyed by os user/);
    assert.ok(!fs.existsSync(path.join(dir, "never.yaml")));
    assert.equal(run().status, 2, "usage");
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
