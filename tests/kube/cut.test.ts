// Kubernetes access ends with the cut, on a real API server (etcd + kube-apiserver +
// kube-controller-manager from the toolchain, OIDC through a fake issuer). While active, a
// namespace-owner makes their own ServiceAccount, binds it to `admin`, gets a long-lived
// token Secret and a TokenRequest token for it, and binds a group; after suspension, after
// offboarding and after `destroy --target` none of that works any more (401/403), while the
// program's own objects (the new owner's in a hand-over, another tenant's) stay and a second
// run changes nothing. Owned namespaces enforce Pod Security (`baseline`, configurable).
// The program's objects are applied as the engine would (tests/kube/apply.ts; the cut's real
// implementation, components/kube/sweep.js, runs as the delete). Under CI=true a missing
// binary fails.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { KubeServer, startKube } from "../../dev/services";
import { KubeApplier } from "./apply";
import { kubeSkip } from "./lib";
import * as real from "./real";
import { ROSTER, USERS, withNadia, withoutNadia } from "./real";
import { tempDir } from "../../dev/tmp";

const skip = kubeSkip();
let kube: KubeServer;
let applier: KubeApplier;
const NS = "nadia-apps";
const RBAC = "/apis/rbac.authorization.k8s.io/v1";
const nadia = () => kube.oidc.tokenFor(USERS.nadia);
const asOwner = (method: string, p: string, body?: unknown) => real.asOwner(kube, USERS.nadia, method, p, body);
const plantBackdoor = (tag: string, programName?: string) => real.plantBackdoor(kube, USERS.nadia, NS, tag, programName);
const backdoorClosed = (b: real.Backdoor, when: string) => real.backdoorClosed(kube, USERS.nadia, NS, b, when);
const up = async (roster: string, config: Record<string, string> = {}) => applier.up(await real.programObjects(kube, roster, config));

/** The owner's data stays: the namespace with its labels, a workload, an ordinary Secret, their ServiceAccounts. */
async function dataKept(sa: string) {
  const ns = (await kube.request("GET", `/api/v1/namespaces/${NS}`)).json;
  assert.equal(ns.status.phase, "Active");
  assert.equal(ns.metadata.labels["pod-security.kubernetes.io/enforce"], "baseline");
  assert.equal((await kube.request("GET", `/apis/apps/v1/namespaces/${NS}/deployments/keeps-running`)).status, 200);
  assert.equal((await kube.request("GET", `/api/v1/namespaces/${NS}/secrets/app-config`)).status, 200);
  assert.equal((await kube.request("GET", `/api/v1/namespaces/${NS}/serviceaccounts/${sa}`)).status, 200);
}

/** Every object of both tenants' namespaces that the cut or the program could touch, with its resourceVersion. */
async function snapshot(): Promise<string[]> {
  const out: string[] = [];
  for (const ns of [NS, "olga-lab"]) {
    const n = (await kube.request("GET", `/api/v1/namespaces/${ns}`)).json.metadata;
    out.push(`Namespace ${ns} ${n.uid} ${n.resourceVersion}`);
    for (const p of [`${RBAC}/namespaces/${ns}/rolebindings`, `/api/v1/namespaces/${ns}/secrets`, `/api/v1/namespaces/${ns}/serviceaccounts`])
      for (const i of (await kube.request("GET", p)).json.items) out.push(`${p} ${i.metadata.name} ${i.metadata.uid} ${i.metadata.resourceVersion}`);
  }
  return out.sort();
}

/** The other tenant's objects are untouched: olga's bindings, her dashboard token works in olga-lab. */
async function olgaUntouched(dashboard: string) {
  assert.equal((await kube.request("GET", "/api/v1/namespaces/olga-lab/pods", { token: kube.oidc.tokenFor(USERS.olga) })).status, 200);
  assert.equal((await kube.request("GET", "/api/v1/namespaces/olga-lab/secrets", { token: dashboard })).status, 200);
  assert.equal((await kube.request("GET", `${RBAC}/clusterroles/dashboard-nav-readonly`)).status, 200);
}

before(
  async () => {
    if (skip) return;
    kube = await startKube({ dir: tempDir("ws-kube-cut-") });
    applier = new KubeApplier(kube);
    await real.waitOidc(kube);
    await up(ROSTER);
    // nadia's workload and data, made while active.
    const deployment = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "keeps-running" },
      spec: {
        selector: { matchLabels: { a: "b" } },
        template: { metadata: { labels: { a: "b" } }, spec: { containers: [{ name: "c", image: "registry.invalid/x:1" }] } },
      },
    };
    assert.equal((await asOwner("POST", `/apis/apps/v1/namespaces/${NS}/deployments`, deployment)).status, 201);
    assert.equal(
      (
        await asOwner("POST", `/api/v1/namespaces/${NS}/secrets`, {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "app-config" },
          stringData: { k: "v" },
        })
      ).status,
      201,
    );
  },
  { timeout: 300_000 },
);
after(async () => kube?.stop());

