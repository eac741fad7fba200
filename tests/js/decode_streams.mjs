// For tests/test_js.py: decode recorded streams with streamChat (OpenAI-compatible
// mode) and print one JSON line per file: {path, text, status, events, tools}.
// Usage: node tests/js/decode_streams.mjs FILE...
import { readFileSync } from "node:fs";

import { streamChat } from "../../src/rawsse/relay/rawsse.js";

function fetchOf(bytes, size) {
  return async () => {
    let at = 0;
    const body = new ReadableStream({
      pull(controller) {
        if (at >= bytes.length) return controller.close();
        controller.enqueue(bytes.subarray(at, (at += size)));
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  };
}

for (const path of process.argv.slice(2)) {
  const bytes = new Uint8Array(readFileSync(path));
  const line = { path, events: {}, tools: {} };
  const stream = streamChat("/chat/completions", {}, { fetch: fetchOf(bytes, 61) });
  try {
    for await (const event of stream) {
      line.events[event.type] = (line.events[event.type] ?? 0) + 1;
      if (event.type === "tool_call" && event.choice === 0) {
        line.tools[event.index] = (line.tools[event.index] ?? "") + event.arguments;
      }
    }
    const result = await stream.result;
    Object.assign(line, { text: result.text, status: result.status, usage: result.usage });
  } catch (error) {
    Object.assign(line, { text: error.partial?.text ?? null, status: error.partial?.status ?? null, error: error.name });
  }
  console.log(JSON.stringify(line));
}
