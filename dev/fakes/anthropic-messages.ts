// Fake Anthropic Messages API, for tests only: what real Claude Code talks to when
// ANTHROPIC_BASE_URL points here (see README "Real Claude").
//
// - POST /v1/messages (any query, e.g. ?beta=true): a canned assistant answer, streamed as
//   server-sent events exactly in the real API's order and shapes (message_start,
//   content_block_start, ping, content_block_delta..., content_block_stop, message_delta,
//   message_stop), or as one JSON message when the request has no `"stream": true`.
// - POST /v1/messages/count_tokens: {"input_tokens": N} (an estimate: bytes / 4).
// - GET /v1/models, GET /v1/models/<id>: a small model list in the real list shape.
// - anything else: 404 with the API's error shape ({"type":"error","error":{...}}).
// - request recording: every request (method, path, headers without the key, parsed body)
//   is kept in memory and, with `recordFile`, appended as one JSON line (so a test that
//   blocks its event loop, or another process, can read it).
// - failure modes, for the next N /v1/messages requests or all of them: 429
//   (rate_limit_error, retry-after), 5xx (500 api_error, 529 overloaded_error, or any
//   status), "drop" (the stream starts, a few deltas, then the socket is destroyed with no
//   message_stop), "error-event" (the stream ends with an `event: error` like an overloaded
//   stream), "hang" (headers never sent). Set in code, or through `controlFile` (JSON,
//   re-read on every request) when the fake runs as its own process.
// - credentials: each record carries `auth`, the first 16 hex of the sha256 of the request's
//   key (x-api-key, or the Authorization Bearer token), so a test sees WHICH credential a
//   client used without the fake keeping it; a credential revoked (`revoke`, or `revoked` in
//   the control file, by that hash) is answered 401 authentication_error the way the real API
//   answers a revoked OAuth token.
// - tools: a user message `FAKE-TOOL <Name> <json input>` is answered with that tool_use
//   block (streamed as input_json_delta, stop_reason "tool_use"); the request that carries
//   its tool_result is answered `TOOL-RESULT <error|ok>: <the result's text>`, so a test sees
//   what Claude's permission layer did with the call (e.g. a managed deny rule).
//
// As a process (tests whose own thread blocks in spawnSync/Atomics.wait cannot serve HTTP):
//   node --require ts-node/register/transpile-only dev/fakes/anthropic-messages.ts \
//        --url-file F --record-file R [--control-file C] [--answer TEXT] [--port N]
// writes its base URL to F once listening, and stops on SIGTERM.
import { LoopbackServer, readBody, readJsonLines, sendJson } from "../http";
import http from "node:http";
import crypto from "node:crypto";
import fs from "node:fs";

export type MessagesFailure =
  | { kind: "429"; retryAfterSeconds?: number }
  | { kind: "5xx"; status?: number }
  | { kind: "drop"; afterDeltas?: number }
  | { kind: "error-event" }
  | { kind: "hang" };

export interface MessagesRequestRecord {
  at: number;
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  /** parsed JSON body (null when not JSON) */
  body: any;
  /** what the fake did: "stream", "json", "count_tokens", "models", "404", or the failure kind */
  outcome: string;
  /** the answer text sent (messages only) */
  answer?: string;
  /** sha256 (16 hex) of the credential the request carried (x-api-key or Bearer); "" for none */
  auth: string;
}

/** The `auth` of a record for a credential. */
export function authHash(key: string): string {
  return crypto.createHash("sha256").update(key).digest("hex").slice(0, 16);
}

export interface FakeMessagesOptions {
  /**
   * The assistant's text for a request. Default: `CANNED-ANSWER #<n> to "<first 60 chars of
   * the last user text>"`, so a conversation can be recognised by what its user said.
   */
  answer?: (req: { body: any; n: number; lastUserText: string }) => string;
  /** fixed answer text (instead of `answer`) */
  answerText?: string;
  recordFile?: string;
  controlFile?: string;
  /** characters per content_block_delta (default 12) */
  chunk?: number;
  port?: number;
}

/** The last user message's text (string content, or its text blocks), without system reminders. */
export function lastUserText(body: any): string {
  const msgs: any[] = Array.isArray(body?.messages) ? body.messages : [];
  for (let i = msgs.length - 1; i >= 0; i--) {
    const m = msgs[i];
    if (m?.role !== "user") continue;
    const parts: string[] = [];
    if (typeof m.content === "string") parts.push(m.content);
    else if (Array.isArray(m.content)) for (const c of m.content) if (c?.type === "text" && typeof c.text === "string") parts.push(c.text);
    // what the user typed: the last block that is not harness text wrapped in a tag
    // (<system-reminder>, <local-command-caveat>, <command-name>, <local-command-stdout>, ...)
    const typed = parts.filter((t) => t.trim() && !/^<[a-z-]+>/.test(t.trimStart()));
    const text = (typed.length ? typed[typed.length - 1] : parts.join("\n")).trim();
    if (text) return text;
  }
  return "";
}

