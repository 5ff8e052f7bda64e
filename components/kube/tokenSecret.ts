/**
 * A long-lived ServiceAccount token Secret whose outputs are the object the `up` applied.
 *
 * The API server's tokens controller fills `data.token`, and the provider waits for it
 * (`pulumi.com/waitFor`) so the token is in the outputs. The provider waits through a shared
 * informer, and a Secret has no `metadata.generation` to tell a stale event from a fresh one:
 * the await can be handed the object as it was before the apply. When that object already
 * holds a token (Terraform's Secret being adopted, or the program's own on any update), it was
 * stored as the outputs, and the next `up` proposed `~metadata` again. Measured with 12 Secrets
 * on the real API server: adopted, 3 of 4 runs stored some stale; updated, 3 of 3 runs (2 to 4
 * of the 12) (tests/kube/adopt-tokens.test.ts).
 *
 * So each Secret carries a digest of its own inputs (APPLIED_ANNOTATION), and the wait names
 * it: only the object this apply wrote has it. Any change of the inputs changes the digest.
 */
import { createHash } from "node:crypto";

export const APPLIED_ANNOTATION = "workstations.example/applied";
export const WAIT_FOR_ANNOTATION = "pulumi.com/waitFor";

export interface TokenSecretMetadata {
  name: string;
  namespace: string;
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
}

/** What the provider waits for: the token, on the object whose applied digest is `digest`. */
export function tokenWaitFor(digest: string): string {
  return JSON.stringify(["jsonpath={.data.token}", `jsonpath={.metadata.annotations['${APPLIED_ANNOTATION}']}=${digest}`]);
}

/** The digest of a token Secret's inputs (its metadata and type), 16 hex digits. */
export function tokenSecretDigest(m: TokenSecretMetadata): string {
  const sorted = (o: Readonly<Record<string, string>>) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
  const canonical = JSON.stringify({
    type: "kubernetes.io/service-account-token",
    name: m.name,
    namespace: m.namespace,
    labels: sorted(m.labels),
    annotations: sorted(m.annotations),
  });
  return createHash("sha256").update(canonical).digest("hex").slice(0, 16);
}

/** The Secret's metadata: `m` with its applied digest and the wait that names it. */
export function tokenSecretMetadata(m: TokenSecretMetadata) {
  const digest = tokenSecretDigest(m);
  return {
    name: m.name,
    namespace: m.namespace,
    labels: { ...m.labels },
    annotations: { ...m.annotations, [APPLIED_ANNOTATION]: digest, [WAIT_FOR_ANNOTATION]: tokenWaitFor(digest) },
  };
}
