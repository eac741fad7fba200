// streamChat over real loopback HTTP against a tiny Node server.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  APIConnectionError,
  APIStatusError,
  IncompleteStreamError,
  MalformedChunk,
  RawSSEError,
  StreamCancelled,
  StreamError,
  StreamInterrupted,
  UnexpectedContentType,
  resumeChat,
  streamChat,
} from "../../src/rawsse/relay/rawsse.js";
import { everySplit, fixedSize } from "./helpers.mjs";
import { sleep, sseHead, startServer, until, writeChunks } from "./server.mjs";
import {
  OPENAI_MAPPED_USAGE,
  OPENAI_TEXT,
  RELAY_TEXT,
  USAGE,
  chunk,
  expectedOpenAI,
  expectedRelay,
  openaiWire,
  relayEvent,
  relayWire,
} from "./streams.mjs";

let server;
before(async () => {
  server = await startServer((req, res) => res.end());
});
after(() => server.close());

const BODY = { model: "test/model", messages: [{ role: "user", content: "hi" }] };

async function collect(stream) {
  const events = [];
  for await (const event of stream) events.push(event);
  return events;
}

/** Iterate to the end; return [events, error]. */
async function collectError(stream) {
  const events = [];
  try {
    for await (const event of stream) events.push(event);
  } catch (error) {
    return [events, error];
  }
  assert.fail("the stream did not fail");
}

function serveWire(wire, { gap = 0, headers = {} } = {}) {
  server.route = async (req, res) => {
    sseHead(res, headers);
    if (Array.isArray(wire)) await writeChunks(res, wire, gap);
    else res.write(wire);
    res.end();
  };
}

function withoutTtft(events) {
  return events.map((e) => (e.type === "done" && typeof e.ttft === "number" ? { ...e, ttft: "<number>" } : e));
}

test("relay events arrive as {type, ...data}; result gathers choice 0", async () => {
  serveWire(relayWire());
  const texts = [];
  const stream = streamChat(`${server.url}/chat`, BODY, { onText: (text, choice) => texts.push([choice, text]) });
  assert.deepEqual(await collect(stream), expectedRelay());
  const result = await stream.result;
  assert.equal(result.text, RELAY_TEXT);
  assert.equal(result.status, "complete");
  assert.deepEqual(result.usage, USAGE);
  assert.equal(typeof result.ttft, "number");
  assert.ok(result.ttft >= 0 && result.ttft < 30);
  assert.equal(result.cost, 0.00012);
  assert.equal(result.finishReason, "stop");
  assert.equal(result.model, "test/model");
  assert.equal(result.streamId, null);
  assert.deepEqual(texts, [[0, "Hé"], [0, "llo 🌍"], [0, " wörld"], [1, "other choice"]]);
  const [request] = server.requests.slice(-1);
  assert.equal(request.method, "POST");
  assert.equal(request.headers.accept, "text/event-stream");
  assert.equal(request.headers["content-type"], "application/json");
  assert.deepEqual(JSON.parse(request.body), BODY);
});

/**
 * A fetch whose response body delivers exactly `chunks`, one per read: exact
 * read boundaries, which TCP does not promise.
 */
