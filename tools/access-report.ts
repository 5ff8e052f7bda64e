/**
 * `npm run access-report -- [ROSTER]`: per user, everything the roster grants (account,
 * sudo, Forgejo, Kubernetes, Vault, units). Reads only the roster; changes nothing.
 * `--json` prints the plan as JSON.
 */
import { planRoster } from "../components/plan";
import { loadRoster, RosterError } from "../components/roster/load";

const args = process.argv.slice(2);
const json = args.includes("--json");
const file = args.find((a) => !a.startsWith("--")) ?? "roster.yaml";
try {
  const plan = planRoster(loadRoster(file));
  if (json) {
    console.log(JSON.stringify(plan, null, 2));
  } else {
    for (const u of plan.users) {
      console.log(`${u.name} (uid ${u.uid}, ${u.role}, ${u.state})`);
      console.log(`  login:      ${u.state === "active" ? `${u.sshKeys.length} ssh key(s), shell ${u.shell}` : "none (suspended)"}; groups ${u.groups.join(",")}`);
      console.log(`  sudo:       ${u.sudo && u.state === "active" ? "yes (passwordless)" : "no"}`);
      console.log(`  forgejo:    ${u.forgejoUser}: ${u.forgejo.permission} on infra${u.forgejo.siteAdmin ? ", site admin" : ""}${u.forgejo.pushWhitelist ? ", master push whitelist" : ""}${u.forgejo.mergeWhitelist ? ", merge whitelist" : ""}`);
      console.log(`  kubernetes: tier ${u.kube.tier}${u.kube.namespaces.length ? `, owns ${u.kube.namespaces.join(",")}` : ""}${u.kube.dashboardNav ? ", dashboard-nav-readonly" : ""}`);
      console.log(`  vault:      ${u.state === "active" && u.units.claudeTokenRenew ? `policy ${u.vault.policy} on claude-tokens/${u.vault.path}` : "none"}`);
      console.log(`  units:      ${u.units.timers.join(", ") || "none"}${u.units.tmuxPersist ? "; tmux sessions persisted" : ""}`);
    }
    for (const o of plan.offboarded) console.log(`${o.name} (uid ${o.uid}, offboarded: no access${o.purge ? `; purge approved by ${o.purge.approvedBy} on ${o.purge.approvedOn}` : "; home kept"})`);
    console.log(`master push whitelist: ${plan.branchProtection.pushWhitelist.join(", ")}; merge whitelist: ${plan.branchProtection.mergeWhitelist.join(", ")}`);
  }
} catch (e) {
  console.error(e instanceof RosterError ? e.message : String(e));
  process.exit(1);
}
