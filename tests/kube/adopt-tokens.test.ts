// Adopting many of the team's dashboard token Secrets in one `up`, on the real API server under
// the real engine (the pinned kubernetes provider). Each Secret Terraform made already holds its
// token. The provider awaits each one through a shared informer, and a Secret has no
// `metadata.generation`, so the await can be handed the object as it was before the apply. With
// `pulumi.com/waitFor: jsonpath={.data.token}` alone, that stale object (Terraform's, without the
// program's labels) was stored as the outputs in 3 of 4 runs of this test with 12 Secrets, and
// the next `up` proposed `~metadata` (seen once in the takeover suite). The program's waitFor
// also names its owner label (components/kube/index.ts, `tokenWaitFor`), which only the applied
// object has.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { KubeServer, startKube } from "../../dev/services";
import { waitFor } from "../../dev/wait";
import { engineSkip, KubeEngineStack, toolchainEnv } from "./engineStack";
import { ROSTER } from "./real";

const env = toolchainEnv();
const skip = engineSkip(env);
const s = new KubeEngineStack(env, "tokens");
let kube: KubeServer;
/** nadia's namespaces: each with Terraform's ServiceAccount and token Secret. */
const NS = ["nadia-apps", ...Array.from({ length: 11 }, (_, i) => `nadia-t${i + 1}`)];
const TOKEN = "dashboard-nadia-token";

async function terraformMade(ns: string): Promise<void> {
  const post = async (p: string, body: object) => {
    const r = await kube.request("POST", `${p}?fieldManager=Terraform`, { body });
    assert.equal(r.status, 201, `${p}: ${JSON.stringify(r.json).slice(0, 300)}`);
  };
  await post("/api/v1/namespaces", { metadata: { name: ns } });
  await post(`/api/v1/namespaces/${ns}/serviceaccounts`, { metadata: { name: "dashboard-nadia" } });
  await post(`/api/v1/namespaces/${ns}/secrets`, {
    metadata: {
      name: TOKEN,
      labels: { "app.kubernetes.io/managed-by": "Terraform" },
      annotations: { "kubernetes.io/service-account.name": "dashboard-nadia" },
    },
    type: "kubernetes.io/service-account-token",
  });
}

const tokenIn = async (ns: string): Promise<string> => {
  const d = (await kube.request("GET", `/api/v1/namespaces/${ns}/secrets/${TOKEN}`)).json?.data?.token;
  return d ? Buffer.from(d, "base64").toString("utf8") : "";
};

before(
  async () => {
    if (skip) return;
    kube = await startKube({ dir: fs.mkdtempSync(path.join(os.tmpdir(), "ws-kube-tokens-")) });
    s.init(kube, ROSTER.replace("    namespaces: [nadia-apps]\n", `    namespaces: [${NS.join(", ")}]\n`));
    for (const ns of NS) await terraformMade(ns);
    for (const ns of NS) await waitFor(`the tokens controller to fill ${ns}/${TOKEN}`, async () => (await tokenIn(ns)) !== "", 60_000);
  },
  { timeout: 600_000 },
);
after(async () => kube?.stop());

test(
  "adopting 12 token Secrets that already hold tokens: the state holds each as applied, with the same token, and a no-op up follows",
  { skip, timeout: 900_000 },
  async () => {
    const before_ = Object.fromEntries(await Promise.all(NS.map(async (ns) => [ns, await tokenIn(ns)])));
    s.up();
    const stale = NS.filter((ns) => s.outputsOf(`nadia-dashboard-token-${ns}`).metadata.labels?.["workstations.example/owner"] !== "nadia");
    assert.deepEqual(stale, [], "namespaces whose stored token Secret is Terraform's object, not the one the up applied");
    const tokens = s.tokens();
    for (const ns of NS) assert.equal(tokens[`nadia/${ns}`], before_[ns], `${ns}: the program's output is the token people already use`);
    s.upNoChanges();
  },
);