let olgaDashboard = "";

test(
  "suspend: the owner's own ServiceAccount tokens and bindings stop working (401/403); data, workload and the other tenant stay; a second run changes nothing",
  { skip, timeout: 300_000 },
  async () => {
    olgaDashboard = await real.waitToken(kube, "olga-lab", "dashboard-olga-token");
    const b = await plantBackdoor("a", "workstations-owner-olga");
    console.log(`what a namespace-owner could do in ${NS} (as oidc:nadia@example.com):\n  ${b.found.join("\n  ")}`);
    await up(withNadia("suspended"));
    await backdoorClosed(b, "after suspend");
    await dataKept("backdoor-a");
    await olgaUntouched(olgaDashboard);
    // A second run (same roster) deletes nothing and runs no cut; a second sweep finds nothing.
    const before = await snapshot();
    await up(withNadia("suspended"));
    const config = { get: (k: string) => (k === "workstations:kubeconfig" ? fs.readFileSync(kube.adminKubeconfig, "utf8") : undefined) };
    const { sweep } = require("../../components/kube/sweep");
    const { adminClient } = require("../../components/kube/client");
    assert.deepEqual(await sweep(adminClient(config), NS, "nadia"), []);
    assert.deepEqual(await snapshot(), before, "nothing changed: same objects, same resourceVersions");
    await backdoorClosed(b, "after a second run");
  },
);

test("re-activation gives the owner their access back; offboarding then cuts what they made again", { skip, timeout: 300_000 }, async () => {
  await up(ROSTER);
  assert.equal(await real.settled(kube, 200, "GET", `/api/v1/namespaces/${NS}/pods`, nadia()), 200);
  const b = await plantBackdoor("b");
  await up(withNadia("offboarded"));
  await backdoorClosed(b, "after offboarding");
  await dataKept("backdoor-b");
  await olgaUntouched(olgaDashboard);
});

test("destroy --target of the owner (then removal from the roster) cuts what they made", { skip, timeout: 300_000 }, async () => {
  await up(ROSTER);
  assert.equal(await real.settled(kube, 200, "GET", `/api/v1/namespaces/${NS}/pods`, nadia()), 200);
  const b = await plantBackdoor("c");
  await applier.destroy((n) => n.startsWith("nadia-"));
  await backdoorClosed(b, "after destroy --target");
  await up(withoutNadia());
  await backdoorClosed(b, "after removal from the roster");
  await dataKept("backdoor-c");
  await olgaUntouched(olgaDashboard);
});

test(
  "hand-over in one run (nadia offboarded, nadia-apps to olga): nadia's backdoor goes, olga's new program objects stay",
  { skip, timeout: 300_000 },
  async () => {
    await up(ROSTER);
    assert.equal(await real.settled(kube, 200, "GET", `/api/v1/namespaces/${NS}/pods`, nadia()), 200);
    const b = await plantBackdoor("d");
    const handover = withNadia("offboarded").replace("    namespaces: [olga-lab]\n", `    namespaces: [olga-lab, ${NS}]\n`);
    await up(handover);
    await backdoorClosed(b, "after the hand-over");
    const ns = (await kube.request("GET", `/api/v1/namespaces/${NS}`)).json;
    assert.equal(ns.metadata.labels["workstations.example/owner"], "olga");
    assert.equal(
      await real.settled(kube, 200, "GET", `/api/v1/namespaces/${NS}/pods`, kube.oidc.tokenFor(USERS.olga)),
      200,
      "olga is admin of her new namespace",
    );
    const dash = await real.waitToken(kube, NS, "dashboard-olga-token");
    assert.equal((await kube.request("GET", `/api/v1/namespaces/${NS}/secrets`, { token: dash })).status, 200, "olga's dashboard token there works");
    const names = (await kube.request("GET", `${RBAC}/namespaces/${NS}/rolebindings`)).json.items.map((i: any) => i.metadata.name).sort();
    assert.deepEqual(names, ["workstations-dashboard-olga", "workstations-owner-olga"]);
    // Back to the base roster for the next test: nadia-apps to nadia again.
    await up(ROSTER);
  },
);

