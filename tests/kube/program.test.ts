// The Kubernetes part of the program under Pulumi mocks (dev/mocks.ts runProgram):
// which objects exist for which roster user and state, their exact RBAC, the resource
// options that keep tenants' namespaces, the kubeconfig, and the config keys.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as YAML from "yaml";
import { Captured, readExampleRoster, runProgram, unsecret } from "../../dev/mocks";
import { hostLibrary } from "../../components/scripts/hostLib";
import { KUBECONFIG_VERBS } from "../../components/scripts/kubeconfig";
import { KUBECONFIG_HEADER_PREFIX } from "../../components/scripts/kubeconfig";
import { recordedOptions, KUBE_CONFIG, TEST_CA } from "./fixtures";

const isKube = (r: Captured) => r.type.startsWith("kubernetes:") || r.type === "pulumi:providers:kubernetes" || r.type === "workstations:index:KubeCluster";
const k8sOf = (rs: Captured[], user: string) => rs.filter((r) => r.type.startsWith("kubernetes:") && r.name.startsWith(`${user}-`));
const byName = (rs: Captured[], name: string) => {
  const r = rs.find((x) => x.name === name);
  assert.ok(r, `no resource ${name} (have ${rs.map((x) => x.name).join(", ")})`);
  return unsecret(r.inputs);
};

test("without Kubernetes config there is no Kubernetes resource at all", async () => {
  const { resources } = await runProgram({ roster: readExampleRoster() });
  assert.deepEqual(
    resources.filter(isKube).map((r) => r.name),
    [],
  );
  assert.equal(resources.filter((r) => r.name.endsWith("-kubeconfig")).length, 0);
});

test("half-configured Kubernetes, a bad claim or a non-https server stop the run with the pulumi config set command", async () => {
  await assert.rejects(
    runProgram({ roster: readExampleRoster(), config: { kubeOidcClientId: "kubernetes" } }),
    /half configured \(workstations:kubeOidcClientId set\)[\s\S]*pulumi config set --stack test workstations:kubeApiServer/,
  );
  await assert.rejects(
    runProgram({ roster: readExampleRoster(), config: { ...KUBE_CONFIG, kubeUsernameClaim: "sub" } }),
    /Invalid value "sub" \(email\|preferred_username[\s\S]*workstations:kubeUsernameClaim email/,
  );
  await assert.rejects(
    runProgram({ roster: readExampleRoster(), config: { ...KUBE_CONFIG, kubeApiServer: "http://k8s:6443" } }),
    /not an https URL: workstations:kubeApiServer/,
  );
  await assert.rejects(
    runProgram({ roster: readExampleRoster(), config: { ...KUBE_CONFIG, kubeOidcIssuer: undefined } }),
    /Missing required config key: workstations:kubeOidcIssuer/,
  );
});

test("example roster: shared ClusterRole, owner namespace + bindings + dashboard token, admin cluster-admin, nobody else", async () => {
  const opts = recordedOptions();
  const { resources } = await runProgram({ roster: readExampleRoster(), config: KUBE_CONFIG });
  opts.stop();
  const role = byName(resources, "kube-dashboard-nav-readonly");
  assert.equal(role.metadata.name, "dashboard-nav-readonly");
  assert.deepEqual(role.rules, [{ apiGroups: [""], resources: ["namespaces", "nodes"], verbs: ["get", "list", "watch"] }]);

  // nadia (namespace-owner, nadia-apps)
  assert.deepEqual(
    k8sOf(resources, "nadia")
      .map((r) => `${r.type} ${r.name}`)
      .sort(),
    [
      "kubernetes:core/v1:Namespace nadia-ns-nadia-apps",
      "kubernetes:core/v1:Secret nadia-dashboard-token-nadia-apps",
      "kubernetes:core/v1:ServiceAccount nadia-dashboard-sa-nadia-apps",
      "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding nadia-dashboard-nav",
      "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding nadia-dashboard-binding-nadia-apps",
      "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding nadia-owner-nadia-apps",
    ],
  );
  assert.equal(byName(resources, "nadia-ns-nadia-apps").metadata.name, "nadia-apps");
  assert.deepEqual(opts.get("nadia-ns-nadia-apps"), { protect: false, retainOnDelete: true });
  const owner = byName(resources, "nadia-owner-nadia-apps");
  assert.equal(owner.metadata.namespace, "nadia-apps");
  assert.deepEqual(owner.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "admin" });
  assert.deepEqual(owner.subjects, [{ kind: "User", apiGroup: "rbac.authorization.k8s.io", name: "oidc:nadia@example.com" }]);
  const nav = byName(resources, "nadia-dashboard-nav");
  assert.equal(nav.roleRef.name, "dashboard-nav-readonly");
  assert.deepEqual(
    nav.subjects.map((s: any) => `${s.kind}:${s.namespace ?? ""}:${s.name}`),
    ["User::oidc:nadia@example.com", "ServiceAccount:nadia-apps:dashboard-nadia"],
  );
  const secret = byName(resources, "nadia-dashboard-token-nadia-apps");
  assert.equal(secret.type, "kubernetes.io/service-account-token");
  assert.equal(secret.metadata.annotations["kubernetes.io/service-account.name"], "dashboard-nadia");

  // viktor (admin): cluster-admin only, no namespace
  assert.deepEqual(
    k8sOf(resources, "viktor").map((r) => r.name),
    ["viktor-cluster-admin"],
  );
  const ca = byName(resources, "viktor-cluster-admin");
  assert.equal(ca.roleRef.name, "cluster-admin");
  assert.deepEqual(ca.subjects, [{ kind: "User", apiGroup: "rbac.authorization.k8s.io", name: "oidc:viktor@example.com" }]);

  // emo (power-user, tier none), sam (suspended), olga (offboarded): nothing
  for (const u of ["emo", "sam", "olga"]) {
    assert.deepEqual(
      k8sOf(resources, u).map((r) => r.name),
      [],
      u,
    );
    assert.equal(resources.filter((r) => r.name === `${u}-kubeconfig`).length, 0, u);
  }
  assert.equal(resources.filter((r) => JSON.stringify(r.inputs).includes("olga")).length, 0, "no resource mentions the offboarded olga");
  // Every Kubernetes object goes through the stack's provider.
  assert.equal(resources.filter((r) => r.type === "pulumi:providers:kubernetes").length, 1);
});

