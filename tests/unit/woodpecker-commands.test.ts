/**
 * "The pipeline's commands run as written": the `preview` workflow's steps, taken from
 * .woodpecker/preview.yaml, run in order in a clean clone of this repository (HEAD plus the
 * working changes, committed in a scratch repository, then cloned), with the environment a
 * fork's pull request has: Woodpecker's built-in variables and no secret at all. Every check
 * step must pass, the access diff must show the pull request's change, and the preview step
 * must print its one "skipped" line and succeed.
 *
 * Honest about the differences from a real agent (tests/fixtures/woodpecker.ts): the commands
 * run on this machine instead of in the images; `npm ci` runs as written but with
 * npm_config_offline=true, from this machine's npm cache (as an agent with a warm cache
 * would); the clone is `git clone` of a local repository (what plugin-git's full clone with
 * fetch_target_branch gives: the head checked out, origin/master present).
 * The unit tests run inside the clone too (`npm run test:unit`); this file skips itself there.
 * The same workflows on a real Woodpecker (a branch push's preview with the secrets, the
 * pull request, the deploy): tests/woodpecker.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as YAML from "yaml";
import { commandsOf, GIT_ENV, loadWorkflows, runWorkflow, snapshotRepo, stepsOf } from "../fixtures/woodpecker";
import { privateTmp, tempDir } from "../../dev/tmp";

// Inside a pipeline this test does not run the preview again: in its own clone (the nested
// run below sets WORKSTATIONS_PIPELINE_TEST) or in a real Woodpecker step (CI=woodpecker,
// tests/woodpecker), where the pipeline itself is the real run.
const NESTED = process.env.WORKSTATIONS_PIPELINE_TEST === "1" || process.env.CI === "woodpecker";

test("deploy runs the same check steps as preview, so running preview's runs deploy's", () => {
  const wf = loadWorkflows();
  const checks = (name: string, last: string) => {
    const steps = stepsOf(wf.get(name)!);
    return steps
      .slice(
        0,
        steps.findIndex((s) => s.name === last),
      )
      .map((s) => ({ name: s.name, image: s.image, commands: commandsOf(s) }));
  };
  assert.deepEqual(checks("deploy", "up"), checks("preview", "preview"));
});

test(
  "the preview workflow's commands, as written, in a clean clone with a fork's pull-request environment",
  { skip: NESTED ? "inside a pipeline (this test's own clone, or a Woodpecker step)" : false, timeout: 900_000 },
  async () => {
    const src = snapshotRepo();
    const git = (dir: string, ...a: string[]) => execFileSync("git", ["-C", dir, ...a], { encoding: "utf8", env: { ...process.env, ...GIT_ENV } }).trim();
    // The fork's change: suspend the roster's first active non-admin.
    git(src, "checkout", "-qb", "fork-change");
    const rosterFile = path.join(src, "roster.yaml");
    const doc = YAML.parse(fs.readFileSync(rosterFile, "utf8"));
    const victim = doc.users.find((u: { role: string; state?: string }) => u.role !== "admin" && (u.state ?? "active") === "active");
    assert.ok(victim, "the roster has an active non-admin");
    victim.state = "suspended";
    fs.writeFileSync(rosterFile, YAML.stringify(doc));
    git(src, "commit", "-qam", "suspend a user");
    const clone = tempDir("ws-pipe-clone-");
    execFileSync("git", ["clone", "-q", "--no-checkout", src, clone]);
    git(clone, "checkout", "-q", "--detach", "origin/fork-change");
    const sha = git(clone, "rev-parse", "HEAD");

    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? os.homedir(),
      TMPDIR: privateTmp(clone),
      LANG: "C.UTF-8",
      npm_config_offline: "true",
      WORKSTATIONS_PIPELINE_TEST: "1",
      CI_REPO: "forker/infra",
      CI_REPO_DEFAULT_BRANCH: "master",
      CI_COMMIT_SHA: sha,
      CI_COMMIT_REF: "refs/pull/7/head",
      CI_COMMIT_TARGET_BRANCH: "master",
      CI_COMMIT_SOURCE_BRANCH: "fork-change",
      CI_COMMIT_PULL_REQUEST: "7",
      CI_COMMIT_MESSAGE: "suspend a user",
      CI_PIPELINE_AUTHOR: "forker",
      CI_PIPELINE_URL: "https://ci.example.test/repos/3/pipeline/99",
    };
    const log: string[] = [];
    const res = await runWorkflow(loadWorkflows().get("preview")!, {
      cwd: clone,
      event: "pull_request",
      branch: "master", // Woodpecker: CI_COMMIT_BRANCH is the target branch on a pull request
      env,
      secrets: undefined, // none: a step that referenced one would throw, as Woodpecker fails the pipeline
      timeoutMs: 600_000,
      onStep: (s) => log.push(`${s.name}: exit ${s.code}`),
    });
    const byName = new Map(res.steps.map((s) => [s.name, s]));
    const show = (n: string) => {
      const s = byName.get(n);
      return s ? `${n} exit ${s.code}\n--- stdout\n${s.stdout.slice(-4000)}\n--- stderr\n${s.stderr.slice(-4000)}` : `${n}: not run`;
    };
    for (const n of ["install", "roster-check", "access-diff", "unit-tests", "preview-pull-request"]) {
      assert.equal(byName.get(n)?.ran, true, `${n} ran\n${log.join("\n")}`);
      assert.equal(byName.get(n)?.code, 0, show(n));
    }
    assert.equal(byName.get("preview")?.ran, false, "the step with secrets does not run on a pull request");
    assert.equal(res.status, "success");
    assert.match(byName.get("roster-check")!.stdout, /roster\.yaml: ok/);
    assert.match(byName.get("access-diff")!.stdout, new RegExp(`^${victim.name} \\(uid ${victim.uid}\\): suspended$`, "m"), show("access-diff"));
    assert.match(byName.get("unit-tests")!.stdout, /^# fail 0$/m, show("unit-tests"));
    assert.ok(Number(/^# pass (\d+)$/m.exec(byName.get("unit-tests")!.stdout)?.[1]) >= 30, show("unit-tests"));
    assert.match(byName.get("unit-tests")!.stdout, /^# skipped 1$/m, "only this file skips itself in the clone");
    const skipped = byName
      .get("preview-pull-request")!
      .stdout.split("\n")
      .filter((l) => l.startsWith("preview skipped:"));
    assert.equal(skipped.length, 1, show("preview-pull-request"));
    assert.equal(
      skipped[0],
      "preview skipped: this pipeline has no deploy secrets (event pull_request, pull request #7: Woodpecker gives no secret to a pull_request pipeline, a fork's included); the checks above ran; a branch pushed to this repository gets the preview",
    );
    assert.ok(!/pulumi (preview|config)/.test(byName.get("preview-pull-request")!.stdout.replace(/^\+ .*$/gm, "")), "nothing after the skip line ran");
    fs.rmSync(src, { recursive: true, force: true });
    fs.rmSync(clone, { recursive: true, force: true });
  },
);

test("the steps that run the engine give it a temp dir of their own, removed when the step ends", async () => {
  // The kubernetes provider writes the admin kubeconfig it is given into a new
  // $TMPDIR/kubeconfigNNN at every run and never removes it; the stand-in pulumi does the same.
  const dir = tempDir("ws-pipe-tmp-");
  const bin = path.join(dir, "bin");
  const outer = path.join(dir, "agent-tmp");
  const log = path.join(dir, "tmpdirs.log");
  fs.mkdirSync(bin);
  fs.mkdirSync(outer);
  fs.writeFileSync(
    path.join(bin, "pulumi"),
    `#!/bin/sh\nprintf '%s\\n' "$TMPDIR" >> '${log}'\nprintf 'admin credential\\n' > "$(mktemp "\${TMPDIR:-/tmp}/kubeconfigXXXXXXXXX")"\n`,
    { mode: 0o755 },
  );
  fs.writeFileSync(path.join(bin, "npm"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  const secrets = Object.fromEntries(
    [
      "pulumi_backend_url",
      "pulumi_config_passphrase",
      "state_access_key_id",
      "state_secret_access_key",
      "devvm_ssh_private_key",
      "vault_token",
      "forgejo_admin_password",
      "slack_webhook",
    ].map((s) => [s, `${s}-value`]),
  );
  const env = { PATH: `${bin}:/usr/bin:/bin`, HOME: dir, TMPDIR: outer, CI_PIPELINE_AUTHOR: "admin" };
  for (const [name, from] of [
    ["deploy", "up"],
    ["preview", "preview"],
  ]) {
    const res = await runWorkflow(loadWorkflows().get(name)!, {
      cwd: dir,
      event: "push",
      branch: name === "deploy" ? "master" : "topic",
      env,
      secrets,
      from,
      timeoutMs: 60_000,
    });
    const step = res.steps.find((s) => s.name === from)!;
    assert.equal(step.code, 0, `${name}/${from}: ${step.stderr}`);
  }
  const used = fs.readFileSync(log, "utf8").trim().split("\n");
  assert.equal(used.length, 4, "pulumi config set and pulumi up/preview, in each workflow");
  for (const t of used) {
    assert.ok(t.startsWith(`${outer}/`), `the engine's TMPDIR ${t} is a new dir under the agent's`);
    assert.equal(fs.existsSync(t), false, `${t} is gone after its step`);
  }
  assert.deepEqual(fs.readdirSync(outer), [], "nothing is left in the agent's temp dir");
});
