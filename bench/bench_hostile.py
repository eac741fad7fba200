"""Hostile input scales linearly: doubling it roughly doubles the time.

    python bench/bench_hostile.py [--rounds 5] [--n 20000]

* resume after malformed payloads: one batch of ``n`` bad payloads, each followed
  by a good delta, fed in one call; the caller catches each ``MalformedChunk``
  and resumes with ``feed(b"")`` (the decoder hands back the rest of the batch).
* surrogate pairs split across deltas: ``n`` emoji, each cut between its UTF-16
  halves, against the same text sent whole (the slow path's cost per delta).
* snapshots: ``ChatAccumulator.result()`` after every event of ``n`` deltas
  spread over 8 choices, text kept short (what it costs when texts do not grow).

Sizes ``n`` and ``2n`` are interleaved, the best of ``--rounds`` is kept, and the
two runs' outputs are checked to be the same shape before any figure is printed.
A ratio near 2 is linear; 4 would be quadratic.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

from rawsse import ChatAccumulator, ChatDecoder, MalformedChunk, TextDelta

BAD = b'data: {"choices": 5}\n\n'
GOOD = b'data: {"choices": [{"index": 0, "delta": {"content": "x"}}]}\n\n'


def resume(n: int) -> int:
    decoder = ChatDecoder()
    events = 0
    data = (BAD + GOOD) * n
    while True:
        try:
            events += len(decoder.feed(data))
        except MalformedChunk as exc:
            events += len(exc.events)
            data = b""
            continue
        return events


def split_pairs(n: int) -> int:
    halves = b'data: {"choices": [{"delta": {"content": "a\\ud83d"}}]}\n\n'
    halves += b'data: {"choices": [{"delta": {"content": "\\ude00b"}}]}\n\n'
    decoder = ChatDecoder()
    events = decoder.feed(halves * n) + decoder.close()
    return sum(len(e.text) for e in events if isinstance(e, TextDelta))


def snapshots(n: int) -> int:
    accumulator = ChatAccumulator()
    total = 0
    for i in range(n):
        accumulator.add(TextDelta(i % 8, "x" if i < 64 else ""))
        total += len(accumulator.result().choices)
    return total


CASES: dict[str, Callable[[int], int]] = {
    "resume after n malformed payloads": resume,
    "n surrogate pairs split across deltas": split_pairs,
    "result() after each of n events": snapshots,
}


def timed(fn: Callable[[int], int], n: int) -> tuple[float, int]:
    start = time.perf_counter()
    out = fn(n)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    n = args.n
    best: dict[tuple[str, int], float] = {}
    outputs: dict[tuple[str, int], int] = {}
    for _ in range(args.rounds):
        for name, fn in CASES.items():
            for size in (n, 2 * n):
                seconds, out = timed(fn, size)
                key = (name, size)
                best[key] = min(best.get(key, float("inf")), seconds)
                if outputs.setdefault(key, out) != out:
                    raise SystemExit(f"{name}: output changed between rounds")
    for name in CASES:
        small, large = outputs[(name, n)], outputs[(name, 2 * n)]
        if name != "result() after each of n events" and large != 2 * small:
            raise SystemExit(f"{name}: {large} is not twice {small}")
    print(
        f"Hostile-input scaling, n = {n:,}, best of {args.rounds} interleaved rounds; "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    print()
    print("| case | n | 2n | 2n / n |")
    print("|---|---:|---:|---:|")
    for name in CASES:
        a, b = best[(name, n)], best[(name, 2 * n)]
        print(f"| {name} | {a * 1e3:.1f} ms | {b * 1e3:.1f} ms | {b / a:.2f} |")


if __name__ == "__main__":
    main()
