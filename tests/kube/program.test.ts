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
import { USER_FUNCS } from "../../components/scripts/shell";
import { recordedOptions, KUBE_CONFIG, TEST_CA } from "./fixtures";
import { kubeNames, OWNER_LABEL } from "../../components/kube";
import { tokenSecretDigest } from "../../components/kube/tokenSecret";
import { derivedNames, planRoster } from "../../components/plan";
import { parseRoster } from "../../components/roster/load";
import { userGrants } from "../../tools/access-report";
const { programNames, OWNER_LABEL: SWEEP_OWNER_LABEL } = require("../../components/kube/sweep");

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
  assert.deepEqual(opts.get("nadia-ns-nadia-apps"), { protect: false, retainOnDelete: true, dependsOn: [] });
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
  const digest = secret.metadata.annotations["workstations.example/applied"];
  assert.match(digest, /^[0-9a-f]{16}$/);
  assert.deepEqual(
    JSON.parse(secret.metadata.annotations["pulumi.com/waitFor"]),
    ["jsonpath={.data.token}", `jsonpath={.metadata.annotations['workstations.example/applied']}=${digest}`],
    "the provider waits for the token on the object this up applied (its digest), not a stale copy",
  );
  const { ["workstations.example/applied"]: _d, ["pulumi.com/waitFor"]: _w, ...rest } = secret.metadata.annotations;
  assert.equal(
    digest,
    tokenSecretDigest({ name: secret.metadata.name, namespace: secret.metadata.namespace, labels: secret.metadata.labels, annotations: rest }),
    "the digest is of the Secret's own inputs",
  );

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
  // As the user (as_user: setpriv to the uid and its groups, reset env, root's fds closed); the removal may not fail the cut (user_step).
  assert.match(deliver.body, /\nas_user \/bin\/bash -c "\$inner" kubeconfig /);
  assert.match(remove.body, /\nuser_step "removing the kubeconfig" \/bin\/bash -c "\$inner" kubeconfig-remove /);
  assert.match(USER_FUNCS, /setpriv --reuid="\$UID_" --regid="\$UID_" --init-groups --reset-env/);
  assert.match(deliver.body, /chmod 0600 "\$t"/);
  assert.match(remove.body, /managed\) rm -f "\$f"/);
  for (const v of KUBECONFIG_VERBS) {
    const inner = /<<'EOS'\n([\s\S]*?)\nEOS\n/.exec(v.body);
    assert.ok(inner, `${v.name} runs its user part from a quoted heredoc`);
    for (const src of [`NAME=x\nUID_=1\n${USER_FUNCS}\n${v.body}`, inner[1]]) {
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

const CUT_TYPE = "pulumi-nodejs:dynamic/kube:NamespaceCut";

test("the access cut: one KubeNamespaceCut per owned namespace while the owner is admin; every object granting access there depends on it", async () => {
  const opts = recordedOptions();
  const roster = readExampleRoster().replace("    namespaces: [nadia-apps]\n", "    namespaces: [nadia-apps, nadia-ml]\n");
  const { resources } = await runProgram({ roster, config: KUBE_CONFIG });
  opts.stop();
  const cuts = resources.filter((r) => r.type === CUT_TYPE);
  assert.deepEqual(
    cuts.map((r) => r.name),
    ["nadia-kube-cut-nadia-apps", "nadia-kube-cut-nadia-ml"],
  );
  for (const ns of ["nadia-apps", "nadia-ml"]) {
    const cut = `nadia-kube-cut-${ns}`;
    const inputs = unsecret(cuts.find((r) => r.name === cut)!.inputs);
    // Only the namespace, the user and the schema: no credential, no code (a loader of sweep.js).
    assert.deepEqual(Object.fromEntries(Object.entries(inputs).filter(([k]) => k !== "__provider")), { namespace: ns, user: "nadia", providerSchema: "1" });
    assert.ok(String(inputs.__provider).length < 4000, `the stored provider is the loader (${String(inputs.__provider).length} chars)`);
    assert.doesNotMatch(String(inputs.__provider), /BEGIN|token|password/i);
    assert.deepEqual(opts.get(cut)?.dependsOn, [`nadia-ns-${ns}`], "created after its namespace");
    for (const dependent of [`nadia-owner-${ns}`, `nadia-dashboard-binding-${ns}`, `nadia-dashboard-sa-${ns}`])
      assert.ok(opts.get(dependent)?.dependsOn.includes(cut), `${dependent} depends on ${cut}, so the cut's delete runs after it`);
    // The token Secret depends on the ServiceAccount, which depends on the cut.
    assert.deepEqual(opts.get(`nadia-dashboard-token-${ns}`)?.dependsOn, [`nadia-dashboard-sa-${ns}`]);
  }
  // Nobody else has a cut: admins, tier none, suspended, offboarded.
  assert.equal(resources.filter((r) => r.type === CUT_TYPE && !r.name.startsWith("nadia-")).length, 0);
  // Suspending or offboarding nadia removes her cuts from the program (the engine then deletes them: the sweep).
  for (const state of ["suspended", "offboarded"]) {
    const r = await runProgram({
      roster: roster.replace("    namespaces: [nadia-apps, nadia-ml]\n", `    namespaces: [nadia-apps, nadia-ml]\n    state: ${state}\n`),
      config: KUBE_CONFIG,
    });
    assert.equal(r.resources.filter((x) => x.type === CUT_TYPE).length, 0, state);
  }
  // A namespace leaving its owner takes its cut along (the other stays).
  const fewer = await runProgram({ roster, config: KUBE_CONFIG }).then(() => runProgram({ roster: readExampleRoster(), config: KUBE_CONFIG }));
  assert.deepEqual(
    fewer.resources.filter((x) => x.type === CUT_TYPE).map((x) => x.name),
    ["nadia-kube-cut-nadia-apps"],
  );
});

test("Pod Security admission: owned namespaces enforce and warn baseline by default, restricted when configured, also while suspended; privileged is refused", async () => {
  const psa = (rs: Captured[]) => {
    const labels = byName(rs, "nadia-ns-nadia-apps").metadata.labels;
    return Object.fromEntries(Object.entries(labels).filter(([k]) => k.startsWith("pod-security.kubernetes.io/")));
  };
  const want = (level: string) => ({
    "pod-security.kubernetes.io/enforce": level,
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": level,
    "pod-security.kubernetes.io/warn-version": "latest",
  });
  assert.deepEqual(psa((await runProgram({ roster: readExampleRoster(), config: KUBE_CONFIG })).resources), want("baseline"));
  assert.deepEqual(
    psa((await runProgram({ roster: readExampleRoster(), config: { ...KUBE_CONFIG, kubePodSecurity: "restricted" } })).resources),
    want("restricted"),
  );
  const suspended = readExampleRoster().replace("    namespaces: [nadia-apps]\n", "    namespaces: [nadia-apps]\n    state: suspended\n");
  assert.deepEqual(psa((await runProgram({ roster: suspended, config: KUBE_CONFIG })).resources), want("baseline"));
  // The owner label stays too: the cut trusts it (owners may not update namespaces).
  assert.equal(byName((await runProgram({ roster: suspended, config: KUBE_CONFIG })).resources, "nadia-ns-nadia-apps").metadata.labels[OWNER_LABEL], "nadia");
  for (const bad of ["privileged", "Baseline", "none"])
    await assert.rejects(
      runProgram({ roster: readExampleRoster(), config: { ...KUBE_CONFIG, kubePodSecurity: bad } }),
      new RegExp(
        `Invalid value "${bad}" \\(baseline\\|restricted[^)]*privileged is not allowed\\) in config key: workstations:kubePodSecurity[\\s\\S]*pulumi config set --stack test workstations:kubePodSecurity baseline`,
      ),
    );
  // A Pod Security key without kubeApiServer is a half configuration, like the other kube keys.
  await assert.rejects(
    runProgram({ roster: readExampleRoster(), config: { kubePodSecurity: "baseline" } }),
    /half configured \(workstations:kubePodSecurity set\)/,
  );
});

test("the program's object names in a namespace are the access cut's (sweep.js) and plan.ts's", () => {
  for (const u of ["nadia", "olga", "a-b"]) {
    const n = kubeNames(u);
    assert.deepEqual(
      { ownerBinding: n.ownerBinding, dashboardBinding: n.dashboardBinding, dashboardAccount: n.dashboardAccount, dashboardToken: n.dashboardToken },
      programNames(u),
    );
    assert.equal(n.dashboardAccount, derivedNames(u).dashboardServiceAccount);
  }
  assert.equal(OWNER_LABEL, SWEEP_OWNER_LABEL);
});

test("k8sUser: the bindings name the user's Kubernetes identity where it is not the email; the access report says so", async () => {
  const roster = readExampleRoster().replace("    email: viktor@example.com\n", "    email: viktor@example.com\n    k8sUser: viktor.k8s@corp.example\n");
  assert.notEqual(roster, readExampleRoster());
  const opts = recordedOptions();
  const { resources } = await runProgram({ roster, config: { ...KUBE_CONFIG, kubeUsernamePrefix: "oidc:" } });
  opts.stop();
  assert.deepEqual(byName(resources, "viktor-cluster-admin").subjects, [
    { kind: "User", apiGroup: "rbac.authorization.k8s.io", name: "oidc:viktor.k8s@corp.example" },
  ]);
  assert.equal(byName(resources, "nadia-owner-nadia-apps").subjects[0].name, "oidc:nadia@example.com", "the others keep their email");
  const viktor = planRoster(parseRoster(roster, "r.yaml").roster!).users.find((u) => u.name === "viktor")!;
  assert.ok(userGrants(viktor).kubernetes.includes("bound as viktor.k8s@corp.example (k8sUser, not the email)"));
});

test("k8sUser: one Kubernetes identity per entry; another entry's email or k8sUser is refused at its line", () => {
  const base = readExampleRoster();
  for (const [doc, line] of [
    [
      base.replace("    email: emo@example.com\n", "    email: emo@example.com\n    k8sUser: Viktor@example.com\n"),
      /^users\[1\]\.k8sUser: expected a unique Kubernetes identity: "viktor@example\.com" is already users\[0\] \(viktor\)'s/,
    ],
    [
      base
        .replace("    email: emo@example.com\n", "    email: emo@example.com\n    k8sUser: k@x.io\n")
        .replace("    email: nadia@example.com\n", "    email: nadia@example.com\n    k8sUser: k@x.io\n"),
      /^users\[2\]\.k8sUser: expected a unique Kubernetes identity: "k@x\.io" is already users\[1\] \(emo\)'s/,
    ],
  ] as const) {
    const r = parseRoster(doc, "r.yaml");
    assert.equal(r.problems.length, 1, JSON.stringify(r.problems));
    assert.match(`${r.problems[0].path}: ${r.problems[0].message}`, line);
  }
});
