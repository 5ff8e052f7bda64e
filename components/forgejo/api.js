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

/** @typedef {{ status: number; json: any; text: string }} ApiAnswer */

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
  return { status: res.status, json: parseJson(text), text };
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
 * `repo`: `owner/name`; `users`: Forgejo users the program will grant something to (each must exist).
 * @typedef {{ url: string; repo: string; adminUser: string; adminPassword: string; users: string[] }} PreflightInput
 */

/**
 * `message`: one line, what is wrong and where (URL, repo, users), or what was found.
 * @typedef {{ ok: boolean; message: string; server?: ServerInfo }} PreflightResult
 */

/**
 * Everything the Forgejo resources need, checked before any resource exists: the server
 * answers and speaks a supported version, the admin credential works and is a site admin,
 * the infra repo exists with a master branch, and every roster Forgejo user exists.
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
    /** @type {string[]} */
    const missing = [];
    for (const u of [...new Set(i.users)].sort()) {
      const r = await forgejoRequest(i.url, creds, "GET", `/users/${encodeURIComponent(u)}`);
      if (r.status === 404) missing.push(u);
      else if (r.status !== 200) throw answerError(i.url, "GET", `/users/${u}`, r, "checking roster users");
    }
    if (missing.length > 0)
      return {
        ok: false,
        message: `Forgejo at ${where}: roster forgejo user${missing.length > 1 ? "s" : ""} ${missing.join(", ")} do${missing.length > 1 ? "" : "es"} not exist; create the account${missing.length > 1 ? "s" : ""} (the program never creates or deletes Forgejo accounts) or fix roster.yaml`,
      };
    return { ok: true, message: `Forgejo at ${where}: ${server.kind} ${server.version}, repo ${i.repo}, ${i.users.length} roster user(s) present`, server };
  } catch (e) {
    return { ok: false, message: /** @type {Error} */ (e).message };
  }
}

/**
 * The functions the preflight child process needs, in dependency order: preflight.ts runs
 * `String(f)` of each (plus a small driver) with `node -e`, so the check is synchronous for
 * the program and runs before any resource is registered.
 */
const PREFLIGHT_FUNCTIONS = [apiBase, displayUrl, forgejoRequest, parseJson, answerError, classifyServer, detectServer, preflightCheck];

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
  preflightCheck,
  PREFLIGHT_FUNCTIONS,
};
