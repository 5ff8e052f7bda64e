/**
 * What the protection and the tokens mean for git, over real HTTP against the real Gitea
 * 1.26.3: master's protection and the tokens are made by the Forgejo resources under the real
 * CLI (components/forgejo), the user's side by the program's own scripts
 * (components/scripts/clone.ts) run here as root for a throwaway unix user, exactly as the
 * command resources run them on the devvm.
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { credentialLine, FORGEJO_VERBS } from "../../components/scripts/clone";
import { USER_FUNCS } from "../../components/scripts/shell";
import { cloneScript, gitCredentialsDeliverScript, gitCredentialsRemoveScript } from "../../components/scripts/hostLib";
import { runRemote } from "../../dev/hostlib";
import { authUrl, createLocalUser, Gitea, git, gitOk, LocalUser, project, Project, requireRoot, ROOT, run, startGitea, tmp } from "./lib";

const PROGRAM = `import * as pulumi from "@pulumi/pulumi";
import { ForgejoAccessToken, ForgejoBranchProtection, ForgejoCollaborator } from ${JSON.stringify(path.join(ROOT, "components/forgejo/provider"))};
interface Spec { collaborators: string[]; tokens: string[]; push: string[]; merge: string[]; rotation: string }
const cfg = new pulumi.Config("t");
const url = cfg.require("url");
const repo = cfg.require("repo");
const spec = cfg.requireObject<Spec>("spec");
const collaborators = spec.collaborators.map((u) => new ForgejoCollaborator(\`collab-\${u}\`, { url, repo, user: u, permission: "write" }));
const tokens = spec.tokens.map((u) => new ForgejoAccessToken(\`token-\${u}\`, { url, user: u, tokenName: \`workstations-\${spec.rotation}\` }));
new ForgejoBranchProtection("master", { url, repo, pushWhitelist: spec.push, mergeWhitelist: spec.merge }, { dependsOn: collaborators });
export const tokenValues = Object.fromEntries(spec.tokens.map((u, i) => [u, tokens[i].token]));
`;

let g: Gitea;
let p: Project;
let u: LocalUser;
const repo = () => `${g.f.repo.owner}/${g.f.repo.name}`;
const tokens = () => JSON.parse(p.ok(["stack", "output", "--show-secrets", "--json", "tokenValues"])) as Record<string, string>;
const up = (spec: { collaborators: string[]; tokens: string[]; push: string[]; merge: string[]; rotation: string }) => {
  p.config("t:spec", JSON.stringify(spec));
  p.ok(["up", "--yes"]);
};
/** 200, or 401 when the server refuses the credential (git's HTTP protocol on the private repo). */
const gitStatus = async (user: string, secret: string) =>
  (
    await fetch(`${g.f.url}${repo()}.git/info/refs?service=git-upload-pack`, {
      headers: { Authorization: `Basic ${Buffer.from(`${user}:${secret}`).toString("base64")}` },
    })
  ).status;
/** Runs a generated remote command here, as root, like the command provider runs it over ssh (dev/hostlib.ts). */
const remote = (cmd: string, input = "") => {
  const r = runRemote(cmd, input);
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  return r.stdout;
};
let adminWork = "";

