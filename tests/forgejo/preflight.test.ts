/**
 * Bad Forgejo input under the real Pulumi CLI, with the whole program (a copy of the project)
 * and the real Gitea: an unreachable URL, a wrong admin password, a missing infra repo and a
 * roster user missing on the server each stop `pulumi preview` (and `up`) with one line naming
 * the URL, repo or users, before any resource exists. With good config the preflight passes
 * and says what it found; without Forgejo config the Forgejo parts are off, said once.
 *
 * The identity check (issue 19): a roster pull request must not hand its author another
 * person's Forgejo token. A login whose account email is not the roster's (without the
 * `forgejoEmail` exception), a site admin for a non-admin role, `forgejoAdminUser` and the
 * infra repo's owner are each refused in one line naming the user and login: through the CLI
 * for the first, and for all of them by the preflight itself (`runPreflight`, the child process
 * the program runs) with the input the program builds from the plan.
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { freePort } from "../../dev/services";
import { forgejoIdentities, runPreflight } from "../../components/forgejo/preflight";
import { grantedForgejoUsers } from "../../components/forgejo";
import { planRoster } from "../../components/plan";
import { parseRoster } from "../../components/roster/load";
import { cliEnv, Gitea, ROOT, run, Run, startGitea, tmp } from "./lib";

let g: Gitea;
let work = "";
let env: NodeJS.ProcessEnv = {};

const pulumi = (args: string[]): Run => run("pulumi", ["--non-interactive", "--color", "never", ...args], { cwd: work, env });
const set = (k: string, v: string, secret = false) =>
  assert.equal(pulumi(["config", "set", ...(secret ? ["--secret"] : []), `workstations:${k}`, "--", v]).code, 0);
const rm = (k: string) => pulumi(["config", "rm", `workstations:${k}`]);
const rosterText = (edit: (d: any) => void = () => undefined) => {
  const d = YAML.parse(fs.readFileSync(path.join(ROOT, "roster.example.yaml"), "utf8"));
  edit(d);
  return YAML.stringify(d);
};
const writeRoster = (edit: (d: any) => void = () => undefined) => fs.writeFileSync(path.join(work, "roster.yaml"), rosterText(edit));
const emo = (d: any) => d.users.find((u: any) => u.name === "emo");
const created = () => {
  const exp = JSON.parse(pulumi(["stack", "export"]).stdout || "{}");
  return (exp.deployment?.resources ?? []).filter((r: any) => r.type !== "pulumi:pulumi:Stack" && !r.type.startsWith("pulumi:providers:"));
};
/** The run failed with exactly this one message (printed once as the diagnostic, no stack trace). */
function failsWithOneLine(r: Run, message: RegExp) {
  assert.notEqual(r.code, 0, r.out);
  const errors = [
    ...new Set(
      r.out
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => /^error: /.test(l)),
    ),
  ];
  assert.equal(errors.length, 1, `one error line:\n${r.out}`);
  assert.match(errors[0], message);
  assert.match(errors[0], /; nothing was applied$/);
  assert.doesNotMatch(r.out, /unhandled exception|    at /, "no stack trace");
  assert.deepEqual(created(), [], "nothing was created");
}

before(async () => {
  env = { ...cliEnv(), VAULT_TOKEN: "unused" };
  g = await startGitea("preflight");
  // The roster's Forgejo accounts, each with its roster email (what the identity check compares).
  for (const [login, email] of [
    ["viktor", "viktor@example.com"],
    ["ebarzin", "emo@example.com"],
    ["nadia", "nadia@example.com"],
    // Accounts that are not emo's: an outsider, a site admin, the owner of a second repo, and
    // emo's own second account under a contractor address (the forgejoEmail exception).
    ["mallory", "mallory@example.com"],
    ["siteadm", "siteadm@example.com"],
    ["repoowner", "repoowner@example.com"],
    ["emo-contractor", "emo@contractor.example"],
  ])
    await g.f.createUser(login, email);
  const admin = await g.f.api("PATCH", "admin/users/siteadm", { admin: true, login_name: "siteadm", source_id: 0 });
  assert.equal(admin.status, 200, JSON.stringify(admin.json));
  const repo = await g.f.api("POST", "admin/users/repoowner/repos", { name: "infra2", auto_init: true, default_branch: "master", private: true });
  assert.equal(repo.status, 201, JSON.stringify(repo.json));
  work = tmp("preflight-project");
  for (const f of ["Pulumi.yaml", "index.ts", "tsconfig.json", "tsconfig.pulumi.json", "package.json", "components", "config", "scripts"])
    fs.cpSync(path.join(ROOT, f), path.join(work, f), { recursive: true, filter: (src) => !src.split(path.sep).includes("dev") });
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(work, "node_modules"));
  fs.mkdirSync(path.join(work, "state"));
  Object.assign(env, { PULUMI_BACKEND_URL: `file://${path.join(work, "state")}`, PULUMI_CONFIG_PASSPHRASE: "forgejo-preflight-test" });
  assert.equal(pulumi(["stack", "init", "fj"]).code, 0);
  set("host", "127.0.0.1");
  set("hostKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyForMocksOnly0000000000000000000");
  set("sshPrivateKey", "not-a-key", true);
  set("vaultAddress", "http://127.0.0.1:9");
  set("claudeClientId", "preflight-test");
  set("forgejoUrl", g.f.url);
  set("forgejoRepo", `${g.f.repo.owner}/${g.f.repo.name}`);
  set("forgejoAdminUser", g.f.adminUser);
  set("forgejoAdminPassword", g.f.adminPassword, true);
  writeRoster();
});

