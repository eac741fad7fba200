"""The inspector scales linearly on hostile bodies: doubling the input roughly doubles the time.

    python bench/bench_inspect_hostile.py [--rounds 3] [--n 5000]

* many finishing choices: ``n`` choices, each with one token and then its own
  finish reason, one event each (it used to check every finished choice at
  every event: quadratic, 41 s for 5.4 MB).
* lone surrogates: ``n`` deltas each ending in an unpaired high surrogate, with
  the report turned into its JSON document (``to_dict``, mended for writing).

Sizes ``n`` and ``2n`` are interleaved, the best of ``--rounds`` is kept, and the
two runs' reports are checked to be the same shape before any figure is printed.
A ratio near 2 is linear; 4 would be quadratic.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

from rawsse.inspect import inspect_stream


def _event(payload: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def finishing_choices(n: int) -> int:
    body = bytearray()
    for i in range(n):
        body += _event({"choices": [{"index": i, "delta": {"content": "x"}}]})
        body += _event({"choices": [{"index": i, "delta": {}, "finish_reason": "stop"}]})
    report = inspect_stream(bytes(body) + b"data: [DONE]\n\n")
    return len(report.result.choices)


def lone_surrogates(n: int) -> int:
    lone = (
        b'data: {"choices": [{"index": 0, "delta": {"content": "a\\ud83d"}, "x": "\\udead"}]}\n\n'
    )
    report = inspect_stream(lone * n + b"data: [DONE]\n\n")
    return len(json.dumps(report.to_dict(), ensure_ascii=False).encode("utf-8")) // n


CASES: dict[str, Callable[[int], int]] = {
    "n choices, each finishing": finishing_choices,
    "n lone surrogates, report to JSON": lone_surrogates,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=5_000)
    args = parser.parse_args()
    n = args.n
    best: dict[tuple[str, int], float] = {}
    outputs: dict[tuple[str, int], int] = {}
    for _ in range(args.rounds):
        for name, fn in CASES.items():
            for size in (n, 2 * n):
                start = time.perf_counter()
                out = fn(size)
                seconds = time.perf_counter() - start
                key = (name, size)
                best[key] = min(best.get(key, float("inf")), seconds)
                if outputs.setdefault(key, out) != out:
                    raise SystemExit(f"{name}: output changed between rounds")
    first = next(iter(CASES))
    small, large = outputs[(first, n)], outputs[(first, 2 * n)]
    if large != 2 * small:
        raise SystemExit(f"{first}: {large} choices is not twice {small}")
    print(
        f"Inspector scaling, n = {n:,}, best of {args.rounds} interleaved rounds; "
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
