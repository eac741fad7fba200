// streamChat straight against rawsse's fixture server (`python -m rawsse serve`,
// an OpenAI-compatible endpoint over real HTTP), checked against what rawsse's
// Python decoder and accumulator make of the same recordings.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { IncompleteStreamError, StreamError, streamChat } from "../../src/rawsse/relay/rawsse.js";
import { pythonMissing, runPython, startRawsse } from "./python.mjs";

const missing = pythonMissing() ?? false; // a reason to skip, or false
let server;
let expected;

before(async () => {
  if (missing) return;
  server = await startRawsse(["serve", "--port", "0", "--speed", "0"]);
  expected = JSON.parse(
    runPython(`
import json
from pathlib import Path
import rawsse
from rawsse import parse_chat_stream
from rawsse._accumulate import accumulate
from rawsse.testing import load_cassette
out = {}
for path in sorted((Path(rawsse.__file__).parent / "recordings").glob("*.jsonl")):
    result = accumulate(parse_chat_stream(load_cassette(path).body))
    usage = result.usage
    out["rawsse/" + path.stem] = {
        "text": result.text,
        "status": str(result.status),
        "completion_tokens": None if usage is None else usage.completion_tokens,
        "error": None if result.error is None else result.error.message,
    }
print(json.dumps(out))
`),
  );
});
after(() => server?.stop());

const ask = (model, options) =>
  streamChat(`${server.url}/chat/completions`, { model, stream: true, messages: [{ role: "user", content: "hi" }] }, options);

test("every shipped recording streams as Python decodes it", { skip: missing }, async () => {
  assert.ok(Object.keys(expected).length >= 5);
  for (const [model, want] of Object.entries(expected)) {
    const stream = ask(model);
    const types = new Set();
    try {
      for await (const event of stream) types.add(event.type);
      const result = await stream.result;
      assert.equal(result.status, want.status, model);
      assert.equal(result.text, want.text, model);
      assert.equal(result.usage?.completion_tokens ?? null, want.completion_tokens, model);
      assert.ok(types.has("start") && types.has("done"), model);
    } catch (error) {
      if (error instanceof assert.AssertionError) throw error;
      assert.ok(error instanceof StreamError, `${model}: ${error}`);
      assert.equal(want.status, "error", model);
      assert.equal(error.partial.text, want.text, model);
      assert.equal(error.message, want.error, model);
    }
  }
});

test("a connection the server cuts mid-answer ends truncated with the text so far", { skip: missing }, async () => {
  const want = expected["rawsse/demo"];
  const stream = ask("rawsse/demo", { headers: { "X-Rawsse-Cut-After": "900" } });
  let result;
  try {
    result = await stream.result;
  } catch (error) {
    assert.ok(error instanceof IncompleteStreamError, String(error));
    result = error.partial;
  }
  assert.equal(result.status, "truncated");
  assert.ok(result.text.length > 0 && want.text.startsWith(result.text), result.text);
  assert.ok(result.text.length < want.text.length);
});

test("an unknown model is an HTTP error with the server's message", { skip: missing }, async () => {
  await assert.rejects(ask("rawsse/no-such-model").result, (error) => {
    assert.equal(error.status, 404);
    assert.equal(error.code, 404);
    assert.match(error.message, /no-such-model|not found|unknown/i);
    assert.deepEqual(error.partial, { text: "", status: "error" });
    return true;
  });
});
