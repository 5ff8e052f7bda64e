/** Runs an operator tool of tools/ the way an admin does (`npm run <tool> -- …`), from the checkout, against a test host over ssh. */
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import * as path from "node:path";
import type { TestHost } from "./testhost/testhost";

export function runToolAgainst(h: TestHost, tool: string, args: string[], hostKey = h.hostKey): SpawnSyncReturns<string> {
  return spawnSync(
    process.execPath,
    [
      "--require",
      "ts-node/register/transpile-only",
      `tools/${tool}.ts`,
      ...args,
      "--host",
      "127.0.0.1",
      "--port",
      String(h.port),
      "--identity",
      h.privateKeyPath,
      "--host-key",
      hostKey,
    ],
    { cwd: path.resolve(__dirname, ".."), encoding: "utf8", timeout: 180_000 },
  );
}
