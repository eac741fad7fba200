// rawsse.js: stream chat completions in browsers and Node >= 18, with no build
// step and no dependencies.  An ES module; types in rawsse.d.ts.
//
//   SSEDecoder     bytes -> server-sent events and comments (the WHATWG rules,
//                  the same as rawsse's Python decoder)
//   streamChat     POST a chat request to a rawsse relay, or straight to an
//                  OpenAI-compatible endpoint; an async iterable of events
//                  {type, ...fields} plus a `result` promise
//   resumeChat     attach to a resumable relay stream by its id
//
// Errors, one base class:
//
//   RawSSEError                 .status (HTTP status or null), .code, .partial, .payload
//   ├── SSEProtocolError        a bound of the SSE decoder was violated
//   ├── MalformedChunk          a data payload that is not the JSON it should be
//   ├── APIConnectionError      no response (the request could not be sent)
//   ├── APIStatusError          the server answered with an HTTP error status
//   ├── UnexpectedContentType   a 2xx answer that is not text/event-stream
//   └── StreamInterrupted       the stream broke after it started
//       ├── StreamError         the server reported an error (a terminal `error` event)
//       ├── IncompleteStreamError  the connection ended before a terminal event
//       └── StreamCancelled     the caller aborted (signal, or leaving the loop)
//
// `.partial` is `{text, status}`: choice 0's text so far and the ChatStatus
// ("error", "truncated", "cancelled", ...).

const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;
const DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024;

// ---------------------------------------------------------------- errors

export class RawSSEError extends Error {
  /** Options a class keeps as fields of its own, beyond the common ones (null when absent). */
  static fields = [];

  constructor(message, options = {}) {
    const { status = null, code = null, partial = null, payload = null, cause } = options;
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    /** The HTTP status involved, or null. */
    this.status = status;
    /** The server's error code (number or string), or null. */
    this.code = code;
    /** `{text, status}`: what arrived before the failure, or null. */
    this.partial = partial;
    /** The raw payload that caused the error (body text, data line), or null. */
    this.payload = payload;
    for (const name of new.target.fields) this[name] = options[name] ?? null;
  }
}

export class SSEProtocolError extends RawSSEError {}
export class MalformedChunk extends RawSSEError {}
export class APIConnectionError extends RawSSEError {}
export class UnexpectedContentType extends RawSSEError {}
export class StreamInterrupted extends RawSSEError {}
export class IncompleteStreamError extends StreamInterrupted {}
export class StreamCancelled extends StreamInterrupted {}

export class APIStatusError extends RawSSEError {
  /** `retryAfter`: seconds from a `Retry-After` header, or null. */
  static fields = ["retryAfter"];
}

export class StreamError extends StreamInterrupted {
  /** `event`: the terminal `error` event as received (or synthesised from an in-band error). */
  static fields = ["event"];
}

// ---------------------------------------------------------------- SSE decoder

/** UTF-8 length of a string (lone surrogates do not occur in decoded text). */
function utf8Length(s) {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) n += c < 0x800 || (c >= 0xd800 && c < 0xe000) ? 1 : 2;
  }
  return n;
}

function isBOMPrefix(bytes) {
  return bytes[0] === 0xef && (bytes.length < 2 || bytes[1] === 0xbb) && (bytes.length < 3 || bytes[2] === 0xbf);
}

