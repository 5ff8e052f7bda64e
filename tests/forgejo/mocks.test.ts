/**
 * The whole program under Pulumi mocks (dev/mocks.ts) with the Forgejo config keys: which
 * user gets which Forgejo resource (decided by the plan only), the config errors, the
 * preflight's place (before any resource), and a property test: every whitelisted user is a
 * write collaborator (or the repo's owner).
 */
import { afterEach, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fc from "fast-check";
import * as YAML from "yaml";
import * as pulumi from "@pulumi/pulumi";
import { setForgejoPreflightForTests } from "../../components/forgejo";
import { PreflightInput } from "../../components/forgejo/api";
import { planRoster } from "../../components/plan";
import { parseRoster } from "../../components/roster/load";
import { Captured, commands, readExampleRoster, redactSecrets, runProgram, SECRET_CONFIG, setResourceHook, unsecret } from "../../dev/mocks";
import { ed25519Key } from "../../dev/sshkeys";

const T = "pulumi-nodejs:dynamic/forgejo";
const TOKEN_MARKER = "S3CR3T-FORGEJO-TOKEN-0123456789abcdef";
const FORGEJO_PASSWORD_MARKER = SECRET_CONFIG.forgejoAdminPassword;
const FORGEJO = {
  forgejoUrl: "http://forgejo.runner.test:3000/",
  forgejoUrlFromHost: "http://forgejo.internal:3000/",
  forgejoRepo: "viktor/infra",
  forgejoAdminUser: "forgeadmin",
  forgejoAdminPassword: FORGEJO_PASSWORD_MARKER,
};

let calls: PreflightInput[] = [];
function stubPreflight(result = { ok: true, message: "Forgejo at http://forgejo.runner.test:3000: gitea 1.26.3 (mock)" }) {
  calls = [];
  setForgejoPreflightForTests((i) => {
    calls.push(i);
    return result;
  });
}
// The token resources get a token value, as the real provider's create would return.
setResourceHook(async (type) => (type === `${T}:AccessToken` ? { token: TOKEN_MARKER, tokenId: 7, lastEight: TOKEN_MARKER.slice(-8) } : undefined));

afterEach(() => setForgejoPreflightForTests(undefined));

const of = (rs: Captured[], kind: string) => rs.filter((r) => r.type === `${T}:${kind}`);
const edit = (f: (d: any) => void) => {
  const d = YAML.parse(readExampleRoster());
  f(d);
  return YAML.stringify(d);
};

test("codeLayout workspace: the infra clone at ~/code/infra (a clone at ~/code adopted), each of repos at ~/code/<name>, after it", async () => {
  stubPreflight();
  const roster = edit((d) => {
    const emo = d.users.find((u: any) => u.name === "emo");
    emo.codeLayout = "workspace";
    emo.repos = ["viktor/tools", "team/docs-site"];
  });
  const { resources } = await runProgram({ roster, config: FORGEJO });
  const clones = commands(resources).filter((r) => /^emo-(code-clone|git-credentials)/.test(r.name));
  const lib = "\\/usr\\/local\\/lib\\/workstations\\/lib\\/ws-[0-9a-f]{16}\\.sh clone 'NAME=emo' 'UID_=2001'";
  // the infra clone is the second step of the credentials' command; each further repo its own, after it
  assert.deepEqual(
    clones.map((r) => r.name),
    ["emo-git-credentials", "emo-code-clone-tools", "emo-code-clone-docs-site"],
  );
  const url = "http:\\/\\/forgejo\\.internal:3000\\/";
  assert.match(
    clones[0].inputs.create,
    new RegExp(` && ${lib} 'URL=${url}viktor\\/infra\\.git' 'REMOTE=forgejo' 'BRANCH=master' 'DIR=code/infra' 'ALT=code'$`),
  );
  assert.equal(clones[0].inputs.update, clones[0].inputs.create);
  assert.match(clones[1].inputs.create, new RegExp(`^${lib} 'URL=${url}viktor\\/tools\\.git' 'REMOTE=forgejo' 'BRANCH=master' 'DIR=code/tools' 'ALT='$`));
  assert.match(clones[2].inputs.create, new RegExp(`'URL=${url}team\\/docs-site\\.git' .* 'DIR=code/docs-site' 'ALT='$`));
  // the others keep the single layout
  assert.match(commands(resources).find((r) => r.name === "nadia-git-credentials")!.inputs.create, /'DIR=code' 'ALT='$/);
});

test("the example roster: collaborators with the plan's permission (not the owner), a token, ~/.git-credentials and ~/code per active user; nothing for suspended or offboarded", async () => {
  stubPreflight();
  const { resources, program } = await runProgram({ roster: readExampleRoster(), config: FORGEJO });
  assert.deepEqual(
    of(resources, "Collaborator")
      .map((r) => [r.name, r.inputs.user, r.inputs.permission])
      .sort(),
    [
      ["emo-forgejo-collaborator", "ebarzin", "write"],
      ["nadia-forgejo-collaborator", "nadia", "read"],
    ],
    "viktor owns viktor/infra: no collaborator for him",
  );
  assert.deepEqual(
    of(resources, "AccessToken")
      .map((r) => [r.name, r.inputs.user, r.inputs.tokenName, r.inputs.scopes])
      .sort(),
    [
      ["emo-forgejo-token", "ebarzin", "workstations-0.0", ["write:repository"]],
      ["nadia-forgejo-token", "nadia", "workstations-0.0", ["write:repository"]],
      ["viktor-forgejo-token", "viktor", "workstations-0.0", ["write:repository"]],
    ],
  );
  const bp = of(resources, "BranchProtection");
  assert.equal(bp.length, 1);
  assert.deepEqual(
    [bp[0].inputs.repo, bp[0].inputs.branch, bp[0].inputs.pushWhitelist, bp[0].inputs.mergeWhitelist],
    ["viktor/infra", "master", ["ebarzin", "viktor"], ["ebarzin", "viktor"]],
  );
  assert.deepEqual(bp[0].inputs.pushWhitelist, program.plan.branchProtection.pushWhitelist, "whitelists come from the plan, unchanged");
  // registered after every collaborator (it depends on them)
  const idx = (n: string) => resources.findIndex((r) => r.name === n);
  assert.ok(idx("forgejo-master-protection") > idx("emo-forgejo-collaborator") && idx("forgejo-master-protection") > idx("nadia-forgejo-collaborator"));
  for (const u of ["sam", "olga"])
    assert.deepEqual(
      resources.filter((r) => r.name.startsWith(`${u}-`) && (r.type.startsWith(T) || /git-credentials|code-clone/.test(r.name))),
      [],
      `${u} gets no Forgejo resource`,
    );
  const cmds = commands(resources).map((r) => r.name);
  for (const u of ["viktor", "emo", "nadia"]) assert.ok(cmds.includes(`${u}-git-credentials`) && !cmds.some((c) => c.startsWith(`${u}-code-clone`)), u);
  // the clone URL and the credential host are the host's view; the resources use the runner's.
  // The credentials' line first, then the clone, in one command.
  const clone = commands(resources).find((r) => r.name === "emo-git-credentials")!;
  assert.match(
    clone.inputs.create,
    /^\/usr\/local\/lib\/workstations\/lib\/ws-[0-9a-f]{16}\.sh git-credentials-deliver 'NAME=emo' 'UID_=2001' [^&]* && \/usr\/local\/lib\/workstations\/lib\/ws-[0-9a-f]{16}\.sh clone 'NAME=emo' 'UID_=2001' 'URL=http:\/\/forgejo\.internal:3000\/viktor\/infra\.git' 'REMOTE=forgejo' 'BRANCH=master' 'DIR=code' 'ALT='$/,
  );
  assert.equal(of(resources, "Collaborator")[0].inputs.url, FORGEJO.forgejoUrl);
  // the refresh timer is part of the plan's units for active users with access
  assert.ok(program.plan.users.find((u) => u.name === "emo")!.grants.timers.includes("workstations-refresh-clone@emo.timer"));
  assert.deepEqual(program.plan.users.find((u) => u.name === "sam")!.grants.timers, []);
  // the preflight ran once, before anything, with the users the program grants to
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0], {
    url: FORGEJO.forgejoUrl,
    repo: "viktor/infra",
    adminUser: "forgeadmin",
    adminPassword: FORGEJO_PASSWORD_MARKER,
    users: ["ebarzin", "nadia", "viktor"],
    // every login that gets an access token, with the email its account must have (issue 19)
    identities: [
      { name: "viktor", login: "viktor", email: "viktor@example.com", emailOverride: false, admin: true },
      { name: "emo", login: "ebarzin", email: "emo@example.com", emailOverride: false, admin: false },
      { name: "nadia", login: "nadia", email: "nadia@example.com", emailOverride: false, admin: false },
    ],
  });
});

