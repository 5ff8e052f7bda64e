// Taking over a cluster where the team's Terraform already made the objects (issue 21, item 5):
// the `dashboard-nav-readonly` ClusterRole, an owner's namespace with a workload, the owner's
// `dashboard-<user>` ServiceAccount and its long-lived `dashboard-<user>-token` Secret. On the
// real API server, under the real engine (the pinned kubernetes provider):
// - `takeover plan`'s Kubernetes part names what exists and is adopted, and blocks on an object
//   whose immutable field differs (a Secret of another type under the token's name);
// - that blocker is real: `up` fails on it; once it is gone, `up` adopts everything: no
//   "already exists", the token people use is the same and still works, the namespace keeps
//   Terraform's labels and its workload, and a second `up` changes nothing;
// - adopted objects are the program's: suspending the owner deletes the token (it stops working).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { planRoster } from "../../components/plan";
import { loadRoster } from "../../components/roster/load";
import { KubeServer, startKube } from "../../dev/services";
import { waitFor } from "../../dev/wait";
import { kubeTakeover, probeKube } from "../../tools/takeover-kube";
import { kubectlWith } from "../../tools/takeover";
import { engineSkip, KubeEngineStack, toolchainEnv } from "./engineStack";
import { ROSTER, withNadia } from "./real";
import { tempDir } from "../../dev/tmp";

const env = toolchainEnv();
const skip = engineSkip(env);
const s = new KubeEngineStack(env, "adopt");
let kube: KubeServer;
const TF = "?fieldManager=Terraform";
const TF_LABELS = { "app.kubernetes.io/managed-by": "Terraform", team: "infra" };

async function create(apiPath: string, body: object): Promise<void> {
  const r = await kube.request("POST", `${apiPath}${TF}`, { body });
  assert.equal(r.status, 201, `${apiPath}: ${JSON.stringify(r.json).slice(0, 300)}`);
}
const tokenOf = async (ns: string, name: string): Promise<string> => {
  const d = (await kube.request("GET", `/api/v1/namespaces/${ns}/secrets/${name}`)).json?.data?.token;
  return d ? Buffer.from(d, "base64").toString("utf8") : "";
};
const kubePlan = () => {
  const kubectl = kubectlWith(kube.adminKubeconfig);
  const plan = planRoster(loadRoster(path.join(s.work, "roster.yaml")));
  return kubeTakeover(plan, probeKube(kubectl, plan));
};

let terraformToken = "";

before(
  async () => {
    if (skip) return;
    process.env.PATH = env.PATH; // the toolchain's kubectl for the takeover probe
    kube = await startKube({ dir: tempDir("ws-kube-adopt-") });
    s.init(kube, ROSTER);
    // What Terraform made (its own field manager, its own labels, none of the program's).
    await create("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
      metadata: { name: "dashboard-nav-readonly", labels: TF_LABELS },
      rules: [{ apiGroups: [""], resources: ["namespaces", "nodes"], verbs: ["get", "list", "watch"] }],
    });
    for (const ns of ["nadia-apps", "olga-lab"]) await create("/api/v1/namespaces", { metadata: { name: ns, labels: TF_LABELS } });
    await create("/apis/apps/v1/namespaces/nadia-apps/deployments", {
      metadata: { name: "team-workload" },
      spec: {
        selector: { matchLabels: { a: "b" } },
        template: { metadata: { labels: { a: "b" } }, spec: { containers: [{ name: "c", image: "registry.invalid/x:1" }] } },
      },
    });
    await create("/api/v1/namespaces/nadia-apps/serviceaccounts", { metadata: { name: "dashboard-nadia", labels: TF_LABELS } });
    await create("/api/v1/namespaces/nadia-apps/secrets", {
      metadata: { name: "dashboard-nadia-token", labels: TF_LABELS, annotations: { "kubernetes.io/service-account.name": "dashboard-nadia" } },
      type: "kubernetes.io/service-account-token",
    });
    // olga's token name is taken by something else: a plain Secret (its type cannot change).
    await create("/api/v1/namespaces/olga-lab/secrets", { metadata: { name: "dashboard-olga-token" }, type: "Opaque", stringData: { note: "not a token" } });
    terraformToken = await waitFor(
      "the tokens controller to fill Terraform's token",
      async () => (await tokenOf("nadia-apps", "dashboard-nadia-token")) || false,
      60_000,
    );
  },
  { timeout: 600_000 },
);
after(async () => kube?.stop());

