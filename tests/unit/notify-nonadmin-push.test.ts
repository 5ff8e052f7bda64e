/**
 * The notify step against the fake Slack (dev/fakes/slack.ts): who gets announced, what the
 * message says, Slack failures, and that a failing notify never changes the deploy's status
 * (the deploy workflow's own steps run through the stand-in agent, with a stub `pulumi`).
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as YAML from "yaml";
import { FakeSlack, startFakeSlack } from "../../dev/fakes/slack";
import { run } from "../../tools/notify-nonadmin-push";
import { loadWorkflows, runWorkflow } from "../fixtures/woodpecker";
import { tempDir } from "../../dev/tmp";

const ROOT = path.resolve(__dirname, "../..");
const EXAMPLE = fs.readFileSync(path.join(ROOT, "roster.example.yaml"), "utf8");
const GIT_ENV = { GIT_AUTHOR_NAME: "Emo Barzin", GIT_AUTHOR_EMAIL: "emo@x", GIT_COMMITTER_NAME: "Emo Barzin", GIT_COMMITTER_EMAIL: "emo@x" };
let slack: FakeSlack;
const scratch: string[] = [];
before(async () => {
  slack = await startFakeSlack();
});
after(async () => {
  await slack.stop();
  scratch.forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
});

interface Repo {
  dir: string;
  base: string;
  head: string;
}
/** A repository whose last push (base..head) brought two commits; `edit` shapes the head. */
function pushRepo(
  opts: {
    stackConfig?: Record<string, unknown>;
    headStackConfig?: Record<string, unknown>;
    editHead?: (r: { users: Array<Record<string, unknown>> }) => void;
    subjects?: string[];
    copyProgram?: boolean;
  } = {},
): Repo {
  const dir = tempDir("ws-notify-");
  scratch.push(dir);
  const git = (...a: string[]) => execFileSync("git", ["-C", dir, ...a], { encoding: "utf8", env: { ...process.env, ...GIT_ENV } }).trim();
  git("init", "-q", "-b", "master");
  const stack = (cfg: Record<string, unknown>) =>
    fs.writeFileSync(path.join(dir, "Pulumi.devvm.yaml"), YAML.stringify({ config: { "workstations:roster": "roster.yaml", ...cfg } }));
  stack(opts.stackConfig ?? { "workstations:adminSource": "roster" });
  fs.writeFileSync(path.join(dir, "roster.yaml"), EXAMPLE);
  if (opts.copyProgram) {
    for (const f of ["package.json", "tsconfig.json", "tools", "components"]) fs.cpSync(path.join(ROOT, f), path.join(dir, f), { recursive: true });
    fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
    fs.writeFileSync(path.join(dir, ".gitignore"), "node_modules\n");
  }
  git("add", "-A");
  git("commit", "-qm", "base");
  const base = git("rev-parse", "HEAD");
  const [s1, s2] = opts.subjects ?? ["Give nadia a second namespace", "Fix a typo in the README"];
  fs.writeFileSync(path.join(dir, "notes.txt"), "1\n");
  git("add", "-A");
  git("commit", "-qm", s1);
  const doc = YAML.parse(EXAMPLE);
  opts.editHead?.(doc);
  fs.writeFileSync(path.join(dir, "roster.yaml"), YAML.stringify(doc));
  if (opts.headStackConfig) stack(opts.headStackConfig);
  git("add", "-A");
  git("commit", "-qm", `${s2}\n\nbody line that is not a subject`);
  return { dir, base, head: git("rev-parse", "HEAD") };
}

function ciEnv(r: Repo, over: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: Record<string, string | undefined> = {
    CI_PIPELINE_EVENT: "push",
    CI_COMMIT_BRANCH: "master",
    CI_PIPELINE_AUTHOR: "ebarzin",
    CI_COMMIT_AUTHOR: "Emo Barzin",
    CI_COMMIT_MESSAGE: "Fix a typo in the README\n\nbody",
    CI_COMMIT_SHA: r.head,
    CI_PREV_COMMIT_SHA: r.base,
    CI_PIPELINE_URL: "https://ci.example.test/repos/3/pipeline/42",
    CI_REPO: "viktor/infra",
    CI_PIPELINE_STATUS: "success",
    SLACK_WEBHOOK: slack.webhookUrl,
    ...over,
  };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return env as NodeJS.ProcessEnv;
}

