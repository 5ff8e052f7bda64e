/**
 * One side of an access diff (tools/access-diff.ts): a commit or the working tree, read the way
 * the program deploys it. Its own stack config says which roster the program applies
 * (`workstations:roster` of Pulumi.devvm.yaml, else Pulumi.yaml's default, else roster.yaml),
 * and its own planning code turns that roster into a plan.
 *
 * The planning code is the module closure of tools/access-report.ts (components/plan.ts,
 * components/roster/, components/hostContract.ts, …). A side whose closure is byte-identical to
 * this checkout's is planned in this process. Otherwise its code runs as a child: a commit is
 * extracted with `git archive` into a temp dir (node_modules linked from the head), the working
 * tree of another checkout runs in place, and the side's `tools/access-report.ts --json ROSTER`
 * prints its plan. When that code cannot run (absent, crashing, or printing no plan this diff
 * reads), the side is planned with this checkout's code and `fallback` says why.
 */
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { Plan, planRoster } from "../components/plan";
import { formatProblem, parseRoster } from "../components/roster/load";
import * as accessReport from "./access-report";

/** This checkout (the code that is running). */
export const TOOL_ROOT = path.resolve(__dirname, "..");
export const STACK = "devvm";
export const STACK_FILE = `Pulumi.${STACK}.yaml`;
export const PROJECT_FILE = "Pulumi.yaml";
export const NS = "workstations";
export const ROSTER_KEY = `${NS}:roster`;
/** Longest a side's planning code may run (ts-node on a loaded 2-core machine: a few seconds). */
const PLANNER_TIMEOUT_MS = 180_000;

// ---------------------------------------------------------------- a tree: a commit or a working tree

/** A side's files: a commit of `repo`, or a directory (a working tree). */
export class SideTree {
  private extracted?: string;

  constructor(
    readonly repo: string,
    /** A full commit id, or undefined for the working tree `repo` itself. */
    readonly sha?: string,
  ) {}

  /** A regular file's text; undefined when there is none. Throws one line on a git error. */
  read(file: string): string | undefined {
    if (!this.sha) {
      const f = path.join(this.repo, file);
      return fs.existsSync(f) && fs.statSync(f).isFile() ? fs.readFileSync(f, "utf8") : undefined;
    }
    const r = spawnSync("git", ["-C", this.repo, "show", `${this.sha}:${file}`], { encoding: "utf8", maxBuffer: 64 << 20 });
    if (r.status === 0) return r.stdout;
    const err = (r.stderr || r.error?.message || "").trim();
    if (/does not exist in|exists on disk, but not in/.test(err)) return undefined;
    throw new Error(`cannot read ${this.sha.slice(0, 12)}:${file}: ${err.split("\n")[0] || `git show exited ${r.status}`}`);
  }

  /** Git blob ids of `files` (relative paths) in this tree; a missing file has none. */
  blobIds(files: string[]): Map<string, string | undefined> {
    const out = new Map<string, string | undefined>(files.map((f) => [f, undefined]));
    if (!this.sha) {
      for (const f of files) {
        const text = this.readBytes(path.join(this.repo, f));
        if (text) out.set(f, blobId(text));
      }
      return out;
    }
    const r = spawnSync("git", ["-C", this.repo, "ls-tree", "-z", this.sha, "--", ...files], { encoding: "utf8", maxBuffer: 16 << 20 });
    if (r.status !== 0) throw new Error(`git ls-tree ${this.sha.slice(0, 12)}: ${(r.stderr || "").trim().split("\n")[0]}`);
    for (const entry of r.stdout.split("\0").filter(Boolean)) {
      const m = /^100[0-9]{3} blob ([0-9a-f]+)\t(.*)$/s.exec(entry);
      if (m) out.set(m[2], m[1]);
    }
    return out;
  }

  private readBytes(f: string): Buffer | undefined {
    return fs.existsSync(f) && fs.statSync(f).isFile() ? fs.readFileSync(f) : undefined;
  }

