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
 * Rules that come from how dynamic providers work (checked under CLI v3.259.0, see README
 * "Forgejo"):
 * - The provider objects below are serialised into the state with everything they reference
 *   (this module's functions and ./api); delete runs the code stored in state. Every resource
 *   carries `providerVersion` (a hash of this module and ./api, see version.ts), so a code
 *   change is an update (which stores the new code) and never a replace.
 * - The admin credential is never an input or an output. It is read at run time, inside the
 *   provider process: the engine hands the provider the stack's config (secrets decrypted) in
 *   `configure`; `FORGEJO_ADMIN_USER`/`FORGEJO_ADMIN_PASSWORD` from the environment of the
 *   `pulumi` CLI are the fallback. `process.env` set by the program does NOT reach the
 *   provider: it is another process, started by the engine.
 * - `read` backs `pulumi refresh` (and `--refresh`): it stores what the server has, so a
 *   protection or permission changed by hand shows up as a diff and `up` puts it back.
 *
 * Nothing in the provider objects may reference `@pulumi/pulumi`.
 */
import * as pulumi from "@pulumi/pulumi";
import * as api from "./api";
import { providerVersion } from "./version";

/**
 * `pulumi.dynamic.Resource` typed with its outputs `O`: each field of `O` is an
 * `Output` property (the engine sets them), so the Outputs interfaces are the one place the
 * resources' shapes are written.
 */
function typedResource<O>() {
  return pulumi.dynamic.Resource as unknown as new (
    provider: pulumi.dynamic.ResourceProvider,
    name: string,
    props: pulumi.Inputs,
    opts?: pulumi.CustomResourceOptions,
    module?: string,
    type?: string,
  ) => pulumi.dynamic.Resource & { readonly [K in keyof O]-?: pulumi.Output<O[K]> };
}

/** `I` as resource args: every field an `Input`; the `Opt` fields optional (the constructor has defaults). */
type ArgsOf<I, Opt extends keyof I = never> = { [K in Exclude<keyof I, Opt>]: pulumi.Input<I[K]> } & { [K in Opt]?: pulumi.Input<I[K]> };

/** The provider code's version (changes with every edit of this module or ./api). */
export const PROVIDER_VERSION = providerVersion();

/** Narrowest scopes that let git fetch and push over HTTP (Gitea 1.26: `read:repository` fetches but cannot push). */
export const GIT_TOKEN_SCOPES = ["write:repository"] as const;

// ---------------------------------------------------------------------------------------
// Shared helpers (serialised with the providers).

/** The engine's placeholder for a value not known during preview. */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

function adminCredentials(): api.ForgejoCredentials {
  const cfg = (globalThis as any).__workstationsForgejoConfig as { get(k: string): string | undefined } | undefined;
  const get = (k: string) => {
    try {
      return cfg?.get(k);
    } catch {
      return undefined;
    }
  };
  const user = get("workstations:forgejoAdminUser") || process.env.FORGEJO_ADMIN_USER;
  const password = get("workstations:forgejoAdminPassword") || process.env.FORGEJO_ADMIN_PASSWORD;
  if (!user || !password)
    throw new Error(
      "the Forgejo provider has no admin credential: set workstations:forgejoAdminUser and the secret workstations:forgejoAdminPassword (or FORGEJO_ADMIN_USER/FORGEJO_ADMIN_PASSWORD in the environment of the pulumi CLI)",
    );
  return { user, password };
}

async function configure(req: { config: { get(k: string): string | undefined } }): Promise<void> {
  (globalThis as any).__workstationsForgejoConfig = req.config;
}

function repoPath(repo: string): string {
  return "/repos/" + repo.split("/").map(encodeURIComponent).join("/");
}

const lc = (s: unknown) => String(s ?? "").toLowerCase();

/** Throws one line for 401/403 (the credential), otherwise for any unexpected status. */
function expect(url: string, method: string, path: string, a: api.ApiAnswer, ok: number[], what: string): void {
  if (ok.includes(a.status)) return;
  if (a.status === 401)
    throw new Error(
      `Forgejo at ${api.displayUrl(url)} refused the admin credential (HTTP 401) while ${what}: check workstations:forgejoAdminUser/forgejoAdminPassword`,
    );
  throw api.answerError(url, method, path, a, what);
}

type Failure = { property: string; reason: string };

function checkFields(news: Record<string, any>, rules: Record<string, (v: any) => string | undefined>): Failure[] {
  const failures: Failure[] = [];
  for (const [k, rule] of Object.entries(rules)) {
    const v = news[k];
    if (v === UNKNOWN) continue;
    const why = rule(v);
    if (why) failures.push({ property: k, reason: `${k} ${why} (got ${JSON.stringify(v)})` });
  }
  return failures;
}

const isUrl = (v: any) => (typeof v === "string" && /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(v) ? undefined : "must be an http(s) URL");
const isRepo = (v: any) => (typeof v === "string" && /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(v) ? undefined : "must be owner/name");
const isUser = (v: any) => (typeof v === "string" && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,39}$/.test(v) ? undefined : "must be a Forgejo user name");
const isVersion = (v: any) => (typeof v === "string" && v.length > 0 ? undefined : "must be a non-empty string");
const isUserList = (v: any) =>
  Array.isArray(v) && v.every((x) => typeof x === "string" && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,39}$/.test(x))
    ? undefined
    : "must be a list of Forgejo user names";

