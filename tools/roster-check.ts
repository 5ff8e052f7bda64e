/**
 * `npm run roster:check [-- FILE...]`: validates rosters without touching anything.
 * Without FILE it checks the roster the program applies: the stack's `workstations:roster`
 * (Pulumi.devvm.yaml, else Pulumi.yaml's default, else roster.yaml; tools/access-side.ts reads
 * it as the access diff does), which is what CI runs, so a pull request that points the key at
 * another file gets that file checked.
 * Exit 0 when valid; otherwise prints one line per problem (file:line:col: path: expected …)
 * and exits 1. Exit 2 on usage or stack config errors.
 */
import * as fs from "fs";
import * as path from "path";
import { formatProblem, parseRoster } from "../components/roster/load";
import { escapeControls } from "../components/roster/schema";
import { readStackConfig, ROSTER_KEY } from "./access-side";

let files = process.argv.slice(2);
if (files.some((f) => f.startsWith("-"))) {
  console.error("usage: npm run roster:check [-- FILE...]   (no FILE: the roster workstations:roster names)");
  process.exit(2);
}
if (files.length === 0) {
  try {
    const cfg = readStackConfig((f) => (fs.existsSync(f) && fs.statSync(f).isFile() ? fs.readFileSync(path.resolve(f), "utf8") : undefined));
    const from = cfg.rosterFrom === "the default" ? `${ROSTER_KEY} is not set: the default` : `${ROSTER_KEY} in ${cfg.rosterFrom}`;
    console.log(escapeControls(`roster-check: the configured roster is ${cfg.roster} (${from})`));
    files = [cfg.roster];
  } catch (e) {
    console.error(escapeControls(`roster-check: ${(e as Error).message}`));
    process.exit(2);
  }
}
let bad = 0;
for (const file of files) {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    console.error(escapeControls(`${file}:1:1: (document): expected a readable file (${(e as NodeJS.ErrnoException).code})`));
    bad++;
    continue;
  }
  const r = parseRoster(text, file);
  if (r.roster) {
    const by = (s: string) => r.roster.users.filter((u) => u.state === s).length;
    console.log(
      escapeControls(`${file}: ok (${r.roster.users.length} users: ${by("active")} active, ${by("suspended")} suspended, ${by("offboarded")} offboarded)`),
    );
  } else {
    for (const p of r.problems) console.error(formatProblem(p));
    bad++;
  }
}
process.exit(bad ? 1 : 0);
