// The dashboard's token injector (issue 22 item 5) on a real API server: the program's own
// objects (captured under mocks, applied with kubectl: ./apply.ts), with the stack's
// workstations:dashboardNamespace set; the map Secret and the nginx server ConfigMap exactly as
// the program generates them, with the real tokens the tokens controller filled (the mocks are
// handed the cluster's token Secrets), run by a real nginx in front of the kube-apiserver
// (the dashboard's place). nadia lists pods in nadia-apps and is forbidden in olga-lab; a
// client-sent Authorization header is replaced; an unmapped or suspended identity gets no
// token; a suspended owner's old token no longer works. Under CI=true a missing binary fails.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { setResourceHook } from "../../dev/mocks";
import { KubeServer, startKube } from "../../dev/services";
import { freePort, waitFor } from "../../dev/wait";
import { NGINX } from "../../dev/webterm";
import { INJECTOR_MAP_PATH } from "../../components/plan/web";
import { KubeApplier, type KubeObject } from "./apply";
import { kubeSkip } from "./lib";
import * as lib from "./real";
import { ROSTER, settled, waitToken, withNadia } from "./real";
import { tempDir } from "../../dev/tmp";

const skip = kubeSkip();
const DASH_NS = "kubernetes-dashboard";
let kube: KubeServer;
let applier: KubeApplier;
let nginx: ChildProcess | undefined;
let port = 0;
const dir = tempDir("ws-injector-");

/** The token Secrets the program registers, with the tokens the cluster put in them (by resource name). */
const tokens = new Map<string, string>();

/** The program's objects for `roster`, with the dashboard injector on and the cluster's real tokens. */
async function objects(roster: string): Promise<KubeObject[]> {
  setResourceHook(async (type, name, inputs) =>
    type === "kubernetes:core/v1:Secret" && inputs.type === "kubernetes.io/service-account-token" && tokens.has(name)
      ? { data: { token: Buffer.from(tokens.get(name)!).toString("base64") } }
      : undefined,
  );
  try {
    return await lib.programObjects(kube, roster, { dashboardNamespace: DASH_NS, dashboardUpstream: kube.server });
  } finally {
    setResourceHook(undefined);
  }
}

/** One `up`: apply, wait for every token Secret, then apply again so the map carries the filled tokens. */
async function up(roster: string): Promise<{ map: string; server: string }> {
  for (const o of await objects(roster)) {
    const m = o.manifest;
    if (m?.type === "kubernetes.io/service-account-token") tokens.delete(o.name);
  }
  await applier.up(await objects(roster));
  for (const o of await objects(roster)) {
    const m = o.manifest;
    if (m?.type === "kubernetes.io/service-account-token") tokens.set(o.name, await waitToken(kube, m.metadata.namespace, m.metadata.name));
  }
  const final = await objects(roster);
  await applier.up(final);
  const map = final.find((o) => o.name === "dashboard-injector-map")!.manifest.stringData["map.conf"];
  const server = final.find((o) => o.name === "dashboard-injector-server")!.manifest.data["injector.conf"];
  return { map, server };
}

/** Runs (or reloads) nginx with the generated files: only the listen port and the map's path are local. */
async function serve(files: { map: string; server: string }): Promise<void> {
  fs.writeFileSync(path.join(dir, "map.conf"), files.map);
  const server = files.server.replace(/listen 8080;/, `listen 127.0.0.1:${port};`).replace(`include ${INJECTOR_MAP_PATH};`, `include ${dir}/map.conf;`);
  assert.notEqual(server, files.server);
  fs.writeFileSync(
    path.join(dir, "nginx.conf"),
    `daemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log info;\nevents { worker_connections 64; }\nhttp {\n    access_log ${dir}/access.log;\n    client_body_temp_path ${dir}/t1;\n    proxy_temp_path ${dir}/t2;\n    fastcgi_temp_path ${dir}/t3;\n    uwsgi_temp_path ${dir}/t4;\n    scgi_temp_path ${dir}/t5;\n${server}\n}\n`,
  );
  const t = spawnSync(NGINX, ["-t", "-p", dir, "-c", path.join(dir, "nginx.conf")], { encoding: "utf8" });
  assert.equal(t.status, 0, `nginx -t: ${t.stderr}`);
  if (nginx && nginx.exitCode === null) nginx.kill("SIGTERM");
  await waitFor("the old nginx to exit", () => !nginx || nginx.exitCode !== null || nginx.signalCode !== null);
  nginx = spawn(NGINX, ["-p", dir, "-c", path.join(dir, "nginx.conf")], { stdio: "ignore" });
  await waitFor("nginx", async () => (await get("/healthz", {}).catch(() => undefined)) !== undefined, 20_000);
}