// ---------------------------------------------------------------------------------------
// Collaborator

export type CollaboratorPermission = "read" | "write" | "admin";

export interface CollaboratorInputs {
  url: string;
  repo: string;
  user: string;
  permission: CollaboratorPermission;
  providerVersion: string;
}

export type CollaboratorOutputs = CollaboratorInputs;

async function readPermission(url: string, creds: api.ForgejoCredentials, repo: string, user: string, desired: string): Promise<string | undefined> {
  const p = `${repoPath(repo)}/collaborators/${encodeURIComponent(user)}`;
  const is = await api.forgejoRequest(url, creds, "GET", p);
  if (is.status === 404) return undefined;
  expect(url, "GET", p, is, [204], `reading ${user}'s collaboration on ${repo}`);
  const perm = await api.forgejoRequest(url, creds, "GET", `${p}/permission`);
  expect(url, "GET", `${p}/permission`, perm, [200], `reading ${user}'s permission on ${repo}`);
  const live = String(perm.json?.permission ?? "");
  // A site admin's effective permission is "owner"/"admin" whatever the collaboration says: the
  // API does not show the collaboration's own mode then, so there is nothing to compare.
  if (live === "owner" || perm.json?.user?.is_admin === true) return desired;
  return live;
}

export const collaboratorProvider = {
  configure,
  async check(_olds: CollaboratorInputs, news: CollaboratorInputs) {
    const failures = checkFields(news, {
      url: isUrl,
      repo: isRepo,
      user: isUser,
      permission: (v) => (["read", "write", "admin"].includes(v) ? undefined : "must be read, write or admin"),
      providerVersion: isVersion,
    });
    return { inputs: news, failures };
  },
  async diff(_id: string, olds: CollaboratorOutputs, news: CollaboratorInputs) {
    const replaces: string[] = [];
    if (lc(olds.repo) !== lc(news.repo)) replaces.push("repo");
    if (lc(olds.user) !== lc(news.user)) replaces.push("user");
    const changes = replaces.length > 0 || olds.permission !== news.permission || olds.url !== news.url || olds.providerVersion !== news.providerVersion;
    return { changes, replaces, deleteBeforeReplace: false };
  },
  async create(inputs: CollaboratorInputs) {
    const creds = adminCredentials();
    const p = `${repoPath(inputs.repo)}/collaborators/${encodeURIComponent(inputs.user)}`;
    const a = await api.forgejoRequest(inputs.url, creds, "PUT", p, { permission: inputs.permission });
    if (a.status === 404) {
      const u = await api.forgejoRequest(inputs.url, creds, "GET", `/users/${encodeURIComponent(inputs.user)}`);
      throw new Error(
        u.status === 404
          ? `Forgejo at ${api.displayUrl(inputs.url)}: user ${inputs.user} does not exist (the program never creates Forgejo accounts)`
          : `Forgejo at ${api.displayUrl(inputs.url)}: repo ${inputs.repo} does not exist`,
      );
    }
    expect(inputs.url, "PUT", p, a, [204], `making ${inputs.user} a ${inputs.permission} collaborator of ${inputs.repo}`);
    return { id: `${inputs.repo}:${inputs.user}`, outs: { ...inputs } };
  },
  async update(_id: string, _olds: CollaboratorOutputs, news: CollaboratorInputs) {
    const creds = adminCredentials();
    const p = `${repoPath(news.repo)}/collaborators/${encodeURIComponent(news.user)}`;
    const a = await api.forgejoRequest(news.url, creds, "PUT", p, { permission: news.permission });
    expect(news.url, "PUT", p, a, [204], `setting ${news.user}'s permission on ${news.repo} to ${news.permission}`);
    return { outs: { ...news } };
  },
  async delete(_id: string, props: CollaboratorOutputs) {
    const creds = adminCredentials();
    const p = `${repoPath(props.repo)}/collaborators/${encodeURIComponent(props.user)}`;
    const a = await api.forgejoRequest(props.url, creds, "DELETE", p);
    expect(props.url, "DELETE", p, a, [204, 404], `removing ${props.user} from the collaborators of ${props.repo}`);
  },
  async read(id: string, props: CollaboratorOutputs) {
    const creds = adminCredentials();
    const live = await readPermission(props.url, creds, props.repo, props.user, props.permission);
    if (live === undefined) return { id: "", props: {} };
    return { id, props: { ...props, permission: live } };
  },
};