  /** A directory holding this tree's files: the working tree, or the commit extracted once into a temp dir. */
  dir(nodeModules: string): string {
    if (!this.sha) return this.repo;
    if (this.extracted) return this.extracted;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-access-side-"));
    this.extracted = dir;
    const tar = path.join(dir, ".side.tar");
    const a = spawnSync("git", ["-C", this.repo, "archive", "--format=tar", "-o", tar, this.sha], { encoding: "utf8" });
    if (a.status !== 0) throw new Error(`git archive ${this.sha.slice(0, 12)}: ${(a.stderr || "").trim().split("\n")[0]}`);
    const x = spawnSync("tar", ["-x", "-f", tar, "-C", dir], { encoding: "utf8" });
    if (x.status !== 0) throw new Error(`tar -x: ${(x.stderr || x.error?.message || "").trim().split("\n")[0]}`);
    fs.rmSync(tar);
    if (!fs.existsSync(path.join(dir, "node_modules"))) fs.symlinkSync(nodeModules, path.join(dir, "node_modules"));
    return dir;
  }

  cleanup(): void {
    if (this.extracted) fs.rmSync(this.extracted, { recursive: true, force: true });
    this.extracted = undefined;
  }
}

/** Git's blob id of `bytes` (what `git hash-object` prints). */
export function blobId(bytes: Buffer): string {
  return crypto
    .createHash("sha1")
    .update(Buffer.concat([Buffer.from(`blob ${bytes.length}\0`), bytes]))
    .digest("hex");
}

// ---------------------------------------------------------------- stack config: which roster

/** The config map of a Pulumi YAML file's `config:` (empty when absent); throws on bad YAML. */
function configMap(text: string | undefined, file: string): Record<string, unknown> {
  if (text === undefined) return {};
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    throw new Error(`${file}: not YAML (${(e as Error).message.split("\n")[0]})`, { cause: e });
  }
  const cfg = doc && typeof doc === "object" ? (doc as { config?: unknown }).config : undefined;
  return cfg && typeof cfg === "object" && !Array.isArray(cfg) ? (cfg as Record<string, unknown>) : {};
}

/** A project-level config entry's value: `{default}`, `{value}` or a plain value. */
function projectValue(v: unknown): unknown {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    return "value" in o ? o.value : o.default;
  }
  return v;
}

/** A side's stack config as the CLI reads it: Pulumi.yaml's `stackConfigDir` and project defaults, then Pulumi.devvm.yaml. */
export interface StackConfig {
  /** The stack file's path in the tree (Pulumi.devvm.yaml, or under `stackConfigDir`). */
  stackFile: string;
  /** Every key's effective value: the stack's, else the project's default. */
  values: Record<string, unknown>;
  /** The roster the program applies, relative to the project. */
  roster: string;
  /** Where `roster` was set, for messages: the stack file, Pulumi.yaml, or "the default". */
  rosterFrom: string;
}

/** Reads a side's stack config through `read`; throws one line naming the file and key when malformed. */
export function readStackConfig(read: (file: string) => string | undefined): StackConfig {
  const projectText = read(PROJECT_FILE);
  const projectDoc = projectText === undefined ? undefined : (YAML.parse(projectText) as { stackConfigDir?: unknown } | null);
  const dir = projectDoc && typeof projectDoc === "object" && typeof projectDoc.stackConfigDir === "string" ? projectDoc.stackConfigDir : "";
  const stackFile = path.posix.join(dir, STACK_FILE);
  const project = configMap(projectText, PROJECT_FILE);
  const stack = configMap(read(stackFile), stackFile);
  const values: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(project)) values[k] = projectValue(v);
  Object.assign(values, stack);
  const raw = values[ROSTER_KEY] ?? "roster.yaml";
  const rosterFrom = ROSTER_KEY in stack ? stackFile : ROSTER_KEY in project ? `${PROJECT_FILE} (project default)` : "the default";
  return { stackFile, values, roster: checkRosterPath(raw, rosterFrom), rosterFrom };
}