before(async () => {
  requireRoot();
  g = await startGitea("git");
  for (const n of ["alice", "bob"]) await g.user(n);
  p = project("git", PROGRAM);
  p.config("t:url", g.f.url);
  p.config("t:repo", repo());
  p.config("workstations:forgejoAdminUser", g.f.adminUser);
  p.config("workstations:forgejoAdminPassword", g.f.adminPassword, true);
  // alice and the admin (the repo's owner) may push master; bob is a write collaborator only
  up({ collaborators: ["alice", "bob"], tokens: ["alice", "bob"], push: ["alice", g.f.adminUser], merge: ["alice", g.f.adminUser], rotation: "0" });
  u = createLocalUser();
  // The admin's working copy: git-crypt on, one encrypted file (admins hold the key; this test's key stays here).
  adminWork = path.join(tmp("admin"), "w");
  gitOk(["clone", "-q", authUrl(g.f, g.f.adminUser, g.f.adminPassword), adminWork]);
  const crypt = run("git-crypt", ["init"], { cwd: adminWork });
  assert.equal(crypt.code, 0, `git-crypt is needed (apt-get install git-crypt; dev/setup installs it): ${crypt.out}`);
  fs.writeFileSync(path.join(adminWork, ".gitattributes"), "secrets/** filter=git-crypt diff=git-crypt\n");
  fs.mkdirSync(path.join(adminWork, "secrets"));
  fs.writeFileSync(path.join(adminWork, "secrets/vault.txt"), "PLAINTEXT-SECRET-ONE\n");
  gitOk(["add", "."], { cwd: adminWork });
  gitOk(["commit", "-qm", "git-crypt: secrets/"], { cwd: adminWork });
  const push = git(["push", "-q", "origin", "master"], { cwd: adminWork });
  assert.equal(push.code, 0, `the admin is whitelisted: ${push.out}`);
});

after(async () => {
  u?.remove();
  await g?.stop();
});

test("a whitelisted user's push to master is accepted", () => {
  const t = tokens();
  const dir = path.join(tmp("alice"), "c");
  gitOk(["clone", "-q", authUrl(g.f, "alice", t.alice), dir]);
  gitOk(["commit", "-q", "--allow-empty", "-m", "alice on master"], { cwd: dir });
  const r = git(["push", "origin", "master"], { cwd: dir });
  assert.equal(r.code, 0, r.out);
});

test("a write collaborator not on the whitelist is refused on master", () => {
  const t = tokens();
  const dir = path.join(tmp("bob"), "c");
  gitOk(["clone", "-q", authUrl(g.f, "bob", t.bob), dir]);
  gitOk(["commit", "-q", "--allow-empty", "-m", "bob on master"], { cwd: dir });
  const r = git(["push", "origin", "master"], { cwd: dir });
  assert.notEqual(r.code, 0);
  assert.match(r.out, /Not allowed to push to protected branch master/);
});

test("a force push to master is refused for everyone: the whitelisted user and the admin; nobody can delete master", () => {
  const t = tokens();
  for (const [who, secret] of [
    ["alice", t.alice],
    [g.f.adminUser, g.f.adminPassword],
  ] as const) {
    const dir = path.join(tmp(`force-${who}`), "c");
    gitOk(["clone", "-q", authUrl(g.f, who, secret), dir]);
    gitOk(["commit", "-q", "--allow-empty", "-m", `${who} rewrites master`], { cwd: dir });
    gitOk(["push", "-q", "origin", "master"], { cwd: dir }); // a plain push is fine
    gitOk(["reset", "-q", "--hard", "HEAD~1"], { cwd: dir });
    gitOk(["commit", "-q", "--allow-empty", "-m", `${who} rewritten`], { cwd: dir });
    const r = git(["push", "--force", "origin", "master"], { cwd: dir });
    assert.notEqual(r.code, 0, `${who}: ${r.out}`);
    assert.match(r.out, /branch master is protected from force push/, who);
    const d = git(["push", "origin", ":master"], { cwd: dir });
    assert.notEqual(d.code, 0, `${who} deleted master: ${d.out}`);
    assert.match(d.out, /cannot be deleted|protected/, who);
  }
});

