/**
 * The host agents' sources (scripts/agents): an entry point and the modules it imports,
 * followed through their relative imports. For the tests that read the agents' code.
 */
import * as fs from "node:fs";
import * as path from "node:path";

/** scripts/agents: the host agents' tree, shipped as it is to /usr/local/lib/workstations */
export const AGENTS_DIR = path.resolve(__dirname, "..", "scripts", "agents");

/** Every file `entry` is made of: itself and, transitively, the modules it imports by a relative path. */
export function agentFiles(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (f: string): void => {
    if (seen.has(f)) return;
    seen.add(f);
    const src = fs.readFileSync(f, "utf8");
    for (const m of src.matchAll(/^(?:import|export)\b[^'"]*?\bfrom ['"](\.{1,2}\/[^'"]+)['"]|^import ['"](\.{1,2}\/[^'"]+)['"]/gm))
      visit(path.resolve(path.dirname(f), m[1] ?? m[2]));
  };
  visit(entry);
  return [...seen];
}

/** The source text of agentFiles(entry), one file after the other. */
export function agentSource(entry: string): string {
  return agentFiles(entry)
    .map((f) => fs.readFileSync(f, "utf8"))
    .join("\n");
}