/** The last tool_result of the request's last user message, or null. */
export function lastToolResult(body: any): { id: string; isError: boolean; text: string } | null {
  const msgs: any[] = Array.isArray(body?.messages) ? body.messages : [];
  for (let i = msgs.length - 1; i >= 0; i--) {
    const m = msgs[i];
    if (m?.role !== "user") continue;
    if (!Array.isArray(m.content)) return null;
    const tr = [...m.content].reverse().find((c: any) => c?.type === "tool_result");
    if (!tr) return null;
    const text = typeof tr.content === "string" ? tr.content : Array.isArray(tr.content) ? tr.content.map((c: any) => c?.text ?? "").join("\n") : "";
    return { id: String(tr.tool_use_id ?? ""), isError: tr.is_error === true, text };
  }
  return null;
}

/** Every text the request carries in `system` (string or text blocks) and in its messages. */
export function requestTexts(body: any): { system: string; messages: string } {
  const flat = (c: any): string =>
    typeof c === "string"
      ? c
      : Array.isArray(c)
        ? c.map((b) => (typeof b?.text === "string" ? b.text : typeof b?.content === "string" ? b.content : flat(b?.content))).join("\n")
        : "";
  return {
    system: flat(body?.system),
    messages: (Array.isArray(body?.messages) ? body.messages : []).map((m: any) => flat(m?.content)).join("\n"),
  };
}

const MODELS = [
  { id: "claude-opus-4-5-20251101", display_name: "Claude Opus 4.5", created_at: "2025-11-24T00:00:00Z" },
  { id: "claude-sonnet-4-5-20250929", display_name: "Claude Sonnet 4.5", created_at: "2025-09-29T00:00:00Z" },
  { id: "claude-haiku-4-5-20251001", display_name: "Claude Haiku 4.5", created_at: "2025-10-15T00:00:00Z" },
].map((m) => ({ type: "model", ...m }));

export class FakeAnthropicMessages extends LoopbackServer {
  readonly requests: MessagesRequestRecord[] = [];
  private failQueue: MessagesFailure[] = [];
  private failAlways: MessagesFailure | null = null;
  private n = 0;
  private controlSeen = "";
  /** authHash of the credentials answered 401 (revoked) */
  readonly revoked = new Set<string>();

  constructor(readonly opts: FakeMessagesOptions = {}) {
    super();
  }

  /** Fail the next `count` /v1/messages requests with `mode`. */
  failNext(mode: MessagesFailure, count = 1): void {
    for (let i = 0; i < count; i++) this.failQueue.push(mode);
  }
  /** Answer every request with this credential 401 from now on (a revoked OAuth token). */
  revoke(key: string): void {
    this.revoked.add(authHash(key));
  }
  /** Fail every /v1/messages request with `mode` until called with null. */
  failAll(mode: MessagesFailure | null): void {
    this.failAlways = mode;
  }
  /** /v1/messages requests only (what the conversation sent). */
  get messages(): MessagesRequestRecord[] {
    return this.requests.filter((r) => r.method === "POST" && r.path === "/v1/messages");
  }

  /** Listens on `opts.port` (default: a free port). */
  start(port = this.opts.port ?? 0): Promise<this> {
    return super.start(port);
  }

  /** A control file changes the failure modes: {"failNext": [{kind, ...}, ...], "failAll": {...}|null}. */
  private readControl(): void {
    if (!this.opts.controlFile) return;
    let text = "";
    try {
      text = fs.readFileSync(this.opts.controlFile, "utf8");
    } catch {
      return;
    }
    if (text === this.controlSeen) return;
    this.controlSeen = text;
    try {
      const c = JSON.parse(text);
      if (Array.isArray(c.failNext)) this.failQueue.push(...c.failNext);
      if ("failAll" in c) this.failAlways = c.failAll ?? null;
      if (Array.isArray(c.revoked)) for (const h of c.revoked) if (typeof h === "string") this.revoked.add(h);
    } catch {
      /* half-written: read again next time */
      this.controlSeen = "";
    }
  }

