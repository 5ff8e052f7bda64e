/**
 * The Kubernetes part of the takeover plan (issue 21, item 5): which objects the program would
 * make already exist in the cluster (the team's were made by Terraform: the
 * `dashboard-nav-readonly` ClusterRole, the users' namespaces, `dashboard-<user>`
 * ServiceAccounts and `dashboard-<user>-token` Secrets), what the first `up` does with each, and
 * which existing object stops it.
 *
 * How they are adopted: the kubernetes provider the program pins (4.24.1) creates with
 * server-side apply, so a create of an object that exists applies the program's fields to it
 * (an "upsert"): no "already exists" failure, fields the program does not set (another tool's
 * labels, a token Secret's `data`) stay, and the object is the program's from then on. So a
 * dashboard token people use stays valid. What an apply cannot change is an immutable field: a
 * Secret's `type` and its service account, a binding's `roleRef`; an object with another value
 * there fails the `up`, and the plan names it as a blocker. (Pulumi's `import` option was not
 * used: it fails unless the program's inputs match the object exactly, which the team's
 * Terraform-made objects, without the program's labels, never do.)
 *
 * Read-only: `kubectl get` with jsonpath that names only metadata, type and roleRef (no
 * Secret's data is ever printed).
 */
import { DASHBOARD_NAV_ROLE, kubeNames, READ_ONLY_ROLE, OWNER_LABEL } from "../components/kube";
import type { Plan, UserPlan } from "../components/plan";

/** One object as the probe saw it. */
export interface KubeFact {
  /** Secret type */
  type?: string;
  /** a token Secret's service account */
  serviceAccount?: string;
  /** `Kind/name` of a binding's roleRef */
  roleRef?: string;
  /** a namespace's owner label */
  owner?: string;
}
/** `Kind/namespace/name` (namespace empty for cluster objects) -> what was read. */
export type KubeFacts = Map<string, KubeFact>;

const esc = (k: string) => k.replace(/\./g, "\\.");
const CLUSTER_JSONPATH = `{range .items[*]}{.kind}{"\\t"}{.metadata.name}{"\\t"}{.roleRef.kind}/{.roleRef.name}{"\\n"}{end}`;
const NS_JSONPATH = `{range .items[*]}{.kind}{"\\t"}{.metadata.name}{"\\t"}{.metadata.labels.${esc(OWNER_LABEL)}}{"\\n"}{end}`;
const IN_NS_JSONPATH = `{range .items[*]}{.kind}{"\\t"}{.metadata.name}{"\\t"}{.type}{"\\t"}{.metadata.annotations.${esc("kubernetes.io/service-account.name")}}{"\\t"}{.roleRef.kind}/{.roleRef.name}{"\\n"}{end}`;

/** Every namespace a roster user owns. */
const rosterNamespaces = (plan: Plan) => [...new Set(plan.users.flatMap((u) => u.namespaces))];

/**
 * Reads the cluster with `kubectl` (a function running it with these arguments and returning
 * stdout, throwing on failure).
 */
export function probeKube(kubectl: (args: string[]) => string, plan: Plan): KubeFacts {
  const facts: KubeFacts = new Map();
  for (const line of kubectl(["get", "clusterroles,clusterrolebindings", "-o", `jsonpath=${CLUSTER_JSONPATH}`]).split("\n")) {
    const [kind, name, ref] = line.split("\t");
    if (kind && name) facts.set(`${kind}//${name}`, kind === "ClusterRoleBinding" ? { roleRef: ref } : {});
  }
  const present = new Set<string>();
  for (const line of kubectl(["get", "namespaces", "-o", `jsonpath=${NS_JSONPATH}`]).split("\n")) {
    const [kind, name, owner] = line.split("\t");
    if (kind === "Namespace" && name) {
      present.add(name);
      facts.set(`Namespace//${name}`, owner ? { owner } : {});
    }
  }
  for (const ns of rosterNamespaces(plan).filter((n) => present.has(n)))
    for (const line of kubectl(["get", "serviceaccounts,secrets,rolebindings", "-n", ns, "-o", `jsonpath=${IN_NS_JSONPATH}`]).split("\n")) {
      const [kind, name, type, sa, ref] = line.split("\t");
      if (!kind || !name) continue;
      const f: KubeFact = kind === "Secret" ? { type, serviceAccount: sa } : kind === "RoleBinding" ? { roleRef: ref } : {};
      facts.set(`${kind}/${ns}/${name}`, f);
    }
  return facts;
}