/** A request to the injector with exactly these headers: status, body, and whether nginx itself answered. */
function get(p: string, headers: Record<string, string>): Promise<{ status: number; body: string; fromNginx: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: p, headers }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, fromNginx: /<center>nginx/.test(body) }));
    });
    req.on("error", reject);
  });
}

before(
  async () => {
    if (skip) return;
    if (!fs.existsSync(NGINX)) throw new Error(`${NGINX} is missing: apt-get install nginx-light (dev/setup)`);
    kube = await startKube({ dir: tempDir("ws-kube-injector-") });
    applier = new KubeApplier(kube);
    // The dashboard's own install makes its namespace; the program only puts the injector there.
    assert.equal(
      (await kube.request("POST", "/api/v1/namespaces", { body: { apiVersion: "v1", kind: "Namespace", metadata: { name: DASH_NS } } })).status,
      201,
    );
    port = await freePort();
    await serve(await up(ROSTER));
  },
  { timeout: 300_000 },
);
after(async () => {
  if (nginx && nginx.exitCode === null) nginx.kill("SIGTERM");
  await kube?.stop();
});

test("nadia through the injector: her pods yes, another tenant's no; a client's Authorization is replaced", { skip }, async () => {
  const nadia = { "X-authentik-username": "nadia" };
  assert.equal((await get("/api/v1/namespaces/nadia-apps/pods", nadia)).status, 200);
  const other = await get("/api/v1/namespaces/olga-lab/pods", nadia);
  assert.equal(other.status, 403);
  assert.equal(other.fromNginx, false, "forbidden by the API server (RBAC), as nadia's ServiceAccount");
  assert.match(other.body, /system:serviceaccount:nadia-apps:dashboard-nadia/);
  // The admin token (the strongest credential there is), sent by the client: replaced by nadia's.
  const admin = tokens.get("dashboard-injector-admin-token")!;
  const forged = await get("/api/v1/namespaces/olga-lab/pods", { ...nadia, Authorization: `Bearer ${admin}` });
  assert.equal(forged.status, 403);
  assert.match(forged.body, /dashboard-nadia/);
  // viktor (admin) gets the admin token: any namespace.
  assert.equal((await get("/api/v1/namespaces/olga-lab/pods", { "X-authentik-username": "viktor" })).status, 200);
});

test("no token for an unmapped identity (emo is a power-user, mallory is nobody), nor without the header", { skip }, async () => {
  const admin = tokens.get("dashboard-injector-admin-token")!;
  const cases: Record<string, string>[] = [{ "X-authentik-username": "emo" }, { "X-authentik-username": "mallory" }, {}, { Authorization: `Bearer ${admin}` }];
  for (const headers of cases) {
    const r = await get("/api/v1/namespaces/nadia-apps/pods", headers);
    assert.equal(r.status, 403, JSON.stringify(Object.keys(headers)));
    assert.equal(r.fromNginx, true, "refused by the injector, never passed on");
  }
});

test("suspending nadia by roster edit: out of the map in the same up, and her old token no longer works", { skip }, async () => {
  const old = tokens.get("nadia-dashboard-token-nadia-apps")!;
  const files = await up(withNadia("suspended"));
  assert.doesNotMatch(files.map, /nadia/);
  await serve(files);
  const r = await get("/api/v1/namespaces/nadia-apps/pods", { "X-authentik-username": "nadia" });
  assert.equal(r.status, 403);
  assert.equal(r.fromNginx, true);
  assert.equal(await settled(kube, 401, "GET", "/api/v1/namespaces/nadia-apps/pods", old), 401, "the deleted token Secret's token is refused");
  assert.equal((await get("/api/v1/namespaces/olga-lab/pods", { "X-authentik-username": "viktor" })).status, 200, "the others keep theirs");
});
