"""``rawsse inspect FILE``: rows, anomalies and status; ``--json``; ``--html``."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import IO, Any

from .._chat_events import KeepAlive
from .._sse import Comment
from ..inspect import (
    DEFAULT_STALL_THRESHOLD,
    ChunkRow,
    EventRow,
    StreamReport,
    render_html_report,
    sse_lines,
)
from ._args import Command, number_arg
from ._files import Recording, add_file_argument, read_recording
from ._output import DASH, ExitCode, Style, UsageError, clip, event_text, format_cost, std_streams

__all__ = ["COMMAND", "add_arguments", "run", "write_inspect_text"]


_ENVELOPE = re.compile(
    r'"(?:id|object|created|model|provider|system_fingerprint)":(?:"(?:[^"\\]|\\.)*"|-?\d+),?'
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``inspect``'s arguments."""
    add_file_argument(parser, mention_stdin=True)
    parser.add_argument(
        "--json", action="store_true", help="one JSON document: status, events, anomalies, ..."
    )
    parser.add_argument("--html", metavar="REPORT", help="also write a self-contained HTML page")
    parser.add_argument(
        "--stall-threshold",
        type=number_arg,
        metavar="S",
        default=DEFAULT_STALL_THRESHOLD,
        help=f"seconds without content that count as a stall (default {DEFAULT_STALL_THRESHOLD:g})",
    )
    parser.add_argument(
        "--width",
        type=int,
        default=120,
        metavar="N",
        help="clip long rows to N characters (0: never; default 120)",
    )
    parser.add_argument(
        "--summary", action="store_true", help="only the anomalies and the status, no rows"
    )


def _compact(data: str) -> str:
    """The data with the chunk envelope (id, object, created, model, provider) shown as ``…``.

    Only keys before ``"choices"`` go (the typed ``StreamStart`` row shows them), so
    an ``error`` or ``usage`` is never hidden.
    """
    head, sep, tail = data.partition('"choices"')
    if not sep or not head.startswith("{"):
        return data
    short = _ENVELOPE.sub("", head)
    return data if short == head else "{\u2026" + short[1:] + sep + tail


def run(args: argparse.Namespace, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """``rawsse inspect``: rows, anomalies and status; ``--json``; ``--html``."""
    out, err = std_streams(out, err)
    style = Style.detect(out, err)
    try:
        if args.stall_threshold <= 0:
            raise UsageError("--stall-threshold must be positive")
        recording = read_recording(args.file)
        report = recording.report(args.stall_threshold)
        if args.html:
            _write_html(report, recording, args.html)
    except UsageError as exc:
        err.write(f"rawsse inspect: error: {exc}\n")
        return ExitCode.USAGE
    if args.json:
        doc = report.to_dict()
        doc = {"file": recording.path, "kind": recording.kind, **doc}
        if recording.request is not None:
            doc["request"] = _request_summary(recording.request)
        out.write(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    else:
        write_inspect_text(report, recording, out, style, width=args.width, rows=not args.summary)
    if args.html and not args.json:
        err.write(f"wrote {args.html}\n")
    return ExitCode.OK


def _write_html(report: StreamReport, recording: Recording, path: str) -> None:
    page = render_html_report(report, title=f"rawsse inspect: {Path(recording.path).name}")
    try:
        Path(path).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _request_summary(request: dict[str, Any]) -> dict[str, Any]:
    body = request.get("body")
    model = body.get("model") if isinstance(body, dict) else None
    return {"method": request.get("method"), "url": request.get("url"), "model": model}


def write_inspect_text(
    report: StreamReport,
    recording: Recording,
    out: IO[str],
    style: Style,
    *,
    width: int = 120,
    rows: bool = True,
) -> None:
    """The human-readable inspect report."""
    w = out.write
    what = {
        "cassette": "cassette",
        "stdin": "raw SSE from stdin, timed on arrival",
    }.get(recording.kind, "raw SSE body, no timing")
    w(style.bold(f"{recording.path}") + f" ({what})\n")
    if recording.request is not None:
        req = _request_summary(recording.request)
        w(f"request: {req['method']} {req['url']} model={req['model']}\n")
    if recording.http_status is not None:
        after = "" if report.response_t is None else f" after {report.response_t:.3f} s"
        w(f"response: HTTP {recording.http_status}{after}\n")
    if not report.streamed:
        w("a non-streaming answer: one JSON chat.completion, read as its message\n")
    if rows:
        w("\n" + style.dim(f"{'t (s)':>8} {'chunk':>5} {'bytes':>7}  row") + "\n")
        pad = " " * 24
        for row in report.rows:
            t = f"{row.t:8.3f}" if row.t is not None else f"{DASH:>8}"
            if isinstance(row, ChunkRow):
                w(style.dim(f"{t} {row.number:>5} {row.size:>7}  chunk @{row.offset}") + "\n")
                continue
            assert isinstance(row, EventRow)
            item = row.item
            if isinstance(item, Comment):
                text = clip(": " + item.text, width)
                w(f"{t} {row.chunk:>5} {row.size:>7}  {style.yellow(text)}\n")
            else:
                lines = sse_lines(item._replace(data=_compact(item.data)))
                w(f"{t} {row.chunk:>5} {row.size:>7}  {clip(lines[0], width)}\n")
                for line in lines[1:]:
                    w(f"{pad}{clip(line, width)}\n")
            for event in row.events:
                if isinstance(event, KeepAlive):
                    continue
                w(f"{pad}  {style.cyan(clip(event_text(event), width))}\n")
            if row.error is not None:
                w(f"{pad}  {style.red(clip('malformed: ' + row.error, width))}\n")
        w("\n")
    w(style.bold(f"anomalies ({len(report.anomalies)})") + "\n")
    if not report.anomalies:
        w("  none\n")
    for a in report.anomalies:
        when = "" if a.t is None else style.dim(f" [at {a.t:.3f} s]")
        paint = (
            style.red if a.kind in ("in_band_error", "stream_cut", "http_error") else style.yellow
        )
        w(f"  {paint(f'{a.kind:<22}')} {a.message}{when}\n")
    w(_report_status_line(report, style) + "\n")


def _report_status_line(report: StreamReport, style: Style) -> str:
    result = report.result
    choice = result.choices[0] if result.choices else None
    usage = result.usage

    def sec(v: float | None) -> str:
        return DASH if v is None else f"{v:.3f} s"

    parts = [
        f"status {style.status(report.status)}",
        f"model {result.model or DASH}",
        f"provider {result.provider or DASH}",
        f"finish {(choice.finish_reason if choice else None) or DASH}",
        f"ttft {sec(report.ttft)}",
        f"total {sec(report.total)}",
        f"{report.total_bytes} bytes in {report.chunks} chunk(s)",
        f"{report.content_events} content event(s)",
    ]
    if usage is not None:
        parts.append(f"tokens {usage.prompt_tokens} in / {usage.completion_tokens} out")
        parts.append(f"cost {format_cost(usage.cost)}")
    return " | ".join(parts)


COMMAND = Command(
    "inspect",
    help="show a recorded stream chunk by chunk, with an anomaly report",
    description=(
        "Read a cassette (.jsonl) or a raw SSE body (.sse, no timing) and show one row "
        "per network chunk and per SSE event (time, bytes, SSE fields, typed chat events), "
        "then the anomalies (keep-alives, repeated finish, in-band error, no [DONE], "
        "mixed line ends, stalls, invalid tool arguments, ...) and the final status."
    ),
    epilog="exit codes: 0 the file was read (even with anomalies), 2 bad file or usage",
)
