// Authorization on a real API server (etcd + kube-apiserver + kube-controller-manager from the
// toolchain, OIDC through a fake issuer): the program's own Kubernetes objects (captured under
// mocks, applied with kubectl; tests/kube/apply.ts) checked with SubjectAccessReviews AND real
// requests carrying the user's OIDC ID token or the dashboard token. Suspend, re-activate,
// destroy --target and removal from the roster. Under CI=true a missing binary fails.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { KubeServer, startKube } from "../../dev/services";
import { KubeApplier } from "./apply";
import * as lib from "./real";
import { kubeSkip } from "./lib";
import { ROSTER, USERS, waitOidc, withNadia, withoutNadia } from "./real";
import { tempDir } from "../../dev/tmp";

const skip = kubeSkip();
let kube: KubeServer;
let applier: KubeApplier;

const programObjects = (roster: string) => lib.programObjects(kube, roster);

interface Attr {
  verb: string;
  resource: string;
  subresource?: string;
  group?: string;
  namespace?: string;
}
async function sar(user: string, a: Attr): Promise<boolean> {
  const r = await kube.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
    body: {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: { user, groups: ["system:authenticated"], resourceAttributes: { group: a.group ?? "", ...a } },
    },
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return r.json.status.allowed === true;
}

const deployment = (ns: string) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { generateName: "probe-", namespace: ns },
  spec: {
    replicas: 1,
    selector: { matchLabels: { app: "probe" } },
    template: { metadata: { labels: { app: "probe" } }, spec: { containers: [{ name: "c", image: "registry.invalid/probe:1" }] } },
  },
});

