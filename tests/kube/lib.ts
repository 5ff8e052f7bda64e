/**
 * Shared by the Kubernetes suites: whether they can run (the toolchain's kube part), and the
 * rule that under CI=true a missing binary FAILS (never a quiet skip).
 */
import { ToolchainMissingError, requireKubeToolchain } from "../../dev/services";

/** undefined when the kube binaries are present; a skip reason otherwise (throws under CI=true). */
export function kubeSkip(): string | undefined {
  try {
    requireKubeToolchain();
    return undefined;
  } catch (e) {
    if (!(e instanceof ToolchainMissingError)) throw e;
    if (process.env.CI === "true") return undefined; // the test itself then fails with the error
    return `SKIPPED (not under CI): ${e.message}`;
  }
}
