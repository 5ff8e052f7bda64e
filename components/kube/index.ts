/**
 * Kubernetes access from the roster (SPEC §2, §3.8), as the program uses it:
 *
 * - `KubeCluster` (`workstations:index:KubeCluster`): the provider and the shared
 *   `dashboard-nav-readonly` ClusterRole (get/list/watch on namespaces and nodes, nothing else).
 * - `userKube(parent, …)`: one user's part, children of their UserWorkstation:
 *   - every owned Namespace, `retainOnDelete`: when it leaves the program (offboarding,
 *     `destroy --target`, a roster typo) the engine drops it from the state and never deletes
 *     it in the cluster, so the owner's cut still runs and the tenant's workloads stay.
 *     (Not `protect`: that would make the engine refuse the whole offboarding, cut included.)
 *     It exists in the program while the owner is active or suspended;
 *   - while `plan.grants.kube` (active, tier not `none`): a RoleBinding to ClusterRole `admin`
 *     in each owned namespace for the user's OIDC identity, a ClusterRoleBinding to
 *     `dashboard-nav-readonly`, per namespace a `dashboard-<user>` ServiceAccount (bound to
 *     `admin` there and to `dashboard-nav-readonly`) with a long-lived token Secret whose
 *     data is a secret output; admins (tier `cluster-admin`) a ClusterRoleBinding to
 *     `cluster-admin`; and `~/.kube/config` (scripts/kubeconfig.ts).
 *   Suspending the user deletes all of those (the token Secret with them, which invalidates
 *   the token); re-activating creates them again;
 * - per owned namespace while the user is `admin` there, a `KubeNamespaceCut` (./cut.ts) that
 *   every object granting access there depends on: when the access ends, its delete runs
 *   last and removes every RoleBinding and service-account-token Secret in the namespace the
 *   program does not manage (what the owner made while admin: ./sweep.js);
 * - every owned Namespace carries the Pod Security admission labels of
 *   `workstations:kubePodSecurity` (`baseline` or `restricted`): no privileged pod, host
 *   namespaces or host paths for an owner.
 *
 * Grants are decided in components/plan.ts only; this module turns them into resources.
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
// The SDK's modules themselves, not its index: the index loads helm and yaml too, about 0.3 s of
// every preview (issue 25).
import * as k8sCore from "@pulumi/kubernetes/core/v1";
import { Provider as K8sProvider } from "@pulumi/kubernetes/provider";
import * as k8sRbac from "@pulumi/kubernetes/rbac/v1";
import * as YAML from "yaml";
import { commandConnection, HostConnection } from "../connection";
import { UserPlan } from "../plan";
import { guardedKubeconfig } from "../scripts/kubeconfig";
import { kubeconfigDeliverScript, kubeconfigRemoveScript } from "../scripts/hostLib";
import { OWNER_LABEL, programNames } from "./sweep";
import { KubeNamespaceCut } from "./cut";
import { tokenSecretMetadata } from "./tokenSecret";

export { OWNER_LABEL };

/** Username claims the program can map to a roster field. */
export const USERNAME_CLAIMS = ["email", "preferred_username"] as const;
export type UsernameClaim = (typeof USERNAME_CLAIMS)[number];

/** Pod Security admission levels an owned namespace may enforce (`privileged` is not one). */
export const POD_SECURITY_LEVELS = ["baseline", "restricted"] as const;
export type PodSecurityLevel = (typeof POD_SECURITY_LEVELS)[number];

/** The stack's Kubernetes settings (components/config.ts reads them). */
export interface KubeConfig {
  /** API server URL, as users' kubeconfigs name it (https). */
  apiServer: string;
  /** PEM of the CA that signed the API server's certificate. */
  caCert: string;
  /** OIDC issuer URL the API server trusts (https). */
  oidcIssuer: string;
  oidcClientId: string;
  /** `email` (the roster email) or `preferred_username` (the roster name). */
  usernameClaim: UsernameClaim;
  /** The API server's username prefix (claimMappings.username.prefix / --oidc-username-prefix). */
  usernamePrefix: string;
  /** Admin kubeconfig for the provider and the access cut (secret); absent = KUBECONFIG of the CLI. */
  kubeconfig?: pulumi.Output<string>;
  /** Pod Security admission level every owned namespace enforces (and warns about). */
  podSecurity: PodSecurityLevel;
}

