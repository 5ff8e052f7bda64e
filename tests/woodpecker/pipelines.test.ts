/**
 * The workflows of .woodpecker/ on a real Woodpecker 3.17.0 (dev/woodpecker.ts): server on
 * SQLite with the toolchain's Gitea as forge, one agent with the local backend, this
 * repository (HEAD plus working changes, with the example roster and stack devvm pointing at
 * a booted nspawn test host and a Vault dev server) pushed to viktor/infra, the secrets added
 * with woodpecker-cli. Gitea's webhooks start every pipeline; nothing is called by hand.
 *
 * - a pushed branch runs `preview` with the secrets (pulumi preview of stack devvm) and its
 *   pull request runs the same checks without any secret, saying the preview was skipped;
 * - merging the pull request (a push to master) runs `deploy`: pulumi up against the test
 *   host; the next `pulumi preview` shows no changes;
 * - two master pushes in a row: the second deploy waits, `up` never runs twice at once;
 * - of those, the admin's push posts nothing and the non-admin's posts exactly one message
 *   at the fake Slack.
 * Under CI=true a missing prerequisite (Woodpecker, Gitea, the Pulumi CLI and plugins, Vault)
 * fails the suite; elsewhere it says SKIPPED and why.
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { run } from "../../dev/testhost/testhost";
import { DeployEnv, REPO_ROOT, startDeployEnv, woodpeckerMissing, WpPipeline } from "../../dev/woodpecker";

const why = woodpeckerMissing();
const skip = why && process.env.CI !== "true" ? `SKIPPED (not under CI): ${why}` : false;
const roster = YAML.parse(fs.readFileSync(path.join(REPO_ROOT, "roster.example.yaml"), "utf8"));
const MIN = 60_000;

let env: DeployEnv;
before(
  async () => {
    if (skip) return;
    env = await startDeployEnv({ name: "suite", roster });
  },
  { timeout: 15 * MIN },
);
after(async () => {
  if (env) await env.stop();
});

const stepOf = (p: WpPipeline, name: string) => p.workflows?.flatMap((w) => w.children ?? []).find((s) => s.name === name);
const show = (p: WpPipeline, logs: Map<string, string>) =>
  `pipeline #${p.number} ${p.event} ${p.status}${p.errors?.length ? ` errors: ${JSON.stringify(p.errors)}` : ""}\n` +
  [...logs].map(([n, l]) => `--- ${n} (${stepOf(p, n)?.state}, exit ${stepOf(p, n)?.exit_code})\n${l.slice(-3000)}`).join("\n");

function assertNoSecret(env: DeployEnv, logs: Map<string, string>): void {
  for (const [name, log] of logs) for (const s of env.secrets) assert.ok(!log.includes(s), `a secret appears in the log of step ${name}`);
}

/** The lines a step printed itself (Woodpecker echoes each command as `+ …` first). */
const printed = (log: string) => log.split("\n").filter((l) => !l.startsWith("+ "));

// The branch and its pull request run at once (the agent takes two workflows).
let branchRun: Promise<{ push: WpPipeline; pr: WpPipeline; prIndex: number }> | undefined;
function branchAndPullRequest(): Promise<{ push: WpPipeline; pr: WpPipeline; prIndex: number }> {
  branchRun ??= (async () => {
    env.git("checkout", "-qb", "suspend-nadia");
    const sha = env.commitRoster("roster: suspend nadia", (r) => (r.users.find((u: { name: string }) => u.name === "nadia").state = "suspended"));
    env.push("suspend-nadia", "admin");
    const opened = await env.forge.api("POST", `repos/${env.forge.repo.owner}/${env.forge.repo.name}/pulls`, {
      head: "suspend-nadia",
      base: "master",
      title: "roster: suspend nadia",
    });
    assert.equal(opened.status, 201, JSON.stringify(opened.json));
    const [push, pr] = await Promise.all([env.finished(sha, "push"), env.finished(sha, "pull_request")]);
    return { push, pr, prIndex: (opened.json as { number: number }).number };
  })();
  return branchRun;
}

