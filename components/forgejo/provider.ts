/**
 * Typed Pulumi dynamic resources over the Forgejo/Gitea REST API v1 (`@pulumi/gitea` does not
 * exist on npm; a dynamic provider needs no resource plugin, so these run under the real
 * engine wherever the CLI does):
 *
 * - `ForgejoCollaborator`: a user's collaborator permission on a repo.
 * - `ForgejoBranchProtection`: a branch's protection rule (push and merge whitelists, deploy
 *   keys may push, no force push, no deletion, admins bound too), in the server's dialect.
 * - `ForgejoAccessToken`: a personal access token of a user, created with a site admin's Basic
 *   auth. The token is a secret output (`additionalSecretOutputs`), never an input.
 *
 * What they do is ./providers.js (with ./api.js), plain CommonJS. How dynamic providers work
 * decides the rest (checked under CLI v3.259.0, see README "Forgejo"):
 * - The engine stores each resource's provider object, serialised with everything it
 *   references, in the state (`__provider`, in inputs and outputs), and runs that stored
 *   code for delete and refresh. Serialising the providers themselves cost 12.8 to 25.6 KB
 *   of state per user, twice. So the stored provider is the small loader of `forgejoProvider`
 *   below (about 1 KB): it loads providers.js by path, from the project directory
 *   (where the engine starts the provider process), else from where it was at deploy time.
 *   Every version of providers.js must therefore read the state earlier versions wrote; its
 *   `STATE_SCHEMAS` says which it does, and it refuses others with one line.
 * - The admin credential is never an input or an output: providers.js reads it at run time
 *   (the stack's config, secrets decrypted, in `configure`; else `FORGEJO_ADMIN_USER` /
 *   `FORGEJO_ADMIN_PASSWORD` of the `pulumi` CLI). `process.env` set by the program does NOT
 *   reach the provider: it is another process, started by the engine.
 */
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type {
  AccessTokenInputs,
  AccessTokenOutputs,
  BranchProtectionInputs,
  BranchProtectionOutputs,
  CollaboratorInputs,
  CollaboratorOutputs,
} from "./providers";
import { STATE_SCHEMA } from "./providers";
import { LoaderResource, loaderText } from "../loaderProvider";

/** `I` as resource args: every field an `Input`; the `Opt` fields optional (the constructor has defaults). */
type ArgsOf<I, Opt extends keyof I = never> = { [K in Exclude<keyof I, Opt>]: pulumi.Input<I[K]> } & { [K in Opt]?: pulumi.Input<I[K]> };

/** Narrowest scopes that let git fetch and push over HTTP (Gitea 1.26: `read:repository` fetches but cannot push). */
export const GIT_TOKEN_SCOPES = ["write:repository"] as const;

/** The implementation's file. */
const PROVIDERS_FILE = path.join(__dirname, "providers.js");

type Kind = "collaborator" | "branchProtection" | "accessToken";

/**
 * The provider object the engine stores with each resource: a loader of `kind` from
 * providers.js. The engine's dynamic-provider process calls `configure` on a provider object
 * before anything else (`getProvider` in @pulumi/pulumi's cmd/dynamic-provider), so that is
 * its only method: it loads the implementation and takes over its methods, and every later
 * call (check, diff, create, update, delete, read) goes to them. It captures two strings (the
 * file relative to the project directory, and its absolute path at deploy time) and nothing
 * else of this module: keep it that way (the engine-cost test bounds its size).
 */
function forgejoProvider(kind: Kind): pulumi.dynamic.ResourceProvider {
  const fromProject = path.relative(process.cwd(), PROVIDERS_FILE);
  const atDeploy = PROVIDERS_FILE;
  return {
    configure(req: pulumi.dynamic.ConfigureRequest) {
      const places = [require("path").resolve(fromProject), atDeploy];
      const file = places.find((f) => require("fs").existsSync(f));
      if (!file) throw new Error(`the Forgejo provider's code is not at ${[...new Set(places)].join(" or ")}: run pulumi in a checkout of this program`);
      const impl = require(file)[kind];
      Object.assign(this, impl);
      return impl.configure(req);
    },
  } as unknown as pulumi.dynamic.ResourceProvider;
}

