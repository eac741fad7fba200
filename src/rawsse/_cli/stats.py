"""``rawsse stats FILE...``: summarise metrics logs, per model or provider.

Reads each file one line at a time (``-``: standard input), so a log of millions
of streams needs no more memory than a small one; prints a table, or one JSON
document (``--json``), and can write an HTML page with TTFT over time (``--html``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO

from .._stats import StatsSummariser, parse_since, read_lines, render_table, summary_json
from .._stats_html import render_stats_html
from ._args import Command
from ._output import ExitCode, broken_pipe, std_streams

__all__ = ["COMMAND", "add_arguments", "run"]


def _since(text: str) -> float:
    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``stats``'s arguments."""
    parser.add_argument("files", metavar="FILE", nargs="+", help="metrics log ('-': stdin)")
    parser.add_argument(
        "--by", choices=["model", "provider"], default="model", help="group rows by (default model)"
    )
    parser.add_argument(
        "--since",
        metavar="DATE",
        type=_since,
        help="only streams that ended at or after DATE (2026-11-30, 2026-11-30T07:00, "
        "or an age: 90m, 24h, 7d; UTC unless an offset is given)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--html", metavar="OUT", help="also write an HTML page with TTFT over time")


def run(args: argparse.Namespace, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """``rawsse stats``."""
    out, err = std_streams(out, err)
    summariser = StatsSummariser(by=args.by, since=args.since, timeline=args.html is not None)
    name = ""
    try:
        for name in args.files:
            if name == "-":
                for line in sys.stdin.buffer:
                    summariser.feed_line(line)
            else:
                read_lines(name, summariser)
    except OSError as exc:
        err.write(f"rawsse stats: error: cannot read {name}: {exc.strerror or exc}\n")
        return ExitCode.USAGE
    summary = summariser.summary()
    if args.html is not None:
        try:
            Path(args.html).write_text(render_stats_html(summary), encoding="utf-8")
        except OSError as exc:
            err.write(f"rawsse stats: error: cannot write {args.html}: {exc.strerror or exc}\n")
            return ExitCode.USAGE
    try:
        if args.json:
            out.write(json.dumps(summary_json(summary), ensure_ascii=False) + "\n")
        else:
            out.write(render_table(summary))
        out.flush()
    except BrokenPipeError:
        return broken_pipe()
    if args.html is not None:
        err.write(f"wrote {args.html}\n")
    return ExitCode.OK


COMMAND = Command(
    "stats",
    help="summarise metrics logs: TTFT per model, errors, tokens/s, cost",
    description=(
        "Summarise metrics logs (written by rawsse.MetricsLog, `rawsse chat --metrics` "
        "and `rawsse bench`): per requested model, the count, errors, TTFT p50/p95/p99, "
        "tokens/s and cost, with the served model as a column of its own. Quantiles are "
        "exact up to 1,024 streams a model, then within 1%."
    ),
    epilog="exit codes: 0 ok, 2 usage error (including a file that cannot be read)",
)