test("a pull request runs preview with no secrets: the checks pass and the preview says it was skipped", { skip, timeout: 40 * MIN }, async () => {
  const { pr } = await branchAndPullRequest();
  const logs = await env.logs(pr);
  assert.equal(pr.status, "success", show(pr, logs));
  assert.deepEqual(
    pr.workflows?.map((w) => w.name),
    ["preview"],
    "only the preview workflow runs on a pull request",
  );
  for (const n of ["git", "install", "access-diff", "roster-check", "unit-tests", "preview-pull-request"])
    assert.equal(stepOf(pr, n)?.state, "success", `${n}\n${show(pr, logs)}`);
  assert.notEqual(stepOf(pr, "preview")?.state, "success", "the step with secrets does not run on a pull request");
  assert.match(logs.get("access-diff")!, /^nadia \(uid 2002\): suspended$/m, "the access diff of the pull request against master");
  const skipped = printed(logs.get("preview-pull-request")!).filter((l) => l.startsWith("preview skipped:"));
  assert.equal(skipped.length, 1, show(pr, logs));
  assert.match(skipped[0], /^preview skipped: this pipeline has no deploy secrets \(event pull_request, pull request #\d+: /);
  assert.ok(!/Previewing update/.test(logs.get("preview-pull-request")!), "pulumi preview did not run");
  assertNoSecret(env, logs);
});

test("a push to a branch runs the preview with the secrets: pulumi preview of stack devvm, never `preview skipped`", { skip, timeout: 40 * MIN }, async () => {
  const { push } = await branchAndPullRequest();
  const logs = await env.logs(push);
  assert.equal(push.status, "success", show(push, logs));
  assert.equal(stepOf(push, "preview")?.state, "success", show(push, logs));
  assert.notEqual(stepOf(push, "preview-pull-request")?.state, "success");
  const preview = logs.get("preview")!;
  assert.ok(!preview.includes("preview skipped"), `the secrets were set, yet the log says preview skipped:\n${preview.slice(0, 3000)}`);
  assert.match(preview, /Previewing update \(devvm\)/);
  for (const u of ["viktor", "emo", "nadia", "sam"]) assert.match(preview, new RegExp(`UserWorkstation.*\\b${u}\\b`), `${u} in the preview`);
  assert.match(preview, /Resources:[\s\S]*to create/, "nothing is deployed yet: the preview creates the workstations");
  // the drift report under the preview (npm run drift -- --ci): there is no deploy yet to drift from
  assert.match(preview, /drift on \S+ since the last deploy|drift: not checked/, preview.slice(-2000));
  assertNoSecret(env, logs);
});

test(
  "merging the pull request (a push to master) runs deploy against the test host; the next pulumi preview shows no changes",
  { skip, timeout: 40 * MIN },
  async () => {
    const { prIndex } = await branchAndPullRequest();
    const merged = await env.forge.api("POST", `repos/${env.forge.repo.owner}/${env.forge.repo.name}/pulls/${prIndex}/merge`, { Do: "merge" });
    assert.equal(merged.status, 200, JSON.stringify(merged.json));
    env.git("fetch", "-q", "origin");
    env.git("checkout", "-q", "master");
    env.git("reset", "-q", "--hard", "origin/master");
    const head = env.git("rev-parse", "HEAD");
    const p = await env.finished(head, "push");
    const logs = await env.logs(p);
    assert.equal(p.status, "success", show(p, logs));
    assert.deepEqual(
      p.workflows?.map((w) => w.name),
      ["deploy"],
    );
    assert.equal(stepOf(p, "up")?.state, "success", show(p, logs));
    // A step whose `when` does not match is not compiled into the pipeline at all.
    assert.equal(stepOf(p, "unit-tests"), undefined, "a push that changes only roster.yaml deploys without the unit tests");
    assert.match(logs.get("up")!, /Updating \(devvm\)[\s\S]*Resources:[\s\S]*created/);
    assert.ok(!printed(logs.get("up")!).some((l) => l.includes("deploy stopped")));
    assert.match(logs.get("notify-nonadmin-push")!, /notify-nonadmin-push: viktor is an admin/, "the merge was viktor's: nothing to send");
    assertNoSecret(env, logs);
    const accounts = await run(env.host, "getent passwd viktor emo nadia sam | cut -d: -f1,3");
    assert.deepEqual(accounts.stdout.trim().split("\n"), ["viktor:2000", "emo:2001", "nadia:2002", "sam:2003"]);
    assert.equal((await run(env.host, "getent shadow nadia | cut -d: -f8")).stdout.trim(), "1", "the merged pull request suspended nadia");
    const preview = env.pulumi(["preview", "--stack", "devvm", "--expect-no-changes", "--non-interactive", "--diff"]);
    assert.equal(preview.code, 0, `the next preview has changes:\n${preview.out.slice(-5000)}`);
    assert.equal(env.slack.posts.length, 0, "an admin's deploy posts nothing");
  },
);

// Two master pushes in a row, the admin's then a non-admin's: both deploys, one at a time.
let pairRun: Promise<{ first: WpPipeline; second: WpPipeline; secondSubject: string }> | undefined;
function twoMasterPushes(): Promise<{ first: WpPipeline; second: WpPipeline; secondSubject: string }> {
  pairRun ??= (async () => {
    // The admin's push changes the roster and a document: not only roster.yaml, so its
    // deploy runs the unit tests (and takes a while, while the second push waits).
    fs.appendFileSync(path.join(env.work, "docs", "CONTRACTS.md"), "\n<!-- an admin's edit -->\n");
    const a = env.commitRoster("roster: nadia back to active; a note", (r) => (r.users.find((u: { name: string }) => u.name === "nadia").state = "active"));
    env.push("master", "admin");
    const secondSubject = "roster: emo logs in with /bin/sh";
    const b = env.commitRoster(secondSubject, (r) => (r.users.find((u: { name: string }) => u.name === "emo").shell = "/bin/sh"), "nonAdmin");
    env.push("master", "nonAdmin");
    const [first, second] = await Promise.all([env.finished(a, "push", 40 * MIN), env.finished(b, "push", 40 * MIN)]);
    return { first, second, secondSubject };
  })();
  return pairRun;
}

test("two master pushes in a row never run `up` at once: the second deploy waits for the first", { skip, timeout: 60 * MIN }, async () => {
  const { first, second } = await twoMasterPushes();
  for (const p of [first, second]) assert.equal(p.status, "success", show(p, await env.logs(p)));
  const up1 = stepOf(first, "up")!;
  const up2 = stepOf(second, "up")!;
  assert.ok(up1.started && up1.finished && up2.started && up2.finished, "both ups ran");
  assert.ok(
    second.created <= up1.finished!,
    `the second push's pipeline existed while the first up ran (created ${second.created}, first up finished ${up1.finished}): otherwise this proves nothing`,
  );
  assert.ok(
    up1.finished! <= up2.started!,
    `up #${first.number} ran ${up1.started}-${up1.finished}, up #${second.number} ${up2.started}-${up2.finished}: they overlap`,
  );
  const w1 = first.workflows!.find((w) => w.name === "deploy")!;
  const w2 = second.workflows!.find((w) => w.name === "deploy")!;
  assert.ok(w1.finished! <= w2.started!, "the whole second deploy workflow started after the first finished (concurrency: 1)");
  assert.equal(stepOf(first, "unit-tests")?.state, "success", "a push that changes more than roster.yaml runs the unit tests before up");
  assert.equal(stepOf(second, "unit-tests"), undefined, "a roster-only push does not");
  const expiry = await run(env.host, "getent shadow nadia | cut -d: -f8");
  assert.equal(expiry.stdout.trim(), "", "nadia's account is no longer expired: the first deploy made her active again");
});

test("a non-admin's push to master posts exactly one message at the fake Slack; the admin's posts none", { skip, timeout: 60 * MIN }, async () => {
  const { first, second, secondSubject } = await twoMasterPushes();
  const logs = await env.logs(second);
  assert.equal(stepOf(second, "notify-nonadmin-push")?.state, "success", show(second, logs));
  assert.match(logs.get("notify-nonadmin-push")!, /notify-nonadmin-push: sent: ebarzin is not an admin/);
  assert.match((await env.logs(first)).get("notify-nonadmin-push")!, /viktor is an admin/);
  assert.equal(env.slack.posts.length, 1, JSON.stringify(env.slack.posts, null, 2));
  const msg = env.slack.delivered[0]?.text ?? "";
  assert.match(msg, /^Non-admin push to master of viktor\/infra by \*ebarzin\*/);
  assert.ok(msg.includes(secondSubject), msg);
  assert.ok(!msg.includes("nadia back to active"), "the admin's commit is not the non-admin's push");
  assert.equal((await run(env.host, "getent passwd emo | cut -d: -f7")).stdout.trim(), "/bin/sh", "the non-admin's change is deployed");
  assert.match(msg, new RegExp(`Pipeline: ${env.wp.url.replace(/[.:/]/g, "\\$&")}/repos/${env.repo.id}/pipeline/${second.number}`));
  assertNoSecret(env, logs);
});
