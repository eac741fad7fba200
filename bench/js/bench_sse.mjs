// SSE decoding throughput in JavaScript: rawsse.js's SSEDecoder vs
// eventsource-parser (the most used JS parser, fed by a streaming TextDecoder)
// vs the common hand-rolled loop (split each read on "\n", keep the tail; wrong
// on CR line ends, shown for scale).  The same OpenRouter-shaped body in 4 KiB
// chunks for each; rounds interleaved, best CPU time kept (steadier than wall
// time on a shared machine); every contender's data strings are checked to be
// identical before any figure is printed.
//
//   npm ci --prefix bench/js && node bench/js/bench_sse.mjs [--mb 20] [--rounds 7]
import { createParser } from "eventsource-parser";

import { SSEDecoder } from "../../src/rawsse/relay/rawsse.js";

const args = Object.fromEntries(
  process.argv.slice(2).flatMap((a, i, all) => (a.startsWith("--") ? [[a.slice(2), Number(all[i + 1])]] : [])),
);
const MB = args.mb ?? 20;
const ROUNDS = args.rounds ?? 7;
const CHUNK = 4096;

function makeBody(targetMb) {
  // Seeded, like bench/bench_sse.py: mostly ASCII JSON, raw UTF-8 now and then.
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const words = [...Array(5).fill(["the", "stream", "of", "tokens", "arrives", "quickly", "and", "each", "one"]).flat(), "über", "数据", "—", "🙂", "naïve"];
  const parts = [": OPENROUTER PROCESSING\n\n".repeat(3)];
  let size = 0;
  while (size < targetMb * 1e6) {
    const n = 1 + Math.floor(random() * 4);
    const text = Array.from({ length: n }, () => words[Math.floor(random() * words.length)]).join(" ");
    const chunk = {
      id: "gen-1764000000-AbCdEfGhIjKlMnOpQrSt",
      object: "chat.completion.chunk",
      created: 1764000000,
      model: "openai/gpt-4o",
      provider: "OpenAI",
      choices: [{ index: 0, delta: { role: "assistant", content: text }, finish_reason: null, native_finish_reason: null, logprobs: null }],
    };
    const line = `data: ${JSON.stringify(chunk)}\n\n`;
    parts.push(line);
    size += Buffer.byteLength(line);
  }
  parts.push("data: [DONE]\n\n");
  return new TextEncoder().encode(parts.join(""));
}

const body = makeBody(MB);
const chunks = [];
for (let i = 0; i < body.length; i += CHUNK) chunks.push(body.subarray(i, i + CHUNK));

const contenders = {
  "rawsse.js SSEDecoder": (out) => {
    const decoder = new SSEDecoder();
    for (const chunk of chunks) for (const item of decoder.feed(chunk)) if (item.data !== undefined) out.push(item.data);
    decoder.close();
  },
  "eventsource-parser 4": (out) => {
    const text = new TextDecoder();
    const parser = createParser({ onEvent: (event) => out.push(event.data) });
    for (const chunk of chunks) parser.feed(text.decode(chunk, { stream: true }));
    parser.reset({ consume: false });
  },
  "hand-rolled split (wrong on CR)": (out) => {
    const text = new TextDecoder();
    let buffer = "";
    for (const chunk of chunks) {
      buffer += text.decode(chunk, { stream: true });
      const lines = buffer.split("\n");
      buffer = lines.pop();
      for (const line of lines) if (line.startsWith("data: ")) out.push(line.slice(6));
    }
  },
};

/** Collects every data string (for the identity check). */
function collect(run) {
  const out = [];
  run(out);
  return out;
}

/** Touches each data string as a consumer would, keeping none (so timing is the parser's). */
const consumer = {
  total: 0,
  push(data) {
    this.total += data.length;
  },
};

const reference = collect(contenders["rawsse.js SSEDecoder"]);
for (const [name, run] of Object.entries(contenders)) {
  const got = collect(run);
  if (got.length !== reference.length || got.some((d, i) => d !== reference[i])) throw new Error(`${name}: different events`);
}

const best = Object.fromEntries(Object.keys(contenders).map((name) => [name, Infinity]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, run] of Object.entries(contenders)) {
    const started = process.cpuUsage();
    run(consumer);
    const used = process.cpuUsage(started);
    best[name] = Math.min(best[name], (used.user + used.system) / 1e6);
  }
}

console.log(`node ${process.version}, ${(body.length / 1e6).toFixed(1)} MB, ${reference.length} events, ${CHUNK} B reads, best CPU time of ${ROUNDS}`);
const base = best["rawsse.js SSEDecoder"];
for (const [name, seconds] of Object.entries(best)) {
  console.log(
    `${name.padEnd(32)} ${(body.length / 1e6 / seconds).toFixed(0).padStart(6)} MB/s ` +
      `${(reference.length / seconds / 1e6).toFixed(2).padStart(6)} M events/s  ${(seconds / base).toFixed(2)}× rawsse's time`,
  );
}
