// The real Pulumi engine (toolchain CLI + the kubernetes resource plugin built from
// pulumi-kubernetes' provider module) runs the program's Kubernetes resources against the
// real API server: up, a no-op up with zero changes, a namespace added to an owner, suspend,
// destroy --target and removal from the roster (both succeed; retainOnDelete keeps the
// namespaces and their workload), and the state as an attacker sees it: no plaintext token.
// The access cut (KubeNamespaceCut, a dynamic resource reading the stack's secret kubeconfig)
// runs as the engine's delete: what the owner made while admin is refused after suspend and
// after destroy --target.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { readExampleRoster } from "../../dev/mocks";
import { KubeServer, startKube } from "../../dev/services";
import { hasCiphertext, plaintextSecrets, readStateAsAttacker } from "../../dev/state-audit";
import { engineSkip, KubeEngineStack, toolchainEnv } from "./engineStack";
import { Backdoor, backdoorClosed, plantBackdoor } from "./real";
import { tempDir } from "../../dev/tmp";

const env = toolchainEnv();
const skip = engineSkip(env);
const s = new KubeEngineStack(env);
let kube: KubeServer;
const ROSTER = readExampleRoster().replace("    namespaces: [olga-lab]\n    state: offboarded\n", "    namespaces: [olga-lab]\n");

const pulumi = (args: string[], o: { ok?: boolean } = {}) => s.pulumi(args, o);
const writeRoster = (text: string) => s.writeRoster(text);
const up = () => s.up();
const sar = async (user: string, a: Record<string, string>) => {
  const r = await kube.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
    body: { apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview", spec: { user, resourceAttributes: a } },
  });
  return r.json.status.allowed === true;
};
const tokenOutput = () => s.tokens();

before(
  async () => {
    if (skip) return;
    kube = await startKube({ dir: tempDir("ws-kube-engine-") });
    s.init(kube, ROSTER);
  },
  { timeout: 600_000 },
);
after(async () => kube?.stop());

test(
  "engine: up creates the objects; the OIDC identities get exactly their grants; the dashboard token is a secret output that works",
  { skip, timeout: 900_000 },
  async () => {
    up();
    assert.equal((await kube.request("GET", "/api/v1/namespaces/nadia-apps")).status, 200);
    assert.equal(
      (await kube.request("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/dashboard-nav-readonly")).json.rules[0].resources.join(","),
      "namespaces,nodes",
    );
    assert.equal(await sar("oidc:nadia@example.com", { namespace: "nadia-apps", verb: "create", group: "apps", resource: "deployments" }), true);
    assert.equal(await sar("oidc:nadia@example.com", { namespace: "olga-lab", verb: "get", resource: "secrets" }), false);
    assert.equal(await sar("oidc:viktor@example.com", { verb: "*", group: "*", resource: "*" }), true);
    assert.equal(await sar("oidc:emo@example.com", { verb: "list", resource: "namespaces" }), false);
    const t = tokenOutput()["nadia/nadia-apps"];
    assert.ok(t && t.split(".").length === 3, "the token is in the stack output (a JWT)");
    assert.equal((await kube.request("GET", "/api/v1/namespaces/nadia-apps/secrets", { token: t })).status, 200);
    assert.equal((await kube.request("GET", "/api/v1/namespaces/olga-lab/secrets", { token: t })).status, 403);
    const oidc = kube.oidc.tokenFor({ name: "nadia", email: "nadia@example.com" });
    assert.equal(
      (
        await kube.request("POST", "/apis/apps/v1/namespaces/nadia-apps/deployments", {
          token: oidc,
          body: {
            apiVersion: "apps/v1",
            kind: "Deployment",
            metadata: { name: "keeps-running" },
            spec: {
              selector: { matchLabels: { a: "b" } },
              template: { metadata: { labels: { a: "b" } }, spec: { containers: [{ name: "c", image: "registry.invalid/x:1" }] } },
            },
          },
        })
      ).status,
      201,
    );
  },
);

test("engine: a second up changes nothing", { skip, timeout: 600_000 }, () => {
  const r = pulumi(["up", "--yes", "--expect-no-changes", "--stack", "kube"]);
  assert.doesNotMatch(r.out, /\b\d+ (to )?(create|update|delete|replace)/i, r.out);
});

test("engine: a namespace added to an owner gets the owner's binding and its own dashboard token", { skip, timeout: 600_000 }, async () => {
  writeRoster(ROSTER.replace("    namespaces: [nadia-apps]\n", "    namespaces: [nadia-apps, nadia-ml]\n"));
  up();
  assert.equal((await kube.request("GET", "/api/v1/namespaces/nadia-ml")).status, 200);
  assert.equal(await sar("oidc:nadia@example.com", { namespace: "nadia-ml", verb: "get", resource: "secrets" }), true);
  assert.ok(tokenOutput()["nadia/nadia-ml"]);
});

const NADIA = { name: "nadia", email: "nadia@example.com" };
const backdoors: Record<string, Backdoor> = {};