export const KUBE_OFF_MESSAGE =
  "Kubernetes: off (workstations:kubeApiServer is not set): no namespaces, RBAC bindings, dashboard tokens or kubeconfigs are managed";

/**
 * On every object the program makes: its apply wins field conflicts. The provider creates with
 * server-side apply, so an object that already exists under the program's name (the team's,
 * made by Terraform) is adopted by its first `up`, not refused; without force, any field the
 * program sets that another manager owns with another value (Terraform's
 * `app.kubernetes.io/managed-by`, say) fails that `up` with a field conflict. Fields the
 * program does not set (other labels, a token Secret's data) stay theirs. Immutable fields
 * still fail: the takeover plan names those (tools/takeover-kube.ts).
 */
export const ADOPT_ANNOTATIONS = { "pulumi.com/patchForce": "true" } as const;

export const DASHBOARD_NAV_ROLE = "dashboard-nav-readonly";
export const DASHBOARD_NAV_RULES = [{ apiGroups: [""], resources: ["namespaces", "nodes"], verbs: ["get", "list", "watch"] }];

/**
 * The team's power-user tier (`kubeTier: read-only`): read workloads, pods and their logs,
 * services, config maps, events, namespaces and nodes cluster-wide; never Secrets, never exec,
 * attach or port-forward (subresources not listed), never a write.
 */
export const READ_ONLY_ROLE = "workstations-read-only";
const READ = ["get", "list", "watch"];
export const READ_ONLY_RULES = [
  {
    apiGroups: [""],
    resources: ["pods", "pods/log", "services", "endpoints", "configmaps", "events", "namespaces", "nodes", "persistentvolumeclaims", "replicationcontrollers"],
    verbs: READ,
  },
  { apiGroups: ["apps"], resources: ["deployments", "replicasets", "statefulsets", "daemonsets"], verbs: READ },
  { apiGroups: ["batch"], resources: ["jobs", "cronjobs"], verbs: READ },
  { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: READ },
];

/** The Pod Security admission labels of an owned namespace. */
export function podSecurityLabels(level: PodSecurityLevel): Record<string, string> {
  const l = "pod-security.kubernetes.io";
  return { [`${l}/enforce`]: level, [`${l}/enforce-version`]: "latest", [`${l}/warn`]: level, [`${l}/warn-version`]: "latest" };
}

/** The username the API server sees for a user's OIDC token. */
export function oidcUsername(cfg: Pick<KubeConfig, "usernameClaim" | "usernamePrefix">, u: Pick<UserPlan, "name" | "kubeUser">): string {
  return cfg.usernamePrefix + (cfg.usernameClaim === "email" ? u.kubeUser : u.name);
}

/** Kubernetes object names of one user (all fixed, no auto-naming: bindings are found by name). */
export function kubeNames(user: string) {
  return {
    // The names in a namespace are the access cut's (sweep.js keeps a new owner's by name);
    // dashboardAccount is plan.ts's derivedNames().dashboardServiceAccount (a test pins it).
    ...programNames(user),
    navBinding: `workstations:dashboard-nav:${user}`,
    clusterAdminBinding: `workstations:cluster-admin:${user}`,
    readOnlyBinding: `workstations:read-only:${user}`,
  };
}

/** The body of a user's ~/.kube/config (without the guard header), or undefined for tier none. */
export function kubeconfigBody(cfg: KubeConfig, p: UserPlan): string | undefined {
  const g = p.grants.kube;
  if (!g) return undefined;
  const args = ["oidc-login", "get-token", `--oidc-issuer-url=${cfg.oidcIssuer}`, `--oidc-client-id=${cfg.oidcClientId}`];
  if (cfg.usernameClaim === "email") args.push("--oidc-extra-scope=email");
  const ns = g.defaultNamespace;
  return YAML.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "workstations", cluster: { server: cfg.apiServer, "certificate-authority-data": Buffer.from(cfg.caCert).toString("base64") } }],
    users: [
      { name: `oidc-${p.name}`, user: { exec: { apiVersion: "client.authentication.k8s.io/v1", command: "kubectl", args, interactiveMode: "IfAvailable" } } },
    ],
    contexts: [{ name: "workstations", context: { cluster: "workstations", user: `oidc-${p.name}`, ...(ns ? { namespace: ns } : {}) } }],
    "current-context": "workstations",
  });
}

