// @ts-check
/**
 * A minimal Kubernetes API client for the access cut (./sweep.js), from the same admin
 * credential the program's kubernetes provider uses: the stack's `workstations:kubeconfig`
 * (contents or a path, secret), else `KUBECONFIG` of the `pulumi` CLI, else ~/.kube/config.
 *
 * Plain CommonJS (the engine's dynamic-provider process loads it by path, see cut.ts). It
 * reads what admin kubeconfigs carry: the current context's server, CA (data or file),
 * `tls-server-name`, `insecure-skip-tls-verify`, and one of client certificate and key (data
 * or files), `token`, `tokenFile`, or an `exec` plugin (client.authentication.k8s.io, run
 * without a terminal; it may answer a token or a client certificate). It refuses, in one line,
 * what it would get wrong: `auth-provider`, `proxy-url`, impersonation (`as`), basic auth.
 * The credential never goes to argv or to any output: it stays in this process's memory.
 */
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const https = require("https");
const { spawnSync } = require("child_process");

/**
 * @typedef {{ status: number; json: any }} KubeAnswer
 * @typedef {{ server: string; request(method: string, apiPath: string, body?: unknown): Promise<KubeAnswer> }} KubeApi
 * @typedef {{ ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer; token?: string; insecure: boolean; servername?: string }} Tls
 * @typedef {{ get(k: string): string | undefined }} ProviderConfig
 */

const CONFIG_KEY = "workstations:kubeconfig";
const WHERE = `${CONFIG_KEY} (or KUBECONFIG of the pulumi CLI)`;

/**
 * The kubeconfig documents in client-go's order, each with the directory its relative paths
 * are relative to.
 * @param {ProviderConfig | undefined} config @returns {{ doc: any; dir: string; name: string }[]}
 */
