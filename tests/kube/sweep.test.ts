// The Kubernetes access cut's logic (components/kube/sweep.js) and its admin kubeconfig
// reader (client.js), without a server: the sweep against an in-memory API that behaves like
// the API server's list/delete (and can play an owner's workload that recreates a binding),
// the provider's never-replace diff, and each kubeconfig form. tests/kube/authz.test.ts and
// engine.test.ts run the same code against the real API server.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { tempDir } from "../../dev/tmp";

const sweepJs = require("../../components/kube/sweep");
const clientJs = require("../../components/kube/client");

interface Obj {
  kind: "RoleBinding" | "Secret";
  metadata: { name: string; namespace: string; annotations?: Record<string, string> };
  type?: string;
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

/** An in-memory API: namespaces with labels, RoleBindings and Secrets; records every request. */
class FakeApi {
  server = "https://fake:6443";
  log: string[] = [];
  objs: Obj[] = [];
  namespaces = new Map<string, Record<string, string>>();
  /** Called after each DELETE (a workload that still has rights may create something). */
  afterDelete?: (o: Obj) => void;
  status?: (method: string, p: string) => number | undefined;

  async request(method: string, p: string): Promise<{ status: number; json: any }> {
    this.log.push(`${method} ${p}`);
    const forced = this.status?.(method, p);
    if (forced) return { status: forced, json: { message: "forced" } };
    const url = new URL(p, "https://x");
    let m = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(url.pathname);
    if (m)
      return this.namespaces.has(m[1]) ? { status: 200, json: { metadata: { name: m[1], labels: this.namespaces.get(m[1]) } } } : { status: 404, json: {} };
    m = /^\/apis\/rbac.authorization.k8s.io\/v1\/namespaces\/([^/]+)\/rolebindings(?:\/([^/]+))?$/.exec(url.pathname);
    const m2 = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(url.pathname);
    const hit = m ? { kind: "RoleBinding", ns: m[1], name: m[2] } : m2 ? { kind: "Secret", ns: m2[1], name: m2[2] } : undefined;
    if (!hit) return { status: 404, json: {} };
    if (method === "GET") {
      const sel = url.searchParams.get("fieldSelector");
      const items = this.objs.filter(
        (o) => o.kind === hit.kind && o.metadata.namespace === hit.ns && (!sel || sel === `type=${o.type}`) && (!hit.name || o.metadata.name === hit.name),
      );
      return { status: 200, json: { items, metadata: {} } };
    }
    if (method === "DELETE") {
      const i = this.objs.findIndex((o) => o.kind === hit.kind && o.metadata.namespace === hit.ns && o.metadata.name === decodeURIComponent(hit.name!));
      if (i < 0) return { status: 404, json: {} };
      const [gone] = this.objs.splice(i, 1);
      this.afterDelete?.(gone);
      return { status: 200, json: {} };
    }
    return { status: 405, json: {} };
  }
  names(ns?: string): string[] {
    return this.objs
      .filter((o) => !ns || o.metadata.namespace === ns)
      .map((o) => `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`)
      .sort();
  }
}

const rb = (ns: string, name: string, role: string, subjects: Obj["subjects"]): Obj => ({
  kind: "RoleBinding",
  metadata: { name, namespace: ns },
  roleRef: { kind: "ClusterRole", name: role },
  subjects,
});
const tokenSecret = (ns: string, name: string, sa: string): Obj => ({
  kind: "Secret",
  type: "kubernetes.io/service-account-token",
  metadata: { name, namespace: ns, annotations: { "kubernetes.io/service-account.name": sa } },
});
const opaque = (ns: string, name: string): Obj => ({ kind: "Secret", type: "Opaque", metadata: { name, namespace: ns } });

/** What an owner leaves behind in their namespace: a backdoor binding, a group binding, a token Secret, their data. */
function planted(api: FakeApi, ns: string): void {
  api.objs.push(
    rb(ns, "backdoor", "admin", [{ kind: "ServiceAccount", name: "backdoor", namespace: ns }]),
    rb(ns, "everyone", "edit", [{ kind: "Group", name: "system:authenticated" }]),
    // Named like the program's but not the program's (the owner made it): goes too.
    rb(ns, "workstations-owner-nadia", "admin", [{ kind: "ServiceAccount", name: "backdoor", namespace: ns }]),
    tokenSecret(ns, "backdoor-token", "backdoor"),
    tokenSecret(ns, "default-token", "default"),
    opaque(ns, "app-config"),
  );
}

test("sweep: every RoleBinding and token Secret of the namespace goes, other Secrets and other namespaces stay; a second sweep removes nothing", async () => {
  const api = new FakeApi();
  api.namespaces.set("nadia-apps", { "workstations.example/owner": "nadia" });
  api.namespaces.set("olga-lab", { "workstations.example/owner": "olga" });
  planted(api, "nadia-apps");
  planted(api, "olga-lab");
  const removed = await sweepJs.sweep(api, "nadia-apps", "nadia");
  assert.deepEqual(removed.sort(), [
    "RoleBinding nadia-apps/backdoor",
    "RoleBinding nadia-apps/everyone",
    "RoleBinding nadia-apps/workstations-owner-nadia",
    "Secret nadia-apps/backdoor-token",
    "Secret nadia-apps/default-token",
  ]);
  assert.deepEqual(api.names("nadia-apps"), ["Secret nadia-apps/app-config"]);
  assert.equal(api.names("olga-lab").length, 6, "another namespace is never touched");
  assert.ok(
    api.log.every((l) => !l.includes("olga-lab")),
    "no request names another namespace",
  );
  // Only token Secrets are listed (field selector), never the namespace's other Secrets.
  assert.ok(api.log.some((l) => l.includes("fieldSelector=type%3Dkubernetes.io%2Fservice-account-token")));
  api.log = [];
  assert.deepEqual(await sweepJs.sweep(api, "nadia-apps", "nadia"), []);
  assert.ok(
    api.log.every((l) => l.startsWith("GET ")),
    "the second sweep only reads",
  );
});

test("sweep: a hand-over keeps the new owner's program objects (by name and content) and nothing that only looks like them", async () => {
  const api = new FakeApi();
  const ns = "nadia-apps";
  api.namespaces.set(ns, { "workstations.example/owner": "olga" });
  planted(api, ns);
  api.objs.push(
    rb(ns, "workstations-owner-olga", "admin", [{ kind: "User", name: "oidc:olga@example.com" }]),
    rb(ns, "workstations-dashboard-olga", "admin", [{ kind: "ServiceAccount", name: "dashboard-olga", namespace: ns }]),
    tokenSecret(ns, "dashboard-olga-token", "dashboard-olga"),
  );
  await sweepJs.sweep(api, ns, "nadia");
  assert.deepEqual(api.names(ns), [
    "RoleBinding nadia-apps/workstations-dashboard-olga",
    "RoleBinding nadia-apps/workstations-owner-olga",
    "Secret nadia-apps/app-config",
    "Secret nadia-apps/dashboard-olga-token",
  ]);
  // The same names with other content (what the leaving owner could have made beforehand) go.
  api.objs = [];
  api.objs.push(
    rb(ns, "workstations-owner-olga", "cluster-admin", [{ kind: "User", name: "x" }]),
    rb(ns, "workstations-owner-olga", "admin", [
      { kind: "User", name: "x" },
      { kind: "ServiceAccount", name: "backdoor", namespace: ns },
    ]),
    rb(ns, "workstations-dashboard-olga", "admin", [{ kind: "ServiceAccount", name: "backdoor", namespace: ns }]),
    tokenSecret(ns, "dashboard-olga-token", "backdoor"),
  );
  await sweepJs.sweep(api, ns, "nadia");
  assert.deepEqual(api.names(ns), []);
  // The cut of the label's own user keeps nothing (its objects are gone by then).
  api.objs.push(rb(ns, "workstations-owner-olga", "admin", [{ kind: "User", name: "oidc:olga@example.com" }]));
  await sweepJs.sweep(api, ns, "olga");
  assert.deepEqual(api.names(ns), []);
});

test("sweep: a workload that still had rights and recreates a binding is swept in the next pass; one that never stops fails the cut in one line", async () => {
  const api = new FakeApi();
  const ns = "nadia-apps";
  api.namespaces.set(ns, { "workstations.example/owner": "nadia" });
  planted(api, ns);
  let made = 0;
  api.afterDelete = (o) => {
    if (o.metadata.name === "backdoor" && made < 2)
      api.objs.push(rb(ns, `again-${++made}`, "admin", [{ kind: "ServiceAccount", name: "backdoor", namespace: ns }]));
  };
  const removed = await sweepJs.sweep(api, ns, "nadia");
  assert.ok(removed.includes("RoleBinding nadia-apps/again-1"));
  assert.deepEqual(api.names(ns), ["Secret nadia-apps/app-config"]);

  let n = 0;
  api.afterDelete = (o) => {
    if (o.kind === "RoleBinding") api.objs.push(rb(ns, `forever-${++n}`, "admin", []));
  };
  api.objs.push(rb(ns, "forever-0", "admin", []));
  await assert.rejects(
    sweepJs.sweep(api, ns, "nadia"),
    new RegExp(
      `^Error: Kubernetes access cut of nadia in nadia-apps: RoleBindings or token Secrets were still being created after ${sweepJs.MAX_PASSES} passes \\(removed so far: RoleBinding nadia-apps/forever-0, .*\\); find what makes them \\(kubectl -n nadia-apps get rolebindings,secrets\\) and run again$`,
    ),
  );
});

test("sweep: a namespace that is gone has nothing to cut; a refused credential or a server error fails in one line", async () => {
  const api = new FakeApi();
  assert.deepEqual(await sweepJs.sweep(api, "gone", "nadia"), []);
  api.namespaces.set("nadia-apps", {});
  api.status = (m, p) => (m === "GET" && p.includes("/rolebindings") ? 403 : undefined);
  await assert.rejects(
    sweepJs.sweep(api, "nadia-apps", "nadia"),
    /^Error: Kubernetes access cut at https:\/\/fake:6443: listing the RoleBindings of nadia-apps: HTTP 403 \(forced\) \(the admin credential: check workstations:kubeconfig or KUBECONFIG of the pulumi CLI\)$/,
  );
  planted(api, "nadia-apps");
  api.status = (m) => (m === "DELETE" ? 500 : undefined);
  await assert.rejects(sweepJs.sweep(api, "nadia-apps", "nadia"), /removing RoleBinding nadia-apps\/backdoor: HTTP 500 \(forced\)$/);
});

test("the cut resource: never replaced (a replacement's delete would cut a user who still has access); state of an unknown schema refused", async () => {
  const p = sweepJs.namespaceCut;
  const a = { namespace: "nadia-apps", user: "nadia", providerSchema: "1" };
  assert.deepEqual(await p.diff("id", a, a), { changes: false, replaces: [], deleteBeforeReplace: false });
  assert.deepEqual(await p.diff("id", a, { ...a, namespace: "x" }), { changes: true, replaces: [], deleteBeforeReplace: false });
  await assert.rejects(
    p.delete("nadia-apps/nadia", { ...a, providerSchema: "9" }),
    /its state has schema "9", and this checkout's components\/kube\/sweep.js reads 1/,
  );
  assert.deepEqual((await p.check({}, { ...a, namespace: "Bad_NS" })).failures, [
    { property: "namespace", reason: 'namespace must be a DNS-1123 label (got "Bad_NS")' },
  ]);
  assert.deepEqual((await p.check({}, a)).failures, []);
});

// ---------------------------------------------------------------------------------------
// The admin kubeconfig (client.js)

const dir = tempDir("ws-kube-client-");
after(() => fs.rmSync(dir, { recursive: true, force: true }));
fs.writeFileSync(path.join(dir, "ca.crt"), "CA-PEM");
fs.writeFileSync(path.join(dir, "admin.crt"), "CERT-PEM");
fs.writeFileSync(path.join(dir, "admin.key"), "KEY-PEM");
fs.writeFileSync(path.join(dir, "token"), "file-token\n");
const kc = (user: Record<string, unknown>, cluster: Record<string, unknown> = { server: "https://k8s:6443", "certificate-authority": "ca.crt" }) =>
  YAML.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster }],
    users: [{ name: "u", user }],
    contexts: [{ name: "ctx", context: { cluster: "c", user: "u" } }],
    "current-context": "ctx",
  });
