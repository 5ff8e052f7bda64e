/**
 * The program's Kubernetes objects applied to a real API server with kubectl, with the
 * engine's rules for them: every object the program registers is applied (server-side
 * apply); an object gone from the program is deleted, except that a protected one makes the
 * whole run refuse before deleting anything (Pulumi's "resource is protected" error), and a
 * retainOnDelete one would only leave the state. The manifests are the exact inputs captured
 * under mocks; the real engine runs the same resources in engine.test.ts.
 *
 * The access cut (`KubeNamespaceCut`, a dynamic resource) runs its real implementation
 * (components/kube/sweep.js, configured with the server's admin kubeconfig as the stack's
 * `workstations:kubeconfig`): create checks the credential, delete is the sweep. Deletes run
 * in reverse registration order, as the engine's dependency order does for these resources
 * (the program registers each cut before the objects that depend on it).
 */
import * as fs from "node:fs";
import { Captured, unsecret } from "../../dev/mocks";
import type { KubeServer } from "../../dev/services";

const CUT_TYPE = "pulumi-nodejs:dynamic/kube:NamespaceCut";
/** The cut's implementation, loaded when the program has a cut (the program before it had none). */
const cutImpl = () => require("../../components/kube/sweep").namespaceCut;

export interface KubeObject {
  name: string;
  manifest: any;
  protect: boolean;
  retainOnDelete: boolean;
  /** The inputs of an access cut (then `manifest` is unused). */
  cut?: { namespace: string; user: string; providerSchema: string };
}

function clean(v: any): any {
  if (Array.isArray(v)) return v.map(clean);
  if (v && typeof v === "object")
    return Object.fromEntries(
      Object.entries(v)
        .filter(([, x]) => x !== undefined && x !== null)
        .map(([k, x]) => [k, clean(x)]),
    );
  return v;
}

export function kubeObjects(resources: Captured[], opts: { get(name: string): { protect: boolean; retainOnDelete: boolean } | undefined }): KubeObject[] {
  return resources
    .filter((r) => r.type.startsWith("kubernetes:") || r.type === CUT_TYPE)
    .map((r) => {
      const inputs = unsecret(r.inputs);
      return {
        name: r.name,
        manifest: r.type === CUT_TYPE ? undefined : clean(inputs),
        protect: opts.get(r.name)?.protect ?? false,
        retainOnDelete: opts.get(r.name)?.retainOnDelete ?? false,
        ...(r.type === CUT_TYPE ? { cut: { namespace: inputs.namespace, user: inputs.user, providerSchema: inputs.providerSchema } } : {}),
      };
    });
}

export class ProtectedError extends Error {}

export class KubeApplier {
  state = new Map<string, KubeObject>();
  constructor(private readonly kube: KubeServer) {}

  /** The cut's provider, configured with this server's admin kubeconfig as the stack's `workstations:kubeconfig`. */
  private async cut() {
    const impl = cutImpl();
    const kubeconfig = fs.readFileSync(this.kube.adminKubeconfig, "utf8");
    await impl.configure({ config: { get: (k: string) => (k === "workstations:kubeconfig" ? kubeconfig : undefined) } });
    return impl;
  }

  private async run(args: string[], input?: string): Promise<string> {
    const r = await this.kube.kubectl(args, { input });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  private async remove(objs: KubeObject[]): Promise<void> {
    for (const o of [...objs].reverse()) {
      if (o.retainOnDelete) continue;
      if (o.cut) {
        await (await this.cut()).delete(`${o.cut.namespace}/${o.cut.user}`, o.cut);
        continue;
      }
      const m = o.manifest;
      await this.run([
        "delete",
        "--ignore-not-found",
        "--wait=false",
        `${m.kind}.${m.apiVersion.includes("/") ? m.apiVersion.split("/")[0] : ""}`.replace(/\.$/, ""),
        m.metadata.name,
        ...(m.metadata.namespace ? ["-n", m.metadata.namespace] : []),
      ]);
    }
  }

  /** One `pulumi up` of these objects. */
  async up(desired: KubeObject[]): Promise<void> {
    const keep = new Set(desired.map((d) => d.name));
    const gone = [...this.state.values()].filter((o) => !keep.has(o.name));
    const prot = gone.filter((o) => o.protect);
    if (prot.length) throw new ProtectedError(`refusing to delete protected resource(s): ${prot.map((o) => o.name).join(", ")}`);
    for (const d of desired) if (d.cut && !this.state.has(d.name)) await (await this.cut()).create(d.cut);
    const manifests = desired.filter((d) => !d.cut).map((d) => d.manifest);
    if (manifests.length)
      await this.run(
        ["apply", "--server-side", "--force-conflicts", "--field-manager=workstations-test", "-f", "-"],
        JSON.stringify({ apiVersion: "v1", kind: "List", items: manifests }),
      );
    for (const d of desired) this.state.set(d.name, d);
    await this.remove(gone);
    for (const g of gone) this.state.delete(g.name);
  }

  /** `pulumi destroy --target <those>`. */
  async destroy(match: (name: string) => boolean): Promise<void> {
    const gone = [...this.state.values()].filter((o) => match(o.name));
    const prot = gone.filter((o) => o.protect);
    if (prot.length) throw new ProtectedError(`refusing to delete protected resource(s): ${prot.map((o) => o.name).join(", ")}`);
    await this.remove(gone);
    for (const g of gone) this.state.delete(g.name);
  }
}