test("the kubeconfig: guarded, OIDC exec plugin with issuer and client id, CA and server from config, owner's namespace; as the user, 0600", async () => {
  const { resources } = await runProgram({ roster: readExampleRoster(), config: KUBE_CONFIG });
  for (const [user, ns] of [
    ["nadia", "nadia-apps"],
    ["viktor", undefined],
  ] as const) {
    const cmd = byName(resources, `${user}-kubeconfig`);
    const [header, ...rest] = (cmd.stdin as string).split("\n");
    assert.ok(header.startsWith(KUBECONFIG_HEADER_PREFIX));
    const kc = YAML.parse(rest.join("\n"));
    assert.equal(kc.clusters[0].cluster.server, KUBE_CONFIG.kubeApiServer);
    assert.equal(Buffer.from(kc.clusters[0].cluster["certificate-authority-data"], "base64").toString().trim(), TEST_CA.trim());
    const exec = kc.users[0].user.exec;
    assert.equal(exec.command, "kubectl");
    assert.deepEqual(exec.args, [
      "oidc-login",
      "get-token",
      `--oidc-issuer-url=${KUBE_CONFIG.kubeOidcIssuer}`,
      `--oidc-client-id=${KUBE_CONFIG.kubeOidcClientId}`,
      "--oidc-extra-scope=email",
    ]);
    assert.equal(kc.contexts[0].context.namespace, ns);
    assert.doesNotMatch(JSON.stringify(kc), /"(token|client-key-data|client-certificate-data|password|auth-provider)":/, "no credential in the kubeconfig");
    // Host-library calls carrying only the user; the verbs' bodies are checked below.
    assert.equal(cmd.create, `${hostLibrary().path} kubeconfig-deliver 'NAME=${user}' 'UID_=${cmd.create.match(/UID_=(\d+)/)?.[1]}'`);
    assert.match(cmd.delete, /^\S+ kubeconfig-remove 'NAME=[a-z]+' 'UID_=\d+'$/);
  }
  const [deliver, remove] = KUBECONFIG_VERBS;
  assert.match(deliver.body, /setpriv --reuid="\$UID_" --regid="\$UID_" --init-groups --reset-env/);
  assert.match(deliver.body, /chmod 0600 "\$t"/);
  assert.match(remove.body, /managed\) rm -f "\$f"/);
  for (const v of KUBECONFIG_VERBS) {
    const inner = /<<'EOS'\n([\s\S]*?)\nEOS\n/.exec(v.body);
    assert.ok(inner, `${v.name} runs its user part from a quoted heredoc`);
    for (const src of [`NAME=x\nUID_=1\n${v.body}`, inner[1]]) {
      const r = spawnSync("shellcheck", ["-S", "warning", "-s", "bash", "-"], { input: `#!/bin/bash\n${src}\n`, encoding: "utf8" });
      assert.equal(r.status, 0, `${v.name}: ${r.stdout}`);
    }
  }
});

test("suspend keeps the namespaces and removes every binding, the dashboard token and the kubeconfig; offboarding removes everything of the user", async () => {
  const roster = readExampleRoster().replace("    namespaces: [nadia-apps]\n", "    namespaces: [nadia-apps]\n    state: suspended\n");
  const { resources } = await runProgram({ roster, config: KUBE_CONFIG });
  assert.deepEqual(
    k8sOf(resources, "nadia").map((r) => r.name),
    ["nadia-ns-nadia-apps"],
  );
  assert.equal(resources.filter((r) => r.name === "nadia-kubeconfig").length, 0);
  const off = readExampleRoster().replace("    namespaces: [nadia-apps]\n", "    namespaces: [nadia-apps]\n    state: offboarded\n");
  const r2 = await runProgram({ roster: off, config: KUBE_CONFIG });
  assert.deepEqual(
    k8sOf(r2.resources, "nadia").map((r) => r.name),
    [],
  );
});

test("username claim preferred_username binds the roster name, with the configured prefix", async () => {
  const { resources } = await runProgram({
    roster: readExampleRoster(),
    config: { ...KUBE_CONFIG, kubeUsernameClaim: "preferred_username", kubeUsernamePrefix: "sso#" },
  });
  assert.deepEqual(byName(resources, "nadia-owner-nadia-apps").subjects[0].name, "sso#nadia");
  assert.deepEqual(byName(resources, "viktor-cluster-admin").subjects[0].name, "sso#viktor");
  const kc = YAML.parse((byName(resources, "nadia-kubeconfig").stdin as string).split("\n").slice(1).join("\n"));
  assert.equal(kc.users[0].user.exec.args.includes("--oidc-extra-scope=email"), false);
});
