/**
 * Where a user's clones live (issue 21 item 6), planned from the roster's `codeLayout` and
 * `repos`. Paths are relative to the home. The team keeps two layouts
 * (../shared/notes/team-devvm.md): `single`, the infra repo's clone is `~/code`; `workspace`,
 * it is `~/code/infra` and further repos sit beside it at `~/code/<name>`. A clone that exists
 * at the other layout's place is adopted where it is, never moved or cloned a second time
 * (components/scripts/clone.ts).
 */
import type { RosterUser } from "../roster/schema";

export interface CodePlan {
  layout: "single" | "workspace";
  /** The infra repo's clone: `code` (single) or `code/infra` (workspace). */
  infraDir: string;
  /**
   * The other layout's place: when a clone of the infra repo is there, it is the user's clone
   * (adopted where it is). Empty for `single`: `~/code` holds either layout's clone already.
   */
  adoptDir: string;
  /** Further repos (workspace only): `owner/name` cloned once to `code/<name>`, in roster order. */
  repos: Array<{ repo: string; dir: string }>;
}

export function planCode(u: Pick<RosterUser, "codeLayout" | "repos">): CodePlan {
  if (u.codeLayout === "workspace")
    return { layout: "workspace", infraDir: "code/infra", adoptDir: "code", repos: u.repos.map((repo) => ({ repo, dir: `code/${repo.split("/")[1]}` })) };
  return { layout: "single", infraDir: "code", adoptDir: "", repos: [] };
}