function chunkedFetch(chunks) {
  return async () => {
    const body = new ReadableStream({
      pull(controller) {
        const next = chunks.shift();
        if (next === undefined) controller.close();
        else if (next.length !== 0) controller.enqueue(next);
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  };
}

test("relay stream split at every position gives the same events", async () => {
  const wire = Buffer.from(relayWire());
  const want = expectedRelay();
  for (const chunks of everySplit(wire)) {
    const stream = streamChat("/chat", BODY, { fetch: chunkedFetch(chunks) });
    assert.deepEqual(await collect(stream), want);
    assert.equal((await stream.result).text, RELAY_TEXT);
  }
});

test("relay stream one byte per read over HTTP", async () => {
  const wire = Buffer.from(relayWire());
  serveWire(Array.from(wire, (byte) => Buffer.from([byte])), { gap: 0 });
  const stream = streamChat(`${server.url}/chat`, BODY);
  assert.deepEqual(await collect(stream), expectedRelay());
});

test("caller headers are sent and not mutated", async () => {
  serveWire(relayWire());
  const headers = { Authorization: "Bearer k", "X-Extra": "1" };
  await streamChat(`${server.url}/chat`, BODY, { headers }).result;
  assert.deepEqual(headers, { Authorization: "Bearer k", "X-Extra": "1" });
  const [request] = server.requests.slice(-1);
  assert.equal(request.headers.authorization, "Bearer k");
  assert.equal(request.headers["x-extra"], "1");
});

test("an OpenAI-compatible stream maps to the same event types", async () => {
  serveWire(openaiWire() + "data: [DONE]\n\n");
  const texts = [];
  const stream = streamChat(`${server.url}/chat/completions`, { ...BODY, stream: true }, { onText: (t) => texts.push(t) });
  const events = await collect(stream);
  assert.deepEqual(withoutTtft(events), expectedOpenAI());
  const result = await stream.result;
  assert.equal(result.text, OPENAI_TEXT);
  assert.equal(result.status, "complete");
  assert.deepEqual(result.usage, OPENAI_MAPPED_USAGE);
  assert.equal(result.ttft, events.at(-1).ttft);
  assert.equal(result.cost, 0.5);
  assert.equal(result.model, "up/model");
  assert.deepEqual(texts, ["Hé", "llo 🌍"]);
});

test("an OpenAI-compatible stream split at every position", async () => {
  const wire = Buffer.from(openaiWire() + "data: [DONE]\n\n");
  const want = expectedOpenAI();
  for (const chunks of everySplit(wire)) {
    const stream = streamChat("/v1/chat/completions", BODY, { fetch: chunkedFetch(chunks) });
    assert.deepEqual(withoutTtft(await collect(stream)), want);
  }
});

test("an OpenAI-compatible stream in 3-byte reads over HTTP", async () => {
  const wire = Buffer.from(openaiWire() + "data: [DONE]\n\n");
  serveWire(fixedSize(wire, 3), { gap: 0 });
  const stream = streamChat(`${server.url}/c`, BODY);
  assert.deepEqual(withoutTtft(await collect(stream)), expectedOpenAI());
});

test("an OpenAI-compatible stream ending without [DONE] gets a synthesised done", async () => {
  // Finished and usage sent: complete, as the Python accumulator decides.
  serveWire(openaiWire());
  let stream = streamChat(`${server.url}/c`, BODY);
  assert.deepEqual(withoutTtft(await collect(stream)), expectedOpenAI());
  // Cut before the finish: truncated, with the text so far.
  serveWire(chunk([{ index: 0, delta: { content: "par" } }]) + chunk([{ index: 0, delta: { content: "tial" } }]));
  stream = streamChat(`${server.url}/c`, BODY);
  const events = await collect(stream);
  assert.deepEqual(events.at(-1), {
    type: "done",
    status: "truncated",
    finish_reason: null,
    finish_reasons: {},
    usage: null,
    cost: null,
    ttft: events.at(-1).ttft,
  });
  const result = await stream.result;
  assert.equal(result.status, "truncated");
  assert.equal(result.text, "partial");
});

test("an in-band upstream error becomes an error event, then rejects with the partial text", async () => {
  serveWire(
    chunk([{ index: 0, delta: { content: "so far" } }]) +
      chunk([{ index: 0, delta: {}, finish_reason: "error" }], {
        error: { code: 502, message: "provider died", metadata: { p: 1 } },
      }) +
      "data: [DONE]\n\n",
  );
  const stream = streamChat(`${server.url}/c`, BODY);
  const [events, error] = await collectError(stream);
  assert.deepEqual(events.at(-1), {
    type: "error",
    status: "error",
    message: "provider died",
    code: 502,
    http_status: null,
    partial_text_length: 6,
    text: "so far",
    extras: { metadata: [{ p: 1 }] },
  });
  assert.ok(error instanceof StreamError && error instanceof StreamInterrupted && error instanceof RawSSEError);
  assert.equal(error.code, 502);
  assert.match(error.message, /provider died/);
  assert.deepEqual(error.partial, { text: "so far", status: "error" });
  await assert.rejects(stream.result, (e) => e === error);
});

test("a relay error event rejects with its code, HTTP status and the partial text", async () => {
  serveWire(
    relayEvent(1, "start", { stream_id: null, model: "m", id: null }) +
      relayEvent(2, "text", { choice: 0, text: "half" }) +
      relayEvent(3, "error", {
        status: "timed_out",
        message: "upstream went quiet",
        code: "idle_timeout",
        http_status: 504,
        partial_text_length: 4,
        text: "half",
      }),
  );
  const stream = streamChat(`${server.url}/chat`, BODY);
  const [events, error] = await collectError(stream);
  assert.equal(events.length, 3);
  assert.equal(events[2].type, "error");
  assert.ok(error instanceof StreamError);
  assert.equal(error.status, 504);
  assert.equal(error.code, "idle_timeout");
  assert.equal(error.message, "upstream went quiet");
  assert.deepEqual(error.partial, { text: "half", status: "timed_out" });
  assert.deepEqual(error.event, events[2]);
});

test("a non-2xx answer rejects the iterator and result with status, code and message", async () => {
  server.route = (req, res) => {
    res.writeHead(429, { "content-type": "application/json", "retry-after": "3" });
    res.end(JSON.stringify({ error: { message: "slow down", code: 429 } }));
  };
  const stream = streamChat(`${server.url}/chat`, BODY);
  const [events, error] = await collectError(stream);
  assert.deepEqual(events, []);
  assert.ok(error instanceof APIStatusError);
  assert.equal(error.status, 429);
  assert.equal(error.code, 429);
  assert.equal(error.retryAfter, 3);
  assert.match(error.message, /slow down/);
  assert.deepEqual(error.partial, { text: "", status: "error" });
  await assert.rejects(stream.result, APIStatusError);

  server.route = (req, res) => {
    res.writeHead(400, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: "parameter not allowed: temperature" }));
  };
  await assert.rejects(streamChat(`${server.url}/chat`, BODY).result, (e) => {
    assert.equal(e.status, 400);
    assert.match(e.message, /parameter not allowed: temperature/);
    return true;
  });

  server.route = (req, res) => {
    res.writeHead(502, { "content-type": "text/plain" });
    res.end("bad gateway");
  };
  await assert.rejects(streamChat(`${server.url}/chat`, BODY).result, (e) => {
    assert.equal(e.status, 502);
    assert.equal(e.payload, "bad gateway");
    assert.match(e.message, /bad gateway/);
    return true;
  });
});

test("a 2xx answer that is not an event stream is a typed error", async () => {
  server.route = (req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"choices": []}');
  };
  await assert.rejects(streamChat(`${server.url}/c`, BODY).result, (e) => {
    assert.ok(e instanceof UnexpectedContentType);
    assert.match(e.message, /stream: true/);
    assert.equal(e.payload, '{"choices": []}');
    return true;
  });
});

