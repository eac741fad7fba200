"""The relay against the common recipe: CPU per relayed token, added latency, 2,000 streams.

python bench/bench_relay.py [--quick] [--runs N] [--only SECTIONS] [--baseline REV]

The common recipe is a FastAPI ``StreamingResponse`` over the openai SDK's
``AsyncOpenAI``, yielding ``data: {"token": ...}`` per chunk.  It and
``rawsse.relay.RelayApp`` each run under uvicorn (same settings: uvloop and
httptools where installed, as ``rawsse relay`` runs) in a process of their own,
in front of the same upstream: the fixture server (``rawsse serve``, its own
process) serving a 2,000-chunk answer.  A raw-socket client (h11) reads every
stream to its end and checks that every text byte arrived.

1. CPU seconds of the server process (``/proc/PID/stat``) per relayed token, with
   coalescing off, for two upstream shapes:
   - bursts: the whole answer written at once, so one read carries many events;
     100 concurrent readers;
   - paced: one event every 2 ms, so one read carries one event, with 100
     concurrent readers (as the goal is stated) and with 10.  100 readers ask
     for 50,000 events/s, more than a 2-core machine can produce and relay with
     the recipe (about 6 CPU-seconds per second): the upstream then falls behind
     its pacing and writes what is due at once, so the reads batch up again.
     The "relay chunks/token" column shows what the reads carried (1.0: one
     event per read); the 10-reader row keeps one event per read.
   Runs alternate between the two servers; the best of ``--runs`` counts.
2. Added latency per event: an upstream that writes its own clock into each
   token (every 10 ms, 50 streams); the client subtracts it on arrival, directly
   from upstream and through each server.
   The relay runs twice: as a library object (the interpreter's garbage
   collector as it comes) and as ``rawsse relay`` runs it (``serving_gc``: start-up
   frozen, collections rarer), to show what the collector's pauses add.  Paths
   alternate; each path's run with the lowest p99 of ``--runs`` counts.
3. 2,000 concurrent relayed streams through ``RelayApp`` (its client keeping few
   idle connections, as the README advises for many streams), on asyncio and on
   uvloop (``--loops``), two rounds in one relay process: errors, wall time, the
   most requests open at once in the relay (and of them streaming: answer head
   sent), RSS per open stream (RSS when the most were open minus RSS before,
   over that count; and the high-water RSS over the same count), and after each
   round, following a full collection, RSS and heap against before.  A second
   relay process runs a quarter of the streams under ``tracemalloc`` for the
   Python heap per open stream (tracing slows the relay, so fewer streams).
4. ``--only heap``: what one open relayed stream holds on the Python heap
   (``tracemalloc`` in the relay process, 200 streams open), and where.

``--only cpu,many,latency,heap`` picks sections (default: the first three).
``--baseline REV`` adds a relay server running rawsse as of git revision ``REV``
to the CPU and latency sections (same process setup, runs interleaved), to
compare a change side by side with the code before it.
"""

import argparse
import asyncio
import io
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import types
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHUNKS = 2000
READERS = 100
FEW_READERS = 10
PACED_GAP = 0.002
STAMP_STREAMS = 50
STAMP_EVENTS = 200
STAMP_GAP = 0.01
MANY = 2000
MANY_CHUNKS = 150
MANY_GAP = 0.05
HEAP = 200
MODEL = "bench/answer"

# -- upstream ------------------------------------------------------------------------


def token(i: int) -> str:
    return f"tok{i} é "


def chunk(content: str | None = None, finish: str | None = None, usage: bool = False) -> bytes:
    delta = {} if content is None else {"content": content}
    data: dict[str, Any] = {
        "id": "gen-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        data["usage"] = {
            "prompt_tokens": 5,
            "completion_tokens": CHUNKS,
            "total_tokens": 5 + CHUNKS,
        }
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def save_answer(folder: Path, name: str, model: str, chunks: int, gap: float) -> str:
    from rawsse.testing import Cassette, save_cassette

    pieces = [chunk(token(i)) for i in range(chunks)]
    pieces.append(chunk(finish="stop", usage=True) + b"data: [DONE]\n\n")
    cassette = Cassette.from_body(pieces, request_body={"model": model}, interval=gap)
    save_cassette(cassette, folder / f"{name}.jsonl")
    return "".join(token(i) for i in range(chunks))


