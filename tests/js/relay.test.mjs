// streamChat against the real Python relay (RelayApp under uvicorn), backed by
// rawsse's fixture server: the relay's events are exactly what streamChat makes
// of the same recordings straight from the fixture server.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";

import { StreamCancelled, StreamError, resumeChat, streamChat } from "../../src/rawsse/relay/rawsse.js";
import { PYTHON, pythonMissing, startRawsse } from "./python.mjs";
import { everySplit } from "./helpers.mjs";
import { until } from "./server.mjs";

const missing = pythonMissing("from rawsse.relay import RelayApp; import uvicorn") ?? false;
const MODULE = new URL("../../src/rawsse/relay/", import.meta.url);
const RELAY_SCRIPT = new URL("./serve_relay.py", import.meta.url).pathname;

/** Start tests/js/serve_relay.py against `upstream`; resolve with {url, stop, stderr()}. */
function startRelay(upstream, args = []) {
  const child = spawn(PYTHON, [RELAY_SCRIPT, upstream, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (t) => (stderr += t));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  };
  return new Promise((resolve, reject) => {
    child.stdout.setEncoding("utf8");
    child.stdout.once("data", (line) => {
      const url = line.match(/http:\/\/\S+?\/(?=\s|$)/)?.[0];
      if (url) resolve({ url: url.replace(/\/$/, ""), stop, stderr: () => stderr });
      else reject(new Error(`no URL: ${line}`));
    });
    child.once("exit", (code) => reject(new Error(`the relay exited with ${code}\n${stderr}`)));
  });
}

let fast; // fixture server, no waiting
let slow; // fixture server, recorded timing
let relay; // relay over `fast`
let liveRelay; // relay over `slow`
let models;

before(async () => {
  if (missing) return;
  [fast, slow] = await Promise.all([
    startRawsse(["serve", "--port", "0", "--speed", "0"]),
    startRawsse(["serve", "--port", "0", "--speed", "1"]),
  ]);
  [relay, liveRelay] = await Promise.all([startRelay(fast.url), startRelay(slow.url, ["--heartbeat", "0.2"])]);
  const response = await fetch(`${fast.url}/models`);
  models = (await response.json()).data.map((m) => m.id);
});

after(async () => {
  await Promise.all([relay, liveRelay, fast, slow].filter(Boolean).map((s) => s.stop()));
});

const BODY = (model) => ({ model, messages: [{ role: "user", content: "hi" }] });

/** Events and the result (or the error) of one stream. */
async function run(stream) {
  const events = [];
  try {
    for await (const event of stream) events.push(event);
    return { events, result: await stream.result };
  } catch (error) {
    return { events, error };
  }
}

/**
 * Events with what legitimately differs between relay and direct taken out: the
 * ttft figure, and an error's wording (the relay may prefix the upstream's message
 * with its own account; the upstream's message must be in it).
 */
function comparable(events) {
  return events.map((event) => {
    if (event.type === "done") return { ...event, ttft: typeof event.ttft };
    if (event.type === "error") return { ...event, message: "<checked apart>" };
    return event;
  });
}

test("the relay serves this module, its types and the demo page", { skip: missing }, async () => {
  for (const [path, file, type] of [
    ["/rawsse.js", "rawsse.js", "text/javascript"],
    ["/rawsse.d.ts", "rawsse.d.ts", null],
    ["/", "demo.html", "text/html"],
  ]) {
    const response = await fetch(`${relay.url}${path}`);
    assert.equal(response.status, 200, path);
    if (type) assert.match(response.headers.get("content-type"), new RegExp(`^${type}`), path);
    assert.equal(await response.text(), readFileSync(new URL(file, MODULE), "utf8"), path);
  }
});

test("every recording through the relay gives the events streamChat makes of it directly", { skip: missing }, async () => {
  assert.ok(models.length >= 5);
  for (const model of models) {
    const direct = await run(streamChat(`${fast.url}/chat/completions`, { ...BODY(model), stream: true }));
    const relayed = await run(streamChat(`${relay.url}/chat`, BODY(model)));
    assert.deepEqual(comparable(relayed.events), comparable(direct.events), model);
    if (direct.error) {
      assert.equal(relayed.error?.constructor, direct.error.constructor, model);
      assert.deepEqual(relayed.error.partial, direct.error.partial, model);
      assert.ok(relayed.error.message.includes(direct.error.message), `${relayed.error.message} / ${direct.error.message}`);
      assert.ok(relayed.events.at(-1).message.includes(direct.events.at(-1).message), model);
      assert.equal(relayed.error.code, direct.error.code, model);
    } else {
      assert.equal(relayed.error, undefined, `${model}: ${relayed.error}`);
      assert.deepEqual({ ...relayed.result, ttft: 0 }, { ...direct.result, ttft: 0 }, model);
    }
  }
});

