/**
 * `npm run access-diff -- BASE_REF [HEAD_REF|FILE]`: who gains or loses what between two
 * versions of the repository, from the plan of each (a reviewer reads grants, not a YAML diff).
 *
 * Each side is read the way the program deploys it (tools/access-side.ts): its own stack
 * config's `workstations:roster` (Pulumi.devvm.yaml, else Pulumi.yaml's default, else
 * roster.yaml), that roster, planned by its own planning code: the base commit's code plans the
 * base, so a pull request that changes DEFAULT_PROFILES or points the roster key at another
 * file shows what that grants. The head is the working tree (default), another ref, or a
 * roster file (planned with the working tree's code). `--roster PATH` reads PATH on both sides.
 * Both plans are compared through `userGrants` (tools/access-report.ts), the same reading of
 * `UserPlan` the access report prints.
 *
 * Besides the users, `!` lines under the header say what else changed access: the roster key,
 * the planning code, this tooling and CI, the rest of the program, the stack config's keys, and
 * a side whose own code could not run (planned with this checkout's code instead).
 * Prints nothing when none of that and no grant or account fact changed.
 *
 * `--ci` takes the base from Woodpecker's environment: on a pull request the merge base of
 * the target branch (`origin/$CI_COMMIT_TARGET_BRANCH`, fetched by the clone step), on a push
 * the commit before the push (`pushBase`).
 *
 * Lines: `+`/`-` a grant added/removed, `~` an account fact changed, `!` needs attention (a
 * uid change, a rename, a removal from the roster, an approved purge). Free text is quoted and
 * no control character is printed raw.
 * `-C REPO` runs in another checkout (default: the current directory).
 * Exit 0 (printed or empty), 1 the head roster is invalid (the checker's file:line:col lines
 * on stderr), 2 usage, config or git errors.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { OffboardedPlan, Plan, UserPlan } from "../components/plan";
import { GRANT_AREAS, Grants, noGrants, purgeLabel, ssoOf, terminalLines, userGrants } from "./access-report";
import { loadSide, NS, plannerClosure, ROSTER_KEY, Side, SideTree, STACK, STACK_FILE, StackConfig, TOOL_ROOT } from "./access-side";

export { NS, STACK, STACK_FILE };

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

type Entry = { kind: "user"; u: UserPlan } | { kind: "offboarded"; o: OffboardedPlan };
const EMPTY: Plan = {
  users: [],
  offboarded: [],
  reservedUids: [],
  admins: [],
  adminForgejoUsers: [],
  branchProtection: { branch: "master", pushWhitelist: [], mergeWhitelist: [] },
  namespaces: {},
  web: { terminal: [], admins: [], t3: [], dashboard: [] },
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
  if (h?.kind === "user" && h.u.adopt && !(b?.kind === "user" && b.u.adopt))
    flag(
      `adoption: the existing account ${name} (uid ${uidH}), which this program did not create, is taken over and gets this entry's keys, groups and sudo; check it is that person's account`,
    );
  if (h?.kind === "user" && h.u.adopt && h.u.tighten && !(b?.kind === "user" && b.u.adopt && b.u.tighten))
    flag(
      `tighten: the adopted account ${name} loses every supplementary group the roster does not name (it keeps ${h.u.groups.join(", ") || "none"}) and its home becomes 0750, owned by ${name}; the groups it loses are the host's (\`npm run takeover -- plan\` lists them, one line each, read from the host)`,
    );
  if (h?.kind === "user" && h.u.tighten && !h.u.adopt && !(b?.kind === "user" && b.u.tighten))
    fact("tighten: set, but the account is not adopted: it has no effect (an account this program created has exactly the roster's groups)");
  if (b?.kind === "user" && h?.kind === "user") {
    if (b.u.role !== h.u.role) fact(`role ${b.u.role} → ${h.u.role}`);
    if (b.u.email !== h.u.email) fact(`email (Claude identity) ${b.u.email} → ${h.u.email}`);
    if (b.u.forgejoUser !== h.u.forgejoUser) fact(`Forgejo user ${b.u.forgejoUser} → ${h.u.forgejoUser}`);
    if (ssoOf(b.u) !== ssoOf(h.u))
      flag(
        `SSO identity ${ssoOf(b.u)} → ${ssoOf(h.u)}: whoever logs in to authentik as ${ssoOf(h.u)} reaches ${name}'s web terminal and T3 Code, and ${ssoOf(b.u)} no longer does; check ${ssoOf(h.u)} is ${name}`,
      );
    if (b.u.credentialRotation !== h.u.credentialRotation && h.u.grants.vault)
      fact(`Vault credential rotated (credentialRotation ${b.u.credentialRotation} → ${h.u.credentialRotation})`);
  }
  // The forgejoEmail exception: a token login checked against another address than the user's email.
  if (h?.kind === "user" && h.u.forgejoEmail && h.u.forgejoEmail !== h.u.email) {
    const same = b?.kind === "user" && b.u.forgejoUser === h.u.forgejoUser && (b.u.forgejoEmail ?? b.u.email) === h.u.forgejoEmail;
    if (!same)
      flag(
        `forgejoEmail exception: the Forgejo login ${h.u.forgejoUser} is checked against ${h.u.forgejoEmail}, not ${name}'s email ${h.u.email}; confirm that account is ${name}'s`,
      );
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

// ---------------------------------------------------------------- what else changed: code and config

/** Files whose change changes what a roster plans to, besides the planner's own module closure. */
const PLANNING = /^(components\/plan\.ts|components\/roster\/|components\/hostContract\.ts|tools\/access-report\.ts)/;
/** What prints this diff and runs CI's checks (and the dependencies all of it runs on). */
const TOOLING = /^(tools\/(access-diff|access-side|roster-check)\.ts|\.woodpecker\/|package\.json$|package-lock\.json$)/;
/** The rest of the program: how a plan becomes accounts, sudoers, tokens and bindings. */
const PROGRAM = /^(components\/|scripts\/|config\/|index\.ts$|Pulumi\.yaml$|tsconfig[^/]*\.json$)/;

