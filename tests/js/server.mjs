// A tiny HTTP server for streamChat tests: each test sets `route(req, res, body)`.
import { createServer } from "node:http";

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startServer(route) {
  const requests = [];
  const server = createServer(async (req, res) => {
    let body = "";
    for await (const piece of req) body += piece;
    const seen = { method: req.method, url: req.url, headers: req.headers, body, closed: false };
    res.on("close", () => {
      seen.closed = true;
      seen.finished = res.writableFinished;
    });
    requests.push(seen);
    try {
      await server.route(req, res, body, seen);
    } catch (error) {
      res.destroy(error);
    }
  });
  server.route = route;
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    set route(fn) {
      server.route = fn;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export function sseHead(res, headers = {}) {
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", ...headers });
  res.flushHeaders();
}

/** Write each chunk as its own read for the client (a pause between them). */
export async function writeChunks(res, chunks, gap = 2) {
  for (const chunk of chunks) {
    if (chunk.length === 0) continue;
    res.write(chunk);
    await sleep(gap);
  }
}

/** Wait until `check()` is true (polling), failing after `ms`. */
export async function until(check, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for a condition");
    await sleep(5);
  }
}