/** A roster path the diff can read: a relative path inside the repository. */
export function checkRosterPath(raw: unknown, from: string): string {
  if (typeof raw !== "string" || !raw.trim()) throw new Error(`${ROSTER_KEY} in ${from} is not a file name`);
  const p = path.posix.normalize(raw.trim());
  if (path.posix.isAbsolute(p) || p === ".." || p.startsWith("../"))
    throw new Error(`${ROSTER_KEY} in ${from} is ${JSON.stringify(raw)}: expected a file inside the repository (a path relative to the project)`);
  return p;
}

// ---------------------------------------------------------------- planning with the side's own code

/** The repository-relative files of this checkout's planning code (the modules tools/access-report.ts loads). */
export function plannerClosure(): string[] {
  const entry = require.cache[require.resolve("./access-report")];
  void accessReport;
  const seen = new Set<string>();
  const todo = entry ? [entry] : [];
  while (todo.length) {
    const m = todo.pop()!;
    if (seen.has(m.filename) || m.filename.split(path.sep).includes("node_modules")) continue;
    seen.add(m.filename);
    todo.push(...m.children);
  }
  return [...seen]
    .map((f) => path.relative(TOOL_ROOT, f).split(path.sep).join("/"))
    .filter((f) => !f.startsWith("../"))
    .sort();
}

/** True when `tree`'s copy of every planning file is this checkout's. */
export function samePlanner(tree: SideTree): boolean {
  if (!tree.sha && path.resolve(tree.repo) === TOOL_ROOT) return true;
  const files = plannerClosure();
  const theirs = tree.blobIds(files);
  const ours = new SideTree(TOOL_ROOT).blobIds(files);
  return files.every((f) => theirs.get(f) !== undefined && theirs.get(f) === ours.get(f));
}

/** What planning a roster gave: a plan, the checker's problems (formatted lines), or no roster at all. */
export type Planned = { plan: Plan } | { problems: string[] } | { missing: true };

/** Plans `text` with this checkout's code. */
export function planHere(text: string | undefined, label: string): Planned {
  if (text === undefined) return { missing: true };
  const r = parseRoster(text, label);
  return r.roster ? { plan: planRoster(r.roster) } : { problems: r.problems.map(formatProblem) };
}

/** The least a plan must have for the diff to read it (a plan JSON from another version of the code). */
function isPlan(x: unknown): x is Plan {
  const p = x as Plan;
  return (
    !!p &&
    Array.isArray(p.users) &&
    Array.isArray(p.offboarded) &&
    p.users.every(
      (u) =>
        typeof u?.name === "string" &&
        typeof u.uid === "number" &&
        typeof u.state === "string" &&
        !!u.grants &&
        Array.isArray(u.grants.sshKeys) &&
        Array.isArray(u.grants.timers) &&
        Array.isArray(u.groups) &&
        Array.isArray(u.namespaces),
    ) &&
    p.offboarded.every((o) => typeof o?.name === "string" && typeof o.uid === "number")
  );
}

/**
 * Runs `dir`'s own tools/access-report.ts --json on `roster` (relative to `dir`). Returns what
 * it planned, or `fail`: why this code gave no answer the diff can read.
 */
