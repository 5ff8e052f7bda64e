/**
 * A real browser for tests: Debian's `chromium`, headless, driven over the DevTools protocol
 * on a pipe (`--remote-debugging-pipe`: requests on fd 3, answers and events on fd 4, each
 * message NUL-terminated). No npm dependency: the few calls the tests need are here.
 *
 *   const b = await Browser.launch();
 *   const page = await b.newPage();
 *   await page.setCookie({ name, value, url }); await page.goto(url);
 *   await page.eval("1 + 1"); await page.type("whoami\r"); await page.screenshot(file);
 *   await b.close();
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Readable, Writable } from "node:stream";
import { waitFor } from "./wait";
import { tempDir } from "./tmp";

type Json = Record<string, unknown>;
interface Pending {
  resolve: (v: Json) => void;
  reject: (e: Error) => void;
  method: string;
}

/** The chromium binary: $WORKSTATIONS_CHROMIUM, else Debian's. */
export const CHROMIUM = process.env.WORKSTATIONS_CHROMIUM ?? "/usr/bin/chromium";

export class Browser {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners: Array<(m: Json) => void> = [];
  private buf = Buffer.alloc(0);
  private readonly stderr: string[] = [];

  private constructor(
    private readonly proc: ChildProcess,
    private readonly profile: string,
  ) {
    const out = proc.stdio[4] as Readable;
    out.on("data", (chunk: Buffer) => this.receive(chunk));
    proc.stderr?.on("data", (d: Buffer) => this.stderr.push(d.toString()));
    proc.on("exit", () => {
      for (const p of this.pending.values()) p.reject(new Error(`chromium exited during ${p.method}: ${this.stderrTail()}`));
      this.pending.clear();
    });
  }