test("takeover plan: the existing objects are adopted; a Secret of another type under the token's name blocks", { skip, timeout: 300_000 }, () => {
  const { lines, blockers } = kubePlan();
  assert.ok(
    lines.some((l) => /^kubernetes: adopt: ClusterRole dashboard-nav-readonly exists/.test(l)),
    lines.join("\n"),
  );
  for (const re of [
    /^nadia: adopt: Namespace nadia-apps exists: gains the program's labels, keeps its own and its workloads/,
    /^nadia: adopt: ServiceAccount nadia-apps\/dashboard-nadia exists/,
    /^nadia: adopt: Secret nadia-apps\/dashboard-nadia-token exists: its token stays valid/,
    /^olga: adopt: Namespace olga-lab exists/,
  ])
    assert.ok(
      lines.some((l) => re.test(l)),
      `${re}\n${lines.join("\n")}`,
    );
  assert.deepEqual(blockers, [
    "olga: Secret olga-lab/dashboard-olga-token exists as Opaque for no service account, not a token of dashboard-olga; its type cannot change: delete or rename it",
  ]);
});

test(
  "the blocker is real: up fails on it; without it up adopts everything and the team's token stays the same and works",
  { skip, timeout: 900_000 },
  async () => {
    const failed = s.pulumi(["up", "--yes", "--skip-preview", "--stack", "adopt"], { ok: false });
    assert.notEqual(failed.code, 0, "up fails while olga's token name is taken by another type");
    assert.match(failed.out, /dashboard-olga-token/);
    assert.equal((await kube.request("DELETE", "/api/v1/namespaces/olga-lab/secrets/dashboard-olga-token")).status, 200);
    assert.deepEqual(kubePlan().blockers, [], "nothing blocks any more");

    const out = s.up();
    assert.doesNotMatch(out, /already exists/i);
    assert.equal(await tokenOf("nadia-apps", "dashboard-nadia-token"), terraformToken, "the token in the cluster is the one Terraform's secret had");
    assert.equal(s.tokens()["nadia/nadia-apps"], terraformToken, "and the program's output is that same token");
    const stored = s.outputsOf("nadia-dashboard-token-nadia-apps").metadata;
    assert.equal(stored.labels?.["workstations.example/owner"], "nadia", "the state holds the Secret as the up applied it, not as Terraform left it");
    assert.equal(stored.annotations?.["kubernetes.io/service-account.name"], "dashboard-nadia");
    assert.equal((await kube.request("GET", "/api/v1/namespaces/nadia-apps/secrets", { token: terraformToken })).status, 200, "it works, now with admin");
    const ns = (await kube.request("GET", "/api/v1/namespaces/nadia-apps")).json.metadata.labels;
    assert.equal(ns.team, "infra", "Terraform's own label stays");
    assert.equal(ns["workstations.example/owner"], "nadia", "the program's label is added");
    assert.equal((await kube.request("GET", "/apis/apps/v1/namespaces/nadia-apps/deployments/team-workload")).status, 200, "the workload stays");
    assert.equal(await tokenOf("olga-lab", "dashboard-olga-token").then((t) => t.split(".").length), 3, "olga's token is made");
    s.upNoChanges();
  },
);

test("adopted objects are the program's: suspending the owner deletes the token, which stops working", { skip, timeout: 600_000 }, async () => {
  s.writeRoster(withNadia("suspended"));
  s.up();
  assert.equal((await kube.request("GET", "/api/v1/namespaces/nadia-apps/secrets/dashboard-nadia-token")).status, 404);
  await waitFor(
    "the old token to be refused",
    async () => (await kube.request("GET", "/api/v1/namespaces/nadia-apps/secrets", { token: terraformToken })).status === 401,
    60_000,
  );
  assert.equal((await kube.request("GET", "/api/v1/namespaces/nadia-apps")).status, 200, "the namespace stays");
});