test("a user not on the whitelist pushes a branch and opens a pull request", async () => {
  const t = tokens();
  const dir = path.join(tmp("bob-pr"), "c");
  gitOk(["clone", "-q", authUrl(g.f, "bob", t.bob), dir]);
  gitOk(["checkout", "-q", "-b", "bob/change"], { cwd: dir });
  fs.writeFileSync(path.join(dir, "bob.txt"), "bob's change\n");
  gitOk(["add", "bob.txt"], { cwd: dir });
  gitOk(["commit", "-qm", "bob's change"], { cwd: dir });
  const r = git(["push", "origin", "bob/change"], { cwd: dir });
  assert.equal(r.code, 0, r.out);
  const pr = await fetch(`${g.f.url}api/v1/repos/${repo()}/pulls`, {
    method: "POST",
    headers: { Authorization: `token ${t.bob}`, "Content-Type": "application/json" },
    body: JSON.stringify({ head: "bob/change", base: "master", title: "bob's change" }),
  });
  assert.equal(pr.status, 201, await pr.text());
});

test("the token in ~/.git-credentials (0600, the user's) clones ~/code and pushes; the clone is git-crypt-locked", () => {
  const t = tokens();
  const url = g.f.url;
  const out = remote(gitCredentialsDeliverScript(u, url), credentialLine(url, "alice", t.alice));
  assert.doesNotMatch(out, new RegExp(t.alice), "scripts print no secret");
  assert.equal(u.sh("stat -c '%a %U' ~/.git-credentials").stdout.trim(), `600 ${u.name}`);
  const cloned = remote(cloneScript(u, `${url}${repo()}.git`));
  assert.match(cloned, /changed: cloned /);
  assert.doesNotMatch(cloned, new RegExp(t.alice));
  // remote forgejo, master tracking forgejo/master, the store helper in the clone's config
  assert.equal(u.sh("git -C ~/code remote").stdout.trim(), "forgejo");
  assert.equal(u.sh("git -C ~/code rev-parse --abbrev-ref --symbolic-full-name '@{u}'").stdout.trim(), "forgejo/master");
  assert.equal(u.sh("git -C ~/code config credential.helper").stdout.trim(), "store");
  assert.equal(u.sh("stat -c %U ~/code/.git").stdout.trim(), u.name);
  assert.doesNotMatch(u.sh("git -C ~/code remote -v").stdout, /@/, "no credential in the remote URL");
  // encrypted in the repo = encrypted in the clone, and the tree is clean
  const enc = fs.readFileSync(path.join(u.home, "code/secrets/vault.txt"));
  assert.equal(enc.subarray(0, 10).toString("latin1"), "\0GITCRYPT\0");
  assert.ok(!enc.includes("PLAINTEXT-SECRET-ONE"));
  assert.equal(u.sh("git -C ~/code status --porcelain").stdout, "");
  assert.ok(!fs.existsSync(path.join(u.home, "code/.git/git-crypt")), "no git-crypt key in the clone");
  // push as the user, with nothing but ~/.git-credentials (alice is whitelisted)
  const push = u.sh("cd ~/code && echo from-the-clone >> notes.txt && git add notes.txt && git commit -qm 'from ~/code' && git push -q forgejo master 2>&1");
  assert.equal(push.code, 0, push.out);
  // an existing ~/code is never re-cloned, reset or cleaned, whatever its state
  u.sh("cd ~/code && echo dirty >> notes.txt && git checkout -q -b elsewhere");
  const again = remote(cloneScript(u, `${url}${repo()}.git`));
  assert.match(again, /exists; left alone/);
  assert.equal(u.sh("git -C ~/code branch --show-current").stdout.trim(), "elsewhere");
  assert.match(u.sh("git -C ~/code status --porcelain").stdout, /notes\.txt/);
  u.sh("cd ~/code && git checkout -q notes.txt && git checkout -q master");
});

