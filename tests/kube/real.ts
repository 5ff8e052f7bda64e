/**
 * What the suites that run the program's objects on the real API server share
 * (authz.test.ts, cut.test.ts): the rosters, the objects, and waits for the server's
 * eventually consistent parts.
 */
import assert from "node:assert/strict";
import { readExampleRoster, runProgram } from "../../dev/mocks";
import type { KubeServer } from "../../dev/services";
import { KubeObject, kubeObjects } from "./apply";
import { recordedOptions } from "./fixtures";

/** The example roster with olga active (a second tenant, olga-lab). */
export const ROSTER = readExampleRoster().replace("    namespaces: [olga-lab]\n    state: offboarded\n", "    namespaces: [olga-lab]\n");
/** ROSTER with nadia in `state`. */
export const withNadia = (state: string, roster = ROSTER) =>
  roster.replace("    namespaces: [nadia-apps]\n", `    namespaces: [nadia-apps]\n    state: ${state}\n`);
/** ROSTER without nadia. */
export const withoutNadia = (roster = ROSTER) => roster.replace(/  - name: nadia\n(    .*\n|      .*\n)*/, "");
export const USERS = {
  viktor: { name: "viktor", email: "viktor@example.com" },
  emo: { name: "emo", email: "emo@example.com" },
  nadia: { name: "nadia", email: "nadia@example.com" },
  olga: { name: "olga", email: "olga@example.com" },
};

