"""``rawsse replay FILE``: a recorded stream as it was seen, with its timing scaled."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import IO

from .._chat import parse_chat_stream
from .._chat_events import ChatEvent, Done
from .._completion import completion_from_result, stream_from_completion
from ..inspect import EventRow, StreamReport
from ._args import Command, number_arg
from ._files import add_file_argument, read_recording
from ._output import (
    DASH,
    ExitCode,
    StreamPrinter,
    Style,
    Summary,
    UsageError,
    event_text,
    std_streams,
)

__all__ = ["COMMAND", "add_arguments", "exit_code", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``replay``'s arguments."""
    add_file_argument(parser)
    parser.add_argument(
        "--speed",
        type=number_arg,
        default=1.0,
        metavar="X",
        help="time scale: 2 = twice as fast, 0 = no waiting (default 1)",
    )
    parser.add_argument(
        "--events", action="store_true", help="print the typed chat events, one per line"
    )


def run(
    args: argparse.Namespace,
    *,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """``rawsse replay``: the stream as it was seen, with its timing scaled by ``--speed``."""
    out, err = std_streams(out, err)
    style = Style.detect(out, err)
    try:
        if args.speed < 0:
            raise UsageError("--speed must be >= 0 (0 = no waiting)")
        recording = read_recording(args.file)
    except UsageError as exc:
        err.write(f"rawsse replay: error: {exc}\n")
        return ExitCode.USAGE
    inspector = recording.inspector()
    printer = StreamPrinter(out, style, err, labels=recording.choices > 1)
    clock = 0.0

    def show(events: tuple[ChatEvent, ...] | list[ChatEvent], t: float | None) -> None:
        for event in events:
            if args.events:
                stamp = f"{t:8.3f}" if t is not None else f"{DASH:>8}"
                out.write(f"{stamp}  {event_text(event)}\n")
            else:
                printer.event(event)

    try:
        for t, data in recording.chunks:
            if t is not None and args.speed > 0 and t > clock:
                sleep((t - clock) / args.speed)
                clock = t
            for row in inspector.feed(data, t):
                if not isinstance(row, EventRow):
                    continue
                show(row.events, row.t)
                if args.events and row.error is not None:
                    out.write(f"{'':>8}  malformed: {row.error}\n")
            out.flush()
    except KeyboardInterrupt:
        printer.finish()
        err.write("rawsse: interrupted\n")
        return ExitCode.INTERRUPTED
    report = inspector.close(end=recording.end, error=recording.end_error, t=recording.end_t)
    if not report.streamed:
        # A non-streaming answer has no events on the wire: show its message as the
        # events it stands for, when the body arrived.
        body = stream_from_completion(completion_from_result(report.result))
        show([e for e in parse_chat_stream(body) if not isinstance(e, Done)], report.total)
    if not args.events:
        printer.finish()
    out.write(Summary.of_report(report).line(style) + "\n")
    reason = _failure_reason(report)
    if reason is not None:
        err.write(style.red("error: ") + reason + "\n")
    return exit_code(report)


def exit_code(report: StreamReport) -> int:
    """0 when the stream's status is ``complete``, else 1."""
    return ExitCode.OK if report.status == "complete" else ExitCode.STREAM


def _failure_reason(report: StreamReport) -> str | None:
    """The one-line reason a replayed stream failed, or None when it did not."""
    if report.status == "complete":
        return None
    for kind in ("http_error", "in_band_error", "error_finish", "stream_cut", "no_done"):
        for a in report.anomalies:
            if a.kind == kind:
                if kind == "in_band_error":
                    return f"the server sent an error in the stream: {a.message}"
                return a.message
    return f"the stream ended with status {report.status}"


COMMAND = Command(
    "replay",
    help="replay a recorded stream as it was seen, with its timing",
    description=(
        "Print a recorded stream as the user saw it, with the recorded timing scaled by "
        "--speed (0: at once), then the summary line; --events prints the typed events, "
        "one per line, with their times."
    ),
    epilog="exit codes: 0 complete, 1 the recording ends in an error or cut, 2 bad file",
)