function concatBytes(parts) {
  let size = 0;
  for (const part of parts) size += part.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const ASCII_DIGITS = /^[0-9]+$/;
const CR_OR_CRLF = /\r\n?/g;

/**
 * Incremental WHATWG event-stream decoder: `feed(bytes)` and `close()` return
 * events `{event, data, id, retry}` and comments `{comment}` in order.
 *
 * How it stays fast: each feed finds the last line end in the new bytes and
 * decodes everything before it as UTF-8 in one call (a line end is never
 * inside a multibyte sequence, so decoding whole lines is exact, and a
 * one-shot decode is many times faster than a streaming one); bytes after it
 * wait, unscanned, for a later feed.  One BOM is stripped at the start of the
 * stream, even when its bytes arrive split.  A CR that ends one feed pairs
 * with an LF that starts the next.  `maxLineBytes` bounds one line and
 * `maxEventBytes` one event's data (UTF-8 bytes); exceeding either throws
 * SSEProtocolError, after which the decoder refuses further input.  `close()`
 * discards an unterminated line or event and readies the decoder for a new
 * stream (a reconnect), keeping `lastEventId` and `retry`.
 */
export class SSEDecoder {
  constructor({ maxLineBytes = DEFAULT_MAX_LINE_BYTES, maxEventBytes = DEFAULT_MAX_EVENT_BYTES } = {}) {
    if (!(maxLineBytes >= 1) || !(maxEventBytes >= 1)) {
      throw new RangeError("maxLineBytes and maxEventBytes must be positive");
    }
    this.maxLineBytes = maxLineBytes;
    this.maxEventBytes = maxEventBytes;
    /** The last event ID string, updated at each dispatch (sent as Last-Event-ID). */
    this.lastEventId = "";
    /** The reconnection time in ms from the last valid `retry` field, else null. */
    this.retry = null;
    this._error = null;
    // BOMs are handled here, once per stream; every decode call is one-shot.
    this._text = new TextDecoder("utf-8", { ignoreBOM: true });
    // Data sizes are counted in UTF-16 units while they cannot matter; see _measure.
    this._fastLimit = Math.floor(maxEventBytes / 4);
    this._reset();
  }

  _reset() {
    this._start = new Uint8Array(0); // the first bytes, held until the BOM question is settled
    this._pending = []; // bytes of the current, unterminated line
    this._pendingBytes = 0;
    this._skipLF = false; // the previous feed ended with CR
    this._offset = 0; // bytes fed since the stream began, for messages
    this._data = [];
    this._dataSize = 0;
    this._dataLimit = this._fastLimit;
    this._eventType = "";
    this._idBuffer = this.lastEventId;
    this._retryInBlock = null;
  }

  /** Decode the next bytes of the stream; return the events they complete. */
  feed(bytes) {
    if (this._error !== null) {
      throw new SSEProtocolError(`the decoder failed earlier: ${this._error.message}`);
    }
    if (bytes.length === 0) return [];
    this._offset += bytes.length;
    if (this._start !== null) {
      if (this._start.length !== 0) bytes = concatBytes([this._start, bytes]);
      if (bytes.length < 3 && isBOMPrefix(bytes)) {
        this._start = bytes.slice();
        return [];
      }
      this._start = null;
      if (bytes.length >= 3 && isBOMPrefix(bytes)) bytes = bytes.subarray(3);
    }
    if (this._skipLF) {
      this._skipLF = false;
      if (bytes[0] === 10) bytes = bytes.subarray(1);
    }
    let end = bytes.length - 1;
    while (end >= 0 && bytes[end] !== 10 && bytes[end] !== 13) end--;
    if (end < 0) {
      if (bytes.length !== 0) {
        // Copied: the caller may reuse its buffer.
        this._pending.push(bytes.slice());
        this._pendingBytes += bytes.length;
        if (this._pendingBytes > this.maxLineBytes) this._lineTooLong();
      }
      return [];
    }
    let lines = end === bytes.length - 1 ? bytes : bytes.subarray(0, end + 1);
    if (this._pending.length !== 0) {
      this._pending.push(lines);
      lines = concatBytes(this._pending);
    }
    if (end === bytes.length - 1) {
      this._pending = [];
      this._pendingBytes = 0;
      this._skipLF = bytes[end] === 13; // an LF at the start of the next feed is its pair
    } else {
      this._pending = [bytes.slice(end + 1)];
      this._pendingBytes = bytes.length - end - 1;
    }
    if (lines.length > this.maxLineBytes || this._pendingBytes > this.maxLineBytes) {
      this._checkLines(lines);
    }
    let text = this._text.decode(lines);
    if (text.indexOf("\r") !== -1) text = text.replace(CR_OR_CRLF, "\n");
    return this._lines(text);
  }

  /**
   * End of stream: discard any unterminated line or undispatched event.
   * Returns the events this completes (always none, by the spec's rules).
   */
  close() {
    if (this._error !== null) {
      throw new SSEProtocolError(`the decoder failed earlier: ${this._error.message}`);
    }
    this._reset();
    return [];
  }

  _checkLines(bytes) {
    if (this._pendingBytes > this.maxLineBytes) this._lineTooLong();
    let start = 0;
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i];
      if (byte !== 10 && byte !== 13) continue;
      if (i - start > this.maxLineBytes) {
        this._fail(
          `line of ${i - start} bytes is longer than max_line_bytes=${this.maxLineBytes} ` +
            `(near byte ${this._offset} of the stream)`,
        );
      }
      start = i + 1;
    }
  }

  _fail(message) {
    this._error = new SSEProtocolError(message);
    throw this._error;
  }

  _lineTooLong() {
    this._fail(
      `line longer than max_line_bytes=${this.maxLineBytes} (at byte ${this._offset} of the stream)`,
    );
  }

  // `text` is whole lines, each ending in LF.
  _lines(text) {
    const out = [];
    let data = this._data;
    let dataSize = this._dataSize;
    let dataLimit = this._dataLimit;
    let eventType = this._eventType;
    let idBuffer = this._idBuffer;
    let start = 0;
    const n = text.length;
    while (start < n) {
      const nl = text.indexOf("\n", start);
      if (nl === start) {
        // Blank line: dispatch.  The last event ID moves even when nothing is dispatched.
        start++;
        this.lastEventId = idBuffer;
        if (data.length !== 0) {
          out.push({
            event: eventType || "message",
            data: data.length === 1 ? data[0] : data.join("\n"),
            id: idBuffer,
            retry: this._retryInBlock,
          });
          data = [];
          dataSize = 0;
          dataLimit = this._fastLimit;
        }
        eventType = "";
        this._retryInBlock = null;
        continue;
      }
      // Comments and data lines are sliced straight from the text; other lines
      // are split into name and value.
      const first = text.charCodeAt(start);
      let value;
      if (first === 58) {
        // ":" starts a comment
        out.push({ comment: text.slice(text.charCodeAt(start + 1) === 32 ? start + 2 : start + 1, nl) });
        start = nl + 1;
        continue;
      }
      if (first === 100 && text.startsWith("data:", start)) {
        value = text.slice(text.charCodeAt(start + 5) === 32 ? start + 6 : start + 5, nl);
        if (data.length === 0 && text.charCodeAt(nl + 1) === 10 && value.length < dataLimit) {
          // The common block, one data line and a blank line: dispatch at once.
          this.lastEventId = idBuffer;
          out.push({ event: eventType || "message", data: value, id: idBuffer, retry: this._retryInBlock });
          eventType = "";
          this._retryInBlock = null;
          start = nl + 2;
          continue;
        }
        start = nl + 1;
      } else {
        const line = text.slice(start, nl);
        start = nl + 1;
        const colon = line.indexOf(":");
        let name;
        if (colon < 0) {
          name = line;
          value = "";
        } else {
          name = line.slice(0, colon);
          value = line.charCodeAt(colon + 1) === 32 ? line.slice(colon + 2) : line.slice(colon + 1);
        }
        if (name === "event") {
          eventType = value;
          continue;
        }
        if (name === "id") {
          if (value.indexOf("\0") === -1) idBuffer = value;
          continue;
        }
        if (name === "retry") {
          if (ASCII_DIGITS.test(value)) this.retry = this._retryInBlock = parseInt(value, 10);
          continue;
        }
        if (name !== "data") continue; // unknown fields are ignored
      }
      data.push(value);
      dataSize += value.length + 1;
      if (dataSize > dataLimit) [dataSize, dataLimit] = this._measure(data);
    }
    this._data = data;
    this._dataSize = dataSize;
    this._dataLimit = dataLimit;
    this._eventType = eventType;
    this._idBuffer = idBuffer;
    return out;
  }

  // The running size counts UTF-16 units, at least a third of the UTF-8 size.
  // While it stays under a quarter of the room left the bound cannot be passed;
  // past that, measure exactly and move the mark.
  _measure(data) {
    let size = data.length; // one LF per line
    for (const part of data) size += utf8Length(part);
    if (size > this.maxEventBytes) {
      const lines = data.length;
      this._data = [];
      this._fail(
        `event data of ${size} bytes is longer than max_event_bytes=${this.maxEventBytes} ` +
          `(${lines} data lines and no blank line, near byte ${this._offset} of the stream)`,
      );
    }
    return [size, size + Math.floor((this.maxEventBytes - size) / 4)];
  }
}

