"""Chat-event decoding throughput: rawsse's ChatDecoder vs a json.loads floor vs the openai SDK.

Every contender reads the same OpenRouter-style body (role + text deltas with
``logprobs: null`` on every chunk, keep-alives, a finish chunk, a usage chunk,
``[DONE]``) in 4 KiB chunks and builds the full text, so every one does the
same useful work.  Contenders are interleaved round by round, the best round is
kept, and every contender's text (and finish reason) must be identical before
any figure is printed.

    python bench/bench_chat.py [--rounds 5] [--mb 10] [--sdk-mb 1] [--shape openrouter|openai]
                               [--baseline REV]

Times are CPU time of this process (``time.process_time``): every contender is
single-threaded and CPU-bound, and CPU time is the figure that other work on a
shared machine disturbs least.

Contenders:

* rawsse ChatDecoder: typed events, consumed and dropped (what a streaming UI does);
* + ChatAccumulator: the same, also assembling the final ``ChatResult``;
* parse_chat_stream: every event kept in one list, then accumulated;
* floor: ``bytes.split`` on blank lines + one ``json.loads`` per event, nothing
  else (no SSE rules, no validation, no events) — the pure-Python ceiling;
* floor, chunks kept: the floor, keeping every parsed chunk dict alive (what
  carrying raw chunks on every event would cost: garbage-collector pressure);
* floor with json's scanner: the floor calling ``json.JSONDecoder().scan_once``
  (the C scanner inside ``json.loads``) directly, as rawsse does — the honest
  ceiling for rawsse, which skips ``json.loads``'s Python wrapper;
* openai SDK: ``client.chat.completions.create(stream=True)`` through its own
  HTTP client (httpx2) with a mock transport that streams the same chunks;
* with ``--baseline REV``: rawsse's ChatDecoder (and + ChatAccumulator) as of git
  revision REV, loaded side by side from ``git archive``, to measure a change
  against an earlier version in the same interleaved rounds.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import io
import json
import platform
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import rawsse

CHUNK = 4096

Contender = Callable[[list[bytes]], tuple[int, str, str | None]]
"""Runs one stream; returns (events seen, full text, finish reason)."""


def make_body(target_mb: float, seed: int = 7, shape: str = "openrouter") -> bytes:
    """An OpenRouter-style body, or (``shape="openai"``) OpenAI's own, whose every chunk
    carries unmodelled fields (``system_fingerprint``, ``obfuscation``) and ``usage: null``."""
    rng = random.Random(seed)
    words = ["the", "stream", "of", "tokens", "arrives", "quickly", "über", "naïve", "数据", "🙂"]
    head: dict[str, Any] = {
        "id": "gen-1764000000-AbCdEfGhIjKlMnOpQrSt",
        "provider": "OpenAI",
        "model": "openai/gpt-4o",
        "object": "chat.completion.chunk",
        "created": 1764000000,
    }
    if shape == "openai":
        head = {
            "id": "chatcmpl-AbCdEfGhIjKlMnOpQrSt",
            "object": "chat.completion.chunk",
            "created": 1764000000,
            "model": "gpt-4o-mini-2024-07-18",
            "service_tier": "default",
            "system_fingerprint": "fp_560af6e559",
        }

    def line(choice: dict[str, Any], **extra: Any) -> bytes:
        chunk = {**head, "choices": [choice], **extra}
        if shape == "openai":
            chunk.setdefault("usage", None)
            chunk["obfuscation"] = "".join(rng.choice("abcdefXYZ0123") for _ in range(8))
        return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"

    parts = [b": OPENROUTER PROCESSING\n\n"] * 3
    size = i = 0
    while size < target_mb * 1_000_000:
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 4))) + " "
        part = line(
            {
                "index": 0,
                "delta": {"role": "assistant", "content": text},
                "finish_reason": None,
                "native_finish_reason": None,
                "logprobs": None,
            }
        )
        parts.append(part)
        size += len(part)
        i += 1
        if i % 200 == 0:
            parts.append(b": OPENROUTER PROCESSING\n\n")
    done = {"role": "assistant", "content": ""}
    parts.append(
        line({"index": 0, "delta": done, "finish_reason": "stop", "native_finish_reason": "stop"})
    )
    usage = {"prompt_tokens": 12, "completion_tokens": i, "total_tokens": 12 + i, "cost": 0.0012}
    parts.append(line({"index": 0, "delta": done, "finish_reason": None}, usage=usage))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def run_decoder(chunks: list[bytes], lib: ModuleType = rawsse) -> tuple[int, str, str | None]:
    decoder = lib.ChatDecoder()
    text_delta, finish = lib.TextDelta, lib.Finish
    pieces: list[str] = []
    reason = None
    count = 0
    for chunk in chunks:
        events = decoder.feed(chunk)
        count += len(events)
        for event in events:
            if type(event) is text_delta:
                pieces.append(event.text)
            elif type(event) is finish:
                reason = event.reason
    decoder.close()
    return count, "".join(pieces), reason


def run_accumulator(chunks: list[bytes], lib: ModuleType = rawsse) -> tuple[int, str, str | None]:
    decoder = lib.ChatDecoder()
    accumulator = lib.ChatAccumulator()
    add = accumulator.add
    count = 0
    for chunk in chunks:
        events = decoder.feed(chunk)
        count += len(events)
        for event in events:
            add(event)
    decoder.close()
    result = accumulator.result()
    return count, result.text, result.choices[0].finish_reason


def run_parse(chunks: list[bytes]) -> tuple[int, str, str | None]:
    events = rawsse.parse_chat_stream(chunks)
    result = rawsse.accumulate(events)
    return len(events), result.text, result.choices[0].finish_reason


def _floor(
    chunks: list[bytes], keep: list[Any] | None, loads: Callable[[bytes], Any] = json.loads
) -> tuple[int, str, str | None]:
    pieces: list[str] = []
    reason = None
    count = 0
    rest = b""
    for chunk in chunks:
        blocks = (rest + chunk).split(b"\n\n")
        rest = blocks.pop()
        for block in blocks:
            if block[:6] != b"data: " or block == b"data: [DONE]":
                continue
            obj = loads(block[6:])
            count += 1
            if keep is not None:
                keep.append(obj)
            for choice in obj["choices"]:
                content = choice["delta"].get("content")
                if content:
                    pieces.append(content)
                if choice.get("finish_reason"):
                    reason = choice["finish_reason"]
    return count, "".join(pieces), reason


def run_floor(chunks: list[bytes]) -> tuple[int, str, str | None]:
    return _floor(chunks, None)


def run_floor_kept(chunks: list[bytes]) -> tuple[int, str, str | None]:
    return _floor(chunks, [])


_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def run_floor_scanner(chunks: list[bytes]) -> tuple[int, str, str | None]:
    """The floor with json's C scanner called directly, as rawsse does (no json.loads wrapper)."""
    return _floor(chunks, None, lambda b: _scan(b.decode(), 0)[0])


