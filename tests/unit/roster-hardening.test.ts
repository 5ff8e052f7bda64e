/**
 * Roster hardening (issue 8): groups allow-list, empty roster and the way back in (sudo + key),
 * ssh keys parsed in full, unique keys, real and past purge dates, add-on namespaces.
 * Every invalid roster is rejected with its exact file:line:col, path and message.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { DEFAULT_PROFILES, planProblems, RoleProfile } from "../../components/plan";
import * as YAML from "yaml";
import { formatProblem, loadRoster, parseRoster, RosterError } from "../../components/roster/load";
import {
  ADDON_NAMESPACES,
  ALLOWED_SYSTEM_GROUPS,
  calendarDateProblem,
  CONTROL_CHARS,
  controlCharProblem,
  escapeControls,
  quoteText,
  isSshPublicKey,
  parseSshPublicKey,
  SYSTEM_GROUPS,
  todayUtc,
} from "../../components/roster/schema";
import { readExampleRoster } from "../../dev/mocks";
import { ecdsaBlob, ecPoint, ed25519Blob, ed25519Key, keyLine, rsaBlob, skEcdsaBlob, skEd25519Blob, sshMpint, sshString } from "../../dev/sshkeys";
import { tempDir } from "../../dev/tmp";

const ROOT = path.resolve(__dirname, "../..");
const KEY = readExampleRoster().match(/ssh-ed25519 \S+/)![0];
/** Line 1-8: viktor, the only admin; line 9 on: `viktorExtra` lines, then `extra`. */
const base = (extra = "", viktorExtra = "") => `version: 1
users:
  - name: viktor
    uid: 2000
    role: admin
    email: viktor@example.com
    forgejo: viktor
    sshKeys: ["${KEY} viktor@laptop"]
${viktorExtra}${extra}`;
/** A power-user bob on one flow line; `rest` goes after `forgejo: bob`. Columns: see the table. */
const bob = (rest = "") => `  - {name: bob, uid: 2001, role: power-user, email: bob@x.io, forgejo: bob${rest}}\n`;
const bobOwns = (ns: string) => `  - {name: bob, uid: 2001, role: namespace-owner, email: bob@x.io, forgejo: bob, namespaces: [${ns}]}\n`;
const bobKey = (key: string) => bob(`, sshKeys: ["${key}"]`);
const bobPurgedOn = (date: string) => bob(`, state: offboarded, purge: {approvedBy: viktor, approvedOn: "${date}"}`);
const TODAY = "2026-06-15";
const ctx = { today: () => TODAY };

// Broken key blobs, each built from a real key.
const ed = ed25519Blob();
const edPk = ed.subarray(4 + 11 + 4);
const p256 = ecPoint("nistp256");
const notOnCurve = Buffer.from(p256);
notOnCurve[64] ^= 1;
const rsa2048 = rsaBlob(2048);
const rsaParts = (e: Buffer, n: Buffer) => Buffer.concat([sshString("ssh-rsa"), sshString(e), sshString(n)]);
// y = p = 2^255-19 (little-endian): 32 bytes that are not an Ed25519 point encoding.
const edNotAPoint = Buffer.concat([Buffer.from([0xed]), Buffer.alloc(30, 0xff), Buffer.from([0x7f])]);

const G = "users[1].groups[0]";
const allowedList = /allowed system groups are audio, plugdev, users, video; other names must be team groups/;
const SK = "users[1].sshKeys[0]";
const PD = "users[1].purge.approvedOn";
const NS = "users[1].namespaces[0]";