/** Files changed from `base` to `head` (a commit, or the working tree with its untracked files). */
export function changedFiles(repo: string, base: string, head?: string): string[] {
  const git = (...a: string[]) => {
    const r = spawnSync("git", ["-C", repo, ...a], { encoding: "utf8", maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`git ${a[0]}: ${(r.stderr || "").trim().split("\n")[0]}`);
    return r.stdout.split("\0").filter(Boolean);
  };
  const files = git("diff", "--name-only", "-z", "--no-renames", base, ...(head ? [head] : []));
  if (!head) files.push(...git("ls-files", "-z", "--others", "--exclude-standard"));
  return [...new Set(files)].sort();
}

const some = (xs: string[]) => (xs.length > 4 ? `${xs.slice(0, 4).join(", ")} and ${xs.length - 4} more` : xs.join(", "));

/** Config keys whose effective value differs (the roster key has its own line). */
function changedKeys(b: StackConfig, h: StackConfig): string[] {
  const keys = new Set([...Object.keys(b.values), ...Object.keys(h.values)]);
  return [...keys].filter((k) => k !== ROSTER_KEY && JSON.stringify(b.values[k]) !== JSON.stringify(h.values[k])).sort();
}

/** The `!` lines about the repository: the roster key, planning code, tooling, program code, stack config, a fallback. */
export function repositoryFlags(base: Side, head: Side, changed: string[] | undefined, planner: string[]): string[] {
  const out: string[] = [];
  if (base.config && head.config && base.roster !== head.roster)
    out.push(
      `! ${ROSTER_KEY} ${base.roster} → ${head.roster} (${head.config.rosterFrom}): the program applies ${head.roster} from now on; the users below are compared across the two files`,
    );
  if (changed) {
    const planning = changed.filter((f) => PLANNING.test(f) || planner.includes(f));
    const tooling = changed.filter((f) => !planning.includes(f) && TOOLING.test(f));
    const program = changed.filter((f) => !planning.includes(f) && !tooling.includes(f) && PROGRAM.test(f));
    if (planning.length)
      out.push(`! planning code changed (${some(planning)}): each side was planned with its own code, so what the change grants is in the lines below`);
    if (tooling.length)
      out.push(`! access tooling changed (${some(tooling)}): this diff and CI's roster check are the head's own code; review these files as access changes`);
    if (program.length)
      out.push(`! program code changed (${some(program)}): how the plan is applied (accounts, sudoers, Forgejo, Vault, Kubernetes) is not shown per user`);
  }
  if (base.config && head.config) {
    const keys = changedKeys(base.config, head.config);
    if (keys.length) out.push(`! stack config changed (${head.config.stackFile}): ${some(keys)}`);
  }
  for (const [which, s] of [
    ["base", base],
    ["head", head],
  ] as const)
    if (s.fallback)
      out.push(
        `! the ${which}'s planning code could not run (${s.fallback}): the ${which} was planned with this checkout's code, so a change to the planning code is not in the lines below`,
      );
  return out;
}

// ---------------------------------------------------------------- CLI

export interface DiffResult {
  code: 0 | 1 | 2;
  stdout: string;
  stderr: string;
}

interface Args {
  ci: boolean;
  baseRef?: string;
  headArg?: string;
  roster?: string;
  repo: string;
}

const USAGE = "usage: npm run access-diff -- BASE_REF [HEAD_REF|FILE] [--roster PATH] [-C REPO]   or   npm run access-diff -- --ci";
const fail = (code: 1 | 2, stderr: string): DiffResult => ({ code, stdout: "", stderr: terminalLines(stderr.split("\n")) });

function parseArgs(args: string[], repo: string): Args | DiffResult {
  const pos: string[] = [];
  const o: Args = { ci: false, repo };
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--ci") o.ci = true;
    else if (args[i] === "--roster") o.roster = args[++i];
    else if (args[i] === "-C") o.repo = path.resolve(args[++i] ?? ".");
    else if (args[i].startsWith("--roster=")) o.roster = args[i].slice(9);
    else if (args[i] === "-h" || args[i] === "--help") return { code: 0, stdout: USAGE, stderr: "" };
    else if (args[i].startsWith("-")) return fail(2, `access-diff: unknown option ${args[i]}\n${USAGE}`);
    else pos.push(args[i]);
  }
  if (o.ci ? pos.length > 1 : pos.length < 1 || pos.length > 2) return fail(2, USAGE);
  o.baseRef = o.ci ? undefined : pos[0];
  o.headArg = o.ci ? pos[0] : pos[1];
  return o;
}