test("malformed JSON in a data line rejects with the payload", async () => {
  serveWire(relayEvent(1, "start", { stream_id: null }) + "id: 2\nevent: text\ndata: {nope\n\n");
  const [events, error] = await collectError(streamChat(`${server.url}/chat`, BODY));
  assert.equal(events.length, 1);
  assert.ok(error instanceof MalformedChunk);
  assert.equal(error.payload, "{nope");
  assert.deepEqual(error.partial, { text: "", status: "error" });
});

test("a refused connection rejects with APIConnectionError", async () => {
  const closed = await startServer(() => {});
  const url = closed.url;
  await closed.close();
  await assert.rejects(streamChat(`${url}/chat`, BODY).result, APIConnectionError);
});

/** A route that sends start and one text, then waits (a slow model). */
function slowRoute({ streamId = null, headers = {} } = {}) {
  return async (req, res) => {
    if (req.method !== "POST") return res.writeHead(204).end();
    sseHead(res, headers);
    res.write(relayEvent(1, "start", { stream_id: streamId, model: null, id: null }));
    res.write(relayEvent(2, "text", { choice: 0, text: "first" }));
    while (!res.destroyed) await sleep(10);
  };
}

test("AbortController stops the fetch: the server sees the disconnect", async () => {
  server.route = slowRoute();
  const controller = new AbortController();
  const stream = streamChat(`${server.url}/chat`, BODY, { signal: controller.signal });
  const events = [];
  let error;
  try {
    for await (const event of stream) {
      events.push(event);
      if (event.type === "text") controller.abort();
    }
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof StreamCancelled);
  assert.deepEqual(error.partial, { text: "first", status: "cancelled" });
  assert.deepEqual(events.map((e) => e.type), ["start", "text"]);
  await assert.rejects(stream.result, StreamCancelled);
  const request = server.requests.at(-1);
  await until(() => request.closed);
  assert.equal(request.finished, false);
});