test("no token and no admin password outside secrets; the token travels only on the delivery command's stdin", async () => {
  stubPreflight();
  const { resources } = await runProgram({ roster: readExampleRoster(), config: FORGEJO });
  for (const r of resources) {
    const plain = JSON.stringify(redactSecrets(r.inputs));
    for (const m of [TOKEN_MARKER, FORGEJO_PASSWORD_MARKER]) assert.ok(!plain.includes(m), `${r.type} ${r.name}: ${m} outside a secret`);
    for (const f of ["create", "update", "delete"]) assert.ok(!JSON.stringify(unsecret(r.inputs[f] ?? "")).includes(TOKEN_MARKER), `${r.name}.${f}`);
    if (r.type.startsWith(T)) {
      const { __provider, ...inputs } = unsecret(r.inputs);
      assert.ok(typeof __provider === "string" && __provider.includes("providers.js"), "the resource carries the loader of the provider code");
      for (const m of [TOKEN_MARKER, FORGEJO_PASSWORD_MARKER, "forgeadmin"])
        assert.ok(!JSON.stringify(inputs).includes(m), `${r.name}: ${m} is no input of a Forgejo resource`);
      assert.ok(!__provider.includes(FORGEJO_PASSWORD_MARKER), `${r.name}: the serialised provider holds no credential`);
    }
  }
  const cred = commands(resources).find((r) => r.name === "emo-git-credentials")!;
  assert.equal(redactSecrets(cred.inputs).stdin, "[secret]");
  assert.equal(unsecret(cred.inputs.stdin), `http://ebarzin:${TOKEN_MARKER}@forgejo.internal:3000\n`);
});