async function notify(r: Repo, over: Record<string, string | undefined> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(
    ciEnv(r, over),
    r.dir,
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out, err };
}

test("a non-admin push to master: exactly one message naming the pusher, the subjects and the pipeline", async () => {
  slack.clear();
  const r = pushRepo();
  const res = await notify(r);
  assert.equal(res.code, 0, res.err.join("\n"));
  assert.equal(slack.delivered.length, 1);
  assert.equal(slack.posts.length, 1);
  const text = slack.delivered[0].text;
  assert.match(
    text,
    /^Non-admin push to master of viktor\/infra by \*ebarzin\* \(commit author: Emo Barzin\): this push is a deploy \(deploy success when notified\)\./,
  );
  assert.match(text, /^• [0-9a-f]{7} Fix a typo in the README$/m);
  assert.match(text, /^• [0-9a-f]{7} Give nadia a second namespace$/m);
  assert.ok(!text.includes("body line"), "subjects only");
  assert.match(text, /^Pipeline: https:\/\/ci\.example\.test\/repos\/3\/pipeline\/42$/m);
  assert.deepEqual(res.out, [
    "notify-nonadmin-push: sent: ebarzin is not an admin (roster this commit: viktor; roster before the push (" + r.base.slice(0, 7) + "): viktor)",
  ]);
  assert.equal(slack.delivered[0].path, "/services/T000/B000/fakewebhooksecret");
});