test("leaving the loop early cancels the stream", async () => {
  server.route = slowRoute();
  const stream = streamChat(`${server.url}/chat`, BODY);
  for await (const event of stream) if (event.type === "text") break;
  await assert.rejects(stream.result, (e) => e instanceof StreamCancelled && e.partial.text === "first");
  const request = server.requests.at(-1);
  await until(() => request.closed);
});

test("an already aborted signal cancels before any request", async () => {
  const count = server.requests.length;
  const controller = new AbortController();
  controller.abort();
  const stream = streamChat(`${server.url}/chat`, BODY, { signal: controller.signal });
  const [events, error] = await collectError(stream);
  assert.deepEqual(events, []);
  assert.ok(error instanceof StreamCancelled);
  assert.equal(server.requests.length, count);
});

test("a cut without a terminal event rejects with the partial text (not resumable)", async () => {
  for (const ending of ["end", "destroy"]) {
    server.route = async (req, res) => {
      sseHead(res);
      res.write(relayEvent(1, "start", { stream_id: null, model: null, id: null }));
      res.write(relayEvent(2, "text", { choice: 0, text: "cut he" }));
      await sleep(20);
      if (ending === "end") res.end();
      else res.destroy();
    };
    const stream = streamChat(`${server.url}/chat`, BODY);
    const [events, error] = await collectError(stream);
    assert.equal(events.length, 2);
    assert.ok(error instanceof IncompleteStreamError, String(error));
    assert.deepEqual(error.partial, { text: "cut he", status: "truncated" });
    await assert.rejects(stream.result, IncompleteStreamError);
  }
});

test("a caller that only iterates a failing stream sees no unhandled rejection", async () => {
  const unhandled = [];
  const onUnhandled = (reason) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    server.route = (req, res) => res.writeHead(500).end();
    await collectError(streamChat(`${server.url}/chat`, BODY));
    await sleep(20);
    assert.deepEqual(unhandled, []);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});

test("result alone works without iterating; a stream is iterated once", async () => {
  serveWire(relayWire());
  const stream = streamChat(`${server.url}/chat`, BODY);
  assert.equal((await stream.result).text, RELAY_TEXT);
  // Events read meanwhile are still there for a late iterator.
  assert.deepEqual(await collect(stream), expectedRelay());
  assert.throws(() => stream[Symbol.asyncIterator](), TypeError);
});

// -------------------------------------------------------------- resume

/**
 * A resumable relay: POST sends events up to `cutAt` then breaks the
 * connection; GET /chat/{id} replays from `replayFrom` (overlapping what was
 * already sent, to prove deduplication) to the end.
 */