function kubeconfigDocs(config) {
  const YAML = require("yaml");
  let v;
  try {
    v = config?.get(CONFIG_KEY);
  } catch {
    v = undefined;
  }
  /** @param {string} file */
  const readDoc = (file) => ({ doc: YAML.parse(fs.readFileSync(file, "utf8")), dir: path.dirname(path.resolve(file)), name: file });
  if (v && v.trim()) {
    // The kubernetes provider takes contents or a path; contents have a newline or a brace.
    if (/[\n{]/.test(v)) return [{ doc: YAML.parse(v), dir: process.cwd(), name: CONFIG_KEY }];
    return [readDoc(v.trim())];
  }
  const list = (process.env.KUBECONFIG ?? "").split(path.delimiter).filter(Boolean);
  const files = (list.length ? list : [path.join(os.homedir(), ".kube", "config")]).filter((f) => fs.existsSync(f));
  if (!files.length) throw new Error(`no admin kubeconfig for the Kubernetes access cut: set the secret ${WHERE}`);
  return files.map(readDoc);
}

/**
 * The current context's cluster and user, merged like client-go (the first file that names
 * an entry wins).
 * @param {{ doc: any; dir: string; name: string }[]} docs
 * @returns {{ cluster: any; user: any; dir: string; context: string }}
 */
function currentEntries(docs) {
  /** @type {Record<string, Map<string, { v: any; dir: string }>>} */
  const maps = { clusters: new Map(), users: new Map(), contexts: new Map() };
  let current = "";
  for (const { doc, dir } of docs) {
    if (!doc || typeof doc !== "object") continue;
    if (!current && typeof doc["current-context"] === "string") current = doc["current-context"];
    for (const k of Object.keys(maps))
      for (const e of Array.isArray(doc[k]) ? doc[k] : []) if (e?.name && !maps[k].has(e.name)) maps[k].set(e.name, { v: e[k.slice(0, -1)] ?? {}, dir });
  }
  const where = docs.map((d) => d.name).join(", ");
  if (!current) throw new Error(`the admin kubeconfig (${where}) has no current-context: check ${WHERE}`);
  const ctx = maps.contexts.get(current)?.v;
  if (!ctx) throw new Error(`the admin kubeconfig (${where}) has no context ${JSON.stringify(current)}: check ${WHERE}`);
  const cluster = maps.clusters.get(ctx.cluster);
  const user = maps.users.get(ctx.user);
  if (!cluster) throw new Error(`the admin kubeconfig's context ${current} names no known cluster: check ${WHERE}`);
  return { cluster: cluster.v, user: user?.v ?? {}, dir: cluster.dir, context: current };
}

/**
 * Data (base64) or a file (relative to the kubeconfig's directory) of a field pair.
 * @param {any} o @param {string} field @param {string} dir @returns {Buffer | undefined}
 */
function dataOrFile(o, field, dir) {
  if (typeof o[`${field}-data`] === "string") return Buffer.from(o[`${field}-data`], "base64");
  if (typeof o[field] === "string") return fs.readFileSync(path.resolve(dir, o[field]));
  return undefined;
}

/**
 * Runs an exec credential plugin (no terminal) and returns its token or client certificate.
 * @param {any} exec @param {string} dir @returns {{ token?: string; cert?: string; key?: string }}
 */
function execCredential(exec, dir) {
  const apiVersion = exec.apiVersion ?? "client.authentication.k8s.io/v1";
  /** @type {NodeJS.ProcessEnv} */
  const env = { ...process.env, KUBERNETES_EXEC_INFO: JSON.stringify({ apiVersion, kind: "ExecCredential", spec: { interactive: false } }) };
  for (const e of Array.isArray(exec.env) ? exec.env : []) if (e?.name) env[e.name] = String(e.value ?? "");
  // client-go: a command with a slash is relative to the kubeconfig's directory; else PATH.
  const cmd = String(exec.command ?? "");
  const r = spawnSync(cmd.includes("/") ? path.resolve(dir, cmd) : cmd, Array.isArray(exec.args) ? exec.args.map(String) : [], {
    env,
    input: "",
    encoding: "utf8",
    timeout: 60_000,
  });
  if (r.status !== 0)
    throw new Error(
      `the admin kubeconfig's exec plugin ${cmd} failed (${r.error ? r.error.message : `exit ${r.status}`}${r.stderr ? `: ${r.stderr.trim().split("\n").pop()}` : ""}): check ${WHERE}`,
    );
  let status;
  try {
    status = JSON.parse(r.stdout).status;
  } catch {
    status = undefined;
  }
  if (status?.token) return { token: String(status.token) };
  if (status?.clientCertificateData && status?.clientKeyData) return { cert: status.clientCertificateData, key: status.clientKeyData };
  throw new Error(`the admin kubeconfig's exec plugin ${cmd} answered no ExecCredential token or client certificate: check ${WHERE}`);
}

/**
 * Server and TLS/auth settings of the admin kubeconfig.
 * @param {ProviderConfig | undefined} config @returns {{ server: string; tls: Tls }}
 */
function adminConnection(config) {
  const { cluster, user, dir, context } = currentEntries(kubeconfigDocs(config));
  const refuse = (/** @type {string} */ what) => {
    throw new Error(`the admin kubeconfig's context ${context} uses ${what}, which the Kubernetes access cut does not support: check ${WHERE}`);
  };
  if (cluster["proxy-url"]) refuse("proxy-url");
  if (user["auth-provider"]) refuse("an auth-provider");
  if (user.as || user["as-groups"] || user["as-uid"]) refuse("impersonation (as)");
  if (user.username || user.password) refuse("basic auth");
  const server = String(cluster.server ?? "").replace(/\/+$/, "");
  if (!/^https:\/\//.test(server)) throw new Error(`the admin kubeconfig's context ${context} has no https server (${JSON.stringify(server)}): check ${WHERE}`);
  /** @type {Tls} */
  const tls = { insecure: cluster["insecure-skip-tls-verify"] === true, ca: dataOrFile(cluster, "certificate-authority", dir) };
  if (cluster["tls-server-name"]) tls.servername = String(cluster["tls-server-name"]);
  const cert = dataOrFile(user, "client-certificate", dir);
  const key = dataOrFile(user, "client-key", dir);
  if (cert && key) Object.assign(tls, { cert, key });
  else if (typeof user.token === "string" && user.token) tls.token = user.token;
  else if (typeof user.tokenFile === "string") tls.token = fs.readFileSync(path.resolve(dir, user.tokenFile), "utf8").trim();
  else if (user.exec) Object.assign(tls, execCredential(user.exec, dir));
  else throw new Error(`the admin kubeconfig's context ${context} has no credential (client certificate, token or exec plugin): check ${WHERE}`);
  return { server, tls };
}

/**
 * A client for the API server of the admin kubeconfig. Network failures and timeouts throw one
 * line naming the server and the request.
 * @param {ProviderConfig | undefined} config @returns {KubeApi}
 */
function adminClient(config) {
  const { server, tls } = adminConnection(config);
  return {
    server,
    request(method, apiPath, body) {
      return new Promise((resolve, reject) => {
        const text = body === undefined ? undefined : JSON.stringify(body);
        const req = https.request(
          server + apiPath,
          {
            method,
            ...(tls.ca ? { ca: tls.ca } : {}),
            ...(tls.cert ? { cert: tls.cert, key: tls.key } : {}),
            ...(tls.servername ? { servername: tls.servername } : {}),
            rejectUnauthorized: !tls.insecure,
            headers: {
              Accept: "application/json",
              ...(tls.token ? { Authorization: `Bearer ${tls.token}` } : {}),
              ...(text ? { "Content-Type": "application/json" } : {}),
            },
            timeout: 30_000,
          },
          (res) => {
            let data = "";
            res.setEncoding("utf8");
            res.on("data", (c) => (data += c));
            res.on("end", () => {
              let json = null;
              try {
                json = data ? JSON.parse(data) : null;
              } catch {
                /* not JSON */
              }
              resolve({ status: res.statusCode ?? 0, json });
            });
          },
        );
        req.on("error", (e) => reject(new Error(`the Kubernetes API server at ${server} is unreachable (${method} ${apiPath}: ${e.message})`)));
        req.on("timeout", () => req.destroy(new Error("no answer within 30 s")));
        if (text) req.write(text);
        req.end();
      });
    },
  };
}

module.exports = { adminClient, adminConnection };
