/**
 * The whole program as a function, so that index.ts stays thin and tests can run it
 * under mocks with any roster and config.
 */
import * as path from "path";
import { loadBundle } from "./bundle";
import { WorkstationsConfig } from "./config";
import { WorkstationHost } from "./host";
import { planRoster, Plan } from "./plan";
import { loadRoster } from "./roster/load";
import { UserPurge } from "./userPurge";
import { UserWorkstation } from "./userWorkstation";

export interface Program {
  plan: Plan;
  host: WorkstationHost;
  workstations: UserWorkstation[];
  purges: UserPurge[];
}

/** Validates the roster first: an invalid roster throws before any resource exists. */
export function buildProgram(config: WorkstationsConfig, projectDir: string): Program {
  const roster = loadRoster(path.resolve(projectDir, config.roster));
  const plan = planRoster(roster);
  const bundle = loadBundle(projectDir);
  const host = new WorkstationHost(config.connection.host, { connection: config.connection, bundle });
  const home = { claudeMd: bundle.claudeMd, startClaude: bundle.startClaude };
  const workstations = plan.users.map(
    (p) => new UserWorkstation(p.name, { plan: p, connection: config.connection, home, dependsOn: host.ready }),
  );
  const purges = plan.offboarded
    .filter((o) => o.purge)
    .map((o) => new UserPurge(o.name, { plan: o, connection: config.connection, dependsOn: host.ready }));
  return { plan, host, workstations, purges };
}
