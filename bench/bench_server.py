"""The fixture server (stdlib asyncio) against uvicorn serving the same cassette.

python bench/bench_server.py

Each server runs in its own process and replays one long stream (2,000 SSE
chunks, ~300 kB, as 2,000 HTTP chunks) with no delays.  A raw-socket client
(so client overhead is the same, and small, for both) measures:

- time to first byte: request sent -> first response bytes (median of 200, keep-alive);
- one stream: request -> terminating chunk, sequential on one connection;
- 16 streams at once: all received, wall time.

The uvicorn side is a minimal ASGI app that sends one ``http.response.body``
message per recorded chunk, i.e. the same work; it uses uvicorn's default
pure-Python h11 protocol unless httptools is installed.
"""

from __future__ import annotations

import asyncio
import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHUNKS = 2000
CONCURRENT = 16
RUNS = 5

REQUEST_BODY = json.dumps({"model": "bench/long", "stream": True}).encode()
REQUEST = (
    b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: bench\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
    % (len(REQUEST_BODY), REQUEST_BODY)
)


def make_cassette(folder: Path) -> Path:
    from rawsse.testing import Cassette, save_cassette

    pieces = []
    for i in range(CHUNKS):
        chunk = {
            "id": "gen-bench",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "bench/long",
            "choices": [{"index": 0, "delta": {"content": f"token {i} "}, "finish_reason": None}],
        }
        pieces.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    pieces.append(b"data: [DONE]\n\n")
    cassette = Cassette.from_body(pieces, request_body={"model": "bench/long"}, interval=0.001)
    return save_cassette(cassette, folder / "long.jsonl")


# -- the servers (child processes) ---------------------------------------------------------


def serve_rawsse(path: str) -> None:
    from rawsse._server import FixtureServer

    with FixtureServer(path, port=0, speed=0) as server:
        print(server.port, flush=True)
        sys.stdin.read()


def serve_h11(path: str) -> None:
    """The same replay loop with h11 doing the HTTP/1.1 parsing and framing."""
    import h11

    from rawsse._server import LoopThread
    from rawsse.testing import load_cassette

    cassette = load_cassette(path)
    chunks = [data for _, data in cassette.chunks]
    headers = [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache"),
        ("transfer-encoding", "chunked"),
        ("server", "rawsse"),
    ]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            while True:
                body = bytearray()
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await reader.read(65536))
                        continue
                    if isinstance(event, h11.Data):
                        body += event.data
                    if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        break
                if isinstance(event, h11.ConnectionClosed):
                    return
                json.loads(body)
                writer.write(conn.send(h11.Response(status_code=200, headers=headers)))
                for data in chunks:
                    writer.write(conn.send(h11.Data(data=data)))
                    await writer.drain()
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError):
            pass
        finally:
            writer.close()

    server = LoopThread(handle).start()
    try:
        print(server.port, flush=True)
        sys.stdin.read()
    finally:
        server.close()


def serve_uvicorn(path: str) -> None:
    import threading

    import uvicorn

    from rawsse.testing import load_cassette

    cassette = load_cassette(path)
    chunks = [data for _, data in cassette.chunks]
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for data in chunks:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    print(port, flush=True)
    sys.stdin.read()
    server.should_exit = True
    thread.join()


# -- the client ------------------------------------------------------------------------------


def read_response(sock: socket.socket, first: list[float] | None = None) -> int:
    """Read one chunked response; returns the body bytes (framing included)."""
    data = bytearray()
    while not data.endswith(b"\r\n0\r\n\r\n"):
        piece = sock.recv(262144)
        if not piece:
            raise ConnectionError("closed early")
        if first is not None and not data:
            first.append(time.perf_counter())
        data += piece
    return len(data)


def measure(port: int) -> dict[str, float]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        size = 0
        for _ in range(3):  # warm up
            sock.sendall(REQUEST)
            size = read_response(sock)
        ttfb = []
        for _ in range(200):
            first: list[float] = []
            start = time.perf_counter()
            sock.sendall(REQUEST)
            read_response(sock, first)
            ttfb.append(first[0] - start)
        whole = []
        for _ in range(20):
            start = time.perf_counter()
            sock.sendall(REQUEST)
            read_response(sock)
            whole.append(time.perf_counter() - start)

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        data = bytearray()
        while not data.endswith(b"\r\n0\r\n\r\n"):
            piece = await reader.read(262144)
            if not piece:
                raise ConnectionError("closed early")
            data += piece
        writer.close()

    async def many() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(CONCURRENT)))
        return time.perf_counter() - start

    concurrent = min(asyncio.run(many()) for _ in range(RUNS))
    return {
        "bytes": size,
        "ttfb": statistics.median(ttfb),
        "stream": min(whole),
        "concurrent": concurrent,
    }


def run(kind: str, path: Path) -> dict[str, float]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        return measure(port)
    finally:
        proc.communicate("", timeout=30)


def main() -> None:
    try:
        import uvicorn
    except ImportError:
        uvicorn = None  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        path = make_cassette(Path(tmp))
        results = {"rawsse FixtureServer (asyncio streams)": run("rawsse", path)}
        results["same loop, h11 parsing and framing"] = run("h11", path)
        if uvicorn is not None:
            results[f"uvicorn {uvicorn.__version__} (h11) + ASGI app"] = run("uvicorn", path)
    print(f"Python {platform.python_version()} on {platform.machine()}, {CHUNKS} chunks")
    first = next(iter(results.values()))
    print(f"body {first['bytes'] / 1000:.0f} kB on the wire per stream\n")
    print(
        f"{'server':<42} {'TTFB':>9} {'one stream':>11} {f'{CONCURRENT} at once':>11} {'MB/s':>7}"
    )
    for name, r in results.items():
        mbps = r["bytes"] * CONCURRENT / r["concurrent"] / 1e6
        print(
            f"{name:<42} {r['ttfb'] * 1e3:>6.3f} ms {r['stream'] * 1e3:>8.1f} ms "
            f"{r['concurrent'] * 1e3:>8.1f} ms {mbps:>7.1f}"
        )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        servers = {"rawsse": serve_rawsse, "h11": serve_h11, "uvicorn": serve_uvicorn}
        servers[sys.argv[2]](sys.argv[3])
    else:
        main()