test(
  "engine: while admin, the owner makes a ServiceAccount of their own in each namespace, binds it to admin and keeps its tokens",
  { skip, timeout: 300_000 },
  async () => {
    for (const ns of ["nadia-apps", "nadia-ml"]) backdoors[ns] = await plantBackdoor(kube, NADIA, ns, "eng");
    // An update of the owner's part (here none) never sweeps: the backdoor still works before the cut.
    pulumi(["up", "--yes", "--expect-no-changes", "--stack", "kube"]);
    assert.equal((await kube.request("GET", "/api/v1/namespaces/nadia-apps/pods", { token: backdoors["nadia-apps"].secretToken })).status, 200);
  },
);

test("engine: state holds the dashboard tokens only as ciphertext", { skip, timeout: 300_000 }, () => {
  const tokens = Object.values(tokenOutput()).filter(Boolean);
  assert.ok(tokens.length >= 3);
  const texts = readStateAsAttacker({
    cwd: s.work,
    env: s.backendEnv(),
    stack: "kube",
    backendDir: s.stateDir,
  });
  // The access cut's resources hold no credential either: not the admin key the cut reads at run time.
  const adminKey = fs.readFileSync(path.join(kube.dir, "pki", "admin.key"), "utf8").split("\n")[1];
  assert.deepEqual(plaintextSecrets(texts, [...tokens, ...tokens.map((t) => Buffer.from(t).toString("base64")), adminKey]), []);
  assert.ok(hasCiphertext(texts));
});

test("engine: suspend removes the bindings and the token; namespaces and the workload stay", { skip, timeout: 600_000 }, async () => {
  const old = tokenOutput()["nadia/nadia-apps"];
  writeRoster(ROSTER.replace("    namespaces: [nadia-apps]\n", "    namespaces: [nadia-apps, nadia-ml]\n    state: suspended\n"));
  up();
  for (const ns of ["nadia-apps", "nadia-ml"]) {
    assert.equal(await sar("oidc:nadia@example.com", { namespace: ns, verb: "create", group: "apps", resource: "deployments" }), false);
    assert.equal((await kube.request("GET", `/api/v1/namespaces/${ns}`)).status, 200);
  }
  assert.equal(await sar("oidc:nadia@example.com", { verb: "list", resource: "namespaces" }), false);
  assert.equal((await kube.request("GET", "/api/v1/namespaces/nadia-apps/secrets", { token: old })).status, 401);
  assert.equal((await kube.request("GET", "/apis/apps/v1/namespaces/nadia-apps/deployments/keeps-running")).status, 200);
  // The cut: what nadia made in either namespace while admin works no more.
  for (const ns of ["nadia-apps", "nadia-ml"]) await backdoorClosed(kube, NADIA, ns, backdoors[ns], "after suspend (engine)");
  // A second run changes nothing (no cut left to run, nothing recreated).
  const again = pulumi(["up", "--yes", "--expect-no-changes", "--stack", "kube"]);
  assert.doesNotMatch(again.out, /\b\d+ (to )?(create|update|delete|replace)/i, again.out);
});

test(
  "engine: destroy --target of the owner's component and removal from the roster succeed and leave the namespaces and the workload",
  { skip, timeout: 600_000 },
  async () => {
    // Re-activated, nadia makes another backdoor; destroy --target then cuts it.
    writeRoster(ROSTER.replace("    namespaces: [nadia-apps]\n", "    namespaces: [nadia-apps, nadia-ml]\n"));
    up();
    const b = await plantBackdoor(kube, NADIA, "nadia-apps", "eng2");
    const urn = pulumi(["stack", "--stack", "kube", "--show-urns"])
      .out.split("\n")
      .map((l) => /(urn:pulumi:\S+::workstations:index:UserWorkstation::nadia)\b/.exec(l)?.[1])
      .find(Boolean);
    assert.ok(urn, "nadia's component URN");
    pulumi(["destroy", "--yes", "--stack", "kube", "--target", urn!, "--target-dependents"]);
    for (const ns of ["nadia-apps", "nadia-ml"])
      assert.equal((await kube.request("GET", `/api/v1/namespaces/${ns}`)).status, 200, `${ns} kept after destroy --target`);
    await backdoorClosed(kube, NADIA, "nadia-apps", b, "after destroy --target (engine)");
    assert.equal((await kube.request("GET", "/apis/apps/v1/namespaces/nadia-apps/deployments/keeps-running")).status, 200);
    writeRoster(ROSTER.replace(/  - name: nadia\n(    .*\n|      .*\n)*/, ""));
    pulumi(["up", "--yes", "--skip-preview", "--stack", "kube"]);
    for (const ns of ["nadia-apps", "nadia-ml"])
      assert.equal((await kube.request("GET", `/api/v1/namespaces/${ns}`)).status, 200, `${ns} kept after removal from the roster`);
    assert.equal((await kube.request("GET", "/apis/apps/v1/namespaces/nadia-apps/deployments/keeps-running")).status, 200);
  },
);