export interface KubeClusterArgs {
  config: KubeConfig;
  /** Some roster user has the `read-only` tier: the shared READ_ONLY_ROLE exists. */
  readOnlyRole?: boolean;
}

/** The provider and the shared ClusterRole. */
export class KubeCluster extends pulumi.ComponentResource {
  public readonly provider: K8sProvider;
  public readonly navRole: k8sRbac.ClusterRole;
  public readonly readOnlyRole?: k8sRbac.ClusterRole;
  public readonly config: KubeConfig;

  constructor(name: string, args: KubeClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("workstations:index:KubeCluster", name, {}, opts);
    this.config = args.config;
    this.provider = new K8sProvider(
      `${name}-provider`,
      {
        ...(args.config.kubeconfig ? { kubeconfig: args.config.kubeconfig } : {}),
        // Objects are only ever deleted by the engine's own delete steps.
        deleteUnreachable: false,
      },
      { parent: this },
    );
    this.navRole = new k8sRbac.ClusterRole(
      `${name}-${DASHBOARD_NAV_ROLE}`,
      {
        metadata: { name: DASHBOARD_NAV_ROLE, labels: { "app.kubernetes.io/managed-by": "workstations" }, annotations: ADOPT_ANNOTATIONS },
        rules: DASHBOARD_NAV_RULES,
      },
      { parent: this, provider: this.provider },
    );
    if (args.readOnlyRole)
      this.readOnlyRole = new k8sRbac.ClusterRole(
        `${name}-${READ_ONLY_ROLE}`,
        {
          metadata: { name: READ_ONLY_ROLE, labels: { "app.kubernetes.io/managed-by": "workstations" }, annotations: ADOPT_ANNOTATIONS },
          rules: READ_ONLY_RULES,
        },
        { parent: this, provider: this.provider },
      );
    this.registerOutputs({ navRole: this.navRole.metadata.name });
  }
}

export interface UserKubeArgs {
  cluster: KubeCluster;
}

export interface UserKubeParts {
  namespaces: k8sCore.Namespace[];
  /** Namespace -> the dashboard ServiceAccount token (secret), while the user has access. */
  dashboardTokens: Record<string, pulumi.Output<string>>;
  kubeconfig?: command.remote.Command;
  /** Resources later steps may wait for. */
  ready: pulumi.Resource[];
}

