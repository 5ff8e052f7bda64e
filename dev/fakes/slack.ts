// Fake Slack incoming webhook, for tests only: records every post, can be told to fail or to
// hang (never answer, for timeouts).
import type http from "node:http";
import { LoopbackServer, readBody } from "../http";

export interface SlackPost {
  at: number;
  path: string;
  body: unknown;
  text: string;
  /** whether the fake answered 200 (a failed post is recorded too) */
  delivered: boolean;
}

export class FakeSlack extends LoopbackServer {
  readonly posts: SlackPost[] = [];
  private failQueue: number[] = [];
  private failStatus: number | null = null;
  private hangCount = 0;
  private hangAllPosts = false;

  /** The webhook URL (what the notifier's slack-webhook credential holds). */
  get webhookUrl(): string {
    return `${this.url}/services/T000/B000/fakewebhooksecret`;
  }
  /** Posts Slack accepted (what a human would see). */
  get delivered(): SlackPost[] {
    return this.posts.filter((p) => p.delivered);
  }

  /** Fail the next `count` posts with `status` (Slack answers e.g. 500 or 404 no_service). */
  failNext(count = 1, status = 500): void {
    for (let i = 0; i < count; i++) this.failQueue.push(status);
  }
  /** Fail every post with `status` until called with null. */
  failAll(status: number | null): void {
    this.failStatus = status;
  }
  /** Never answer the next `count` posts (recorded as not delivered). */
  hangNext(count = 1): void {
    this.hangCount += count;
  }
  /** Never answer any post until called with false. */
  hangAll(on: boolean): void {
    this.hangAllPosts = on;
  }
  clear(): void {
    this.posts.length = 0;
  }

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = await readBody(req);
    let body: unknown = raw;
    try {
      body = JSON.parse(raw);
    } catch {
      /* keep raw */
    }
    const text = typeof body === "object" && body !== null && typeof (body as { text?: unknown }).text === "string" ? (body as { text: string }).text : "";
    if (this.hangAllPosts || this.hangCount > 0) {
      if (!this.hangAllPosts) this.hangCount--;
      this.posts.push({ at: Date.now(), path: req.url ?? "/", body, text, delivered: false });
      return; // no answer; the connection stays open until the client gives up or stop()
    }
    const fail = req.method !== "POST" ? 405 : (this.failQueue.shift() ?? this.failStatus);
    this.posts.push({ at: Date.now(), path: req.url ?? "/", body, text, delivered: !fail && text !== "" });
    if (fail) {
      res.writeHead(fail, { "content-type": "text/plain" });
      res.end(fail === 404 ? "no_service" : "internal_error");
      return;
    }
    if (!text) {
      res.writeHead(400, { "content-type": "text/plain" });
      res.end("no_text");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  }
}

export async function startFakeSlack(): Promise<FakeSlack> {
  return new FakeSlack().start();
}