after(async () => {
  await g?.stop();
});

test("Forgejo unreachable: one line naming the URL, for preview and up; nothing created", async () => {
  const dead = `http://127.0.0.1:${await freePort()}/`;
  set("forgejoUrl", dead);
  try {
    for (const cmd of [["preview"], ["up", "--yes"]])
      failsWithOneLine(
        pulumi(cmd),
        new RegExp(`^error: Forgejo at ${dead.replace(/\/$/, "").replace(/\./g, "\\.")} is unreachable \\(GET /version: ECONNREFUSED\\)`),
      );
  } finally {
    set("forgejoUrl", g.f.url);
  }
});

test("a wrong admin credential: one line naming the URL and the admin", () => {
  set("forgejoAdminPassword", "wrong-password", true);
  try {
    failsWithOneLine(
      pulumi(["preview"]),
      new RegExp(`^error: Forgejo at ${g.f.url.replace(/\/$/, "").replace(/\./g, "\\.")} refused the admin credential of ${g.f.adminUser} \\(HTTP 401\\)`),
    );
  } finally {
    set("forgejoAdminPassword", g.f.adminPassword, true);
  }
});

test("the infra repo missing: one line naming the repo", () => {
  set("forgejoRepo", `${g.f.repo.owner}/no-such-repo`);
  try {
    failsWithOneLine(
      pulumi(["preview"]),
      new RegExp(`^error: Forgejo at .*: the infra repo ${g.f.repo.owner}/no-such-repo does not exist \\(workstations:forgejoRepo\\)`),
    );
  } finally {
    set("forgejoRepo", `${g.f.repo.owner}/${g.f.repo.name}`);
  }
});

test("roster forgejo users missing on the server: one line naming all of them", () => {
  writeRoster((d) => {
    d.users.find((u: any) => u.name === "emo").forgejo = "ebarzin-missing";
    d.users.find((u: any) => u.name === "nadia").forgejo = "nadia-missing";
  });
  try {
    failsWithOneLine(pulumi(["preview"]), /^error: Forgejo at .*: roster forgejo users ebarzin-missing, nadia-missing do not exist; create the accounts/);
  } finally {
    writeRoster();
  }
});

/**
 * With good input the preflight passes and the run goes on to the resources. On these machines
 * it then stops at the first resource of a provider plugin that is not obtainable here (vault,
 * command; README "Toolchain"). Whether the CLI still prints the program's info lines of such a
 * failed run depends on timing (measured: sometimes it does not), so they are checked when
 * shown; "said once" and the exact lines are asserted under mocks in mocks.test.ts.
 */
function passesPreflight(r: Run, said?: RegExp) {
  assert.doesNotMatch(r.out, /error: Forgejo|nothing was applied|roster forgejo user/, r.out);
  if (r.code !== 0) assert.match(r.out, /no resource plugin 'pulumi-resource-(vault|command)'/, r.out);
  // When the CLI does show the program's info lines, the Forgejo one is what it should be, once.
  const lines = [
    ...new Set(
      r.out
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => /^Forgejo/.test(l)),
    ),
  ];
  assert.ok(lines.length <= 1, lines.join("\n"));
  if (lines.length && said) assert.match(lines[0], said);
}

test("a suspended user's Forgejo account need not exist (no grant to check)", () => {
  writeRoster((d) => {
    const nadia = d.users.find((u: any) => u.name === "nadia");
    nadia.state = "suspended";
    nadia.forgejo = "nadia-missing";
  });
  try {
    passesPreflight(
      pulumi(["preview"]),
      /^Forgejo at .*: gitea 1\.26\.3, repo forgeadmin\/infra, 2 roster user\(s\) present, 2 token login\(s\) checked against the roster$/,
    );
  } finally {
    writeRoster();
  }
});

test("good config: the preflight passes and the run goes on to the resources", () => {
  passesPreflight(
    pulumi(["preview"]),
    /^Forgejo at .*: gitea 1\.26\.3, repo forgeadmin\/infra, 3 roster user\(s\) present, 3 token login\(s\) checked against the roster$/,
  );
});

