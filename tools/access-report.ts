/**
 * `npm run access-report -- [ROSTER]`: per user, everything the roster grants (account,
 * sudo, Forgejo, Kubernetes, Vault, units). Reads only the roster; changes nothing.
 * `--json` prints the plan as JSON.
 *
 * What a user gets is decided by the plan (components/plan.ts); this file only reads the
 * `UserPlan` fields. `userGrants` is the one reading of them, shared with `access-diff`, so
 * the report and the diff of a pull request can never disagree. The only rule applied here
 * is the README's Suspend runbook: a suspended account has no login, no sudo and no Vault
 * credential (the cut removes them); everything else is the plan's field as it is.
 */
import { OffboardedPlan, Plan, planRoster, UserPlan } from "../components/plan";
import { loadRoster, RosterError } from "../components/roster/load";

/** The areas of a grant, in the order reports print them. */
export const GRANT_AREAS = ["login", "groups", "sudo", "forgejo", "kubernetes", "dashboard", "vault", "units"] as const;
export type GrantArea = (typeof GRANT_AREAS)[number];
/** Per area, the grants as short, stable strings (equal plans give equal strings). */
export type Grants = Record<GrantArea, string[]>;

/** An ssh key as a reviewer recognises it: type, the end of the blob, the comment. */
export function keyLabel(key: string): string {
  const [type, blob = "", ...comment] = key.trim().split(/\s+/);
  return `${type} …${blob.replace(/=+$/, "").slice(-8)}${comment.length ? " " + comment.join(" ") : ""}`;
}

/** Everything the plan gives one active or suspended user, per area. */
export function userGrants(u: UserPlan): Grants {
  const active = u.state === "active";
  const g: Grants = { login: [], groups: [], sudo: [], forgejo: [], kubernetes: [], dashboard: [], vault: [], units: [] };
  if (active) {
    g.login.push(`shell ${u.shell}`);
    for (const k of u.sshKeys) g.login.push(`ssh key ${keyLabel(k)}`);
  }
  g.groups.push(...u.groups);
  if (u.sudo && active) g.sudo.push("passwordless sudo");
  if (u.forgejo.permission !== "none") g.forgejo.push(`${u.forgejoUser}: ${u.forgejo.permission} collaborator on infra`);
  if (u.forgejo.siteAdmin) g.forgejo.push(`${u.forgejoUser}: site admin`);
  if (u.forgejo.pushWhitelist) g.forgejo.push(`${u.forgejoUser}: master push whitelist`);
  if (u.forgejo.mergeWhitelist) g.forgejo.push(`${u.forgejoUser}: master merge whitelist`);
  if (u.kube.tier !== "none") g.kubernetes.push(`tier ${u.kube.tier}${u.kube.access ? "" : " (no binding while suspended)"}`);
  for (const ns of u.kube.namespaces) g.kubernetes.push(u.kube.access ? `namespace ${ns} (admin RoleBinding)` : `namespace ${ns} (kept, no binding)`);
  if (u.kube.access && u.kube.tier !== "none") g.kubernetes.push("~/.kube/config (OIDC exec plugin)");
  if (u.kube.access && u.kube.dashboardNav) g.dashboard.push("dashboard-nav-readonly ClusterRole");
  if (u.kube.access) for (const ns of u.kube.namespaces) g.dashboard.push(`token of ServiceAccount ${ns}/dashboard-${u.name}`);
  if (active && u.units.claudeTokenRenew) g.vault.push(`policy ${u.vault.policy} on claude-tokens/${u.vault.path}, AppRole ${u.vault.role}`);
  for (const t of u.units.timers) g.units.push(`timer ${t}`);
  if (u.units.tmuxPersist) g.units.push("tmux sessions persisted");
  if (u.linger) g.units.push("linger");
  return g;
}

/** An offboarded user gets nothing. */
export function noGrants(): Grants {
  return { login: [], groups: [], sudo: [], forgejo: [], kubernetes: [], dashboard: [], vault: [], units: [] };
}

export function purgeLabel(p: NonNullable<OffboardedPlan["purge"]>): string {
  return `purge approved by ${p.approvedBy} on ${p.approvedOn}${p.reason ? ` (${p.reason})` : ""}`;
}

/** The human report of a plan, one block per user (what `npm run access-report` prints). */
export function formatReport(plan: Plan): string {
  const out: string[] = [];
  const list = (xs: string[]) => xs.join(", ") || "none";
  for (const u of plan.users) {
    const g = userGrants(u);
    const keys = g.login.filter((l) => l.startsWith("ssh key ")).length;
    out.push(`${u.name} (uid ${u.uid}, ${u.role}, ${u.state})`);
    out.push(`  login:      ${u.state === "active" ? `${keys} ssh key(s), shell ${u.shell}` : "none (suspended)"}; groups ${g.groups.join(",")}`);
    out.push(`  sudo:       ${g.sudo.length ? "yes (passwordless)" : "no"}`);
    out.push(`  forgejo:    ${u.forgejoUser}: ${u.forgejo.permission} on infra${u.forgejo.siteAdmin ? ", site admin" : ""}${u.forgejo.pushWhitelist ? ", master push whitelist" : ""}${u.forgejo.mergeWhitelist ? ", merge whitelist" : ""}`);
    out.push(`  kubernetes: tier ${u.kube.tier}${u.kube.namespaces.length ? `, owns ${u.kube.namespaces.join(",")}` : ""}${u.kube.access && u.kube.dashboardNav ? ", dashboard-nav-readonly" : ""}${u.kube.access && u.kube.namespaces.length ? ", dashboard token per namespace" : ""}${u.kube.access || u.kube.tier === "none" ? "" : " (suspended: no binding)"}`);
    out.push(`  vault:      ${g.vault.length ? `policy ${u.vault.policy} on claude-tokens/${u.vault.path}` : "none"}`);
    out.push(`  units:      ${list(u.units.timers)}${u.units.tmuxPersist ? "; tmux sessions persisted" : ""}`);
  }
  for (const o of plan.offboarded) out.push(`${o.name} (uid ${o.uid}, offboarded: no access${o.purge ? `; ${purgeLabel(o.purge)}` : "; home kept"})`);
  out.push(`master push whitelist: ${plan.branchProtection.pushWhitelist.join(", ")}; merge whitelist: ${plan.branchProtection.mergeWhitelist.join(", ")}`);
  return out.join("\n");
}

function main(): void {
  const args = process.argv.slice(2);
  const json = args.includes("--json");
  const file = args.find((a) => !a.startsWith("--")) ?? "roster.yaml";
  try {
    const plan = planRoster(loadRoster(file));
    console.log(json ? JSON.stringify(plan, null, 2) : formatReport(plan));
  } catch (e) {
    console.error(e instanceof RosterError ? e.message : String(e));
    process.exit(1);
  }
}

if (require.main === module) main();
