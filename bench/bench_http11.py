"""HTTP/1.1 response reading: rawsse's sans-I/O reader vs h11 (as httpcore drives it).

Each case is one response, fed read by read as a connection would see it:

* ``sse``: chunked, one chunk (one ~230-byte SSE event) per read: the relay's case;
* ``packed``: chunked, 4 KiB reads holding several chunks (and chunks cut across reads);
* ``length``: a ``Content-Length`` body in 16 KiB reads;
* ``heads``: response heads alone (status line and 8 header lines), one per read.

h11 is driven the way httpcore's connection does it: ``receive_data`` per read, then
``next_event`` until ``NEED_DATA``, ``bytes(event.data)`` per ``Data``.  Both are
interleaved round by round, the best round is kept, and the heads and body bytes
are checked to be the same before any figure is printed.

    python bench/bench_http11.py [--rounds 7] [--events 20000]
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from collections.abc import Callable

import h11

from rawsse._http11_parse import ResponseParser

Reads = list[bytes]
Result = tuple[object, bytes]

HEAD = (
    b"HTTP/1.1 200 OK\r\ndate: Mon, 30 Nov 2026 15:00:00 GMT\r\n"
    b"content-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"x-request-id: 0123456789abcdef\r\nserver: upstream\r\nvary: accept-encoding\r\n"
    b"access-control-allow-origin: *\r\n"
)


def event(i: int) -> bytes:
    text = b'{"id":"gen-1","choices":[{"index":0,"delta":{"content":"token %d"}}]}' % i
    return b"data: " + text + b"\n\n" + b"x" * (230 - len(text) - 8)


def chunked(events: int) -> tuple[bytes, list[bytes]]:
    head = HEAD + b"transfer-encoding: chunked\r\n\r\n"
    chunks = [b"%x\r\n%b\r\n" % (len(e), e) for e in map(event, range(events))]
    return head, [*chunks, b"0\r\n\r\n"]


def case_sse(events: int) -> Reads:
    head, chunks = chunked(events)
    return [head, *chunks]


def case_packed(events: int) -> Reads:
    head, chunks = chunked(events)
    whole = b"".join(chunks)
    return [head] + [whole[i : i + 4096] for i in range(0, len(whole), 4096)]


def case_length(events: int) -> Reads:
    body = b"".join(map(event, range(events)))
    head = HEAD + b"content-length: %d\r\n\r\n" % len(body)
    return [head] + [body[i : i + 16384] for i in range(0, len(body), 16384)]


def case_heads(events: int) -> Reads:
    return [HEAD + b"content-length: 0\r\n\r\n"] * (events // 10)


def run_rawsse(reads: Reads) -> list[Result]:
    results: list[Result] = []
    parser = ResponseParser()
    head = None
    parts: list[bytes] = []
    for data in reads:
        if head is None:
            head = parser.feed_head(data)
            if head is None:
                continue
            data = b""
        body = parser.feed_body(data)
        if body:
            parts.append(body)
        if parser.done:
            results.append(((head.status, head.headers), b"".join(parts)))
            parser = ResponseParser()
            head = None
            parts = []
    return results


def run_h11(reads: Reads) -> list[Result]:
    results: list[Result] = []
    conn = new_h11()
    head: object = None
    parts: list[bytes] = []
    for data in reads:
        conn.receive_data(data)
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                break
            if type(ev) is h11.Data:
                parts.append(bytes(ev.data))
            elif type(ev) is h11.Response:
                head = (ev.status_code, ev.headers.raw_items())
            elif type(ev) is h11.EndOfMessage:
                results.append((head, b"".join(parts)))
                conn = new_h11()
                parts = []
                break
    return results


def new_h11() -> h11.Connection:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=100 * 1024)
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    return conn


CASES: dict[str, Callable[[int], Reads]] = {
    "sse": case_sse,
    "packed": case_packed,
    "length": case_length,
    "heads": case_heads,
}
CONTENDERS: dict[str, Callable[[Reads], list[Result]]] = {"h11": run_h11, "rawsse": run_rawsse}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args(argv)
    print(
        f"best of {args.rounds} interleaved rounds; Python {platform.python_version()}, "
        f"h11 {h11.__version__}, {sys.platform}"
    )
    print(f"{'case':8} {'reads':>7} {'h11 µs/read':>12} {'rawsse µs/read':>15} {'ratio':>7}")
    for name, make in CASES.items():
        reads = make(args.events)
        expected = run_h11(reads)
        if run_rawsse(reads) != expected:
            sys.exit(f"{name}: rawsse and h11 disagree")
        best = dict.fromkeys(CONTENDERS, float("inf"))
        for _ in range(args.rounds):
            for who, fn in CONTENDERS.items():
                gc.collect()
                started = time.perf_counter()
                fn(reads)
                best[who] = min(best[who], time.perf_counter() - started)
        ours, theirs = best["rawsse"] / len(reads) * 1e6, best["h11"] / len(reads) * 1e6
        print(f"{name:8} {len(reads):7} {theirs:12.2f} {ours:15.2f} {theirs / ours:6.1f}x")


if __name__ == "__main__":
    main()
