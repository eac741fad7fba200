"""``rawsse bench MODEL...``: the same prompt against each model, logged and compared.

Runs are interleaved across the models (run 1 of every model, then run 2, ...)
so that a slow minute of the network does not land on one model only; at most
``--concurrency`` streams are open at once.  Every stream is appended to the
metrics log, and the table printed at the end is ``rawsse stats`` over these
runs alone.
"""

from __future__ import annotations

import argparse
import json
from typing import IO, Any

import anyio

from .._async_client import AsyncClient
from .._constants import API_KEY_ENV, OTHER_KEY_ENV
from .._errors import RawSSEError
from .._metrics import StreamMetrics
from .._metrics_log import MetricsLog, metrics_record
from .._stats import StatsSummariser, StatsSummary, render_table, summary_json
from ._args import Command, count_arg
from ._endpoint import Endpoint, add_base_url_argument
from ._output import ExitCode, UsageError, broken_pipe, std_streams

__all__ = ["COMMAND", "DEFAULT_LOG", "DEFAULT_PROMPT", "add_arguments", "run"]

DEFAULT_PROMPT = "Write one short sentence about the sea."
DEFAULT_LOG = "rawsse-metrics.jsonl"


def _positive(text: str) -> int:
    value = count_arg(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``bench``'s arguments."""
    parser.add_argument("models", metavar="MODEL", nargs="+", help="model slugs to compare")
    parser.add_argument("--prompt", metavar="TEXT", default=DEFAULT_PROMPT, help="the user message")
    parser.add_argument("--runs", type=_positive, default=5, metavar="N", help="runs per model (5)")
    parser.add_argument(
        "--concurrency", type=_positive, default=1, metavar="C", help="streams at once (1)"
    )
    add_base_url_argument(parser)
    parser.add_argument("--max-tokens", type=_positive, metavar="N", help="max_tokens per answer")
    parser.add_argument(
        "--metrics",
        metavar="FILE",
        default=DEFAULT_LOG,
        help=f"the metrics log to append to (default {DEFAULT_LOG})",
    )
    parser.add_argument("--json", action="store_true", help="print the `stats --json` document")


def run(args: argparse.Namespace, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """``rawsse bench``."""
    out, err = std_streams(out, err)
    try:
        return _bench(args, out, err)
    except UsageError as exc:
        err.write(f"rawsse bench: error: {exc}\n")
        return ExitCode.USAGE
    except BrokenPipeError:
        return broken_pipe()


def _bench(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    endpoint = Endpoint.from_args(args)
    try:
        log = MetricsLog(args.metrics)
    except OSError as exc:
        raise UsageError(f"cannot open {args.metrics}: {exc.strerror or exc}") from None
    summariser = StatsSummariser()

    def on_metrics(metrics: StreamMetrics) -> None:
        record = metrics_record(metrics)
        log.write(record)
        summariser.add(record)

    params: dict[str, Any] = {}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    messages = [{"role": "user", "content": args.prompt}]
    failures: list[str] = []  # the first few, for stderr
    failed = 0

    async def one(client: AsyncClient, model: str, limiter: anyio.CapacityLimiter) -> None:
        nonlocal failed
        async with limiter:
            try:
                async with client.stream(model=model, messages=messages, **params) as stream:
                    async for _ in stream:
                        pass
            except RawSSEError as exc:
                failed += 1
                if len(failures) < 5:
                    failures.append(f"{model}: {type(exc).__name__}: {exc}")

    async def main() -> None:
        client = endpoint.client(AsyncClient, on_metrics=on_metrics, app_title="rawsse bench")
        limiter = anyio.CapacityLimiter(args.concurrency)
        async with client, anyio.create_task_group() as tg:
            for _ in range(args.runs):
                for model in args.models:
                    tg.start_soon(one, client, model, limiter)

    try:
        anyio.run(main)
    finally:
        log.close()
    summary = summariser.summary()
    for line in failures:
        err.write(f"error: {line}\n")
    if failed > len(failures):
        err.write(f"... and {failed - len(failures)} more errors\n")
    if args.json:
        out.write(json.dumps(summary_json(summary), ensure_ascii=False) + "\n")
    else:
        out.write(render_table(summary))
        out.write(_fastest(summary) + f"appended to {args.metrics}\n")
    out.flush()
    return ExitCode.STREAM if summary.records and failed == summary.records else ExitCode.OK


def _fastest(summary: StatsSummary) -> str:
    ranked = sorted(
        (g.ttft_p50, name) for name, g in summary.groups.items() if g.ttft_p50 is not None
    )
    if len(ranked) < 2:
        return ""
    (best, name), (second, other) = ranked[0], ranked[1]
    ratio = f"{second / best:.2f}x" if best > 0 else "infinitely"
    return f"fastest median TTFT: {name} ({best:.3f} s), {ratio} faster than {other}\n"


COMMAND = Command(
    "bench",
    help="run one prompt against several models; log and compare TTFT",
    description=(
        "Stream the same prompt from each MODEL --runs times (interleaved, at most "
        "--concurrency at once), append every stream to the metrics log and print the "
        "comparison: count, errors, TTFT p50/p95/p99, tokens/s and cost per model. "
        f"The key comes from ${API_KEY_ENV} (OpenRouter's URL) or ${OTHER_KEY_ENV} (any "
        "other --base-url); `rawsse serve` needs none."
    ),
    epilog="exit codes: 0 ok, 1 every run failed, 2 usage error",
)
