/**
 * Temp dirs of the tests, harnesses and benches: made under the OS temp dir and removed when
 * the process that made them ends (WS_KEEP_TMP=1 keeps them for a post-mortem). Before this,
 * a full `npm test` left about 630 entries and 470 MB in /tmp (the kube suites' etcd data
 * alone 64 MB each), and every run added as much.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const made = new Set<string>();
let hooked = false;

/** Removes every dir `tempDir` made in this process, unless WS_KEEP_TMP=1. */
export function removeTempDirs(): void {
  if (process.env.WS_KEEP_TMP === "1") return;
  for (const d of made) {
    made.delete(d);
    try {
      fs.rmSync(d, { recursive: true, force: true, maxRetries: 2 });
    } catch (e) {
      // Best effort at exit (a server still writing into it): say so, never fail the process for it.
      process.stderr.write(`tempDir: could not remove ${d}: ${(e as Error).message}\n`);
    }
  }
}

/** A new dir `<parent>/<prefix>XXXXXX` (0700), removed when this process exits. */
export function tempDir(prefix: string, parent = os.tmpdir()): string {
  const d = fs.mkdtempSync(path.join(parent, prefix));
  made.add(d);
  if (!hooked) {
    hooked = true;
    process.on("exit", removeTempDirs);
  }
  return d;
}

/**
 * `<dir>/.tmp`, made once: the TMPDIR a spawned Pulumi CLI gets, so what the engine's plugins
 * leave there goes with `dir`. The kubernetes provider writes the kubeconfig it is given into a
 * new `$TMPDIR/kubeconfigNNN` at every Configure and never removes it (pulumi-kubernetes
 * `provider/util.go` writeKubeconfigToFile): without this every engine run of a suite left
 * one more file in /tmp (55 in a full `npm test`).
 */
export function privateTmp(dir: string): string {
  const t = path.join(dir, ".tmp");
  fs.mkdirSync(t, { recursive: true, mode: 0o700 });
  return t;
}

/** `env` with TMPDIR set to `privateTmp(dir)`. */
export function withPrivateTmp(env: NodeJS.ProcessEnv, dir: string): NodeJS.ProcessEnv {
  return { ...env, TMPDIR: privateTmp(dir) };
}