def run_openai(chunks: list[bytes]) -> tuple[int, str, str | None]:
    import httpx2
    import openai

    def iterate() -> Iterator[bytes]:
        yield from chunks

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=iterate()
        )

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    client = openai.OpenAI(api_key="test", base_url="http://test/v1", http_client=http)
    stream = client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    pieces: list[str] = []
    reason = None
    count = 0
    for chunk in stream:
        count += 1
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                reason = choice.finish_reason
    http.close()
    return count, "".join(pieces), reason


CONTENDERS: dict[str, Contender] = {
    "rawsse ChatDecoder": run_decoder,
    "rawsse ChatDecoder + ChatAccumulator": run_accumulator,
    "rawsse parse_chat_stream + accumulate (all events kept)": run_parse,
    "floor: split + json.loads": run_floor,
    "floor, every parsed chunk kept": run_floor_kept,
    "floor with json's scanner called directly": run_floor_scanner,
    "openai SDK Stream": run_openai,
}
SLOW = {"openai SDK Stream"}


def load_baseline(rev: str) -> ModuleType:
    """rawsse's package as of git revision ``rev``, imported as ``rawsse_baseline``."""
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "archive", rev, "src/rawsse"], cwd=repo, capture_output=True, check=True
    ).stdout
    root = Path(tempfile.mkdtemp(prefix="rawsse-baseline-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    (root / "src" / "rawsse").rename(root / "rawsse_baseline")
    sys.path.insert(0, str(root))
    return importlib.import_module("rawsse_baseline")


def timed(fn: Contender, chunks: list[bytes]) -> float:
    gc.collect()
    start = time.process_time()
    fn(chunks)
    return time.process_time() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--sdk-mb", type=float, default=1.0, help="body size for the openai SDK")
    parser.add_argument(
        "--shape",
        choices=["openrouter", "openai"],
        default="openrouter",
        help="openai: every chunk also carries unmodelled fields (one Extra event each)",
    )
    parser.add_argument(
        "--baseline", metavar="REV", help="also time rawsse as of this git revision"
    )
    args = parser.parse_args(argv)
    contenders = dict(CONTENDERS)
    if args.baseline:
        old = load_baseline(args.baseline)
        contenders = {
            f"rawsse {args.baseline} ChatDecoder": lambda c: run_decoder(c, old),
            f"rawsse {args.baseline} ChatDecoder + ChatAccumulator": (
                lambda c: run_accumulator(c, old)
            ),
            **contenders,
        }

    body = make_body(args.mb, shape=args.shape)
    small = make_body(args.sdk_mb, shape=args.shape)
    chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]
    small_chunks = [small[i : i + CHUNK] for i in range(0, len(small), CHUNK)]
    bodies = {name: small_chunks if name in SLOW else chunks for name in contenders}
    data_events = body.count(b"\ndata: ") + body.startswith(b"data: ") - 1  # without [DONE]
    small_events = small.count(b"\ndata: ") + small.startswith(b"data: ") - 1

    # Same text and finish reason from everyone, on both bodies.
    for label, which in (("large", chunks), ("small", small_chunks)):
        reference = run_floor(which)[1:]
        for name, fn in contenders.items():
            if name in SLOW and which is chunks:
                continue
            if fn(which)[1:] != reference:
                sys.exit(f"{name} produced a different text or finish reason ({label} body)")

    best = dict.fromkeys(contenders, float("inf"))
    names = list(contenders)
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            best[name] = min(best[name], timed(contenders[name], bodies[name]))

    def rate(name: str) -> float:
        """Chunks (data events) per second."""
        return (small_events if name in SLOW else data_events) / best[name]

    def mbps(name: str) -> float:
        return (len(small) if name in SLOW else len(body)) / best[name] / 1e6

    floor = rate("floor: split + json.loads")
    sdk = rate("openai SDK Stream")
    print(
        f"Chat decoding, {len(body) / 1e6:.1f} MB {args.shape}-shaped body "
        f"({data_events:,} chunks) in {CHUNK} B "
        f"pieces, best of {args.rounds} interleaved rounds (CPU time); the openai SDK on a "
        f"{len(small) / 1e6:.1f} MB body; Python {platform.python_version()}, "
        f"{platform.machine()}, openai {_version('openai')}"
    )
    print()
    print("| contender | MB/s | chunks/s | × floor | × openai SDK |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        r = rate(name)
        print(f"| {name} | {mbps(name):.1f} | {r:,.0f} | {r / floor:.2f}× | {r / sdk:.1f}× |")


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "?"


if __name__ == "__main__":
    main()
