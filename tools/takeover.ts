/**
 * `npm run takeover -- plan [--roster FILE] [--host H] [--port N] [--user U] [--identity FILE]
 * [--host-key "ssh-ed25519 AAAA…"] [--kubeconfig FILE]`: before the first `pulumi up` on a host
 * the program did not build, reads the host over ssh (read-only: TAKEOVER_PROBE) and prints per
 * user and for the host what that `up` will create, adopt, change and leave alone, then what
 * blocks it. With a kubeconfig (`--kubeconfig`, else $KUBECONFIG), the cluster too (read-only,
 * `kubectl get`): which of the program's Kubernetes objects exist and are adopted
 * (tools/takeover-kube.ts).
 * Defaults come from the stack's config (workstations:roster, host, sshPort, sshUser, hostKey;
 * Pulumi.devvm.yaml); the host key is always verified. Exit 0: nothing blocks; 1: blockers
 * (listed); 2: usage, an unreadable roster or an unreachable host.
 */
import { spawnSync } from "child_process";
import { planRoster } from "../components/plan";
import { loadRoster } from "../components/roster/load";
import { escapeControls } from "../components/roster/schema";
import { runOnHost, stackDefaults } from "./host-ssh";
import { kubeTakeover, probeKube } from "./takeover-kube";
import { parseFacts, TAKEOVER_PROBE, takeoverPlan } from "./takeover-plan";

const USAGE = 'usage: npm run takeover -- plan [--roster FILE] [--host H] [--port N] [--user U] [--identity FILE] [--host-key "TYPE KEY"] [--kubeconfig FILE]';

/** `kubectl --kubeconfig FILE …` (kubectl from PATH): its stdout, or throws with its own words. */
export function kubectlWith(kubeconfig: string): (args: string[]) => string {
  return (args) => {
    const r = spawnSync("kubectl", ["--kubeconfig", kubeconfig, "--request-timeout=30s", ...args], { encoding: "utf8", timeout: 60_000, maxBuffer: 16 << 20 });
    if (r.status !== 0)
      throw new Error(
        `kubectl ${args.slice(0, 2).join(" ")} failed (exit ${r.status ?? r.signal}): ${(r.stderr || String(r.error ?? "")).trim().split("\n").slice(-2).join(" ")}`,
      );
    return r.stdout;
  };
}

function main(argv: string[]): number {
  const o = stackDefaults();
  if (argv[0] !== "plan") return (console.error(USAGE), 2);
  for (let i = 1; i < argv.length; i++) {
    const m = /^--(roster|host|port|user|identity|host-key|kubeconfig)$/.exec(argv[i]);
    if (!m || argv[i + 1] === undefined) return (console.error(USAGE), 2);
    o[m[1]] = argv[++i];
  }
  if (!o.host || !o["host-key"] || !/^[0-9]{1,5}$/.test(o.port)) {
    console.error(escapeControls(`takeover: need the host and its key (workstations:host and workstations:hostKey, or --host and --host-key)\n${USAGE}`));
    return 2;
  }
  let out: string;
  let plan;
  try {
    plan = planRoster(loadRoster(o.roster));
    out = runOnHost(
      { host: o.host, port: o.port, user: o.user, identity: o.identity, hostKey: o["host-key"] },
      TAKEOVER_PROBE,
      [...plan.users, ...plan.offboarded].map((u) => u.name),
    );
  } catch (e) {
    console.error(escapeControls(`takeover: ${(e as Error).message}`));
    return 2;
  }
  const t = takeoverPlan(plan, parseFacts(out));
  const kubeconfig = o.kubeconfig ?? process.env.KUBECONFIG;
  if (kubeconfig) {
    try {
      const k = kubeTakeover(plan, probeKube(kubectlWith(kubeconfig), plan));
      t.lines.push(...k.lines);
      t.blockers.push(...k.blockers);
    } catch (e) {
      console.error(escapeControls(`takeover: ${(e as Error).message}`));
      return 2;
    }
  } else t.lines.push("kubernetes: not read (no --kubeconfig, no $KUBECONFIG): existing objects under the program's names are adopted by the first up");
  console.log(`takeover plan for ${o.host} (roster ${o.roster}): what the first pulumi up does`);
  for (const l of t.lines) console.log(escapeControls(`  ${l}`));
  if (!t.blockers.length) {
    console.log("nothing blocks it");
    return 0;
  }
  console.log(`blocked (${t.blockers.length}):`);
  for (const b of t.blockers) console.log(escapeControls(`  ${b}`));
  return 1;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