/** Args of `ForgejoCollaborator` (the fields of `CollaboratorInputs`). */
export type ForgejoCollaboratorArgs = ArgsOf<CollaboratorInputs, "providerVersion">;

/** A user's collaborator permission on a repo. Delete removes the collaboration (never the account). */
export class ForgejoCollaborator extends typedResource<CollaboratorOutputs>() {
  constructor(name: string, args: ForgejoCollaboratorArgs, opts?: pulumi.CustomResourceOptions) {
    super(collaboratorProvider, name, { providerVersion: PROVIDER_VERSION, ...args }, opts, "forgejo", "Collaborator");
  }
}

// ---------------------------------------------------------------------------------------
// Branch protection

export interface BranchProtectionInputs {
  url: string;
  repo: string;
  branch: string;
  pushWhitelist: string[];
  mergeWhitelist: string[];
  providerVersion: string;
}

export interface BranchProtectionOutputs extends BranchProtectionInputs {
  /** e.g. "gitea 1.26.3" */
  server: string;
  dialect: api.Dialect;
  /** Where the live rule departs from the fixed policy (after a refresh); empty = conforms. */
  policyDrift: string[];
}

async function readProtection(url: string, creds: api.ForgejoCredentials, repo: string, branch: string): Promise<any | undefined> {
  const p = `${repoPath(repo)}/branch_protections/${encodeURIComponent(branch)}`;
  const a = await api.forgejoRequest(url, creds, "GET", p);
  if (a.status === 404) return undefined;
  expect(url, "GET", p, a, [200], `reading the protection of ${repo} ${branch}`);
  return a.json;
}

