/**
 * `KubeNamespaceCut`: a Pulumi dynamic resource per (user, owned namespace) whose delete is the
 * Kubernetes access cut of that namespace (what it removes and why: ./sweep.js). It stores only
 * the namespace, the user and its state schema; the admin credential is read at run time by
 * ./client.js (the stack's secret `workstations:kubeconfig`, else KUBECONFIG of the CLI), like
 * the kubernetes provider, and is never an input or an output.
 *
 * Like components/forgejo/provider.ts, the engine stores a small loader of ./sweep.js, not the
 * code: the loader finds sweep.js from the project directory (where the engine starts the
 * provider process), else where it was at deploy time. Every later version of sweep.js must read
 * the state earlier versions wrote (`STATE_SCHEMAS` there).
 */
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { CutInputs } from "./sweep";
import { STATE_SCHEMA } from "./sweep";
import { LoaderResource, loaderText } from "../loaderProvider";

const CUT_FILE = path.join(__dirname, "sweep.js");

/** The provider object the engine stores: `configure` loads sweep.js and hands every call to it. */
function cutProvider(): pulumi.dynamic.ResourceProvider {
  const fromProject = path.relative(process.cwd(), CUT_FILE);
  const atDeploy = CUT_FILE;
  return {
    configure(req: pulumi.dynamic.ConfigureRequest) {
      const places = [require("path").resolve(fromProject), atDeploy];
      const file = places.find((f) => require("fs").existsSync(f));
      if (!file) throw new Error(`the Kubernetes access cut's code is not at ${[...new Set(places)].join(" or ")}: run pulumi in a checkout of this program`);
      const impl = require(file).namespaceCut;
      Object.assign(this, impl);
      return impl.configure(req);
    },
  } as unknown as pulumi.dynamic.ResourceProvider;
}

/** Its stored text, serialised once per content (components/loaderProvider.ts). */
let providerText: pulumi.Input<string> | undefined;

export interface KubeNamespaceCutArgs {
  namespace: pulumi.Input<string>;
  user: pulumi.Input<string>;
}

/**
 * Exists while `user` is `admin` in `namespace`. Make every object that grants the user access
 * there depend on it, so that its delete (the sweep) runs after theirs.
 */
export class KubeNamespaceCut extends LoaderResource {
  public readonly namespace!: pulumi.Output<string>;
  public readonly user!: pulumi.Output<string>;

  constructor(name: string, args: KubeNamespaceCutArgs, opts?: pulumi.CustomResourceOptions) {
    const inputs: { [K in keyof CutInputs]: pulumi.Input<CutInputs[K]> } = { ...args, providerSchema: STATE_SCHEMA };
    providerText ??= loaderText(__filename, [path.relative(process.cwd(), CUT_FILE), CUT_FILE], cutProvider());
    super(providerText, "kube", "NamespaceCut", name, inputs, opts);
  }
}