const config = (v?: string) => ({ get: (k: string) => (k === "workstations:kubeconfig" ? v : undefined) });

test("admin kubeconfig: contents or a path in workstations:kubeconfig, else KUBECONFIG; relative files from the kubeconfig's directory; data fields", () => {
  const file = path.join(dir, "admin.kubeconfig");
  fs.writeFileSync(file, kc({ "client-certificate": "admin.crt", "client-key": "admin.key" }));
  const byPath = clientJs.adminConnection(config(file));
  assert.equal(byPath.server, "https://k8s:6443");
  assert.deepEqual([String(byPath.tls.ca), String(byPath.tls.cert), String(byPath.tls.key)], ["CA-PEM", "CERT-PEM", "KEY-PEM"]);
  const data = (s: string) => Buffer.from(s).toString("base64");
  const byContent = clientJs.adminConnection(
    config(kc({ token: "t0k" }, { server: "https://k8s:6443/", "certificate-authority-data": data("CA2"), "tls-server-name": "kubernetes" })),
  );
  assert.deepEqual({ ...byContent.tls, ca: String(byContent.tls.ca) }, { insecure: false, ca: "CA2", servername: "kubernetes", token: "t0k" });
  const old = process.env.KUBECONFIG;
  try {
    const second = path.join(dir, "second.kubeconfig");
    fs.writeFileSync(second, kc({ tokenFile: "token" }));
    // client-go's merge: the first file that names an entry wins; missing files are skipped.
    process.env.KUBECONFIG = [path.join(dir, "missing"), second, file].join(path.delimiter);
    assert.equal(clientJs.adminConnection(config(undefined)).tls.token, "file-token");
    process.env.KUBECONFIG = path.join(dir, "missing");
    assert.throws(
      () => clientJs.adminConnection(config(undefined)),
      /^Error: no admin kubeconfig for the Kubernetes access cut: set the secret workstations:kubeconfig/,
    );
  } finally {
    if (old === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = old;
  }
});

test("admin kubeconfig: an exec plugin's token or client certificate; what the cut does not support is refused in one line", () => {
  const cl = { server: "https://k8s:6443", "certificate-authority": path.join(dir, "ca.crt") };
  const plugin = path.join(dir, "plugin.js");
  fs.writeFileSync(
    plugin,
    `const info = JSON.parse(process.env.KUBERNETES_EXEC_INFO);
if (info.spec.interactive !== false || process.env.EXTRA !== "x") process.exit(3);
process.stdout.write(JSON.stringify({ apiVersion: info.apiVersion, kind: "ExecCredential", status: process.argv[2] === "cert" ? { clientCertificateData: "C", clientKeyData: "K" } : { token: "exec-token" } }));`,
  );
  const exec = (args: string[]) => ({
    exec: { apiVersion: "client.authentication.k8s.io/v1", command: process.execPath, args: [plugin, ...args], env: [{ name: "EXTRA", value: "x" }] },
  });
  assert.equal(clientJs.adminConnection(config(kc(exec([]), cl))).tls.token, "exec-token");
  const c = clientJs.adminConnection(config(kc(exec(["cert"]), cl))).tls;
  assert.deepEqual([c.cert, c.key], ["C", "K"]);
  assert.throws(
    () => clientJs.adminConnection(config(kc({ exec: { command: process.execPath, args: ["-e", "process.exit(7)"] } }, cl))),
    /exec plugin .* failed \(exit 7\): check workstations:kubeconfig/,
  );
  for (const [user, cluster, why] of [
    [{ "auth-provider": { name: "oidc" } }, cl, "an auth-provider"],
    [{ token: "t", as: "someone" }, cl, "impersonation \\(as\\)"],
    [{ username: "a", password: "b" }, cl, "basic auth"],
    [{ token: "t" }, { server: "https://k8s", "proxy-url": "http://proxy:3128" }, "proxy-url"],
  ] as const)
    assert.throws(
      () => clientJs.adminConnection(config(kc(user, cluster))),
      new RegExp(`^Error: the admin kubeconfig's context ctx uses ${why}, which the Kubernetes access cut does not support: check workstations:kubeconfig`),
    );
  assert.throws(() => clientJs.adminConnection(config(kc({}, cl))), /has no credential \(client certificate, token or exec plugin\)/);
  assert.throws(() => clientJs.adminConnection(config(kc({ token: "t" }, { server: "http://k8s" }))), /has no https server \("http:\/\/k8s"\)/);
  assert.throws(() => clientJs.adminConnection(config(YAML.stringify({ clusters: [] }) + "\n")), /has no current-context/);
});
