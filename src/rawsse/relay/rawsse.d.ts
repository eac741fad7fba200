// Types for rawsse.js (an ES module with no build step and no dependencies).

// ---------------------------------------------------------------- SSE decoder

/** One dispatched server-sent event. */
export interface ServerSentEvent {
  /** The `event` field, or "message" when none was given. */
  event: string;
  /** The data lines joined with LF. */
  data: string;
  /** The last event ID in force when the event was dispatched. */
  id: string;
  /** The valid `retry` value given inside this event's block, else null. */
  retry: number | null;
}

/** A comment line (`: text`), such as a heartbeat. */
export interface SSEComment {
  /** The line after the colon, with one leading space removed. */
  comment: string;
}

export interface SSEDecoderOptions {
  /** Bound of one line in UTF-8 bytes (default 16 MiB). */
  maxLineBytes?: number;
  /** Bound of one event's data in UTF-8 bytes (default 64 MiB). */
  maxEventBytes?: number;
}

/** Incremental WHATWG event-stream decoder; throws only SSEProtocolError (on a bound). */
export class SSEDecoder {
  constructor(options?: SSEDecoderOptions);
  readonly maxLineBytes: number;
  readonly maxEventBytes: number;
  /** The last event ID string, updated at each dispatch. */
  readonly lastEventId: string;
  /** The reconnection time in ms from the last valid `retry` field, else null. */
  readonly retry: number | null;
  /** Decode the next bytes of the stream; return the events they complete. */
  feed(bytes: Uint8Array): Array<ServerSentEvent | SSEComment>;
  /** End of stream: discard what is unfinished; ready for a new stream (keeps lastEventId, retry). */
  close(): Array<ServerSentEvent | SSEComment>;
}

// ---------------------------------------------------------------- chat events

/** How a stream ended (rawsse's ChatStatus). */
export type ChatStatus = "complete" | "truncated" | "error" | "cancelled" | "timed_out";

/** Upstream content the schema does not model (refusal text, unknown keys, metadata). */
export type Extras = Record<string, unknown>;

export interface Usage {
  prompt_tokens: number | null;
  completion_tokens: number | null;
  total_tokens: number | null;
  reasoning_tokens: number | null;
  cached_tokens: number | null;
  cost: number | null;
}

export interface StartEvent {
  type: "start";
  /** The resumable stream's id; null when the stream is not resumable. */
  stream_id: string | null;
  model: string | null;
  /** Upstream's completion id. */
  id: string | null;
  extras?: Extras;
}

export interface TextEvent {
  type: "text";
  choice: number;
  text: string;
  extras?: Extras;
}

export interface ReasoningEvent {
  type: "reasoning";
  choice: number;
  text: string;
  extras?: Extras;
}

/** One tool-call fragment, as upstream sent it (argument fragments concatenate). */
export interface ToolCallEvent {
  type: "tool_call";
  choice: number;
  index: number;
  id: string | null;
  /** The call's own type ("function"); sent as `type` on the wire. */
  tool_type: string | null;
  name: string | null;
  arguments: string;
  extras?: Extras;
}

export interface UsageEvent extends Usage {
  type: "usage";
  extras?: Extras;
}

/** A recovery seam: text before and after joins with nothing lost or repeated. */
export interface ContinuedEvent {
  type: "continued";
  reason: "cut" | "timeout" | "error" | "length";
  attempt: number;
  extras?: Extras;
}

/** Terminal: the stream failed.  The iterator yields it, then throws StreamError. */
export interface ErrorEvent {
  type: "error";
  status: ChatStatus;
  message: string;
  code: number | string | null;
  http_status: number | null;
  partial_text_length: number;
  /** The partial text of choice 0. */
  text: string;
  extras?: Extras;
}

/** Terminal: the stream ended. */
export interface DoneEvent {
  type: "done";
  status: ChatStatus;
  /** Choice 0's finish reason. */
  finish_reason: string | null;
  finish_reasons: Record<string, string>;
  usage: Usage | null;
  cost: number | null;
  /** Seconds to the first token, or null. */
  ttft: number | null;
  extras?: Extras;
}

