// A stand-in relay for driving demo.html in a browser: serves the page and
// rawsse.js from src/rawsse/relay/ and streams a scripted answer per the relay
// schema, resumable by id.  Run: node tests/js/fake_relay.mjs [port]
// Prompts steer it: "cut" breaks the first connection mid-answer, "fail" ends
// with an error event, "slow" paces tokens at 200 ms.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

const DIR = new URL("../../src/rawsse/relay/", import.meta.url);
const WORDS = "Streaming héllo 🌍 from the fake relay, token by token, to the end.".split(/(?<= )/);

const streams = new Map(); // id -> {events: [wire strings], done, waiters: Set, cancelled}
let counter = 0;

function event(seq, name, data) {
  return `id: ${seq}\nevent: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

function produce(id, prompt) {
  const stream = { events: [], done: false, waiters: new Set(), cancelled: false };
  streams.set(id, stream);
  const push = (name, data) => {
    stream.events.push(event(stream.events.length + 1, name, data));
    for (const wake of stream.waiters) wake();
  };
  const pace = prompt.includes("slow") ? 200 : 40;
  (async () => {
    push("start", { stream_id: id, model: "fake/model", id: `gen-${id}` });
    let text = "";
    for (const [i, word] of WORDS.entries()) {
      await new Promise((r) => setTimeout(r, pace));
      if (stream.cancelled) return;
      if (i === 4 && prompt.includes("seam")) push("continued", { reason: "cut", attempt: 1 });
      text += word;
      push("text", { choice: 0, text: word });
      if (prompt.includes("fail") && i === 5) {
        push("error", { status: "error", message: "upstream failed", code: 502, http_status: 502, partial_text_length: text.length, text });
        stream.done = true;
        return;
      }
    }
    const usage = { prompt_tokens: 3, completion_tokens: WORDS.length, total_tokens: 3 + WORDS.length, reasoning_tokens: null, cached_tokens: null, cost: 0.0001 };
    push("usage", usage);
    push("done", { status: "complete", finish_reason: "stop", finish_reasons: { 0: "stop" }, usage, cost: 0.0001, ttft: 0.04 });
    stream.done = true;
  })();
  return stream;
}

async function follow(res, stream, after, { cutAfter = Infinity } = {}) {
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
  res.write(": rawsse\n\nretry: 300\n\n");
  let next = after;
  let sent = 0;
  while (!res.destroyed) {
    while (next < stream.events.length) {
      res.write(stream.events[next++]);
      if (++sent >= cutAfter) return res.destroy();
    }
    if (stream.done || stream.cancelled) return res.end();
    await new Promise((resolve) => {
      stream.waiters.add(resolve);
      setTimeout(resolve, 1000);
    }).finally(() => stream.waiters.clear());
  }
}

const server = createServer(async (req, res) => {
  let body = "";
  for await (const piece of req) body += piece;
  const url = new URL(req.url, "http://x");
  if (req.method === "GET" && (url.pathname === "/" || url.pathname === "/rawsse.js")) {
    const file = url.pathname === "/" ? "demo.html" : "rawsse.js";
    const type = file.endsWith(".js") ? "text/javascript" : "text/html";
    return res.writeHead(200, { "content-type": `${type}; charset=utf-8` }).end(readFileSync(new URL(file, DIR)));
  }
  if (url.pathname === "/models") return res.writeHead(200, { "content-type": "application/json" }).end('["fake/model","fake/other"]');
  if (req.method === "POST" && url.pathname === "/chat") {
    const prompt = JSON.parse(body).messages.at(-1).content;
    if (prompt.includes("http429")) return res.writeHead(429, { "content-type": "application/json", "retry-after": "2" }).end('{"error":{"message":"slow down","code":429}}');
    const id = `fake${++counter}`;
    const stream = produce(id, prompt);
    return follow(res, stream, 0, { cutAfter: prompt.includes("cut") ? 5 : Infinity });
  }
  const match = url.pathname.match(/^\/chat\/([^/]+)$/);
  if (match) {
    const stream = streams.get(match[1]);
    if (!stream) return res.writeHead(404, { "content-type": "application/json" }).end('{"error":{"message":"unknown stream"}}');
    if (req.method === "DELETE") {
      stream.cancelled = true;
      return res.writeHead(204).end();
    }
    const after = Number(req.headers["last-event-id"] ?? url.searchParams.get("after") ?? 0);
    return follow(res, stream, after);
  }
  res.writeHead(404).end();
});

server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`http://127.0.0.1:${server.address().port}/`);
});
