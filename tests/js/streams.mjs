// Wire bytes for streamChat tests: a relay stream (named events, per the relay
// schema) and an OpenAI-compatible one (unnamed chunks, then [DONE]).

/** One relay event on the wire. */
export function relayEvent(seq, name, data) {
  return `id: ${seq}\nevent: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

export const USAGE = {
  prompt_tokens: 5,
  completion_tokens: 4,
  total_tokens: 9,
  reasoning_tokens: 1,
  cached_tokens: null,
  cost: 0.00012,
};

/** The relay events of one answer, as [name, data] pairs (seq = position + 1). */
export function relayEvents(streamId = null) {
  return [
    ["start", { stream_id: streamId, model: "test/model", id: "gen-1" }],
    ["reasoning", { choice: 0, text: "thinking…" }],
    ["text", { choice: 0, text: "Hé" }],
    ["text", { choice: 0, text: "llo 🌍" }],
    ["tool_call", { choice: 0, index: 0, id: "call_1", type: "function", name: "f", arguments: '{"a":' }],
    ["tool_call", { choice: 0, index: 0, id: null, type: null, name: null, arguments: "1}" }],
    ["continued", { reason: "cut", attempt: 1 }],
    ["text", { choice: 0, text: " wörld", extras: { provider: "p" } }],
    ["text", { choice: 1, text: "other choice" }],
    ["usage", USAGE],
    [
      "done",
      {
        status: "complete",
        finish_reason: "stop",
        finish_reasons: { 0: "stop", 1: "length" },
        usage: USAGE,
        cost: 0.00012,
        ttft: 0.25,
      },
    ],
  ];
}

export const RELAY_TEXT = "Héllo 🌍 wörld";

/** The events streamChat yields for relayEvents(). */
export function expectedRelay(streamId = null) {
  return relayEvents(streamId).map(([name, data]) => {
    const event = { type: name, ...data };
    event.type = name;
    if (name === "tool_call") event.tool_type = data.type;
    return event;
  });
}

/** The relay stream's bytes, with a first comment, a retry and a heartbeat. */
export function relayWire(streamId = null, { retry = 1000, from = 1, to = Infinity } = {}) {
  const parts = [": rawsse\n\n", `retry: ${retry}\n`];
  relayEvents(streamId).forEach(([name, data], i) => {
    const seq = i + 1;
    if (seq >= from && seq <= to) parts.push(relayEvent(seq, name, data));
    if (i === 3) parts.push(": hb\n\n");
  });
  return parts.join("");
}

const base = { id: "gen-9", object: "chat.completion.chunk", created: 1700000000, model: "up/model" };

export function chunk(choices, extra = {}) {
  return `data: ${JSON.stringify({ ...base, choices, ...extra })}\n\n`;
}

export const OPENAI_USAGE = {
  prompt_tokens: 7,
  completion_tokens: 3,
  total_tokens: 10,
  cost: 0.5,
  completion_tokens_details: { reasoning_tokens: 2 },
  prompt_tokens_details: { cached_tokens: 4 },
  is_byok: false,
};

/** An OpenAI-compatible stream, without its final `data: [DONE]`. */
export function openaiWire() {
  return [
    ": OPENROUTER PROCESSING\n\n",
    chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }], { provider: "P" }),
    chunk([{ index: 0, delta: { reasoning: "hm", reasoning_details: [{ type: "reasoning.text", text: "hm" }] } }]),
    chunk([{ index: 0, delta: { content: "Hé" } }]),
    chunk([{ index: 0, delta: { content: "llo 🌍" } }]),
    chunk([
      {
        index: 0,
        delta: { tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "f", arguments: "{}" } }] },
      },
    ]),
    chunk([{ index: 0, delta: { refusal: "no" } }]),
    chunk([{ index: 0, delta: {}, finish_reason: "stop", native_finish_reason: "end_turn" }]),
    chunk([], { usage: OPENAI_USAGE }),
  ].join("");
}

export const OPENAI_TEXT = "Héllo 🌍";

export const OPENAI_MAPPED_USAGE = {
  prompt_tokens: 7,
  completion_tokens: 3,
  total_tokens: 10,
  reasoning_tokens: 2,
  cached_tokens: 4,
  cost: 0.5,
};

/**
 * What streamChat yields for openaiWire() (+ [DONE]); ttft is checked apart.
 * Unmodelled content rides in the next event's extras, as the relay sends it.
 */
export function expectedOpenAI(status = "complete") {
  return [
    { type: "start", stream_id: null, model: "up/model", id: "gen-9", extras: { provider: ["P"], created: [1700000000] } },
    {
      type: "reasoning",
      choice: 0,
      text: "hm",
      extras: { choices: { 0: { reasoning_details: [[{ type: "reasoning.text", text: "hm" }]] } } },
    },
    { type: "text", choice: 0, text: "Hé" },
    { type: "text", choice: 0, text: "llo 🌍" },
    { type: "tool_call", choice: 0, index: 0, id: "call_1", tool_type: "function", name: "f", arguments: "{}" },
    { type: "text", choice: 0, text: "", extras: { refusal: ["no"] } },
    {
      type: "usage",
      ...OPENAI_MAPPED_USAGE,
      extras: {
        choices: { 0: { native_finish_reason: ["end_turn"] } },
        completion_tokens_details: [{ reasoning_tokens: 2 }],
        prompt_tokens_details: [{ cached_tokens: 4 }],
        is_byok: [false],
      },
    },
    {
      type: "done",
      status,
      finish_reason: "stop",
      finish_reasons: { 0: "stop" },
      usage: OPENAI_MAPPED_USAGE,
      cost: 0.5,
      ttft: "<number>",
    },
  ];
}