/** The program's Kubernetes objects for `roster`, as the program registers them under mocks, for this server. */
export async function programObjects(kube: KubeServer, roster: string, config: Record<string, string> = {}): Promise<KubeObject[]> {
  const opts = recordedOptions();
  try {
    const { resources } = await runProgram({
      roster,
      config: { kubeApiServer: kube.server, kubeCaCert: kube.caCert, kubeOidcIssuer: kube.oidc.issuer, kubeOidcClientId: kube.clientId, ...config },
    });
    return kubeObjects(resources, opts);
  } finally {
    opts.stop();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The status of a request once it settles (RBAC and token caches of the API server are eventually consistent). */
export async function settled(kube: KubeServer, want: number, method: string, p: string, token?: string): Promise<number> {
  let st = 0;
  for (let i = 0; i < 50; i++) {
    st = (await kube.request(method, p, { token })).status;
    if (st === want) return st;
    await sleep(200);
  }
  return st;
}

/** The token the tokens controller puts into a service-account-token Secret. */
export async function waitToken(kube: KubeServer, ns: string, name: string): Promise<string> {
  for (let i = 0; i < 150; i++) {
    const s = await kube.request("GET", `/api/v1/namespaces/${ns}/secrets/${name}`);
    if (s.json?.data?.token) return Buffer.from(s.json.data.token, "base64").toString();
    await sleep(200);
  }
  throw new Error(`tokens controller never filled ${ns}/${name}`);
}

/** Waits until the API server's JWT authenticator accepts the fake issuer's tokens (it loads the keys after start-up). */
export async function waitOidc(kube: KubeServer): Promise<void> {
  const t = kube.oidc.tokenFor(USERS.emo);
  for (let i = 0; i < 100 && (await kube.kubectl(["auth", "whoami"], { token: t })).code !== 0; i++) await sleep(200);
}

// ---------------------------------------------------------------------------------------
// What a namespace-owner can leave behind (cut.test.ts, engine.test.ts)

type Owner = { name: string; email: string };
const RBAC = "/apis/rbac.authorization.k8s.io/v1";

/** What the owner made while admin of the namespace, and the tokens they kept. */
export interface Backdoor {
  /** The long-lived token of a `kubernetes.io/service-account-token` Secret. */
  secretToken: string;
  /** A TokenRequest token (ten years asked for). */
  requestedToken: string;
  /** Exact requests and answers, for the record (README "Kubernetes"). */
  found: string[];
}

/** A request as the owner (their OIDC token), with a one-line record of it. */
export async function asOwner(kube: KubeServer, owner: Owner, method: string, p: string, body?: unknown) {
  const r = await kube.request(method, p, { token: kube.oidc.tokenFor(owner), body });
  return { ...r, line: `${method} ${p} -> ${r.status}${r.status >= 400 ? ` (${String(r.json?.message ?? "").slice(0, 160)})` : ""}` };
}

/**
 * As the owner (OIDC, admin of `ns` through the program's binding): a backdoor of their own,
 * ServiceAccount `backdoor-<tag>`; `programName`: also a binding under that name of the program's.
 */
export async function plantBackdoor(kube: KubeServer, owner: Owner, NS: string, tag: string, programName?: string): Promise<Backdoor> {
  const found: string[] = [];
  const must = async (status: number, method: string, p: string, body?: unknown) => {
    const r = await asOwner(kube, owner, method, p, body);
    found.push(r.line);
    assert.equal(r.status, status, r.line);
    return r;
  };
  const sa = `backdoor-${tag}`;
  await must(201, "POST", `/api/v1/namespaces/${NS}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: sa } });
  const binding = (name: string, role: string, subject: unknown) => ({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
    subjects: [subject],
  });
  const saSubject = { kind: "ServiceAccount", name: sa, namespace: NS };
  // RBAC's escalation check lets `admin` bind `admin` (it holds every rule of it here)...
  await must(201, "POST", `${RBAC}/namespaces/${NS}/rolebindings`, binding(`${sa}-admin`, "admin", saSubject));
  // ... to anyone, a group included (here every authenticated identity may view) ...
  await must(
    201,
    "POST",
    `${RBAC}/namespaces/${NS}/rolebindings`,
    binding(`${sa}-everyone`, "view", { kind: "Group", apiGroup: "rbac.authorization.k8s.io", name: "system:authenticated" }),
  );
  // ... even under the program's own name; but not cluster-admin, and nothing cluster-wide.
  if (programName) await must(201, "POST", `${RBAC}/namespaces/${NS}/rolebindings`, binding(programName, "admin", saSubject));
  await must(403, "POST", `${RBAC}/namespaces/${NS}/rolebindings`, binding(`${sa}-ca`, "cluster-admin", saSubject));
  await must(403, "POST", `${RBAC}/clusterrolebindings`, { ...binding(`${sa}-crb`, "admin", saSubject), kind: "ClusterRoleBinding" });
  // The Namespace (its owner and Pod Security labels) is the program's: the owner may not change it.
  for (const patch of [
    { metadata: { labels: { "pod-security.kubernetes.io/enforce": "privileged" } } },
    { metadata: { labels: { "workstations.example/owner": "x" } } },
  ]) {
    const r = await kube.request("PATCH", `/api/v1/namespaces/${NS}`, {
      token: kube.oidc.tokenFor(owner),
      body: patch,
      contentType: "application/merge-patch+json",
    });
    found.push(`PATCH /api/v1/namespaces/${NS} ${JSON.stringify(patch.metadata.labels)} -> ${r.status}`);
    assert.equal(r.status, 403);
  }
  await must(201, "POST", `/api/v1/namespaces/${NS}/secrets`, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: `${sa}-token`, annotations: { "kubernetes.io/service-account.name": sa } },
    type: "kubernetes.io/service-account-token",
  });
  const requested = await must(201, "POST", `/api/v1/namespaces/${NS}/serviceaccounts/${sa}/token`, {
    apiVersion: "authentication.k8s.io/v1",
    kind: "TokenRequest",
    spec: { expirationSeconds: 10 * 365 * 24 * 3600 },
  });
  found.push(`  TokenRequest expirationTimestamp ${requested.json.status.expirationTimestamp}`);
  const secretToken = await waitToken(kube, NS, `${sa}-token`);
  // Both tokens are admin in the namespace now.
  for (const t of [secretToken, requested.json.status.token]) {
    assert.equal(await settled(kube, 200, "GET", `/api/v1/namespaces/${NS}/pods`, t), 200);
    assert.equal((await kube.request("GET", `/api/v1/namespaces/${NS}/secrets`, { token: t })).status, 200);
  }
  return { secretToken, requestedToken: requested.json.status.token, found };
}

/** Nothing the owner made in `NS` works any more: the Secret's token is no longer a token, the other has no rights. */
export async function backdoorClosed(kube: KubeServer, owner: Owner, NS: string, b: Backdoor, when: string) {
  assert.equal(await settled(kube, 401, "GET", `/api/v1/namespaces/${NS}/pods`, b.secretToken), 401, `${when}: the token Secret's token is refused`);
  for (const p of [`/api/v1/namespaces/${NS}/pods`, `/api/v1/namespaces/${NS}/secrets`, `${RBAC}/namespaces/${NS}/rolebindings`])
    assert.equal(await settled(kube, 403, "GET", p, b.requestedToken), 403, `${when}: the TokenRequest token has no rights (GET ${p})`);
  const post = await kube.request("POST", `${RBAC}/namespaces/${NS}/rolebindings`, {
    token: b.requestedToken,
    body: {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "again" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "admin" },
      subjects: [],
    },
  });
  assert.equal(post.status, 403, `${when}: no new binding`);
  // The group binding is gone too: another identity (not in the roster) sees nothing.
  assert.equal(await settled(kube, 403, "GET", `/api/v1/namespaces/${NS}/pods`, kube.oidc.tokenFor({ name: "mallory", email: "mallory@example.com" })), 403);
  // The owner's own OIDC identity has nothing either.
  assert.equal((await kube.request("GET", `/api/v1/namespaces/${NS}/pods`, { token: kube.oidc.tokenFor(owner) })).status, 403);
  const bindings = (await kube.request("GET", `${RBAC}/namespaces/${NS}/rolebindings`)).json.items.map((i: any) => i.metadata.name);
  assert.deepEqual(
    bindings.filter((n: string) => !n.startsWith("workstations-") || n.endsWith(`-${owner.name}`)),
    [],
    `${when}: no binding of ${owner.name}'s left`,
  );
}