function resumableRoute({ id = "s-1", cutAt = 4, replayFrom = 3, retry = 20, header = false, startId = id, failGets = 0 } = {}) {
  let gets = 0;
  return async (req, res) => {
    const wire = (from, to) => relayWire(startId, { retry, from, to });
    if (req.method === "POST") {
      sseHead(res, header ? { "x-rawsse-stream-id": id } : {});
      res.write(wire(1, cutAt));
      await sleep(20);
      res.destroy();
      return;
    }
    if (req.method === "GET" && req.url.startsWith(`/chat/${id}`)) {
      if (gets++ < failGets) return res.writeHead(503).end();
      sseHead(res);
      res.end(wire(replayFrom, Infinity));
      return;
    }
    if (req.method === "DELETE") return res.writeHead(204).end();
    res.writeHead(404, { "content-type": "application/json" }).end('{"error": {"message": "unknown stream"}}');
  };
}

test("a broken resumable stream reconnects with Last-Event-ID and continues without repeats", async () => {
  server.route = resumableRoute();
  const count = server.requests.length;
  const stream = streamChat(`${server.url}/chat`, BODY);
  const events = await collect(stream);
  assert.deepEqual(events, expectedRelay("s-1"));
  const result = await stream.result;
  assert.equal(result.text, RELAY_TEXT);
  assert.equal(result.streamId, "s-1");
  assert.equal(stream.streamId, "s-1");
  const [post, get] = server.requests.slice(count);
  assert.equal(post.method, "POST");
  assert.equal(get.method, "GET");
  assert.equal(get.url, "/chat/s-1?after=4");
  assert.equal(get.headers["last-event-id"], "4");
  assert.equal(get.headers.accept, "text/event-stream");
});

test("the stream id may come from the X-Rawsse-Stream-Id header alone", async () => {
  server.route = resumableRoute({ id: "h-2", startId: null, header: true });
  const stream = streamChat(`${server.url}/chat`, BODY);
  assert.deepEqual(await collect(stream), expectedRelay(null));
  assert.equal((await stream.result).streamId, "h-2");
});

test("reconnects back off, honour retry:, and stop after 10 tries", async () => {
  // Three failures then success.
  server.route = resumableRoute({ failGets: 3, retry: 10 });
  let count = server.requests.length;
  let started = Date.now();
  let stream = streamChat(`${server.url}/chat`, BODY);
  assert.equal((await stream.result).text, RELAY_TEXT);
  const gets = server.requests.slice(count).filter((r) => r.method === "GET");
  assert.equal(gets.length, 4);
  // 10 + 20 + 40 + 80 ms of backoff at least.
  assert.ok(Date.now() - started >= 150);

  server.route = resumableRoute({ failGets: 1000, retry: 1 });
  count = server.requests.length;
  started = Date.now();
  stream = streamChat(`${server.url}/chat`, BODY);
  const [events, error] = await collectError(stream);
  assert.equal(events.length, 4);
  assert.ok(error instanceof IncompleteStreamError);
  assert.match(error.message, /10 reconnects/);
  assert.equal(error.partial.text, "Héllo 🌍");
  assert.equal(server.requests.slice(count).filter((r) => r.method === "GET").length, 10);
  // 1 + 2 + ... + 512 ms.
  assert.ok(Date.now() - started >= 1000);
});

test("the default backoff starts at 0.5 s", async () => {
  server.route = async (req, res) => {
    if (req.method === "POST") {
      sseHead(res);
      res.write(relayEvent(1, "start", { stream_id: "d-1", model: null, id: null }));
      await sleep(5);
      return res.destroy();
    }
    sseHead(res);
    res.end(relayEvent(2, "done", { status: "complete", finish_reason: "stop", finish_reasons: { 0: "stop" }, usage: null, cost: null, ttft: null }));
  };
  const started = Date.now();
  const result = await streamChat(`${server.url}/chat`, BODY).result;
  assert.equal(result.status, "complete");
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 480 && elapsed < 5000, String(elapsed));
});