/** The owner's checks: [what, SAR attributes, real request, status when allowed]. */
function ownerChecks(own: string, other: string) {
  return {
    allowed: [
      [
        "create a Deployment in own namespace",
        { verb: "create", group: "apps", resource: "deployments", namespace: own },
        ["POST", `/apis/apps/v1/namespaces/${own}/deployments`, deployment(own)],
        201,
      ],
      ["read Secrets in own namespace", { verb: "list", resource: "secrets", namespace: own }, ["GET", `/api/v1/namespaces/${own}/secrets`], 200],
      ["list namespaces", { verb: "list", resource: "namespaces" }, ["GET", "/api/v1/namespaces"], 200],
      ["list nodes", { verb: "list", resource: "nodes" }, ["GET", "/api/v1/nodes"], 200],
    ] as const,
    denied: [
      ["read pods in another tenant's namespace", { verb: "list", resource: "pods", namespace: other }, ["GET", `/api/v1/namespaces/${other}/pods`]],
      ["read Secrets in another tenant's namespace", { verb: "get", resource: "secrets", namespace: other }, ["GET", `/api/v1/namespaces/${other}/secrets`]],
      ["list pods cluster-wide", { verb: "list", resource: "pods" }, ["GET", "/api/v1/pods"]],
      [
        "create a namespace",
        { verb: "create", resource: "namespaces" },
        ["POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { generateName: "x-" } }],
      ],
      ["delete own namespace", { verb: "delete", resource: "namespaces", namespace: own }, ["DELETE", `/api/v1/namespaces/${own}`]],
    ] as const,
  };
}

const settled = (want: number, method: string, p: string, token?: string) => lib.settled(kube, want, method, p, token);
const waitToken = (ns: string, name: string) => lib.waitToken(kube, ns, name);

async function expectOwner(token: string, user: string, own: string, other: string, works: boolean) {
  const c = ownerChecks(own, other);
  for (const [what, attr, [method, p, body], status] of c.allowed) {
    assert.equal(await sar(user, attr), works, `SAR ${user}: ${what}`);
    const r = await kube.request(method, p, { token, body });
    assert.equal(r.status, works ? status : 403, `${user} ${what}: ${JSON.stringify(r.json).slice(0, 300)}`);
  }
  for (const [what, attr, [method, p, body]] of c.denied) {
    assert.equal(await sar(user, attr), false, `SAR ${user}: ${what}`);
    const r = await kube.request(method, p, { token, body });
    assert.equal(r.status, 403, `${user} ${what}`);
  }
}

async function dashboardWorks(token: string, own: string, other: string) {
  const who = await kube.kubectl(["auth", "whoami", "-o", "json"], { token });
  assert.equal(who.code, 0, who.stderr);
  assert.equal(JSON.parse(who.stdout).status.userInfo.username, `system:serviceaccount:${own}:dashboard-${own.split("-")[0]}`);
  assert.equal((await kube.request("GET", `/api/v1/namespaces/${own}/secrets`, { token })).status, 200);
  assert.equal((await kube.request("GET", `/apis/apps/v1/namespaces/${own}/deployments`, { token })).status, 200);
  assert.equal((await kube.request("GET", "/api/v1/namespaces", { token })).status, 200, "dashboard nav lists namespaces");
  assert.equal((await kube.request("GET", `/api/v1/namespaces/${other}/secrets`, { token })).status, 403);
  assert.equal((await kube.request("GET", `/api/v1/namespaces/${other}/pods`, { token })).status, 403);
  assert.equal((await kube.request("GET", "/api/v1/pods", { token })).status, 403);
  assert.equal((await kube.request("GET", "/api/v1/secrets", { token })).status, 403);
}

before(
  async () => {
    if (skip) return;
    kube = await startKube({ dir: tempDir("ws-kube-authz-") });
    applier = new KubeApplier(kube);
    await waitOidc(kube);
    await applier.up(await programObjects(ROSTER));
  },
  { timeout: 300_000 },
);
after(async () => kube?.stop());

test("namespace-owner: own namespace yes (Deployment, Secrets), namespaces and nodes listable, other tenants and cluster-wide pods no", { skip }, async () => {
  await expectOwner(kube.oidc.tokenFor(USERS.nadia), "oidc:nadia@example.com", "nadia-apps", "olga-lab", true);
  await expectOwner(kube.oidc.tokenFor(USERS.olga), "oidc:olga@example.com", "olga-lab", "nadia-apps", true);
});

test("admin can do everything; a power-user with no namespace can do nothing; an unknown identity nothing", { skip }, async () => {
  const admin = kube.oidc.tokenFor(USERS.viktor);
  assert.equal(await sar("oidc:viktor@example.com", { verb: "*", group: "*", resource: "*" }), true);
  for (const [m, p] of [
    ["GET", "/api/v1/pods"],
    ["GET", "/api/v1/namespaces/nadia-apps/secrets"],
    ["GET", "/api/v1/namespaces/olga-lab/secrets"],
    ["GET", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"],
  ])
    assert.equal((await kube.request(m, p, { token: admin })).status, 200, `admin ${m} ${p}`);
  assert.equal(
    (await kube.request("POST", "/api/v1/namespaces", { token: admin, body: { apiVersion: "v1", kind: "Namespace", metadata: { name: "admin-made" } } }))
      .status,
    201,
  );
  for (const who of [USERS.emo, { name: "mallory", email: "mallory@example.com" }]) {
    const t = kube.oidc.tokenFor(who);
    for (const [m, p] of [
      ["GET", "/api/v1/namespaces"],
      ["GET", "/api/v1/nodes"],
      ["GET", "/api/v1/pods"],
      ["GET", "/api/v1/namespaces/nadia-apps/secrets"],
      ["GET", "/api/v1/namespaces/default/pods"],
    ])
      assert.equal((await kube.request(m, p, { token: t })).status, 403, `${who.name} ${m} ${p}`);
    for (const a of [
      { verb: "list", resource: "namespaces" },
      { verb: "get", resource: "secrets", namespace: "nadia-apps" },
      { verb: "create", group: "apps", resource: "deployments", namespace: "default" },
    ])
      assert.equal(await sar(`oidc:${who.email}`, a), false, `${who.name} ${JSON.stringify(a)}`);
  }
});

test("the dashboard token authenticates as the namespace's ServiceAccount and is confined to its namespace", { skip }, async () => {
  await dashboardWorks(await waitToken("nadia-apps", "dashboard-nadia-token"), "nadia-apps", "olga-lab");
});

test("suspend: every owner check is denied and the dashboard token fails; namespace and workload stay; re-activating restores all", { skip }, async () => {
  const nadia = () => kube.oidc.tokenFor(USERS.nadia);
  const made = await kube.request("POST", "/apis/apps/v1/namespaces/nadia-apps/deployments", {
    token: nadia(),
    body: { ...deployment("nadia-apps"), metadata: { name: "keeps-running", namespace: "nadia-apps" } },
  });
  assert.equal(made.status, 201);
  const oldDashboard = await waitToken("nadia-apps", "dashboard-nadia-token");
  await applier.up(await programObjects(withNadia("suspended")));
  await expectOwner(nadia(), "oidc:nadia@example.com", "nadia-apps", "olga-lab", false);
  assert.equal(await settled(401, "GET", "/api/v1/namespaces/nadia-apps/secrets", oldDashboard), 401, "the dashboard token no longer authenticates");
  assert.equal((await kube.request("GET", "/apis/apps/v1/namespaces/nadia-apps/deployments/keeps-running")).status, 200, "the workload stays");
  assert.equal((await kube.request("GET", "/api/v1/namespaces/nadia-apps")).json.status.phase, "Active");
  // olga is untouched
  await expectOwner(kube.oidc.tokenFor(USERS.olga), "oidc:olga@example.com", "olga-lab", "nadia-apps", true);

  await applier.up(await programObjects(ROSTER));
  await expectOwner(nadia(), "oidc:nadia@example.com", "nadia-apps", "olga-lab", true);
  const fresh = await waitToken("nadia-apps", "dashboard-nadia-token");
  assert.notEqual(fresh, oldDashboard, "a new dashboard token");
  await dashboardWorks(fresh, "nadia-apps", "olga-lab");
  assert.equal((await kube.request("GET", "/api/v1/namespaces/nadia-apps/secrets", { token: oldDashboard })).status, 401, "the old token stays dead");
});

test(
  "destroy --target of the owner's component and removal from the roster leave the namespace and workload (retainOnDelete); the owner's access is cut",
  { skip },
  async () => {
    await applier.destroy((n) => n.startsWith("nadia-"));
    await expectOwner(kube.oidc.tokenFor(USERS.nadia), "oidc:nadia@example.com", "nadia-apps", "olga-lab", false);
    assert.equal((await kube.request("GET", "/apis/apps/v1/namespaces/nadia-apps/deployments/keeps-running")).status, 200);
    assert.equal((await kube.request("GET", "/api/v1/namespaces/nadia-apps")).status, 200);
    for (const doc of [withoutNadia(), withNadia("offboarded")]) {
      await applier.up(await programObjects(doc));
      assert.equal((await kube.request("GET", "/api/v1/namespaces/nadia-apps")).status, 200);
      assert.equal((await kube.request("GET", "/apis/apps/v1/namespaces/nadia-apps/deployments/keeps-running")).status, 200);
    }
  },
);

test(
  "power-user with kubeTier read-only (the team's tier): reads workloads, pods and logs, services, config maps, events, namespaces and nodes everywhere; no Secret, no exec, no write; suspended: nothing",
  { skip },
  async () => {
    const readOnly = ROSTER.replace("    overrides:\n      pushWhitelist: true\n", "    overrides:\n      kubeTier: read-only\n      pushWhitelist: true\n");
    assert.notEqual(readOnly, ROSTER);
    await applier.up(await programObjects(readOnly));
    const emo = () => kube.oidc.tokenFor(USERS.emo);
    const user = "oidc:emo@example.com";
    for (const p of [
      "/api/v1/pods",
      "/api/v1/namespaces/nadia-apps/pods",
      "/apis/apps/v1/deployments",
      "/apis/apps/v1/namespaces/olga-lab/statefulsets",
      "/apis/batch/v1/jobs",
      "/api/v1/services",
      "/api/v1/configmaps",
      "/api/v1/events",
      "/api/v1/namespaces",
      "/api/v1/nodes",
    ])
      assert.equal(await settled(200, "GET", p, emo()), 200, `emo GET ${p}`);
    assert.equal(await sar(user, { verb: "get", resource: "pods", subresource: "log", namespace: "olga-lab" } as Attr), true, "pod logs");
    for (const [m, p, body] of [
      ["GET", "/api/v1/secrets"],
      ["GET", "/api/v1/namespaces/nadia-apps/secrets"],
      ["POST", "/apis/apps/v1/namespaces/nadia-apps/deployments", deployment("nadia-apps")],
      ["DELETE", "/api/v1/namespaces/olga-lab/configmaps/kube-root-ca.crt"],
    ] as const)
      assert.equal((await kube.request(m, p, { token: emo(), body })).status, 403, `emo ${m} ${p}`);
    for (const a of [
      { verb: "create", resource: "pods", subresource: "exec", namespace: "nadia-apps" },
      { verb: "get", resource: "pods", subresource: "exec", namespace: "nadia-apps" },
      { verb: "create", resource: "pods", subresource: "portforward", namespace: "nadia-apps" },
      { verb: "create", resource: "pods", subresource: "attach", namespace: "nadia-apps" },
      { verb: "list", resource: "secrets" },
    ])
      assert.equal(await sar(user, a as Attr), false, `emo ${JSON.stringify(a)}`);
    await applier.up(
      await programObjects(
        readOnly.replace("    overrides:\n      kubeTier: read-only\n", "    state: suspended\n    overrides:\n      kubeTier: read-only\n"),
      ),
    );
    assert.equal(await settled(403, "GET", "/api/v1/pods", emo()), 403, "suspended: the binding is gone");
    assert.equal(await sar(user, { verb: "list", resource: "namespaces" }), false);
  },
);