// ---------------------------------------------------------------- chat events (sans-I/O)

const RELAY_EVENTS = new Set([
  "start",
  "text",
  "reasoning",
  "tool_call",
  "usage",
  "continued",
  "error",
  "done",
]);
// Keys each level of an OpenAI-compatible chunk models (as rawsse's ChatDecoder).
const CHUNK_KEYS = new Set(["id", "object", "created", "model", "provider", "choices", "usage", "error"]);
const CHOICE_KEYS = new Set(["index", "delta", "finish_reason", "native_finish_reason", "logprobs", "error"]);
const DELTA_KEYS = new Set([
  "role",
  "content",
  "reasoning",
  "reasoning_content",
  "reasoning_details",
  "refusal",
  "tool_calls",
]);
const TOOL_KEYS = new Set(["index", "id", "type", "function", "custom"]);
const FUNCTION_KEYS = new Set(["name", "arguments"]);
const CUSTOM_KEYS = new Set(["name", "input"]);
// Usage keys the usage event carries itself; every other raw key goes to extras (as the relay does).
const USAGE_KEYS = new Set(["prompt_tokens", "completion_tokens", "total_tokens", "cost"]);

function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function int(value) {
  return typeof value === "number" && Number.isInteger(value) ? value : null;
}

function str(value) {
  return typeof value === "string" ? value : null;
}

/** Upstream usage in the relay's shape (token details flattened, cost a number). */
function normalUsage(usage) {
  const completion = isObject(usage.completion_tokens_details) ? usage.completion_tokens_details : {};
  const prompt = isObject(usage.prompt_tokens_details) ? usage.prompt_tokens_details : {};
  return {
    prompt_tokens: int(usage.prompt_tokens),
    completion_tokens: int(usage.completion_tokens),
    total_tokens: int(usage.total_tokens),
    reasoning_tokens: int(completion.reasoning_tokens) ?? int(usage.reasoning_tokens),
    cached_tokens: int(prompt.cached_tokens) ?? int(usage.cached_tokens),
    cost: typeof usage.cost === "number" ? usage.cost : null,
  };
}

