"""Resumable relay streams under load: what a store adds per event, and its operations per token.

python bench/bench_relay_store.py [--streams 1000] [--redis redis://HOST:PORT/DB]

N concurrent ``POST /chat`` requests (started over ``--ramp`` seconds) go straight
into one ``RelayApp`` (ASGI calls, no HTTP server in between, so the figures are
the relay's and the store's), all from the fixture server's ``rawsse/demo``
recording with its recorded timing (78 text deltas over 3.5 s), served by ``rawsse
serve`` in a process of its own.  Runs, one after the other: ``MemoryStore`` and
``RedisStore`` (a ``redis-server`` started here with no persistence, unless
``--redis`` names one; ``--stores none`` runs without a store), each with
coalescing off and at 50 ms.

Reported per run: streams that completed with the exact text; streams served
resumable (the rest fell back to plain streaming: the store failed them); events per
stream; added latency per event (from the moment the producer hands an event to
the store to the moment a follower hands it to the ASGI server: what resumable
mode adds over sending it at once; p50 and p99 over all events); store writes
(appends) and all store operations (round trips, including followers' reads and
the producers' lease upkeep) per upstream token; for Redis also the commands it
ran per token (its ``total_commands_processed``: a script call, and each command
the script runs, about 8 for an append).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from rawsse import AsyncClient, ServerSentEvent, SSEDecoder, TextDelta
from rawsse.relay import MemoryStore, RedisStore, RelayApp

MODEL = "rawsse/demo"
GROUP = 25
BODY = b'{"model":"rawsse/demo","messages":[{"role":"user","content":"hi"}]}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@contextmanager
def process(args: list[str], port: int) -> Iterator[None]:
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, child)
        yield
    finally:
        child.terminate()
        child.wait(10)


@contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (or pass --redis URL)")
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", folder, "--maxclients", "20000"]
        with process(args, port):
            yield f"redis://127.0.0.1:{port}/0"


class Timed:
    """A store that notes when each event was handed to it (by stream id and seq)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.handed: dict[tuple[str, int], float] = {}
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def append(self, stream_id: str, holder: str, events: Any) -> None:
        self._note(stream_id, events)
        await self.store.append(stream_id, holder, events)

    async def finish(self, stream_id: str, holder: str, events: Any) -> None:
        self._note(stream_id, events)
        await self.store.finish(stream_id, holder, events)

    def _note(self, stream_id: str, events: Any) -> None:
        self.writes += 1
        now = time.perf_counter()
        for event in events:
            self.handed[stream_id, event.seq] = now


