/**
 * `npm run notify-nonadmin-push`: CI's notify step. For a push to master by someone who is
 * not an admin, posts one Slack message (who pushed, the commit subjects, the pipeline
 * link); for anything else, posts nothing. Master pushes are deploys, so a non-admin's
 * deploy is always visible (seeded by the team: "Slack message for every non-admin master
 * push, admin pushes silent").
 *
 * Input is Woodpecker's environment:
 * - CI_PIPELINE_EVENT, CI_COMMIT_BRANCH: only `push` to `master` can notify.
 * - CI_PIPELINE_AUTHOR: the pusher, the Forgejo login of the webhook's sender (Woodpecker v3
 *   sets it from the push hook's `sender`). This is who is checked against the admins.
 *   CI_COMMIT_AUTHOR is the head commit's author name from git, which anyone can set, so it
 *   is shown in the message but never decides.
 * - CI_COMMIT_SHA, CI_PREV_COMMIT_SHA, CI_PIPELINE_FORGE_URL: the range whose subjects are
 *   listed (`git log`, see pushBase in access-diff.ts); CI_COMMIT_MESSAGE when git cannot.
 * - CI_PIPELINE_URL, CI_REPO, CI_PIPELINE_STATUS (the deploy's status before this step),
 *   CI_PIPELINE_PARENT (a restarted pipeline).
 * - SLACK_WEBHOOK: the incoming-webhook URL (a Woodpecker secret). Never printed.
 *
 * Who is an admin comes from the program's own code: the roster through `parseRoster` and
 * `planRoster` (`plan.adminForgejoUsers`), or the stack config's `workstations:admins` when
 * `workstations:adminSource` is `config` (Pulumi.devvm.yaml). Both are read twice: as the
 * push left them (the checkout) and as they were before it (`git show BASE:…`). The pusher
 * counts as an admin only if both say so, so a push that makes its own author an admin is
 * still announced. When neither side can be read, the push is announced.
 *
 * Exit 0: sent, or nothing to send. 1: Slack did not take the message (HTTP >= 300, timeout,
 * unreachable), one line says why. 2: usage or configuration error (e.g. no SLACK_WEBHOOK).
 * The deploy workflow runs this after `up` with `failure: ignore`: it cannot change the
 * deploy's outcome.
 */
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { planRoster } from "../components/plan";
import { parseRoster } from "../components/roster/load";
import { gitShow, parseStackConfig, pushBase, STACK_FILE } from "./access-diff";

export const DEPLOY_BRANCH = "master";
export const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_SUBJECTS = 20;

export interface AdminView {
  label: string;
  admins?: string[];
  source?: "roster" | "config";
  error?: string;
}

/** The admins (Forgejo logins) as one version of the repository says: its stack config and roster. */
export function adminsFrom(label: string, read: (file: string) => string | undefined): AdminView {
  let cfg;
  try {
    cfg = parseStackConfig(read(STACK_FILE));
  } catch (e) {
    return { label, error: `${STACK_FILE}: ${(e as Error).message}` };
  }
  if (cfg.adminSource === "config") return { label, admins: cfg.admins, source: "config" };
  const text = read(cfg.roster);
  if (text === undefined) return { label, error: `no ${cfg.roster}` };
  const r = parseRoster(text, cfg.roster);
  if (!r.roster) return { label, error: `${cfg.roster} is not a valid roster (${r.problems.length} problem(s))` };
  return { label, admins: planRoster(r.roster).adminForgejoUsers, source: "roster" };
}

export interface Decision {
  send: boolean;
  /** One line for the log: why a message is or is not sent. */
  reason: string;
  text?: string;
}

/** Slack mrkdwn: `&`, `<` and `>` are control characters (links, mentions); escape them. */
export function slackEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function commitSubjects(repo: string, env: NodeJS.ProcessEnv): { lines: string[]; note?: string } {
  const base = pushBase(repo, env);
  const head = env.CI_COMMIT_SHA || "HEAD";
  if (base.sha) {
    const r = spawnSync("git", ["-C", repo, "log", "--format=%h %s", `--max-count=${MAX_SUBJECTS + 1}`, `${base.sha}..${head}`], { encoding: "utf8" });
    if (r.status === 0) {
      const lines = r.stdout.split("\n").filter(Boolean);
      if (lines.length > MAX_SUBJECTS) {
        const n = spawnSync("git", ["-C", repo, "rev-list", "--count", `${base.sha}..${head}`], { encoding: "utf8" });
        const total = Number(n.stdout.trim()) || lines.length;
        return { lines: [...lines.slice(0, MAX_SUBJECTS), `… and ${total - MAX_SUBJECTS} more`] };
      }
      if (lines.length) return { lines };
    }
  }
  const first = (env.CI_COMMIT_MESSAGE ?? "").split("\n")[0].trim();
  const sha = (env.CI_COMMIT_SHA ?? "").slice(0, 7);
  return { lines: [`${sha ? sha + " " : ""}${first || "(no commit message)"}`], note: `commit list unavailable (${base.how}); head commit only` };
}

