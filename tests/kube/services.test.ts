// The test control plane itself (dev/services.ts startKube): etcd + kube-apiserver +
// kube-controller-manager from the toolchain, a fake OIDC issuer, RBAC. Under CI=true a
// missing binary fails these tests.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { KubeServer, startKube } from "../../dev/services";
import { kubeSkip } from "./lib";
import { tempDir } from "../../dev/tmp";

const skip = kubeSkip();
let kube: KubeServer;

before(
  async () => {
    if (skip) return;
    kube = await startKube({ dir: tempDir("ws-kube-svc-") });
  },
  { timeout: 300_000 },
);
after(async () => kube?.stop());

test("the API server is ready and the static admin certificate is system:masters", { skip }, async () => {
  const r = await kube.request("GET", "/readyz");
  assert.equal(r.status, 200);
  const who = await kube.kubectl(["auth", "whoami", "-o", "json"]);
  assert.equal(who.code, 0, who.stderr);
  const info = JSON.parse(who.stdout).status.userInfo;
  assert.equal(info.username, "workstations-test-admin");
  assert.ok(info.groups.includes("system:masters"));
});

test("an ID token from the fake issuer authenticates as prefix + email; forged, expired and wrong-audience tokens do not", { skip }, async () => {
  const user = { name: "nadia", email: "nadia@example.com" };
  const token = kube.oidc.tokenFor(user);
  // The JWT authenticator loads the issuer's keys asynchronously after start-up.
  let who = await kube.kubectl(["auth", "whoami", "-o", "json"], { token });
  for (let i = 0; i < 50 && who.code !== 0; i++) {
    await new Promise((r) => setTimeout(r, 200));
    who = await kube.kubectl(["auth", "whoami", "-o", "json"], { token });
  }
  assert.equal(who.code, 0, who.stderr);
  assert.equal(JSON.parse(who.stdout).status.userInfo.username, `oidc:${user.email}`);
  assert.ok((kube.oidc.hits["/jwks"] ?? 0) >= 1, "the API server fetched the issuer's JWKS");
  // No RBAC grant: authenticated but forbidden.
  const pods = await kube.request("GET", "/api/v1/pods", { token });
  assert.equal(pods.status, 403);
  const [h, b] = token.split(".");
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(b, "base64url").toString()), email: "viktor@example.com" })).toString("base64url")}.${token.split(".")[2]}`;
  for (const bad of [
    forged,
    kube.oidc.tokenFor(user, { ttl: -60 }),
    kube.oidc.tokenFor(user, { aud: "someone-else" }),
    kube.oidc.tokenFor(user, { email_verified: false }),
  ]) {
    const r = await kube.request("GET", "/api/v1/namespaces", { token: bad });
    assert.equal(r.status, 401, `token should be rejected: ${JSON.stringify(r.json).slice(0, 200)}`);
  }
});

test("the tokens controller fills a kubernetes.io/service-account-token Secret, and the token authenticates", { skip }, async () => {
  assert.equal((await kube.kubectl(["create", "serviceaccount", "probe", "-n", "default"])).code, 0);
  const put = await kube.kubectl(["apply", "-f", "-"], {
    input: JSON.stringify({
      apiVersion: "v1",
      kind: "Secret",
      type: "kubernetes.io/service-account-token",
      metadata: { name: "probe-token", namespace: "default", annotations: { "kubernetes.io/service-account.name": "probe" } },
    }),
  });
  assert.equal(put.code, 0, put.stderr);
  let token = "";
  for (let i = 0; i < 100 && !token; i++) {
    const s = await kube.request("GET", "/api/v1/namespaces/default/secrets/probe-token");
    token = s.json?.data?.token ? Buffer.from(s.json.data.token, "base64").toString() : "";
    if (!token) await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(token, "tokens controller populated data.token");
  const who = await kube.kubectl(["auth", "whoami", "-o", "json"], { token });
  assert.equal(who.code, 0, who.stderr);
  assert.equal(JSON.parse(who.stdout).status.userInfo.username, "system:serviceaccount:default:probe");
});
