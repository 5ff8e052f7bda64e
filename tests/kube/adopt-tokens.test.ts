// Many dashboard token Secrets adopted, then updated, in one `up` each, on the real API server
// under the real engine (the pinned kubernetes provider). The provider awaits each token through
// a shared informer, and a Secret has no `metadata.generation`, so the await can be handed the
// object as it was before the apply. With `pulumi.com/waitFor: jsonpath={.data.token}` alone, a
// Secret that already held its token was stored as it was before: with these 12 Secrets,
// Terraform's on adoption in 3 of 4 runs, the release before's on an update in 3 of 3 runs (2 to
// 4 of the 12), and the next `up` proposed `~metadata` (seen once in the takeover suite). The
// program's wait names a digest of the Secret's inputs that only the applied object carries
// (components/kube/tokenSecret.ts).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { KubeServer, startKube } from "../../dev/services";
import { projectAt } from "../../dev/e2e";
import { waitFor } from "../../dev/wait";
import { APPLIED_ANNOTATION } from "../../components/kube/tokenSecret";
import { engineSkip, KubeEngineStack, toolchainEnv } from "./engineStack";
import { ROSTER } from "./real";
import { tempDir } from "../../dev/tmp";

const env = toolchainEnv();
const skip = engineSkip(env);
const s = new KubeEngineStack(env, "tokens");
let kube: KubeServer;
/** nadia's namespaces: each with Terraform's ServiceAccount and token Secret. */
const NS = ["nadia-apps", ...Array.from({ length: 11 }, (_, i) => `nadia-t${i + 1}`)];
const TOKEN = "dashboard-nadia-token";
/** A release whose token Secrets waited for the token alone (the upgrade suite's FROM). */
const BEFORE = "3bc4290";
let before_ = "";

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
    kube = await startKube({ dir: tempDir("ws-kube-tokens-") });
    s.init(kube, ROSTER.replace("    namespaces: [nadia-apps]\n", `    namespaces: [${NS.join(", ")}]\n`));
    for (const ns of NS) await terraformMade(ns);
    for (const ns of NS) await waitFor(`the tokens controller to fill ${ns}/${TOKEN}`, async () => (await tokenIn(ns)) !== "", 60_000);
  },
  { timeout: 600_000 },
);
after(async () => {
  await kube?.stop();
  if (before_) fs.rmSync(before_, { recursive: true, force: true });
});

/** The namespaces whose stored token Secret is not the live one: another applied digest (or none). */
async function stale(): Promise<string[]> {
  const out: string[] = [];
  for (const ns of NS) {
    const live = (await kube.request("GET", `/api/v1/namespaces/${ns}/secrets/${TOKEN}`)).json.metadata.annotations?.[APPLIED_ANNOTATION];
    const stored = s.outputsOf(`nadia-dashboard-token-${ns}`).metadata.annotations?.[APPLIED_ANNOTATION];
    if (!live || stored !== live) out.push(ns);
  }
  return out;
}

test(
  "adopting 12 token Secrets that already hold tokens: the state holds each as applied, with the same token, and a no-op up follows",
  { skip, timeout: 900_000 },
  async () => {
    const tokens = Object.fromEntries(await Promise.all(NS.map(async (ns) => [ns, await tokenIn(ns)])));
    s.up();
    assert.deepEqual(await stale(), [], "namespaces whose stored token Secret is Terraform's object, not the one the up applied");
    const out = s.tokens();
    for (const ns of NS) assert.equal(out[`nadia/${ns}`], tokens[ns], `${ns}: the program's output is the token people already use`);
    s.upNoChanges();
  },
);

test(
  `updating the 12 (from the inputs of ${BEFORE} to this release's): the state holds each as applied, and a no-op up follows`,
  { skip, timeout: 900_000 },
  async () => {
    before_ = projectAt(BEFORE);
    fs.symlinkSync(path.join(__dirname, "../../node_modules"), path.join(before_, "node_modules"));
    s.useProgram(before_);
    s.up();
    // the live object (not the state: the release before may store a stale one)
    const live = await kube.request("GET", `/api/v1/namespaces/nadia-apps/secrets/${TOKEN}`);
    assert.equal(live.json.metadata.annotations?.[APPLIED_ANNOTATION], undefined, `${BEFORE}'s inputs are applied: no digest`);
    s.useProgram();
    s.up();
    assert.deepEqual(await stale(), [], "namespaces whose stored token Secret is the one before the update");
    s.upNoChanges();
  },
);
