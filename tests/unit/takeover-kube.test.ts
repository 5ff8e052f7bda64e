/**
 * The takeover plan's Kubernetes part (tools/takeover-kube.ts, issue 21 item 5), pure: what the
 * probe's kubectl output becomes, and the lines and blockers from those facts. The probe and
 * the adoption itself run on the real API server under the real engine in
 * tests/kube/adopt.test.ts.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { planRoster } from "../../components/plan";
import { parseRoster } from "../../components/roster/load";
import { ed25519Key } from "../../dev/sshkeys";
import { kubeTakeover, probeKube, type KubeFacts } from "../../tools/takeover-kube";

const ROSTER = `version: 1
users:
  - {name: wizard, uid: 1000, role: admin, email: w@x.io, forgejo: wizard, sshKeys: ["${ed25519Key("w")}"]}
  - {name: nadia, uid: 1002, role: namespace-owner, email: n@x.io, forgejo: nadia, namespaces: [nadia-apps, nadia-ml]}
  - {name: rita, uid: 1003, role: power-user, email: r@x.io, forgejo: rita, overrides: {kubeTier: read-only}}
`;
const plan = () => {
  const r = parseRoster(ROSTER, "roster.yaml");
  if (!r.roster) throw new Error(JSON.stringify(r.problems));
  return planRoster(r.roster);
};

test("the probe's kubectl output becomes facts; only namespaces that exist are read inside", () => {
  const calls: string[][] = [];
  const kubectl = (args: string[]): string => {
    calls.push(args);
    if (args[1] === "clusterroles,clusterrolebindings")
      return "ClusterRole\tdashboard-nav-readonly\t/\nClusterRoleBinding\tworkstations:cluster-admin:wizard\tClusterRole/view\n";
    if (args[1] === "namespaces") return "Namespace\tdefault\t\nNamespace\tnadia-apps\t\n";
    return "ServiceAccount\tdashboard-nadia\t\t\t/\nSecret\tdashboard-nadia-token\tkubernetes.io/service-account-token\tdashboard-nadia\t/\n";
  };
  const f = probeKube(kubectl, plan());
  assert.deepEqual(
    calls.map((c) => c.slice(0, 4).join(" ")),
    [
      'get clusterroles,clusterrolebindings -o jsonpath={range .items[*]}{.kind}{"\\t"}{.metadata.name}{"\\t"}{.roleRef.kind}/{.roleRef.name}{"\\n"}{end}',
      'get namespaces -o jsonpath={range .items[*]}{.kind}{"\\t"}{.metadata.name}{"\\t"}{.metadata.labels.workstations\\.example/owner}{"\\n"}{end}',
      "get serviceaccounts,secrets,rolebindings -n nadia-apps",
    ],
    "nadia-ml does not exist: not read",
  );
  assert.ok(!calls.flat().some((a) => /\.data\b|-o json$|yaml/.test(a)), "no Secret's data is ever asked for");
  assert.deepEqual(f.get("Secret/nadia-apps/dashboard-nadia-token"), { type: "kubernetes.io/service-account-token", serviceAccount: "dashboard-nadia" });
  assert.deepEqual(f.get("ClusterRoleBinding//workstations:cluster-admin:wizard"), { roleRef: "ClusterRole/view" });
  assert.ok(f.has("Namespace//nadia-apps") && !f.has("Namespace//nadia-ml"));
});

test("nothing exists: no line, no blocker", () => {
  assert.deepEqual(kubeTakeover(plan(), new Map()), { lines: [], blockers: [] });
});

test("what exists is adopted; an immutable field that differs, or another owner's label, blocks", () => {
  const f: KubeFacts = new Map([
    ["ClusterRole//dashboard-nav-readonly", {}],
    ["ClusterRole//workstations-read-only", {}],
    ["Namespace//nadia-apps", {}],
    ["Namespace//nadia-ml", { owner: "olga" }],
    ["ServiceAccount/nadia-apps/dashboard-nadia", {}],
    ["Secret/nadia-apps/dashboard-nadia-token", { type: "kubernetes.io/service-account-token", serviceAccount: "dashboard-nadia" }],
    ["RoleBinding/nadia-apps/workstations-owner-nadia", { roleRef: "ClusterRole/edit" }],
    ["ClusterRoleBinding//workstations:cluster-admin:wizard", { roleRef: "ClusterRole/cluster-admin" }],
    ["ClusterRoleBinding//workstations:read-only:rita", { roleRef: "ClusterRole/workstations-read-only" }],
  ]);
  const { lines, blockers } = kubeTakeover(plan(), f);
  assert.deepEqual(lines, [
    "kubernetes: adopt: ClusterRole dashboard-nav-readonly exists: the first up applies the program's rules to it (any other rule it has is removed)",
    "kubernetes: adopt: ClusterRole workstations-read-only exists: the first up applies the program's rules to it (any other rule it has is removed)",
    "wizard: adopt: ClusterRoleBinding workstations:cluster-admin:wizard exists: the program's fields are applied to it",
    "nadia: adopt: Namespace nadia-apps exists: gains the program's labels, keeps its own and its workloads, never deleted by the program",
    "nadia: adopt: ServiceAccount nadia-apps/dashboard-nadia exists: the program's fields are applied to it",
    "nadia: adopt: Secret nadia-apps/dashboard-nadia-token exists: its token stays valid (the program never writes a token's data)",
    "rita: adopt: ClusterRoleBinding workstations:read-only:rita exists: the program's fields are applied to it",
  ]);
  assert.deepEqual(blockers, [
    "nadia: Namespace nadia-ml is labelled as olga's (workstations.example/owner); fix the roster or the label",
    "nadia: RoleBinding nadia-apps/workstations-owner-nadia exists with roleRef ClusterRole/edit, which cannot change; delete it or rename the user",
  ]);
});

test("a token Secret of another service account blocks, and the read-only role is only read about when someone has the tier", () => {
  const f: KubeFacts = new Map([
    ["ClusterRole//workstations-read-only", {}],
    ["Namespace//nadia-apps", { owner: "nadia" }],
    ["Secret/nadia-apps/dashboard-nadia-token", { type: "kubernetes.io/service-account-token", serviceAccount: "default" }],
  ]);
  const r = parseRoster(ROSTER.replace(/ {2}- \{name: rita.*\n/, ""), "r.yaml");
  if (!r.roster) throw new Error(JSON.stringify(r.problems));
  const noRita = planRoster(r.roster);
  const { lines, blockers } = kubeTakeover(noRita, f);
  assert.ok(!lines.some((l) => l.includes("workstations-read-only")), lines.join("\n"));
  assert.deepEqual(blockers, [
    "nadia: Secret nadia-apps/dashboard-nadia-token exists as kubernetes.io/service-account-token for default, not a token of dashboard-nadia; its type cannot change: delete or rename it",
  ]);
});