/** Each case: a roster, and the expected [line, col, path, message regexp] of (one of) its problems. */
const INVALID: Array<[string, string, [number, number, string, RegExp]]> = [
  // ---- groups ----
  [
    "group docker (root-equivalent)",
    base(bob(", groups: [docker]")),
    [9, 86, G, /allowed group: docker is a system group \(root-equivalent or reads other users' data\)/],
  ],
  ["group docker names the allow-list", base(bob(", groups: [docker]")), [9, 86, G, allowedList]],
  ["group lxd", base(bob(", groups: [lxd]")), [9, 86, G, /lxd is a system group/]],
  ["group incus-admin", base(bob(", groups: [incus-admin]")), [9, 86, G, /incus-admin is a system group/]],
  ["group libvirt", base(bob(", groups: [libvirt]")), [9, 86, G, /libvirt is a system group/]],
  ["group adm (reads logs)", base(bob(", groups: [adm]")), [9, 86, G, /adm is a system group/]],
  ["group systemd-journal", base(bob(", groups: [systemd-journal]")), [9, 86, G, /systemd-journal is a system group/]],
  ["group staff (writes /usr/local)", base(bob(", groups: [staff]")), [9, 86, G, /staff is a system group/]],
  ["group input (keyboards)", base(bob(", groups: [input]")), [9, 86, G, /input is a system group/]],
  ["group sudo says where sudo comes from", base(bob(", groups: [sudo]")), [9, 86, G, /sudo is a system group.*sudo comes from the role or overrides\.sudo/]],
  ["group with a leading underscore", base(bob(", groups: [_laurel]")), [9, 86, G, /_laurel is a system group/]],
  ["any systemd-* group", base(bob(", groups: [systemd-foo]")), [9, 86, G, /systemd-foo is a system group/]],
  ["second group of the list is checked", base(bob(", groups: [audio, kvm]")), [9, 93, "users[1].groups[1]", /kvm is a system group/]],
  ["managed workstation-* group", base(bob(", groups: [workstation-users]")), [9, 86, G, /allowed group: workstation-users is managed/]],
  ["another roster user's personal group", base(bob(", groups: [viktor]")), [9, 86, G, /allowed group: viktor is the personal group of users\[0\] \(viktor\)/]],
  ["the user's own name", base(bob(", groups: [bob]")), [9, 86, G, /allowed group: bob is this user's own personal group/]],
  [
    "a later user's personal group",
    base(bob(", groups: [eve]") + `  - {name: eve, uid: 2002, role: power-user, email: eve@x.io, forgejo: eve}\n`),
    [9, 86, G, /personal group of users\[2\] \(eve\)/],
  ],
  [
    "an offboarded user's personal group",
    base(bob(", groups: [olga]") + `  - {name: olga, uid: 2002, role: power-user, email: olga@x.io, forgejo: olga, state: offboarded}\n`),
    [9, 86, G, /personal group of users\[2\] \(olga\)/],
  ],
  [
    "personal group check in block style",
    base(`  - name: bob\n    uid: 2001\n    role: power-user\n    email: bob@x.io\n    forgejo: bob\n    groups:\n      - infra-ops\n      - viktor\n`),
    [16, 9, "users[1].groups[1]", /personal group of users\[0\]/],
  ],
  [
    "a user named like a system group",
    base(`  - {name: docker, uid: 2001, role: power-user, email: d@x.io, forgejo: d}\n`),
    [9, 12, "users[1].name", /not reserved for the system/],
  ],

  // ---- empty roster, and nobody left with sudo and a key ----
  ["empty users list", "version: 1\nusers: []\n", [2, 8, "users", /expected at least one user \(an empty roster would cut every account/]],
  [
    "the only admin drops sudo",
    base("", "    overrides: {sudo: false}\n"),
    [9, 23, "users[0].overrides.sudo", /an active user with sudo and an ssh key \(the only way back into the host\): this override takes sudo from viktor/],
  ],
  [
    "every admin drops sudo: reported at the last one",
    base(
      `  - name: ada\n    uid: 2001\n    role: admin\n    email: ada@x.io\n    forgejo: ada\n    sshKeys: ["${ed25519Key()}"]\n    overrides: {sudo: false}\n`,
      "    overrides: {sudo: false}\n",
    ),
    [16, 23, "users[1].overrides.sudo", /takes sudo from ada, the last one/],
  ],
  [
    "the sudo power-user has no key",
    base(bob(", overrides: {sudo: true}"), "    overrides: {sudo: false}\n"),
    [9, 23, "users[0].overrides.sudo", /sudo and an ssh key/],
  ],
  [
    "the sudo power-user is suspended",
    base(bob(`, state: suspended, overrides: {sudo: true}, sshKeys: ["${ed25519Key()}"]`), "    overrides: {sudo: false}\n"),
    [9, 23, "users[0].overrides.sudo", /sudo and an ssh key/],
  ],

  // ---- ssh keys ----
  ["RSA 1024", base(bobKey(keyLine("ssh-rsa", rsaBlob(1024)))), [9, 87, SK, /an RSA key of at least 2048 bits \(this modulus has 1024\)/]],
  [
    "RSA 2047 bits",
    base(bobKey(keyLine("ssh-rsa", rsaParts(Buffer.from([1, 0, 1]), Buffer.concat([Buffer.from([0x7f]), Buffer.alloc(254, 0xff), Buffer.from([0xfd])]))))),
    [9, 87, SK, /at least 2048 bits \(this modulus has 2047\)/],
  ],
  [
    "RSA even exponent",
    base(bobKey(keyLine("ssh-rsa", rsaParts(Buffer.from([1, 0, 0]), rsa2048.subarray(4 + 7 + 4 + 3 + 4))))),
    [9, 87, SK, /RSA public exponent that is odd, at least 3/],
  ],
  [
    "RSA exponent 1",
    base(bobKey(keyLine("ssh-rsa", rsaParts(Buffer.from([1]), rsa2048.subarray(4 + 7 + 4 + 3 + 4))))),
    [9, 87, SK, /RSA public exponent .*\(got 1\)/],
  ],
  [
    "RSA negative modulus",
    base(bobKey(keyLine("ssh-rsa", rsaParts(Buffer.from([1, 0, 1]), Buffer.concat([Buffer.from([0xc0]), Buffer.alloc(255, 0x11)]))))),
    [9, 87, SK, /modulus n is a positive mpint/],
  ],
  [
    "RSA modulus missing",
    base(bobKey(keyLine("ssh-rsa", Buffer.concat([sshString("ssh-rsa"), sshMpint(Buffer.from([1, 0, 1]))])))),
    [9, 87, SK, /complete ssh-rsa key blob \(it ends before the modulus n\)/],
  ],
  [
    "ed25519 of 31 bytes",
    base(bobKey(keyLine("ssh-ed25519", Buffer.concat([sshString("ssh-ed25519"), sshString(edPk.subarray(0, 31))])))),
    [9, 87, SK, /ed25519 public key of exactly 32 bytes \(ssh-ed25519 blob has 31\)/],
  ],
  [
    "ed25519 blob holding only the type",
    base(bobKey(keyLine("ssh-ed25519", sshString("ssh-ed25519")))),
    [9, 87, SK, /complete ssh-ed25519 key blob \(it ends before the public key\)/],
  ],
  [
    "ed25519 length prefix past the end",
    base(bobKey(keyLine("ssh-ed25519", Buffer.concat([sshString("ssh-ed25519"), Buffer.from([0, 0, 0, 32]), edPk.subarray(0, 20)])))),
    [9, 87, SK, /it ends inside the public key/],
  ],
  [
    "ed25519 bytes that are no curve point",
    base(bobKey(keyLine("ssh-ed25519", Buffer.concat([sshString("ssh-ed25519"), sshString(edNotAPoint)])))),
    [9, 87, SK, /point on the curve/],
  ],
  [
    "trailing garbage after the key",
    base(bobKey(keyLine("ssh-ed25519", Buffer.concat([ed, Buffer.from("junk")])))),
    [9, 87, SK, /nothing after its last field \(it has 4 trailing byte\(s\)\)/],
  ],
  [
    "ECDSA point of the wrong length",
    base(bobKey(keyLine("ecdsa-sha2-nistp256", ecdsaBlob("nistp256", p256.subarray(0, 64))))),
    [9, 87, SK, /uncompressed ECDSA nistp256 point of 65 bytes \(got 64\)/],
  ],
  [
    "ECDSA nistp384 point of a nistp256 size",
    base(bobKey(keyLine("ecdsa-sha2-nistp384", ecdsaBlob("nistp384", p256)))),
    [9, 87, SK, /nistp384 point of 97 bytes \(got 65\)/],
  ],
  [
    "ECDSA compressed point",
    base(bobKey(keyLine("ecdsa-sha2-nistp256", ecdsaBlob("nistp256", Buffer.concat([Buffer.from([3]), p256.subarray(1, 33)]))))),
    [9, 87, SK, /point of 65 bytes \(got 33\)/],
  ],
  [
    "ECDSA point without the 0x04 prefix",
    base(bobKey(keyLine("ecdsa-sha2-nistp256", ecdsaBlob("nistp256", Buffer.concat([Buffer.from([2]), p256.subarray(1)]))))),
    [9, 87, SK, /first byte 0x04, got 0x02/],
  ],
  [
    "ECDSA point not on the curve",
    base(bobKey(keyLine("ecdsa-sha2-nistp256", ecdsaBlob("nistp256", notOnCurve)))),
    [9, 87, SK, /ECDSA point on the nistp256 curve \(this one is not\)/],
  ],
  [
    "ECDSA curve name not the type's",
    base(bobKey(keyLine("ecdsa-sha2-nistp256", ecdsaBlob("nistp256", p256, "ecdsa-sha2-nistp256", "nistp384")))),
    [9, 87, SK, /ECDSA key whose curve matches its type ecdsa-sha2-nistp256 \(the blob names "nistp384"\)/],
  ],
  [
    "sk-ed25519 without application",
    base(bobKey(keyLine("sk-ssh-ed25519@openssh.com", skEd25519Blob().subarray(0, -8)))),
    [9, 87, SK, /ends before the application/],
  ],
  [
    "sk-ecdsa with trailing bytes",
    base(bobKey(keyLine("sk-ecdsa-sha2-nistp256@openssh.com", Buffer.concat([skEcdsaBlob(), Buffer.from([0])])))),
    [9, 87, SK, /1 trailing byte/],
  ],
  [
    "DSA key",
    base(bobKey(keyLine("ssh-dss", Buffer.concat([sshString("ssh-dss"), sshMpint(Buffer.alloc(128, 0x55))])))),
    [9, 87, SK, /not a DSA \(ssh-dss\) key/],
  ],
  ["certificate type", base(bobKey(keyLine("ssh-ed25519-cert-v01@openssh.com", ed))), [9, 87, SK, /OpenSSH public key of a supported type/]],
  [
    "line type is not the blob's",
    base(bobKey(keyLine("ssh-rsa", ed))),
    [9, 87, SK, /blob holds the type the line names \(ssh-rsa; the blob holds "ssh-ed25519"\)/],
  ],
  [
    "non-canonical base64 (padding dropped)",
    base(bobKey(`ecdsa-sha2-nistp256 ${ecdsaBlob("nistp256").toString("base64").replace(/=+$/, "")}`)),
    [9, 87, SK, /canonical base64/],
  ],
  ["non-canonical base64 (stray padding)", base(bobKey(`ssh-ed25519 ${ed.toString("base64")}=`)), [9, 87, SK, /canonical base64/]],
  ["control character in the comment", base(bob(`, sshKeys: ["${keyLine("ssh-ed25519", ed, "a\\tb")}"]`)), [9, 87, SK, /without control characters/]],
  ["authorized_keys options are not allowed", base(bob(`, sshKeys: ['command="/bin/sh" ${keyLine("ssh-ed25519", ed)}']`)), [9, 87, SK, /OpenSSH public key/]],
  [
    "same key on two users (comment ignored)",
    base(bobKey(`${KEY} other-comment`)),
    [9, 87, SK, /a key used by one user only: the same key is already users\[0\] \(viktor\)/],
  ],
  [
    "same key twice on one user",
    base(
      `  - name: bob\n    uid: 2001\n    role: power-user\n    email: bob@x.io\n    forgejo: bob\n    sshKeys:\n      - ${keyLine("ssh-ed25519", ed, "one")}\n      - ${keyLine("ssh-ed25519", ed, "two")}\n`,
    ),
    [16, 9, "users[1].sshKeys[1]", /a key listed once: the same key is already users\[1\]\.sshKeys\[0\]/],
  ],
  ["same key on an offboarded user", base(bob(`, state: offboarded, sshKeys: ["${KEY}"]`)), [9, 106, SK, /already users\[0\] \(viktor\)/]],

  // ---- purge dates ----
  ["purge date 2026-99-99", base(bobPurgedOn("2026-99-99")), [9, 136, PD, /real calendar date YYYY-MM-DD \(2026-99-99 does not exist\)/]],
  ["purge date 2026-02-30", base(bobPurgedOn("2026-02-30")), [9, 136, PD, /2026-02-30 does not exist/]],
  ["purge date 2025-02-29 (not a leap year)", base(bobPurgedOn("2025-02-29")), [9, 136, PD, /2025-02-29 does not exist/]],
  ["purge date 1900-02-29 (century, not leap)", base(bobPurgedOn("1900-02-29")), [9, 136, PD, /does not exist/]],
  ["purge date 2026-04-31", base(bobPurgedOn("2026-04-31")), [9, 136, PD, /does not exist/]],
  ["purge date month 00", base(bobPurgedOn("2026-00-10")), [9, 136, PD, /does not exist/]],
  ["purge date day 00", base(bobPurgedOn("2026-03-00")), [9, 136, PD, /does not exist/]],
  [
    "purge date 9999-12-31",
    base(bobPurgedOn("9999-12-31")),
    [9, 136, PD, /a purge approval date that is not in the future \(9999-12-31 is after today, 2026-06-15 UTC\)/],
  ],
  ["purge date tomorrow", base(bobPurgedOn("2026-06-16")), [9, 136, PD, /not in the future/]],
  ["purge date not zero-padded", base(bobPurgedOn("2026-6-01")), [9, 136, PD, /expected a date YYYY-MM-DD/]],

  // ---- add-on namespaces ----
  ["namespace kubernetes-dashboard", base(bobOwns("kubernetes-dashboard")), [9, 95, NS, /not reserved for a cluster add-on \(kubernetes-dashboard is\)/]],
  ["namespace cert-manager", base(bobOwns("cert-manager")), [9, 95, NS, /cluster add-on \(cert-manager is\)/]],
  ["namespace ingress-nginx", base(bobOwns("ingress-nginx")), [9, 95, NS, /cluster add-on/]],
  ["namespace flux-system", base(bobOwns("flux-system")), [9, 95, NS, /cluster add-on/]],
  ["namespace monitoring", base(bobOwns("monitoring")), [9, 95, NS, /cluster add-on/]],
  ["namespace kube-flannel", base(bobOwns("kube-flannel")), [9, 95, NS, /cluster add-on/]],
  ["any *-system namespace", base(bobOwns("acme-system")), [9, 95, NS, /cluster add-on \(acme-system is: every \*-system name is\)/]],
  ["any kube-* namespace", base(bobOwns("kube-anything")), [9, 95, NS, /not a Kubernetes system namespace/]],
  ["namespace default", base(bobOwns("default")), [9, 95, NS, /not a Kubernetes system namespace/]],
];

test(`${INVALID.length} hardening cases: invalid rosters rejected at the right position`, () => {
  assert.ok(INVALID.length >= 20);
  for (const [what, text, [line, col, p, re]] of INVALID) {
    const r = parseRoster(text, "r.yaml", ctx);
    assert.ok(!r.roster, `${what}: must be rejected`);
    const hit = r.problems.find((x) => x.path === p && re.test(x.message));
    assert.ok(hit, `${what}: expected a problem at ${p} matching ${re}; got ${JSON.stringify(r.problems)}`);
    assert.deepEqual([hit!.line, hit!.col], [line, col], `${what}: position of ${p}`);
    // Each message says what was expected.
    for (const x of r.problems) assert.match(x.message, /^(expected|unknown key|YAML)/, `${what}: ${x.message}`);
  }
});

/** Valid rosters: each must be accepted. */
const VALID: Array<[string, string]> = [
  ["the allow-listed system groups", base(bob(", groups: [audio, video, plugdev, users]"))],
  ["team groups", base(bob(", groups: [infra-ops, data-science, team_ml]"))],
  ["RSA 2048 (node)", base(bobKey(keyLine("ssh-rsa", rsa2048)))],
  ["RSA 3072 (node)", base(bobKey(keyLine("ssh-rsa", rsaBlob(3072))))],
  ["ECDSA nistp256 (node)", base(bobKey(keyLine("ecdsa-sha2-nistp256", ecdsaBlob("nistp256"))))],
  ["ECDSA nistp384 (node)", base(bobKey(keyLine("ecdsa-sha2-nistp384", ecdsaBlob("nistp384"))))],
  ["ECDSA nistp521 (node)", base(bobKey(keyLine("ecdsa-sha2-nistp521", ecdsaBlob("nistp521"))))],
  ["sk-ssh-ed25519", base(bobKey(keyLine("sk-ssh-ed25519@openssh.com", skEd25519Blob())))],
  ["sk-ecdsa-sha2-nistp256", base(bobKey(keyLine("sk-ecdsa-sha2-nistp256@openssh.com", skEcdsaBlob())))],
  ["a key without a comment", base(bobKey(keyLine("ssh-ed25519", ed25519Blob(), "")))],
  [
    "two users, two keys each",
    base(
      `  - name: bob\n    uid: 2001\n    role: power-user\n    email: bob@x.io\n    forgejo: bob\n    sshKeys:\n      - ${ed25519Key()}\n      - ${ed25519Key()}\n`,
    ),
  ],
  ["purge approved today", base(bobPurgedOn(TODAY))],
  ["purge on a leap day (2024-02-29)", base(bobPurgedOn("2024-02-29"))],
  ["purge on a leap day (2000-02-29)", base(bobPurgedOn("2000-02-29"))],
  ["ordinary namespaces", base(bobOwns("bob-apps, monitoring-lab, systems, cert-lab"))],
  [
    "admin without sudo, another active admin keeps it",
    base(`  - {name: ada, uid: 2001, role: admin, email: ada@x.io, forgejo: ada, sshKeys: ["${ed25519Key()}"], overrides: {sudo: false}}\n`),
  ],
  [
    "admin without sudo, a power-user with sudo and a key",
    base(bob(`, overrides: {sudo: true}, sshKeys: ["${ed25519Key()}"]`), "    overrides: {sudo: false}\n"),
  ],
];

test(`${VALID.length} hardening cases: valid rosters stay accepted`, () => {
  for (const [what, text] of VALID) {
    const r = parseRoster(text, "r.yaml", ctx);
    assert.ok(r.roster, `${what}: ${JSON.stringify(r.problems)}`);
  }
});

test("every system group outside the allow-list is refused, the allow-list is accepted", () => {
  assert.deepEqual([...ALLOWED_SYSTEM_GROUPS].sort(), ["audio", "plugdev", "users", "video"]);
  for (const g of [
    "docker",
    "lxd",
    "incus",
    "incus-admin",
    "libvirt",
    "libvirt-qemu",
    "kvm",
    "disk",
    "shadow",
    "tty",
    "sudo",
    "wheel",
    "adm",
    "systemd-journal",
    "staff",
    "plocate",
    "mail",
    "input",
    "podman",
    "render",
    "crontab",
    "_ssh",
  ])
    assert.ok(SYSTEM_GROUPS.has(g), `${g} is in SYSTEM_GROUPS`);
  for (const g of SYSTEM_GROUPS) {
    if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(g)) continue;
    const r = parseRoster(base(bob(`, groups: [${g}]`)), "r.yaml", ctx);
    if (ALLOWED_SYSTEM_GROUPS.has(g)) assert.ok(r.roster, `${g}: ${JSON.stringify(r.problems)}`);
    else
      assert.ok(
        r.problems.some((p) => p.path === G && /is a system group/.test(p.message)),
        `${g} must be refused: ${JSON.stringify(r.problems)}`,
      );
  }
});

test("every add-on namespace is refused", () => {
  for (const ns of [
    "kubernetes-dashboard",
    "cert-manager",
    "ingress-nginx",
    "ingress",
    "traefik",
    "kong",
    "haproxy-controller",
    "flux-system",
    "argocd",
    "monitoring",
    "prometheus",
    "grafana",
    "loki",
    "logging",
    "observability",
    "istio-system",
    "linkerd",
    "cilium",
    "calico-system",
    "calico-apiserver",
    "tigera-operator",
    "metallb-system",
    "longhorn-system",
    "rook-ceph",
    "velero",
    "external-secrets",
    "external-dns",
    "vault",
    "sealed-secrets",
    "gatekeeper-system",
    "kyverno",
    "keda",
    "knative-serving",
    "tekton-pipelines",
    "openebs",
    "local-path-storage",
    "kube-flannel",
  ])
    assert.ok(ADDON_NAMESPACES.has(ns), `${ns} is in ADDON_NAMESPACES`);
  for (const ns of ADDON_NAMESPACES) {
    const r = parseRoster(base(bobOwns(ns)), "r.yaml", ctx);
    assert.ok(
      r.problems.some((p) => p.path === NS && /cluster add-on/.test(p.message)),
      `${ns}: ${JSON.stringify(r.problems)}`,
    );
  }
});

test("keys made by ssh-keygen: ed25519, ECDSA and RSA >= 2048 pass; RSA 1024 and DSA are refused", () => {
  const dir = tempDir("ws-keygen-");
  const gen = (name: string, ...args: string[]) => {
    execFileSync("ssh-keygen", ["-q", "-N", "", "-C", `${name}@test`, "-f", path.join(dir, name), ...args]);
    return fs.readFileSync(path.join(dir, name + ".pub"), "utf8").trim();
  };
  const good = [
    gen("ed", "-t", "ed25519"),
    gen("rsa2048", "-t", "rsa", "-b", "2048"),
    gen("rsa4096", "-t", "rsa", "-b", "4096"),
    gen("ec256", "-t", "ecdsa", "-b", "256"),
    gen("ec384", "-t", "ecdsa", "-b", "384"),
    gen("ec521", "-t", "ecdsa", "-b", "521"),
  ];
  for (const k of good) assert.ok(isSshPublicKey(k), `${k.slice(0, 40)}: ${JSON.stringify(parseSshPublicKey(k))}`);
  const roster = base(
    `  - name: bob\n    uid: 2001\n    role: power-user\n    email: bob@x.io\n    forgejo: bob\n    sshKeys:\n${good.map((k) => `      - ${k}\n`).join("")}`,
  );
  assert.ok(parseRoster(roster, "r.yaml").roster);
  const r1024 = parseSshPublicKey(gen("rsa1024", "-t", "rsa", "-b", "1024"));
  assert.ok(!r1024.ok && /at least 2048 bits \(this modulus has 1024\)/.test(r1024.problem), JSON.stringify(r1024));
  let dsa: string | undefined;
  try {
    dsa = gen("dsa", "-t", "dsa");
  } catch {
    /* OpenSSH >= 9.8 cannot make DSA keys any more */
  }
  if (dsa) {
    const d = parseSshPublicKey(dsa);
    assert.ok(!d.ok && /DSA/.test(d.problem), JSON.stringify(d));
  }
  // The node-built keys used above are what OpenSSH reads as keys (the builder is not wrong).
  for (const [n, line] of [
    ["n-rsa", keyLine("ssh-rsa", rsa2048)],
    ["n-ec", keyLine("ecdsa-sha2-nistp384", ecdsaBlob("nistp384"))],
    ["n-ed", ed25519Key()],
  ]) {
    fs.writeFileSync(path.join(dir, n + ".pub"), line + "\n");
    execFileSync("ssh-keygen", ["-l", "-f", path.join(dir, n + ".pub")]);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test("ed25519 point check: real keys pass, bytes above the field are refused", () => {
  for (let i = 0; i < 100; i++) assert.ok(isSshPublicKey(ed25519Key()));
  assert.ok(!isSshPublicKey(keyLine("ssh-ed25519", Buffer.concat([sshString("ssh-ed25519"), sshString(edNotAPoint)]))));
});

test("purge dates: the default is the real clock (UTC), today is allowed", () => {
  const day = (offset: number) => todayUtc(new Date(Date.now() + offset * 86_400_000));
  const today = parseRoster(base(bobPurgedOn(todayUtc())), "r.yaml");
  assert.ok(today.roster, `today is allowed: ${JSON.stringify(today.problems)}`);
  assert.ok(parseRoster(base(bobPurgedOn(day(-1))), "r.yaml").roster, "yesterday is allowed");
  const r = parseRoster(base(bobPurgedOn(day(2))), "r.yaml");
  assert.ok(
    r.problems.some((p) => p.path === PD && /not in the future/.test(p.message)),
    JSON.stringify(r.problems),
  );
  assert.equal(todayUtc(new Date("2026-03-01T23:59:59-05:00")), "2026-03-02", "today is the UTC date");
  assert.equal(calendarDateProblem("2024-02-29"), undefined);
  assert.match(calendarDateProblem("2023-02-29")!, /does not exist/);
});

test("planProblems: the plan decides who ends up with sudo", () => {
  const ok = parseRoster(base(), "r.yaml").roster!;
  assert.deepEqual(planProblems(ok), []);
  const noSudo = { ...ok, users: ok.users.map((u) => ({ ...u, overrides: { ...u.overrides, sudo: false } })) };
  assert.deepEqual(
    planProblems(noSudo).map((p) => p.path),
    [["users", 0, "overrides", "sudo"]],
  );
  // With profiles where no role has sudo, nothing was taken by an override: reported at `users`.
  const none = Object.fromEntries(Object.entries(DEFAULT_PROFILES).map(([k, v]) => [k, { ...v, sudo: false }])) as Record<
    keyof typeof DEFAULT_PROFILES,
    RoleProfile
  >;
  assert.deepEqual(
    planProblems(ok, none).map((p) => p.path),
    [["users"]],
  );
});

test("loadRoster refuses an empty roster: nothing is applied", () => {
  const f = path.join(tempDir("ws-empty-"), "roster.yaml");
  fs.writeFileSync(f, "version: 1\nusers: []\n");
  assert.throws(
    () => loadRoster(f),
    (e: unknown) => e instanceof RosterError && /roster\.yaml:2:8: users: expected at least one user/.test(e.message),
  );
});

// ---- free text: data, never terminal control (issue 19, item 7) ----

/** Each control character class the schema refuses in free text, in a sample value. */
const CONTROL_SAMPLES: Array<[string, string, number]> = [
  ["ESC (cursor up, erase line)", "\x1b[1A\x1b[2K", 0x1b],
  ["CR", "INC-1\r", 0x0d],
  ["LF", "a\nb", 0x0a],
  ["TAB", "a\tb", 0x09],
  ["NUL", "a\0", 0x00],
  ["DEL", "a\x7fb", 0x7f],
  ["C1 CSI", "\x9b2K", 0x9b],
  ["C1 NEL", "a\x85b", 0x85],
  ["bidi embedding U+202A", "a\u202ab", 0x202a],
  ["bidi override U+202E", "\u202eevil", 0x202e],
  ["bidi isolate U+2066", "a\u2066b", 0x2066],
  ["bidi isolate end U+2069", "a\u2069b", 0x2069],
  ["line separator U+2028", "a\u2028b", 0x2028],
];
/** A YAML double-quoted scalar of `s`, every non-printable-ASCII character as a \uXXXX escape. */
const yamlQuote = (s: string) =>
  `"${[...s].map((c) => (/[ -~]/.test(c) && c !== '"' && c !== "\\" ? c : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)).join("")}"`;
/** bob, offboarded, with an approved purge whose reason is `reason`. */
const bobPurgeReason = (reason: string) => bob(`, state: offboarded, purge: {approvedBy: viktor, approvedOn: "2026-01-01", reason: ${yamlQuote(reason)}}`);
const hexOf = (cp: number) => cp.toString(16).toUpperCase().padStart(4, "0");

test("free text: purge.reason refuses every control character (C0, DEL, C1, separators, bidi) at its file:line:col", () => {
  for (const [what, reason, cp] of CONTROL_SAMPLES) {
    const text = base(bobPurgeReason(reason));
    assert.equal(YAML.parse(text).users[1].purge.reason, reason, `${what}: the YAML holds the character`);
    const r = parseRoster(text, "r.yaml", ctx);
    assert.ok(!r.roster, `${what}: must be rejected`);
    assert.equal(r.problems.length, 1, `${what}: ${JSON.stringify(r.problems)}`);
    const p = r.problems[0];
    assert.deepEqual([p.line, p.col, p.path], [9, text.split("\n")[8].indexOf("reason: ") + 9, "users[1].purge.reason"], what);
    assert.match(p.message, new RegExp(`^expected text without control characters \\(U\\+${hexOf(cp)} at character \\d+\\)`), what);
    // The checker's line is one line, and holds no raw control character itself.
    const line = formatProblem(p);
    assert.ok(!CONTROL_CHARS.test(line), `${what}: ${JSON.stringify(line)}`);
  }
  // Ordinary text (punctuation, accents, other scripts, emoji) stays accepted.
  assert.ok(parseRoster(base(bobPurgeReason("INC-42: départ (Zoë) — 退職 ✓ \"quoted\" 'too'")), "r.yaml", ctx).roster);
});

test("free text: an ssh key comment refuses C1 and bidi controls too (C0 and DEL were refused before)", () => {
  for (const [what, comment] of CONTROL_SAMPLES) {
    const r = parseRoster(base(bob(`, sshKeys: [${yamlQuote(keyLine("ssh-ed25519", ed, `bob ${comment}`))}]`)), "r.yaml", ctx);
    assert.ok(
      r.problems.some((p) => p.path === SK && /without control characters, line breaks or bidi controls/.test(p.message)),
      `${what}: ${JSON.stringify(r.problems)}`,
    );
  }
  assert.ok(parseRoster(base(bob(`, sshKeys: ["${keyLine("ssh-ed25519", ed, "zoë@laptop (work)")}"]`)), "r.yaml", ctx).roster);
});

test("free text: an unknown key's name is escaped in the checker's line; quoteText and escapeControls", () => {
  const r = parseRoster(base(bob(`, "\\e[2Kx\\u202e": 1`)), "r.yaml", ctx);
  const lines = r.problems.map(formatProblem);
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(lines[0], /^r\.yaml:9:\d+: users\[1\]\.\\u001b\[2Kx\\u202e: unknown key\(s\) "\\u001b\[2Kx\\u202e"; expected only known fields$/);
  assert.equal(quoteText('a\x1b[2K\u202e\x85"b'), '"a\\u001b[2K\\u202e\\u0085\\"b"');
  assert.equal(escapeControls("ok\r\n"), "ok\\u000d\\u000a");
  assert.equal(controlCharProblem("plain text"), undefined);
});

test("npm run roster:check: a purge reason with an escape sequence is one file:line:col line, printed without the escape", () => {
  const dir = tempDir("ws-freetext-");
  const f = path.join(dir, "roster.yaml");
  fs.writeFileSync(f, base(bobPurgeReason("\x1b[1A\x1b[2K")));
  const r = spawnSync(process.execPath, ["--require", "ts-node/register/transpile-only", path.join(ROOT, "tools/roster-check.ts"), f], {
    cwd: ROOT,
    encoding: "utf8",
  });
  fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stdout, "");
  const esc = f.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  assert.match(
    r.stderr,
    new RegExp(`^${esc}:9:\\d+: users\\[1\\]\\.purge\\.reason: expected text without control characters \\(U\\+001B at character 1\\)[^\\n]*\\n$`),
  );
  // eslint-disable-next-line no-control-regex -- raw control characters are what must not be printed
  assert.ok(!/[\x00-\x09\x0b-\x1f\x7f-\x9f]/.test(r.stderr), JSON.stringify(r.stderr));
});

test("forgejoEmail (the Forgejo identity exception) is an email address", () => {
  const ok = parseRoster(base(bob(", forgejoEmail: bob@contractor.example")), "r.yaml", ctx);
  assert.ok(ok.roster, JSON.stringify(ok.problems));
  assert.equal(ok.roster!.users[1].forgejoEmail, "bob@contractor.example");
  const bad = parseRoster(base(bob(', forgejoEmail: "bob at contractor"')), "r.yaml", ctx);
  assert.deepEqual(
    bad.problems.map((p) => [p.line, p.path, p.message]),
    [[9, "users[1].forgejoEmail", "expected an email address (the Forgejo account's)"]],
  );
});
