// @ts-check
/**
 * The Forgejo/Gitea REST API v1 as the Forgejo resources and the program's preflight use it.
 *
 * Plain CommonJS (type-checked from its JSDoc, `allowJs`/`checkJs`): it runs in the engine's
 * dynamic-provider process, which loads ./providers.js by path and has no TypeScript loader
 * (see provider.ts), as well as in the program.
 *
 * This module has NO imports and its functions use only their arguments and Node 20 globals
 * (`fetch`, `Buffer`, `AbortSignal`): the preflight runs these same functions in a child
 * process from their source text (see preflight.ts and PREFLIGHT_FUNCTIONS below). Keep it
 * that way: no imports, and no module-level values but functions (and the list of them at
 * the end).
 */
"use strict";

/**
 * A site admin's login. Never an input or output of a resource: read at run time.
 * @typedef {{ user: string; password: string }} ForgejoCredentials
 */

/** @typedef {{ status: number; json: any; text: string; total?: number }} ApiAnswer */

/**
 * Which field names the server's branch protection speaks (see protectionBody).
 * @typedef {"gitea" | "forgejo"} Dialect
 */

/**
 * `version`: the version string the server reports, e.g. "1.26.3" or "11.0.1+gitea-1.22.0".
 * @typedef {{ kind: "gitea" | "forgejo"; version: string; dialect: Dialect }} ServerInfo
 */

/**
 * The API base of a server URL given with or without a trailing slash or `/api/v1`.
 * @param {string} url @returns {string}
 */
function apiBase(url) {
  return url.replace(/\/+$/, "").replace(/\/api\/v1$/, "") + "/api/v1";
}

/**
 * The server URL without a trailing slash (for messages).
 * @param {string} url @returns {string}
 */
function displayUrl(url) {
  return url.replace(/\/+$/, "").replace(/\/api\/v1$/, "");
}

/**
 * One API call. `creds` = Basic auth (token creation for another user needs a site admin's
 * Basic auth; an admin token is refused there). Network failures throw one line naming the URL.
 * @param {string} url @param {ForgejoCredentials | undefined} creds @param {string} method @param {string} path
 * @param {unknown} [body] @param {number} [timeoutMs] @returns {Promise<ApiAnswer>}
 */
async function forgejoRequest(url, creds, method, path, body, timeoutMs = 20000) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/json" };
  if (creds) headers.Authorization = "Basic " + Buffer.from(`${creds.user}:${creds.password}`, "utf8").toString("base64");
  if (body !== undefined) headers["Content-Type"] = "application/json";
  /** @type {Response} */
  let res;
  try {
    res = await fetch(apiBase(url) + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const err = /** @type {Error & { cause?: { code?: string; message?: string } }} */ (e);
    const why = err.name === "TimeoutError" ? `no answer within ${timeoutMs / 1000} s` : (err.cause?.code ?? err.cause?.message ?? err.message);
    throw new Error(`Forgejo at ${displayUrl(url)} is unreachable (${method} ${path}: ${why})`, { cause: e });
  }
  const text = await res.text();
  const total = Number(res.headers.get("x-total-count") ?? NaN);
  return { status: res.status, json: parseJson(text), text, ...(Number.isInteger(total) ? { total } : {}) };
}

/**
 * The JSON of an answer's body; null for an empty or non-JSON body (an HTML error page).
 * @param {string} text @returns {any}
 */