  /** Starts a headless chromium with a fresh profile. */
  static async launch(opts: { width?: number; height?: number } = {}): Promise<Browser> {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (dev/setup)`);
    const profile = tempDir("ws-chromium-");
    const args = [
      "--headless=new",
      "--remote-debugging-pipe",
      `--user-data-dir=${profile}`,
      `--window-size=${opts.width ?? 1100},${opts.height ?? 700}`,
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-extensions",
      "--disable-background-networking",
      "--disable-sync",
      "--password-store=basic",
      ...(process.getuid?.() === 0 ? ["--no-sandbox"] : []),
      "about:blank",
    ];
    const proc = spawn(CHROMIUM, args, { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
    const b = new Browser(proc, profile);
    await waitFor("chromium's DevTools pipe", async () => (await b.send("Browser.getVersion").catch(() => undefined)) ?? false, 60_000, 250);
    return b;
  }

  private receive(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (let i = this.buf.indexOf(0); i >= 0; i = this.buf.indexOf(0)) {
      const msg = JSON.parse(this.buf.subarray(0, i).toString("utf8")) as Json;
      this.buf = this.buf.subarray(i + 1);
      const id = msg.id as number | undefined;
      const p = id !== undefined ? this.pending.get(id) : undefined;
      if (p) {
        this.pending.delete(id!);
        if (msg.error) p.reject(new Error(`${p.method}: ${JSON.stringify(msg.error)}`));
        else p.resolve((msg.result ?? {}) as Json);
      } else for (const l of this.listeners) l(msg);
    }
  }

  /** One DevTools call (on a page's session when `sessionId` is given). */
  send(method: string, params: Json = {}, sessionId?: string): Promise<Json> {
    const id = this.nextId++;
    const msg = JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) });
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      (this.proc.stdio[3] as Writable).write(msg + "\0");
    });
  }

  /** Events (`method`, `params`, `sessionId`) as they arrive. */
  on(fn: (m: Json) => void): void {
    this.listeners.push(fn);
  }

  stderrTail(): string {
    return this.stderr.join("").split("\n").slice(-10).join("\n");
  }

  /** A new tab, attached. */
  async newPage(): Promise<Page> {
    const { targetId } = (await this.send("Target.createTarget", { url: "about:blank" })) as { targetId: string };
    const { sessionId } = (await this.send("Target.attachToTarget", { targetId, flatten: true })) as { sessionId: string };
    const page = new Page(this, sessionId, targetId);
    await page.call("Page.enable");
    await page.call("Runtime.enable");
    await page.call("Network.enable");
    return page;
  }

  async close(): Promise<void> {
    await this.send("Browser.close").catch(() => undefined);
    await waitFor("chromium to exit", () => this.proc.exitCode !== null || this.proc.signalCode !== null, 10_000).catch(() => this.proc.kill("SIGKILL"));
    fs.rmSync(this.profile, { recursive: true, force: true });
  }
}

export class Page {
  /** Console messages and exceptions of the page, for failure messages. */
  readonly console: string[] = [];
  /** The page's WebSockets: url and whether it is still open (DevTools' Network events). */
  readonly sockets = new Map<string, { url: string; open: boolean }>();

  constructor(
    private readonly b: Browser,
    readonly sessionId: string,
    readonly targetId: string,
  ) {
    b.on((m) => {
      if (m.sessionId !== sessionId) return;
      const p = m.params as Json | undefined;
      if (m.method === "Runtime.consoleAPICalled") this.console.push(((p?.args as Json[]) ?? []).map((a) => String(a.value ?? a.description ?? "")).join(" "));
      if (m.method === "Runtime.exceptionThrown") this.console.push(JSON.stringify((p?.exceptionDetails as Json)?.text ?? p));
      if (m.method === "Network.webSocketCreated") this.sockets.set(String(p?.requestId), { url: String(p?.url), open: true });
      if (m.method === "Network.webSocketClosed") {
        const s = this.sockets.get(String(p?.requestId));
        if (s) s.open = false;
      }
    });
  }

  call(method: string, params: Json = {}): Promise<Json> {
    return this.b.send(method, params, this.sessionId);
  }

  async setCookie(c: { name: string; value: string; url: string }): Promise<void> {
    await this.call("Network.setCookie", c);
  }

  /** Headers the browser adds to every request of this page (a forged identity header, say). */
  async setExtraHeaders(headers: Record<string, string>): Promise<void> {
    await this.call("Network.setExtraHTTPHeaders", { headers });
  }

  /** Navigates and waits for the load event's document (not for scripts' own work). */
  async goto(url: string): Promise<void> {
    // The old document's WebSockets end with it (DevTools does not always report their close).
    for (const s of this.sockets.values()) s.open = false;
    const r = (await this.call("Page.navigate", { url })) as { errorText?: string };
    if (r.errorText) throw new Error(`navigate ${url}: ${r.errorText}`);
    await waitFor(`${url} to load`, async () => (await this.eval("document.readyState")) === "complete", 30_000);
  }

  /** Evaluates an expression in the page; returns its value (promises awaited). */
  async eval<T = unknown>(expression: string): Promise<T> {
    const r = (await this.call("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true })) as {
      result: { value?: T };
      exceptionDetails?: Json;
    };
    if (r.exceptionDetails) throw new Error(`eval ${expression.slice(0, 80)}: ${JSON.stringify(r.exceptionDetails).slice(0, 300)}`);
    return r.result.value as T;
  }

  /** Types text as keystrokes into the focused element; `\r` is the Enter key. */
  async type(text: string): Promise<void> {
    for (const part of text.split(/(\r)/)) {
      if (part === "\r") {
        const key = { key: "Enter", code: "Enter", windowsVirtualKeyCode: 13, nativeVirtualKeyCode: 13 };
        await this.call("Input.dispatchKeyEvent", { type: "keyDown", text: "\r", ...key });
        await this.call("Input.dispatchKeyEvent", { type: "keyUp", ...key });
      } else if (part) await this.call("Input.insertText", { text: part });
    }
  }

  /** WebSockets of the page still open. */
  openSockets(): string[] {
    return [...this.sockets.values()].filter((s) => s.open).map((s) => s.url);
  }

  /** A PNG of the page, written to `file`. */
  async screenshot(file: string): Promise<void> {
    const { data } = (await this.call("Page.captureScreenshot", { format: "png" })) as { data: string };
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, Buffer.from(data, "base64"));
  }
}
