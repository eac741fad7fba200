// The SSE decoder against the spec vector table the Python decoder also runs.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { SSEDecoder, SSEProtocolError, RawSSEError } from "../../src/rawsse/relay/rawsse.js";
import { byteAtATime, encoder, everySplit, fixedSize, latin1, whole } from "./helpers.mjs";

const { vectors } = JSON.parse(
  readFileSync(new URL("../data/sse_vectors.json", import.meta.url), "utf8"),
);

function decode(chunks, limits) {
  const decoder = new SSEDecoder(limits);
  const out = [];
  for (const chunk of chunks) out.push(...decoder.feed(chunk));
  out.push(...decoder.close());
  return out;
}

const ev = (data, { event = "message", id = "", retry = null } = {}) => ({ event, data, id, retry });
const b = (text) => encoder.encode(text);

for (const vector of vectors) {
  test(`vector ${vector.name}: whole, byte by byte and split at every position`, () => {
    const data = latin1(vector.input);
    const want = vector.events;
    assert.deepEqual(decode(whole(data)), want);
    assert.deepEqual(decode(byteAtATime(data)), want);
    for (const chunks of everySplit(data)) assert.deepEqual(decode(chunks), want);
  });
}

test("the vector table is the shared one", () => {
  assert.ok(vectors.length >= 40);
});

test("CR at the end of one read and LF at the start of the next are one line end", () => {
  // Without remembering the CR, the LF would be a blank line and dispatch early.
  assert.deepEqual(decode([b("data: a\r"), b("\ndata: b\r\n\r\n")]), [ev("a\nb")]);
  assert.deepEqual(decode([b("data: a\r"), b("\n"), b("\r"), b("\n")]), [ev("a")]);
  assert.deepEqual(decode([b("data: a\r"), b("\n\r")]), [ev("a")]);
  // An empty read between them changes nothing.
  assert.deepEqual(decode([b("data: a\r"), b(""), b("\ndata: b\n\n")]), [ev("a\nb")]);
});

test("CR then a multibyte character split across reads", () => {
  const data = b("data: a\r\ndata: é\r\n\r\n");
  for (const chunks of everySplit(data)) assert.deepEqual(decode(chunks), [ev("a\né")]);
});

test("a multibyte character split across reads decodes whole", () => {
  const data = b("data: 你好 🌍\n\n");
  for (const chunks of everySplit(data)) assert.deepEqual(decode(chunks), [ev("你好 🌍")]);
  assert.deepEqual(decode(byteAtATime(data)), [ev("你好 🌍")]);
});

test("a BOM split across the first reads is stripped once", () => {
  assert.deepEqual(decode([latin1("\xef"), latin1("\xbb"), latin1("\xbfdata: x\n\n")]), [ev("x")]);
  // Not a BOM after all: the bytes become U+FFFD and the field is unknown.
  assert.deepEqual(decode([latin1("\xef\xbb"), b("data: x\n\n")]), []);
  assert.deepEqual(decode([latin1("\xef\xbb"), b("\n: c\n\n")]), [{ comment: "c" }]);
});

test("a BOM at the start of a later read is kept", () => {
  assert.deepEqual(decode([b("data: 1\n\n"), latin1("\xef\xbb\xbfdata: 2\n\n")]), [ev("1")]);
});

test("lastEventId and retry follow dispatch", () => {
  const decoder = new SSEDecoder();
  assert.equal(decoder.lastEventId, "");
  assert.equal(decoder.retry, null);
  assert.deepEqual(decoder.feed(b("id: 5\nretry: 250\ndata: x\n\n")), [ev("x", { id: "5", retry: 250 })]);
  assert.equal(decoder.lastEventId, "5");
  assert.equal(decoder.retry, 250);
  // An id in a block that never completes does not move the last event ID.
  assert.deepEqual(decoder.feed(b("id: 6\ndata: y\n")), []);
  assert.deepEqual(decoder.close(), []);
  assert.equal(decoder.lastEventId, "5");
});

test("close readies a new stream, keeping the reconnection state", () => {
  const decoder = new SSEDecoder();
  decoder.feed(b("id: 7\nretry: 9\ndata: a\n\nevent: x\ndata: partial"));
  decoder.close();
  assert.deepEqual(decoder.feed(latin1("\xef\xbb\xbfdata: b\n\n")), [ev("b", { id: "7" })]);
  assert.equal(decoder.retry, 9);
});