BASELINE: dict[str, str] = {}
"""``--baseline REV``: the revision's name and the folder holding its ``rawsse`` package."""


def extract_baseline(rev: str, folder: Path) -> None:
    """rawsse's package as of git revision ``rev``, for servers run with ``baseline=True``."""
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "archive", rev, "src/rawsse"], cwd=repo, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    BASELINE.update(rev=rev, path=str(folder / "src"))


@contextmanager
def process(args: list[str], *, baseline: bool = False) -> Iterator[tuple[str, int]]:
    """A child process whose first stdout line starts with its URL; yields (url, pid).
    With ``baseline``, it imports rawsse as of ``--baseline REV``."""
    env = None
    if baseline:
        env = {**os.environ, "PYTHONPATH": BASELINE["path"]}
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if not line or not line[0].startswith("http://"):
            raise RuntimeError(f"{args[:4]} did not start: {line!r}")
        yield line[0].rstrip("/"), proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# -- the servers (run in child processes: --serve NAME) --------------------------------


def serve(name: str, upstream: str, models: list[str]) -> None:
    import uvicorn

    name, _, loop = name.partition("@")  # "relay-many@asyncio": the loop named

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8192)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)

    async def main() -> None:
        if name in ("stamp", "forward"):
            handler = stamp_upstream if name == "stamp" else forwarder(upstream)
            server = await asyncio.start_server(handler, sock=sock, backlog=8192)
            async with server:
                await server.serve_forever()
            return
        if name == "recipe":
            app: Any = recipe_app(upstream)
        else:
            app = relay_app(upstream, models, many=name.startswith("relay-many"))
        if name == "relay-gc":
            from rawsse._cli.relay import serving_gc

            serving_gc()
        if name in ("relay", "relay-gc"):
            app = gc_app(app)
        if name == "relay-many-heap":
            app = heap_app(app)
        servers: list[Any] = []
        if name in ("relay-many", "relay-many-traced"):
            app = open_streams_app(app, servers, traced=name.endswith("-traced"))
        # asgi3 named: the memory probe is a plain function returning the awaitable
        config = uvicorn.Config(
            app, log_level="error", lifespan="off", backlog=8192, interface="asgi3"
        )
        servers.append(uvicorn.Server(config))
        await servers[0].serve(sockets=[sock])

    # Every server on the same loop: uvloop where installed, as ``rawsse relay`` runs
    # (uvicorn takes httptools by itself when installed, for both servers).
    loop_run(loop)(main())


def loop_run(name: str = "") -> Any:
    """The event loop's ``run``: ``name`` ("asyncio", "uvloop"), else uvloop where installed."""
    if name == "asyncio":
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise
        return asyncio.run
    return uvloop.run


def recipe_app(upstream: str) -> Any:
    """The common recipe, as tutorials write it."""
    from fastapi import FastAPI, Request
    from fastapi.responses import StreamingResponse
    from openai import AsyncOpenAI

    app = FastAPI()
    client = AsyncOpenAI(base_url=upstream, api_key="unused", max_retries=0)

    @app.post("/chat")
    async def chat(request: Request) -> StreamingResponse:
        body = await request.json()

        async def tokens() -> Any:
            stream = await client.chat.completions.create(
                model=body["model"], messages=body["messages"], stream=True
            )
            async for part in stream:
                if part.choices and part.choices[0].delta.content:
                    yield f"data: {json.dumps({'token': part.choices[0].delta.content})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(tokens(), media_type="text/event-stream")

    return app


def relay_app(upstream: str, models: list[str], *, many: bool = False) -> Any:
    import httpx

    from rawsse import AsyncClient
    from rawsse.relay import RelayApp

    limits = None
    if many:  # the README's advice for thousands of streams: few kept-alive connections
        limits = httpx.Limits(max_connections=4096, max_keepalive_connections=16)
    client = AsyncClient(base_url=upstream, api_key="", retries=0, limits=limits)
    return RelayApp(client, models=models)


