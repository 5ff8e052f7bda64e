/**
 * The program's Kubernetes objects applied to a real API server with kubectl, with the
 * engine's rules for them: every object the program registers is applied (server-side
 * apply); an object gone from the program is deleted, except that a protected one makes the
 * whole run refuse before deleting anything (Pulumi's "resource is protected" error), and a
 * retainOnDelete one would only leave the state. The manifests are the exact inputs captured
 * under mocks; the real engine runs the same resources in engine.test.ts.
 */
import { Captured, unsecret } from "../../dev/mocks";
import type { KubeServer } from "../../dev/services";

export interface KubeObject {
  name: string;
  manifest: any;
  protect: boolean;
  retainOnDelete: boolean;
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
    .filter((r) => r.type.startsWith("kubernetes:"))
    .map((r) => ({
      name: r.name,
      manifest: clean(unsecret(r.inputs)),
      protect: opts.get(r.name)?.protect ?? false,
      retainOnDelete: opts.get(r.name)?.retainOnDelete ?? false,
    }));
}

export class ProtectedError extends Error {}

export class KubeApplier {
  state = new Map<string, KubeObject>();
  constructor(private readonly kube: KubeServer) {}

  private async run(args: string[], input?: string): Promise<string> {
    const r = await this.kube.kubectl(args, { input });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  private async remove(objs: KubeObject[]): Promise<void> {
    for (const o of [...objs].reverse()) {
      if (o.retainOnDelete) continue;
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
    if (desired.length)
      await this.run(
        ["apply", "--server-side", "--force-conflicts", "--field-manager=workstations-test", "-f", "-"],
        JSON.stringify({ apiVersion: "v1", kind: "List", items: desired.map((d) => d.manifest) }),
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
