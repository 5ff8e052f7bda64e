/**
 * Workstations: roster.yaml -> one UserWorkstation per active or suspended user.
 * Thin by design: load config, build the program (roster -> plan -> components), export.
 */
import { loadConfig } from "./components/config";
import { buildProgram } from "./components/program";

const config = loadConfig();
const { plan, workstations, purges } = buildProgram(config, __dirname);

/** Per user: what the roster grants (the access report reads this). */
export const users = Object.fromEntries(
  workstations.map((w, i) => [plan.users[i].name, { uid: w.uid, state: w.state, groups: w.groups, home: w.home }]),
);
export const purged = purges.map((p) => p.result);
/** Forgejo users whose pushes to master are admin pushes (CI's notify step). */
export const admins = config.adminSource === "roster" ? plan.adminForgejoUsers : config.admins;
export const branchProtection = plan.branchProtection;
export const reservedUids = plan.reservedUids;
