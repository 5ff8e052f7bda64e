/**
 * dev/fakes/anthropic-messages.ts on its own, over real HTTP: the SSE stream in the real
 * API's event order and shapes, the JSON answer, count_tokens, models, errors, recording and
 * every failure mode. (tests/claude/facts.test.ts then runs the real CLI against it.)
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { FakeAnthropicMessages, lastUserText, readRecords } from "../../dev/fakes/anthropic-messages";
import { tempDir } from "../../dev/tmp";

interface Sse {
  event: string;
  data: any;
}
function parseSse(text: string): Sse[] {
  return text
    .split("\n\n")
    .filter((b) => b.trim())
    .map((b) => {
      const ev = /^event: (.*)$/m.exec(b)?.[1] ?? "";
      const data = JSON.parse(/^data: (.*)$/m.exec(b)?.[1] ?? "null");
      return { event: ev, data };
    });
}

describe("fake Anthropic Messages API", () => {
  let fake: FakeAnthropicMessages;
  let dir: string;
  const post = (p: string, body: unknown, headers: Record<string, string> = { "x-api-key": "sk-test", "anthropic-version": "2023-06-01" }) =>
    fetch(fake.url + p, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  const msg = (text: string, extra: Record<string, unknown> = {}) => ({
    model: "claude-sonnet-4-5",
    max_tokens: 64,
    messages: [{ role: "user", content: text }],
    ...extra,
  });

  before(async () => {
    dir = tempDir("fake-msgs-");
    fake = await new FakeAnthropicMessages({ recordFile: path.join(dir, "rec.jsonl"), controlFile: path.join(dir, "control.json"), chunk: 5 }).start();
  });
  after(async () => {
    await fake.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("streaming: message_start, content_block_start, ping, deltas, content_block_stop, message_delta, message_stop", async () => {
    const r = await post("/v1/messages?beta=true", msg("hello stream", { stream: true }));
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type") ?? "", /^text\/event-stream/);
    assert.match(r.headers.get("request-id") ?? "", /^req_/);
    const evs = parseSse(await r.text());
    const kinds = evs.map((e) => e.event);
    assert.deepEqual(kinds.slice(0, 3), ["message_start", "content_block_start", "ping"]);
    assert.deepEqual(kinds.slice(-3), ["content_block_stop", "message_delta", "message_stop"]);
    assert.ok(kinds.slice(3, -3).every((k) => k === "content_block_delta") && kinds.length > 7);
    for (const e of evs) assert.equal(e.data.type, e.event, "data.type names the event");
    const start = evs[0].data.message;
    assert.equal(start.role, "assistant");
    assert.equal(start.model, "claude-sonnet-4-5");
    assert.deepEqual(start.content, []);
    assert.equal(start.stop_reason, null);
    assert.ok(start.usage.input_tokens > 0);
    const text = evs
      .filter((e) => e.event === "content_block_delta")
      .map((e) => e.data.delta.text)
      .join("");
    assert.equal(text, 'CANNED-ANSWER #1 to "hello stream"');
    assert.equal(evs.at(-2)!.data.delta.stop_reason, "end_turn");
    assert.ok(evs.at(-2)!.data.usage.output_tokens > 0);
  });

  test("non-streaming: one message object; the answer quotes what the user typed, not harness text", async () => {
    const body = {
      model: "m",
      max_tokens: 10,
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "<system-reminder>x</system-reminder>" },
            { type: "text", text: "typed here" },
          ],
        },
      ],
    };
    assert.equal(lastUserText(body), "typed here");
    const r = await post("/v1/messages", body);
    assert.equal(r.status, 200);
    const j: any = await r.json();
    assert.equal(j.type, "message");
    assert.equal(j.stop_reason, "end_turn");
    assert.match(j.content[0].text, /^CANNED-ANSWER #\d+ to "typed here"$/);
  });

  test("count_tokens, models, 404, 401 without a key, 400 without messages", async () => {
    const c: any = await (await post("/v1/messages/count_tokens", msg("count me"))).json();
    assert.ok(c.input_tokens > 0);
    const m: any = await (await fetch(fake.url + "/v1/models")).json();
    assert.ok(m.data.length > 0 && m.data.every((x: any) => x.type === "model" && x.id));
    assert.equal(m.has_more, false);
    const nf = await fetch(fake.url + "/api/whatever");
    assert.equal(nf.status, 404);
    assert.deepEqual(await nf.json(), { type: "error", error: { type: "not_found_error", message: "Not Found" } });
    const noKey = await post("/v1/messages", msg("x"), {});
    assert.equal(noKey.status, 401);
    assert.equal(((await noKey.json()) as any).error.type, "authentication_error");
    const bad = await post("/v1/messages", { model: "m" });
    assert.equal(bad.status, 400);
  });

  test("failures: 429 with retry-after, 500, 529, then normal again", async () => {
    fake.failNext({ kind: "429", retryAfterSeconds: 3 });
    fake.failNext({ kind: "5xx" });
    fake.failNext({ kind: "5xx", status: 529 });
    const a = await post("/v1/messages", msg("f1"));
    assert.equal(a.status, 429);
    assert.equal(a.headers.get("retry-after"), "3");
    assert.equal(((await a.json()) as any).error.type, "rate_limit_error");
    const b = await post("/v1/messages", msg("f2"));
    assert.equal(b.status, 500);
    assert.equal(((await b.json()) as any).error.type, "api_error");
    const c = await post("/v1/messages", msg("f3"));
    assert.equal(c.status, 529);
    assert.equal(((await c.json()) as any).error.type, "overloaded_error");
    assert.equal((await post("/v1/messages", msg("f4"))).status, 200);
  });

  test("a dropped stream ends without message_stop; an error event ends it with event: error", async () => {
    fake.failNext({ kind: "drop", afterDeltas: 2 });
    const r = await post("/v1/messages", msg("drop me please, long enough", { stream: true }));
    assert.equal(r.status, 200);
    await assert.rejects(r.text(), "the body breaks off");
    fake.failNext({ kind: "error-event" });
    const e = parseSse(await (await post("/v1/messages", msg("err", { stream: true }))).text());
    assert.equal(e.at(-1)!.event, "error");
    assert.equal(e.at(-1)!.data.error.type, "overloaded_error");
    assert.ok(!e.some((x) => x.event === "message_stop"));
  });

  test("hang: no answer until the client gives up", async () => {
    fake.failNext({ kind: "hang" });
    await assert.rejects(
      fetch(fake.url + "/v1/messages", {
        method: "POST",
        headers: { "x-api-key": "k", "content-type": "application/json" },
        body: JSON.stringify(msg("hang")),
        signal: AbortSignal.timeout(500),
      }),
    );
  });

  test("the control file sets failures from another process; every request is recorded without the key", async () => {
    fs.writeFileSync(path.join(dir, "control.json"), JSON.stringify({ failNext: [{ kind: "429" }] }));
    assert.equal((await post("/v1/messages", msg("ctl"))).status, 429);
    assert.equal((await post("/v1/messages", msg("ctl2"))).status, 200, "a control file is applied once");
    const recs = readRecords(path.join(dir, "rec.jsonl"));
    assert.equal(recs.length, fake.requests.length);
    assert.ok(recs.some((r) => r.outcome === "429" && lastUserText(r.body) === "ctl"));
    assert.ok(
      recs.every((r) => !JSON.stringify(r).includes("sk-test")),
      "no key in the records",
    );
  });

  test("FAKE-TOOL answers with a tool_use (streamed as input_json_delta); its tool_result is echoed", async () => {
    const evs = parseSse(await (await post("/v1/messages", msg('FAKE-TOOL Read {"file_path":"/x"}', { stream: true }))).text());
    assert.equal(evs[1].data.content_block.type, "tool_use");
    assert.equal(evs[1].data.content_block.name, "Read");
    const json = evs
      .filter((e) => e.event === "content_block_delta")
      .map((e) => e.data.delta.partial_json)
      .join("");
    assert.deepEqual(JSON.parse(json), { file_path: "/x" });
    assert.equal(evs.at(-2)!.data.delta.stop_reason, "tool_use");
    const id = evs[1].data.content_block.id;
    const j: any = await (
      await post("/v1/messages", {
        model: "m",
        max_tokens: 5,
        messages: [
          { role: "user", content: 'FAKE-TOOL Read {"file_path":"/x"}' },
          { role: "assistant", content: [{ type: "tool_use", id, name: "Read", input: { file_path: "/x" } }] },
          { role: "user", content: [{ type: "tool_result", tool_use_id: id, is_error: true, content: "denied by policy" }] },
        ],
      })
    ).json();
    assert.equal(j.content[0].text, "TOOL-RESULT error: denied by policy");
  });
});