function parseJSON(data, what) {
  let value;
  try {
    value = JSON.parse(data);
  } catch (error) {
    throw new MalformedChunk(`malformed ${what}: data is not JSON (${error.message})`, {
      payload: data,
    });
  }
  if (!isObject(value)) {
    throw new MalformedChunk(`malformed ${what}: data is not a JSON object`, { payload: data });
  }
  return value;
}

/**
 * Server-sent events in, chat events out, for one request (across reconnects).
 * Relay events (named) pass through as `{type: name, ...data}`; unnamed events
 * are OpenAI-compatible chunks, mapped to the same types the way the relay maps
 * them, `extras` included: unmodelled content goes into the `extras` of the next
 * event, chunk-level keys as `{key: [values...]}`, per-choice keys under
 * `{choices: {"<index>": {key: [values...]}}}`.  Keeps what the result needs:
 * choice 0's text, usage, the stream id, the last seq, the terminal event.
 */
class ChatEvents {
  constructor() {
    this.parts = []; // choice 0's text
    this.mode = null; // "relay" | "direct", from the first event
    this.terminal = null; // the `done` or `error` event, once seen
    this.usage = null;
    this.model = null;
    this.streamId = null;
    this.lastSeq = 0;
    this.ttft = null; // seconds, set by the caller on the first content event
    // Direct mode only.
    this._started = false;
    this._done = false;
    this._finishes = {};
    this._finishError = false;
    this._roles = {};
    this._choices = new Set(); // every choice index seen
    this._extras = null;
  }

  text() {
    if (this.parts.length > 1) this.parts = [this.parts.join("")];
    return this.parts.length === 0 ? "" : this.parts[0];
  }

  /** Map one SSE event; return the chat events it gives (maybe none). */
  map(sse) {
    if (this.terminal !== null) return [];
    if (sse.event === "message") return this._chunk(sse.data);
    if (!RELAY_EVENTS.has(sse.event)) return []; // not part of the schema: ignored
    if (ASCII_DIGITS.test(sse.id)) {
      const seq = Number(sse.id);
      if (seq <= this.lastSeq) return []; // already delivered before a reconnect
      this.lastSeq = seq;
    }
    this.mode ??= "relay";
    const data = parseJSON(sse.data, `${sse.event} event`);
    const event = { type: sse.event, ...data };
    event.type = sse.event; // a `type` inside the data never overrides the event's
    switch (sse.event) {
      case "text":
        if (data.choice === 0 && typeof data.text === "string" && data.text) this.parts.push(data.text);
        break;
      case "tool_call":
        // The fragment's own `type` ("function") travels as `tool_type`.
        event.tool_type = data.type ?? null;
        break;
      case "start":
        if (typeof data.stream_id === "string" && data.stream_id) this.streamId = data.stream_id;
        this.model = str(data.model);
        break;
      case "usage":
        this.usage = normalUsage(data);
        break;
      case "done":
        if (isObject(data.usage)) this.usage = normalUsage(data.usage);
        this.terminal = event;
        break;
      case "error":
        this.terminal = event;
        break;
    }
    return [event];
  }

  /** End of a response body without a terminal event; direct mode synthesises one. */
  end() {
    if (this.terminal !== null || this.mode !== "direct") return [];
    const out = [];
    this._finish(out);
    return out;
  }

  _extra(choice, name, value) {
    const extras = (this._extras ??= {});
    if (choice === null) {
      (extras[name] ??= []).push(value);
      return;
    }
    const choices = (extras.choices ??= {});
    ((choices[String(choice)] ??= {})[name] ??= []).push(value);
  }

  _emit(out, event) {
    if (this._extras !== null) {
      event.extras = this._extras;
      this._extras = null;
    }
    out.push(event);
  }

  _chunk(data) {
    if (this._done) return [];
    this.mode ??= "direct";
    const out = [];
    if (data === "[DONE]") {
      this._done = true;
      this._finish(out);
      return out;
    }
    if (data === "") return out;
    const chunk = parseJSON(data, "chunk");
    if (!this._started && (chunk.id != null || chunk.model != null)) {
      this._started = true;
      this.model = str(chunk.model);
      if (chunk.provider != null) this._extra(null, "provider", chunk.provider);
      if (chunk.created != null) this._extra(null, "created", chunk.created);
      this._emit(out, { type: "start", stream_id: null, model: this.model, id: str(chunk.id) });
    }
    for (const key in chunk) {
      if (!CHUNK_KEYS.has(key) && chunk[key] != null) this._extra(null, key, chunk[key]);
    }
    const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
    for (let at = 0; at < choices.length && this.terminal === null; at++) {
      if (!isObject(choices[at])) {
        throw new MalformedChunk(`malformed chunk: choices[${at}] is not an object`, { payload: data });
      }
      this._choice(choices[at], at, out, data);
    }
    if (this.terminal === null && isObject(chunk.usage)) {
      for (const key in chunk.usage) {
        if (!USAGE_KEYS.has(key)) this._extra(null, key, chunk.usage[key]);
      }
      this.usage = normalUsage(chunk.usage);
      this._emit(out, { type: "usage", ...this.usage });
    }
    if (this.terminal === null && chunk.error != null) this._error(chunk.error, out);
    return out;
  }