def gc_app(app: Any) -> Any:
    """``app`` with ``GET /gc``: the garbage collector's pauses over 1 ms since the
    last call (count, longest, total), timed by ``gc.callbacks``."""
    import gc

    started = [0.0]
    pauses: list[float] = []

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif (pause := time.perf_counter() - started[0]) > 0.001:
            pauses.append(pause)

    gc.callbacks.append(timed)

    async def served(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/gc":
            await app(scope, receive, send)
            return
        report = {"count": len(pauses), "max": max(pauses, default=0.0), "total": sum(pauses)}
        pauses.clear()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(report).encode()})

    return served


def heap_app(app: Any) -> Any:
    """``app`` with ``GET /heap``: the traced heap's size and, with ``?top=N``, where
    it grew since the last ``/heap`` call (tracemalloc runs from here on)."""
    import gc
    import tracemalloc

    tracemalloc.start(12)
    last = [tracemalloc.take_snapshot()]

    async def traced(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/heap":
            await app(scope, receive, send)
            return
        gc.collect()
        query = scope.get("query_string", b"").decode()
        top = int(query.split("=")[1]) if query.startswith("top=") else 0
        report: dict[str, Any] = {"current": tracemalloc.get_traced_memory()[0]}
        snapshot = tracemalloc.take_snapshot()
        if top:  # by the innermost line of rawsse that allocated, and by the module that did
            lines: dict[str, list[int]] = {}
            files: dict[str, list[int]] = {}
            for st in snapshot.compare_to(last[0], "traceback"):
                innermost = st.traceback[-1]  # oldest first
                ours = [f for f in st.traceback if "/rawsse/" in f.filename] or [innermost]
                keys = (
                    (lines, f"{'/'.join(ours[-1].filename.rsplit('/', 2)[-2:])}:{ours[-1].lineno}"),
                    (files, "/".join(innermost.filename.rsplit("/", 2)[-2:])),
                )
                for table, key in keys:
                    cell = table.setdefault(key, [0, 0])
                    cell[0] += st.size_diff
                    cell[1] += st.count_diff
            for name, table in (("top", lines), ("files", files)):
                ranked = sorted(table.items(), key=lambda kv: -kv[1][0])[:top]
                report[name] = [(k, size, count) for k, (size, count) in ranked]
        last[0] = snapshot
        body = json.dumps(report).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return traced


def open_streams_app(app: Any, servers: list[Any], *, traced: bool) -> Any:
    """``app`` that samples, every 50 ms, the process's RSS (and, ``traced``, the
    traced heap) with the count of ``POST /chat`` requests open in the uvicorn
    ``servers`` (and of those streaming: answer head sent).  The counts are read
    from uvicorn's own connection state, so nothing is added per request (no
    wrapper frame, no closure) to the memory being measured.

    ``GET /mem`` reports the figures now (``?gc=1``: after a full collection)
    and over the samples since the last ``/mem``: the most requests open at once
    (``max_open``), the most streaming at once, the peak RSS, and the heap when
    the most were open."""
    import gc
    import tracemalloc

    if traced:
        tracemalloc.start(1)
    window: dict[str, float] = {}
    page = os.sysconf("SC_PAGE_SIZE")

    def now_rss() -> int:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * page

    def heap() -> int:
        return tracemalloc.get_traced_memory()[0] if traced else 0

    def reset() -> None:
        window.update(
            max_open=0,
            max_streaming=0,
            peak_rss=0,
            open_at_peak=0,
            rss_at_max_open=0,
            heap_at_max_open=0,
        )

    def counts() -> tuple[int, int]:
        opened = streaming = 0
        for server in servers:
            for protocol in server.server_state.connections:
                cycle = getattr(protocol, "cycle", None)
                if cycle is None or cycle.response_complete or cycle.scope["path"] != "/chat":
                    continue
                opened += 1
                streaming += bool(cycle.response_started)
        return opened, streaming

    def sample() -> None:
        opened, streaming = counts()
        rss_now = now_rss()
        if opened >= window["max_open"]:
            window["max_open"] = opened
            window["heap_at_max_open"] = heap()
            window["rss_at_max_open"] = rss_now
        window["max_streaming"] = max(window["max_streaming"], streaming)
        if rss_now > window["peak_rss"]:
            window["peak_rss"] = rss_now
            window["open_at_peak"] = opened

    async def sampler() -> None:
        while True:
            sample()
            await asyncio.sleep(0.05)

    reset()
    started: list[Any] = []

    def counted(scope: Any, receive: Any, send: Any) -> Any:
        if not started:
            started.append(asyncio.ensure_future(sampler()))
        if scope["type"] == "http" and scope["path"] == "/mem":
            return report(scope, send)
        return app(scope, receive, send)  # awaited by uvicorn: no frame of ours per request

    async def report(scope: Any, send: Any) -> None:
        query = scope.get("query_string", b"")
        if query.startswith(b"profile="):  # where the process's CPU goes for N seconds
            import cProfile
            import io
            import pstats

            profile = cProfile.Profile()
            profile.enable()
            await asyncio.sleep(float(query.split(b"=")[1]))
            profile.disable()
            text = io.StringIO()
            pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(25)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": text.getvalue().encode()})
            return
        unreachable = gc.collect() if query == b"gc=1" else 0
        sample()
        figures: dict[str, Any] = {"rss": now_rss(), "heap": heap(), "open": counts()[0]}
        figures["unreachable"] = unreachable  # cyclic garbage the collection found
        figures.update(window)
        found = None
        if query == b"garbage=1":  # the cyclic garbage, kept to be counted
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            gc.set_debug(0)
            found, gc.garbage[:] = list(gc.garbage), []
        if query in (b"census=1", b"garbage=1"):  # objects by type: count, bytes
            census: dict[str, list[int]] = {}
            for obj in gc.get_objects() if found is None else found:
                kind = type(obj)
                name = f"{kind.__module__}.{kind.__qualname__}"
                if kind in (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType):
                    name += f" {obj.__qualname__}"  # type: ignore[attr-defined]
                cell = census.setdefault(name, [0, 0])
                cell[0] += 1
                cell[1] += sys.getsizeof(obj)
            figures["census"] = sorted(census.items(), key=lambda kv: -kv[1][1])[:200]
        reset()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(figures).encode()})

    return counted


