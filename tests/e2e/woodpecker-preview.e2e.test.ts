/**
 * The preview workflow with its secrets, on the real engine: the steps of
 * .woodpecker/preview.yaml, as written, for a push to a branch, in a clean clone, with the
 * Woodpecker secrets pointing at a file backend, the nspawn test host and a Vault dev server.
 * The `preview` step must run `pulumi preview --stack devvm --diff` to the end and show the
 * roster's workstations, with no secret in its log.
 *
 * Needs the Pulumi CLI and the command and vault resource plugins (`npm test` runs
 * *.e2e.test.ts only where they exist; tests/run-all.sh). Without them it fails, naming
 * what is missing (setupE2E -> loadToolchainEnv); it never skips.
 * The fork's pull request (no secrets) is tests/unit/woodpecker-commands.test.ts.
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as YAML from "yaml";
import { E2E, PROJECT_DIR, setupE2E } from "../../dev/e2e";
import { GIT_ENV, loadWorkflows, runWorkflow, snapshotRepo } from "../fixtures/woodpecker";

let e: E2E;
const roster = YAML.parse(fs.readFileSync(path.join(PROJECT_DIR, "roster.example.yaml"), "utf8"));

before(async () => {
  e = await setupE2E("woodpecker-preview", roster);
});
after(async () => {
  if (e) await e.stop();
});

test("the preview workflow's preview step, with secrets, runs pulumi preview on stack devvm", { timeout: 1_800_000 }, async () => {
  const src = snapshotRepo();
  const git = (dir: string, ...a: string[]) => execFileSync("git", ["-C", dir, ...a], { encoding: "utf8", env: { ...process.env, ...GIT_ENV } }).trim();
  git(src, "checkout", "-qb", "feature");
  fs.writeFileSync(path.join(src, "roster.yaml"), YAML.stringify(roster));
  git(src, "commit", "-qam", "roster for the e2e host", "--allow-empty");
  const clone = fs.mkdtempSync(path.join(os.tmpdir(), "ws-pipe-e2e-"));
  execFileSync("git", ["clone", "-q", "--no-checkout", src, clone]);
  git(clone, "checkout", "-q", "--detach", "origin/feature");

  const backend = `file://${path.join(e.dir, "state-devvm")}`;
  fs.mkdirSync(path.join(e.dir, "state-devvm"), { recursive: true });
  const passphrase = String(e.audit.env.PULUMI_CONFIG_PASSPHRASE);
  const pulumiEnv = { ...process.env, PULUMI_BACKEND_URL: backend, PULUMI_CONFIG_PASSPHRASE: passphrase, PULUMI_SKIP_UPDATE_CHECK: "true" };
  const pulumi = (...a: string[]) => execFileSync("pulumi", a, { cwd: clone, env: pulumiEnv, encoding: "utf8" });
  // The team's stack devvm, as an admin would have set it up (README: Configuration).
  pulumi("stack", "init", "devvm", "--secrets-provider", "passphrase");
  for (const [k, v] of Object.entries({
    host: "127.0.0.1",
    sshPort: String(e.host.port),
    hostKey: e.host.hostKey,
    vaultAddress: e.vault.addr,
    claudeClientId: "e2e-client-id",
  }))
    pulumi("config", "set", "--stack", "devvm", `workstations:${k}`, v);

  const secrets = {
    pulumi_backend_url: backend,
    pulumi_config_passphrase: passphrase,
    state_access_key_id: "",
    state_secret_access_key: "",
    devvm_ssh_private_key: e.host.privateKey,
    vault_token: e.vault.rootToken,
    forgejo_admin_password: "e2e-unused",
    slack_webhook: "https://hooks.slack.test/services/unused",
  };
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(PULUMI_BACKEND_URL|PULUMI_CONFIG_PASSPHRASE|VAULT_TOKEN)$/.test(k)) env[k] = v;
  Object.assign(env, {
    npm_config_offline: "true",
    WORKSTATIONS_PIPELINE_TEST: "1",
    CI_REPO: "viktor/infra",
    CI_COMMIT_SHA: git(clone, "rev-parse", "HEAD"),
    CI_PIPELINE_AUTHOR: "viktor",
    CI_PIPELINE_URL: "https://ci.example.test/repos/3/pipeline/100",
  });
  const res = await runWorkflow(loadWorkflows().get("preview")!, { cwd: clone, event: "push", branch: "feature", env, secrets, timeoutMs: 1_200_000 });
  const step = (n: string) => res.steps.find((s) => s.name === n);
  for (const n of ["install", "roster-check", "access-diff", "unit-tests"]) assert.equal(step(n)?.code, 0, `${n}: ${step(n)?.stderr.slice(-3000)}`);
  assert.equal(step("preview-pull-request")?.ran, false);
  const p = step("preview")!;
  assert.equal(p.code, 0, `${p.stdout.slice(-5000)}\n${p.stderr.slice(-5000)}`);
  assert.ok(!p.stdout.includes("preview skipped"), "the secrets were there");
  assert.match(p.stdout, /Previewing update \(devvm\)/);
  for (const u of ["viktor", "emo", "nadia", "sam"]) assert.match(p.stdout, new RegExp(`UserWorkstation.*${u}|${u}.*UserWorkstation`));
  for (const s of [passphrase, e.vault.rootToken, e.host.privateKey.split("\n")[1]]) {
    assert.ok(!p.stdout.includes(s) && !p.stderr.includes(s), "no secret in the preview log");
  }
  fs.rmSync(src, { recursive: true, force: true });
  fs.rmSync(clone, { recursive: true, force: true });
});