  _choice(choice, at, out, data) {
    const index = int(choice.index) ?? at;
    this._choices.add(index);
    const delta = isObject(choice.delta) ? choice.delta : {};
    const role = str(delta.role);
    if (role !== null && this._roles[index] !== role) {
      this._roles[index] = role;
      if (role !== "assistant") this._extra(index, "role", role);
    }
    const details = Array.isArray(delta.reasoning_details) ? delta.reasoning_details : null;
    // As OpenRouter's AI SDK provider: a non-empty reasoning_details is the source.
    let reasoning = "";
    if (details !== null && details.length !== 0) {
      for (const entry of details) {
        if (isObject(entry) && entry.type !== "reasoning.encrypted") {
          reasoning += (str(entry.text) ?? "") + (str(entry.summary) ?? "");
        }
      }
    } else {
      reasoning = str(delta.reasoning) || str(delta.reasoning_content) || "";
    }
    if (reasoning || (details !== null && details.length !== 0)) {
      if (details !== null && details.length !== 0) this._extra(index, "reasoning_details", details);
      this._emit(out, { type: "reasoning", choice: index, text: reasoning });
    }
    if (Array.isArray(delta.content)) {
      this._contentParts(delta.content, index, out, data);
    } else if (delta.content != null && typeof delta.content !== "string") {
      throw new MalformedChunk("malformed chunk: delta.content is not a string", { payload: data });
    } else if (delta.content) {
      this._emit(out, { type: "text", choice: index, text: delta.content });
      if (index === 0) this.parts.push(delta.content);
    }
    if (typeof delta.refusal === "string" && delta.refusal) {
      this._extra(null, "refusal", delta.refusal);
      this._emit(out, { type: "text", choice: index, text: "" });
    }
    let oddCalls = false;
    if (Array.isArray(delta.tool_calls)) {
      delta.tool_calls.forEach((call, position) => {
        if (!isObject(call)) return;
        const fn = isObject(call.function) ? call.function : {};
        // OpenAI custom tools: free-text `custom.input` streamed like arguments.
        const custom = isObject(call.custom) ? call.custom : null;
        oddCalls ||=
          Object.keys(call).some((k) => !TOOL_KEYS.has(k)) ||
          Object.keys(fn).some((k) => !FUNCTION_KEYS.has(k)) ||
          (custom !== null && Object.keys(custom).some((k) => !CUSTOM_KEYS.has(k)));
        this._emit(out, {
          type: "tool_call",
          choice: index,
          index: int(call.index) ?? position,
          id: str(call.id),
          tool_type: str(call.type) ?? (custom !== null ? "custom" : null),
          name: str(fn.name) ?? (custom !== null ? str(custom.name) : null),
          arguments: str(fn.arguments) ?? (custom !== null ? str(custom.input) : null) ?? "",
        });
      });
    }
    for (const key in delta) {
      if ((!DELTA_KEYS.has(key) || (oddCalls && key === "tool_calls")) && delta[key] != null) {
        this._extra(index, key, delta[key]);
      }
    }
    for (const key in choice) {
      if ((!CHOICE_KEYS.has(key) || key === "logprobs") && choice[key] != null) this._extra(index, key, choice[key]);
    }
    const reason = str(choice.finish_reason);
    if (reason !== null) {
      this._finishes[index] = reason;
      if (reason === "error") this._finishError = true;
    }
    const native = str(choice.native_finish_reason);
    if (native !== null && native !== reason) this._extra(index, "native_finish_reason", native);
    if (choice.error != null) this._error(choice.error, out);
  }