test("suspending or offboarding a user removes their Forgejo resources and whitelist entries (the plan decides)", async () => {
  for (const state of ["suspended", "offboarded"]) {
    stubPreflight();
    const roster = edit((d) => (d.users.find((u: any) => u.name === "emo").state = state));
    const { resources } = await runProgram({ roster, config: FORGEJO });
    assert.deepEqual(
      resources.filter((r) => r.name.startsWith("emo-") && (r.type.startsWith(T) || /git-credentials|code-clone/.test(r.name))).map((r) => r.name),
      [],
      state,
    );
    assert.deepEqual(of(resources, "BranchProtection")[0].inputs.pushWhitelist, ["viktor"], state);
    assert.ok(!calls[0].users.includes("ebarzin"), `${state}: ebarzin need not exist for the preflight`);
    assert.ok(!calls[0].identities.some((i) => i.login === "ebarzin"), `${state}: no token, so no identity check`);
  }
});

test("credentialRotation (global or per user) renames, i.e. replaces, the token", async () => {
  stubPreflight();
  const roster = edit((d) => (d.users.find((u: any) => u.name === "emo").credentialRotation = 3));
  const { resources } = await runProgram({ roster, config: { ...FORGEJO, credentialRotation: "2" } });
  const names = Object.fromEntries(of(resources, "AccessToken").map((r) => [r.inputs.user, r.inputs.tokenName]));
  assert.deepEqual(names, { ebarzin: "workstations-2.3", nadia: "workstations-2.0", viktor: "workstations-2.0" });
});

/** Calls of pulumi.log.info during `f` (the program says "off" or what the preflight found). */
async function infoLines<T>(f: () => Promise<T>): Promise<{ lines: string[]; result: T }> {
  const lines: string[] = [];
  const orig = pulumi.log.info;
  (pulumi.log as any).info = (msg: string, ...rest: any[]) => {
    lines.push(msg);
    return orig(msg, ...rest);
  };
  try {
    return { lines, result: await f() };
  } finally {
    (pulumi.log as any).info = orig;
  }
}

