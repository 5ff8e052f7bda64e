/**
 * Workstations: roster.yaml -> one UserWorkstation per active or suspended user.
 * Thin by design: load config, build the program (roster -> plan -> components), export.
 */
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, loadConfig } from "./components/config";
import { buildProgram } from "./components/program";
import { RosterError } from "./components/roster/load";

/** Bad input is reported as a plain message (no stack trace) before any resource exists. */
function orRunError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof RosterError || e instanceof ConfigError) throw new pulumi.RunError(e.message);
    throw e;
  }
}

const config = orRunError(() => loadConfig());
const { plan, workstations, purges } = orRunError(() => buildProgram(config, __dirname));

/** Per user: what the roster grants (the access report reads this). */
export const users = Object.fromEntries(workstations.map((w, i) => [plan.users[i].name, { uid: w.uid, state: w.state, groups: w.groups, home: w.home }]));
export const purged = purges.map((p) => p.result);
/** Forgejo users whose pushes to master are admin pushes (CI's notify step). */
export const admins = config.adminSource === "roster" ? plan.adminForgejoUsers : config.admins;
export const branchProtection = plan.branchProtection;
export const reservedUids = plan.reservedUids;
