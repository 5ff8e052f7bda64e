// @ts-check
/**
 * The Kubernetes access cut of one owned namespace: what `KubeNamespaceCut` (cut.ts) does in
 * the engine's dynamic-provider process. Plain CommonJS, loaded by path (see cut.ts).
 *
 * Why: a namespace-owner is `admin` in their namespace, and `admin` may create RoleBindings
 * to any role whose rules it holds there (RBAC's escalation check allows `admin` itself) for
 * any subject, ServiceAccounts, and `kubernetes.io/service-account-token` Secrets. Removing
 * the program's own bindings leaves all of that in place, so the owner keeps `admin` through
 * a ServiceAccount of their own (README "Kubernetes", what the real API server allowed).
 *
 * What: the resource exists while its user holds `admin` in the namespace; its `delete`
 * (suspension, offboarding, `destroy --target`, the namespace leaving the user) runs after
 * every binding of the program there is gone (they depend on it), and removes every
 * RoleBinding and every service-account-token Secret in the namespace that the program does
 * not manage, pass after pass until a pass finds none (a workload that still had rights may
 * have made one in between). ServiceAccounts, Roles, workloads and data stay: a token of a
 * ServiceAccount with no binding is refused (403) on the namespace; a token Secret's token
 * stops authenticating (401) with the Secret.
 *
 * The program manages nothing of the leaving user there by then. In a hand-over (the same
 * run gives the namespace to another roster user) the Namespace's owner label, which only the
 * program can set (owners may not update namespaces), names the new owner: their objects,
 * by the program's names and content, stay.
 */
"use strict";

const client = require("./client");

/** The state shape this version writes (the resource's `providerSchema` input) and reads. */
const STATE_SCHEMA = "1";
const STATE_SCHEMAS = ["1"];
/** The Namespace label naming its owner (set by the program only). */
const OWNER_LABEL = "workstations.example/owner";
/** Passes before the sweep gives up on something that keeps making bindings or token Secrets. */
const MAX_PASSES = 10;
const RBAC = "/apis/rbac.authorization.k8s.io/v1";
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/**
 * @typedef {{ namespace: string; user: string; providerSchema: string }} CutInputs
 * @typedef {CutInputs} CutOutputs
 * @typedef {import("./client").KubeApi} KubeApi
 * @typedef {import("./client").ProviderConfig} ProviderConfig
 */

/**
 * The names of the program's objects of `user` in a namespace they own (components/kube
 * `kubeNames` uses these; tests/kube/program.test.ts pins that they agree).
 * @param {string} user
 */
function programNames(user) {
  return {
    ownerBinding: `workstations-owner-${user}`,
    dashboardBinding: `workstations-dashboard-${user}`,
    dashboardAccount: `dashboard-${user}`,
    dashboardToken: `dashboard-${user}-token`,
  };
}

/**
 * Whether a RoleBinding or token Secret is one the program manages for `heir`, the owner the
 * Namespace's label names: by name and by content.
 * @param {"RoleBinding" | "Secret"} kind @param {any} o @param {string} heir @param {string} ns
 */
function heirs(kind, o, heir, ns) {
  const n = programNames(heir);
  const subjects = Array.isArray(o.subjects) ? o.subjects : [];
  const adminRef = o.roleRef?.kind === "ClusterRole" && o.roleRef?.name === "admin";
  if (kind === "Secret") return o.metadata?.name === n.dashboardToken && o.metadata?.annotations?.["kubernetes.io/service-account.name"] === n.dashboardAccount;
  if (o.metadata?.name === n.ownerBinding) return adminRef && subjects.length === 1 && subjects[0].kind === "User";
  if (o.metadata?.name === n.dashboardBinding)
    return (
      adminRef &&
      subjects.length === 1 &&
      subjects[0].kind === "ServiceAccount" &&
      subjects[0].name === n.dashboardAccount &&
      (subjects[0].namespace ?? ns) === ns
    );
  return false;
}

/**
 * Every item of a list, page by page.
 * @param {KubeApi} api @param {string} p @param {string} what @returns {Promise<any[]>}
 */
async function listAll(api, p, what) {
  const items = [];
  let cont = "";
  do {
    const sep = p.includes("?") ? "&" : "?";
    const a = await api.request("GET", `${p}${sep}limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ""}`);
    expect(api, a, [200], `listing ${what}`);
    items.push(...(a.json?.items ?? []));
    cont = a.json?.metadata?.continue ?? "";
  } while (cont);
  return items;
}

/**
 * Throws one line for an answer not in `ok`: 401/403 name the credential.
 * @param {KubeApi} api @param {import("./client").KubeAnswer} a @param {number[]} ok @param {string} what
 */
function expect(api, a, ok, what) {
  if (ok.includes(a.status)) return;
  const msg = String(a.json?.message ?? "")
    .replace(/\s+/g, " ")
    .slice(0, 300);
  const cred = a.status === 401 || a.status === 403 ? " (the admin credential: check workstations:kubeconfig or KUBECONFIG of the pulumi CLI)" : "";
  throw new Error(`Kubernetes access cut at ${api.server}: ${what}: HTTP ${a.status}${msg ? ` (${msg})` : ""}${cred}`);
}

/**
 * Removes, pass after pass, every RoleBinding and service-account-token Secret of `ns` that is
 * not the program's, after `user` left it. Returns what it removed ("RoleBinding ns/name", …).
 * A namespace that does not exist has nothing to cut.
 * @param {KubeApi} api @param {string} ns @param {string} user @returns {Promise<string[]>}
 */