test("an unknown stream on reconnect rejects with the 404 and the partial text", async () => {
  server.route = async (req, res) => {
    if (req.method === "POST") return resumableRoute({ retry: 5 })(req, res);
    res.writeHead(404, { "content-type": "application/json" }).end('{"error": {"message": "unknown or expired stream", "code": "not_found"}}');
  };
  const [events, error] = await collectError(streamChat(`${server.url}/chat`, BODY));
  assert.equal(events.length, 4);
  assert.ok(error instanceof APIStatusError);
  assert.equal(error.status, 404);
  assert.equal(error.code, "not_found");
  assert.deepEqual(error.partial, { text: "Héllo 🌍", status: "error" });
});

test("resumeChat attaches to a stream by id, from the start or after a position", async () => {
  server.route = resumableRoute({ id: "r-3", replayFrom: 1 });
  let stream = resumeChat(`${server.url}/chat`, "r-3");
  assert.deepEqual(await collect(stream), expectedRelay("r-3"));
  let result = await stream.result;
  assert.equal(result.text, RELAY_TEXT);
  assert.equal(result.ttft, 0.25); // the server's figure: this client did not see the start
  let get = server.requests.at(-1);
  assert.equal(get.url, "/chat/r-3?after=0");

  stream = resumeChat(`${server.url}/chat`, "r-3", { after: 8 });
  const events = await collect(stream);
  assert.deepEqual(events, expectedRelay("r-3").slice(8));
  result = await stream.result;
  assert.equal(result.text, "");
  get = server.requests.at(-1);
  assert.equal(get.headers["last-event-id"], "8");

  await assert.rejects(resumeChat(`${server.url}/chat`, "nope").result, (e) => e instanceof APIStatusError && e.status === 404);
});

test("aborting a resumable stream asks the relay to cancel it (DELETE)", async () => {
  server.route = slowRoute({ streamId: "x-4" });
  const controller = new AbortController();
  const count = server.requests.length;
  const stream = streamChat(`${server.url}/chat?tenant=a`, BODY, { signal: controller.signal, headers: { "X-Token": "t" } });
  for await (const event of stream) if (event.type === "text") break;
  await until(() => server.requests.slice(count).some((r) => r.method === "DELETE"));
  const del = server.requests.slice(count).find((r) => r.method === "DELETE");
  assert.equal(del.url, "/chat/x-4?tenant=a");
  assert.equal(del.headers["x-token"], "t");
});

test("OpenAI-compatible: complete without [DONE] only when every choice finished and usage came", async () => {
  const two = (finishSecond) =>
    chunk([
      { index: 0, delta: { content: "a" }, finish_reason: "stop" },
      { index: 1, delta: { content: "b" }, finish_reason: finishSecond ? "length" : null },
    ]) + chunk([], { usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } });
  let result = await streamChat("/c", BODY, { fetch: chunkedFetch([Buffer.from(two(false))]) }).result;
  assert.equal(result.status, "truncated");
  result = await streamChat("/c", BODY, { fetch: chunkedFetch([Buffer.from(two(true))]) }).result;
  assert.equal(result.status, "complete");
  assert.equal(result.finishReason, "stop");
});

test("OpenAI-compatible: unmodelled keys and odd roles ride in the next event's extras", async () => {
  const wire =
    chunk([{ index: 0, delta: { role: "tool", content: "x", annotations: [1] }, logprobs: { content: [] } }], {
      system_fingerprint: "fp_1",
    }) + "data: [DONE]\n\n";
  const events = await collect(streamChat("/c", BODY, { fetch: chunkedFetch([Buffer.from(wire)]) }));
  assert.deepEqual(events[0].extras, { created: [1700000000] });
  assert.deepEqual(events[1], {
    type: "text",
    choice: 0,
    text: "x",
    extras: { system_fingerprint: ["fp_1"], choices: { 0: { role: ["tool"] } } },
  });
  // Keys after the content wait for the next event: here the terminal one.
  assert.deepEqual(events[2].extras, { choices: { 0: { annotations: [[1]], logprobs: [{ content: [] }] } } });
  assert.equal(events[2].type, "done");
});
