/**
 * `npm run access-report -- [ROSTER]`: per user, everything the roster grants (account,
 * sudo, Forgejo, Kubernetes, Vault, units). Reads only the roster; changes nothing.
 * `--json` prints the plan as JSON.
 *
 * What a user gets is decided by the plan (components/plan.ts); this file only reads the
 * `UserPlan.grants`. `userGrants` is the one reading of them, shared with `access-diff`, so
 * the report and the diff of a pull request can never disagree. No rule is applied here: a
 * suspended user's grants are already the cut.
 */
import { OffboardedPlan, Plan, planRoster, UserPlan } from "../components/plan";
import { injectorToken } from "../components/plan/web";
import { loadRoster, RosterError } from "../components/roster/load";
import { escapeControls, quoteText, splitKeyOptions } from "../components/roster/schema";

/** The areas of a grant, in the order reports print them. */
export const GRANT_AREAS = ["login", "groups", "sudo", "web", "forgejo", "kubernetes", "dashboard", "vault", "units"] as const;
export type GrantArea = (typeof GRANT_AREAS)[number];
/** Per area, the grants as short, stable strings (equal plans give equal strings). */
export type Grants = Record<GrantArea, string[]>;

/** An ssh key as a reviewer recognises it: type, the end of the blob, the comment (free text, quoted). */
export function keyLabel(line: string): string {
  const split = splitKeyOptions(line.trim());
  const key = "key" in split ? split.key : line.trim();
  const [type, blob = "", ...comment] = key.split(" ");
  const forced = "key" in split && split.command !== undefined ? ` (forced command ${quoteText(split.command)}, nothing else)` : "";
  return `${type} …${blob.replace(/=+$/, "").slice(-8)}${comment.length ? " " + quoteText(comment.join(" ")) : ""}${forced}`;
}

/** Everything the plan gives one active or suspended user, per area: its `grants`, read as they are. */
export function userGrants(u: UserPlan): Grants {
  const a = u.grants;
  const g = noGrants();
  if (a.login) g.login.push(`shell ${u.shell}`);
  for (const k of a.sshKeys) g.login.push(`ssh key ${keyLabel(k)}`);
  g.groups.push(...u.groups);
  if (a.sudo) g.sudo.push("passwordless sudo");
  if (a.web) {
    g.web.push(`web terminal as SSO identity ${a.web.sso}`);
    if (a.web.actAs) g.web.push("act-as: views others' terminal sessions read-only (/etc/ttyd-admins)");
    if (a.web.t3) g.web.push(`T3 Code server t3-serve@${u.name} on a sticky port`);
  }
  if (a.forgejo) {
    g.forgejo.push(`${u.forgejoUser}: ${a.forgejo.permission} collaborator on infra`);
    g.forgejo.push(tokenLabel(u));
    if (a.forgejo.siteAdmin) g.forgejo.push(`${u.forgejoUser}: site admin`);
    if (a.forgejo.pushWhitelist) g.forgejo.push(`${u.forgejoUser}: master push whitelist`);
    if (a.forgejo.mergeWhitelist) g.forgejo.push(`${u.forgejoUser}: master merge whitelist`);
  }
  if (a.kube) {
    g.kubernetes.push(`tier ${a.kube.tier}`);
    if (u.kubeUser !== u.email) g.kubernetes.push(`bound as ${u.kubeUser} (k8sUser, not the email)`);
    for (const ns of a.kube.namespaceAdmin) g.kubernetes.push(`namespace ${ns} (admin RoleBinding)`);
    g.kubernetes.push("~/.kube/config (OIDC exec plugin)");
    if (a.kube.clusterAdmin) g.kubernetes.push("cluster-admin ClusterRoleBinding");
    if (a.kube.clusterReadOnly)
      g.kubernetes.push("read-only ClusterRoleBinding (workloads, pods and logs, services, config maps, events, namespaces, nodes; no Secrets, no exec)");
    if (a.kube.dashboardNav) g.dashboard.push("dashboard-nav-readonly ClusterRole");
    for (const ns of a.kube.namespaceAdmin) g.dashboard.push(`token of ServiceAccount ${ns}/dashboard-${u.name}`);
    const injected = a.web ? injectorToken(a) : undefined;
    if (injected)
      g.dashboard.push(
        `token injector: ${a.web!.sso} gets ${injected.kind === "admin" ? "the admin token (cluster-admin)" : `the token of ${injected.namespace}/dashboard-${u.name}`}`,
      );
  }
  // Owned namespaces outlive the grant (kept while suspended, never deleted by the program).
  for (const ns of u.namespaces) if (!a.kube?.namespaceAdmin.includes(ns)) g.kubernetes.push(`namespace ${ns} (kept, no binding)`);
  if (a.vault) g.vault.push(`policy ${a.vault.policy} on claude-tokens/${a.vault.path}, AppRole ${a.vault.role}`);
  for (const t of a.timers) g.units.push(`timer ${t}`);
  if (a.tmuxPersist) g.units.push("tmux sessions persisted");
  if (a.linger) g.units.push("linger");
  return g;
}

/** The user's SSO identity (plans made before the roster had `sso` default it to the name). */
export const ssoOf = (u: UserPlan): string => u.sso ?? u.name;

