/**
 * A minimal QMP (qemu machine protocol) client for the VM test host: one connection per
 * call, JSON lines, events skipped. qemu takes one QMP client at a time on the socket.
 */
import * as net from "node:net";

export interface QmpCommand {
  execute: string;
  arguments?: Record<string, unknown>;
}

/**
 * Runs `commands` in order on the QMP socket and returns their `return` values. A QMP error
 * or a closed connection throws, naming the command; the whole exchange is bounded by `timeoutMs`.
 */
export function qmp(socketPath: string, commands: QmpCommand[], timeoutMs = 60_000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    const results: unknown[] = [];
    const queue: QmpCommand[] = [{ execute: "qmp_capabilities" }, ...commands];
    let current: QmpCommand | undefined;
    let greeted = false;
    let buf = "";
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(results.slice(1));
    };
    const timer = setTimeout(
      () => finish(new Error(`qmp ${socketPath}: no answer to ${current?.execute ?? "the greeting"} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const next = () => {
      current = queue.shift();
      if (!current) return finish();
      sock.write(JSON.stringify(current) + "\n");
    };
    sock.on("error", (e) => finish(new Error(`qmp ${socketPath}: ${e.message}`)));
    sock.on("close", () => finish(new Error(`qmp ${socketPath}: connection closed during ${current?.execute ?? "the greeting"}`)));
    sock.on("data", (d: Buffer) => {
      buf += d.toString("utf8");
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let msg: { QMP?: unknown; return?: unknown; error?: { class: string; desc: string }; event?: string };
        try {
          msg = JSON.parse(line);
        } catch {
          return finish(new Error(`qmp ${socketPath}: not JSON: ${line.slice(0, 200)}`));
        }
        if (msg.event !== undefined) continue;
        if (!greeted) {
          greeted = msg.QMP !== undefined;
          if (greeted) next();
          continue;
        }
        if (msg.error) return finish(new Error(`qmp ${current?.execute}: ${msg.error.class}: ${msg.error.desc}`));
        results.push(msg.return);
        next();
      }
    });
  });
}

/** One human monitor (HMP) command, e.g. `savevm NAME`; its output, which holds its errors (thrown). */
export async function hmp(socketPath: string, command: string, timeoutMs = 300_000): Promise<string> {
  const [out] = await qmp(socketPath, [{ execute: "human-monitor-command", arguments: { "command-line": command } }], timeoutMs);
  const text = typeof out === "string" ? out : "";
  if (/^Error:|error/i.test(text)) throw new Error(`hmp ${command}: ${text.trim()}`);
  return text;
}

/** The VM's run state ("running", "paused", "inmigrate", "postmigrate", "shutdown", "internal-error", ...). */
export async function vmStatus(socketPath: string, timeoutMs = 10_000): Promise<string> {
  const [st] = await qmp(socketPath, [{ execute: "query-status" }], timeoutMs);
  return (st as { status: string }).status;
}