function parseJson(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * One line for an unexpected answer: method, path, status and the server's message.
 * @param {string} url @param {string} method @param {string} path @param {ApiAnswer} a @param {string} [what] @returns {Error}
 */
function answerError(url, method, path, a, what) {
  const msg = (a.json && typeof a.json.message === "string" ? a.json.message : a.text).replace(/\s+/g, " ").trim().slice(0, 300);
  return new Error(`Forgejo at ${displayUrl(url)}: ${what ? what + ": " : ""}${method} ${path} answered HTTP ${a.status}${msg ? ` (${msg})` : ""}`);
}

/**
 * Classifies the server from `/api/v1/version` (and `/api/forgejo/v1/version` when that
 * answered). Forgejo 7+ reports `<forgejo version>+gitea-<gitea version>`; Gitea a bare
 * semver. Supported: Forgejo >= 7 (branch protection has `apply_to_admins`) and Gitea >= 1.23
 * (force-push allowlist fields, and `block_admin_merge_override`). Throws one line otherwise.
 * @param {string} url @param {string} version @param {string} [forgejoVersion] @returns {ServerInfo}
 */
function classifyServer(url, version, forgejoVersion) {
  const where = displayUrl(url);
  const major = (/** @type {string} */ v) => /^v?(\d+)\.(\d+)/.exec(v);
  if (/\+gitea-/.test(version) || forgejoVersion) {
    const v = /\+gitea-/.test(version) ? version : /** @type {string} */ (forgejoVersion);
    const m = major(v);
    if (!m || Number(m[1]) < 7)
      throw new Error(`Forgejo at ${where} is version ${v}: not supported (this program speaks Forgejo >= 7.0 and Gitea >= 1.23); upgrade the server`);
    return { kind: "forgejo", version: v, dialect: "forgejo" };
  }
  const m = major(version);
  if (!m) throw new Error(`Forgejo at ${where} reports version ${JSON.stringify(version)}, which is neither Forgejo nor Gitea: not supported`);
  const [maj, min] = [Number(m[1]), Number(m[2])];
  if (maj !== 1 || min < 23)
    throw new Error(
      `Forgejo-API server at ${where} is Gitea ${version}: not supported (this program speaks Gitea >= 1.23 and Forgejo >= 7.0); upgrade the server`,
    );
  return { kind: "gitea", version, dialect: "gitea" };
}

/**
 * Asks the server what it is.
 * @param {string} url @param {ForgejoCredentials} [creds] @returns {Promise<ServerInfo>}
 */
async function detectServer(url, creds) {
  // Anonymous first (a wrong credential must not look like "not a Forgejo"); with the
  // credential when the server requires sign-in for everything.
  let v = await forgejoRequest(url, undefined, "GET", "/version");
  if ((v.status === 401 || v.status === 403) && creds) v = await forgejoRequest(url, creds, "GET", "/version");
  if (v.status === 401 || v.status === 403)
    throw new Error(
      `Forgejo at ${displayUrl(url)} refused the admin credential${creds ? ` of ${creds.user}` : ""} (HTTP ${v.status} on GET /version): check workstations:forgejoAdminUser and workstations:forgejoAdminPassword (or FORGEJO_ADMIN_PASSWORD)`,
    );
  if (v.status !== 200 || !v.json || typeof v.json.version !== "string") throw answerError(url, "GET", "/version", v, "not a Forgejo or Gitea API");
  /** @type {string | undefined} */
  let forgejoVersion;
  if (!/\+gitea-/.test(v.json.version)) {
    // Forgejo before 7 reported a Gitea-like version; only Forgejo has this endpoint.
    const fv = await fetch(displayUrl(url) + "/api/forgejo/v1/version", { signal: AbortSignal.timeout(10000) }).catch(() => undefined);
    if (fv && fv.status === 200) {
      const j = /** @type {{ version?: unknown } | null} */ (await fv.json().catch(() => null));
      if (j && typeof j.version === "string") forgejoVersion = j.version;
    }
  }
  return classifyServer(url, v.json.version, forgejoVersion);
}

/**
 * What the program wants on master (the whitelists come from the plan).
 * @typedef {{ branch: string; pushWhitelist: string[]; mergeWhitelist: string[] }} ProtectionSpec
 */

/**
 * The request body of a branch protection in the server's dialect. Common: push only by the
 * push whitelist (plus deploy keys), merge only by the merge whitelist, no teams.
 * - Gitea: no force push for anyone (`enable_force_push: false`, empty allowlist), admins may
 *   not override the merge rules (`block_admin_merge_override`). Gitea has no `apply_to_admins`:
 *   its push whitelist binds admins and owners too (tested on 1.26.3).
 * - Forgejo: has no force-push fields (a protected branch refuses every force push and
 *   deletion); `apply_to_admins: true` makes the rules bind repository admins.
 * @param {Dialect} dialect @param {ProtectionSpec} spec @param {boolean} create @returns {Record<string, unknown>}
 */
function protectionBody(dialect, spec, create) {
  /** @type {Record<string, unknown>} */
  const body = {
    enable_push: true,
    enable_push_whitelist: true,
    push_whitelist_usernames: [...spec.pushWhitelist],
    push_whitelist_teams: [],
    push_whitelist_deploy_keys: true,
    enable_merge_whitelist: true,
    merge_whitelist_usernames: [...spec.mergeWhitelist],
    merge_whitelist_teams: [],
  };
  if (dialect === "gitea") {
    Object.assign(body, {
      enable_force_push: false,
      enable_force_push_allowlist: false,
      force_push_allowlist_usernames: [],
      force_push_allowlist_teams: [],
      force_push_allowlist_deploy_keys: false,
      block_admin_merge_override: true,
    });
  } else {
    body.apply_to_admins = true;
  }
  if (create) body.rule_name = spec.branch;
  return body;
}

/**
 * Where a protection read from the server departs from the fixed policy; empty = conforms.
 * @param {Dialect} dialect @param {any} live @returns {string[]}
 */
function protectionPolicyDrift(dialect, live) {
  /** @type {Record<string, unknown>} */
  const want = {
    enable_push: true,
    enable_push_whitelist: true,
    push_whitelist_deploy_keys: true,
    enable_merge_whitelist: true,
  };
  if (dialect === "gitea") Object.assign(want, { enable_force_push: false, block_admin_merge_override: true });
  else want.apply_to_admins = true;
  /** @type {string[]} */
  const drift = [];
  for (const [k, v] of Object.entries(want)) if (live[k] !== v) drift.push(`${k} is ${JSON.stringify(live[k])}, wants ${JSON.stringify(v)}`);
  for (const k of ["push_whitelist_teams", "merge_whitelist_teams"])
    if (Array.isArray(live[k]) && live[k].length > 0) drift.push(`${k} is ${JSON.stringify(live[k])}, wants []`);
  if (dialect === "gitea" && live.enable_force_push && live.enable_force_push_allowlist === false)
    drift.push("force push is open to everyone with push access");
  return drift;
}

/**
 * Lower-cased, de-duplicated, sorted: Forgejo user names are case-insensitive.
 * @param {readonly string[] | null | undefined} xs @returns {string[]}
 */
function normNames(xs) {
  return [...new Set((xs ?? []).map((x) => String(x).toLowerCase()))].sort();
}

/** @param {readonly string[] | null | undefined} a @param {readonly string[] | null | undefined} b @returns {boolean} */
function sameNames(a, b) {
  const x = normNames(a);
  const y = normNames(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/**
 * A roster user the program mints an access token for (it lands in that user's
 * `~/.git-credentials`): the roster `name`, the Forgejo `login`, the `email` that login's
 * account must have (the roster's `forgejoEmail`, else its `email`; `emailOverride` says which)
 * and whether the role is admin (only an admin may be given a site admin's login).
 * @typedef {{ name: string; login: string; email: string; emailOverride: boolean; admin: boolean }} PreflightIdentity
 */

/**
 * `repo`: `owner/name`; `users`: Forgejo users the program will grant something to (each must
 * exist); `identities`: the users it mints a token for, each checked to be that person's login.
 * @typedef {{ url: string; repo: string; adminUser: string; adminPassword: string; users: string[]; identities: PreflightIdentity[] }} PreflightInput
 */

/**
 * `message`: one line, what is wrong and where (URL, repo, users), or what was found.
 * @typedef {{ ok: boolean; message: string; server?: ServerInfo }} PreflightResult
 */

/**
 * Why minting `id.login`'s access token for roster user `id.name` is refused, or undefined.
 * The token is written into that user's `~/.git-credentials`, so the login must be theirs: not
 * `forgejoAdminUser` (a site admin's token), not the infra repo's owner (an owner can lift
 * master's protection), not a site admin unless the role is admin, and an account whose email
 * is the roster's. `account` is `GET /users/{login}` as the site admin (who sees `email` and
 * `is_admin` of every account).
 * @param {PreflightInput} i @param {PreflightIdentity} id @param {any} account @returns {string | undefined}
 */
function identityProblem(i, id, account) {
  const who = `roster user ${id.name} (forgejo: ${id.login})`;
  const own = `give ${id.name} their own Forgejo login in the roster`;
  const login = id.login.toLowerCase();
  if (login === i.adminUser.toLowerCase())
    return `${who}: ${id.login} is workstations:forgejoAdminUser, the site admin the program acts as, and its token would carry a site admin's rights; ${own}`;
  const owner = i.repo.split("/")[0];
  if (login === owner.toLowerCase())
    return `${who}: ${id.login} owns the infra repo ${i.repo}, and an owner's token can lift master's protection; ${own} (or move ${i.repo} to an organisation)`;
  if (!account || typeof account.is_admin !== "boolean")
    return `${who}: Forgejo did not say whether ${id.login} is a site admin (GET /users/${id.login} as ${i.adminUser} has no is_admin); check that ${i.adminUser} is a site admin`;
  if (account.is_admin && !id.admin)
    return `${who}: ${id.login} is a Forgejo site admin and ${id.name}'s role is not admin; ${own}, one that is not a site admin`;
  const email = typeof account.email === "string" ? account.email.trim().toLowerCase() : "";
  if (email !== id.email.trim().toLowerCase())
    return `${who}: the Forgejo account ${id.login} does not have ${id.name}'s ${id.emailOverride ? "forgejoEmail" : "email"} ${id.email}; ${own}, or, if ${id.login} is theirs under another address, set forgejoEmail: <that address> on ${id.name}'s entry (README "Forgejo": the identity check)`;
  return undefined;
}

/**
 * The accounts of `logins` as the site admin sees them (`email`, `is_admin`), by login; a login
 * not in the map does not exist. Read from the admin's list of accounts, 50 a request, not with
 * a request per login: every request with the admin's password makes the server hash it
 * (pbkdf2), about 60 ms a request here, so 6 s of every preview with 100 roster users (issue 25).
 * A server with many more accounts than the roster is asked per login for the ones the first
 * pages did not have.
 * @param {string} url @param {{ user: string; password: string }} creds @param {string[]} logins
 * @returns {Promise<Map<string, any>>}
 */
async function rosterAccounts(url, creds, logins) {
  /** @type {Map<string, string[]>} logins are case-insensitive: each spelling the roster uses */
  const wanted = new Map();
  for (const l of logins) wanted.set(l.toLowerCase(), [...(wanted.get(l.toLowerCase()) ?? []), l]);
  /** @type {Map<string, any>} */
  const found = new Map();
  const limit = 50;
  let listed = 0;
  let total = Infinity;
  for (let page = 1; found.size < logins.length && listed < total && page <= Math.ceil(logins.length / limit) + 2; page++) {
    const r = await forgejoRequest(url, creds, "GET", `/admin/users?limit=${limit}&page=${page}`);
    if (r.status !== 200 || !Array.isArray(r.json)) throw answerError(url, "GET", "/admin/users", r, "listing accounts");
    if (r.json.length === 0) break;
    listed += r.json.length;
    total = r.total ?? Infinity;
    for (const u of r.json) for (const login of wanted.get(String(u?.login ?? "").toLowerCase()) ?? []) found.set(login, u);
  }
  if (listed >= total) return found;
  for (const l of logins.filter((x) => !found.has(x))) {
    const r = await forgejoRequest(url, creds, "GET", `/users/${encodeURIComponent(l)}`);
    if (r.status === 200) found.set(l, r.json);
    else if (r.status !== 404) throw answerError(url, "GET", `/users/${l}`, r, "checking roster users");
  }
  return found;
}

/**
 * Everything the Forgejo resources need, checked before any resource exists: the server
 * answers and speaks a supported version, the admin credential works and is a site admin,
 * the infra repo exists with a master branch, every roster Forgejo user exists, and every
 * login the program mints a token for is that roster user's own (identityProblem).
 * Stops at the first failing stage and says it in one line.
 * @param {PreflightInput} i @returns {Promise<PreflightResult>}
 */
async function preflightCheck(i) {
  const where = displayUrl(i.url);
  const creds = { user: i.adminUser, password: i.adminPassword };
  try {
    const server = await detectServer(i.url, creds);
    const me = await forgejoRequest(i.url, creds, "GET", "/user");
    if (me.status === 401 || me.status === 403)
      return {
        ok: false,
        message: `Forgejo at ${where} refused the admin credential of ${i.adminUser} (HTTP ${me.status}): check workstations:forgejoAdminUser and workstations:forgejoAdminPassword (or FORGEJO_ADMIN_PASSWORD)`,
      };
    if (me.status !== 200 || !me.json) throw answerError(i.url, "GET", "/user", me, "checking the admin credential");
    if (me.json.is_admin !== true)
      return {
        ok: false,
        message: `Forgejo at ${where}: ${i.adminUser} is not a site admin (creating another user's access token needs a site admin's password)`,
      };
    const repoPath = `/repos/${i.repo.split("/").map(encodeURIComponent).join("/")}`;
    const repo = await forgejoRequest(i.url, creds, "GET", repoPath);
    if (repo.status === 404)
      return { ok: false, message: `Forgejo at ${where}: the infra repo ${i.repo} does not exist (workstations:forgejoRepo); create it or fix the key` };
    if (repo.status !== 200) throw answerError(i.url, "GET", repoPath, repo, `reading the infra repo ${i.repo}`);
    const br = await forgejoRequest(i.url, creds, "GET", `${repoPath}/branches/master`);
    if (br.status === 404) return { ok: false, message: `Forgejo at ${where}: the infra repo ${i.repo} has no master branch; push one first` };
    if (br.status !== 200) throw answerError(i.url, "GET", `${repoPath}/branches/master`, br, `reading ${i.repo} master`);
    const logins = [...new Set([...i.users, ...i.identities.map((id) => id.login)])].sort();
    const accounts = await rosterAccounts(i.url, creds, logins);
    const missing = logins.filter((u) => !accounts.has(u));
    if (missing.length > 0)
      return {
        ok: false,
        message: `Forgejo at ${where}: roster forgejo user${missing.length > 1 ? "s" : ""} ${missing.join(", ")} do${missing.length > 1 ? "" : "es"} not exist; create the account${missing.length > 1 ? "s" : ""} (the program never creates or deletes Forgejo accounts) or fix roster.yaml`,
      };
    const wrong = [...i.identities]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((id) => identityProblem(i, id, accounts.get(id.login)))
      .filter((p) => p !== undefined);
    if (wrong.length > 0) return { ok: false, message: `Forgejo at ${where}: ${wrong.join("; ")}` };
    return {
      ok: true,
      message: `Forgejo at ${where}: ${server.kind} ${server.version}, repo ${i.repo}, ${i.users.length} roster user(s) present, ${i.identities.length} token login(s) checked against the roster`,
      server,
    };
  } catch (e) {
    return { ok: false, message: /** @type {Error} */ (e).message };
  }
}

/**
 * The functions the preflight child process needs, in dependency order: preflight.ts runs
 * `String(f)` of each (plus a small driver) with `node -e`, so the check is synchronous for
 * the program and runs before any resource is registered.
 */
const PREFLIGHT_FUNCTIONS = [
  apiBase,
  displayUrl,
  forgejoRequest,
  parseJson,
  answerError,
  classifyServer,
  detectServer,
  identityProblem,
  rosterAccounts,
  preflightCheck,
];

module.exports = {
  apiBase,
  displayUrl,
  forgejoRequest,
  answerError,
  classifyServer,
  detectServer,
  protectionBody,
  protectionPolicyDrift,
  normNames,
  sameNames,
  identityProblem,
  preflightCheck,
  PREFLIGHT_FUNCTIONS,
};
