// @ts-check
/**
 * The Forgejo dynamic providers' implementation: what `ForgejoCollaborator`,
 * `ForgejoBranchProtection` and `ForgejoAccessToken` (provider.ts) do in the engine's
 * dynamic-provider process.
 *
 * Plain CommonJS, type-checked from its JSDoc (`allowJs`/`checkJs`), because that process
 * loads it by path and has no TypeScript loader: the state of each resource holds only a
 * small loader (provider.ts, `forgejoProvider`), not this code, so a user's Forgejo resources
 * cost a few hundred bytes of state instead of the whole serialised client (issue 12). The
 * price is Pulumi's own rule for a dynamic provider whose code changes: every version of this
 * file must handle the state every earlier version wrote. `STATE_SCHEMAS` lists the state
 * shapes this version reads; a resource of another shape is refused with one line.
 *
 * The admin credential is never an input or an output: it comes from the stack's config in
 * `configure` (secrets decrypted by the engine), or from `FORGEJO_ADMIN_USER` /
 * `FORGEJO_ADMIN_PASSWORD` in the environment of the `pulumi` CLI. `read` backs `pulumi
 * refresh`: it stores what the server has, so a permission or protection changed by hand shows
 * up as a diff and `up` puts it back.
 */
"use strict";

const api = require("./api");

/** The state shape this version writes (the resources' `providerSchema` input). */
const STATE_SCHEMA = "2";
/** The state shapes this version reads ("1": the first version's, see schemaOf). */
const STATE_SCHEMAS = ["1", "2"];

/**
 * @typedef {import("./api").ForgejoCredentials} ForgejoCredentials
 * @typedef {import("./api").ApiAnswer} ApiAnswer
 * @typedef {import("./api").Dialect} Dialect
 * @typedef {{ property: string; reason: string }} Failure
 * @typedef {{ get(k: string): string | undefined }} ProviderConfig
 */

// ---------------------------------------------------------------------------------------
// Shared helpers

/** The engine's placeholder for a value not known during preview. */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** @type {ProviderConfig | undefined} */
let stackConfig;

/** @param {{ config: ProviderConfig }} req */
async function configure(req) {
  stackConfig = req.config;
}

