"""The ``rawsse`` command line: the entry point, ``serve`` and ``demo``.

``main(argv)`` builds one argparse parser; each subcommand's parser sets
``handler`` (``args -> exit code``) through ``set_defaults``.  ``serve`` and
``demo`` live here; ``chat``, ``record``, ``inspect`` and ``replay`` are added
by ``rawsse._cli_debug.add_parsers(subparsers)``, a module that follows the
same contract.  Exit codes: 0 success, 1 an API or stream error (after the
partial text and a one-line reason with the server's own message), 2 a usage
error.  Expected errors never print a traceback; output is plain unless stdout
is a terminal, and never coloured with ``NO_COLOR`` set.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO, Any

from . import _cli_debug
from ._cli_debug import EXIT_OK, EXIT_STREAM, EXIT_USAGE, StreamPrinter, Style, Summary
from ._errors import APIError, CassetteError, RawSSEError, StreamInterrupted
from ._server import API_PREFIX, CHAT_PATH, FixtureServer, _speed

__all__ = ["build_parser", "main"]

DEFAULT_PORT = 8787
DEMO_MODEL = "rawsse/demo"
DEMO_KEY = "no-key-needed"


def _speed_arg(text: str) -> float:
    try:
        return _speed(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a speed: {text!r} (a number >= 0, or 'instant')"
        ) from None


def _port_arg(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text!r} (0-65535; 0 picks a free one)")
    return port


# -- serve ---------------------------------------------------------------------------


def curl_line(base_url: str, model: str) -> str:
    """A ready-to-paste curl command streaming ``model`` from ``base_url``."""
    body = json.dumps(
        {"model": model, "stream": True, "messages": [{"role": "user", "content": "Hello"}]}
    )
    return (
        f"curl --no-buffer {base_url}/chat/completions "
        f"-H 'Content-Type: application/json' -d '{body}'"
    )


def run_serve(
    args: argparse.Namespace, *, out: IO[str] | None = None, err: IO[str] | None = None
) -> int:
    """``rawsse serve [DIR]``: serve cassettes until Ctrl-C (or SIGTERM); exit 0."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    style = Style.detect(out, err)
    try:
        server = FixtureServer(args.dir, host=args.host, port=args.port, speed=args.speed, log=err)
    except (CassetteError, OSError) as exc:
        err.write(f"rawsse serve: error: {exc}\n")
        return EXIT_USAGE
    stop = threading.Event()
    previous = _on_sigterm(stop)
    try:
        try:
            server.start()
        except OSError as exc:
            hint = " (try --port 0 for a free port)" if args.port else ""
            err.write(
                f"rawsse serve: error: cannot listen on {args.host}:{args.port}: "
                f"{exc.strerror or exc}{hint}\n"
            )
            return EXIT_USAGE
        try:
            source = "the recordings shipped with rawsse" if args.dir is None else args.dir
            speed = "instant" if args.speed == 0 else f"speed {args.speed:g}x"
            # The URL first, flushed at once: scripts read this line through a pipe.
            out.write(
                f"{server.base_url}  "
                + style.dim(
                    f"(rawsse fixture server: {len(server.models)} models from {source}, {speed})"
                )
                + "\n"
            )
            out.flush()
            out.write(curl_line(server.base_url, server.models[0]) + "\n")
            out.write(style.dim("models: " + ", ".join(server.models)) + "\n")
            out.write(style.dim("Ctrl-C stops the server.") + "\n")
            out.flush()
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
    finally:
        _restore_sigterm(previous)
    err.write("rawsse serve: stopped\n")
    return EXIT_OK


def _on_sigterm(stop: threading.Event) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


# -- demo ----------------------------------------------------------------------------