test("Pod Security admission: an owner's privileged or host pod is refused (baseline); restricted when configured", { skip, timeout: 300_000 }, async () => {
  assert.equal(await real.settled(kube, 200, "GET", `/api/v1/namespaces/${NS}/pods`, nadia()), 200);
  // Pods need the namespace's default ServiceAccount (the service-account controller makes it).
  assert.equal(await real.settled(kube, 200, "GET", `/api/v1/namespaces/${NS}/serviceaccounts/default`), 200);
  const pod = (name: string, spec: Record<string, unknown>, container: Record<string, unknown> = {}) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name },
    spec: { ...spec, containers: [{ name: "c", image: "registry.invalid/x:1", ...container }] },
  });
  const create = (body: unknown) => asOwner("POST", `/api/v1/namespaces/${NS}/pods`, body);
  for (const [name, spec, container] of [
    ["privileged", {}, { securityContext: { privileged: true } }],
    ["host-path", { volumes: [{ name: "root", hostPath: { path: "/" } }] }, {}],
    ["host-pid", { hostPID: true }, {}],
    ["host-network", { hostNetwork: true }, {}],
  ] as const) {
    const r = await create(pod(name, spec, container));
    console.log(`Pod Security (baseline): ${r.line}`);
    assert.equal(r.status, 403, r.line);
    assert.match(r.json.message, /violates PodSecurity "baseline:latest"/, r.line);
  }
  const plain = await create(pod("plain", {}));
  assert.equal(plain.status, 201, plain.line);
  assert.equal((await kube.request("GET", `/api/v1/namespaces/${NS}`)).json.metadata.labels["pod-security.kubernetes.io/enforce"], "baseline");

  await up(ROSTER, { kubePodSecurity: "restricted" });
  assert.equal((await kube.request("GET", `/api/v1/namespaces/${NS}`)).json.metadata.labels["pod-security.kubernetes.io/enforce"], "restricted");
  const refused = await create(pod("plain-2", {}));
  assert.equal(refused.status, 403, refused.line);
  assert.match(refused.json.message, /violates PodSecurity "restricted:latest"/);
  const conforming = await create(
    pod(
      "restricted-ok",
      { securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } } },
      { securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } } },
    ),
  );
  assert.equal(conforming.status, 201, conforming.line);
  await up(ROSTER);
  assert.equal((await kube.request("GET", `/api/v1/namespaces/${NS}`)).json.metadata.labels["pod-security.kubernetes.io/enforce"], "baseline");
});

test(
  "the cut's admin credential on the real server: embedded data, an exec plugin's client certificate; a refused token fails in one line",
  { skip, timeout: 120_000 },
  async () => {
    const { sweep } = require("../../components/kube/sweep");
    const { adminClient } = require("../../components/kube/client");
    const pki = path.join(kube.dir, "pki");
    const b64 = (f: string) => fs.readFileSync(path.join(pki, f)).toString("base64");
    const kc = (user: unknown) =>
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "c", cluster: { server: kube.server, "certificate-authority-data": b64("ca.crt") } }],
        users: [{ name: "u", user }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      });
    // A namespace of nobody's (a sweep where an owner is still admin would cut them).
    const scratch = "cut-credentials";
    assert.equal(
      (await kube.request("POST", "/api/v1/namespaces", { body: { apiVersion: "v1", kind: "Namespace", metadata: { name: scratch } } })).status,
      201,
    );
    const withConfig = (text: string) => adminClient({ get: (k: string) => (k === "workstations:kubeconfig" ? text : undefined) });
    // Each credential form sweeps a binding made for it.
    const planted = async () => {
      const r = await kube.request("POST", `${RBAC}/namespaces/${scratch}/rolebindings`, {
        body: {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name: "x" },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "view" },
          subjects: [],
        },
      });
      assert.equal(r.status, 201);
      return [`RoleBinding ${scratch}/x`];
    };
    let want = await planted();
    assert.deepEqual(
      await sweep(withConfig(kc({ "client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key") })), scratch, "nobody"),
      want,
    );
    const plugin = path.join(kube.dir, "exec-plugin.js");
    fs.writeFileSync(
      plugin,
      `const fs = require("fs");
process.stdout.write(JSON.stringify({ apiVersion: "client.authentication.k8s.io/v1", kind: "ExecCredential",
  status: { clientCertificateData: fs.readFileSync(${JSON.stringify(path.join(pki, "admin.crt"))}, "utf8"), clientKeyData: fs.readFileSync(${JSON.stringify(path.join(pki, "admin.key"))}, "utf8") } }));`,
    );
    want = await planted();
    assert.deepEqual(
      await sweep(withConfig(kc({ exec: { apiVersion: "client.authentication.k8s.io/v1", command: process.execPath, args: [plugin] } })), scratch, "nobody"),
      want,
    );
    await assert.rejects(
      sweep(withConfig(kc({ token: "not-a-token" })), scratch, "nobody"),
      new RegExp(
        `^Error: Kubernetes access cut at ${kube.server.replace(/\./g, "\\.")}: reading namespace cut-credentials: HTTP 401 \\(Unauthorized\\) \\(the admin credential: check workstations:kubeconfig or KUBECONFIG of the pulumi CLI\\)$`,
      ),
    );
  },
);
