/**
 * Loads roster.yaml with source positions and validates it against the schema.
 *
 * Every problem is collected (YAML syntax, schema, cross-entry rules) and reported at
 * once, one line per problem: `file:line:col: path: expected …`.
 */
import * as fs from "fs";
import * as YAML from "yaml";
import type { z } from "zod";
import { planProblems } from "../plan";
import { escapeControls, Roster, RosterContext, rosterSchema, rosterSchemaWith } from "./schema";

/** Largest roster file accepted, in bytes. */
export const MAX_ROSTER_BYTES = 1 << 20;
/** Largest number of alias expansions (a YAML "billion laughs" guard). */
export const MAX_ALIAS_COUNT = 20;

export interface RosterProblem {
  file: string;
  line: number;
  col: number;
  /** Dotted field path, e.g. `users[2].email`; empty for the document. */
  path: string;
  message: string;
}

/** One line; a control character anywhere in it (a key's name, the file's) is written as `\uXXXX`. */
export function formatProblem(p: RosterProblem): string {
  return escapeControls(`${p.file}:${p.line}:${p.col}: ${p.path || "(document)"}: ${p.message}`);
}

/** Thrown when a roster is invalid. `problems` has every problem found. */
export class RosterError extends Error {
  constructor(
    public readonly file: string,
    public readonly problems: RosterProblem[],
  ) {
    super(
      `${file}: invalid roster, ${problems.length} problem(s); nothing was applied.\n` +
        problems.map((p) => "  " + formatProblem(p)).join("\n") +
        `\nFix the roster and run \`npm run roster:check -- ${file}\`.`,
    );
    this.name = "RosterError";
  }
}

export function pathToString(path: ReadonlyArray<PropertyKey>): string {
  let s = "";
  for (const seg of path) {
    if (typeof seg === "number") s += `[${seg}]`;
    else s += (s ? "." : "") + String(seg);
  }
  return s;
}

/** Finds the best source offset for a path: the node itself, or its deepest existing ancestor. */
function offsetFor(doc: YAML.Document.Parsed, path: ReadonlyArray<PropertyKey>, unknownKey?: string): number {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as unknown[], true) as YAML.Node | undefined;
    if (node && YAML.isNode(node) && node.range) {
      if (unknownKey !== undefined && n === path.length && YAML.isMap(node)) {
        const pair = node.items.find((it) => YAML.isScalar(it.key) && String(it.key.value) === unknownKey);
        if (pair && YAML.isNode(pair.key) && pair.key.range) return pair.key.range[0];
      }
      if (n < path.length && YAML.isMap(node)) {
        // The missing child's key may exist with a null value; point at the key then.
        const key = path[n];
        const pair = node.items.find((it) => YAML.isScalar(it.key) && String(it.key.value) === String(key));
        if (pair && YAML.isNode(pair.key) && pair.key.range) return pair.key.range[0];
      }
      return node.range[0];
    }
  }
  return 0;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "unrecognized_keys":
      return `unknown key(s) ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}; expected only known fields`;
    case "invalid_type":
      if (issue.expected === "int") return "expected an integer";
      return `expected ${issue.expected}` + (issue.message.includes("received") ? ` (${issue.message.replace(/^Invalid input: /, "")})` : "");
    case "invalid_value":
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    default:
      return issue.message.startsWith("Invalid") || issue.message.startsWith("Too") ? issue.message : `expected ${issue.message}`;
  }
}

/**
 * Parses and validates roster text. Returns the roster or every problem found.
 * `context` is for tests (a fixed `today`); the default reads the real clock.
 * The plan's own rules (`planProblems`, e.g. someone keeps sudo) run once the schema passes.
 */
export function parseRoster(
  text: string,
  file: string,
  context?: RosterContext,
): { roster: Roster; problems: [] } | { roster?: undefined; problems: RosterProblem[] } {
  const lineCounter = new YAML.LineCounter();
  const at = (offset: number, path: string, message: string): RosterProblem => {
    const pos = lineCounter.linePos(offset);
    return { file, line: pos.line, col: pos.col, path, message };
  };
  if (Buffer.byteLength(text) > MAX_ROSTER_BYTES)
    return { problems: [{ file, line: 1, col: 1, path: "", message: `expected a roster under ${MAX_ROSTER_BYTES} bytes` }] };

  const doc = YAML.parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const problems: RosterProblem[] = [];
  for (const e of [...doc.errors, ...doc.warnings]) {
    problems.push(at(e.pos[0], "", `YAML ${e.code}: ${e.message.split("\n")[0]}`));
  }
  if (problems.length) return { problems };

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    let off = 0;
    YAML.visit(doc, {
      Alias(_k, n) {
        if (!off && n.range) off = n.range[0];
      },
    });
    return { problems: [at(off, "", `expected at most ${MAX_ALIAS_COUNT} alias expansions (${(e as Error).message})`)] };
  }

  const result = (context ? rosterSchemaWith(context) : rosterSchema).safeParse(data);
  if (result.success) {
    const planned = planProblems(result.data);
    if (planned.length === 0) return { roster: result.data, problems: [] };
    for (const p of planned) problems.push(at(offsetFor(doc, p.path), pathToString(p.path), `expected ${p.message}`));
    problems.sort((a, b) => a.line - b.line || a.col - b.col);
    return { problems };
  }
  for (const issue of result.error.issues) {
    const unknownKey = issue.code === "unrecognized_keys" ? issue.keys[0] : undefined;
    const path = pathToString(issue.path);
    if (issue.code === "unrecognized_keys" && issue.keys.length > 1) {
      for (const k of issue.keys)
        problems.push(at(offsetFor(doc, issue.path, k), pathToString([...issue.path, k]), `unknown key ${JSON.stringify(k)}; expected only known fields`));
      continue;
    }
    const shown = issue.code === "unrecognized_keys" ? pathToString([...issue.path, unknownKey!]) : path;
    problems.push(at(offsetFor(doc, issue.path, unknownKey), shown, describeIssue(issue)));
  }
  problems.sort((a, b) => a.line - b.line || a.col - b.col);
  return { problems };
}

/** Reads and validates a roster file; throws RosterError listing every problem. */
export function loadRoster(file: string): Roster {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new RosterError(file, [
      {
        file,
        line: 1,
        col: 1,
        path: "",
        message: `expected a readable roster file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); set workstations:roster to its path`,
      },
    ]);
  }
  const r = parseRoster(text, file);
  if (!r.roster) throw new RosterError(file, r.problems);
  return r.roster;
}
