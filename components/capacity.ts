/**
 * The capacity check (issue 23): the host's RAM and CPUs, read by a small command on the
 * host, against the limits the plan decided (components/plan/limits.ts). When the limits
 * cannot hold, the run stops with one line that says by how much, before any user's limits
 * are written: every `limits` resource takes the check's result as an input. In a preview
 * the facts are the ones the last `up` read (a first preview has none yet: the check then
 * runs in the `up`, before the first drop-in is written).
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { commandConnection, HostConnection } from "./connection";
import { Capacity, capacityProblems, HostFacts, LimitsOf } from "./plan/limits";
import { remoteScript } from "./scripts/shell";

/** Prints `<hostname> <MemTotal bytes> <online CPUs>`; reads nothing of any user. */
export const HOST_FACTS_SCRIPT = remoteScript(
  "host facts",
  `echo "$(hostname) $(awk '/^MemTotal:/ {printf "%.0f", $2 * 1024}' /proc/meminfo) $(getconf _NPROCESSORS_ONLN)"`,
);

/** Parses the facts command's output; throws on anything else. */
export function parseHostFacts(stdout: string): HostFacts {
  const m = /^(\S+) (\d+) (\d+)\s*$/.exec(stdout.trim());
  if (!m) throw new Error(`host facts: unexpected output ${JSON.stringify(stdout.slice(0, 200))}`);
  return { host: m[1], memoryBytes: Number(m[2]), cpus: Number(m[3]) };
}

/** The facts resource and the check: `ok` resolves to a fixed string when the limits hold. */
export function capacityCheck(
  parent: pulumi.Resource | undefined,
  args: { connection: HostConnection; users: readonly LimitsOf[]; capacity: Capacity },
): { facts: command.remote.Command; ok: pulumi.Output<string> } {
  const facts = new command.remote.Command(
    "host-facts",
    { connection: commandConnection(args.connection), create: HOST_FACTS_SCRIPT, addPreviousOutputInEnv: false },
    { parent },
  );
  const ok = facts.stdout.apply((out) => {
    const problems = capacityProblems(args.users, parseHostFacts(out), args.capacity);
    if (problems.length) {
      // The error diagnostic is the clean line a person reads; the throw stops every resource
      // that takes `ok` (each user's limits) before it is written.
      for (const p of problems) pulumi.log.error(p);
      throw new pulumi.RunError(problems.join("\n"));
    }
    return "capacity ok";
  });
  return { facts, ok };
}
