/**
 * The Forgejo dynamic provider (components/forgejo) under the REAL Pulumi CLI (v3.259.0 from
 * the offline toolchain; a dynamic provider needs no resource plugin) against the real Gitea
 * 1.26.3 from dev/services.ts. A small project uses a copy of components/forgejo (so a
 * code change can be made to it): create, a no-op up, a whitelist change that updates only the
 * protection, drift made by hand found by refresh and put back by up, token rotation, suspend,
 * a provider code change (nothing in the state changes; the next run uses it), delete without
 * the code on disk (refused, one line) and with it, the first version's state (its code
 * serialised in the state) migrated by one update, and the state as an attacker sees it (no
 * token, no admin password in plaintext).
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { hasCiphertext, plaintextSecrets, readStateAsAttacker } from "../../dev/state-audit";
import { authUrl, Gitea, git, project, Project, ROOT, startGitea, stateResources, summary, tmp } from "./lib";

const PROGRAM = `import * as pulumi from "@pulumi/pulumi";
import { ForgejoAccessToken, ForgejoBranchProtection, ForgejoCollaborator } from "./forgejo/provider";

interface Spec { users: { name: string; permission: "read" | "write" | "admin" }[]; push: string[]; merge: string[]; rotation: string }
const cfg = new pulumi.Config("t");
const url = cfg.require("url");
const repo = cfg.require("repo");
const spec = cfg.requireObject<Spec>("spec");
const collaborators = spec.users.map((u) => new ForgejoCollaborator(\`collab-\${u.name}\`, { url, repo, user: u.name, permission: u.permission }));
const tokens = spec.users.map((u) => new ForgejoAccessToken(\`token-\${u.name}\`, { url, user: u.name, tokenName: \`workstations-\${spec.rotation}\` }));
new ForgejoBranchProtection("master", { url, repo, pushWhitelist: spec.push, mergeWhitelist: spec.merge }, { dependsOn: collaborators });
/** Test only: the tokens, to use them with git (stack outputs stay secret). */
export const tokenValues = Object.fromEntries(spec.users.map((u, i) => [u.name, tokens[i].token]));
export const tokenIds = Object.fromEntries(spec.users.map((u, i) => [u.name, tokens[i].tokenId]));
`;

const EMPTY_PROGRAM = `// nothing: every resource left in the state is deleted (the stored loader runs forgejo/providers.js)
export const empty = true;
`;

/** The last commit with the first version of components/forgejo (the whole client serialised into each resource's state). */
const FIRST_VERSION = "19ed79f";

let g: Gitea;
let p: Project;
const repo = () => `${g.f.repo.owner}/${g.f.repo.name}`;
const setSpec = (spec: unknown) => p.config("t:spec", JSON.stringify(spec));
const tokens = () => JSON.parse(p.ok(["stack", "output", "--show-secrets", "--json", "tokenValues"])) as Record<string, string>;
const tokenIds = () => JSON.parse(p.ok(["stack", "output", "--json", "tokenIds"])) as Record<string, number>;
const protection = async () => (await g.f.api("GET", `repos/${repo()}/branch_protections/master`)).json as Record<string, any>;
const permission = async (u: string) => {
  const is = await g.f.api("GET", `repos/${repo()}/collaborators/${u}`);
  if (is.status === 404) return "none";
  return ((await g.f.api("GET", `repos/${repo()}/collaborators/${u}/permission`)).json as { permission: string }).permission;
};
const userTokens = async (u: string) => {
  const res = await fetch(`${g.f.url}api/v1/users/${u}/tokens`, {
    headers: { Authorization: `Basic ${Buffer.from(`${g.f.adminUser}:${g.f.adminPassword}`).toString("base64")}` },
  });
  return ((await res.json()) as { id: number; name: string }[]).map((t) => ({ id: t.id, name: t.name }));
};
/** Whether a token may read the private repo over git's HTTP protocol: 200, or 401 when refused. */
const gitStatus = async (user: string, token: string) =>
  (
    await fetch(`${g.f.url}${repo()}.git/info/refs?service=git-upload-pack`, {
      headers: { Authorization: `Basic ${Buffer.from(`${user}:${token}`).toString("base64")}` },
    })
  ).status;
const seenSecrets: string[] = [];

before(async () => {
  g = await startGitea("provider");
  for (const u of ["alice", "bob"]) await g.user(u);
  const mod = path.join(ROOT, "components/forgejo");
  const files: Record<string, string> = {};
  for (const f of ["api.js", "providers.js", "provider.ts"]) files[`forgejo/${f}`] = fs.readFileSync(path.join(mod, f), "utf8");
  files["loaderProvider.ts"] = fs.readFileSync(path.join(ROOT, "components/loaderProvider.ts"), "utf8");
  p = project("provider", PROGRAM, files);
  p.config("t:url", g.f.url);
  p.config("t:repo", repo());
  p.config("workstations:forgejoAdminUser", g.f.adminUser);
  p.config("workstations:forgejoAdminPassword", g.f.adminPassword, true);
  seenSecrets.push(g.f.adminPassword);
});

after(async () => {
  await g?.stop();
});

test("check refuses bad inputs during preview, one failure per field, nothing created", () => {
  // The engine stops at the first resource whose check fails.
  setSpec({ users: [{ name: "bad name", permission: "write" }], push: [], merge: [], rotation: "0" });
  let r = p.pulumi(["preview"]);
  assert.notEqual(r.code, 0);
  assert.match(
    r.out,
    /error: pulumi-nodejs:dynamic\/forgejo:\w+ resource '\w+-bad name': property user value \{bad name\} has a problem: user must be a Forgejo user name \(got "bad name"\)/,
  );
  setSpec({ users: [{ name: "alice", permission: "owner" }], push: ["al ice"], merge: [], rotation: "0" });
  r = p.pulumi(["preview"]);
  assert.notEqual(r.code, 0);
  assert.match(r.out, /permission must be read, write or admin \(got "owner"\)/);
  assert.deepEqual(stateResources(p), []);
});

test("create: collaborators, tokens and master's protection, as the spec says", async () => {
  setSpec({
    users: [
      { name: "alice", permission: "write" },
      { name: "bob", permission: "write" },
    ],
    push: ["alice"],
    merge: ["alice"],
    rotation: "0",
  });
  const out = p.ok(["up", "--yes"]);
  assert.deepEqual(summary(out), { created: 6 }, out);
  assert.equal(await permission("alice"), "write");
  assert.equal(await permission("bob"), "write");
  const bp = await protection();
  assert.deepEqual(bp.push_whitelist_usernames, ["alice"]);
  assert.deepEqual(bp.merge_whitelist_usernames, ["alice"]);
  assert.equal(bp.enable_push, true);
  assert.equal(bp.enable_push_whitelist, true);
  assert.equal(bp.push_whitelist_deploy_keys, true);
  assert.equal(bp.enable_force_push, false);
  assert.equal(bp.block_admin_merge_override, true);
  const t = tokens();
  seenSecrets.push(...Object.values(t));
  assert.equal(await gitStatus("alice", t.alice), 200, "the token reads the private repo");
  assert.deepEqual(
    (await userTokens("alice")).map((x) => x.name),
    ["workstations-0"],
  );
  const types = stateResources(p)
    .map((r) => r.type)
    .sort();
  assert.deepEqual(types, [
    "pulumi-nodejs:dynamic/forgejo:AccessToken",
    "pulumi-nodejs:dynamic/forgejo:AccessToken",
    "pulumi-nodejs:dynamic/forgejo:BranchProtection",
    "pulumi-nodejs:dynamic/forgejo:Collaborator",
    "pulumi-nodejs:dynamic/forgejo:Collaborator",
  ]);
});

test("a second up changes nothing (exact diff: no spurious updates)", () => {
  p.ok(["preview", "--expect-no-changes"]);
  const out = p.ok(["up", "--yes"]);
  assert.deepEqual(summary(out), { unchanged: 6 }, out);
});

test("a whitelist change updates only the protection", async () => {
  setSpec({
    users: [
      { name: "alice", permission: "write" },
      { name: "bob", permission: "write" },
    ],
    push: ["alice", "bob"],
    merge: ["alice"],
    rotation: "0",
  });
  const pre = p.ok(["preview", "--diff"]);
  assert.deepEqual(summary(pre), { "to update": 1, unchanged: 5 }, pre);
  assert.match(pre, /~ pulumi-nodejs:dynamic\/forgejo:BranchProtection: \(update\)/);
  const out = p.ok(["up", "--yes"]);
  assert.deepEqual(summary(out), { updated: 1, unchanged: 5 }, out);
  assert.deepEqual((await protection()).push_whitelist_usernames, ["alice", "bob"]);
});

test("a whitelisted user who cannot write: the protection is not written at all, one line names them", async () => {
  await g.user("carol"); // exists, is no collaborator
  setSpec({
    users: [
      { name: "alice", permission: "write" },
      { name: "bob", permission: "write" },
    ],
    push: ["alice", "bob", "carol"],
    merge: ["alice"],
    rotation: "0",
  });
  const r = p.pulumi(["up", "--yes"]);
  assert.notEqual(r.code, 0);
  assert.match(
    r.out,
    /not writing the protection of forgeadmin\/infra master: whitelisted user carol \(none\) cannot write to the repo \(the server would drop them; make them write collaborators first\)/,
  );
  assert.deepEqual((await protection()).push_whitelist_usernames, ["alice", "bob"], "nothing was written");
  setSpec({
    users: [
      { name: "alice", permission: "write" },
      { name: "bob", permission: "write" },
    ],
    push: ["alice", "bob"],
    merge: ["alice"],
    rotation: "0",
  });
  p.ok(["preview", "--expect-no-changes"]);
});

test("drift made by hand: preview alone misses it, refresh reports it, preview then shows the fix, up restores it", async () => {
  // by hand: bob drops to read, the push whitelist loses bob, force push is opened
  assert.equal((await g.f.api("PUT", `repos/${repo()}/collaborators/bob`, { permission: "read" })).status, 204);
  assert.equal(
    (await g.f.api("PATCH", `repos/${repo()}/branch_protections/master`, { push_whitelist_usernames: ["alice"], enable_force_push: true })).status,
    200,
  );
  // A plain preview diffs the program against the state, not the server:
  assert.deepEqual(summary(p.ok(["preview"])), { unchanged: 6 });
  // preview --refresh reads the server first (in memory) and shows the two updates:
  const pr = p.ok(["preview", "--refresh", "--diff"]);
  assert.deepEqual(summary(pr), { "to update": 2, unchanged: 4 }, pr);
  assert.match(pr, /~ permission\s*: "write" => "read"/, pr);
  // refresh stores what the server has (outputs; the inputs stay the program's):
  const ref = p.ok(["refresh", "--yes", "--diff"]);
  assert.match(ref, /~ permission\s*: "write" => "read"/, ref);
  assert.match(ref, /enable_force_push is true, wants false/, ref);
  assert.deepEqual(summary(ref), { updated: 2, unchanged: 4 }, ref);
  const bpState = stateResources(p).find((r) => r.type.endsWith(":BranchProtection"))!;
  assert.deepEqual(bpState.outputs.pushWhitelist, ["alice"]);
  assert.deepEqual(bpState.inputs.pushWhitelist, ["alice", "bob"]);
  // the next preview shows both resources to update, and up puts them back
  const pre = p.ok(["preview", "--diff"]);
  assert.deepEqual(summary(pre), { "to update": 2, unchanged: 4 }, pre);
  assert.match(pre, /~ pulumi-nodejs:dynamic\/forgejo:Collaborator: \(update\)[\s\S]*collab-bob/);
  const up = p.ok(["up", "--yes"]);
  assert.deepEqual(summary(up), { updated: 2, unchanged: 4 }, up);
  assert.equal(await permission("bob"), "write");
  const bp = await protection();
  assert.deepEqual(bp.push_whitelist_usernames, ["alice", "bob"]);
  assert.equal(bp.enable_force_push, false);
  p.ok(["preview", "--refresh", "--expect-no-changes"]);
});

test("a protection, collaborator or token deleted by hand: refresh drops it from the state, up creates it again", async () => {
  assert.equal((await g.f.api("DELETE", `repos/${repo()}/branch_protections/master`)).status, 204);
  assert.equal((await g.f.api("DELETE", `repos/${repo()}/collaborators/alice`)).status, 204);
  const ref = p.ok(["refresh", "--yes"]);
  assert.deepEqual(summary(ref), { deleted: 2, unchanged: 4 }, ref);
  const up = p.ok(["up", "--yes"]);
  assert.deepEqual(summary(up), { created: 2, unchanged: 4 }, up);
  assert.equal(await permission("alice"), "write");
  assert.deepEqual((await protection()).push_whitelist_usernames, ["alice", "bob"]);
  // a token revoked by hand: dropped by the refresh, issued again (a new value) by up
  const before = tokens().alice;
  const id = tokenIds().alice;
  assert.equal(
    (
      await fetch(`${g.f.url}api/v1/users/alice/tokens/${id}`, {
        method: "DELETE",
        headers: { Authorization: `Basic ${Buffer.from(`${g.f.adminUser}:${g.f.adminPassword}`).toString("base64")}` },
      })
    ).status,
    204,
  );
  assert.deepEqual(summary(p.ok(["refresh", "--yes"])), { deleted: 1, unchanged: 5 });
  assert.deepEqual(summary(p.ok(["up", "--yes"])), { created: 1, unchanged: 5 });
  const after = tokens().alice;
  seenSecrets.push(after);
  assert.notEqual(after, before);
  assert.equal(await gitStatus("alice", after), 200);
});

test("the state holds no token and no admin password in plaintext (CLI export without --show-secrets, every backend file)", () => {
  p.ok(["up", "--yes", "--refresh"]); // history and backups after a refresh too
  const texts = readStateAsAttacker({ cwd: p.dir, env: p.env, stack: p.stack, backendDir: p.backend });
  assert.ok(texts.length > 3, texts.map((t) => t.where).join(", "));
  assert.deepEqual(plaintextSecrets(texts, seenSecrets), []);
  assert.ok(hasCiphertext(texts), "the tokens are in the state, encrypted");
  const tokenState = stateResources(p).find((r) => r.type.endsWith(":AccessToken"))!;
  assert.equal(tokenState.inputs.token, undefined, "the token is no input");
  assert.ok(tokenState.outputs.token.ciphertext, "the token output is a secret");
  assert.ok(!("password" in tokenState.inputs) && !JSON.stringify(tokenState.inputs).includes(g.f.adminUser + ":"), "no credential in the inputs");
});

test("rotation replaces the tokens: new ones work, the old ones are revoked", async () => {
  const old = tokens();
  const oldIds = tokenIds();
  setSpec({
    users: [
      { name: "alice", permission: "write" },
      { name: "bob", permission: "write" },
    ],
    push: ["alice", "bob"],
    merge: ["alice"],
    rotation: "1",
  });
  const up = p.ok(["up", "--yes"]);
  assert.deepEqual(summary(up), { replaced: 2, unchanged: 4 }, up);
  const now = tokens();
  seenSecrets.push(...Object.values(now));
  assert.notEqual(now.alice, old.alice);
  assert.equal(await gitStatus("alice", now.alice), 200);
  assert.equal(await gitStatus("alice", old.alice), 401);
  assert.deepEqual(
    (await userTokens("alice")).map((t) => t.name),
    ["workstations-1"],
  );
  assert.ok(!(await userTokens("bob")).some((t) => t.id === oldIds.bob));
});

test("suspend bob: his collaboration, token and whitelist entry go; his account stays", async () => {
  const bobToken = tokens().bob;
  setSpec({ users: [{ name: "alice", permission: "write" }], push: ["alice"], merge: ["alice"], rotation: "1" });
  const up = p.ok(["up", "--yes"]);
  assert.deepEqual(summary(up), { updated: 1, deleted: 2, unchanged: 3 }, up);
  assert.equal(await permission("bob"), "none");
  assert.deepEqual(await userTokens("bob"), []);
  assert.equal(await gitStatus("bob", bobToken), 401);
  assert.deepEqual((await protection()).push_whitelist_usernames, ["alice"]);
  assert.equal((await g.f.api("GET", "users/bob")).status, 200, "the Forgejo account is never deleted");
});

test("a change of the provider code changes nothing in the state and is used by the next run; delete needs the code on disk and says so", async () => {
  const implFile = path.join(p.dir, "forgejo/providers.js");
  const src = fs.readFileSync(implFile, "utf8");
  const diffLine = "const changes = replaces.length > 0 || olds.permission !== news.permission || olds.url !== news.url;";
  assert.ok(src.includes(diffLine));
  // A code change that makes every collaborator differ: the state holds the loader (about
  // 1 KB), not the code, so the change itself is no diff, and the next run uses the new code.
  fs.writeFileSync(implFile, src.replace(diffLine, "const changes = true;"));
  for (const r of stateResources(p)) {
    const loader = String(r.outputs.__provider);
    assert.ok(loader.length < 1536 && loader.includes("providers.js") && !loader.includes("forgejoRequest"), `${r.urn}: ${loader.length} bytes of provider`);
    assert.equal(r.outputs.providerSchema, "2");
  }
  const pre = p.ok(["preview"]);
  assert.deepEqual(summary(pre), { "to update": 1, unchanged: 3 }, pre);
  fs.writeFileSync(implFile, src);
  p.ok(["preview", "--expect-no-changes"]);

  // Delete when the code is gone from disk: one line saying where it looked, nothing changed.
  const aliceToken = tokens().alice;
  const before = stateResources(p).map((x) => x.urn);
  fs.writeFileSync(path.join(p.dir, "index.ts"), EMPTY_PROGRAM);
  const away = path.join(p.dir, "forgejo-away");
  fs.renameSync(path.join(p.dir, "forgejo"), away);
  const gone = p.pulumi(["up", "--yes"]);
  assert.notEqual(gone.code, 0);
  assert.match(gone.out, /the Forgejo provider's code is not at \S*forgejo\/providers\.js: run pulumi in a checkout of this program/);
  assert.deepEqual(
    stateResources(p).map((x) => x.urn),
    before,
  );
  assert.equal(await permission("alice"), "write");
  assert.equal(await gitStatus("alice", aliceToken), 200);
  // With the code back, delete runs it.
  fs.renameSync(away, path.join(p.dir, "forgejo"));
  const del = p.ok(["up", "--yes"]);
  assert.deepEqual(summary(del), { deleted: 3, unchanged: 1 }, del);
  assert.equal(await permission("alice"), "none");
  assert.equal(await gitStatus("alice", aliceToken), 401);
  assert.equal((await g.f.api("GET", `repos/${repo()}/branch_protections/master`)).status, 404);
  assert.deepEqual(stateResources(p), []);
});

/** The first version of components/forgejo, which serialised the whole client into the state (from git). */
function firstVersionFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const f of ["api.ts", "provider.ts", "version.ts"]) {
    const r = git(["-C", ROOT, "show", `${FIRST_VERSION}:components/forgejo/${f}`]);
    assert.equal(r.code, 0, `the first version of the Forgejo provider (git show ${FIRST_VERSION}) is needed for this test: ${r.out}`);
    files[`forgejo-v1/${f}`] = r.stdout;
  }
  return files;
}

test("state of the first version (its code serialised in the state) becomes this version's with one update per resource: no replace, the token kept", async () => {
  for (const [f, text] of Object.entries(firstVersionFiles())) {
    fs.mkdirSync(path.dirname(path.join(p.dir, f)), { recursive: true });
    fs.writeFileSync(path.join(p.dir, f), text);
  }
  setSpec({ users: [{ name: "alice", permission: "write" }], push: ["alice"], merge: ["alice"], rotation: "1" });
  fs.writeFileSync(path.join(p.dir, "index.ts"), PROGRAM.replace("./forgejo/provider", "./forgejo-v1/provider"));
  p.ok(["up", "--yes"]);
  const old = stateResources(p);
  assert.equal(old.length, 3);
  for (const r of old)
    assert.ok(String(r.outputs.__provider).includes("forgejoRequest") && /^1\+/.test(r.outputs.providerVersion), `${r.urn} is first-version state`);
  const token = tokens().alice;
  seenSecrets.push(token);

  fs.writeFileSync(path.join(p.dir, "index.ts"), PROGRAM);
  const pre = p.ok(["preview", "--diff"]);
  assert.deepEqual(summary(pre), { "to update": 3, unchanged: 1 }, pre);
  const up = p.ok(["up", "--yes"]);
  assert.deepEqual(summary(up), { updated: 3, unchanged: 1 }, up);
  for (const r of stateResources(p)) {
    assert.ok(String(r.outputs.__provider).length < 1536, `${r.urn} stores the loader`);
    assert.equal(r.outputs.providerSchema, "2");
    assert.equal(r.outputs.providerVersion, undefined);
  }
  assert.equal(tokens().alice, token, "the token is kept");
  assert.equal(await gitStatus("alice", token), 200);
  assert.equal(await permission("alice"), "write");
  p.ok(["preview", "--expect-no-changes"]);
  fs.writeFileSync(path.join(p.dir, "index.ts"), EMPTY_PROGRAM);
  assert.deepEqual(summary(p.ok(["up", "--yes"])), { deleted: 3, unchanged: 1 });
  assert.equal(await gitStatus("alice", token), 401);
});

test("git with a token the provider made (write:repository fetches and pushes); the credential from the CLI's environment works too", async () => {
  // fresh resources: the earlier ones were deleted above
  fs.writeFileSync(path.join(p.dir, "index.ts"), PROGRAM.replace("./forgejo/provider", path.join(ROOT, "components/forgejo/provider")));
  setSpec({ users: [{ name: "alice", permission: "write" }], push: ["alice"], merge: ["alice"], rotation: "2" });
  p.ok(["up", "--yes"]);
  const t = tokens().alice;
  seenSecrets.push(t);
  const dir = tmp("clone");
  assert.equal(git(["clone", "-q", authUrl(g.f, "alice", t), path.join(dir, "c")]).code, 0);
  assert.equal(git(["-C", path.join(dir, "c"), "commit", "-q", "--allow-empty", "-m", "via provider token"]).code, 0);
  const push = git(["-C", path.join(dir, "c"), "push", "-q", "origin", "master"]);
  assert.equal(push.code, 0, push.out);
  // Where the provider's credential comes from (measured on this CLI): the engine hands the
  // dynamic provider the stack config and records it in the state as the default provider's
  // inputs (secrets as ciphertext, see the audit above); refresh and destroy, which do not run
  // the program, configure the provider from that record.
  const providerInputs = () => JSON.parse(p.ok(["stack", "export"])).deployment.resources.find((r: any) => r.type === "pulumi:providers:pulumi-nodejs").inputs;
  assert.ok(providerInputs()["workstations:forgejoAdminPassword"].ciphertext, "recorded, encrypted");
  p.ok(["config", "rm", "workstations:forgejoAdminPassword"]);
  p.ok(["refresh", "--yes"]); // still the record of the last up
  p.ok(["up", "--yes"]); // records the config without the password (nothing here needs it)
  assert.equal(providerInputs()["workstations:forgejoAdminPassword"], undefined, "no password in the state now");
  const none = p.pulumi(["refresh", "--yes"]);
  assert.notEqual(none.code, 0);
  assert.match(
    none.out,
    /the Forgejo provider has no admin credential: set workstations:forgejoAdminUser and the secret workstations:forgejoAdminPassword \(or FORGEJO_ADMIN_USER\/FORGEJO_ADMIN_PASSWORD in the environment of the pulumi CLI\)/,
  );
  // FORGEJO_ADMIN_PASSWORD in the CLI's environment (CI's way): the engine starts the provider
  // process, which inherits the CLI's environment; it never reaches the state.
  p.env.FORGEJO_ADMIN_PASSWORD = g.f.adminPassword;
  p.ok(["refresh", "--yes"]);
  assert.ok(!p.ok(["stack", "export"]).includes(g.f.adminPassword));
  p.ok(["destroy", "--yes"]);
  assert.equal(await permission("alice"), "none");
});