/** One loader per kind, made once, and its stored text (serialised once per content: components/loaderProvider.ts). */
const providerTexts = new Map<Kind, pulumi.Input<string>>();
function providerText(kind: Kind): pulumi.Input<string> {
  let text = providerTexts.get(kind);
  if (text === undefined) {
    text = loaderText(__filename, [kind, path.relative(process.cwd(), PROVIDERS_FILE), PROVIDERS_FILE], forgejoProvider(kind));
    providerTexts.set(kind, text);
  }
  return text;
}

/**
 * The class of one kind of Forgejo resource, typed from its Inputs `I` and Outputs `O` (each
 * field of `O` an `Output` property the engine sets, so those types are the one place a
 * resource's shape is written). `defaults` fill the optional args (`providerSchema` always);
 * `outputs`, the outputs that are not inputs, are registered unknown; `secret` outputs are
 * always secret, whatever the caller passes.
 */
function forgejoResource<I, O extends I, Opt extends keyof I>(spec: {
  kind: Kind;
  type: string;
  defaults: () => { [K in Exclude<Opt, "providerSchema">]: I[K] };
  outputs: Exclude<keyof O, keyof I>[];
  secret?: Exclude<keyof O, keyof I>[];
}) {
  type Args = ArgsOf<I, Opt | ("providerSchema" & keyof I)>;
  return class extends LoaderResource {
    constructor(name: string, args: Args, opts?: pulumi.CustomResourceOptions) {
      const unknowns = Object.fromEntries(spec.outputs.map((k) => [k, undefined]));
      const secret = [...new Set([...(spec.secret ?? []).map(String), ...(opts?.additionalSecretOutputs ?? [])])];
      super(
        providerText(spec.kind),
        "forgejo",
        spec.type,
        name,
        { providerSchema: STATE_SCHEMA, ...spec.defaults(), ...args, ...unknowns },
        secret.length ? { ...opts, additionalSecretOutputs: secret } : opts,
      );
    }
  } as unknown as new (
    name: string,
    args: Args,
    opts?: pulumi.CustomResourceOptions,
  ) => LoaderResource & {
    readonly [K in keyof O]-?: pulumi.Output<O[K]>;
  };
}

/** Args of `ForgejoCollaborator` (the fields of `CollaboratorInputs`). */
export type ForgejoCollaboratorArgs = ArgsOf<CollaboratorInputs, "providerSchema">;
/** A user's collaborator permission on a repo. Delete removes the collaboration (never the account). */
export class ForgejoCollaborator extends forgejoResource<CollaboratorInputs, CollaboratorOutputs, "providerSchema">({
  kind: "collaborator",
  type: "Collaborator",
  defaults: () => ({}),
  outputs: [],
}) {}

/** Args of `ForgejoBranchProtection` (the fields of `BranchProtectionInputs`; `branch` defaults to `master`). */
export type ForgejoBranchProtectionArgs = ArgsOf<BranchProtectionInputs, "branch" | "providerSchema">;
/**
 * The protection rule of one branch. Make every whitelisted user a write collaborator first
 * (`dependsOn`): the write is read back and fails if the server dropped anyone.
 */
export class ForgejoBranchProtection extends forgejoResource<BranchProtectionInputs, BranchProtectionOutputs, "branch" | "providerSchema">({
  kind: "branchProtection",
  type: "BranchProtection",
  defaults: () => ({ branch: "master" }),
  outputs: ["server", "dialect", "policyDrift"],
}) {}

/** Args of `ForgejoAccessToken` (the fields of `AccessTokenInputs`; `scopes` defaults to GIT_TOKEN_SCOPES). */
export type ForgejoAccessTokenArgs = ArgsOf<AccessTokenInputs, "scopes" | "providerSchema">;
/** A user's access token. `token` is a secret output (`additionalSecretOutputs`, always); delete revokes it. */
export class ForgejoAccessToken extends forgejoResource<AccessTokenInputs, AccessTokenOutputs, "scopes" | "providerSchema">({
  kind: "accessToken",
  type: "AccessToken",
  defaults: () => ({ scopes: [...GIT_TOKEN_SCOPES] }),
  outputs: ["tokenId", "lastEight", "token"],
  secret: ["token"],
}) {}