/** The preflight as the program runs it (the child process), on the input it builds from `roster`. */
function preflightOf(roster: string, repo = `${g.f.repo.owner}/${g.f.repo.name}`) {
  const r = parseRoster(roster, "roster.yaml");
  assert.ok(r.roster, JSON.stringify(r.problems));
  const plan = planRoster(r.roster);
  return runPreflight({
    url: g.f.url,
    repo,
    adminUser: g.f.adminUser,
    adminPassword: g.f.adminPassword,
    users: grantedForgejoUsers(plan),
    identities: forgejoIdentities(plan),
  });
}

test("identity under the CLI: a roster entry naming another person's Forgejo login stops the preview in one line", () => {
  writeRoster((d) => (emo(d).forgejo = "mallory"));
  try {
    failsWithOneLine(
      pulumi(["preview"]),
      /^error: Forgejo at .*: roster user emo \(forgejo: mallory\): the Forgejo account mallory does not have emo's email emo@example\.com; give emo their own Forgejo login in the roster, or, if mallory is theirs under another address, set forgejoEmail: <that address> on emo's entry/,
    );
  } finally {
    writeRoster();
  }
});

// (Another roster entry's login is refused by the roster checker already: forgejo logins are unique.)
test("identity on the real Gitea: another's login, a site admin, forgejoAdminUser and the repo owner are refused; the forgejoEmail exception passes", () => {
  const refused: Array<[string, string, RegExp, string?]> = [
    ["an outsider's login", "mallory", /roster user emo \(forgejo: mallory\): the Forgejo account mallory does not have emo's email emo@example\.com; /],
    ["a site admin for a power-user", "siteadm", /roster user emo \(forgejo: siteadm\): siteadm is a Forgejo site admin and emo's role is not admin; /],
    ["forgejoAdminUser", g.f.adminUser, new RegExp(`roster user emo \\(forgejo: ${g.f.adminUser}\\): ${g.f.adminUser} is workstations:forgejoAdminUser`)],
    [
      "the infra repo's owner",
      "repoowner",
      /roster user emo \(forgejo: repoowner\): repoowner owns the infra repo repoowner\/infra2, and an owner's token can lift master's protection/,
      "repoowner/infra2",
    ],
    ["emo's second account without the exception", "emo-contractor", /the Forgejo account emo-contractor does not have emo's email emo@example\.com/],
  ];
  for (const [what, login, re, repo] of refused) {
    const r = preflightOf(
      rosterText((d) => (emo(d).forgejo = login)),
      repo,
    );
    assert.equal(r.ok, false, `${what}: ${r.message}`);
    assert.match(r.message, re, what);
    assert.doesNotMatch(r.message, /\n/, `${what}: one line`);
    assert.doesNotMatch(r.message, /mallory@|siteadm@|repoowner@|contractor\.example/, `${what}: no other account's email is printed`);
  }
  // Every problem of the roster at once, in one line, by roster name.
  const two = preflightOf(
    rosterText((d) => {
      emo(d).forgejo = "mallory";
      d.users.find((u: any) => u.name === "nadia").forgejo = "siteadm";
    }),
  );
  assert.match(
    two.message,
    /^Forgejo at .*: roster user emo \(forgejo: mallory\): .*; roster user nadia \(forgejo: siteadm\): siteadm is a Forgejo site admin/,
  );
  // An admin may hold a site admin's login (siteadm's account has its own address: viktor's entry names it).
  const adminOk = preflightOf(rosterText((d) => Object.assign(d.users[0], { forgejo: "siteadm", forgejoEmail: "siteadm@example.com" })));
  assert.equal(adminOk.ok, true, adminOk.message);
  // The documented exception: emo's own account under another address.
  const exception = preflightOf(rosterText((d) => Object.assign(emo(d), { forgejo: "emo-contractor", forgejoEmail: "emo@contractor.example" })));
  assert.equal(exception.ok, true, exception.message);
  assert.match(exception.message, /3 token login\(s\) checked against the roster$/);
  // The example roster as it is: every login is its user's.
  assert.equal(preflightOf(rosterText()).ok, true);
});

test("a half Forgejo config: the exact pulumi config set command, nothing created", () => {
  rm("forgejoRepo");
  try {
    const r = pulumi(["preview"]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.out,
      /Missing required config key: workstations:forgejoRepo\. Set it with:\s+pulumi config set --stack fj workstations:forgejoRepo viktor\/infra/,
    );
    assert.deepEqual(created(), []);
  } finally {
    set("forgejoRepo", `${g.f.repo.owner}/${g.f.repo.name}`);
  }
});

test("without Forgejo config nothing Forgejo-related runs or fails", () => {
  for (const k of ["forgejoUrl", "forgejoRepo", "forgejoAdminUser", "forgejoAdminPassword"]) rm(k);
  passesPreflight(pulumi(["preview"]), /^Forgejo: off \(workstations:forgejoUrl is not set\)/);
});
