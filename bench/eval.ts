/**
 * Program evaluation time under Pulumi mocks for N users (default 10, 100, 500).
 * Each size runs in a fresh node process; reports median wall time of the evaluation
 * (roster load + plan + component construction + all registrations), excluding start-up.
 *
 *   npm run bench -- [sizes...]      e.g. npm run bench -- 10 100 500
 */
import { spawnSync } from "child_process";
import * as YAML from "yaml";
import { ed25519Key } from "../dev/sshkeys";

export function syntheticRoster(n: number): string {
  const roles = ["admin", "power-user", "namespace-owner"] as const;
  const users = Array.from({ length: n }, (_, i) => {
    const role = i === 0 ? "admin" : roles[i % 3];
    return {
      name: `user${i}`,
      uid: 3000 + i,
      role,
      email: `user${i}@example.com`,
      forgejo: `user${i}`,
      sshKeys: [ed25519Key(`user${i}@bench`)],
      ...(role === "namespace-owner" ? { namespaces: [`ns-${i}`] } : {}),
      ...(i % 17 === 5 ? { state: "suspended" } : {}),
    };
  });
  return YAML.stringify({ version: 1, users });
}

async function child(n: number, reps: number): Promise<void> {
  const { runProgram, unsecret } = await import("../dev/mocks");
  const roster = syntheticRoster(n);
  const times: number[] = [];
  let count = 0;
  let userBytes = 0;
  let users = 0;
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    const { resources, program } = await runProgram({ roster });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    count = resources.length;
    // serialized inputs of the per-user resources (everything named <user>-…), per user
    const names = program.plan.users.map((u: { name: string }) => u.name);
    users = names.length;
    userBytes = 0;
    for (const r of resources)
      if (names.some((u: string) => r.name === u || r.name.startsWith(`${u}-`))) userBytes += Buffer.byteLength(JSON.stringify(unsecret(r.inputs)));
  }
  times.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      users: n,
      resources: count,
      medianMs: Math.round(times[Math.floor(times.length / 2)]),
      minMs: Math.round(times[0]),
      reps,
      inputBytesPerUser: Math.round(userBytes / Math.max(users, 1)),
    }),
  );
}

if (require.main !== module) {
  // imported for syntheticRoster
} else if (process.argv[2] === "--child") {
  void child(Number(process.argv[3]), Number(process.argv[4]));
} else {
  const sizes = process.argv
    .slice(2)
    .map(Number)
    .filter((x) => x > 0);
  for (const n of sizes.length ? sizes : [10, 100, 500]) {
    const reps = n >= 500 ? 3 : 5;
    const r = spawnSync(process.execPath, ["--require", "ts-node/register/transpile-only", __filename, "--child", String(n), String(reps)], {
      encoding: "utf8",
    });
    if (r.status !== 0) {
      console.error(r.stderr);
      process.exit(1);
    }
    process.stdout.write(r.stdout);
  }
}
