/**
 * Waiting and ports for tests, tools and benchmarks: the one copy of sleep, waitFor and
 * freePort (synchronous variants for the tmux harness, which drives tmux with spawnSync).
 */
import * as net from "net";

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Blocks the thread (no event loop turn): for harnesses that are synchronous throughout. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Polls `fn` every `everyMs` until it returns a truthy value; throws `timed out waiting for
 * <what>`. With `retryErrors`, a probe that throws counts as "not yet" and the last error is
 * named in the timeout (for probes of a host that is still booting).
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | false | undefined> | T | null | false | undefined,
  timeoutMs = 30_000,
  everyMs = 250,
  retryErrors = false,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (!retryErrors) throw e;
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await sleep(everyMs);
  }
}

/** `waitFor` for synchronous probes, without yielding to the event loop. */
export function waitForSync<T>(what: string, fn: () => T | null | undefined | false, timeoutMs = 10_000, everyMs = 50): T {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    sleepSync(everyMs);
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (and, with `span`, the next span-1 too). */
export async function freePort(span = 1): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once("error", reject);
      srv.listen(0, "127.0.0.1", () => {
        const addr = srv.address() as net.AddressInfo;
        srv.close(() => resolve(addr.port));
      });
    });
    let ok = port + span - 1 < 65536;
    for (let i = 1; ok && i < span; i++) ok = await portFree(port + i);
    if (ok) return port;
  }
  throw new Error("could not find a free loopback port");
}

/** True when `port` on 127.0.0.1 can be bound right now. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}
