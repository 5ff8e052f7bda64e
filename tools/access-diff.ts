/**
 * `npm run access-diff -- BASE_REF [HEAD_REF|FILE]`: who gains or loses what between two
 * rosters, from the plan of each (a reviewer reads grants, not a YAML diff).
 *
 * The base roster is `git show BASE_REF:<roster>`; the head is the working tree (default),
 * another ref, or a file. `<roster>` is the stack's `workstations:roster` (Pulumi.devvm.yaml,
 * default roster.yaml) or `--roster PATH`. Both are planned with `planRoster` and compared
 * through `userGrants` (tools/access-report.ts), the same reading of `UserPlan` the access
 * report prints. Prints nothing when no grant and no account fact changed.
 *
 * `--ci` takes the base from Woodpecker's environment: on a pull request the merge base of
 * the target branch (`origin/$CI_COMMIT_TARGET_BRANCH`, fetched by the clone step), on a push
 * the commit before the push (`pushBase`).
 *
 * Lines: `+`/`-` a grant added/removed, `~` an account fact changed, `!` needs attention (a
 * uid change, a rename, a removal from the roster, an approved purge).
 * `-C REPO` runs in another checkout (default: the current directory).
 * Exit 0 (printed or empty), 1 the head roster is invalid (the checker's file:line:col lines
 * on stderr), 2 usage or git errors.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { OffboardedPlan, Plan, planRoster, UserPlan } from "../components/plan";
import { formatProblem, parseRoster, RosterProblem } from "../components/roster/load";
import { escapeControls } from "../components/roster/schema";
import { GRANT_AREAS, Grants, noGrants, purgeLabel, terminalLines, userGrants } from "./access-report";

export const STACK = "devvm";
export const STACK_FILE = `Pulumi.${STACK}.yaml`;
export const NS = "workstations";

// ---------------------------------------------------------------- git and stack config

/** A file's text at a git ref: `text`, or `missing` (the ref has no such file), or `error`. */
export function gitShow(repo: string, ref: string, file: string): { text?: string; missing?: boolean; error?: string } {
  const r = spawnSync("git", ["-C", repo, "show", `${ref}:${file}`], { encoding: "utf8", maxBuffer: 16 << 20 });
  if (r.status === 0) return { text: r.stdout };
  const err = (r.stderr || r.error?.message || "").trim();
  if (/does not exist in|exists on disk, but not in/.test(err)) return { missing: true };
  return { error: err.split("\n")[0] || `git show exited ${r.status}` };
}