test("the refresh fast-forwards ~/code over HTTP with the stored token; encrypted files stay encrypted", () => {
  gitOk(["pull", "-q", "--ff-only", "origin", "master"], { cwd: adminWork });
  fs.writeFileSync(path.join(adminWork, "secrets/vault.txt"), "PLAINTEXT-SECRET-TWO\n");
  gitOk(["commit", "-qam", "rotate the secret"], { cwd: adminWork });
  gitOk(["push", "-q", "origin", "master"], { cwd: adminWork });
  const head = gitOk(["rev-parse", "HEAD"], { cwd: adminWork });
  const r = u.sh(`bash ${path.join(ROOT, "scripts/agents/workstations-refresh-clone")} ~/code`);
  assert.equal(r.code, 0, r.out);
  assert.match(r.stderr, /master fast-forwarded to forgejo\/master/);
  assert.equal(u.sh("git -C ~/code rev-parse HEAD").stdout.trim(), head);
  const enc = fs.readFileSync(path.join(u.home, "code/secrets/vault.txt"));
  assert.equal(enc.subarray(0, 10).toString("latin1"), "\0GITCRYPT\0");
  assert.ok(!enc.includes("PLAINTEXT-SECRET-TWO"));
  assert.equal(u.sh("git -C ~/code status --porcelain").stdout, "");
});

test("the workspace layout: the infra clone at ~/code/infra and a further repo beside it, refreshed together; a single-layout ~/code is adopted where it is", () => {
  const t = tokens();
  const url = g.f.url;
  const w = createLocalUser("wsws");
  try {
    remote(gitCredentialsDeliverScript(w, url), credentialLine(url, "alice", t.alice));
    const repoUrl = `${url}${repo()}.git`;
    assert.match(remote(cloneScript(w, repoUrl, "code/infra", "code")), /changed: cloned .* into .*\/code\/infra /);
    assert.match(remote(cloneScript(w, repoUrl, "code/tools", "")), /changed: cloned .* into .*\/code\/tools /);
    assert.equal(w.sh("stat -c '%U %a' ~/code ~/code/infra ~/code/tools").stdout.trim(), [`${w.name} 755`, `${w.name} 755`, `${w.name} 755`].join("\n"));
    assert.equal(w.sh("git -C ~/code/infra rev-parse --abbrev-ref --symbolic-full-name '@{u}'").stdout.trim(), "forgejo/master");
    assert.equal(w.sh("ls -A ~/code").stdout.trim().split("\n").sort().join(" "), "infra tools", "no temporary directory left");
    assert.match(remote(cloneScript(w, repoUrl, "code/infra", "code")), /exists; left alone/);
    // the timer's one refresh of ~/code fast-forwards both
    gitOk(["pull", "-q", "--ff-only", "origin", "master"], { cwd: adminWork });
    fs.appendFileSync(path.join(adminWork, "notes.txt"), "for the workspace\n");
    gitOk(["commit", "-qam", "workspace"], { cwd: adminWork });
    gitOk(["push", "-q", "origin", "master"], { cwd: adminWork });
    const head = gitOk(["rev-parse", "HEAD"], { cwd: adminWork });
    const r = w.sh(`bash ${path.join(ROOT, "scripts/agents/workstations-refresh-clone")} ~/code`);
    assert.equal(r.code, 0, r.out);
    for (const d of ["infra", "tools"]) assert.equal(w.sh(`git -C ~/code/${d} rev-parse HEAD`).stdout.trim(), head, `~/code/${d} fast-forwarded`);
  } finally {
    w.remove();
  }
  // u's ~/code is a clone of the single layout: adopted where it is, nothing nested in it.
  const before = u.sh("git -C ~/code rev-parse HEAD; ls -A ~/code | sort").stdout;
  assert.match(remote(cloneScript(u, `${url}${repo()}.git`, "code/infra", "code")), /is a clone already \(the other layout\); left alone where it is/);
  assert.match(runRemote(cloneScript(u, `${url}${repo()}.git`, "code/tools", "")).stderr, /is a git clone; nothing cloned inside it/);
  assert.equal(u.sh("git -C ~/code rev-parse HEAD; ls -A ~/code | sort").stdout, before, "~/code unchanged");
  assert.equal(u.sh("git -C ~/code pull -q --ff-only forgejo master").code, 0, "(u's clone catches up with the commit above for the tests after)");
});