/** The Kubernetes resources only (no host side): what `userKube` adds besides the kubeconfig. */
export function userKubeResources(parent: pulumi.Resource, cluster: KubeCluster, p: UserPlan): Omit<UserKubeParts, "kubeconfig"> {
  const opts = { parent, provider: cluster.provider };
  const cfg = cluster.config;
  const n = kubeNames(p.name);
  const subject = { kind: "User", apiGroup: "rbac.authorization.k8s.io", name: oidcUsername(cfg, p) };
  const labels = { "app.kubernetes.io/managed-by": "workstations", [OWNER_LABEL]: p.name };
  const namespaces = p.namespaces.map(
    (ns) =>
      new k8sCore.Namespace(
        `${p.name}-ns-${ns}`,
        {
          metadata: { name: ns, labels: { ...labels, ...podSecurityLabels(cfg.podSecurity) }, annotations: ADOPT_ANNOTATIONS },
        },
        { ...opts, retainOnDelete: true },
      ),
  );
  const dashboardTokens: Record<string, pulumi.Output<string>> = {};
  const ready: pulumi.Resource[] = [...namespaces];
  const g = p.grants.kube;
  if (!g) return { namespaces, dashboardTokens, ready };

  const saSubjects: { kind: string; name: string; namespace: string }[] = [];
  g.namespaceAdmin.forEach((ns) => {
    const nsResources = namespaces.filter((_, i) => p.namespaces[i] === ns);
    // The cut of this namespace: everything below depends on it, so its delete runs last.
    const cut = new KubeNamespaceCut(`${p.name}-kube-cut-${ns}`, { namespace: ns, user: p.name }, { parent, dependsOn: nsResources });
    ready.push(cut);
    const nsOpts = { ...opts, dependsOn: [...nsResources, cut] };
    // `admin` in the namespace, for the user and for their dashboard ServiceAccount.
    const adminBinding = (resource: string, name: string, who: { kind: string; name: string; apiGroup?: string; namespace?: string }) =>
      new k8sRbac.RoleBinding(
        resource,
        {
          metadata: { name, namespace: ns, labels, annotations: ADOPT_ANNOTATIONS },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "admin" },
          subjects: [who],
        },
        nsOpts,
      );
    ready.push(adminBinding(`${p.name}-owner-${ns}`, n.ownerBinding, subject));
    const sa = new k8sCore.ServiceAccount(
      `${p.name}-dashboard-sa-${ns}`,
      {
        metadata: { name: n.dashboardAccount, namespace: ns, labels, annotations: ADOPT_ANNOTATIONS },
        automountServiceAccountToken: false,
      },
      nsOpts,
    );
    const saSubject = { kind: "ServiceAccount", name: n.dashboardAccount, namespace: ns };
    saSubjects.push(saSubject);
    ready.push(sa, adminBinding(`${p.name}-dashboard-binding-${ns}`, n.dashboardBinding, saSubject));
    // A long-lived token: the API server's tokens controller fills `data.token`, and the outputs
    // are the object this up applied (./tokenSecret.ts). The whole `data` is a secret output, so
    // the token is encrypted in the state.
    const secret = new k8sCore.Secret(
      `${p.name}-dashboard-token-${ns}`,
      {
        metadata: tokenSecretMetadata({
          name: n.dashboardToken,
          namespace: ns,
          labels,
          annotations: { ...ADOPT_ANNOTATIONS, "kubernetes.io/service-account.name": n.dashboardAccount },
        }),
        type: "kubernetes.io/service-account-token",
      },
      { ...opts, dependsOn: [sa], additionalSecretOutputs: ["data", "stringData"] },
    );
    ready.push(secret);
    dashboardTokens[ns] = pulumi.secret(secret.data.apply((d) => (d?.token ? Buffer.from(d.token, "base64").toString("utf8") : "")));
  });
  if (g.dashboardNav) {
    ready.push(
      new k8sRbac.ClusterRoleBinding(
        `${p.name}-dashboard-nav`,
        {
          metadata: { name: n.navBinding, labels, annotations: ADOPT_ANNOTATIONS },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: DASHBOARD_NAV_ROLE },
          subjects: [subject, ...saSubjects],
        },
        { ...opts, dependsOn: [cluster.navRole] },
      ),
    );
  }
  if (g.clusterAdmin) {
    ready.push(
      new k8sRbac.ClusterRoleBinding(
        `${p.name}-cluster-admin`,
        {
          metadata: { name: n.clusterAdminBinding, labels, annotations: ADOPT_ANNOTATIONS },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
          subjects: [subject],
        },
        opts,
      ),
    );
  }
  if (g.clusterReadOnly) {
    if (!cluster.readOnlyRole) throw new Error(`${p.name}: tier read-only, but the KubeCluster was made without readOnlyRole`);
    ready.push(
      new k8sRbac.ClusterRoleBinding(
        `${p.name}-read-only`,
        {
          metadata: { name: n.readOnlyBinding, labels, annotations: ADOPT_ANNOTATIONS },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: READ_ONLY_ROLE },
          subjects: [subject],
        },
        { ...opts, dependsOn: [cluster.readOnlyRole] },
      ),
    );
  }
  return { namespaces, dashboardTokens, ready };
}

/** One user's Kubernetes part: the resources above plus ~/.kube/config on the host. */
export function userKube(parent: pulumi.Resource, a: UserKubeArgs & { plan: UserPlan; connection: HostConnection; account: pulumi.Resource }): UserKubeParts {
  const p = a.plan;
  const parts = userKubeResources(parent, a.cluster, p);
  const body = kubeconfigBody(a.cluster.config, p);
  if (!body) return parts;
  const kubeconfig = new command.remote.Command(
    `${p.name}-kubeconfig`,
    {
      connection: commandConnection(a.connection),
      addPreviousOutputInEnv: false,
      create: kubeconfigDeliverScript(p),
      delete: kubeconfigRemoveScript(p),
      stdin: guardedKubeconfig(body),
    },
    { parent, dependsOn: [a.account] },
  );
  return { ...parts, kubeconfig, ready: [...parts.ready, kubeconfig] };
}