/** Writes the rule (POST, or PATCH when one exists), reads it back, and fails if the server did not keep it. */
async function writeProtection(inputs: BranchProtectionInputs): Promise<BranchProtectionOutputs> {
  const creds = adminCredentials();
  const server = await api.detectServer(inputs.url, creds);
  const spec = { branch: inputs.branch, pushWhitelist: inputs.pushWhitelist, mergeWhitelist: inputs.mergeWhitelist };
  // Forgejo and Gitea silently drop whitelisted users who cannot write: refuse before writing
  // anything (so a plan/collaborator mismatch never half-applies), and check again after.
  const lacking: string[] = [];
  for (const u of api.normNames([...inputs.pushWhitelist, ...inputs.mergeWhitelist])) {
    const p = `${repoPath(inputs.repo)}/collaborators/${encodeURIComponent(u)}/permission`;
    const a = await api.forgejoRequest(inputs.url, creds, "GET", p);
    if (a.status === 404) lacking.push(`${u} (no such user)`);
    else {
      expect(inputs.url, "GET", p, a, [200], `checking ${u}'s permission on ${inputs.repo}`);
      const perm = String(a.json?.permission ?? "none");
      if (!["write", "admin", "owner"].includes(perm)) lacking.push(`${u} (${perm})`);
    }
  }
  if (lacking.length)
    throw new Error(
      `Forgejo at ${api.displayUrl(inputs.url)}: not writing the protection of ${inputs.repo} ${inputs.branch}: whitelisted user${lacking.length > 1 ? "s" : ""} ${lacking.join(", ")} cannot write to the repo (the server would drop them; make them write collaborators first)`,
    );
  const existing = await readProtection(inputs.url, creds, inputs.repo, inputs.branch);
  const base = `${repoPath(inputs.repo)}/branch_protections`;
  if (existing) {
    const p = `${base}/${encodeURIComponent(inputs.branch)}`;
    const a = await api.forgejoRequest(inputs.url, creds, "PATCH", p, api.protectionBody(server.dialect, spec, false));
    expect(inputs.url, "PATCH", p, a, [200], `updating the protection of ${inputs.repo} ${inputs.branch}`);
  } else {
    const a = await api.forgejoRequest(inputs.url, creds, "POST", base, api.protectionBody(server.dialect, spec, true));
    if (a.status === 404) throw new Error(`Forgejo at ${api.displayUrl(inputs.url)}: repo ${inputs.repo} does not exist`);
    expect(inputs.url, "POST", base, a, [201], `protecting ${inputs.repo} ${inputs.branch}`);
  }
  const live = await readProtection(inputs.url, creds, inputs.repo, inputs.branch);
  if (!live) throw new Error(`Forgejo at ${api.displayUrl(inputs.url)}: the protection of ${inputs.repo} ${inputs.branch} is gone right after writing it`);
  // Forgejo and Gitea silently drop whitelisted users who cannot write to the repo.
  const problems: string[] = [];
  for (const [list, field] of [
    ["push", "push_whitelist_usernames"],
    ["merge", "merge_whitelist_usernames"],
  ] as const) {
    const want = api.normNames(list === "push" ? inputs.pushWhitelist : inputs.mergeWhitelist);
    const got = api.normNames(live[field]);
    const dropped = want.filter((u) => !got.includes(u));
    const extra = got.filter((u) => !want.includes(u));
    if (dropped.length)
      problems.push(
        `dropped ${dropped.join(", ")} from the ${list} whitelist (only users with write access can be whitelisted: make them write collaborators first)`,
      );
    if (extra.length) problems.push(`kept ${extra.join(", ")} on the ${list} whitelist`);
  }
  const drift = api.protectionPolicyDrift(server.dialect, live);
  if (drift.length) problems.push(`did not keep the policy (${drift.join("; ")})`);
  if (problems.length)
    throw new Error(
      `Forgejo at ${api.displayUrl(inputs.url)} (${server.kind} ${server.version}), ${inputs.repo} ${inputs.branch}: the server ${problems.join("; ")}`,
    );
  return { ...inputs, server: `${server.kind} ${server.version}`, dialect: server.dialect, policyDrift: [] };
}

export const branchProtectionProvider = {
  configure,
  async check(_olds: BranchProtectionInputs, news: BranchProtectionInputs) {
    const failures = checkFields(news, {
      url: isUrl,
      repo: isRepo,
      branch: (v) => (typeof v === "string" && /^[A-Za-z0-9._/-]{1,100}$/.test(v) && !v.includes("..") ? undefined : "must be a branch name"),
      pushWhitelist: isUserList,
      mergeWhitelist: isUserList,
      providerVersion: isVersion,
    });
    return { inputs: news, failures };
  },
  async diff(_id: string, olds: BranchProtectionOutputs, news: BranchProtectionInputs) {
    const replaces: string[] = [];
    if (lc(olds.repo) !== lc(news.repo)) replaces.push("repo");
    if (olds.branch !== news.branch) replaces.push("branch");
    const changes =
      replaces.length > 0 ||
      !api.sameNames(olds.pushWhitelist, news.pushWhitelist) ||
      !api.sameNames(olds.mergeWhitelist, news.mergeWhitelist) ||
      (olds.policyDrift ?? []).length > 0 ||
      olds.url !== news.url ||
      olds.providerVersion !== news.providerVersion;
    return { changes, replaces, deleteBeforeReplace: false };
  },
  async create(inputs: BranchProtectionInputs) {
    const outs = await writeProtection(inputs);
    return { id: `${inputs.repo}:${inputs.branch}`, outs };
  },
  async update(_id: string, _olds: BranchProtectionOutputs, news: BranchProtectionInputs) {
    return { outs: await writeProtection(news) };
  },
  async delete(_id: string, props: BranchProtectionOutputs) {
    const creds = adminCredentials();
    const p = `${repoPath(props.repo)}/branch_protections/${encodeURIComponent(props.branch)}`;
    const a = await api.forgejoRequest(props.url, creds, "DELETE", p);
    expect(props.url, "DELETE", p, a, [204, 404], `removing the protection of ${props.repo} ${props.branch}`);
  },
  async read(id: string, props: BranchProtectionOutputs) {
    const creds = adminCredentials();
    const server = await api.detectServer(props.url, creds);
    const live = await readProtection(props.url, creds, props.repo, props.branch);
    if (!live) return { id: "", props: {} };
    const keep = (mine: string[], theirs: string[]) => (api.sameNames(mine, theirs) ? mine : [...(theirs ?? [])].sort());
    return {
      id,
      props: {
        ...props,
        pushWhitelist: keep(props.pushWhitelist, live.push_whitelist_usernames),
        mergeWhitelist: keep(props.mergeWhitelist, live.merge_whitelist_usernames),
        server: `${server.kind} ${server.version}`,
        dialect: server.dialect,
        policyDrift: api.protectionPolicyDrift(server.dialect, live),
      },
    };
  },
};

