"""``rawsse demo``: stream a shipped recording through the real client, over real HTTP."""

from __future__ import annotations

import argparse
from typing import IO, Any

from .._client import Client
from .._errors import APIError, CassetteError, RawSSEError, StreamInterrupted
from .._server import FixtureServer
from ._args import Command, speed_arg
from ._output import ExitCode, StreamPrinter, Style, Summary, std_streams

__all__ = ["COMMAND", "DEMO_KEY", "DEMO_MODEL", "add_arguments", "run"]

DEMO_MODEL = "rawsse/demo"
DEMO_KEY = "no-key-needed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``demo``'s arguments."""
    parser.add_argument(
        "--model",
        default=DEMO_MODEL,
        metavar="MODEL",
        help=f"which shipped recording (default {DEMO_MODEL}; `rawsse serve` lists them)",
    )
    parser.add_argument(
        "--speed",
        type=speed_arg,
        default=1.0,
        metavar="X",
        help="time scale: 1 = as recorded (default), 10 = ten times faster, 0 = no waiting",
    )
    parser.add_argument(
        "--browser",
        action="store_true",
        help="serve the demo chat page instead: fixture server -> relay -> page (prints its URL)",
    )


def run(args: argparse.Namespace, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """``rawsse demo``: stream a shipped recording through the real client, over real HTTP."""
    if getattr(args, "browser", False):  # Namespaces built by hand may lack it
        from .relay import run_demo_browser

        return run_demo_browser(args, out=out, err=err)
    out, err = std_streams(out, err)
    style = Style.detect(out, err)
    try:
        server = FixtureServer(host="127.0.0.1", port=0, speed=args.speed)
    except CassetteError as exc:  # pragma: no cover - the shipped files are tested
        err.write(f"rawsse demo: error: {exc}\n")
        return ExitCode.USAGE
    fixture = next((f for f in server.fixtures if args.model in (f.id, f.name)), None)
    if fixture is None:
        err.write(
            f"rawsse demo: error: no recording {args.model!r}; choose one of: "
            + ", ".join(server.models)
            + "\n"
        )
        return ExitCode.USAGE
    body = fixture.cassette.request.get("body")
    messages: Any = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        messages = [{"role": "user", "content": "Hello"}]
    prompt = next(
        (
            m.get("content")
            for m in reversed(messages)
            if isinstance(m, dict) and m.get("role") == "user"
        ),
        None,
    )
    printer = StreamPrinter(out, style, err)
    result = None
    metrics = None
    failure: BaseException | None = None
    with server:
        out.write(
            style.dim(
                f"rawsse demo: {fixture.id} from a local fixture server at {server.base_url} "
                "(no key, no network; recorded timing" + _speed_note(args.speed) + ")"
            )
            + "\n"
        )
        if isinstance(prompt, str):
            out.write(style.bold("> ") + prompt + "\n")
        out.flush()
        try:
            # The fixture server ignores the key; a placeholder keeps the client from
            # reading $OPENROUTER_API_KEY and sending a real key anywhere.
            with Client(base_url=server.base_url, api_key=DEMO_KEY, retries=0) as client:
                stream = client.stream(model=fixture.id, messages=messages)
                try:
                    with stream:
                        printer.waiting()
                        for event in stream:
                            printer.event(event)
                finally:
                    result = stream.result
                    metrics = stream.metrics
        except RawSSEError as exc:
            failure = exc
            if isinstance(exc, StreamInterrupted) and exc.partial is not None:
                result = exc.partial
    printer.finish()
    if result is not None and not isinstance(failure, APIError):
        status = str(result.status.value)
        if failure is not None and status == "complete":
            status = "error"
        summary = Summary.of_result(result, metrics, status)
        out.write(summary.line(style) + "\n")
    out.flush()
    if failure is not None:
        err.write(style.red("error: ") + " ".join(str(failure).split()) + "\n")
        return ExitCode.STREAM
    out.write(
        style.dim(
            "next: `rawsse serve` serves these recordings for your own client; "
            "`rawsse chat MODEL PROMPT` streams from OpenRouter"
        )
        + "\n"
    )
    out.flush()
    return ExitCode.OK


def _speed_note(speed: float) -> str:
    if speed == 1:
        return ""
    return " skipped" if speed == 0 else f" at {speed:g}x"


COMMAND = Command(
    "demo",
    help="stream a shipped recording through the real client (no key, no network)",
    description=(
        "Start the fixture server on a free loopback port, stream one of the recordings "
        "shipped with rawsse through rawsse.Client with its recorded timing, print the "
        "summary line (TTFT, total, tokens, tokens/s, cost, provider, finish reason, "
        "status) and stop the server."
    ),
    epilog="exit codes: 0 ok, 1 the stream failed (e.g. --model rawsse/error-midstream)",
)