test("suspend: the token is revoked (401) and leaves ~/.git-credentials; ~/code stays; re-activation issues a new token that works, the old one stays dead", async () => {
  const old = tokens().alice;
  // suspend alice: no collaborator, no token, off the whitelists
  up({ collaborators: ["bob"], tokens: ["bob"], push: [g.f.adminUser], merge: [g.f.adminUser], rotation: "0" });
  remote(gitCredentialsRemoveScript(u, g.f.url));
  assert.equal(await gitStatus("alice", old), 401);
  const ls = git(["ls-remote", authUrl(g.f, "alice", old)]);
  assert.notEqual(ls.code, 0);
  assert.match(ls.out, /Authentication failed|401/);
  assert.ok(!fs.existsSync(path.join(u.home, ".git-credentials")) || !fs.readFileSync(path.join(u.home, ".git-credentials"), "utf8").includes(old));
  const fetchAsUser = u.sh("git -C ~/code fetch forgejo 2>&1");
  assert.notEqual(fetchAsUser.code, 0, "the suspended user's clone cannot reach the repo");
  assert.ok(fs.existsSync(path.join(u.home, "code/.git")), "the clone is kept");
  // re-activate
  up({ collaborators: ["alice", "bob"], tokens: ["alice", "bob"], push: ["alice", g.f.adminUser], merge: ["alice", g.f.adminUser], rotation: "0" });
  const fresh = tokens().alice;
  assert.notEqual(fresh, old);
  remote(gitCredentialsDeliverScript(u, g.f.url), credentialLine(g.f.url, "alice", fresh));
  const fetched = u.sh("git -C ~/code fetch -q forgejo && cd ~/code && git commit -q --allow-empty -m back && git push -q forgejo master 2>&1");
  assert.equal(fetched.code, 0, fetched.out);
  assert.equal(await gitStatus("alice", fresh), 200);
  assert.equal(await gitStatus("alice", old), 401);
});

test("the whitelist binds the repo's owner and site admin too (Gitea has no apply_to_admins): off the whitelist, even a plain push is refused", () => {
  up({ collaborators: ["alice", "bob"], tokens: ["alice", "bob"], push: ["alice"], merge: ["alice"], rotation: "0" });
  const dir = path.join(tmp("admin-off"), "c");
  gitOk(["clone", "-q", authUrl(g.f, g.f.adminUser, g.f.adminPassword), dir]);
  gitOk(["commit", "-q", "--allow-empty", "-m", "admin, not whitelisted"], { cwd: dir });
  const r = git(["push", "origin", "master"], { cwd: dir });
  assert.notEqual(r.code, 0, r.out);
  assert.match(r.out, /Not allowed to push to protected branch master/);
  // a branch is fine
  assert.equal(git(["push", "origin", "HEAD:refs/heads/admin-branch"], { cwd: dir }).code, 0);
});

test("the credential and clone verbs pass shellcheck, inner scripts included", () => {
  // each verb as the host library runs it: its parameters, then the helpers it calls (as_user uses $UID_)
  const scripts = FORGEJO_VERBS.map((v) => `${v.params.map((k) => `${k}=x`).join("\n")}\n${USER_FUNCS}\n${v.body}\n`);
  assert.equal(scripts.length, 3);
  const dir = tmp("sc");
  const files: string[] = [];
  scripts.forEach((s, i) => {
    files.push(path.join(dir, `outer-${i}.sh`));
    fs.writeFileSync(files[files.length - 1], `#!/usr/bin/env bash\n${s}`);
    const inner = /<<'EOS'\n([\s\S]*?)\nEOS\n/.exec(s);
    assert.ok(inner, "every script runs its user part from a quoted heredoc");
    files.push(path.join(dir, `inner-${i}.sh`));
    fs.writeFileSync(files[files.length - 1], `#!/usr/bin/env bash\n${inner[1]}`);
  });
  const sc = run("shellcheck", ["-S", "warning", "-s", "bash", ...files]);
  assert.equal(sc.code, 0, sc.out);
});
