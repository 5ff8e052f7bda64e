/**
 * Resource limits, planned (issue 23): per role defaults, the roster's per-user `limits` over
 * them, and the capacity check against the host's RAM and CPUs. Pure: the host's facts come
 * in as data (components/capacity.ts reads them), the drop-ins that apply the limits are
 * written by the account's resources (components/scripts/limits.ts).
 *
 * Sizes stay as the roster writes them (`8G`, `25%`): systemd reads both, so the host's
 * drop-in does not change when the host's RAM does; the check converts them with the RAM.
 */
import type { Limits, Role } from "../roster/schema";

/** Every limit of one user, each decided (the role's default where the roster is silent). */
export interface UserLimits {
  memoryMax: string;
  swapMax: string;
  cpuWeight: number;
  /** Percent of one CPU, or null for no quota. */
  cpuQuota: string | null;
  tasksMax: number;
  paneMemoryMax: string;
}

/**
 * Role defaults, as shares of the host's RAM so they hold on any host: any two users at once
 * (two admins: 80%) stay under the default 90% share. No swap (the team's lesson 9: swap as a safety valve wedged
 * the box; earlyoom is the backstop).
 */
export const DEFAULT_LIMITS: Readonly<Record<Role, UserLimits>> = {
  admin: { memoryMax: "40%", swapMax: "0", cpuWeight: 200, cpuQuota: null, tasksMax: 8192, paneMemoryMax: "20%" },
  "power-user": { memoryMax: "25%", swapMax: "0", cpuWeight: 100, cpuQuota: null, tasksMax: 4096, paneMemoryMax: "15%" },
  "namespace-owner": { memoryMax: "20%", swapMax: "0", cpuWeight: 100, cpuQuota: null, tasksMax: 4096, paneMemoryMax: "10%" },
};

/** The roster's `limits` over the role's defaults. */
export function planLimits(role: Role, over: Limits, defaults: Readonly<Record<Role, UserLimits>> = DEFAULT_LIMITS): UserLimits {
  const d = defaults[role];
  return {
    memoryMax: over.memoryMax ?? d.memoryMax,
    swapMax: over.swapMax ?? d.swapMax,
    cpuWeight: over.cpuWeight ?? d.cpuWeight,
    cpuQuota: over.cpuQuota ?? d.cpuQuota,
    tasksMax: over.tasksMax ?? d.tasksMax,
    paneMemoryMax: over.paneMemoryMax ?? d.paneMemoryMax,
  };
}

/** What the capacity check knows of the host. */
export interface HostFacts {
  host: string;
  memoryBytes: number;
  cpus: number;
}

/** How much the guarantees may take (stack config `workstations:capacity`). */
export interface Capacity {
  /** The share of RAM the memory maxima of the users active at once may sum to (0-1]. */
  memoryShare: number;
  /** How many users may be at their caps at once; undefined: every active user. */
  concurrentUsers?: number;
}
/**
 * Default: any two users at their caps at once fit in 90% of RAM (two admins: 80%). The team
 * decides how many may really peak together; the check then holds the roster to it.
 */
export const DEFAULT_CAPACITY: Readonly<Capacity> = { memoryShare: 0.9, concurrentUsers: 2 };

const UNITS: Record<string, number> = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** A size in bytes on a host with `ramBytes` of RAM (`25%` of it, or `8G`). */
export function sizeBytes(size: string, ramBytes: number): number {
  if (size === "0") return 0;
  const pct = /^(\d+)%$/.exec(size);
  if (pct) return Math.floor((ramBytes * Number(pct[1])) / 100);
  const m = /^(\d+)([KMGT])$/.exec(size);
  if (!m) throw new Error(`sizeBytes: not a size: ${JSON.stringify(size)}`);
  return Number(m[1]) * UNITS[m[2]];
}

/** Bytes as GiB with one decimal (what the capacity messages print). */
export const gib = (b: number): string => `${(b / 2 ** 30).toFixed(1)} GiB`;

/** One user as the capacity check sees them. */
export interface LimitsOf {
  name: string;
  active: boolean;
  limits: UserLimits;
}

/**
 * Why the limits cannot hold on this host, one line each (empty: they hold): the memory
 * maxima of the users who may be active at once (the largest ones, when fewer than all may
 * be) over the configured share of RAM, by how much; a user's or a pane's cap over that
 * share; a pane cap over its user's cap; a CPU quota over the host's CPUs.
 */
export function capacityProblems(users: readonly LimitsOf[], facts: HostFacts, cap: Capacity = DEFAULT_CAPACITY): string[] {
  const ram = facts.memoryBytes;
  const budget = Math.floor(ram * cap.memoryShare);
  const share = `${Math.round(cap.memoryShare * 100)}% of ${facts.host}'s ${gib(ram)} RAM (${gib(budget)})`;
  const out: string[] = [];
  const active = users.filter((u) => u.active).map((u) => ({ ...u, bytes: sizeBytes(u.limits.memoryMax, ram) }));
  const n = Math.min(cap.concurrentUsers ?? active.length, active.length);
  const top = [...active].sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name)).slice(0, n);
  const sum = top.reduce((s, u) => s + u.bytes, 0);
  if (sum > budget) {
    const who = top.map((u) => `${u.name} ${u.limits.memoryMax}`).join(", ");
    out.push(
      `capacity: the memory maxima of the ${n} user(s) who may be active at once (${who}) sum to ${gib(sum)}, over ${share} by ${gib(sum - budget)}; lower limits.memoryMax in the roster, or raise workstations:capacity (memoryShare, concurrentUsers)`,
    );
  }
  for (const u of users) {
    const mem = sizeBytes(u.limits.memoryMax, ram);
    const pane = sizeBytes(u.limits.paneMemoryMax, ram);
    if (mem > budget) out.push(`capacity: ${u.name}'s memoryMax ${u.limits.memoryMax} (${gib(mem)}) is over ${share}; lower it in the roster`);
    if (pane > mem)
      out.push(
        `capacity: ${u.name}'s paneMemoryMax ${u.limits.paneMemoryMax} (${gib(pane)}) is over their memoryMax ${u.limits.memoryMax} (${gib(mem)}); lower it in the roster`,
      );
    const quota = u.limits.cpuQuota ? Number(u.limits.cpuQuota.slice(0, -1)) : 0;
    if (quota > facts.cpus * 100)
      out.push(
        `capacity: ${u.name}'s cpuQuota ${u.limits.cpuQuota} is over ${facts.host}'s ${facts.cpus} CPU(s) (${facts.cpus * 100}%); lower it in the roster`,
      );
  }
  return out;
}