test("the relay's bytes split at every position decode the same", { skip: missing }, async () => {
  const response = await fetch(`${relay.url}/chat`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(BODY("rawsse/tool-call")),
  });
  const wire = new Uint8Array(await response.arrayBuffer());
  const replay = (chunks) => async () =>
    new Response(
      new ReadableStream({
        pull(controller) {
          const next = chunks.shift();
          if (next === undefined) controller.close();
          else if (next.length) controller.enqueue(next);
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    );
  const want = (await run(streamChat("/chat", {}, { fetch: replay([wire]) }))).events;
  assert.ok(want.some((e) => e.type === "tool_call"));
  for (const chunks of everySplit(wire)) {
    assert.deepEqual((await run(streamChat("/chat", {}, { fetch: replay(chunks) }))).events, want);
  }
});

test("relay refusals reject with the HTTP status, code and message", { skip: missing }, async () => {
  let { error } = await run(streamChat(`${relay.url}/chat`, BODY("not/allowed")));
  assert.equal(error.status, 400);
  assert.match(error.message, /not\/allowed|model/);
  assert.deepEqual(error.partial, { text: "", status: "error" });
  ({ error } = await run(streamChat(`${relay.url}/chat`, { ...BODY("rawsse/demo"), logit_bias: {} })));
  assert.equal(error.status, 400);
  assert.match(error.message, /logit_bias/);
});

test("text streams before the end, with recorded timing", { skip: missing }, async () => {
  const stream = streamChat(`${liveRelay.url}/chat`, BODY("rawsse/demo"));
  let firstText = null;
  let end = null;
  for await (const event of stream) {
    if (event.type === "text" && firstText === null) firstText = performance.now();
    if (event.type === "done") end = performance.now();
  }
  assert.ok(firstText !== null && end !== null);
  assert.ok(end - firstText > 500, `${end - firstText} ms between first text and done`);
  assert.equal((await stream.result).status, "complete");
});

test("abort stops the stream and the relay cancels upstream", { skip: missing }, async () => {
  const controller = new AbortController();
  const stream = streamChat(`${liveRelay.url}/chat`, BODY("rawsse/demo"), { signal: controller.signal });
  const logged = slow.stderr().length;
  let error;
  try {
    for await (const event of stream) if (event.type === "text") controller.abort();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof StreamCancelled);
  assert.ok(error.partial.text.length > 0);
  // The fixture server sees the relay go away long before the recording's end.
  await until(() => slow.stderr().slice(logged).includes("client went away"), 3000);
});

test("a mid-stream upstream error arrives as an error event, partial text kept", { skip: missing }, async () => {
  const { events, error } = await run(streamChat(`${relay.url}/chat`, BODY("rawsse/error-midstream")));
  assert.ok(error instanceof StreamError);
  assert.equal(events.at(-1).type, "error");
  assert.ok(error.partial.text.length > 0);
  assert.equal(events.at(-1).text, error.partial.text);
});

test("heartbeats keep a quiet stream alive", { skip: missing }, async () => {
  const response = await fetch(`${liveRelay.url}/chat`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(BODY("rawsse/slow-start")),
  });
  const text = await response.text();
  assert.ok(text.startsWith(": rawsse\n\n"), text.slice(0, 40));
  assert.ok(text.includes(": hb\n\n"), "no heartbeat during the slow start");
});

/** A fetch whose first POST answer breaks after `cutAfter` body bytes (the rest as usual). */
function cuttingFetch(cutAfter) {
  let cut = false;
  return async (url, init) => {
    const response = await fetch(url, init);
    if (cut || init.method !== "POST") return response;
    cut = true;
    const reader = response.body.getReader();
    let sent = 0;
    const body = new ReadableStream({
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) return controller.close();
        if (sent + value.length >= cutAfter) {
          controller.enqueue(value.subarray(0, cutAfter - sent));
          reader.cancel().catch(() => {});
          controller.error(new TypeError("network error (cut by the test)"));
          return;
        }
        sent += value.length;
        controller.enqueue(value);
      },
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
}

test("a resumable relay stream cut mid-answer resumes with nothing lost or repeated", { skip: missing }, async () => {
  const storeRelay = await startRelay(slow.url, ["--store", "memory"]);
  try {
    const whole = await run(streamChat(`${storeRelay.url}/chat`, BODY("rawsse/demo")));
    const streamId = whole.events[0].stream_id;
    assert.ok(streamId, "no stream id in start");
    const requests = [];
    const counting = (inner) => (url, init) => {
      requests.push([init.method, url, new Headers(init.headers).get("last-event-id")]);
      return inner(url, init);
    };
    const cut = await run(
      streamChat(`${storeRelay.url}/chat`, BODY("rawsse/demo"), { fetch: counting(cuttingFetch(600)) }),
    );
    assert.equal(cut.error, undefined, String(cut.error));
    const strip = (events) => comparable(events).map((e) => (e.type === "start" ? { ...e, stream_id: "-" } : e));
    assert.deepEqual(strip(cut.events), strip(whole.events));
    assert.equal(cut.result.text, whole.result.text);
    assert.equal(requests[0][0], "POST");
    assert.equal(requests[1][0], "GET");
    assert.match(requests[1][1], /\/chat\/[^/?]+\?after=\d+$/);
    assert.ok(Number(requests[1][2]) > 0);
    // After the end the whole stream stays replayable.
    const again = await run(resumeChat(`${storeRelay.url}/chat`, streamId));
    assert.deepEqual(strip(again.events), strip(whole.events));
  } finally {
    await storeRelay.stop();
  }
});