def run_demo(
    args: argparse.Namespace, *, out: IO[str] | None = None, err: IO[str] | None = None
) -> int:
    """``rawsse demo``: stream a shipped recording through the real client, over real HTTP."""
    from ._client import Client

    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    style = Style.detect(out, err)
    try:
        server = FixtureServer(host="127.0.0.1", port=0, speed=args.speed)
    except CassetteError as exc:  # pragma: no cover - the shipped files are tested
        err.write(f"rawsse demo: error: {exc}\n")
        return EXIT_USAGE
    fixture = next((f for f in server.fixtures if args.model in (f.id, f.name)), None)
    if fixture is None:
        err.write(
            f"rawsse demo: error: no recording {args.model!r}; choose one of: "
            + ", ".join(server.models)
            + "\n"
        )
        return EXIT_USAGE
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
        usage = result.usage
        choice = result.choices[0] if result.choices else None
        summary = Summary(
            ttft=metrics.ttft if metrics else None,
            total=metrics.total if metrics else None,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            tokens_per_second=metrics.tokens_per_second if metrics else None,
            cost=usage.cost if usage else None,
            provider=result.provider,
            finish_reason=choice.finish_reason if choice else None,
            status=status,
            model=result.model,
        )
        out.write(summary.line(style) + "\n")
    out.flush()
    if failure is not None:
        err.write(style.red("error: ") + " ".join(str(failure).split()) + "\n")
        return EXIT_STREAM
    out.write(
        style.dim(
            "next: `rawsse serve` serves these recordings for your own client; "
            "`rawsse chat MODEL PROMPT` streams from OpenRouter"
        )
        + "\n"
    )
    out.flush()
    return EXIT_OK


def _speed_note(speed: float) -> str:
    if speed == 1:
        return ""
    return " skipped" if speed == 0 else f" at {speed:g}x"


# -- the entry point -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``rawsse`` parser with every subcommand registered."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="rawsse",
        description=(
            "Stream chat completions from OpenRouter or any OpenAI-compatible API, record and "
            "replay them, and see exactly what a stream did."
        ),
        epilog=(
            "Start with `rawsse demo` (no key, no network). "
            "Exit codes: 0 ok, 1 API or stream error, 2 usage error."
        ),
    )
    parser.add_argument("--version", action="version", version=f"rawsse {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = subparsers.add_parser(
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
    demo.add_argument(
        "--model",
        default=DEMO_MODEL,
        metavar="MODEL",
        help=f"which shipped recording (default {DEMO_MODEL}; `rawsse serve` lists them)",
    )
    demo.add_argument(
        "--speed",
        type=_speed_arg,
        default=1.0,
        metavar="X",
        help="time scale: 1 = as recorded (default), 10 = ten times faster, 0 = no waiting",
    )
    demo.set_defaults(handler=run_demo, command="demo")

    serve = subparsers.add_parser(
        "serve",
        help="serve cassettes as an OpenAI-compatible API on loopback",
        description=(
            f"Serve cassettes as POST {CHAT_PATH} (the cassette chosen by the request's "
            f'"model" or the X-Rawsse-Cassette header) and GET {API_PREFIX}/models, '
            "streaming with the recorded timing. The first line printed is the base URL. "
            "Faults per request: X-Rawsse-Cut-After: N, X-Rawsse-Stall: N,S, X-Rawsse-Speed: X."
        ),
        epilog="exit codes: 0 stopped by Ctrl-C or SIGTERM, 2 bad DIR or address in use",
    )
    serve.add_argument(
        "dir",
        metavar="DIR",
        nargs="?",
        help="a directory of cassettes (*.jsonl) or one cassette (default: the shipped recordings)",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port",
        type=_port_arg,
        default=DEFAULT_PORT,
        metavar="P",
        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    serve.add_argument(
        "--speed",
        type=_speed_arg,
        default=1.0,
        metavar="X",
        help="time scale: 1 = as recorded (default), 10 = ten times faster, 0/instant = no waiting",
    )
    serve.set_defaults(handler=run_serve, command="serve")

    _cli_debug.add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rawsse``; returns the exit code (argparse exits 2 itself on bad usage)."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        sys.stderr.write("rawsse: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_STREAM