/**
 * The access token the program mints for the user's Forgejo login and writes into their
 * `~/.git-credentials`: whose token it is, and the account email the preflight checks it
 * against when that is the roster's `forgejoEmail` exception (older plans have no forgejoEmail).
 */
export function tokenLabel(u: UserPlan): string {
  const exception = u.forgejoEmail && u.forgejoEmail !== u.email ? ` (account email ${u.forgejoEmail}: the roster's forgejoEmail exception)` : "";
  return `access token of ${u.forgejoUser}${exception} in ~/.git-credentials`;
}

/** An offboarded user gets nothing. */
export function noGrants(): Grants {
  return { login: [], groups: [], sudo: [], web: [], forgejo: [], kubernetes: [], dashboard: [], vault: [], units: [] };
}

/** The purge approval; its reason is free text, printed quoted. */
export function purgeLabel(p: NonNullable<OffboardedPlan["purge"]>): string {
  return `purge approved by ${p.approvedBy} on ${p.approvedOn}${p.reason ? `, reason ${quoteText(p.reason)}` : ""}`;
}

/**
 * Lines for a terminal: free text is already quoted (quoteText); anything else that still holds
 * a control character (only possible when a plan is handed to the printer directly) is escaped
 * here, so no printed line can move the cursor, erase a line or reorder text.
 */
export function terminalLines(lines: readonly string[]): string {
  return lines.map(escapeControls).join("\n");
}

/** The plan as JSON with DEL, C1, separators and bidi controls escaped too (JSON.stringify leaves them raw). */
export function planJson(plan: Plan): string {
  return terminalLines(JSON.stringify(plan, null, 2).split("\n")); // a string's own line breaks are escaped by JSON
}

/** The human report of a plan, one block per user (what `npm run access-report` prints). */
export function formatReport(plan: Plan): string {
  const out: string[] = [];
  const list = (xs: string[]) => xs.join(", ") || "none";
  for (const u of plan.users) {
    const g = userGrants(u);
    const a = u.grants;
    out.push(`${u.name} (uid ${u.uid}, ${u.role}, ${u.state})`);
    out.push(`  login:      ${a.login ? `${a.sshKeys.length} ssh key(s), shell ${u.shell}` : `none (${u.state})`}; groups ${g.groups.join(",")}`);
    const web = a.web && [`terminal as ${a.web.sso}`, ...(a.web.actAs ? ["act-as"] : []), ...(a.web.t3 ? ["T3 Code server"] : [])].join(", ");
    out.push(`  web:        ${web || `none (${u.state}; SSO identity ${ssoOf(u)} maps to nothing)`}`);
    out.push(`  sudo:       ${a.sudo ? "yes (passwordless)" : "no"}`);
    out.push(
      `  forgejo:    ${a.forgejo ? `${u.forgejoUser}: ${a.forgejo.permission} on infra${a.forgejo.siteAdmin ? ", site admin" : ""}${a.forgejo.pushWhitelist ? ", master push whitelist" : ""}${a.forgejo.mergeWhitelist ? ", merge whitelist" : ""}; ${tokenLabel(u)}` : "none"}`,
    );
    out.push(
      `  kubernetes: ${a.kube ? `tier ${a.kube.tier}${a.kube.namespaceAdmin.length ? `, owns ${a.kube.namespaceAdmin.join(",")}` : ""}${a.kube.dashboardNav ? ", dashboard-nav-readonly" : ""}${a.kube.namespaceAdmin.length ? ", dashboard token per namespace" : ""}` : "none"}${!a.kube && u.namespaces.length ? ` (owns ${u.namespaces.join(",")}: kept, no binding)` : ""}`,
    );
    out.push(`  vault:      ${a.vault ? `policy ${a.vault.policy} on claude-tokens/${a.vault.path}` : "none"}`);
    out.push(`  units:      ${list(a.timers)}${a.tmuxPersist ? "; tmux sessions persisted" : ""}`);
    const l = u.limits;
    out.push(
      `  limits:     memory ${l.memoryMax} (swap ${l.swapMax}), CPU weight ${l.cpuWeight}${l.cpuQuota ? `, quota ${l.cpuQuota}` : ""}, tasks ${l.tasksMax}, per pane ${l.paneMemoryMax}`,
    );
  }
  for (const o of plan.offboarded) out.push(`${o.name} (uid ${o.uid}, offboarded: no access${o.purge ? `; ${purgeLabel(o.purge)}` : "; home kept"})`);
  out.push(`master push whitelist: ${plan.branchProtection.pushWhitelist.join(", ")}; merge whitelist: ${plan.branchProtection.mergeWhitelist.join(", ")}`);
  return terminalLines(out);
}

function main(): void {
  const args = process.argv.slice(2);
  const json = args.includes("--json");
  const file = args.find((a) => !a.startsWith("--")) ?? "roster.yaml";
  try {
    const plan = planRoster(loadRoster(file));
    console.log(json ? planJson(plan) : formatReport(plan));
  } catch (e) {
    console.error(e instanceof RosterError ? e.message : escapeControls(String(e))); // a RosterError's lines are escaped (formatProblem)
    process.exit(1);
  }
}

if (require.main === module) main();