export type ChatEvent =
  | StartEvent
  | TextEvent
  | ReasoningEvent
  | ToolCallEvent
  | UsageEvent
  | ContinuedEvent
  | ErrorEvent
  | DoneEvent;

export type ChatEventType = ChatEvent["type"];

export interface ChatResult {
  /** Choice 0's text. */
  text: string;
  status: ChatStatus;
  usage: Usage | null;
  /** Seconds from the request to the first content event (the server's figure after resumeChat). */
  ttft: number | null;
  cost: number | null;
  finishReason: string | null;
  model: string | null;
  streamId: string | null;
}

export interface StreamChatOptions {
  /** Aborting stops the fetch; for a resumable stream it also asks the relay to cancel it. */
  signal?: AbortSignal;
  /** Extra request headers (never mutated). */
  headers?: HeadersInit;
  /** Called with each non-empty text delta, before the event is yielded. */
  onText?: (text: string, choice: number) => void;
  /** The fetch to use (default: globalThis.fetch). */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
}

export interface ResumeChatOptions extends StreamChatOptions {
  /** Receive the events after this position (default 0: the whole stream). */
  after?: number;
}

/** An async iterable of chat events (iterate it once) with the final result. */
export interface ChatStream extends AsyncIterable<ChatEvent> {
  /** Resolves when a `done` event arrives; rejects (as the iterator does) on any failure. */
  readonly result: Promise<ChatResult>;
  /** The resumable stream's id once the server has sent it, else null. */
  readonly streamId: string | null;
  /** The last event id seen (where a reconnect resumes). */
  readonly lastEventId: string;
  [Symbol.asyncIterator](): AsyncIterator<ChatEvent, undefined> & AsyncIterable<ChatEvent>;
}

/** POST `body` as JSON to `url` (a relay's /chat or an OpenAI-compatible endpoint) and stream. */
export function streamChat(url: string | URL, body: unknown, options?: StreamChatOptions): ChatStream;

/**
 * Attach to a resumable relay stream by id: `GET {url}/{streamId}`.  The result's
 * text holds the text of the events received (after position `after`).
 */
export function resumeChat(url: string | URL, streamId: string, options?: ResumeChatOptions): ChatStream;

// ---------------------------------------------------------------- errors

/** What arrived before a failure. */
export interface PartialResult {
  /** Choice 0's text so far. */
  text: string;
  status: ChatStatus;
}

export interface RawSSEErrorOptions {
  status?: number | null;
  code?: number | string | null;
  partial?: PartialResult | null;
  payload?: string | null;
  cause?: unknown;
}

export class RawSSEError extends Error {
  constructor(message: string, options?: RawSSEErrorOptions);
  /** The HTTP status involved, or null. */
  status: number | null;
  /** The server's error code, or null. */
  code: number | string | null;
  /** What arrived before the failure (always set on errors from streamChat). */
  partial: PartialResult | null;
  /** The raw payload that caused the error (body text, data line), or null. */
  payload: string | null;
}

export class SSEProtocolError extends RawSSEError {}
export class MalformedChunk extends RawSSEError {}
export class APIConnectionError extends RawSSEError {}

export class APIStatusError extends RawSSEError {
  constructor(message: string, options?: RawSSEErrorOptions & { retryAfter?: number | null });
  status: number;
  /** Seconds from a Retry-After header, or null. */
  retryAfter: number | null;
}

export class UnexpectedContentType extends RawSSEError {}
export class StreamInterrupted extends RawSSEError {}

export class StreamError extends StreamInterrupted {
  constructor(message: string, options?: RawSSEErrorOptions & { event?: ErrorEvent | null });
  /** The terminal error event. */
  event: ErrorEvent | null;
}

export class IncompleteStreamError extends StreamInterrupted {}
export class StreamCancelled extends StreamInterrupted {}