test("feeding nothing is a no-op", () => {
  const decoder = new SSEDecoder();
  assert.deepEqual(decoder.feed(new Uint8Array(0)), []);
  assert.deepEqual(decoder.feed(b("data: a\n")), []);
  assert.deepEqual(decoder.feed(new Uint8Array(0)), []);
  assert.deepEqual(decoder.feed(b("\n")), [ev("a")]);
});

test("a line longer than the bound throws a typed error; the decoder then refuses", () => {
  const decoder = new SSEDecoder({ maxLineBytes: 10 });
  assert.deepEqual(decoder.feed(b("data: 1234")), []);
  assert.throws(() => decoder.feed(b("5")), (e) => e instanceof SSEProtocolError && /max_line_bytes=10/.test(e.message));
  assert.throws(() => decoder.feed(b("\n\n")), (e) => e instanceof SSEProtocolError && /failed earlier/.test(e.message));
  assert.throws(() => decoder.close(), SSEProtocolError);
  assert.ok(new SSEProtocolError("x") instanceof RawSSEError);
});

test("the line bound holds inside one large read, and counts UTF-8 bytes", () => {
  assert.throws(() => decode([b("data: a\n\ndata: 0123456789\n\n")], { maxLineBytes: 15 }), /line of 16 bytes/);
  assert.deepEqual(decode([b("data: 012345678\n\n")], { maxLineBytes: 15 }), [ev("012345678")]);
  // "data: " + 3 × "é" is 12 bytes but 9 characters.
  assert.deepEqual(decode([b("data: ééé\n\n")], { maxLineBytes: 12 }), [ev("ééé")]);
  assert.throws(() => decode([b("data: ééé\n\n")], { maxLineBytes: 11 }), SSEProtocolError);
  // Unterminated, pending across reads.
  assert.throws(() => decode([b("data: éé"), b("é")], { maxLineBytes: 11 }), SSEProtocolError);
  assert.throws(() => decode([b("data: éé"), b("é\n\n")], { maxLineBytes: 11 }), SSEProtocolError);
  assert.deepEqual(decode([b("data: éé"), b("é\n\n")], { maxLineBytes: 12 }), [ev("ééé")]);
});

test("the default bounds are those of the Python decoder", () => {
  const decoder = new SSEDecoder();
  assert.equal(decoder.maxLineBytes, 16 * 1024 * 1024);
  assert.equal(decoder.maxEventBytes, 64 * 1024 * 1024);
  assert.throws(() => new SSEDecoder({ maxLineBytes: 0 }), RangeError);
});

test("the event bound counts UTF-8 bytes exactly and resets after each dispatch", () => {
  assert.deepEqual(decode([b("data: éééé\n\n")], { maxEventBytes: 9 }), [ev("éééé")]);
  assert.throws(() => decode([b("data: ééééé\n\n")], { maxEventBytes: 9 }), /max_event_bytes=9/);
  assert.throws(() => decode([b("data\n".repeat(100))], { maxEventBytes: 50 }), SSEProtocolError);
  assert.equal(decode([b("data: 0123456789\n\n".repeat(500))], { maxEventBytes: 11 }).length, 500);
  const decoder = new SSEDecoder({ maxEventBytes: 1000 });
  assert.throws(() => {
    for (let i = 0; i < 1000; i++) decoder.feed(b("data: 0123456789\n"));
  }, /no blank line/);
});

test("a huge line in small reads is linear", () => {
  const size = 16 * 1024 * 1024;
  const decoder = new SSEDecoder({ maxLineBytes: size + 16, maxEventBytes: size + 16 });
  const piece = b("x".repeat(1024));
  decoder.feed(b("data: "));
  for (let i = 0; i < size / 1024; i++) assert.deepEqual(decoder.feed(piece), []);
  const [event] = decoder.feed(b("\n\n"));
  assert.equal(event.data.length, size);
});

test("fixed-size reads of a long mixed stream give the whole-stream events", () => {
  const parts = [];
  for (let i = 0; i < 300; i++) {
    parts.push(i % 7 === 0 ? ": keep-alive\r\n\r\n" : `id: ${i}\nevent: e${i % 3}\ndata: ${"é🌍x".repeat(i % 5)}\r\ndata: ${i}\r\r`);
  }
  const data = b(parts.join(""));
  const want = decode(whole(data));
  assert.equal(want.length, 300);
  for (const size of [1, 2, 3, 5, 64, 4096]) assert.deepEqual(decode(fixedSize(data, size)), want);
});