/** @returns {ForgejoCredentials} */
function adminCredentials() {
  /** @param {string} k */
  const get = (k) => {
    try {
      return stackConfig?.get(k);
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

/** @param {string} repo */
function repoPath(repo) {
  return "/repos/" + repo.split("/").map(encodeURIComponent).join("/");
}

/** @param {unknown} s */
const lc = (s) => String(s ?? "").toLowerCase();

/**
 * Throws one line for 401 (the credential), otherwise for any unexpected status.
 * @param {string} url @param {string} method @param {string} path @param {ApiAnswer} a @param {number[]} ok @param {string} what
 */
function expect(url, method, path, a, ok, what) {
  if (ok.includes(a.status)) return;
  if (a.status === 401)
    throw new Error(
      `Forgejo at ${api.displayUrl(url)} refused the admin credential (HTTP 401) while ${what}: check workstations:forgejoAdminUser/forgejoAdminPassword`,
    );
  throw api.answerError(url, method, path, a, what);
}

/**
 * @param {Record<string, any>} news @param {Record<string, (v: any) => string | undefined>} rules @returns {Failure[]}
 */
function checkFields(news, rules) {
  /** @type {Failure[]} */
  const failures = [];
  for (const [k, rule] of Object.entries({ ...rules, providerSchema: isSchema })) {
    const v = news[k];
    if (v === UNKNOWN) continue;
    const why = rule(v);
    if (why) failures.push({ property: k, reason: `${k} ${why} (got ${JSON.stringify(v)})` });
  }
  return failures;
}

/** @param {any} v */
const isUrl = (v) => (typeof v === "string" && /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(v) ? undefined : "must be an http(s) URL");
/** @param {any} v */
const isRepo = (v) => (typeof v === "string" && /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(v) ? undefined : "must be owner/name");
/** @param {any} v */
const isUser = (v) => (typeof v === "string" && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,39}$/.test(v) ? undefined : "must be a Forgejo user name");
/** @param {any} v */
const isSchema = (v) => (v === STATE_SCHEMA ? undefined : `must be ${JSON.stringify(STATE_SCHEMA)} (this code's state schema)`);
/** @param {any} v */
const isUserList = (v) =>
  Array.isArray(v) && v.every((x) => typeof x === "string" && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,39}$/.test(x))
    ? undefined
    : "must be a list of Forgejo user names";

/**
 * The schema of a resource's state: `providerSchema`, or "1" for the state the first version
 * wrote (its code serialised into the state, a `providerVersion` of "1+<hash>" instead).
 * @param {any} props @returns {string | undefined}
 */
function schemaOf(props) {
  if (typeof props?.providerSchema === "string") return props.providerSchema;
  if (typeof props?.providerVersion === "string") return props.providerVersion.split("+")[0];
  return undefined;
}

/**
 * Refuses a resource whose state this version cannot read (written by a later version of
 * this code): one line naming the resource and what to do.
 * @param {string} what @param {any} props
 */
function readable(what, props) {
  const schema = schemaOf(props);
  if (schema !== undefined && STATE_SCHEMAS.includes(schema)) return;
  throw new Error(
    `${what}: its state has Forgejo provider schema ${JSON.stringify(schema)}, and this checkout's components/forgejo/providers.js reads ${STATE_SCHEMAS.join(", ")}: run pulumi from a checkout of the program that wrote it (or a newer one)`,
  );
}

/**
 * @template I, O
 * @typedef {{
 *   diff(id: string, olds: O, news: I): Promise<{ changes: boolean; replaces: string[]; deleteBeforeReplace: boolean }>;
 *   create(inputs: I): Promise<{ id: string; outs: O }>;
 *   update(id: string, olds: O, news: I): Promise<{ outs: O }>;
 *   delete(id: string, props: O): Promise<void>;
 *   read(id: string, props: O): Promise<{ id: string; props: Partial<O> }>;
 * }} Methods
 */

/**
 * A provider object: `check` from the inputs' `rules` (one failure per bad field), the
 * methods, with the state's schema checked wherever the engine hands over stored state, and a
 * state of the earlier schema an update (which writes this one).
 * @template I, O
 * @param {string} kind @param {Record<string, (v: any) => string | undefined>} rules @param {Methods<I, O>} m
 * @returns {Methods<I, O> & { configure: typeof configure; check(olds: I, news: I): Promise<{ inputs: I; failures: Failure[] }> }}
 */
function provider(kind, rules, m) {
  return {
    configure,
    async check(_olds, news) {
      return { inputs: news, failures: checkFields(/** @type {Record<string, any>} */ (news), rules) };
    },
    async diff(id, olds, news) {
      readable(`Forgejo ${kind} ${id}`, olds);
      const d = await m.diff(id, olds, news);
      return schemaOf(olds) === STATE_SCHEMA ? d : { ...d, changes: true };
    },
    create: m.create,
    async update(id, olds, news) {
      readable(`Forgejo ${kind} ${id}`, olds);
      return m.update(id, olds, news);
    },
    async delete(id, props) {
      readable(`Forgejo ${kind} ${id}`, props);
      return m.delete(id, props);
    },
    async read(id, props) {
      readable(`Forgejo ${kind} ${id}`, props);
      return m.read(id, props);
    },
  };
}

// ---------------------------------------------------------------------------------------
// Collaborator

/**
 * @typedef {"read" | "write" | "admin"} CollaboratorPermission
 * @typedef {{ url: string; repo: string; user: string; permission: CollaboratorPermission; providerSchema: string }} CollaboratorInputs
 * @typedef {CollaboratorInputs} CollaboratorOutputs
 */

/**
 * @param {string} url @param {ForgejoCredentials} creds @param {string} repo @param {string} user @param {string} desired
 * @returns {Promise<string | undefined>}
 */
async function readPermission(url, creds, repo, user, desired) {
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

const collaborator = provider(
  "collaborator",
  {
    url: isUrl,
    repo: isRepo,
    user: isUser,
    permission: (v) => (["read", "write", "admin"].includes(v) ? undefined : "must be read, write or admin"),
  },
  /** @type {Methods<CollaboratorInputs, CollaboratorOutputs>} */ ({
    async diff(_id, olds, news) {
      /** @type {string[]} */
      const replaces = [];
      if (lc(olds.repo) !== lc(news.repo)) replaces.push("repo");
      if (lc(olds.user) !== lc(news.user)) replaces.push("user");
      const changes = replaces.length > 0 || olds.permission !== news.permission || olds.url !== news.url;
      return { changes, replaces, deleteBeforeReplace: false };
    },
    async create(inputs) {
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
    async update(_id, _olds, news) {
      const creds = adminCredentials();
      const p = `${repoPath(news.repo)}/collaborators/${encodeURIComponent(news.user)}`;
      const a = await api.forgejoRequest(news.url, creds, "PUT", p, { permission: news.permission });
      expect(news.url, "PUT", p, a, [204], `setting ${news.user}'s permission on ${news.repo} to ${news.permission}`);
      return { outs: { ...news } };
    },
    async delete(_id, props) {
      const creds = adminCredentials();
      const p = `${repoPath(props.repo)}/collaborators/${encodeURIComponent(props.user)}`;
      const a = await api.forgejoRequest(props.url, creds, "DELETE", p);
      expect(props.url, "DELETE", p, a, [204, 404], `removing ${props.user} from the collaborators of ${props.repo}`);
    },
    async read(id, props) {
      const creds = adminCredentials();
      const live = await readPermission(props.url, creds, props.repo, props.user, props.permission);
      if (live === undefined) return { id: "", props: {} };
      return { id, props: { ...props, permission: /** @type {CollaboratorPermission} */ (live) } };
    },
  }),
);

// ---------------------------------------------------------------------------------------
// Branch protection

/**
 * `server`: e.g. "gitea 1.26.3"; `policyDrift`: where the live rule departs from the fixed
 * policy (after a refresh); empty = conforms.
 * @typedef {{ url: string; repo: string; branch: string; pushWhitelist: string[]; mergeWhitelist: string[]; providerSchema: string }} BranchProtectionInputs
 * @typedef {BranchProtectionInputs & { server: string; dialect: Dialect; policyDrift: string[] }} BranchProtectionOutputs
 */

/** @param {string} url @param {ForgejoCredentials} creds @param {string} repo @param {string} branch @returns {Promise<any>} */
async function readProtection(url, creds, repo, branch) {
  const p = `${repoPath(repo)}/branch_protections/${encodeURIComponent(branch)}`;
  const a = await api.forgejoRequest(url, creds, "GET", p);
  if (a.status === 404) return undefined;
  expect(url, "GET", p, a, [200], `reading the protection of ${repo} ${branch}`);
  return a.json;
}

/**
 * Writes the rule (POST, or PATCH when one exists), reads it back, and fails if the server did not keep it.
 * @param {BranchProtectionInputs} inputs @returns {Promise<BranchProtectionOutputs>}
 */
async function writeProtection(inputs) {
  const creds = adminCredentials();
  const server = await api.detectServer(inputs.url, creds);
  const spec = { branch: inputs.branch, pushWhitelist: inputs.pushWhitelist, mergeWhitelist: inputs.mergeWhitelist };
  // Forgejo and Gitea silently drop whitelisted users who cannot write: refuse before writing
  // anything (so a plan/collaborator mismatch never half-applies), and check again after.
  /** @type {string[]} */
  const lacking = [];
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
  /** @type {string[]} */
  const problems = [];
  for (const [list, field] of /** @type {const} */ ([
    ["push", "push_whitelist_usernames"],
    ["merge", "merge_whitelist_usernames"],
  ])) {
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

const branchProtection = provider(
  "branch protection",
  {
    url: isUrl,
    repo: isRepo,
    branch: (v) => (typeof v === "string" && /^[A-Za-z0-9._/-]{1,100}$/.test(v) && !v.includes("..") ? undefined : "must be a branch name"),
    pushWhitelist: isUserList,
    mergeWhitelist: isUserList,
  },
  /** @type {Methods<BranchProtectionInputs, BranchProtectionOutputs>} */ ({
    async diff(_id, olds, news) {
      /** @type {string[]} */
      const replaces = [];
      if (lc(olds.repo) !== lc(news.repo)) replaces.push("repo");
      if (olds.branch !== news.branch) replaces.push("branch");
      const changes =
        replaces.length > 0 ||
        !api.sameNames(olds.pushWhitelist, news.pushWhitelist) ||
        !api.sameNames(olds.mergeWhitelist, news.mergeWhitelist) ||
        (olds.policyDrift ?? []).length > 0 ||
        olds.url !== news.url;
      return { changes, replaces, deleteBeforeReplace: false };
    },
    async create(inputs) {
      const outs = await writeProtection(inputs);
      return { id: `${inputs.repo}:${inputs.branch}`, outs };
    },
    async update(_id, _olds, news) {
      return { outs: await writeProtection(news) };
    },
    async delete(_id, props) {
      const creds = adminCredentials();
      const p = `${repoPath(props.repo)}/branch_protections/${encodeURIComponent(props.branch)}`;
      const a = await api.forgejoRequest(props.url, creds, "DELETE", p);
      expect(props.url, "DELETE", p, a, [204, 404], `removing the protection of ${props.repo} ${props.branch}`);
    },
    async read(id, props) {
      const creds = adminCredentials();
      const server = await api.detectServer(props.url, creds);
      const live = await readProtection(props.url, creds, props.repo, props.branch);
      if (!live) return { id: "", props: {} };
      /** @param {string[]} mine @param {string[] | undefined} theirs */
      const keep = (mine, theirs) => (api.sameNames(mine, theirs) ? mine : [...(theirs ?? [])].sort());
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
  }),
);

// ---------------------------------------------------------------------------------------
// Access token

/**
 * `tokenName`: unique per user; carries the rotation, so a rotation is a new name and a
 * replace. `token` is secret (additionalSecretOutputs in provider.ts).
 * @typedef {{ url: string; user: string; tokenName: string; scopes: string[]; providerSchema: string }} AccessTokenInputs
 * @typedef {AccessTokenInputs & { tokenId: number; lastEight: string; token: string }} AccessTokenOutputs
 */

/**
 * @param {string} url @param {ForgejoCredentials} creds @param {string} user
 * @returns {Promise<{ id: number; name: string }[] | undefined>}
 */
async function listTokens(url, creds, user) {
  /** @type {{ id: number; name: string }[]} */
  const out = [];
  for (let page = 1; page < 100; page++) {
    const p = `/users/${encodeURIComponent(user)}/tokens?page=${page}&limit=50`;
    const a = await api.forgejoRequest(url, creds, "GET", p);
    if (a.status === 404) return undefined;
    expect(url, "GET", p, a, [200], `listing ${user}'s access tokens`);
    /** @type {any[]} */
    const xs = Array.isArray(a.json) ? a.json : [];
    out.push(...xs.map((t) => ({ id: Number(t.id), name: String(t.name) })));
    if (xs.length < 50) break;
  }
  return out;
}

const accessToken = provider(
  "access token",
  {
    url: isUrl,
    user: isUser,
    tokenName: (v) => (typeof v === "string" && /^[A-Za-z0-9._-]{1,64}$/.test(v) ? undefined : "must be 1-64 of A-Z a-z 0-9 . _ -"),
    scopes: (v) =>
      Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === "string" && /^(read|write):[a-z]+$/.test(s))
        ? undefined
        : "must be scopes like write:repository",
  },
  /** @type {Methods<AccessTokenInputs, AccessTokenOutputs>} */ ({
    async diff(_id, olds, news) {
      /** @type {string[]} */
      const replaces = [];
      if (lc(olds.user) !== lc(news.user)) replaces.push("user");
      if (olds.tokenName !== news.tokenName) replaces.push("tokenName");
      if ([...(olds.scopes ?? [])].sort().join(",") !== [...news.scopes].sort().join(",")) replaces.push("scopes");
      const changes = replaces.length > 0 || olds.url !== news.url;
      return { changes, replaces, deleteBeforeReplace: false };
    },
    async create(inputs) {
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
      /** @type {AccessTokenOutputs} */
      const outs = { ...inputs, tokenId: Number(t.id), lastEight: String(t.token_last_eight ?? t.sha1.slice(-8)), token: t.sha1 };
      return { id: `${inputs.user}:${t.id}`, outs };
    },
    async update(_id, olds, news) {
      // Only url and the state schema can change in place: the token itself stays.
      return { outs: { ...news, tokenId: olds.tokenId, lastEight: olds.lastEight, token: olds.token } };
    },
    async delete(_id, props) {
      const creds = adminCredentials();
      const p = `/users/${encodeURIComponent(props.user)}/tokens/${props.tokenId}`;
      const a = await api.forgejoRequest(props.url, creds, "DELETE", p);
      expect(props.url, "DELETE", p, a, [204, 404], `revoking ${props.user}'s access token ${props.tokenName}`);
    },
    async read(id, props) {
      const creds = adminCredentials();
      const tokens = await listTokens(props.url, creds, props.user);
      if (!tokens || !tokens.some((t) => t.id === Number(props.tokenId))) return { id: "", props: {} };
      return { id, props: { ...props } };
    },
  }),
);

module.exports = { STATE_SCHEMA, STATE_SCHEMAS, collaborator, branchProtection, accessToken };