  private record(r: MessagesRequestRecord): void {
    this.requests.push(r);
    if (this.opts.recordFile) fs.appendFileSync(this.opts.recordFile, JSON.stringify(r) + "\n");
  }

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const raw = await readBody(req);
    let body: any = null;
    try {
      body = raw ? JSON.parse(raw) : null;
    } catch {
      body = null;
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (k === "x-api-key" || k === "authorization") headers[k] = "<redacted>";
      else headers[k] = Array.isArray(v) ? v.join(", ") : String(v ?? "");
    }
    const key = String(req.headers["x-api-key"] ?? "") || /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ""))?.[1] || "";
    const auth = key ? authHash(key) : "";
    const rec: MessagesRequestRecord = { at: Date.now(), method: req.method ?? "", path: url.pathname, query: url.search, headers, body, outcome: "", auth };
    const requestId = `req_${crypto.randomBytes(12).toString("hex")}`;
    res.setHeader("request-id", requestId);
    res.setHeader("anthropic-organization-id", "00000000-0000-4000-8000-000000000000");

    if (req.method === "POST" && url.pathname === "/v1/messages") {
      if (!req.headers["x-api-key"] && !req.headers.authorization) {
        rec.outcome = "401";
        this.record(rec);
        return sendJson(res, 401, apiError("authentication_error", "x-api-key header is required"));
      }
      this.readControl();
      if (this.revoked.has(auth)) {
        rec.outcome = "401";
        this.record(rec);
        return sendJson(res, 401, apiError("authentication_error", "OAuth token has been revoked. Please obtain a new token."));
      }
      if (!body || !Array.isArray(body.messages) || typeof body.model !== "string") {
        rec.outcome = "400";
        this.record(rec);
        return sendJson(res, 400, apiError("invalid_request_error", "messages: Field required"));
      }
      this.readControl();
      const fail = this.failQueue.shift() ?? this.failAlways;
      const n = ++this.n;
      const said = lastUserText(body);
      const toolResult = lastToolResult(body);
      const tool = toolResult ? null : /^FAKE-TOOL ([A-Za-z_]+) (\{.*\})$/s.exec(said);
      let toolUse: { id: string; name: string; input: unknown } | null = null;
      if (tool) {
        try {
          toolUse = { id: `toolu_${crypto.randomBytes(12).toString("hex")}`, name: tool[1], input: JSON.parse(tool[2]) };
        } catch {
          toolUse = null;
        }
      }
      const text = toolResult
        ? `TOOL-RESULT ${toolResult.isError ? "error" : "ok"}: ${toolResult.text.replace(/\s+/g, " ").slice(0, 300)}`
        : toolUse
          ? ""
          : (this.opts.answerText ?? (this.opts.answer ?? defaultAnswer)({ body, n, lastUserText: said }));
      // recorded only for a request that is answered (a failed one is recorded without it)
      const answer = toolUse ? `tool_use ${toolUse.name} ${JSON.stringify(toolUse.input)}` : text;
      if (fail && fail.kind !== "drop" && fail.kind !== "error-event") {
        rec.outcome = fail.kind === "5xx" ? String(fail.status ?? 500) : fail.kind;
        this.record(rec);
        if (fail.kind === "hang") return; // never answered; destroyed on stop()
        if (fail.kind === "429") {
          res.setHeader("retry-after", String(fail.retryAfterSeconds ?? 1));
          return sendJson(res, 429, apiError("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"));
        }
        const status = fail.status ?? 500;
        return sendJson(res, status, status === 529 ? apiError("overloaded_error", "Overloaded") : apiError("api_error", "Internal server error"));
      }
      if (!fail) rec.answer = answer;
      const inputTokens = Math.max(1, Math.ceil(raw.length / 4));
      const outputTokens = Math.max(1, Math.ceil(text.length / 4));
      const msgId = `msg_${crypto.randomBytes(12).toString("base64url")}`;
      if (body.stream !== true) {
        rec.outcome = "json";
        this.record(rec);
        return sendJson(res, 200, {
          id: msgId,
          type: "message",
          role: "assistant",
          model: body.model,
          content: toolUse ? [{ type: "tool_use", ...toolUse }] : [{ type: "text", text }],
          stop_reason: toolUse ? "tool_use" : "end_turn",
          stop_sequence: null,
          usage: {
            input_tokens: inputTokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            output_tokens: outputTokens,
            service_tier: "standard",
          },
        });
      }
      rec.outcome = fail ? fail.kind : "stream";
      this.record(rec);
      return this.stream(res, { msgId, model: body.model, text, toolUse, inputTokens, outputTokens, fail });
    }
    if (req.method === "POST" && url.pathname === "/v1/messages/count_tokens") {
      rec.outcome = "count_tokens";
      this.record(rec);
      return sendJson(res, 200, { input_tokens: Math.max(1, Math.ceil(raw.length / 4)) });
    }
    if (req.method === "GET" && url.pathname === "/v1/models") {
      rec.outcome = "models";
      this.record(rec);
      return sendJson(res, 200, { data: MODELS, has_more: false, first_id: MODELS[0].id, last_id: MODELS[MODELS.length - 1].id });
    }
    const model = /^\/v1\/models\/([^/]+)$/.exec(url.pathname);
    if (req.method === "GET" && model) {
      const m = MODELS.find((x) => x.id === decodeURIComponent(model[1]));
      rec.outcome = m ? "models" : "404";
      this.record(rec);
      return m ? sendJson(res, 200, m) : sendJson(res, 404, apiError("not_found_error", `model: ${decodeURIComponent(model[1])}`));
    }
    rec.outcome = "404";
    this.record(rec);
    sendJson(res, 404, apiError("not_found_error", "Not Found"));
  }

  private stream(
    res: http.ServerResponse,
    a: {
      msgId: string;
      model: string;
      text: string;
      toolUse: { id: string; name: string; input: unknown } | null;
      inputTokens: number;
      outputTokens: number;
      fail: MessagesFailure | null;
    },
  ): void {
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive" });
    const ev = (type: string, data: unknown) => res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
    ev("message_start", {
      type: "message_start",
      message: {
        id: a.msgId,
        type: "message",
        role: "assistant",
        model: a.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: a.inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1, service_tier: "standard" },
      },
    });
    const tu = a.toolUse;
    ev("content_block_start", {
      type: "content_block_start",
      index: 0,
      content_block: tu ? { type: "tool_use", id: tu.id, name: tu.name, input: {} } : { type: "text", text: "" },
    });
    ev("ping", { type: "ping" });
    const size = this.opts.chunk ?? 12;
    const chunks: string[] = [];
    const full = tu ? JSON.stringify(tu.input) : a.text;
    for (let i = 0; i < full.length; i += size) chunks.push(full.slice(i, i + size));
    if (!chunks.length) chunks.push("");
    let i = 0;
    const dropAt = a.fail?.kind === "drop" ? Math.min(a.fail.afterDeltas ?? 2, chunks.length - 1) : -1;
    const next = () => {
      if (!res.writable) return;
      if (i === dropAt) {
        res.socket?.destroy(); // mid-stream: no content_block_stop, no message_stop
        return;
      }
      if (i < chunks.length) {
        const piece = chunks[i++];
        ev("content_block_delta", {
          type: "content_block_delta",
          index: 0,
          delta: tu ? { type: "input_json_delta", partial_json: piece } : { type: "text_delta", text: piece },
        });
        setTimeout(next, 5);
        return;
      }
      if (a.fail?.kind === "error-event") {
        ev("error", { type: "error", error: { type: "overloaded_error", message: "Overloaded" } });
        res.end();
        return;
      }
      ev("content_block_stop", { type: "content_block_stop", index: 0 });
      ev("message_delta", {
        type: "message_delta",
        delta: { stop_reason: tu ? "tool_use" : "end_turn", stop_sequence: null },
        usage: { output_tokens: a.outputTokens },
      });
      ev("message_stop", { type: "message_stop" });
      res.end();
    };
    next();
  }
}

function defaultAnswer(r: { n: number; lastUserText: string }): string {
  const said = r.lastUserText.replace(/\s+/g, " ").slice(0, 60);
  return `CANNED-ANSWER #${r.n} to "${said}"`;
}

function apiError(type: string, message: string) {
  return { type: "error", error: { type, message } };
}

export async function startFakeMessages(opts: FakeMessagesOptions = {}): Promise<FakeAnthropicMessages> {
  return new FakeAnthropicMessages(opts).start();
}

/** Read a record file written by a fake running as its own process. */
export function readRecords(file: string): MessagesRequestRecord[] {
  return readJsonLines<MessagesRequestRecord>(file);
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const urlFile = opt("--url-file");
  const fake = new FakeAnthropicMessages({
    recordFile: opt("--record-file"),
    controlFile: opt("--control-file"),
    answerText: opt("--answer"),
    port: opt("--port") ? Number(opt("--port")) : undefined,
  });
  void fake.start().then(() => {
    if (urlFile) {
      fs.writeFileSync(`${urlFile}.tmp`, fake.url + "\n");
      fs.renameSync(`${urlFile}.tmp`, urlFile);
    } else process.stdout.write(fake.url + "\n");
  });
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => void fake.stop().then(() => process.exit(0)));
}