const TOKEN_TYPE = "kubernetes.io/service-account-token";

/** What the program makes for one user, as `Kind/namespace/name` with what must hold of an existing one. */
function wanted(u: UserPlan): Array<{ key: string; roleRef?: string; serviceAccount?: string; owner?: string }> {
  const n = kubeNames(u.name);
  const out: Array<{ key: string; roleRef?: string; serviceAccount?: string; owner?: string }> = u.namespaces.map((ns) => ({
    key: `Namespace//${ns}`,
    owner: u.name,
  }));
  const g = u.grants.kube;
  if (!g) return out;
  for (const ns of g.namespaceAdmin)
    out.push(
      { key: `RoleBinding/${ns}/${n.ownerBinding}`, roleRef: "ClusterRole/admin" },
      { key: `ServiceAccount/${ns}/${n.dashboardAccount}` },
      { key: `RoleBinding/${ns}/${n.dashboardBinding}`, roleRef: "ClusterRole/admin" },
      { key: `Secret/${ns}/${n.dashboardToken}`, serviceAccount: n.dashboardAccount },
    );
  if (g.dashboardNav) out.push({ key: `ClusterRoleBinding//${n.navBinding}`, roleRef: `ClusterRole/${DASHBOARD_NAV_ROLE}` });
  if (g.clusterAdmin) out.push({ key: `ClusterRoleBinding//${n.clusterAdminBinding}`, roleRef: "ClusterRole/cluster-admin" });
  if (g.clusterReadOnly) out.push({ key: `ClusterRoleBinding//${n.readOnlyBinding}`, roleRef: `ClusterRole/${READ_ONLY_ROLE}` });
  return out;
}

const label = (key: string) => {
  const [kind, ns, name] = key.split("/");
  return ns ? `${kind} ${ns}/${name}` : `${kind} ${name}`;
};

/** The plan's Kubernetes lines (`<user>: …`, `kubernetes: …`) and blockers. */
export function kubeTakeover(plan: Plan, facts: KubeFacts): { lines: string[]; blockers: string[] } {
  const lines: string[] = [];
  const blockers: string[] = [];
  const roles = [DASHBOARD_NAV_ROLE, ...(plan.users.some((u) => u.grants.kube?.clusterReadOnly) ? [READ_ONLY_ROLE] : [])];
  for (const r of roles)
    if (facts.has(`ClusterRole//${r}`))
      lines.push(`kubernetes: adopt: ClusterRole ${r} exists: the first up applies the program's rules to it (any other rule it has is removed)`);
  for (const u of plan.users)
    for (const w of wanted(u)) {
      const f = facts.get(w.key);
      if (!f) continue;
      const what = label(w.key);
      if (w.owner && f.owner && f.owner !== w.owner)
        blockers.push(`${u.name}: ${what} is labelled as ${f.owner}'s (${OWNER_LABEL}); fix the roster or the label`);
      else if (w.roleRef && f.roleRef !== w.roleRef)
        blockers.push(`${u.name}: ${what} exists with roleRef ${f.roleRef}, which cannot change; delete it or rename the user`);
      else if (w.serviceAccount && (f.type !== TOKEN_TYPE || f.serviceAccount !== w.serviceAccount))
        blockers.push(
          `${u.name}: ${what} exists as ${f.type || "?"} for ${f.serviceAccount || "no service account"}, not a token of ${w.serviceAccount}; its type cannot change: delete or rename it`,
        );
      else if (w.key.startsWith("Namespace/"))
        lines.push(`${u.name}: adopt: ${what} exists: gains the program's labels, keeps its own and its workloads, never deleted by the program`);
      else if (w.serviceAccount) lines.push(`${u.name}: adopt: ${what} exists: its token stays valid (the program never writes a token's data)`);
      else lines.push(`${u.name}: adopt: ${what} exists: the program's fields are applied to it`);
    }
  return { lines, blockers };
}