  _contentParts(parts, index, out, data) {
    // Mistral's delta.content array: text parts are text, thinking parts reasoning,
    // other parts go to the extras (never into the text, never dropped).
    const unknown = [];
    const bad = (what) => new MalformedChunk(`malformed chunk: ${what}`, { payload: data });
    for (const part of parts) {
      if (!isObject(part)) throw bad("a delta.content part is not an object");
      if (part.type === "text") {
        if (typeof part.text !== "string") throw bad("a text part's text is not a string");
        if (part.text) {
          this._emit(out, { type: "text", choice: index, text: part.text });
          if (index === 0) this.parts.push(part.text);
        }
      } else if (part.type === "thinking") {
        let thinking = "";
        if (typeof part.thinking === "string") {
          thinking = part.thinking;
        } else if (Array.isArray(part.thinking)) {
          for (const inner of part.thinking) {
            if (isObject(inner) && inner.type === "text") {
              if (typeof inner.text !== "string") throw bad("a thinking text part's text is not a string");
              thinking += inner.text;
            } else {
              unknown.push(inner);
            }
          }
        } else {
          throw bad("a thinking part's thinking is not an array");
        }
        if (thinking) this._emit(out, { type: "reasoning", choice: index, text: thinking });
      } else {
        unknown.push(part);
      }
    }
    if (unknown.length !== 0) this._extra(index, "content", unknown);
  }

  _error(error, out) {
    let message = "";
    let code = null;
    if (typeof error === "string") {
      message = error;
    } else if (isObject(error)) {
      message = typeof error.message === "string" ? error.message : JSON.stringify(error.message ?? "");
      code = error.code ?? error.http_status ?? null;
      if (typeof code !== "number" && typeof code !== "string") code = null;
      if (isObject(error.metadata)) this._extra(null, "metadata", error.metadata);
    }
    this._errorEvent(message, code, out);
  }

  _errorEvent(message, code, out) {
    const text = this.text();
    const event = {
      type: "error",
      status: "error",
      message,
      code,
      http_status: null,
      partial_text_length: text.length,
      text,
    };
    this.terminal = event;
    this._emit(out, event);
  }

  _finish(out) {
    if (this._finishError) {
      this._errorEvent("the stream ended with finish_reason 'error'", null, out);
      return;
    }
    // Complete without [DONE] when every choice finished and usage arrived: the
    // Python accumulator's rule.
    const finished =
      this._choices.size !== 0 && this.usage !== null && [...this._choices].every((i) => i in this._finishes);
    const event = {
      type: "done",
      status: this._done || finished ? "complete" : "truncated",
      finish_reason: this._finishes[0] ?? null,
      finish_reasons: { ...this._finishes },
      usage: this.usage,
      cost: this.usage?.cost ?? null,
      ttft: this.ttft,
    };
    this.terminal = event;
    this._emit(out, event);
  }
}

function withoutType(event) {
  const { type: _type, ...rest } = event;
  return rest;
}

// ---------------------------------------------------------------- the I/O shell

const RECONNECT_FIRST_MS = 500;
const RECONNECT_MAX_MS = 8000;
const RECONNECT_TRIES = 10;
const CONTENT_EVENTS = new Set(["text", "reasoning", "tool_call"]);

function now() {
  return globalThis.performance?.now() ?? Date.now();
}

function headerList(headers) {
  return new Headers(headers ?? undefined);
}

/** The URL of a stream: `{url}/{id}` with any query string of `url` kept, plus `extra`. */
function streamURL(url, streamId, extra = "") {
  const text = String(url);
  const q = text.indexOf("?");
  const path = q < 0 ? text : text.slice(0, q);
  const query = q < 0 ? "" : text.slice(q + 1);
  const joined = [query, extra].filter(Boolean).join("&");
  return `${path.replace(/\/+$/, "")}/${encodeURIComponent(streamId)}${joined ? `?${joined}` : ""}`;
}

async function errorFromResponse(response, partial) {
  let body = "";
  try {
    body = await response.text();
  } catch {
    // The body is only used for the message; the status says enough.
  }
  let message = response.statusText || `HTTP ${response.status}`;
  let code = null;
  try {
    const json = JSON.parse(body);
    const error = isObject(json) && json.error !== undefined ? json.error : json;
    if (typeof error === "string") message = error;
    else if (isObject(error)) {
      const text = error.message ?? error.detail;
      if (typeof text === "string") message = text;
      if (typeof error.code === "number" || typeof error.code === "string") code = error.code;
    }
  } catch {
    if (body.trim()) message = body.trim().slice(0, 500);
  }
  const after = Number(response.headers.get("retry-after"));
  return new APIStatusError(`HTTP ${response.status}: ${message}`, {
    status: response.status,
    code,
    partial,
    payload: body,
    retryAfter: response.headers.has("retry-after") && Number.isFinite(after) ? after : null,
  });
}

/**
 * A chat stream: an async iterable of events (iterate it once) with a `result`
 * promise.  Reading starts at once and does not wait for the iterator.
 */