test("without Forgejo config: no Forgejo resource, no clone or credential command, no preflight; said once", async () => {
  stubPreflight();
  const { lines, result } = await infoLines(() => runProgram({ roster: readExampleRoster() }));
  assert.deepEqual(
    result.resources.filter((r) => r.type.startsWith(T) || /git-credentials|code-clone/.test(r.name)),
    [],
  );
  assert.equal(calls.length, 0);
  assert.deepEqual(
    lines.filter((l) => /Forgejo/.test(l)),
    ["Forgejo: off (workstations:forgejoUrl is not set): no collaborators, master protection, access tokens or ~/code clones are managed"],
  );
  // with the config, the preflight's finding is said once instead
  const on = await infoLines(() => runProgram({ roster: readExampleRoster(), config: FORGEJO }));
  assert.deepEqual(
    on.lines.filter((l) => /Forgejo/.test(l)),
    ["Forgejo at http://forgejo.runner.test:3000: gitea 1.26.3 (mock)"],
  );
});

test("a failed preflight stops the program before any resource, with its one line", async () => {
  stubPreflight({ ok: false, message: "Forgejo at http://forgejo.runner.test:3000 is unreachable (GET /version: ECONNREFUSED)" });
  let registered = 0;
  setResourceHook(async () => {
    registered++;
    return undefined;
  });
  try {
    await assert.rejects(runProgram({ roster: readExampleRoster(), config: FORGEJO }), (e: Error) => {
      assert.ok(pulumi.RunError.isInstance(e), `a RunError (printed without a stack): ${e}`);
      assert.equal(e.message, "Forgejo at http://forgejo.runner.test:3000 is unreachable (GET /version: ECONNREFUSED); nothing was applied");
      return true;
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(registered, 0, "no resource was registered");
  } finally {
    setResourceHook(async (type) => (type === `${T}:AccessToken` ? { token: TOKEN_MARKER } : undefined));
  }
});

test("missing or half Forgejo config: the exact pulumi config set command", async () => {
  stubPreflight();
  const cases: Array<[Record<string, string | undefined>, RegExp]> = [
    [
      { ...FORGEJO, forgejoRepo: undefined },
      /Missing required config key: workstations:forgejoRepo\. Set it with:\n  pulumi config set --stack test workstations:forgejoRepo viktor\/infra/,
    ],
    [
      { ...FORGEJO, forgejoAdminUser: undefined },
      /Missing required config key: workstations:forgejoAdminUser\. Set it with:\n  pulumi config set --stack test workstations:forgejoAdminUser forgeadmin/,
    ],
    [
      { ...FORGEJO, forgejoAdminPassword: undefined },
      /No Forgejo admin password: .*workstations:forgejoAdminPassword\. Set it with:\n  pulumi config set --secret --stack test workstations:forgejoAdminPassword < forgejo-admin-password\.txt/,
    ],
    [
      { ...FORGEJO, forgejoUrl: undefined },
      /Forgejo is half configured \(workstations:forgejoUrlFromHost, workstations:forgejoRepo, workstations:forgejoAdminUser, workstations:forgejoAdminPassword set\); missing config key: workstations:forgejoUrl\. Set it with:\n  pulumi config set --stack test workstations:forgejoUrl https:\/\/forgejo\.example\.internal/,
    ],
    [{ ...FORGEJO, forgejoRepo: "infra" }, /Config key is not owner\/name \("infra"\): workstations:forgejoRepo/],
    [{ ...FORGEJO, forgejoUrlFromHost: "forgejo.internal" }, /Config key is not an http\(s\) URL: workstations:forgejoUrlFromHost/],
  ];
  const saved = process.env.FORGEJO_ADMIN_PASSWORD;
  delete process.env.FORGEJO_ADMIN_PASSWORD;
  try {
    for (const [config, re] of cases)
      await assert.rejects(
        runProgram({ roster: readExampleRoster(), config }),
        (e: Error) => (assert.equal(e.name, "ConfigError"), assert.match(e.message, re), true),
      );
    // FORGEJO_ADMIN_PASSWORD in the environment (CI) stands in for the secret key
    process.env.FORGEJO_ADMIN_PASSWORD = "from-the-environment";
    const { resources } = await runProgram({ roster: readExampleRoster(), config: { ...FORGEJO, forgejoAdminPassword: undefined } });
    assert.equal(of(resources, "BranchProtection").length, 1);
    assert.equal(calls[calls.length - 1].adminPassword, "from-the-environment");
  } finally {
    if (saved === undefined) delete process.env.FORGEJO_ADMIN_PASSWORD;
    else process.env.FORGEJO_ADMIN_PASSWORD = saved;
  }
});

// ---- property: whitelists ⊆ write collaborators (or the repo owner), for generated rosters ----
const KEYS = Array.from({ length: 12 }, (_, i) => ed25519Key(`fj${i}@gen`));
const rosterArb = fc
  .array(
    fc.record({
      role: fc.constantFrom("admin", "power-user", "namespace-owner" as const),
      state: fc.constantFrom("active", "suspended", "offboarded" as const),
      wl: fc.boolean(),
      perm: fc.constantFrom(undefined, "none", "read", "write", "admin" as const),
      rot: fc.nat(3),
    }),
    { minLength: 1, maxLength: 10 },
  )
  .map((entries) => {
    const users = entries.map((e, i) => {
      const perm = e.perm ?? (e.role === "namespace-owner" ? "read" : undefined);
      const canWl = perm === undefined ? e.role !== "namespace-owner" : perm === "write" || perm === "admin";
      return {
        name: `u${i}`,
        uid: 3000 + i,
        role: e.role,
        email: `u${i}@example.com`,
        forgejo: `F${i}`,
        sshKeys: [KEYS[i]],
        shell: "/bin/bash",
        groups: [],
        namespaces: e.role === "namespace-owner" ? [`ns-${i}`] : [],
        overrides: { ...(e.perm ? { forgejoPermission: e.perm } : {}), ...(e.wl && canWl ? { pushWhitelist: true, mergeWhitelist: true } : {}) },
        state: e.state,
        credentialRotation: e.rot,
      };
    });
    users[0] = { ...users[0], role: "admin", state: "active", namespaces: [], overrides: {} };
    return { version: 1, users };
  });

test("property: every whitelisted user is a write collaborator or the repo owner; resources exist exactly for plan.grants.forgejo", async () => {
  stubPreflight();
  await fc.assert(
    fc.asyncProperty(rosterArb, fc.boolean(), async (roster, ownerIsUser) => {
      const text = YAML.stringify(roster);
      const plan = planRoster(parseRoster(text, "gen.yaml").roster!);
      const owner = ownerIsUser ? "F0" : "someorg";
      const { resources } = await runProgram({ roster: text, config: { ...FORGEJO, forgejoRepo: `${owner}/infra` } });
      const collab = new Map(of(resources, "Collaborator").map((r) => [String(r.inputs.user).toLowerCase(), r.inputs.permission as string]));
      const bp = of(resources, "BranchProtection");
      assert.equal(bp.length, 1);
      for (const u of [...bp[0].inputs.pushWhitelist, ...bp[0].inputs.mergeWhitelist] as string[]) {
        const p = collab.get(u.toLowerCase());
        assert.ok(u === owner || p === "write" || p === "admin", `${u} is whitelisted but is ${p ?? "no collaborator"} (owner ${owner})`);
      }
      const tokens = new Set(of(resources, "AccessToken").map((r) => r.inputs.user as string));
      for (const u of plan.users) {
        assert.equal(tokens.has(u.forgejoUser), !!u.grants.forgejo, `${u.name}: token iff access`);
        const p = collab.get(u.forgejoUser.toLowerCase());
        if (u.grants.forgejo && u.forgejoUser !== owner) assert.equal(p, u.grants.forgejo.permission, `${u.name}: the plan's permission`);
        else assert.equal(p, undefined, `${u.name}: no collaborator`);
      }
      for (const o of plan.offboarded) assert.ok(!resources.some((r) => r.name.startsWith(`${o.name}-`)), `offboarded ${o.name} gets nothing`);
    }),
    { numRuns: 40 },
  );
});