class Collector:
    """One stream's ASGI messages: when each data event was sent, by id."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.decoder = SSEDecoder()
        self.stream_id = ""
        self.arrivals: dict[int, float] = {}
        self.text: list[str] = []
        self.end: str | None = None
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        if not hasattr(self, "_sent"):
            self._sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.stream_id = dict(message["headers"]).get(b"x-rawsse-stream-id", b"").decode()
            return
        now = time.perf_counter()
        for event in self.decoder.feed(message.get("body", b"")):
            if isinstance(event, ServerSentEvent):
                self.arrivals[int(event.id or 0)] = now
                if event.event == "text":
                    self.text.append(_text(event.data))
                elif event.event in ("done", "error"):
                    self.end = event.event
        if not message.get("more_body", False):
            self.gone.set()


def _text(data: str) -> str:
    return str(json.loads(data)["text"])


def scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/chat",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"bench")],
        "query_string": b"",
    }


async def run(
    upstream: str, streams: int, store: Any, coalesce: float, ramp: float
) -> list[Collector]:
    # One upstream client per GROUP streams: httpcore's pool looks at every connection
    # it holds on each request and response, which would swamp the figures at 1000.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with contextlib.AsyncExitStack() as stack:
        apps = []
        for _ in range(0, streams, GROUP):
            http = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0))
            await stack.enter_async_context(http)
            client = AsyncClient(base_url=upstream, api_key="", retries=0, http_client=http)
            await stack.enter_async_context(client)
            apps.append(
                RelayApp(client, models=[MODEL], store=store, coalesce=coalesce, heartbeat=None)
            )
        collectors = [Collector() for _ in range(streams)]

        async def one(index: int, collector: Collector) -> None:
            await asyncio.sleep(ramp * index / streams)
            collector.started = time.perf_counter()
            await apps[index // GROUP](scope(), collector.receive, collector.send)

        await asyncio.gather(*(one(i, c) for i, c in enumerate(collectors)))
        # Producers run apart from the requests: let them store their ends.
        await asyncio.sleep(0.2)
        return collectors


def redis_commands(url: str) -> int:
    """Commands the Redis server has processed so far."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--redis", default=None)
    parser.add_argument("--stores", default="memory,redis")
    parser.add_argument("--ramp", type=float, default=1.0, help="seconds over which streams start")
    parser.add_argument("--coalesce", default="0,0.05")
    args = parser.parse_args()
    port = free_port()
    serve = [sys.executable, "-m", "rawsse", "serve", "--port", str(port)]
    upstream = f"http://127.0.0.1:{port}/api/v1"
    print(f"Python {platform.python_version()}, {os.cpu_count()} cores, {args.streams} streams")
    with process(serve, port), redis_server(args.redis) as redis_url:
        expected = asyncio.run(baseline_text(upstream))
        tokens = expected[1]
        rows = []
        for name in args.stores.split(","):
            for coalesce in map(float, args.coalesce.split(",")):
                store: Any = None
                if name == "memory":
                    store = Timed(MemoryStore())
                elif name == "redis":
                    store = Timed(RedisStore(redis_url))
                before = redis_commands(redis_url)
                collectors = asyncio.run(run(upstream, args.streams, store, coalesce, args.ramp))
                commands = None
                if name == "redis":
                    commands = (redis_commands(redis_url) - before) / (tokens * args.streams)
                exact = sum(1 for c in collectors if "".join(c.text) == expected[0])
                kept = sum(1 for c in collectors if c.stream_id)
                events = statistics.mean(len(c.arrivals) for c in collectors)
                added: list[float] = []
                writes = ops = None
                if store is not None:
                    added = [
                        at - store.handed[c.stream_id, seq]
                        for c in collectors
                        for seq, at in c.arrivals.items()
                        if (c.stream_id, seq) in store.handed
                    ]
                    writes = store.writes / (tokens * args.streams)
                    ops = store.operations / (tokens * args.streams)
                rows.append((name, coalesce, exact, kept, events, added, writes, ops, commands))
    print(f"upstream: {tokens} text deltas per stream")
    print(
        f"{'store':8} {'coalesce':>8} {'exact':>9} {'resumable':>9} {'events':>7} "
        f"{'added p50':>10} {'added p99':>10} {'writes/tok':>10} {'ops/tok':>8} {'cmds/tok':>8}"
    )
    for name, coalesce, exact, kept, events, added, writes, ops, commands in rows:
        p50 = f"{percentile(added, 0.5) * 1000:.2f} ms" if added else "-"
        p99 = f"{percentile(added, 0.99) * 1000:.2f} ms" if added else "-"
        per_write = "-" if writes is None else f"{writes:.3f}"
        per_op = "-" if ops is None else f"{ops:.3f}"
        per_command = "-" if commands is None else f"{commands:.3f}"
        done = f"{exact}/{args.streams}"
        resumable = f"{kept}/{args.streams}"
        print(
            f"{name:8} {coalesce:>8} {done:>9} {resumable:>9} {events:>7.1f} "
            f"{p50:>10} {p99:>10} {per_write:>10} {per_op:>8} {per_command:>8}"
        )


async def baseline_text(upstream: str) -> tuple[str, int]:
    async with AsyncClient(base_url=upstream, api_key="", headers={"x-rawsse-speed": "0"}) as c:
        async with c.stream(model=MODEL, messages=[{"role": "user", "content": "hi"}]) as s:
            parts = [event.text async for event in s if isinstance(event, TextDelta)]
        return "".join(parts), len(parts)


if __name__ == "__main__":
    main()