def forwarder(upstream: str) -> Any:
    """A bare TCP forwarder to ``upstream``: the cost of one more process between
    the client and upstream on this machine, with no work done per event."""
    host, port = urlsplit(upstream).hostname, urlsplit(upstream).port

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return forward


async def stamp_upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An OpenAI-compatible upstream whose tokens are its clock at sending."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        )
        for _ in range(STAMP_EVENTS):
            await asyncio.sleep(STAMP_GAP)
            data = chunk(f"{time.monotonic():.6f} ")
            writer.write(b"%x\r\n%b\r\n" % (len(data), data))
        data = chunk(finish="stop") + b"data: [DONE]\n\n"
        writer.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(data), data))
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


# -- the client ----------------------------------------------------------------------


async def read_stream(
    port: int, path: str, body: bytes, kind: str, stamps: list[float] | None = None
) -> tuple[int, str, int]:
    """POST and read to the end; returns (status, joined text, downstream chunks)."""
    import h11

    from rawsse import ServerSentEvent, SSEDecoder

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = h11.Connection(h11.CLIENT)
    headers = [
        ("host", "bench"),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
    ]
    writer.write(
        conn.send(h11.Request(method="POST", target=path, headers=headers))
        + conn.send(h11.Data(data=body))
        + conn.send(h11.EndOfMessage())
    )
    decoder = SSEDecoder()
    parts: list[str] = []
    status = 0
    reads = 0
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(262144))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                reads += 1
                now = time.monotonic()
                for item in decoder.feed(bytes(event.data)):
                    if not isinstance(item, ServerSentEvent) or item.data == "[DONE]":
                        continue
                    text = _text(kind, item)
                    if text:
                        parts.append(text)
                        if stamps is not None:
                            stamps.append(now - float(text))
            else:
                break
    except (h11.RemoteProtocolError, ConnectionError) as exc:  # reported as a failed stream
        return -1, f"{type(exc).__name__}: {exc}", reads
    finally:
        writer.close()
    return status, "".join(parts), reads


def _text(kind: str, item: Any) -> str:
    data = json.loads(item.data)
    if kind == "relay":
        return str(data["text"]) if item.event == "text" else ""
    if kind == "recipe":
        return str(data["token"])
    choices = data.get("choices") or [{}]
    return str(choices[0].get("delta", {}).get("content") or "")


