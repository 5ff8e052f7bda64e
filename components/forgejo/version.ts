/**
 * The Forgejo provider code's version: a hash of the modules that are serialised into the
 * state with the dynamic providers (provider.ts and api.ts). Every resource carries it as the
 * `providerVersion` input, so any edit of that code shows up as an update (which stores the
 * new code in the state) instead of being ignored until the resource is deleted with stale
 * code. Kept out of provider.ts so the providers do not capture `fs` or `crypto`.
 */
import * as crypto from "crypto";
import * as fs from "fs";

/** Bump to mark an incompatible change of the resources' state shape. */
export const PROVIDER_SCHEMA = "1";

export function providerVersion(): string {
  const h = crypto.createHash("sha256");
  for (const m of ["./api", "./provider"]) h.update(fs.readFileSync(require.resolve(m)));
  return `${PROVIDER_SCHEMA}+${h.digest("hex").slice(0, 12)}`;
}
