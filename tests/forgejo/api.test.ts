/**
 * The pure parts of components/forgejo and components/scripts/clone.ts: which server speaks
 * which dialect (and which versions are refused), the protection body per dialect, the policy
 * check of a rule read back, the preflight's child source, the credential line and the token
 * name. The Forgejo dialect is checked here only: no Forgejo server can be built on these
 * machines (forgejo.org is refused by the module proxy), the Gitea one also against Gitea.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as vm from "node:vm";
import { classifyServer, identityProblem, normNames, PreflightInput, protectionBody, protectionPolicyDrift, sameNames } from "../../components/forgejo/api";
import { tokenName } from "../../components/forgejo";
import { forgejoIdentities, preflightSource } from "../../components/forgejo/preflight";
import { planRoster } from "../../components/plan";
import { parseRoster } from "../../components/roster/load";
import { readExampleRoster } from "../../dev/mocks";
import { credentialHost, credentialLine } from "../../components/scripts/clone";

const URL_ = "https://git.example.internal/";

test("server detection: Gitea >= 1.23 and Forgejo >= 7 are spoken, everything else refused in one line", () => {
  assert.deepEqual(classifyServer(URL_, "1.26.3"), { kind: "gitea", version: "1.26.3", dialect: "gitea" });
  assert.deepEqual(classifyServer(URL_, "1.23.0+dev-12-gabc"), { kind: "gitea", version: "1.23.0+dev-12-gabc", dialect: "gitea" });
  assert.deepEqual(classifyServer(URL_, "11.0.1+gitea-1.22.0"), { kind: "forgejo", version: "11.0.1+gitea-1.22.0", dialect: "forgejo" });
  assert.deepEqual(classifyServer(URL_, "7.0.0+gitea-1.22.0"), { kind: "forgejo", version: "7.0.0+gitea-1.22.0", dialect: "forgejo" });
  // Forgejo before 7 reported a Gitea-like version; /api/forgejo/v1/version tells it apart
  assert.throws(
    () => classifyServer(URL_, "1.21.11-1", "6.0.2+0-gitea-1.21.11"),
    /^Error: Forgejo at https:\/\/git\.example\.internal is version 6\.0\.2\+0-gitea-1\.21\.11: not supported \(this program speaks Forgejo >= 7\.0 and Gitea >= 1\.23\); upgrade the server$/,
  );
  assert.throws(() => classifyServer(URL_, "1.22.6"), /Gitea 1\.22\.6: not supported/);
  assert.throws(() => classifyServer(URL_, "1.19.0"), /Gitea 1\.19\.0: not supported/);
  assert.throws(() => classifyServer(URL_, "development"), /neither Forgejo nor Gitea/);
});

test("protection bodies: the same whitelists, each dialect's way to refuse force push and bind admins", () => {
  const spec = { branch: "master", pushWhitelist: ["ebarzin", "viktor"], mergeWhitelist: ["viktor"] };
  const absent = Symbol("not in the body");
  // Per field: [the Gitea body (created), the Forgejo body (updated)].
  const fields: Record<string, [unknown, unknown]> = {
    enable_push: [true, true],
    enable_push_whitelist: [true, true],
    push_whitelist_usernames: [
      ["ebarzin", "viktor"],
      ["ebarzin", "viktor"],
    ],
    push_whitelist_teams: [[], []],
    push_whitelist_deploy_keys: [true, true],
    enable_merge_whitelist: [true, true],
    merge_whitelist_usernames: [["viktor"], ["viktor"]],
    merge_whitelist_teams: [[], []],
    enable_force_push: [false, absent],
    enable_force_push_allowlist: [false, absent],
    force_push_allowlist_usernames: [[], absent],
    force_push_allowlist_teams: [[], absent],
    force_push_allowlist_deploy_keys: [false, absent],
    block_admin_merge_override: [true, absent],
    apply_to_admins: [absent, true],
    rule_name: ["master", absent], // only when the rule is created
  };
  const body = (i: 0 | 1) => Object.fromEntries(Object.entries(fields).flatMap(([k, v]) => (v[i] === absent ? [] : [[k, v[i]]])));
  assert.deepEqual(protectionBody("gitea", spec, true), body(0));
  assert.deepEqual(protectionBody("forgejo", spec, false), body(1));
  assert.ok(
    !("enable_force_push" in protectionBody("forgejo", spec, true)),
    "Forgejo has no force-push fields (it refuses every force push on a protected branch)",
  );
});

test("policy check of a rule read back: conforming is empty, every departure is named", () => {
  const gitea = {
    enable_push: true,
    enable_push_whitelist: true,
    push_whitelist_deploy_keys: true,
    enable_merge_whitelist: true,
    enable_force_push: false,
    block_admin_merge_override: true,
    push_whitelist_teams: [],
    merge_whitelist_teams: [],
  };
  assert.deepEqual(protectionPolicyDrift("gitea", gitea), []);
  assert.deepEqual(protectionPolicyDrift("gitea", { ...gitea, enable_force_push: true, enable_force_push_allowlist: false }), [
    "enable_force_push is true, wants false",
    "force push is open to everyone with push access",
  ]);
  assert.deepEqual(protectionPolicyDrift("gitea", { ...gitea, push_whitelist_deploy_keys: false, push_whitelist_teams: ["ops"] }), [
    "push_whitelist_deploy_keys is false, wants true",
    'push_whitelist_teams is ["ops"], wants []',
  ]);
  const forgejo = { enable_push: true, enable_push_whitelist: true, push_whitelist_deploy_keys: true, enable_merge_whitelist: true, apply_to_admins: true };
  assert.deepEqual(protectionPolicyDrift("forgejo", forgejo), []);
  assert.deepEqual(protectionPolicyDrift("forgejo", { ...forgejo, apply_to_admins: false }), ["apply_to_admins is false, wants true"]);
});

test("user names compare case-insensitively (Forgejo's rule), so the server's spelling is no drift", () => {
  assert.ok(sameNames(["EBarzin", "viktor"], ["viktor", "ebarzin"]));
  assert.ok(!sameNames(["viktor"], ["viktor", "ebarzin"]));
  assert.deepEqual(normNames(["B", "a", "b"]), ["a", "b"]);
});

test("the preflight's child source is self-contained (no require, no exports) and parses", () => {
  const src = preflightSource();
  assert.doesNotMatch(src, /require\(|exports\.|api_1/);
  assert.doesNotThrow(() => new vm.Script(src, { filename: "forgejo-preflight.js" }));
  // and it runs on its own: a closed port gives the one-line "unreachable" answer
  const r = spawnSync(process.execPath, ["-e", src], {
    input: JSON.stringify({ url: "http://127.0.0.1:1/", repo: "a/b", adminUser: "u", adminPassword: "p", users: [] }),
    encoding: "utf8",
    env: {},
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(JSON.parse(r.stdout).message, /^Forgejo at http:\/\/127\.0\.0\.1:1 is unreachable \(GET \/version: /);
});

test("the ~/.git-credentials line: host as the devvm sees it, user and token encoded; token names carry the rotation", () => {
  assert.deepEqual(credentialHost("http://forgejo.internal:3000/"), { scheme: "http://", host: "forgejo.internal:3000" });
  assert.deepEqual(credentialHost("https://git.example.com/forgejo/"), { scheme: "https://", host: "git.example.com" });
  assert.equal(credentialLine("https://git.example.com/", "e.barzin", "abc123"), "https://e.barzin:abc123@git.example.com\n");
  assert.throws(() => credentialHost("ssh://git.example.com/"), /not an http\(s\) URL/);
  assert.equal(tokenName("0", 0), "workstations-0.0");
  assert.equal(tokenName("2026 Q1", 3), "workstations-2026-Q1.3");
});

test("identity: a token login must be the roster user's own (not the admin user, not the repo owner, no site admin for a non-admin, the roster email)", () => {
  const i: PreflightInput = { url: URL_, repo: "Infra-Org/infra", adminUser: "ForgeAdmin", adminPassword: "x", users: [], identities: [] };
  const emo = { name: "emo", login: "ebarzin", email: "emo@example.com", emailOverride: false, admin: false };
  const account = (email: string, isAdmin = false) => ({ login: "ebarzin", email, is_admin: isAdmin });
  assert.equal(identityProblem(i, emo, account("Emo@Example.com")), undefined, "emails compare case-insensitively");
  assert.equal(
    identityProblem(i, emo, account("viktor@example.com")),
    "roster user emo (forgejo: ebarzin): the Forgejo account ebarzin does not have emo's email emo@example.com; give emo their own Forgejo login in the roster, or, if ebarzin is theirs under another address, set forgejoEmail: <that address> on emo's entry (README \"Forgejo\": the identity check)",
  );
  assert.match(identityProblem(i, emo, account(""))!, /does not have emo's email/, "a hidden email is no match");
  assert.match(
    identityProblem(i, { ...emo, email: "emo@contractor.example", emailOverride: true }, account("viktor@example.com"))!,
    /does not have emo's forgejoEmail emo@contractor\.example/,
  );
  assert.equal(identityProblem(i, { ...emo, email: "emo@contractor.example", emailOverride: true }, account("emo@contractor.example")), undefined);
  assert.equal(
    identityProblem(i, emo, account("emo@example.com", true)),
    "roster user emo (forgejo: ebarzin): ebarzin is a Forgejo site admin and emo's role is not admin; give emo their own Forgejo login in the roster, one that is not a site admin",
  );
  assert.equal(identityProblem(i, { ...emo, admin: true }, account("emo@example.com", true)), undefined, "an admin may be a site admin");
  assert.match(identityProblem(i, emo, { login: "ebarzin", email: "emo@example.com" })!, /did not say whether ebarzin is a site admin/);
  // forgejoAdminUser and the repo's owner, for anyone (admins included), case-insensitively, whatever the email
  for (const login of ["forgeadmin", "FORGEADMIN"])
    assert.match(
      identityProblem(i, { ...emo, login, admin: true }, account("emo@example.com", true))!,
      /^roster user emo \(forgejo: (forgeadmin|FORGEADMIN)\): \1 is workstations:forgejoAdminUser, the site admin the program acts as, and its token would carry a site admin's rights; give emo their own Forgejo login in the roster$/,
    );
  assert.equal(
    identityProblem(i, { ...emo, login: "infra-org", admin: true }, account("emo@example.com")),
    "roster user emo (forgejo: infra-org): infra-org owns the infra repo Infra-Org/infra, and an owner's token can lift master's protection; give emo their own Forgejo login in the roster (or move Infra-Org/infra to an organisation)",
  );
});

test("identity: the users the plan mints a token for, with the email their account must have", () => {
  const roster = parseRoster(readExampleRoster(), "roster.example.yaml").roster!;
  roster.users.find((u) => u.name === "nadia")!.forgejoEmail = "nadia@contractor.example";
  assert.deepEqual(forgejoIdentities(planRoster(roster)), [
    { name: "viktor", login: "viktor", email: "viktor@example.com", emailOverride: false, admin: true },
    { name: "emo", login: "ebarzin", email: "emo@example.com", emailOverride: false, admin: false },
    { name: "nadia", login: "nadia", email: "nadia@contractor.example", emailOverride: true, admin: false },
  ]);
});
