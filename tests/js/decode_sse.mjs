// For tests/test_js.py: read JSON [{input: latin-1 string, cuts: [int], limits?}]
// on stdin, decode each with SSEDecoder cut at those positions, and print
// JSON [{events} | {error: message}], one entry per case.
import { SSEDecoder, SSEProtocolError } from "../../src/rawsse/relay/rawsse.js";

let input = "";
process.stdin.setEncoding("utf8");
for await (const piece of process.stdin) input += piece;

const out = [];
for (const { input: text, cuts, limits } of JSON.parse(input)) {
  const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0));
  const decoder = new SSEDecoder(limits ?? {});
  const events = [];
  try {
    let at = 0;
    for (const cut of [...cuts, bytes.length]) {
      events.push(...decoder.feed(bytes.subarray(at, cut)));
      at = cut;
    }
    events.push(...decoder.close());
    out.push({ events, lastEventId: decoder.lastEventId, retry: decoder.retry });
  } catch (error) {
    if (!(error instanceof SSEProtocolError)) throw error;
    out.push({ error: "SSEProtocolError" });
  }
}
process.stdout.write(JSON.stringify(out));
