"""The ``rawsse`` command line: one module per command, registered in ``COMMANDS``.

A command is a module with a ``Command`` and two functions:

- ``COMMAND``: its name and its texts for ``--help`` (``_args.Command``), last in
  the module;
- ``add_arguments(parser) -> None`` adds its arguments to its argparse subparser;
- ``run(args, *, out=None, err=None) -> int`` runs it and returns the exit code.

``build_parser`` makes each subparser and sets ``handler=run`` and
``command=<name>`` on it.  A new command is one new module here plus one entry
in ``COMMANDS``.  Imports run one way: this entry -> the command modules ->
``_args`` (argument types), ``_output`` (style, printer, summary line, exit
codes), ``_files`` and ``_endpoint`` (the server and key of ``chat`` and
``bench``) -> the library.

Exit codes: 0 success, 1 an API or stream error (after the partial text and a
one-line reason with the server's own message), 2 a usage error, 130 Ctrl-C.
Expected errors never print a traceback; output is plain unless stdout is a
terminal, and never coloured with ``NO_COLOR`` set.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .._version import __version__
from . import bench, chat, demo, inspect, record, relay, replay, serve, stats
from ._output import ExitCode, writable_streams

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = (demo, serve, relay, chat, record, inspect, replay, stats, bench)
"""The command modules, in the order ``rawsse --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``rawsse`` parser with every command in ``COMMANDS`` registered."""
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
    for command in COMMANDS:
        sub = command.COMMAND.add_to(subparsers)
        command.add_arguments(sub)
        sub.set_defaults(handler=command.run, command=command.COMMAND.name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rawsse``; returns the exit code (argparse exits 2 itself on bad usage)."""
    args = build_parser().parse_args(argv)
    writable_streams()
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        sys.stderr.write("rawsse: interrupted\n")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.STREAM
