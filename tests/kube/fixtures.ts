/** Kubernetes test fixtures shared by the mock and the real-cluster suites. */
const runtimeResource = require("@pulumi/pulumi/runtime/resource");

export const TEST_CA = "-----BEGIN CERTIFICATE-----\nMIIBfakeCAforMocksOnly\n-----END CERTIFICATE-----\n";

/** Stack config (keys without the namespace) that turns the Kubernetes parts on. */
export const KUBE_CONFIG: Record<string, string | undefined> = {
  kubeApiServer: "https://k8s.test:6443",
  kubeCaCert: TEST_CA,
  kubeOidcIssuer: "https://sso.test/application/o/kubernetes/",
  kubeOidcClientId: "kubernetes",
};

export interface RecordedOptions {
  protect: boolean;
  retainOnDelete: boolean;
  /** Names of the resources given in `dependsOn` (a plain array; none for another form). */
  dependsOn: string[];
}

/**
 * Records `protect`, `retainOnDelete` and `dependsOn` of every resource registered while
 * active (the mock monitor does not see resource options): wraps the SDK's registerResource.
 */
export function recordedOptions(): { get(name: string): RecordedOptions | undefined; stop(): void } {
  const seen = new Map<string, RecordedOptions>();
  const orig = runtimeResource.registerResource;
  runtimeResource.registerResource = function (
    res: unknown,
    parent: unknown,
    t: string,
    name: string,
    custom: boolean,
    remote: boolean,
    newDep: unknown,
    props: unknown,
    opts: any,
    ...rest: unknown[]
  ) {
    const deps = Array.isArray(opts?.dependsOn) ? opts.dependsOn.map((r: any) => String(r?.__name)) : [];
    seen.set(name, { protect: !!opts?.protect, retainOnDelete: !!opts?.retainOnDelete, dependsOn: deps });
    return orig.call(this, res, parent, t, name, custom, remote, newDep, props, opts, ...rest);
  };
  return {
    get: (n) => seen.get(n),
    stop: () => {
      runtimeResource.registerResource = orig;
    },
  };
}