async def run_readers(
    url: str,
    kind: str,
    model: str,
    readers: int,
    ramp: float = 0.0,
    stamps: list[float] | None = None,
) -> list[tuple[int, str, int]]:
    port = int(url.rsplit(":", 1)[1])
    path = "/chat/completions" if kind == "direct" else "/chat"
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    tasks = []
    for _ in range(readers):
        tasks.append(asyncio.ensure_future(read_stream(port, path, body, kind, stamps)))
        if ramp:
            await asyncio.sleep(ramp)
    return await asyncio.gather(*tasks)


# -- the measurements ------------------------------------------------------------------


def kind_of(name: str) -> str:
    """How a server's stream reads ("relay, serving_gc" and the baseline are relays)."""
    return "relay" if name == "baseline" else name.split(",")[0].split()[0]


def cpu_per_token(
    upstream: str, shape: str, readers: int, want: str, runs: int
) -> dict[str, tuple[float, float]]:
    """Best CPU µs per token and downstream chunks per token, per server."""
    models = [f"{MODEL}-{shape}"]
    best: dict[str, tuple[float, float]] = {}
    me = [sys.executable, __file__, "--upstream", upstream, "--models", models[0], "--serve"]
    with ExitStack() as stack:
        servers = {
            "recipe": stack.enter_context(process([*me, "recipe"])),
            "relay": stack.enter_context(process([*me, "relay"])),
        }
        if BASELINE:
            servers["baseline"] = stack.enter_context(process([*me, "relay"], baseline=True))
        for name, (url, _) in servers.items():  # warm up: imports, pools
            asyncio.run(run_readers(url, kind_of(name), models[0], 5))
        for _ in range(runs):
            for name, (url, pid) in servers.items():
                before = cpu_seconds(pid)
                # Readers arrive 2 ms apart: the fixture server's accept queue holds 100.
                results = asyncio.run(
                    run_readers(url, kind_of(name), models[0], readers, ramp=0.002)
                )
                spent = cpu_seconds(pid) - before
                bad = [r for r in results if r[0] != 200 or r[1] != want]
                if bad:  # reported, and the run does not count
                    print(f"<!-- {name} {shape}: {len(bad)} streams failed: {bad[0][:2]!r} -->")
                    continue
                tokens = readers * CHUNKS
                per = spent / tokens * 1e6
                chunks = sum(r[2] for r in results) / tokens
                if name not in best or per < best[name][0]:
                    best[name] = (per, chunks)
    return best


# How the 50 streams start: all at once, so their events fall due together every
# STAMP_GAP (the worst case: one event loop relays 50 events back to back), or
# spread evenly over one STAMP_GAP, as the streams of independent users are.
STARTS = {"together": 0.0, "spread": STAMP_GAP / STAMP_STREAMS}
FORWARDER = "direct, through a TCP forwarder"
WORKERS = "relay, 2 workers (rawsse relay --workers 2)"


def relay_command(upstream: str, *, workers: int) -> list[str]:
    """``rawsse relay`` itself (uvloop where installed, its collector tuned)."""
    rawsse = [sys.executable, "-m", "rawsse", "relay", "--upstream", upstream]
    return [*rawsse, "--models", MODEL, "--port", "0", "--workers", str(workers)]