/** Decides, from the environment and the checkout at `repo`, whether and what to post. */
export function decide(env: NodeJS.ProcessEnv, repo: string): Decision {
  const event = env.CI_PIPELINE_EVENT ?? "";
  const branch = env.CI_COMMIT_BRANCH ?? "";
  if (event !== "push" || branch !== DEPLOY_BRANCH)
    return { send: false, reason: `not a push to ${DEPLOY_BRANCH} (event ${event || "unset"}, branch ${branch || "unset"}): nothing to send` };

  const pusher = (env.CI_PIPELINE_AUTHOR ?? "").trim();
  const views: AdminView[] = [
    adminsFrom("this commit", (f) => {
      const p = path.resolve(repo, f);
      return fs.existsSync(p) ? fs.readFileSync(p, "utf8") : undefined;
    }),
  ];
  const base = pushBase(repo, env);
  if (base.sha) {
    const sha = base.sha;
    views.push(
      adminsFrom(`before the push (${sha.slice(0, 7)})`, (f) => {
        const r = gitShow(repo, sha, f);
        return r.text;
      }),
    );
  }
  const known = views.filter((v) => v.admins);
  const unknown = views.filter((v) => !v.admins).map((v) => `${v.label}: ${v.error}`);
  const isAdmin = !!pusher && known.length > 0 && known.every((v) => v.admins!.some((a) => a.toLowerCase() === pusher.toLowerCase()));
  if (isAdmin) return { send: false, reason: `${pusher} is an admin (${known.map((v) => `${v.source} ${v.label}`).join(", ")}): nothing to send` };

  const subjects = commitSubjects(repo, env);
  const status = env.CI_PIPELINE_STATUS;
  const parent = env.CI_PIPELINE_PARENT && env.CI_PIPELINE_PARENT !== "0" ? ` (restart of pipeline #${env.CI_PIPELINE_PARENT})` : "";
  const repoName = env.CI_REPO ? ` of ${slackEscape(env.CI_REPO)}` : "";
  const commitAuthor = env.CI_COMMIT_AUTHOR && env.CI_COMMIT_AUTHOR !== pusher ? ` (commit author: ${slackEscape(env.CI_COMMIT_AUTHOR)})` : "";
  const who = pusher ? `*${slackEscape(pusher)}*` : "*an unknown pusher* (CI_PIPELINE_AUTHOR unset)";
  const lines = [
    `Non-admin push to ${DEPLOY_BRANCH}${repoName} by ${who}${commitAuthor}: this push is a deploy${status ? ` (deploy ${slackEscape(status)} when notified)` : ""}${parent}.`,
    ...subjects.lines.map((l) => `• ${slackEscape(l)}`),
  ];
  if (subjects.note) lines.push(`_${slackEscape(subjects.note)}_`);
  if (unknown.length) lines.push(`_admins could not be read: ${slackEscape(unknown.join("; "))}_`);
  if (env.CI_PIPELINE_URL) lines.push(`Pipeline: ${slackEscape(env.CI_PIPELINE_URL)}`);
  const reason = pusher
    ? `${pusher} is not an admin (${known.length ? known.map((v) => `${v.source} ${v.label}: ${v.admins!.join(",") || "none"}`).join("; ") : "no admin list could be read"})`
    : "the pusher is unknown (CI_PIPELINE_AUTHOR unset)";
  return { send: true, reason, text: lines.join("\n") };
}

/** Posts `text` to the webhook. Resolves to an error line (without the URL) or undefined. */
export async function postSlack(webhook: string, text: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const res = await fetch(webhook, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.text().catch(() => "");
    if (res.status >= 300) return `Slack answered HTTP ${res.status}; the message was not delivered`;
    return undefined;
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    if (err.name === "TimeoutError" || err.name === "AbortError") return `Slack did not answer within ${timeoutMs / 1000}s; the message was not delivered`;
    return `could not reach Slack (${err.cause?.code ?? err.name}); the message was not delivered`;
  }
}

/** The whole step. `out`/`err` take one line each; nothing printed contains the webhook. */
export async function run(env: NodeJS.ProcessEnv, repo: string, out: (l: string) => void, err: (l: string) => void): Promise<number> {
  const webhook = env.SLACK_WEBHOOK ?? "";
  const scrub = (s: string) => (webhook ? s.split(webhook).join("[webhook]") : s);
  const say = (l: string) => out(scrub(`notify-nonadmin-push: ${l}`));
  const fail = (l: string) => err(scrub(`notify-nonadmin-push: ${l}`));
  let d: Decision;
  try {
    d = decide(env, repo);
  } catch (e) {
    fail(`cannot decide: ${(e as Error).message}`);
    return 2;
  }
  if (!d.send) {
    say(d.reason);
    return 0;
  }
  if (!/^https?:\/\/\S+$/.test(webhook)) {
    fail(`${d.reason}, but SLACK_WEBHOOK is ${webhook ? "not an http(s) URL" : "not set"}: nothing was sent`);
    return 2;
  }
  const timeoutMs = Number(env.NOTIFY_TIMEOUT_MS) > 0 ? Number(env.NOTIFY_TIMEOUT_MS) : DEFAULT_TIMEOUT_MS;
  const text = scrub(d.text!);
  const problem = await postSlack(webhook, text, timeoutMs);
  if (problem) {
    fail(`${problem} (${d.reason})`);
    return 1;
  }
  say(`sent: ${d.reason}`);
  return 0;
}

if (require.main === module) {
  const dry = process.argv.includes("--dry-run");
  if (dry) {
    const d = decide(process.env, process.cwd());
    console.log(`notify-nonadmin-push: ${d.send ? "would send" : "would not send"}: ${d.reason}`);
    if (d.text) console.log(d.text);
  } else {
    run(
      process.env,
      process.cwd(),
      (l) => console.log(l),
      (l) => console.error(l),
    ).then((code) => process.exit(code));
  }
}
