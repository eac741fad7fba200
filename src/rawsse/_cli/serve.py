"""``rawsse serve [DIR]``: serve cassettes as an OpenAI-compatible API on loopback."""

from __future__ import annotations

import argparse
import json
import math
import signal
import threading
from typing import IO, Any

from .._errors import CassetteError
from .._server import (
    API_PREFIX,
    CHAT_PATH,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DESCRIPTOR_RESERVE,
    MAX_CONNECTIONS_CEILING,
    FixtureServer,
    Seam,
)
from ._args import Command, add_listen_arguments, checked_arg, speed_arg
from ._output import ExitCode, Style, std_streams

__all__ = ["COMMAND", "DEFAULT_PORT", "add_arguments", "ambiguity_lines", "curl_line", "run"]

DEFAULT_PORT = 8787

# The arguments ``FixtureServer`` takes under the name they are parsed as, and as they are.
_SERVER_OPTIONS = (
    "host",
    "port",
    "speed",
    "header_timeout",
    "idle_timeout",
    "max_connections",
    "cors_any",
    "seam",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``serve``'s arguments."""
    parser.add_argument(
        "dir",
        metavar="DIR",
        nargs="?",
        help="a directory of cassettes (*.jsonl) or one cassette (default: the shipped recordings)",
    )
    add_listen_arguments(parser, DEFAULT_PORT)
    parser.add_argument(
        "--speed",
        type=speed_arg,
        default=1.0,
        metavar="X",
        help="time scale: 1 = as recorded (default), 10 = ten times faster, 0/instant = no waiting",
    )
    parser.add_argument(
        "--seam",
        type=_seam_arg,
        default=Seam(),
        metavar="QUIRK",
        help="how a continuation from a prefill starts: none (default), trim (one leading "
        "space dropped) or repeat:N (the prefill's last N characters sent again)",
    )
    parser.add_argument(
        "--header-timeout",
        type=_seconds_arg,
        default=DEFAULT_HEADER_TIMEOUT,
        metavar="S",
        help=(
            "seconds from a request's first byte to the end of its head, and as long for its "
            f"body (default {DEFAULT_HEADER_TIMEOUT:g})"
        ),
    )
    parser.add_argument(
        "--idle-timeout",
        type=_seconds_arg,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="S",
        help=(
            "seconds a connection may wait for a request's first byte "
            f"(default {DEFAULT_IDLE_TIMEOUT:g})"
        ),
    )
    parser.add_argument(
        "--max-connections",
        type=_connections_arg,
        default=None,
        metavar="N",
        help=(
            f"open connections at most (default: the open-file limit less {DESCRIPTOR_RESERVE}, "
            f"at most {MAX_CONNECTIONS_CEILING:,}); the longest idle one makes room, and a new "
            "one is refused (503) when all are busy"
        ),
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help=(
            "also let pages from ORIGIN read the answers (http://host:port, http://host:* or "
            "null; repeatable). By default only loopback pages may (http://localhost:*, "
            "http://127.0.0.1:*, http://[::1]:*)"
        ),
    )
    parser.add_argument(
        "--cors-any",
        action="store_true",
        help="let pages from every origin read the answers (any website you visit, too)",
    )


def _seam_arg(text: str) -> Seam:
    try:
        return Seam.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_seconds_arg = checked_arg(float, lambda s: 0 < s < math.inf, "not a number of seconds > 0: {}")
_connections_arg = checked_arg(int, lambda n: n >= 1, "not a number of connections >= 1: {}")


def curl_line(base_url: str, model: str) -> str:
    """A ready-to-paste curl command streaming ``model`` from ``base_url``."""
    body = json.dumps(
        {"model": model, "stream": True, "messages": [{"role": "user", "content": "Hello"}]}
    )
    return (
        f"curl --no-buffer {base_url}/chat/completions "
        f"-H 'Content-Type: application/json' -d '{body}'"
    )


def run(args: argparse.Namespace, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """``rawsse serve [DIR]``: serve cassettes until Ctrl-C (or SIGTERM); exit 0."""
    out, err = std_streams(out, err)
    style = Style.detect(out, err)
    try:
        options = {name: getattr(args, name) for name in _SERVER_OPTIONS}
        server = FixtureServer(args.dir, log=err, cors_origins=args.cors_origin, **options)
    except (CassetteError, OSError, ValueError) as exc:
        err.write(f"rawsse serve: error: {exc}\n")
        return ExitCode.USAGE
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
            return ExitCode.USAGE
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
            for line in ambiguity_lines(server):
                out.write(style.yellow(line) + "\n")
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
    return ExitCode.OK


def ambiguity_lines(server: FixtureServer) -> list[str]:
    """One line per model id recorded by several cassettes: which one the id resolves to,
    and the ids that reach the others."""
    lines = []
    for model, (name, ids) in server.ambiguous.items():
        others = [i for i in ids if i != model]
        lines.append(
            f"note: {model} is recorded by {len(ids)} cassettes; {model} -> {name}; "
            f"the others by their own ids: {', '.join(others)}"
        )
    return lines


def _on_sigterm(stop: threading.Event) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


COMMAND = Command(
    "serve",
    help="serve cassettes as an OpenAI-compatible API on loopback",
    description=(
        f"Serve cassettes as POST {CHAT_PATH} (the cassette chosen by the request's "
        f'"model" or the X-Rawsse-Cassette header), GET {API_PREFIX}/models and '
        f"GET {API_PREFIX}/models/ID, streaming with the recorded timing. Every cassette "
        "has a unique id; the startup lines name model ids several cassettes share. "
        "The first line printed is the base URL. "
        "Faults per request: X-Rawsse-Cut-After: N, X-Rawsse-Stall: N,S, X-Rawsse-Speed: X; "
        "for resuming: X-Rawsse-Seam, X-Rawsse-Length-After: N, X-Rawsse-Error-At: N,CODE, "
        "X-Rawsse-Once: TOKEN. A request ending in an assistant message that starts a "
        "recorded answer gets the rest of it."
    ),
    epilog="exit codes: 0 stopped by Ctrl-C or SIGTERM, 2 bad DIR or address in use",
)
