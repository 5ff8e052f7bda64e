/**
 * `workstations:index:DashboardInjector`: the Kubernetes dashboard's token injector, generated
 * from the web plan (components/plan/web.ts `Plan.web.dashboard`; README "Web access"), in the
 * dashboard's namespace (workstations:dashboardNamespace; off without it):
 *
 *  - the admin token the program manages: ServiceAccount `workstations-dashboard-admin`, bound
 *    to `cluster-admin`, with a long-lived token Secret;
 *  - Secret `workstations-dashboard-injector`, key `map.conf`: the nginx `map` from each mapped
 *    SSO identity to `Bearer <token>` (a namespace-owner's dashboard ServiceAccount token of
 *    their first namespace, an admin's the admin token), nothing for anyone else. A Secret,
 *    not a ConfigMap: namespace-owners may read ConfigMaps cluster-wide;
 *  - ConfigMap `workstations-dashboard-injector`, key `injector.conf`: the server block that
 *    includes the map (mounted at INJECTOR_MAP_PATH), refuses an identity without a token and
 *    replaces the client's Authorization header.
 *
 * Both come from one plan in one `up`: onboarding or suspending a namespace-owner changes the
 * map with nothing else to apply (a suspended owner's token Secret is deleted by the same up,
 * so the old token stops working too).
 */
import * as pulumi from "@pulumi/pulumi";
import * as k8sCore from "@pulumi/kubernetes/core/v1";
import * as k8sRbac from "@pulumi/kubernetes/rbac/v1";
import type { DashboardConfig } from "../config";
import type { KubeCluster } from "../kube";
import { tokenSecretMetadata } from "../kube/tokenSecret";
import { injectorMapConf, injectorServerConf, type InjectorEntry } from "../plan/web";

export const INJECTOR_NAME = "workstations-dashboard-injector";
export const ADMIN_ACCOUNT = "workstations-dashboard-admin";

export interface DashboardInjectorArgs {
  cluster: KubeCluster;
  config: DashboardConfig;
  /** The plan's injector entries (who gets whose token). */
  entries: readonly InjectorEntry[];
  /** Per user, namespace -> the token of their dashboard ServiceAccount (UserWorkstation.dashboardTokens). */
  tokens: Readonly<Record<string, Readonly<Record<string, pulumi.Output<string>>>>>;
}

export class DashboardInjector extends pulumi.ComponentResource {
  public readonly map: k8sCore.Secret;
  public readonly server: k8sCore.ConfigMap;

  constructor(name: string, args: DashboardInjectorArgs, opts?: pulumi.ComponentResourceOptions) {
    super("workstations:index:DashboardInjector", name, {}, opts);
    const ns = args.config.namespace;
    const k = { parent: this, provider: args.cluster.provider };
    const labels = { "app.kubernetes.io/managed-by": "workstations", "app.kubernetes.io/part-of": INJECTOR_NAME };
    const sa = new k8sCore.ServiceAccount(
      `${name}-admin-sa`,
      { metadata: { name: ADMIN_ACCOUNT, namespace: ns, labels }, automountServiceAccountToken: false },
      k,
    );
    const binding = new k8sRbac.ClusterRoleBinding(
      `${name}-admin-binding`,
      {
        metadata: { name: `workstations:${ADMIN_ACCOUNT}`, labels },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
        subjects: [{ kind: "ServiceAccount", name: ADMIN_ACCOUNT, namespace: ns }],
      },
      k,
    );
    const adminSecret = new k8sCore.Secret(
      `${name}-admin-token`,
      {
        metadata: tokenSecretMetadata({
          name: `${ADMIN_ACCOUNT}-token`,
          namespace: ns,
          labels,
          annotations: { "kubernetes.io/service-account.name": ADMIN_ACCOUNT },
        }),
        type: "kubernetes.io/service-account-token",
      },
      { ...k, dependsOn: [sa, binding], additionalSecretOutputs: ["data", "stringData"] },
    );
    const adminToken = adminSecret.data.apply((d) => (d?.token ? Buffer.from(d.token, "base64").toString("utf8") : ""));
    const tokenOf = (e: InjectorEntry): pulumi.Output<string> =>
      e.token.kind === "admin" ? adminToken : (args.tokens[e.user]?.[e.token.namespace] ?? pulumi.output(""));
    const mapConf = pulumi.all(args.entries.map((e) => tokenOf(e).apply((token) => ({ sso: e.sso, token })))).apply((entries) => injectorMapConf(entries));
    this.map = new k8sCore.Secret(
      `${name}-map`,
      { metadata: { name: INJECTOR_NAME, namespace: ns, labels }, type: "Opaque", stringData: { "map.conf": pulumi.secret(mapConf) } },
      { ...k, additionalSecretOutputs: ["data", "stringData"] },
    );
    this.server = new k8sCore.ConfigMap(
      `${name}-server`,
      { metadata: { name: INJECTOR_NAME, namespace: ns, labels }, data: { "injector.conf": injectorServerConf({ upstream: args.config.upstream }) } },
      k,
    );
    this.registerOutputs({});
  }
}