/** Args of `ForgejoBranchProtection` (the fields of `BranchProtectionInputs`; `branch` defaults to `master`). */
export type ForgejoBranchProtectionArgs = ArgsOf<BranchProtectionInputs, "branch" | "providerVersion">;

/**
 * The protection rule of one branch. Make every whitelisted user a write collaborator first
 * (`dependsOn`): the write is read back and fails if the server dropped anyone.
 */
export class ForgejoBranchProtection extends typedResource<BranchProtectionOutputs>() {
  constructor(name: string, args: ForgejoBranchProtectionArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      branchProtectionProvider,
      name,
      {
        branch: "master",
        providerVersion: PROVIDER_VERSION,
        ...args,
        server: undefined,
        dialect: undefined,
        policyDrift: undefined,
      },
      opts,
      "forgejo",
      "BranchProtection",
    );
  }
}

// ---------------------------------------------------------------------------------------
// Access token

export interface AccessTokenInputs {
  url: string;
  user: string;
  /** Unique per user; carries the rotation, so a rotation is a new name and a replace. */
  tokenName: string;
  scopes: string[];
  providerVersion: string;
}

export interface AccessTokenOutputs extends AccessTokenInputs {
  tokenId: number;
  lastEight: string;
  /** Secret (additionalSecretOutputs). */
  token: string;
}

async function listTokens(url: string, creds: api.ForgejoCredentials, user: string): Promise<{ id: number; name: string }[] | undefined> {
  const out: { id: number; name: string }[] = [];
  for (let page = 1; page < 100; page++) {
    const p = `/users/${encodeURIComponent(user)}/tokens?page=${page}&limit=50`;
    const a = await api.forgejoRequest(url, creds, "GET", p);
    if (a.status === 404) return undefined;
    expect(url, "GET", p, a, [200], `listing ${user}'s access tokens`);
    const xs = Array.isArray(a.json) ? a.json : [];
    out.push(...xs.map((t: any) => ({ id: Number(t.id), name: String(t.name) })));
    if (xs.length < 50) break;
  }
  return out;
}

