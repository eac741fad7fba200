"""What recording costs a stream, and how fast cassettes load and replay.

python bench/bench_cassette.py

Recording: the same body through ``httpx.Client`` + ``MockTransport`` with and
without ``RecordingTransport`` in between (the difference is the tee: a clock read
and a list append per chunk, plus writing the file once at the end).
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

import httpx

from rawsse.testing import Cassette, RecordingTransport, ReplayTransport, load_cassette

ROOT = Path(__file__).resolve().parent.parent
BODY = (ROOT / "fixtures" / "long_text.sse").read_bytes()
CHUNK = 64
PIECES = [BODY[i : i + CHUNK] for i in range(0, len(BODY), CHUNK)]
URL = "https://bench.test/api/v1/chat/completions"


def handler(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=PIECES)


def stream(transport: httpx.BaseTransport) -> int:
    with (
        httpx.Client(transport=transport) as client,
        client.stream("POST", URL, json={"model": "m"}) as response,
    ):
        return sum(len(piece) for piece in response.iter_raw())


def best(fn: object, repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    print(f"Python {platform.python_version()}, httpx {httpx.__version__}, best of 15")
    print(f"body: fixtures/long_text.sse, {len(BODY):,} bytes in {len(PIECES):,} chunks")
    print()
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "bench.jsonl"
        plain = best(lambda: stream(httpx.MockTransport(handler)))
        recorded = best(lambda: stream(RecordingTransport(httpx.MockTransport(handler), target)))
        per_chunk = (recorded - plain) / len(PIECES) * 1e6
        print("| path | ms per stream | µs added per chunk |")
        print("|---|---:|---:|")
        print(f"| httpx + MockTransport | {plain * 1e3:.2f} | |")
        row = (
            f"| + RecordingTransport (incl. file write) | {recorded * 1e3:.2f} | {per_chunk:.2f} |"
        )
        print(row)
        print()
        loaded = best(lambda: load_cassette(target))
        size = target.stat().st_size
        print(f"load_cassette: {loaded * 1e3:.2f} ms for {size:,} bytes")
        cassette = Cassette.from_body(PIECES)
        for chunking in ("recorded", "byte"):
            t = best(lambda c=chunking: stream(ReplayTransport(cassette, chunking=c)), repeat=5)
            rate = len(BODY) / t / 1e6
            print(f"replay, chunking={chunking!r}: {t * 1e3:.1f} ms ({rate:.1f} MB/s)")


if __name__ == "__main__":
    main()
