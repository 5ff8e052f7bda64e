/**
 * Small HTTP and file helpers shared by the fakes, the service harnesses and the test
 * harnesses (one copy each).
 */
import * as fs from "fs";
import * as http from "http";

/** The whole request body as bytes (empty when the request errors). */
export function readBodyBytes(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", () => resolve(Buffer.alloc(0)));
  });
}

/** The whole request body as text ("" when the request errors). */
export async function readBody(req: http.IncomingMessage): Promise<string> {
  return (await readBodyBytes(req)).toString("utf8");
}

/** Answers `status` with `body` as JSON. */
export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** A response body as JSON, the text itself when it is not JSON, null when empty. */
export function jsonOrText(text: string): any {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The complete records of a JSON-lines file ([] when it does not exist yet). The writers (the
 * fakes, in other processes) append while tests read, so a last line without its newline is
 * a record still being written: it is left for the next read, never parsed half.
 */
export function readJsonLines<T>(file: string): T[] {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return [];
  }
  const lines = text.split("\n");
  lines.pop(); // "" after the last newline, or the record being written
  return lines.filter(Boolean).map((l) => JSON.parse(l) as T);
}

/**
 * A loopback HTTP server for the fakes and the test proxies: a subclass answers in `handle`;
 * `start` listens (on `port`, 0 = a free one), sets `url` and resolves to the server; `stop`
 * ends it, open connections included (a client's pooled keep-alive socket, or a request the
 * fake never answers, must not keep it alive).
 */
export abstract class LoopbackServer {
  url = "";
  private server: http.Server | null = null;
  private readonly sockets = new Set<import("net").Socket>();

  /** Answers one request. */
  protected abstract handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> | void;

  async start(port = 0): Promise<this> {
    const server = http.createServer((req, res) => void this.handle(req, res));
    server.on("connection", (s) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as import("net").AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}