async function sweep(api, ns, user) {
  /** @type {string[]} */
  const removed = [];
  const nsPath = `/api/v1/namespaces/${encodeURIComponent(ns)}`;
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const n = await api.request("GET", nsPath);
    if (n.status === 404) return removed;
    expect(api, n, [200], `reading namespace ${ns}`);
    const label = n.json?.metadata?.labels?.[OWNER_LABEL];
    const heir = typeof label === "string" && label !== user ? label : undefined;
    const bindings = await listAll(api, `${RBAC}/namespaces/${encodeURIComponent(ns)}/rolebindings`, `the RoleBindings of ${ns}`);
    const secrets = await listAll(
      api,
      `${nsPath}/secrets?fieldSelector=${encodeURIComponent("type=kubernetes.io/service-account-token")}`,
      `the token Secrets of ${ns}`,
    );
    const doomed = [
      ...bindings
        .filter((b) => !(heir && heirs("RoleBinding", b, heir, ns)))
        .map((b) => ({
          what: `RoleBinding ${ns}/${b.metadata.name}`,
          p: `${RBAC}/namespaces/${encodeURIComponent(ns)}/rolebindings/${encodeURIComponent(b.metadata.name)}`,
        })),
      ...secrets
        .filter((s) => !(heir && heirs("Secret", s, heir, ns)))
        .map((s) => ({ what: `Secret ${ns}/${s.metadata.name}`, p: `${nsPath}/secrets/${encodeURIComponent(s.metadata.name)}` })),
    ];
    if (!doomed.length) return removed;
    for (const d of doomed) {
      expect(api, await api.request("DELETE", d.p), [200, 202, 404], `removing ${d.what}`);
      removed.push(d.what);
    }
  }
  throw new Error(
    `Kubernetes access cut of ${user} in ${ns}: RoleBindings or token Secrets were still being created after ${MAX_PASSES} passes (removed so far: ${removed.join(", ")}); find what makes them (kubectl -n ${ns} get rolebindings,secrets) and run again`,
  );
}

/**
 * Whether the admin credential may do the cut in `ns` (checked when the resource is created,
 * so a bad credential shows at onboarding, not at the cut).
 * @param {KubeApi} api @param {string} ns
 */
async function checkCanCut(api, ns) {
  const attrs = [
    { verb: "list", group: "rbac.authorization.k8s.io", resource: "rolebindings" },
    { verb: "delete", group: "rbac.authorization.k8s.io", resource: "rolebindings" },
    { verb: "list", group: "", resource: "secrets" },
    { verb: "delete", group: "", resource: "secrets" },
  ];
  for (const a of attrs) {
    const r = await api.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SelfSubjectAccessReview",
      spec: { resourceAttributes: { namespace: ns, ...a } },
    });
    expect(api, r, [201], `checking the admin credential`);
    if (r.json?.status?.allowed !== true)
      throw new Error(
        `Kubernetes access cut at ${api.server}: the admin credential may not ${a.verb} ${a.resource} in ${ns}, which the cut of its owner needs: check workstations:kubeconfig or KUBECONFIG of the pulumi CLI`,
      );
  }
}

/** @type {ProviderConfig | undefined} */
let stackConfig;

/** @param {any} props @param {string} id */
function readable(props, id) {
  if (STATE_SCHEMAS.includes(props?.providerSchema)) return;
  throw new Error(
    `Kubernetes access cut ${id}: its state has schema ${JSON.stringify(props?.providerSchema)}, and this checkout's components/kube/sweep.js reads ${STATE_SCHEMAS.join(", ")}: run pulumi from a checkout of the program that wrote it (or a newer one)`,
  );
}

const NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

const namespaceCut = {
  /** @param {{ config: ProviderConfig }} req */
  async configure(req) {
    stackConfig = req.config;
  },
  /** @param {CutInputs} _olds @param {CutInputs} news */
  async check(_olds, news) {
    const failures = [];
    for (const k of /** @type {const} */ (["namespace", "user"]))
      if (news[k] !== UNKNOWN && !(typeof news[k] === "string" && NAME.test(news[k])))
        failures.push({ property: k, reason: `${k} must be a DNS-1123 label (got ${JSON.stringify(news[k])})` });
    if (news.providerSchema !== STATE_SCHEMA)
      failures.push({
        property: "providerSchema",
        reason: `providerSchema must be ${JSON.stringify(STATE_SCHEMA)} (got ${JSON.stringify(news.providerSchema)})`,
      });
    return { inputs: news, failures };
  },
  /** Never a replacement: the old resource's delete would cut a user who still has access. @param {string} id @param {CutOutputs} olds @param {CutInputs} news */
  async diff(id, olds, news) {
    readable(olds, id);
    const changes = olds.namespace !== news.namespace || olds.user !== news.user || olds.providerSchema !== news.providerSchema;
    return { changes, replaces: [], deleteBeforeReplace: false };
  },
  /** @param {CutInputs} inputs */
  async create(inputs) {
    await checkCanCut(client.adminClient(stackConfig), inputs.namespace);
    return { id: `${inputs.namespace}/${inputs.user}`, outs: { ...inputs } };
  },
  /** @param {string} id @param {CutOutputs} olds @param {CutInputs} news */
  async update(id, olds, news) {
    readable(olds, id);
    return { outs: { ...news } };
  },
  /** @param {string} id @param {CutOutputs} props */
  async delete(id, props) {
    readable(props, id);
    await sweep(client.adminClient(stackConfig), props.namespace, props.user);
  },
  /** Nothing to read back: the resource is the cut to come. @param {string} id @param {CutOutputs} props */
  async read(id, props) {
    readable(props, id);
    return { id, props };
  },
};

module.exports = { STATE_SCHEMA, OWNER_LABEL, MAX_PASSES, programNames, sweep, namespaceCut };
