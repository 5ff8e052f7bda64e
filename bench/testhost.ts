// Timings of the nspawn test host (dev/testhost/testhost.ts).
//
//   npm run bench:testhost              warm: uses the cached rootfs (built if missing)
//   npm run bench:testhost -- --cold    also times a rootfs build from nothing, in a throwaway
//                                       cache dir (downloads every .deb again)
//
// Prints one JSON object of milliseconds on stdout.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

async function main(): Promise<void> {
  const cold = process.argv.includes("--cold");
  let tmpCache: string | undefined;
  if (cold) {
    tmpCache = fs.mkdtempSync(path.join(process.env.WORKSTATIONS_CACHE ?? path.join(os.homedir(), ".cache", "workstations"), "bench-cold-"));
    process.env.WORKSTATIONS_CACHE = tmpCache;
  }
  // Imported after WORKSTATIONS_CACHE is settled (the module reads it lazily anyway).
  const th = await import("../dev/testhost/testhost");
  const t: Record<string, number> = {};
  const time = async <T>(key: string, f: () => Promise<T>): Promise<T> => {
    const t0 = process.hrtime.bigint();
    const r = await f();
    t[key] = Math.round(Number(process.hrtime.bigint() - t0) / 1e6);
    process.stderr.write(`${key}: ${t[key]} ms\n`);
    return r;
  };
  try {
    await time(cold ? "rootfsCold" : "rootfs", () => th.ensureRootfs());
    const h = await time("createHost", () => th.createHost("bench"));
    try {
      await time("boot", () => th.boot(h));
      const n = 10;
      await time(`ssh${n}xTrue`, async () => {
        for (let i = 0; i < n; i++) await th.run(h, "true");
      });
      await time("reboot", () => th.reboot(h));
      await time("poweroff", () => th.poweroff(h));
      await time("bootAgain", () => th.boot(h));
    } finally {
      await time("destroyHost", () => th.destroyHost(h));
    }
  } finally {
    if (tmpCache) fs.rmSync(tmpCache, { recursive: true, force: true });
  }
  console.log(JSON.stringify({ cold, ms: t }, null, 2));
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
