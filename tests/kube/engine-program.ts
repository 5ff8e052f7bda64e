/**
 * The Kubernetes part of the program, alone, for the real engine (tests/kube/engine.test.ts):
 * the same KubeCluster and per-user resources (components/kube userKubeResources) under a
 * `workstations:index:UserWorkstation` component per user, from the same roster, plan and
 * config keys. The host side (accounts, ~/.kube/config) needs the command plugin, which the
 * module proxy here does not serve, so it is left out.
 */
import * as pulumi from "@pulumi/pulumi";
import { loadKubeConfig } from "../../components/config";
import { KubeCluster, userKubeResources } from "../../components/kube";
import { planRoster } from "../../components/plan";
import { loadRoster } from "../../components/roster/load";

export function main(): Record<string, pulumi.Output<unknown>> {
  const cfg = new pulumi.Config("workstations");
  const kube = loadKubeConfig(cfg);
  if (!kube) throw new Error("engine-program: workstations:kubeApiServer is not set");
  const plan = planRoster(loadRoster(cfg.require("roster")));
  const cluster = new KubeCluster("kube", { config: kube });
  const tokens: Record<string, pulumi.Output<string>> = {};
  for (const p of plan.users) {
    const ws = new pulumi.ComponentResource("workstations:index:UserWorkstation", p.name, {}, {});
    const parts = userKubeResources(ws, cluster, p);
    for (const [ns, t] of Object.entries(parts.dashboardTokens)) tokens[`${p.name}/${ns}`] = t;
  }
  return { dashboardTokens: pulumi.secret(pulumi.all(tokens)), users: pulumi.output(plan.users.map((u) => u.name)) };
}
