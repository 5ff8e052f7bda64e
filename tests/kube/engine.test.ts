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
import { execFileSync, spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readExampleRoster } from "../../dev/mocks";
import { KubeServer, startKube } from "../../dev/services";
import { hasCiphertext, plaintextSecrets, readStateAsAttacker } from "../../dev/state-audit";
import { kubeSkip } from "./lib";
import { Backdoor, backdoorClosed, plantBackdoor } from "./real";

const REPO = path.resolve(__dirname, "../..");
const env: NodeJS.ProcessEnv = { ...process.env };
for (const line of execFileSync("bash", [path.join(REPO, "dev/toolchain"), "env"], { encoding: "utf8" }).split("\n")) {
  const m = /^export ([A-Z_]+)="(.*)"$/.exec(line.trim());
  if (m) env[m[1]] = m[2].replace(/\$PATH/g, process.env.PATH ?? "");
}
const pluginDir = path.join(env.PULUMI_HOME ?? "", "plugins");
const havePlugin = fs.existsSync(pluginDir) && fs.readdirSync(pluginDir).some((d) => /^resource-kubernetes-v/.test(d));
const havePulumi = fs.existsSync(path.join(env.WORKSTATIONS_TOOLCHAIN_BIN ?? "", "pulumi"));
const skip =
  kubeSkip() ??
  (havePlugin && havePulumi
    ? undefined
    : process.env.CI === "true"
      ? undefined
      : "SKIPPED (not under CI): the pulumi CLI or the kubernetes resource plugin is missing: bash dev/toolchain build pulumi kubernetes-provider");

let kube: KubeServer;
let work: string;
let stateDir: string;
const passphrase = crypto.randomBytes(16).toString("hex");
const ROSTER = readExampleRoster().replace("    namespaces: [olga-lab]\n    state: offboarded\n", "    namespaces: [olga-lab]\n");

function pulumi(args: string[], o: { ok?: boolean } = {}): { code: number; out: string } {
  const r = spawnSync("pulumi", ["--non-interactive", ...args], {
    cwd: work,
    encoding: "utf8",
    timeout: 600_000,
    env: { ...env, PULUMI_BACKEND_URL: `file://${stateDir}`, PULUMI_CONFIG_PASSPHRASE: passphrase },
  });
  const out = `${r.stdout}${r.stderr}${r.error ? r.error.message : ""}`;
  if ((o.ok ?? true) && r.status !== 0) throw new Error(`pulumi ${args.join(" ")} failed (${r.status}):\n${out.slice(-6000)}`);
  return { code: r.status ?? -1, out };
}
const writeRoster = (text: string) => fs.writeFileSync(path.join(work, "roster.yaml"), text);
const up = () => pulumi(["up", "--yes", "--skip-preview", "--stack", "kube"]).out;
const sar = async (user: string, a: Record<string, string>) => {
  const r = await kube.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
    body: { apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview", spec: { user, resourceAttributes: a } },
  });
  return r.json.status.allowed === true;
};
const tokenOutput = (): Record<string, string> =>
  JSON.parse(
    pulumi(["stack", "output", "dashboardTokens", "--show-secrets", "--json", "--stack", "kube"])
      .out.trim()
      .split("\n")
      .filter((l) => !l.startsWith("warning"))
      .join("\n"),
  );

before(
  async () => {
    if (skip) return;
    kube = await startKube({ dir: fs.mkdtempSync(path.join(os.tmpdir(), "ws-kube-engine-")) });
    work = fs.mkdtempSync(path.join(os.tmpdir(), "ws-kube-engine-project-"));
    stateDir = path.join(work, ".state");
    fs.mkdirSync(stateDir);
    fs.symlinkSync(path.join(REPO, "node_modules"), path.join(work, "node_modules"));
    fs.writeFileSync(path.join(work, "Pulumi.yaml"), "name: workstations-kube-e2e\nruntime:\n  name: nodejs\n  options:\n    typescript: false\n");
    fs.writeFileSync(path.join(work, "package.json"), JSON.stringify({ name: "workstations-kube-e2e", version: "0.0.0", main: "index.js" }));
    fs.writeFileSync(
      path.join(work, "index.js"),
      `require("ts-node").register({ transpileOnly: true, project: ${JSON.stringify(path.join(REPO, "tsconfig.json"))} });\nmodule.exports = require(${JSON.stringify(path.join(REPO, "tests/kube/engine-program.ts"))}).main();\n`,
    );
    writeRoster(ROSTER);
    pulumi(["stack", "init", "kube"]);
    const set = (k: string, v: string, secret = false) =>
      pulumi(["config", "set", "--stack", "kube", ...(secret ? ["--secret"] : []), `workstations:${k}`, "--", v]);
    set("roster", path.join(work, "roster.yaml"));
    set("kubeApiServer", kube.server);
    set("kubeCaCert", kube.caCert);
    set("kubeOidcIssuer", kube.oidc.issuer);
    set("kubeOidcClientId", kube.clientId);
    set("kubeconfig", fs.readFileSync(kube.adminKubeconfig, "utf8"), true);
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
    cwd: work,
    env: { ...env, PULUMI_BACKEND_URL: `file://${stateDir}`, PULUMI_CONFIG_PASSPHRASE: passphrase },
    stack: "kube",
    backendDir: stateDir,
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
