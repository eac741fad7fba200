"""SSE decoding throughput: rawsse vs httpx-sse vs the openai SDK vs the openrouter SDK.

Every contender reads the same ~25 MB OpenRouter-style body, delivered as 4 KiB
chunks through an ``httpx.Response`` (the way each library is used), and touches
every event's data as a consumer would.  Contenders are interleaved round by
round, the best of the rounds is kept, and every contender's events are checked
to be the same before any figure is printed.

    python bench/bench_sse.py [--rounds 5] [--mb 25]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
from collections.abc import Callable

import httpx

import rawsse

CHUNK = 4096


def make_body(target_mb: float, seed: int = 7) -> bytes:
    """An OpenRouter-shaped stream: keep-alives, text deltas, [DONE].

    Like the real captures, the JSON is mostly ASCII with raw UTF-8 now and then
    (about one word in 50 here).
    """
    rng = random.Random(seed)
    words = ["the", "stream", "of", "tokens", "arrives", "quickly", "and", "each", "one"] * 5
    words += ["über", "数据", "—", "🙂", "naïve"]
    parts = [b": OPENROUTER PROCESSING\n\n"] * 3
    size = 0
    i = 0
    while size < target_mb * 1_000_000:
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
        chunk = {
            "id": "gen-1764000000-AbCdEfGhIjKlMnOpQrSt",
            "object": "chat.completion.chunk",
            "created": 1764000000,
            "model": "openai/gpt-4o",
            "provider": "OpenAI",
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": text},
                    "finish_reason": None,
                    "native_finish_reason": None,
                    "logprobs": None,
                }
            ],
        }
        line = b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"
        parts.append(line)
        size += len(line)
        i += 1
        if i % 200 == 0:
            parts.append(b": OPENROUTER PROCESSING\n\n")
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def response_for(chunks: list[bytes]) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=iter(chunks))


# Each contender returns (events, total data characters) and can collect the data.
Contender = Callable[[list[bytes], list[str] | None], tuple[int, int]]


def run_rawsse(chunks: list[bytes], sink: list[str] | None) -> tuple[int, int]:
    decoder = rawsse.SSEDecoder()
    count = total = 0
    event_type = rawsse.ServerSentEvent
    for chunk in response_for(chunks).iter_bytes():
        for item in decoder.feed(chunk):
            if type(item) is event_type:
                data = item.data
                count += 1
                total += len(data)
                if sink is not None:
                    sink.append(data)
    decoder.close()
    return count, total


def run_httpx_sse(chunks: list[bytes], sink: list[str] | None) -> tuple[int, int]:
    from httpx_sse import EventSource

    count = total = 0
    for event in EventSource(response_for(chunks)).iter_sse():
        data = event.data
        count += 1
        total += len(data)
        if sink is not None:
            sink.append(data)
    return count, total


def run_openai(chunks: list[bytes], sink: list[str] | None) -> tuple[int, int]:
    from openai._streaming import SSEDecoder

    count = total = 0
    for event in SSEDecoder().iter_bytes(response_for(chunks).iter_bytes()):
        data = event.data
        count += 1
        total += len(data)
        if sink is not None:
            sink.append(data)
    return count, total


def run_openrouter(chunks: list[bytes], sink: list[str] | None) -> tuple[int, int]:
    """Its public path also parses each payload as JSON and re-serializes the event."""
    from openrouter.utils.eventstreaming import stream_events

    count = total = 0
    for data in stream_events(response_for(chunks), lambda s: s):
        count += 1
        total += len(data)
        if sink is not None:
            sink.append(data)
    return count, total


def run_floor(chunks: list[bytes], sink: list[str] | None) -> tuple[int, int]:
    """Bare bytes.split on blank lines: no spec handling at all (LF-only input)."""
    count = total = 0
    rest = b""
    for chunk in response_for(chunks).iter_bytes():
        blocks = (rest + chunk).split(b"\n\n")
        rest = blocks.pop()
        for block in blocks:
            if block[:6] == b"data: ":
                data = block[6:].decode()
                count += 1
                total += len(data)
                if sink is not None:
                    sink.append(data)
    return count, total


CONTENDERS: dict[str, Contender] = {
    "rawsse": run_rawsse,
    "httpx-sse": run_httpx_sse,
    "openai SDK": run_openai,
    "openrouter SDK": run_openrouter,
    "floor: bytes.split": run_floor,
}


def timed(fn: Contender, chunks: list[bytes]) -> float:
    # CPU time of this process: other processes on the machine do not count.
    gc.collect()
    start = time.process_time()
    fn(chunks, None)
    return time.process_time() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=float, default=25.0)
    parser.add_argument(
        "--slow-mb",
        type=float,
        default=2.0,
        help="body size for contenders slower than 10 MB/s (the openrouter SDK scans byte by byte)",
    )
    args = parser.parse_args(argv)

    body = make_body(args.mb)
    small = make_body(args.slow_mb)
    chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]
    small_chunks = [small[i : i + CHUNK] for i in range(0, len(small), CHUNK)]

    # Same output from everyone (on the small body, so the slow contender is checked too).
    reference: list[str] = []
    run_rawsse(small_chunks, reference)
    for name, fn in CONTENDERS.items():
        got: list[str] = []
        fn(small_chunks, got)
        if name == "openrouter SDK":  # it hands over {"data": <parsed JSON>} as JSON text
            parsed = [json.loads(g)["data"] for g in got]
            same = parsed == [r if r == "[DONE]" else json.loads(r) for r in reference]
        else:
            same = got == reference
        if not same:
            sys.exit(f"{name} produced different events ({len(got)} vs {len(reference)})")
    events = run_rawsse(chunks, None)[0]

    # Probe each contender once to pick the body it can finish in reasonable time.
    bodies: dict[str, list[bytes]] = {}
    for name, fn in CONTENDERS.items():
        probe = timed(fn, small_chunks)
        bodies[name] = small_chunks if len(small) / probe < 10e6 else chunks

    best = dict.fromkeys(CONTENDERS, float("inf"))
    names = list(CONTENDERS)
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            best[name] = min(best[name], timed(CONTENDERS[name], bodies[name]))

    def mbps(name: str) -> float:
        size = len(body) if bodies[name] is chunks else len(small)
        return size / best[name] / 1e6

    def eps(name: str) -> float:
        n = events if bodies[name] is chunks else len(reference)
        return n / best[name]

    ours = mbps("rawsse")
    print(
        f"SSE decoding, {len(body) / 1e6:.1f} MB body ({events} events) in {CHUNK} B chunks, "
        f"best of {args.rounds} interleaved rounds; Python {platform.python_version()}, "
        f"{platform.machine()}"
    )
    print()
    print("| decoder | MB/s | events/s | rawsse is × faster |")
    print("|---|---:|---:|---:|")
    for name in names:
        ratio = ours / mbps(name)
        note = "" if bodies[name] is chunks else f" ({args.slow_mb:g} MB body)"
        print(f"| {name}{note} | {mbps(name):.1f} | {eps(name):,.0f} | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
