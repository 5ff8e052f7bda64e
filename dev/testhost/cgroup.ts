/**
 * A cgroup of its own for each nspawn test host.
 *
 * systemd-nspawn with `--keep-unit --register=no` (how dev/testhost/nspawn.ts boots) puts the
 * container in `payload/` below nspawn's own cgroup, in the name=systemd and the unified
 * hierarchy. Two containers started from one cgroup would then share `payload/`, and each
 * container's systemd would manage the other's units. Where the suite runs as a plain process
 * (PID 1 is not systemd), every process is in the root cgroup, so two test files that each boot
 * a host at the same time would collide. So nspawn is started from
 * `<the runner's cgroup>/ws-testhost-<machine>` in each of those hierarchies, and that subtree is
 * removed when the container is gone.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { sleepSync } from "../wait";

/** The hierarchies nspawn uses: the name=systemd one (cgroup v1 or hybrid) and the unified one. */
function hierarchies(): { mount: string; own: string }[] {
  let mounts: string[];
  let own: string[];
  try {
    mounts = fs.readFileSync("/proc/self/mounts", "utf8").split("\n");
    own = fs.readFileSync("/proc/self/cgroup", "utf8").split("\n");
  } catch {
    return [];
  }
  const ownPath = (controllers: string) => own.find((l) => l.split(":")[1] === controllers)?.split(":")[2];
  const out: { mount: string; own: string }[] = [];
  for (const line of mounts) {
    const [, mount, type, options] = line.split(" ");
    if (!mount || !options) continue;
    const controllers = type === "cgroup2" ? "" : type === "cgroup" && options.split(",").includes("name=systemd") ? "name=systemd" : undefined;
    const p = controllers === undefined ? undefined : ownPath(controllers);
    if (p !== undefined) out.push({ mount, own: p });
  }
  return out;
}

/** The host's cgroup directories, one per hierarchy (none where cgroupfs is not mounted). */
export function hostCgroupDirs(machine: string): string[] {
  return hierarchies().map((h) => path.join(h.mount, h.own, `ws-testhost-${machine}`));
}

/**
 * Make the host's cgroups. Returns the `cgroup.procs` files the process that execs nspawn
 * writes its pid to, or a reason when they cannot be made (nspawn then starts where the
 * runner is, as before).
 */
export function makeHostCgroups(machine: string): { procs: string[] } | { why: string } {
  const dirs = hostCgroupDirs(machine);
  if (dirs.length === 0) return { why: "no cgroup hierarchy for nspawn is mounted" };
  try {
    for (const d of dirs) fs.mkdirSync(d, { recursive: true });
  } catch (e) {
    return { why: (e as Error).message };
  }
  return { procs: dirs.map((d) => path.join(d, "cgroup.procs")) };
}

/**
 * argv that starts `nspawnArgs` from the host's cgroups: a shell writes its own pid to each
 * `cgroup.procs`, then execs systemd-nspawn (same pid). It exits 97 when a move fails.
 */
export function spawnInCgroups(procs: readonly string[], nspawnArgs: readonly string[]): { cmd: string; args: string[] } {
  const script = `for p in ${procs.map((_, i) => `"$${i + 1}"`).join(" ")}; do echo $$ > "$p" || exit 97; done; shift ${procs.length}; exec systemd-nspawn "$@"`;
  return { cmd: "/bin/sh", args: ["-c", script, "ws-testhost-nspawn", ...procs, ...nspawnArgs] };
}

/**
 * Remove the host's cgroup subtrees, deepest first. The container's processes may still be
 * exiting just after nspawn has (a cgroup with processes cannot be removed): tried for up to 3 s,
 * then whatever still holds processes stays.
 */
export function removeHostCgroupsSync(machine: string): void {
  const rmTree = (dir: string): boolean => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return true;
    }
    let ok = true;
    for (const e of entries) if (e.isDirectory()) ok = rmTree(path.join(dir, e.name)) && ok;
    try {
      fs.rmdirSync(dir);
      return ok;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === "ENOENT";
    }
  };
  for (const d of hostCgroupDirs(machine)) {
    for (let i = 0; i < 30 && !rmTree(d); i++) sleepSync(100);
  }
}
