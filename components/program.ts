/**
 * The whole program as a function, so that index.ts stays thin and tests can run it
 * under mocks with any roster and config.
 */
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { loadBundle } from "./bundle";
import { FORGEJO_OFF_MESSAGE, forgejoAccess } from "./forgejo";
import { KUBE_OFF_MESSAGE, KubeCluster } from "./kube";
import { WorkstationsConfig } from "./config";
import { WorkstationHost } from "./host";
import { planRoster, Plan } from "./plan";
import { loadRoster } from "./roster/load";
import { UserPurge } from "./userPurge";
import { UserWorkstation } from "./userWorkstation";
import { recordSourcePositionOnly } from "./provenance";
import { capacityCheck } from "./capacity";
import { earlyoomDropIn } from "./plan/earlyoom";
import { WebAccess } from "./web";
import { DashboardInjector } from "./web/dashboard";
import * as vault from "@pulumi/vault";
import { TMUX_PERSIST_CONFIG, TOKEN_RENEW_CONFIG, USERS_INDEX } from "./hostContract";
import { APPROLE_MOUNT, KV_MOUNT, KV_PREFIX, VaultShared } from "./vault";

export const AGENT_CONFIG_FILE = TOKEN_RENEW_CONFIG;

/** The renewal agent's non-secret config (docs/CONTRACTS.md). */
export function agentConfig(c: WorkstationsConfig): string {
  return (
    JSON.stringify(
      {
        vaultAddr: c.vault.addressFromHost,
        kvMount: KV_MOUNT,
        kvPrefix: KV_PREFIX,
        approleMount: APPROLE_MOUNT,
        tokenUrl: c.claude.tokenUrl,
        profileUrl: c.claude.profileUrl,
        apiUrl: c.claude.apiUrl,
        setupTokenWarnDays: c.claude.setupTokenWarnDays,
        clientId: c.claude.clientId,
        usersFile: USERS_INDEX,
      },
      null,
      2,
    ) + "\n"
  );
}

export interface Program {
  plan: Plan;
  host: WorkstationHost;
  vault: VaultShared;
  workstations: UserWorkstation[];
  purges: UserPurge[];
  web: WebAccess;
  dashboard?: DashboardInjector;
}

/** Validates the roster first: an invalid roster throws before any resource exists. */
export function buildProgram(config: WorkstationsConfig, projectDir: string): Program {
  recordSourcePositionOnly();
  const roster = loadRoster(path.resolve(projectDir, config.roster));
  const plan = planRoster(roster);
  // Forgejo (components/forgejo): off without workstations:forgejoUrl. Its preflight runs here,
  // before any resource exists, and stops the run with one line when something is wrong.
  if (!config.forgejo) pulumi.log.info(FORGEJO_OFF_MESSAGE);
  const forgejo = config.forgejo ? forgejoAccess(config.forgejo, plan) : undefined;
  // Kubernetes (components/kube): off without workstations:kubeApiServer.
  if (!config.kube) pulumi.log.info(KUBE_OFF_MESSAGE);
  const readOnlyRole = plan.users.some((u) => u.profile.kubeTier === "read-only");
  const kube = config.kube ? new KubeCluster("kube", { config: config.kube, readOnlyRole }) : undefined;
  const bundle = loadBundle(projectDir);
  bundle.files.push({ path: AGENT_CONFIG_FILE, mode: "0644", content: agentConfig(config) });
  if (config.tmuxResumeArgs)
    bundle.files.push({ path: TMUX_PERSIST_CONFIG, mode: "0644", content: JSON.stringify({ resumeArgs: config.tmuxResumeArgs }) + "\n" });
  // A stable logical name: changing the host address updates the connection, it does not replace everything.
  const shells = [...new Set(plan.users.map((u) => u.shell))].sort();
  const host = new WorkstationHost("host", {
    connection: config.connection,
    bundle,
    shells,
    slackWebhook: config.slackWebhook,
    ...(config.earlyoom ? { earlyoomDropIn: earlyoomDropIn(config.earlyoom) } : {}),
  });
  const provider = new vault.Provider("vault", {
    address: config.vault.address,
    ...(config.vault.token ? { token: config.vault.token } : {}),
    skipChildToken: true,
  });
  const shared = new VaultShared("vault", { provider });
  const home = { claudeMd: bundle.claudeMd, startClaude: bundle.startClaude };
  const capacity = capacityCheck(undefined, {
    connection: config.connection,
    users: plan.users.map((u) => ({ name: u.name, active: u.state === "active", limits: u.limits })),
    capacity: config.capacity,
  });
  const workstations = plan.users.map(
    (p) =>
      new UserWorkstation(p.name, {
        plan: p,
        connection: config.connection,
        home,
        dependsOn: host.ready,
        capacityOk: capacity.ok,
        vault: { shared, rotation: config.credentialRotation },
        ...(forgejo ? { forgejo: { access: forgejo, rotation: config.credentialRotation } } : {}),
        ...(kube ? { kube: { cluster: kube } } : {}),
      }),
  );
  // Master's protection, written after every collaborator it whitelists.
  forgejo?.protect();
  // The web surfaces' identity files and T3 servers (components/web): host-level, after every
  // account they name; an offboarded user's account is cut after this update (deletes run last).
  const web = new WebAccess("web", {
    web: plan.web,
    terminal: config.webTerminal,
    connection: config.connection,
    dependsOn: [...host.ready, ...workstations.map((w) => w.account)],
  });
  // The dashboard's token injector (components/web/dashboard.ts): off without workstations:dashboardNamespace.
  const dashboard =
    kube && config.dashboard
      ? new DashboardInjector("dashboard-injector", {
          cluster: kube,
          config: config.dashboard,
          entries: plan.web.dashboard,
          tokens: Object.fromEntries(workstations.map((w, i) => [plan.users[i].name, w.dashboardTokens])),
        })
      : undefined;
  const purges = plan.offboarded
    .filter((o) => o.purge)
    .map((o) => new UserPurge(o.name, { plan: o, connection: config.connection, dependsOn: host.ready, vault: config.vault }));
  return { plan, host, vault: shared, workstations, purges, web, ...(dashboard ? { dashboard } : {}) };
}