/** The base commit: the ref given, or for --ci the pull request's merge base or the push's base. */
function baseCommit(o: Args, env: NodeJS.ProcessEnv): { sha: string } | { result: DiffResult } {
  if (!o.ci) {
    const sha = resolveCommit(o.repo, o.baseRef!);
    return sha ? { sha } : { result: fail(2, `access-diff: cannot read ${o.baseRef}: not a commit of ${o.repo}`) };
  }
  const event = env.CI_PIPELINE_EVENT ?? "";
  if (event.startsWith("pull_request")) {
    const target = env.CI_COMMIT_TARGET_BRANCH || env.CI_COMMIT_BRANCH;
    if (!target) return { result: fail(2, "access-diff --ci: a pull request without CI_COMMIT_TARGET_BRANCH") };
    const tip = resolveCommit(o.repo, `origin/${target}`) ?? resolveCommit(o.repo, target);
    if (!tip)
      return {
        result: fail(
          2,
          `access-diff --ci: origin/${target} is not in this clone; the clone step must fetch the pull request's target branch (plugin-git setting fetch_target_branch: true)`,
        ),
      };
    const mb = spawnSync("git", ["-C", o.repo, "merge-base", tip, "HEAD"], { encoding: "utf8" });
    return { sha: mb.status === 0 ? mb.stdout.trim() : tip };
  }
  if (event === "push" || event === "manual") {
    const b = pushBase(o.repo, env);
    return b.sha ? { sha: b.sha } : { result: { code: 0, stdout: "", stderr: `access-diff --ci: nothing to compare with (${b.how})` } };
  }
  return { result: fail(2, `access-diff --ci: no base for pipeline event ${JSON.stringify(event)} (pull_request or push)`) };
}

