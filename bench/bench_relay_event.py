"""The relay's own CPU per relayed event, without network, HTTP client or ASGI server.

What ``RelayApp`` does per event above the raw body bytes and below the server's
``send``: the pump's reading loop, ``StreamCore.feed`` (SSE and chat decoding,
accumulating, clocks, metrics) and ``RelayEncoder``.  50 streams share one event
loop (uvloop where installed); their events fall due together, one event per
upstream read (a live stream's shape).  Each stream is a ``Pump`` over a stand-in
upstream whose body yields one chunk per wakeup, and ``send`` only keeps the bytes.
A floor reads the same bodies and relays nothing; a contender's figure is its CPU
time per event minus the floor's, best of ``--rounds`` interleaved rounds.  Every
contender's sent bytes (the ``ttft`` figure aside) must be identical before any
figure is printed.

    python bench/bench_relay_event.py [--rounds 5] [--events 400] [--baseline REV]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import platform
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import ModuleType
from typing import Any

import rawsse
from bench_chat import load_baseline

STREAMS = 50
MODEL = "bench/answer"


def chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    data = {"id": "gen-bench", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    data["choices"] = [choice]
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def body(events: int) -> list[bytes]:
    tokens = [chunk(f"{1000 + i * 0.01:.6f} ") for i in range(events)]
    return [*tokens, chunk(finish="stop") + b"data: [DONE]\n\n"]


class Upstream:
    """A stream already open: its body yields one chunk each time ``gate`` opens."""

    def __init__(self, core: Any, chunks: list[bytes], gate: Callable[[], Awaitable[None]]):
        self.shell_core = core
        self._chunks = chunks
        self._gate = gate

    async def shell_open(self) -> AsyncIterator[bytes]:
        return self._body()

    async def _body(self) -> AsyncIterator[bytes]:
        for data in self._chunks:
            await self._gate()
            yield data

    async def shell_release(self) -> None:
        pass


def core(lib: ModuleType, now: float) -> Any:
    base = importlib.import_module(f"{lib.__name__}._base_client")
    adapter = importlib.import_module(f"{lib.__name__}._httpx_adapter")
    c = base.StreamCore(
        timeouts=lib.Timeouts(), now=now, retries=0, in_band_error="raise", on_metrics=None,
        retry_delay=0.5, max_retry_delay=8.0, translate=adapter.translate_error,
    )  # fmt: skip
    c.begin_attempt(now)
    assert c.check_head(200, {"content-type": "text/event-stream"})
    return c


async def relay(lib: ModuleType | None, chunks: list[bytes]) -> tuple[float, list[bytes]]:
    """CPU seconds for every stream's body, and what each stream sent (None: the floor)."""
    loop = asyncio.get_running_loop()
    tick: list[asyncio.Future[None]] = [loop.create_future()]

    async def gate() -> None:
        await tick[0]

    async def ticker() -> None:
        while not stopped:
            tick[0], due = loop.create_future(), tick[0]
            due.set_result(None)
            await asyncio.sleep(0)

    stopped = False
    ticking = asyncio.ensure_future(ticker())
    sent: list[list[bytes]] = [[] for _ in range(STREAMS)]
    start = time.process_time()
    if lib is None:

        async def read(i: int) -> None:
            async for data in await Upstream(None, chunks, gate).shell_open():
                sent[i].append(data)

        await asyncio.gather(*(read(i) for i in range(STREAMS)))
    else:
        pump_mod = importlib.import_module(f"{lib.__name__}.relay._pump")
        relay_mod = importlib.import_module(f"{lib.__name__}.relay")

        async def stream(i: int) -> None:
            def send(data: bytes) -> Awaitable[None]:
                sent[i].append(data)
                return _done

            now = loop.time()
            upstream = Upstream(core(lib, now), chunks, gate)
            encoder = relay_mod.RelayEncoder(now, stream_id=f"s{i}", heartbeat=None)
            pump = pump_mod.Pump(upstream, encoder, write_timeout=30.0, send=send)
            pump_mod.spawn(pump.read)
            pump_mod.spawn(pump.time)
            data: bytes | None = encoder.open(now)
            while data is not None:
                await send(data)
                data = await pump.next_bytes()
            pump.stop()
            await pump.wait_stopped()

        await asyncio.gather(*(stream(i) for i in range(STREAMS)))
    spent = time.process_time() - start
    stopped = True
    await ticking
    return spent, [b"".join(s) for s in sent]


class _Done:
    """An awaitable that is already done (what a server's ``send`` is when the socket takes
    the bytes at once)."""

    def __await__(self) -> Any:
        return iter(())


_done = _Done()
_TTFT = re.compile(rb'"ttft":[^,}]*')


def run_loop() -> Callable[[Any], Any]:
    try:
        import uvloop

        return uvloop.run  # type: ignore[no-any-return]
    except ImportError:
        return asyncio.run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=400, help="events per stream")
    parser.add_argument("--baseline", metavar="REV", help="also time rawsse as of this revision")
    args = parser.parse_args(argv)
    contenders: dict[str, ModuleType | None] = {"floor": None, "rawsse": rawsse}
    if args.baseline:
        contenders[f"rawsse {args.baseline}"] = load_baseline(args.baseline)
    chunks = body(args.events)
    run = run_loop()
    best: dict[str, float] = {}
    first: list[bytes] | None = None
    for _ in range(args.rounds):
        for name, lib in contenders.items():
            spent, sent = run(relay(lib, chunks))
            best[name] = min(best.get(name, spent), spent)
            if lib is None:
                continue
            sent = [_TTFT.sub(b'"ttft":0', s) for s in sent]
            if first is None:
                first = sent
                assert all(s.count(b"event: text\n") == args.events for s in sent), "lost"
            assert sent == first, f"{name} sent other bytes"  # every round, every contender
    per = {name: spent / (STREAMS * len(chunks)) * 1e6 for name, spent in best.items()}
    print(
        f"Relay CPU per event, {STREAMS} streams x {args.events} events, one event per read, "
        f"best of {args.rounds} interleaved rounds (CPU time); Python "
        f"{platform.python_version()}, {run.__module__.split('.')[0]}\n"
    )
    print("| contender | µs per event (minus the floor) | × rawsse |")
    print("|---|---:|---:|")
    own = per["rawsse"] - per["floor"]
    for name in contenders:
        if name == "floor":
            print(f"| floor: the bodies read, nothing relayed | {per[name]:.2f} (total) | — |")
        else:
            cost = per[name] - per["floor"]
            print(f"| {name} | {cost:.2f} | {cost / own:.2f}× |")


if __name__ == "__main__":
    main()