/** `git rev-parse --verify REF^{commit}`, or undefined. */
export function resolveCommit(repo: string, ref: string): string | undefined {
  const r = spawnSync("git", ["-C", repo, "rev-parse", "--verify", "--quiet", `${ref}^{commit}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The stack config keys CI needs, read from Pulumi.devvm.yaml text (components/config.ts gives their meaning). */
export interface CiStackConfig {
  roster: string;
  adminSource: "roster" | "config";
  admins: string[];
}

/** Parses Pulumi.<stack>.yaml text; throws with the key's name when a key is malformed. */
export function parseStackConfig(text: string | undefined): CiStackConfig {
  const doc = (text ? YAML.parse(text) : undefined) as { config?: Record<string, unknown> } | null | undefined;
  const cfg = doc && typeof doc === "object" && doc.config && typeof doc.config === "object" ? doc.config : {};
  const get = (k: string) => cfg[`${NS}:${k}`];
  const roster = get("roster") ?? "roster.yaml";
  if (typeof roster !== "string" || !roster) throw new Error(`${NS}:roster is not a file name`);
  const adminSource = get("adminSource") ?? "roster";
  if (adminSource !== "roster" && adminSource !== "config") throw new Error(`${NS}:adminSource is ${JSON.stringify(adminSource)}, expected roster or config`);
  let admins: unknown = get("admins") ?? [];
  if (typeof admins === "string") {
    try {
      admins = JSON.parse(admins); // `pulumi config set` may store an object value as a JSON string
    } catch {
      admins = [admins];
    }
  }
  if (!Array.isArray(admins) || admins.some((a) => typeof a !== "string" || !a)) throw new Error(`${NS}:admins is not a list of Forgejo users`);
  if (adminSource === "config" && admins.length === 0) throw new Error(`${NS}:adminSource is config but ${NS}:admins is empty`);
  return { roster, adminSource, admins: admins as string[] };
}

/**
 * The commit before a push, to list what it brought: the commit of the previous pipeline on
 * this branch when it is on HEAD's first-parent line (then commits that skipped CI with
 * `[ci skip]` are included), else the `before` of the forge's compare link (a push of several
 * commits), else HEAD's first parent. Undefined for a root commit.
 * Woodpecker sets CI_PREV_COMMIT_SHA from the last pipeline of the same branch, and a pull
 * request's pipeline counts for its target branch, so it is not always an ancestor.
 */
export function pushBase(repo: string, env: NodeJS.ProcessEnv): { sha?: string; how: string } {
  const head = resolveCommit(repo, env.CI_COMMIT_SHA || "HEAD");
  if (!head) return { how: "HEAD is not a commit" };
  const prev = env.CI_PREV_COMMIT_SHA ? resolveCommit(repo, env.CI_PREV_COMMIT_SHA) : undefined;
  if (prev && prev !== head) {
    const line = spawnSync("git", ["-C", repo, "rev-list", "--first-parent", "--max-count=1000", head], { encoding: "utf8" });
    if (line.status === 0 && line.stdout.split("\n").includes(prev)) return { sha: prev, how: "the previous pipeline's commit" };
  }
  const m = /\/compare\/([0-9a-f]{7,64})\.\.\.([0-9a-f]{7,64})\/?$/.exec(env.CI_PIPELINE_FORGE_URL ?? "");
  if (m) {
    const before = resolveCommit(repo, m[1]);
    if (before && before !== head && spawnSync("git", ["-C", repo, "merge-base", "--is-ancestor", before, head]).status === 0)
      return { sha: before, how: "the push's compare link" };
  }
  const parent = resolveCommit(repo, `${head}^1`);
  return parent ? { sha: parent, how: "HEAD's first parent" } : { how: "HEAD is a root commit" };
}

// ---------------------------------------------------------------- the diff

/** One side of the comparison. `plan` is undefined when the roster is invalid or absent. */
export interface Side {
  label: string;
  plan?: Plan;
  problems?: RosterProblem[];
  missing?: boolean;
}

export function planSide(label: string, text: string | undefined): Side {
  if (text === undefined) return { label, missing: true };
  const r = parseRoster(text, label);
  return r.roster ? { label, plan: planRoster(r.roster) } : { label, problems: r.problems };
}

type Entry = { kind: "user"; u: UserPlan } | { kind: "offboarded"; o: OffboardedPlan };
const EMPTY: Plan = {
  users: [],
  offboarded: [],
  reservedUids: [],
  admins: [],
  adminForgejoUsers: [],
  branchProtection: { branch: "master", pushWhitelist: [], mergeWhitelist: [] },
  namespaces: {},
};

function entries(p: Plan): Map<string, Entry> {
  const m = new Map<string, Entry>();
  for (const u of p.users) m.set(u.name, { kind: "user", u });
  for (const o of p.offboarded) m.set(o.name, { kind: "offboarded", o });
  return m;
}
const uidOf = (e: Entry) => (e.kind === "user" ? e.u.uid : e.o.uid);
const stateOf = (e?: Entry) => (!e ? "absent" : e.kind === "user" ? e.u.state : "offboarded");
const grantsOf = (e?: Entry): Grants => (e?.kind === "user" ? userGrants(e.u) : noGrants());

export interface UserChange {
  /** e.g. `emo (uid 2001): suspended` */
  header: string;
  /** `  ! …`, `  ~ …`, `  - area: …`, `  + area: …` */
  lines: string[];
}

function transition(from: string, to: string, e?: Entry): string | undefined {
  if (from === to) return undefined;
  const role = e?.kind === "user" ? ` (${e.u.role})` : "";
  if (from === "absent")
    return to === "active" ? `onboarded${role}` : to === "suspended" ? `added, suspended${role}` : "added as offboarded (no access; reserves the uid)";
  if (to === "absent") return "removed from the roster";
  if (to === "suspended") return from === "active" ? "suspended" : "suspended (was offboarded)";
  if (to === "offboarded") return "offboarded";
  return from === "suspended" ? "reactivated" : "reactivated from offboarded (re-onboarding with the same uid)";
}

function diffEntries(name: string, b: Entry | undefined, h: Entry | undefined, renamedFrom?: string): UserChange | undefined {
  const events: string[] = [];
  const lines: string[] = [];
  const flag = (s: string) => lines.push(`  ! ${s}`);
  const fact = (s: string) => lines.push(`  ~ ${s}`);
  const uidB = b ? uidOf(b) : undefined;
  const uidH = h ? uidOf(h) : undefined;
  if (renamedFrom) {
    events.push("renamed");
    flag(
      `renamed ${renamedFrom} → ${name} (uid ${uidH}): the host refuses uid ${uidH} under a new name (its uid ledger says ${renamedFrom}), and ${renamedFrom}'s offboarding cut runs; to rename, offboard ${renamedFrom} and onboard ${name} with a fresh uid`,
    );
  }
  const t = transition(stateOf(b), stateOf(h), h ?? b);
  if (t) events.push(t);
  if (!h && b)
    flag(
      `removed from the roster: ${name}'s offboarding cut runs and uid ${uidB} is no longer reserved by the roster (keep the entry with state: offboarded instead)`,
    );
  if (b && h && uidB !== uidH)
    flag(
      `uid ${uidB} → ${uidH}: a changed uid is a re-onboarding under a new uid; while the account exists with uid ${uidB} the account script refuses it (uids are pinned); keep ${uidB}, or migrate the account by hand first`,
    );
  if (b?.kind === "user" && h?.kind === "user") {
    if (b.u.role !== h.u.role) fact(`role ${b.u.role} → ${h.u.role}`);
    if (b.u.email !== h.u.email) fact(`email (Claude identity) ${b.u.email} → ${h.u.email}`);
    if (b.u.forgejoUser !== h.u.forgejoUser) fact(`Forgejo user ${b.u.forgejoUser} → ${h.u.forgejoUser}`);
    if (b.u.credentialRotation !== h.u.credentialRotation && h.u.grants.vault)
      fact(`Vault credential rotated (credentialRotation ${b.u.credentialRotation} → ${h.u.credentialRotation})`);
  }
  const pb = b?.kind === "offboarded" ? b.o.purge : undefined;
  const ph = h?.kind === "offboarded" ? h.o.purge : undefined;
  if (ph && !pb) {
    events.push(purgeLabel(ph));
    flag(
      `destructive: the purge archives ${h!.kind === "offboarded" ? h!.o.home : "the home"}, then deletes the account, its group, the home and the user's Vault data`,
    );
  } else if (pb && !ph && h) events.push("purge approval withdrawn");
  else if (pb && ph && JSON.stringify(pb) !== JSON.stringify(ph)) events.push(`purge approval changed: ${purgeLabel(ph)}`);

  const gb = grantsOf(b);
  const gh = grantsOf(h);
  for (const area of GRANT_AREAS) {
    const before = new Set(gb[area]);
    const after = new Set(gh[area]);
    for (const x of gb[area]) if (!after.has(x)) lines.push(`  - ${area}: ${x}`);
    for (const x of gh[area]) if (!before.has(x)) lines.push(`  + ${area}: ${x}`);
  }
  if (!events.length && !lines.length) return undefined;
  const uid = uidB !== undefined && uidH !== undefined && uidB !== uidH ? `uid ${uidB} → ${uidH}` : `uid ${uidH ?? uidB}`;
  const who = renamedFrom ? `${renamedFrom} → ${name}` : name;
  return { header: `${who} (${uid})${events.length ? ": " + events.join("; ") : ""}`, lines };
}