export function planWithCodeIn(dir: string, roster: string, nodeModules: string): Planned | { fail: string } {
  if (!fs.existsSync(path.join(dir, "tools/access-report.ts"))) return { fail: "it has no tools/access-report.ts" };
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? os.tmpdir(), TS_NODE_TRANSPILE_ONLY: "true" };
  if (!fs.existsSync(path.join(dir, "node_modules"))) env.NODE_PATH = nodeModules;
  const r = spawnSync(process.execPath, ["--require", require.resolve("ts-node/register/transpile-only"), "tools/access-report.ts", "--json", roster], {
    cwd: dir,
    env,
    encoding: "utf8",
    timeout: PLANNER_TIMEOUT_MS,
    maxBuffer: 64 << 20,
  });
  /** The line that says what went wrong: an `…Error: …` line of a crash, else the last line that is not node's version. */
  const why = (s: string) => {
    const lines = s.split("\n").map((l) => l.trim());
    return (lines.find((l) => /^[A-Za-z]*Error\b/.test(l)) ?? lines.filter((l) => l && !/^Node\.js v/.test(l)).pop() ?? "").slice(0, 300);
  };
  if (r.error || r.signal) return { fail: `it did not finish: ${r.error?.message ?? r.signal}` };
  if (r.status === 1 && /: invalid roster, \d+ problem\(s\)/.test(r.stderr))
    return {
      problems: r.stderr
        .split("\n")
        .filter((l) => /^ {2}\S/.test(l))
        .map((l) => l.trim()),
    };
  if (r.status === 1 && /expected a readable roster file \(ENOENT\)/.test(r.stderr)) return { missing: true };
  if (r.status !== 0) return { fail: `exit ${r.status}: ${why(r.stderr) || why(r.stdout)}` };
  let plan: unknown;
  try {
    plan = JSON.parse(r.stdout);
  } catch {
    return { fail: "its output is not JSON" };
  }
  return isPlan(plan) ? { plan } : { fail: "its JSON is not a plan this access-diff reads" };
}

// ---------------------------------------------------------------- a side

export interface Side {
  /** e.g. `3f2a…:roster.yaml`, `roster.yaml`, or the file given. */
  label: string;
  /** The stack config, when the side has one the diff read (not for a roster file given by hand). */
  config?: StackConfig;
  roster: string;
  planned: Planned;
  /** Set when the side's own planning code could not run: why; it was planned with this checkout's. */
  fallback?: string;
}

export interface SideOptions {
  /** Short name of the tree in labels (`3f2a…`, `HEAD~1`); absent for the working tree. */
  name?: string;
  /** `--roster PATH`: this roster on both sides, whatever the config says. */
  roster?: string;
  /** A roster file given by hand (the head only): planned with the working tree's code. */
  file?: string;
  nodeModules: string;
}

/** Reads and plans one side; throws one line on a git or config error. */
export function loadSide(tree: SideTree, o: SideOptions): Side {
  if (o.file !== undefined) {
    const text = fs.existsSync(path.resolve(tree.repo, o.file)) ? fs.readFileSync(path.resolve(tree.repo, o.file), "utf8") : undefined;
    return planSide(tree, { label: o.file, roster: path.relative(tree.repo, path.resolve(tree.repo, o.file)), text }, o.nodeModules);
  }
  let config: StackConfig;
  try {
    config = readStackConfig((f) => tree.read(f));
  } catch (e) {
    throw new Error(`${o.name ? o.name + ": " : ""}${(e as Error).message}`, { cause: e });
  }
  const roster = o.roster !== undefined ? checkRosterPath(o.roster, "--roster") : config.roster;
  const label = o.name ? `${o.name}:${roster}` : roster;
  return { ...planSide(tree, { label, roster, text: tree.read(roster) }, o.nodeModules), config };
}

function planSide(tree: SideTree, s: { label: string; roster: string; text: string | undefined }, nodeModules: string): Side {
  const side: Side = { label: s.label, roster: s.roster, planned: { missing: true } };
  if (s.text === undefined) return side;
  if (samePlanner(tree)) return { ...side, planned: planHere(s.text, s.label) };
  const own = planWithCodeIn(tree.dir(nodeModules), s.roster, nodeModules);
  if (!("fail" in own)) return { ...side, planned: relabel(own, s) };
  return { ...side, planned: planHere(s.text, s.label), fallback: own.fail };
}

/** The child names the roster by its path; problems are shown with the side's label instead. */
function relabel(p: Planned, s: { label: string; roster: string }): Planned {
  if (!("problems" in p) || s.label === s.roster) return p;
  return { problems: p.problems.map((l) => (l.startsWith(`${s.roster}:`) ? s.label + l.slice(s.roster.length) : l)) };
}