def latency(upstream_stamp: str, runs: int) -> dict[tuple[str, str], tuple[float, float, str]]:
    """p50 and p99 ms per path and start shape, and the relay processes' collector
    pauses meanwhile: paths alternate, and each one's run with the lowest p99 counts."""
    import urllib.request

    out: dict[tuple[str, str], tuple[float, float, str]] = {}
    me = [sys.executable, __file__, "--upstream", upstream_stamp, "--models", MODEL, "--serve"]
    with ExitStack() as stack:
        paths = [
            ("direct", upstream_stamp),
            (FORWARDER, stack.enter_context(process([*me, "forward"]))[0]),
            ("recipe", stack.enter_context(process([*me, "recipe"]))[0]),
            ("relay", stack.enter_context(process([*me, "relay"]))[0]),
            ("relay, serving_gc", stack.enter_context(process([*me, "relay-gc"]))[0]),
            (WORKERS, stack.enter_context(process(relay_command(upstream_stamp, workers=2)))[0]),
        ]
        if BASELINE:
            rev = BASELINE["rev"]
            for name, serve_as in (
                (f"relay {rev}", "relay"),
                (f"relay {rev}, serving_gc", "relay-gc"),
            ):
                url = stack.enter_context(process([*me, serve_as], baseline=True))[0]
                paths.append((name, url))
        for name, url in paths:  # warm up: imports, pools
            asyncio.run(run_readers(url.removesuffix("/api/v1"), kind_of(name), MODEL, 2))
        for _, start, (name, url) in itertools.product(range(runs), STARTS, paths):
            base = url.removesuffix("/api/v1")
            kind = kind_of(name)
            counted = kind == "relay" and name != WORKERS  # served with the /gc probe
            if counted:
                urllib.request.urlopen(f"{base}/gc").close()  # start counting now
            stamps: list[float] = []
            ramp = STARTS[start]
            results = asyncio.run(
                run_readers(base, kind, MODEL, STAMP_STREAMS, ramp=ramp, stamps=stamps)
            )
            assert all(r[0] == 200 for r in results), results[:1]
            stamps.sort()
            pauses = "—"
            if counted:
                with urllib.request.urlopen(f"{base}/gc") as response:
                    gc = json.load(response)
                pauses = f"{gc['count']} ({gc['max'] * 1000:.1f} / {gc['total'] * 1000:.1f})"
            p99 = stamps[int(len(stamps) * 0.99)] * 1000
            if (name, start) not in out or p99 < out[name, start][1]:
                out[name, start] = (statistics.median(stamps) * 1000, p99, pauses)
    return out


def many_streams(
    upstream: str, want: str, count: int, loop: str, *, traced: bool = False, rounds: int = 1
) -> dict[str, Any]:
    """``rounds`` of ``count`` concurrent relayed streams through one relay process on
    ``loop``: errors, wall time, overlap, memory at the peak and after each round."""
    import urllib.request

    model = f"{MODEL}-many"
    name = "relay-many-traced" if traced else "relay-many"
    me = [sys.executable, __file__, "--upstream", upstream, "--models", model, "--serve"]
    with process([*me, f"{name}@{loop}"]) as (url, _):

        def mem(query: str = "") -> dict[str, Any]:
            with urllib.request.urlopen(f"{url}/mem{query}") as response:
                return dict(json.load(response))

        asyncio.run(run_readers(url, "relay", model, 20))
        time.sleep(0.5)  # the warm-up's readers end their [DONE] grace
        before = mem("?gc=1")
        out: dict[str, Any] = {"before": before, "rounds": []}
        for _ in range(rounds):
            started = time.monotonic()
            # tracemalloc slows the relay: readers arrive 5 ms apart, not 2
            ramp = 0.005 if traced else 0.002
            results = asyncio.run(run_readers(url, "relay", model, count, ramp=ramp))
            elapsed = time.monotonic() - started
            time.sleep(0.5)
            after = mem("?gc=1")  # the round's window, then the figures after a collection
            failed = [r for r in results if r[0] != 200 or r[1] != want]
            if failed:
                print(f"<!-- {loop}: first failure: {failed[0][:2]!r} -->")
            out["rounds"].append({"errors": len(failed), "elapsed": elapsed, **after})
    return out


def many_row(count: int, loop: str, plain: dict[str, Any], traced: dict[str, Any]) -> str:
    """One table row: the plain run's (RSS), the traced run's (heap)."""
    first = plain["rounds"][0]
    before = plain["before"]
    most = max(1, first["max_open"])
    at_most = (first["rss_at_max_open"] - before["rss"]) / most
    high = (first["peak_rss"] - before["rss"]) / most
    growth = [(r["rss"] - before["rss"]) / 2**20 for r in plain["rounds"]]
    heap_before = traced["before"]["heap"]
    heap_first = traced["rounds"][0]
    heap_per = (heap_first["heap_at_max_open"] - heap_before) / max(1, heap_first["max_open"])
    heap_growth = [(r["heap"] - heap_before) / 2**10 for r in traced["rounds"]]
    errors = sum(r["errors"] for r in (*plain["rounds"], *traced["rounds"]))
    walls = " / ".join(f"{r['elapsed']:.1f}" for r in plain["rounds"])
    overlap = f"{first['max_open']} / {first['max_streaming']}"
    return (
        f"| {loop} | {count} | {errors} | {walls} | {overlap} | {at_most / 1024:.1f} "
        f"({at_most:,.0f} B) | {high / 1024:.1f} | {heap_per / 1024:.1f} "
        f"({heap_first['max_open']} open) | {' / '.join(f'{g:+.1f}' for g in growth)} | "
        f"{' / '.join(f'{g:+.0f}' for g in heap_growth)} |"
    )


