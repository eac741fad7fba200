// Compiled by `tsc --strict --noEmit` (tests/test_js.py): rawsse.d.ts must type this.
import {
  APIStatusError,
  type ChatEvent,
  type ChatResult,
  type ChatStatus,
  RawSSEError,
  SSEDecoder,
  StreamCancelled,
  StreamError,
  resumeChat,
  streamChat,
} from "../../src/rawsse/relay/rawsse.js";

function assertNever(value: never): never {
  throw new Error(`unexpected ${String(value)}`);
}

function describe(event: ChatEvent): string {
  switch (event.type) {
    case "start":
      return `start ${event.stream_id ?? "-"} ${event.model ?? "-"}`;
    case "text":
    case "reasoning":
      return `${event.type} ${event.choice}: ${event.text}`;
    case "tool_call":
      return `${event.name ?? ""}(${event.arguments}) ${event.tool_type ?? ""} #${event.index}`;
    case "usage":
      return `${event.total_tokens ?? 0} tokens, $${event.cost ?? 0}`;
    case "continued":
      return `continued after ${event.reason} (attempt ${event.attempt})`;
    case "error":
      return `error ${event.status} ${event.code ?? ""}: ${event.message} after ${event.partial_text_length}`;
    case "done":
      return `done ${event.status} ${event.finish_reason ?? ""} ${event.usage?.completion_tokens ?? 0}`;
    default:
      return assertNever(event);
  }
}

export async function chat(prompt: string): Promise<string> {
  const controller = new AbortController();
  const stream = streamChat(
    "/chat",
    { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: prompt }] },
    { signal: controller.signal, headers: { "X-Tenant": "a" }, onText: (text, choice) => void [text, choice] },
  );
  try {
    for await (const event of stream) {
      console.log(describe(event), event.extras?.["refusal"]);
      if (event.type === "text" && event.text.includes("stop")) controller.abort();
    }
    const result: ChatResult = await stream.result;
    const status: ChatStatus = result.status;
    const seconds: number | null = result.ttft;
    return `${result.text} ${status} ${seconds ?? "?"} ${result.usage?.prompt_tokens ?? 0} ${stream.streamId ?? ""}`;
  } catch (error) {
    if (error instanceof StreamCancelled) return error.partial?.text ?? "";
    if (error instanceof StreamError) return `${error.event?.message ?? ""} ${error.partial?.status ?? ""}`;
    if (error instanceof APIStatusError) return `${error.status} ${error.retryAfter ?? 0} ${error.code ?? ""}`;
    if (error instanceof RawSSEError) return `${error.status ?? 0} ${error.payload ?? ""}`;
    throw error;
  }
}

export async function resume(id: string): Promise<ChatStatus> {
  const stream = resumeChat(new URL("http://127.0.0.1:8000/chat"), id, { after: 3 });
  return (await stream.result).status;
}

export function decode(bytes: Uint8Array): string[] {
  const decoder = new SSEDecoder({ maxLineBytes: 1024 });
  const out: string[] = [];
  for (const item of [...decoder.feed(bytes), ...decoder.close()]) {
    out.push("comment" in item ? `: ${item.comment}` : `${item.event} ${item.data} ${item.id} ${item.retry ?? ""}`);
  }
  return [...out, decoder.lastEventId, String(decoder.retry)];
}