class ChatStream {
  constructor(url, { signal, headers, onText, fetch: fetchFn } = {}) {
    this._url = url;
    this._headers = headers;
    this._onText = onText;
    this._fetch = fetchFn ?? ((...args) => globalThis.fetch(...args));
    this._chat = new ChatEvents();
    this._sse = new SSEDecoder();
    this._controller = new AbortController();
    this._signal = signal;
    this._queue = [];
    this._head = 0;
    this._wake = null;
    this._ended = false;
    this._error = null;
    this._thrown = false;
    this._iterated = false;
    this._started = now();
    this._resumed = false;
    this.result = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    // A caller that only iterates must not see an unhandled rejection of `result`.
    this.result.catch(() => {});
    this._onAbort = () => this._cancel(signal.reason);
    if (signal) signal.addEventListener("abort", this._onAbort);
  }

  /** The resumable stream's id, once the server has sent one; else null. */
  get streamId() {
    return this._chat.streamId;
  }

  /** The last event id seen (the position a reconnect resumes after). */
  get lastEventId() {
    return this._sse.lastEventId;
  }

  [Symbol.asyncIterator]() {
    if (this._iterated) throw new TypeError("a chat stream can be iterated only once");
    this._iterated = true;
    const iterator = {
      next: () => this._next(),
      return: async () => {
        if (!this._ended) this._cancel();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  async _next() {
    for (;;) {
      if (this._head < this._queue.length) {
        const value = this._queue[this._head];
        this._queue[this._head++] = undefined;
        if (this._head > 1024 && this._head * 2 > this._queue.length) {
          this._queue = this._queue.slice(this._head);
          this._head = 0;
        }
        return { value, done: false };
      }
      if (this._ended) {
        if (this._error !== null && !this._thrown) {
          this._thrown = true;
          throw this._error;
        }
        return { value: undefined, done: true };
      }
      await new Promise((resolve) => {
        this._wake = resolve;
      });
    }
  }

  _notify() {
    const wake = this._wake;
    if (wake !== null) {
      this._wake = null;
      wake();
    }
  }

  _partial(status) {
    return { text: this._chat.text(), status };
  }

  _finish(error) {
    if (this._ended) return;
    this._ended = true;
    this._signal?.removeEventListener("abort", this._onAbort);
    if (error) {
      this._error = error;
      this._reject(error);
    } else {
      const chat = this._chat;
      const done = chat.terminal;
      const usage = chat.usage;
      this._resolve({
        text: chat.text(),
        status: done.status,
        usage,
        ttft: chat.ttft ?? (typeof done.ttft === "number" ? done.ttft : null),
        cost: typeof done.cost === "number" ? done.cost : (usage?.cost ?? null),
        finishReason: str(done.finish_reason),
        model: chat.model,
        streamId: chat.streamId,
      });
    }
    this._controller.abort();
    this._notify();
  }

  _cancel(reason) {
    if (this._ended) return;
    const streamId = this._chat.streamId;
    if (streamId !== null && this._chat.mode !== "direct") {
      // A deliberate stop: tell a resumable relay to cancel now rather than linger.
      this._fetch(streamURL(this._url, streamId), {
        method: "DELETE",
        headers: headerList(this._headers),
        keepalive: true,
      }).catch(() => {});
    }
    this._queue = [];
    this._head = 0;
    this._finish(
      new StreamCancelled("the stream was cancelled", {
        partial: this._partial("cancelled"),
        cause: reason,
      }),
    );
  }

  _deliver(events) {
    for (const event of events) {
      if (this._chat.ttft === null && !this._resumed && CONTENT_EVENTS.has(event.type)) {
        this._chat.ttft = (now() - this._started) / 1000;
      }
      if (event.type === "text" && event.text && this._onText) this._onText(event.text, event.choice);
      this._queue.push(event);
    }
    if (events.length !== 0) this._notify();
  }

  _request(init) {
    const headers = headerList(this._headers);
    headers.set("Accept", "text/event-stream");
    for (const [name, value] of Object.entries(init.headers ?? {})) headers.set(name, value);
    return { ...init, headers, signal: this._controller.signal };
  }

  /** The first request, then reading, reconnecting while the stream is resumable. */
  async _run(first) {
    try {
      let response;
      try {
        response = await first();
      } catch (error) {
        if (this._ended) return;
        throw new APIConnectionError(`the request failed: ${error?.message ?? error}`, {
          partial: this._partial("error"),
          cause: error,
        });
      }
      let tries = 0;
      for (;;) {
        if (this._ended) return;
        let broke = null;
        if (response !== null) {
          await this._check(response);
          const before = this._chat.lastSeq;
          broke = await this._read(response);
          if (this._ended) return;
          if (this._chat.lastSeq > before) tries = 0;
          const terminal = this._chat.terminal;
          if (terminal !== null) return this._end(terminal);
        }
        const streamId = this._chat.streamId;
        if (streamId === null || this._chat.mode === "direct") {
          const why = broke === null ? "the stream ended" : `reading failed (${broke.message})`;
          throw new IncompleteStreamError(`${why} before a terminal event`, {
            partial: this._partial("truncated"),
            cause: broke ?? undefined,
          });
        }
        if (tries >= RECONNECT_TRIES) {
          throw new IncompleteStreamError(
            `the stream broke and ${RECONNECT_TRIES} reconnects did not finish it`,
            { partial: this._partial("truncated"), cause: broke ?? undefined },
          );
        }
        const base = this._sse.retry ?? RECONNECT_FIRST_MS;
        await this._sleep(Math.min(base * 2 ** tries, Math.max(RECONNECT_MAX_MS, base)));
        tries++;
        if (this._ended) return;
        response = await this._reconnect(streamId);
      }
    } catch (error) {
      if (this._ended) return;
      if (error instanceof RawSSEError && error.partial === null) error.partial = this._partial("error");
      this._finish(error);
    }
  }

  async _reconnect(streamId) {
    const after = this._chat.lastSeq;
    let response;
    try {
      response = await this._fetch(
        streamURL(this._url, streamId, `after=${after}`),
        this._request({ method: "GET", headers: { "Last-Event-ID": String(after) } }),
      );
    } catch {
      return null; // no answer: count it as a try
    }
    if (response.status >= 500 || response.status === 408 || response.status === 429) {
      response.body?.cancel().catch(() => {});
      return null;
    }
    return response;
  }

  async _check(response) {
    if (!response.ok) throw await errorFromResponse(response, this._partial("error"));
    const type = (response.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (type !== "text/event-stream") {
      const body = await response.text().catch(() => "");
      const hint = type === "application/json" ? " (for an OpenAI-compatible endpoint, send stream: true)" : "";
      throw new UnexpectedContentType(`expected text/event-stream, got ${type || "no content type"}${hint}`, {
        status: response.status,
        partial: this._partial("error"),
        payload: body,
      });
    }
    const id = response.headers.get("x-rawsse-stream-id");
    if (id && this._chat.streamId === null) this._chat.streamId = id;
  }

  /** Read one response body; return the read error, or null when the body ended. */
  async _read(response) {
    if (response.body === null) {
      this._deliver(this._chat.end());
      return null;
    }
    const reader = response.body.getReader();
    const sse = this._sse;
    const chat = this._chat;
    try {
      for (;;) {
        let chunk;
        try {
          chunk = await reader.read();
        } catch (error) {
          return error;
        }
        if (this._ended) return null;
        if (chunk.done) break;
        const items = sse.feed(chunk.value);
        for (const item of items) {
          if (item.comment !== undefined) continue;
          this._deliver(chat.map(item));
          if (chat.terminal !== null) return null;
        }
      }
      this._deliver(chat.end());
      return null;
    } finally {
      if (chat.terminal !== null || this._ended) reader.cancel().catch(() => {});
      // A reconnect is a new stream for the decoder; it keeps the last id and retry.
      try {
        sse.close();
      } catch {
        // The decoder failed; that error is already on its way out.
      }
    }
  }

  _end(terminal) {
    if (terminal.type === "done") return this._finish(null);
    const message = terminal.message || "the stream ended with an error";
    this._finish(
      new StreamError(message, {
        status: int(terminal.http_status),
        code: terminal.code ?? null,
        partial: { text: this._chat.text() || (str(terminal.text) ?? ""), status: terminal.status ?? "error" },
        payload: JSON.stringify(withoutType(terminal)),
        event: terminal,
      }),
    );
  }

  _sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const signal = this._controller.signal;
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done);
    });
  }
}