def core_heap(streams: int = 200, tokens: int = 140) -> float:
    """KiB one stream's sans-I/O state (``StreamCore``: decoder, accumulated answer,
    metrics) holds after ``tokens`` text deltas, measured in this process."""
    import tracemalloc

    from rawsse import Timeouts
    from rawsse._base_client import StreamCore
    from rawsse._httpx_adapter import translate_error

    body = [chunk(token(i)) for i in range(tokens)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cores = []
    for _ in range(streams):
        core = StreamCore(
            timeouts=Timeouts(),
            now=0.0,
            retries=0,
            in_band_error="raise",
            on_metrics=None,
            retry_delay=1.0,
            max_retry_delay=1.0,
            translate=translate_error,
        )
        core.begin_attempt(0.0)
        for i, data in enumerate(body):
            core.feed(data, i * MANY_GAP)
        cores.append(core)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held / streams / 1024


def heap(upstream: str, want: str, count: int, loop: str) -> None:
    """Print the relay process's traced heap per open stream, and where it lies."""
    import urllib.request

    print(f"one stream's StreamCore after 140 text deltas: {core_heap():.1f} KiB\n")
    me = [sys.executable, __file__, "--upstream", upstream, "--models", f"{MODEL}-many", "--serve"]
    with process([*me, f"relay-many-heap@{loop}"]) as (url, _):

        def get(query: str = "") -> Any:
            with urllib.request.urlopen(f"{url}/heap{query}") as response:
                return json.load(response)

        asyncio.run(run_readers(url, "relay", f"{MODEL}-many", 20))
        before = get()["current"]

        async def main() -> tuple[list[tuple[int, str, int]], Any]:
            # tracemalloc slows the relay: readers arrive 5 ms apart
            readers = asyncio.ensure_future(
                run_readers(url, "relay", f"{MODEL}-many", count, ramp=0.005)
            )
            # every stream open, the first one about to end: most of each answer held
            await asyncio.sleep(MANY_CHUNKS * MANY_GAP - 0.5)
            during = await asyncio.to_thread(get, "?top=20")
            return await readers, during

        results, during = asyncio.run(main())
    failed = [r for r in results if r[0] != 200 or r[1] != want]
    if failed:
        print(f"<!-- first failure: {failed[0][:2]!r} -->")
    # A failed stream failed at its start (upstream, slowed by tracemalloc, timed
    # out): it held nothing at the snapshot.
    opened = count - len(failed)
    print(
        f"errors {len(failed)}; Python heap per open stream "
        f"{(during['current'] - before) / opened / 1024:.1f} KiB (tracemalloc, {opened} open)\n"
    )
    for name, title in (("files", "module that allocated"), ("top", "rawsse's innermost line")):
        print(f"| {title} | KiB per stream | objects per stream |")
        print("|---|---|---|")
        for where, size, objects in during[name]:
            print(f"| {where} | {size / opened / 1024:.2f} | {objects / opened:.1f} |")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run, fewer streams")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="cpu,many,latency", help="sections, comma-separated")
    parser.add_argument(
        "--baseline", metavar="REV", help="also time the relay as of this git revision"
    )
    parser.add_argument("--loops", default="asyncio,uvloop", help="event loops of --only many,heap")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--models", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.upstream, args.models.split(","))
        return
    runs = 1 if args.quick else args.runs
    many = 200 if args.quick else MANY
    only = set(args.only.split(","))
    print(
        f"# relay vs the common recipe ({platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
        f"servers on {loop_run().__module__.split('.')[0]})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.baseline:
            extract_baseline(args.baseline, folder / "baseline")
        want = save_answer(folder, "bursts", f"{MODEL}-bursts", CHUNKS, 0.0)
        save_answer(folder, "paced", f"{MODEL}-paced", CHUNKS, PACED_GAP)
        want_many = save_answer(folder, "many", f"{MODEL}-many", MANY_CHUNKS, MANY_GAP)
        serve_cmd = [sys.executable, "-m", "rawsse", "serve", str(folder), "--port", "0"]
        with process(serve_cmd) as (upstream, _):
            if "heap" in only:
                for loop in args.loops.split(","):
                    print(f"\n## Python heap per open relayed stream ({HEAP} streams, {loop})\n")
                    heap(upstream, want_many, HEAP, loop)
            if "cpu" in only:
                cpu_table(upstream, want, runs)
            if "many" in only:
                many_table(upstream, want_many, many, args.loops.split(","))
        if "latency" in only:
            latency_table(runs)


def cpu_table(upstream: str, want: str, runs: int) -> None:
    print("\n## CPU of the server process per relayed token (coalescing off)\n")
    head = "| upstream shape | readers | recipe µs/token | relay µs/token | ratio "
    head += "| relay chunks/token |"
    if BASELINE:
        head += f" relay {BASELINE['rev']} µs/token (ratio, chunks/token) |"
    print(head)
    print("|---|---|---|---|---|---|" + ("---|" if BASELINE else ""))
    shapes = (("bursts", READERS), ("paced", READERS), ("paced", FEW_READERS))
    for shape, readers in shapes:
        best = cpu_per_token(upstream, shape, readers, want, runs)
        # A server whose every run lost streams has no figure (see the comments).
        cells = {n: f"{b[0]:.1f}" for n, b in best.items()}
        ratio = "—"
        if "recipe" in best and "relay" in best:
            ratio = f"{best['recipe'][0] / best['relay'][0]:.1f}×"
        chunks = f"{best['relay'][1]:.3f}" if "relay" in best else "—"
        row = f"| {shape} | {readers} | {cells.get('recipe', 'failed')} | "
        row += f"{cells.get('relay', 'failed')} | {ratio} | {chunks} |"
        if BASELINE:
            old = best.get("baseline")
            cell = "failed" if old is None else f"{old[0]:.1f}"
            if old is not None and "recipe" in best:
                cell += f" ({best['recipe'][0] / old[0]:.1f}×, {old[1]:.3f} chunks/token)"
            row += f" {cell} |"
        print(row, flush=True)


def many_table(upstream: str, want_many: str, many: int, loops: list[str]) -> None:
    print(
        f"\n## {many} concurrent relayed streams ({MANY_CHUNKS} chunks each, "
        f"{MANY_GAP * 1000:.0f} ms apart), per event loop\n"
    )
    print(
        "| loop | streams | errors | wall s (round 1 / 2) | most open / streaming at once "
        "| RSS per open stream, KiB (at the most open) | RSS high-water per open stream, KiB "
        f"| heap per open stream, KiB (traced, {many // 4} streams) "
        "| RSS after − before, MiB (round 1 / 2) | heap after − before, KiB (round 1 / 2) |"
    )
    print("|---|---:|---:|---|---|---:|---:|---:|---|---|")
    for loop in loops:
        plain = many_streams(upstream, want_many, many, loop, rounds=2)
        traced = many_streams(upstream, want_many, many // 4, loop, traced=True, rounds=2)
        print(many_row(many, loop, plain, traced), flush=True)


def latency_table(runs: int) -> None:
    stamp_cmd = [sys.executable, __file__, "--upstream", "-", "--models", "-", "--serve", "stamp"]
    with process(stamp_cmd) as (stamp, _):
        print(
            f"\n## Latency per event ({STAMP_STREAMS} streams, one event every "
            f"{STAMP_GAP * 1000:.0f} ms; upstream's clock to the client's)\n"
        )
        print(
            "| path | streams start | p50 ms | p99 ms | p99 added to direct, ms "
            "| p99 added to the forwarder, ms | collections over 1 ms (longest / total ms) |"
        )
        print("|---|---|---:|---:|---:|---:|---|")
        found = latency(stamp + "/api/v1", runs)
        for (name, start), (p50, p99, pauses) in sorted(
            found.items(), key=lambda item: list(STARTS).index(item[0][1])
        ):
            added = [
                "—" if name in (base, "direct") else f"{p99 - found[base, start][1]:+.2f}"
                for base in ("direct", FORWARDER)
            ]
            print(
                f"| {name} | {start} | {p50:.2f} | {p99:.2f} | {added[0]} | {added[1]} | {pauses} |"
            )


if __name__ == "__main__":
    main()