/** The head: a roster file given by hand, another commit, or the working tree. */
function headTree(o: Args): { tree: SideTree; file?: string; name?: string } | { result: DiffResult } {
  if (o.headArg === undefined) return { tree: new SideTree(o.repo) };
  const f = path.resolve(o.repo, o.headArg);
  if (fs.existsSync(f) && fs.statSync(f).isFile()) return { tree: new SideTree(o.repo), file: o.headArg };
  const sha = resolveCommit(o.repo, o.headArg);
  if (!sha) return { result: fail(2, `access-diff: cannot read ${o.headArg}: neither a file nor a commit of ${o.repo}`) };
  return { tree: new SideTree(o.repo, sha), name: o.headArg };
}

/** Runs the command on `args`, in `repo`, with `env` (Woodpecker's, for --ci). */
export function accessDiff(args: string[], repo: string, env: NodeJS.ProcessEnv = process.env): DiffResult {
  const o = parseArgs(args, repo);
  if ("code" in o) return o;
  const b = baseCommit(o, env);
  if ("result" in b) return b.result;
  const h = headTree(o);
  if ("result" in h) return h.result;
  const baseTree = new SideTree(o.repo, b.sha);
  const nodeModules = fs.existsSync(path.join(o.repo, "node_modules")) ? path.join(o.repo, "node_modules") : path.join(TOOL_ROOT, "node_modules");
  try {
    const head = loadSide(h.tree, { name: h.name, roster: o.roster, file: h.file, nodeModules });
    if ("missing" in head.planned) return fail(2, `access-diff: ${head.label}: no roster file`);
    if ("problems" in head.planned) return fail(1, head.planned.problems.join("\n"));
    const short = /^[0-9a-f]{40,64}$/.test(o.baseRef ?? b.sha) ? b.sha.slice(0, 12) : o.baseRef!;
    const base = loadSide(baseTree, { name: short, roster: o.roster, nodeModules });
    return report(o, b.sha, h, base, head, head.planned.plan);
  } catch (e) {
    return fail(2, `access-diff: ${(e as Error).message}`);
  } finally {
    baseTree.cleanup();
    h.tree.cleanup();
  }
}

/** The printed diff of two planned sides. */
function report(o: Args, baseSha: string, h: { tree: SideTree; file?: string }, base: Side, head: Side, headPlan: Plan): DiffResult {
  const err: string[] = [];
  let basePlan = EMPTY;
  let note = "";
  if ("missing" in base.planned) note = ` (the base has no ${base.roster})`;
  else if ("problems" in base.planned) {
    note = ` (the base roster does not pass its checker, ${base.planned.problems.length} problem(s): every grant is shown as added)`;
    err.push(...base.planned.problems.map((l) => `base: ${l}`));
  } else basePlan = base.planned.plan;
  const changed = changedFiles(o.repo, baseSha, h.tree.sha);
  const flags = repositoryFlags(base, h.file !== undefined ? { ...head, config: undefined } : head, changed, plannerClosure());
  const changes = diffPlans(basePlan, headPlan);
  const stderr = terminalLines(err);
  if (!changes.length && !flags.length) return { code: 0, stdout: "", stderr };
  const out = [`access changes ${base.label} → ${head.label}${note}:`, ...flags.map((f) => `  ${f}`)];
  return { code: 0, stdout: terminalLines(out) + (changes.length ? `\n${formatDiff(changes)}` : ""), stderr };
}

function main(): void {
  const r = accessDiff(process.argv.slice(2), process.cwd());
  if (r.stdout) console.log(r.stdout);
  if (r.stderr) console.error(r.stderr);
  process.exit(r.code);
}

if (require.main === module) main();