export const accessTokenProvider = {
  configure,
  async check(_olds: AccessTokenInputs, news: AccessTokenInputs) {
    const failures = checkFields(news, {
      url: isUrl,
      user: isUser,
      tokenName: (v) => (typeof v === "string" && /^[A-Za-z0-9._-]{1,64}$/.test(v) ? undefined : "must be 1-64 of A-Z a-z 0-9 . _ -"),
      scopes: (v) =>
        Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === "string" && /^(read|write):[a-z]+$/.test(s))
          ? undefined
          : "must be scopes like write:repository",
      providerVersion: isVersion,
    });
    return { inputs: news, failures };
  },
  async diff(_id: string, olds: AccessTokenOutputs, news: AccessTokenInputs) {
    const replaces: string[] = [];
    if (lc(olds.user) !== lc(news.user)) replaces.push("user");
    if (olds.tokenName !== news.tokenName) replaces.push("tokenName");
    if ([...(olds.scopes ?? [])].sort().join(",") !== [...news.scopes].sort().join(",")) replaces.push("scopes");
    const changes = replaces.length > 0 || olds.url !== news.url || olds.providerVersion !== news.providerVersion;
    return { changes, replaces, deleteBeforeReplace: false };
  },
  async create(inputs: AccessTokenInputs) {
    const creds = adminCredentials();
    const p = `/users/${encodeURIComponent(inputs.user)}/tokens`;
    const post = () => api.forgejoRequest(inputs.url, creds, "POST", p, { name: inputs.tokenName, scopes: inputs.scopes });
    let a = await post();
    if ((a.status === 400 || a.status === 422) && /used already|already exists|has been used/i.test(a.text)) {
      // A token of this name exists (an earlier create that did not reach the state): its value
      // is lost, so revoke it and issue a new one. The name is ours (`workstations-…`).
      const old = (await listTokens(inputs.url, creds, inputs.user))?.find((t) => t.name === inputs.tokenName);
      if (old) {
        const d = await api.forgejoRequest(inputs.url, creds, "DELETE", `${p}/${old.id}`);
        expect(inputs.url, "DELETE", `${p}/${old.id}`, d, [204, 404], `revoking ${inputs.user}'s stale token ${inputs.tokenName}`);
      }
      a = await post();
    }
    if (a.status === 404)
      throw new Error(`Forgejo at ${api.displayUrl(inputs.url)}: user ${inputs.user} does not exist (the program never creates Forgejo accounts)`);
    expect(inputs.url, "POST", p, a, [201], `creating ${inputs.user}'s access token ${inputs.tokenName}`);
    const t = a.json ?? {};
    if (typeof t.sha1 !== "string" || t.sha1.length < 8)
      throw new Error(`Forgejo at ${api.displayUrl(inputs.url)}: created ${inputs.user}'s token ${inputs.tokenName} but got no token value back`);
    const outs: AccessTokenOutputs = { ...inputs, tokenId: Number(t.id), lastEight: String(t.token_last_eight ?? t.sha1.slice(-8)), token: t.sha1 };
    return { id: `${inputs.user}:${t.id}`, outs };
  },
  async update(_id: string, olds: AccessTokenOutputs, news: AccessTokenInputs) {
    // Only url/providerVersion can change in place: the token itself stays.
    return { outs: { ...news, tokenId: olds.tokenId, lastEight: olds.lastEight, token: olds.token } };
  },
  async delete(_id: string, props: AccessTokenOutputs) {
    const creds = adminCredentials();
    const p = `/users/${encodeURIComponent(props.user)}/tokens/${props.tokenId}`;
    const a = await api.forgejoRequest(props.url, creds, "DELETE", p);
    expect(props.url, "DELETE", p, a, [204, 404], `revoking ${props.user}'s access token ${props.tokenName}`);
  },
  async read(id: string, props: AccessTokenOutputs) {
    const creds = adminCredentials();
    const tokens = await listTokens(props.url, creds, props.user);
    if (!tokens || !tokens.some((t) => t.id === Number(props.tokenId))) return { id: "", props: {} };
    return { id, props: { ...props } };
  },
};

/** Args of `ForgejoAccessToken` (the fields of `AccessTokenInputs`; `scopes` defaults to GIT_TOKEN_SCOPES). */
export type ForgejoAccessTokenArgs = ArgsOf<AccessTokenInputs, "scopes" | "providerVersion">;

/** A user's access token. `token` is a secret output; delete revokes it. */
export class ForgejoAccessToken extends typedResource<AccessTokenOutputs>() {
  constructor(name: string, args: ForgejoAccessTokenArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      accessTokenProvider,
      name,
      {
        scopes: [...GIT_TOKEN_SCOPES],
        providerVersion: PROVIDER_VERSION,
        ...args,
        tokenId: undefined,
        lastEight: undefined,
        token: undefined,
      },
      { ...opts, additionalSecretOutputs: [...new Set(["token", ...(opts?.additionalSecretOutputs ?? [])])] },
      "forgejo",
      "AccessToken",
    );
  }
}