test("an admin push sends nothing", async () => {
  slack.clear();
  const res = await notify(pushRepo(), { CI_PIPELINE_AUTHOR: "Viktor" });
  assert.equal(res.code, 0);
  assert.equal(slack.posts.length, 0);
  assert.match(res.out[0], /^notify-nonadmin-push: Viktor is an admin \(roster this commit, roster before the push/);
});

test("a push to another branch, a pull request or a tag sends nothing", async () => {
  slack.clear();
  const r = pushRepo();
  for (const over of [{ CI_COMMIT_BRANCH: "feature/x" }, { CI_PIPELINE_EVENT: "pull_request" }, { CI_PIPELINE_EVENT: "tag", CI_COMMIT_BRANCH: undefined }]) {
    const res = await notify(r, over);
    assert.equal(res.code, 0);
    assert.match(res.out[0], /not a push to master .*nothing to send/);
  }
  assert.equal(slack.posts.length, 0);
});

test("adminSource=config: the stack's admins list decides, not the roster's roles", async () => {
  slack.clear();
  const cfg = { "workstations:adminSource": "config", "workstations:admins": ["ebarzin"] };
  const r = pushRepo({ stackConfig: cfg });
  const emo = await notify(r);
  assert.equal(emo.code, 0);
  assert.match(emo.out[0], /ebarzin is an admin \(config this commit, config before the push/);
  assert.equal(slack.posts.length, 0);
  const viktor = await notify(r, { CI_PIPELINE_AUTHOR: "viktor" });
  assert.equal(viktor.code, 0);
  assert.equal(slack.delivered.length, 1, "viktor is a roster admin but not in the config list");
  assert.match(slack.delivered[0].text, /by \*viktor\*/);
  // `pulumi config set --path 'workstations:admins[0]'` writes a list; a JSON string is read too
  slack.clear();
  const json = await notify(pushRepo({ stackConfig: { "workstations:adminSource": "config", "workstations:admins": '["ebarzin"]' } }));
  assert.match(json.out[0], /ebarzin is an admin/);
  assert.equal(slack.posts.length, 0);
});

test("a push that makes its own pusher an admin is still announced", async () => {
  slack.clear();
  const promote = await notify(pushRepo({ editHead: (d) => (d.users.find((u) => u.name === "emo")!.role = "admin") }));
  assert.equal(promote.code, 0);
  assert.equal(slack.delivered.length, 1);
  assert.match(promote.out[0], /ebarzin is not an admin \(roster this commit: ebarzin,viktor; roster before the push \([0-9a-f]+\): viktor\)/);
  slack.clear();
  const viaConfig = await notify(pushRepo({ headStackConfig: { "workstations:adminSource": "config", "workstations:admins": ["ebarzin"] } }));
  assert.equal(slack.delivered.length, 1);
  assert.match(viaConfig.out[0], /not an admin \(config this commit: ebarzin; roster before the push/);
});

test("the forgeable commit author never decides: no CI_PIPELINE_AUTHOR means announced", async () => {
  slack.clear();
  const res = await notify(pushRepo(), { CI_PIPELINE_AUTHOR: undefined, CI_COMMIT_AUTHOR: "viktor" });
  assert.equal(res.code, 0);
  assert.equal(slack.delivered.length, 1);
  assert.match(slack.delivered[0].text, /by \*an unknown pusher\* \(CI_PIPELINE_AUTHOR unset\) \(commit author: viktor\)/);
});

test("subjects are escaped for Slack, and the webhook URL never appears in the message or the log", async () => {
  slack.clear();
  const r = pushRepo({ subjects: ["<!channel> deploy now & <https://evil.test|click>", `oops pasted ${slack.webhookUrl}`] });
  const res = await notify(r);
  assert.equal(res.code, 0);
  const text = slack.delivered[0].text;
  assert.match(text, /&lt;!channel&gt; deploy now &amp; &lt;https:\/\/evil\.test\|click&gt;/);
  assert.ok(!text.includes(slack.webhookUrl) && !text.includes("fakewebhooksecret"), text);
  assert.match(text, /oops pasted \[webhook\]/);
  for (const l of [...res.out, ...res.err]) assert.ok(!l.includes("fakewebhooksecret"), l);
});

test("Slack failures: 500, no answer, unreachable: exit 1 and one clear line without the URL", async () => {
  const r = pushRepo();
  slack.clear();
  slack.failNext(1, 500);
  const e500 = await notify(r);
  assert.equal(e500.code, 1);
  assert.equal(e500.err.length, 1);
  assert.match(e500.err[0], /^notify-nonadmin-push: Slack answered HTTP 500; the message was not delivered \(ebarzin is not an admin/);
  slack.hangNext(1);
  const t0 = Date.now();
  const hang = await notify(r, { NOTIFY_TIMEOUT_MS: "400" });
  assert.equal(hang.code, 1);
  assert.match(hang.err[0], /^notify-nonadmin-push: Slack did not answer within 0\.4s; the message was not delivered/);
  assert.ok(Date.now() - t0 < 5000);
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const gone = await notify(r, { SLACK_WEBHOOK: `http://127.0.0.1:${port}/services/T1/B1/closedportsecret` });
  assert.equal(gone.code, 1);
  assert.match(gone.err[0], /^notify-nonadmin-push: could not reach Slack \(ECONNREFUSED\); the message was not delivered/);
  for (const l of [...e500.err, ...hang.err, ...gone.err, ...e500.out, ...hang.out, ...gone.out])
    assert.ok(!/fakewebhooksecret|closedportsecret|127\.0\.0\.1/.test(l), l);
  assert.equal(slack.delivered.length, 0);
  const none = await notify(r, { SLACK_WEBHOOK: undefined });
  assert.equal(none.code, 2);
  assert.match(none.err[0], /SLACK_WEBHOOK is not set: nothing was sent/);
});

test("the CLI: exit status and output of the npm script", async () => {
  slack.clear();
  slack.failNext(1, 500);
  const r = pushRepo();
  // Asynchronously: the fake Slack answers from this process.
  const cli = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const env = { ...ciEnv(r), PATH: process.env.PATH, TS_NODE_PROJECT: path.join(ROOT, "tsconfig.json") } as NodeJS.ProcessEnv;
    execFile(
      process.execPath,
      ["--require", require.resolve("ts-node/register/transpile-only"), path.join(ROOT, "tools/notify-nonadmin-push.ts")],
      { cwd: r.dir, env },
      (e, stdout, stderr) => resolve({ status: e ? (typeof e.code === "number" ? e.code : null) : 0, stdout, stderr }),
    );
  });
  assert.equal(cli.status, 1, cli.stderr);
  assert.equal(cli.stdout, "");
  assert.match(cli.stderr.trim(), /^notify-nonadmin-push: Slack answered HTTP 500; the message was not delivered \(.*\)$/);
  assert.equal(cli.stderr.trim().split("\n").length, 1);
  assert.ok(!cli.stderr.includes("fakewebhooksecret"));
});

/** A stub `pulumi` for the deploy workflow's `up` step: records argv and stdin, exits as told. */
function stubPulumi(): { bin: string; log: string } {
  const bin = tempDir("ws-stub-");
  scratch.push(bin);
  const log = path.join(bin, "calls.log");
  fs.writeFileSync(
    path.join(bin, "pulumi"),
    `#!/bin/sh\nprintf 'argv:%s\\n' "$*" >> "${log}"\ncase "$1" in\n  config) printf 'stdin:%s\\n' "$(cat)" >> "${log}" ;;\n  up) echo "Updating (devvm):"; exit "\${STUB_UP_EXIT:-0}" ;;\nesac\n`,
    { mode: 0o755 },
  );
  return { bin, log };
}

test("a failing notify never changes the deploy's status: the deploy workflow's up and notify steps", async () => {
  const deploy = loadWorkflows().get("deploy")!;
  const r = pushRepo({ copyProgram: true });
  const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nstubkeymaterial\n-----END OPENSSH PRIVATE KEY-----";
  const secrets = {
    pulumi_backend_url: "file:///nonexistent",
    pulumi_config_passphrase: "stub-passphrase",
    state_access_key_id: "AKIASTUB",
    state_secret_access_key: "stubsecret",
    devvm_ssh_private_key: key,
    vault_token: "stub-vault-token",
    forgejo_admin_password: "stub-forgejo-password",
    slack_webhook: slack.webhookUrl,
  };
  const go = async (upExit: number) => {
    const stub = stubPulumi();
    const env = {
      ...ciEnv(r),
      SLACK_WEBHOOK: "",
      PATH: `${stub.bin}:${process.env.PATH}`,
      HOME: process.env.HOME ?? "/root",
      STUB_UP_EXIT: String(upExit),
    } as Record<string, string>;
    delete env.CI_PIPELINE_STATUS;
    const res = await runWorkflow(deploy, { cwd: r.dir, event: "push", branch: "master", env, secrets, from: "up", timeoutMs: 120_000 });
    return { res, calls: fs.readFileSync(stub.log, "utf8") };
  };

  slack.clear();
  slack.failNext(1, 500);
  const ok = await go(0);
  const [up, n] = ok.res.steps;
  assert.equal(up.name, "up");
  assert.equal(up.code, 0, up.stderr);
  assert.match(
    ok.calls,
    /^argv:up --stack devvm --yes --diff --refresh --non-interactive --message woodpecker https:\/\/ci\.example\.test\/repos\/3\/pipeline\/42 [0-9a-f]{40}$/m,
  );
  assert.match(ok.calls, /^argv:config set --secret --stack devvm workstations:sshPrivateKey$/m, "the key goes to Pulumi on stdin");
  assert.ok(ok.calls.includes("stdin:-----BEGIN OPENSSH PRIVATE KEY-----"));
  assert.ok(!/^argv:.*stubkeymaterial/m.test(ok.calls), "never in argv");
  assert.ok(!up.stdout.includes("stubkeymaterial") && !up.stderr.includes("stubkeymaterial"), "never in the log");
  assert.equal(n.name, "notify-nonadmin-push");
  assert.equal(n.ran, true);
  assert.equal(n.code, 1, "Slack answered 500");
  assert.equal(n.ignored, true);
  assert.match(n.stderr, /Slack answered HTTP 500/);
  assert.equal(ok.res.status, "success", "the deploy succeeded, whatever Slack did");

  slack.clear();
  const failed = await go(1);
  assert.equal(failed.res.steps[0].code, 1);
  assert.equal(failed.res.steps[1].ran, true, "notify runs after a failed up too");
  assert.equal(failed.res.steps[1].code, 0, failed.res.steps[1].stderr);
  assert.equal(slack.delivered.length, 1);
  assert.match(slack.delivered[0].text, /deploy failure when notified/);
  assert.equal(failed.res.status, "failure", "a failed up is a failed deploy, whatever the notify step does");
});