/** Per user, what changed from `base` to `head`, in head roster order, then base-only users. */
export function diffPlans(base: Plan, head: Plan): UserChange[] {
  const B = entries(base);
  const H = entries(head);
  const baseOnly = [...B.keys()].filter((n) => !H.has(n));
  const headOnly = [...H.keys()].filter((n) => !B.has(n));
  const renames = new Map<string, string>(); // head name -> base name
  for (const h of headOnly) {
    const old = baseOnly.find((b) => uidOf(B.get(b)!) === uidOf(H.get(h)!) && ![...renames.values()].includes(b));
    if (old) renames.set(h, old);
  }
  const out: UserChange[] = [];
  for (const [name, h] of H) {
    const from = renames.get(name);
    const c = diffEntries(name, from ? B.get(from) : B.get(name), h, from);
    if (c) out.push(c);
  }
  for (const name of baseOnly) {
    if ([...renames.values()].includes(name)) continue;
    const c = diffEntries(name, B.get(name), undefined);
    if (c) out.push(c);
  }
  return out;
}

/** The changes as terminal lines: free text is quoted by the grant labels, any other control character escaped. */
export function formatDiff(changes: UserChange[]): string {
  return terminalLines(changes.flatMap((c) => [c.header, ...c.lines]));
}

// ---------------------------------------------------------------- CLI

export interface DiffResult {
  code: 0 | 1 | 2;
  stdout: string;
  stderr: string;
}