/**
 * Stream a chat completion: POST `body` as JSON to `url` (a rawsse relay's
 * `/chat`, or an OpenAI-compatible `/chat/completions` with `stream: true`).
 * Returns an async iterable of events `{type, ...fields}` with a `result`
 * promise of `{text, status, usage, ttft, ...}`.
 */
export function streamChat(url, body, options = {}) {
  const stream = new ChatStream(url, options);
  if (options.signal?.aborted) {
    stream._cancel(options.signal.reason);
    return stream;
  }
  const payload = typeof body === "string" ? body : JSON.stringify(body);
  stream._run(() =>
    stream._fetch(
      String(url),
      stream._request({ method: "POST", body: payload, headers: { "Content-Type": "application/json" } }),
    ),
  );
  return stream;
}

/**
 * Attach to a resumable relay stream by id (`GET {url}/{streamId}`), receiving
 * every event after position `after` (default 0: the whole stream), then the
 * live rest.  `url` is the same chat URL `streamChat` was given.
 */
export function resumeChat(url, streamId, options = {}) {
  const stream = new ChatStream(url, options);
  stream._chat.streamId = streamId;
  stream._chat.lastSeq = options.after ?? 0;
  stream._resumed = true;
  if (options.signal?.aborted) {
    stream._cancel(options.signal.reason);
    return stream;
  }
  stream._run(async () => {
    const response = await stream._reconnect(streamId);
    return response;
  });
  return stream;
}
