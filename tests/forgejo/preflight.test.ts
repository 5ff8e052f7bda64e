/**
 * Bad Forgejo input under the real Pulumi CLI, with the whole program (a copy of the project)
 * and the real Gitea: an unreachable URL, a wrong admin password, a missing infra repo and a
 * roster user missing on the server each stop `pulumi preview` (and `up`) with one line naming
 * the URL, repo or users, before any resource exists. With good config the preflight passes
 * and says what it found; without Forgejo config the Forgejo parts are off, said once.
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { freePort } from "../../dev/services";
import { cliEnv, Gitea, ROOT, run, Run, startGitea, tmp } from "./lib";

let g: Gitea;
let work = "";
let env: NodeJS.ProcessEnv = {};

const pulumi = (args: string[]): Run => run("pulumi", ["--non-interactive", "--color", "never", ...args], { cwd: work, env });
const set = (k: string, v: string, secret = false) =>
  assert.equal(pulumi(["config", "set", ...(secret ? ["--secret"] : []), `workstations:${k}`, "--", v]).code, 0);
const rm = (k: string) => pulumi(["config", "rm", `workstations:${k}`]);
const writeRoster = (edit: (d: any) => void = () => undefined) => {
  const d = YAML.parse(fs.readFileSync(path.join(ROOT, "roster.example.yaml"), "utf8"));
  edit(d);
  fs.writeFileSync(path.join(work, "roster.yaml"), YAML.stringify(d));
};
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
  for (const u of ["viktor", "ebarzin", "nadia"]) await g.user(u);
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
    passesPreflight(pulumi(["preview"]), /^Forgejo at .*: gitea 1\.26\.3, repo forgeadmin\/infra, 2 roster user\(s\) present$/);
  } finally {
    writeRoster();
  }
});

test("good config: the preflight passes and the run goes on to the resources", () => {
  passesPreflight(pulumi(["preview"]), /^Forgejo at .*: gitea 1\.26\.3, repo forgeadmin\/infra, 3 roster user\(s\) present$/);
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