/** Runs the command on `args`, in `repo`, with `env` (Woodpecker's, for --ci). */
export function accessDiff(args: string[], repo: string, env: NodeJS.ProcessEnv = process.env): DiffResult {
  const err: string[] = [];
  const usage = "usage: npm run access-diff -- BASE_REF [HEAD_REF|FILE] [--roster PATH] [-C REPO]   or   npm run access-diff -- --ci";
  const pos: string[] = [];
  let rosterPath: string | undefined;
  let ci = false;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--ci") ci = true;
    else if (args[i] === "--roster") rosterPath = args[++i];
    else if (args[i] === "-C") repo = path.resolve(args[++i] ?? ".");
    else if (args[i].startsWith("--roster=")) rosterPath = args[i].slice(9);
    else if (args[i] === "-h" || args[i] === "--help") return { code: 0, stdout: usage, stderr: "" };
    else if (args[i].startsWith("-")) return { code: 2, stdout: "", stderr: `access-diff: unknown option ${args[i]}\n${usage}` };
    else pos.push(args[i]);
  }
  if (ci ? pos.length > 1 : pos.length < 1 || pos.length > 2) return { code: 2, stdout: "", stderr: usage };
  if (!rosterPath) {
    try {
      const stackFile = path.join(repo, STACK_FILE);
      rosterPath = parseStackConfig(fs.existsSync(stackFile) ? fs.readFileSync(stackFile, "utf8") : undefined).roster;
    } catch (e) {
      return { code: 2, stdout: "", stderr: `access-diff: ${STACK_FILE}: ${(e as Error).message}` };
    }
  }

  let baseRef: string | undefined = pos[0];
  const headArg: string | undefined = ci ? pos[0] : pos[1];
  if (ci) {
    const event = env.CI_PIPELINE_EVENT ?? "";
    if (event.startsWith("pull_request")) {
      const target = env.CI_COMMIT_TARGET_BRANCH || env.CI_COMMIT_BRANCH;
      if (!target) return { code: 2, stdout: "", stderr: "access-diff --ci: a pull request without CI_COMMIT_TARGET_BRANCH" };
      const tip = resolveCommit(repo, `origin/${target}`) ?? resolveCommit(repo, target);
      if (!tip)
        return {
          code: 2,
          stdout: "",
          stderr: `access-diff --ci: origin/${target} is not in this clone; the clone step must fetch the pull request's target branch (plugin-git setting fetch_target_branch: true)`,
        };
      const mb = spawnSync("git", ["-C", repo, "merge-base", tip, "HEAD"], { encoding: "utf8" });
      baseRef = mb.status === 0 ? mb.stdout.trim() : tip;
    } else if (event === "push" || event === "manual") {
      const b = pushBase(repo, env);
      if (!b.sha) {
        err.push(`access-diff --ci: nothing to compare with (${b.how})`);
        return { code: 0, stdout: "", stderr: err.join("\n") };
      }
      baseRef = b.sha;
    } else {
      return { code: 2, stdout: "", stderr: `access-diff --ci: no base for pipeline event ${JSON.stringify(event)} (pull_request or push)` };
    }
  }

  // Head: a file, a ref, or the working tree.
  let headLabel: string;
  let headText: string | undefined;
  if (headArg === undefined) {
    headLabel = rosterPath;
    const f = path.resolve(repo, rosterPath);
    headText = fs.existsSync(f) ? fs.readFileSync(f, "utf8") : undefined;
  } else if (fs.existsSync(path.resolve(repo, headArg)) && fs.statSync(path.resolve(repo, headArg)).isFile()) {
    headLabel = headArg;
    headText = fs.readFileSync(path.resolve(repo, headArg), "utf8");
  } else {
    headLabel = `${headArg}:${rosterPath}`;
    const r = gitShow(repo, headArg, rosterPath);
    if (r.error) return { code: 2, stdout: "", stderr: `access-diff: cannot read ${headLabel}: ${r.error}` };
    headText = r.text;
  }
  const head = planSide(headLabel, headText);
  if (head.missing) return { code: 2, stdout: "", stderr: `access-diff: ${headLabel}: no roster file` };
  if (!head.plan) return { code: 1, stdout: "", stderr: head.problems!.map(formatProblem).join("\n") };

  const short = /^[0-9a-f]{40,64}$/.test(baseRef!) ? baseRef!.slice(0, 12) : baseRef!;
  const baseLabel = `${short}:${rosterPath}`;
  const br = gitShow(repo, baseRef!, rosterPath);
  if (br.error) return { code: 2, stdout: "", stderr: `access-diff: cannot read ${baseLabel}: ${br.error}` };
  const base = planSide(baseLabel, br.text);
  let basePlan = base.plan;
  let note = "";
  if (base.missing) {
    basePlan = EMPTY;
    note = ` (the base has no ${rosterPath})`;
  } else if (!basePlan) {
    basePlan = EMPTY;
    note = ` (the base roster does not pass today's checker, ${base.problems!.length} problem(s): every grant is shown as added)`;
    err.push(...base.problems!.map((p) => `base: ${formatProblem(p)}`));
  }
  const changes = diffPlans(basePlan, head.plan);
  if (!changes.length) return { code: 0, stdout: "", stderr: err.join("\n") };
  return { code: 0, stdout: `${escapeControls(`access changes ${baseLabel} → ${headLabel}${note}:`)}\n${formatDiff(changes)}`, stderr: err.join("\n") };
}

function main(): void {
  const r = accessDiff(process.argv.slice(2), process.cwd());
  if (r.stdout) console.log(r.stdout);
  if (r.stderr) console.error(r.stderr);
  process.exit(r.code);
}

if (require.main === module) main();
