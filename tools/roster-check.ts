/**
 * `npm run roster:check -- FILE`: validates a roster without touching anything.
 * Exit 0 when valid; otherwise prints one line per problem (file:line:col: path: expected …)
 * and exits 1. Exit 2 on usage errors.
 */
import * as fs from "fs";
import { formatProblem, parseRoster } from "../components/roster/load";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: npm run roster:check -- FILE [FILE...]");
  process.exit(2);
}
let bad = 0;
for (const file of files) {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    console.error(`${file}:1:1: (document): expected a readable file (${(e as NodeJS.ErrnoException).code})`);
    bad++;
    continue;
  }
  const r = parseRoster(text, file);
  if (r.roster) {
    const by = (s: string) => r.roster.users.filter((u) => u.state === s).length;
    console.log(`${file}: ok (${r.roster.users.length} users: ${by("active")} active, ${by("suspended")} suspended, ${by("offboarded")} offboarded)`);
  } else {
    for (const p of r.problems) console.error(formatProblem(p));
    bad++;
  }
}
process.exit(bad ? 1 : 0);
