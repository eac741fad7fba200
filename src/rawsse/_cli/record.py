"""``rawsse record MODEL [PROMPT] -o FILE``: ``chat``, recording the exchange as a cassette."""

from __future__ import annotations

from typing import Any

from .chat import add_chat_arguments, run

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``record``."""
    parser = subparsers.add_parser(
        "record",
        help="stream one chat completion and record it as a cassette",
        description="Like `rawsse chat`, and record the exchange (format v1 cassette) to FILE.",
        epilog="exit codes: 0 ok, 1 API or stream error (the cassette is still written), 2 usage",
    )
    add_chat_arguments(parser)
    parser.add_argument(
        "-o",
        "--output",
        dest="record",
        metavar="FILE",
        required=True,
        help="the cassette to write: a file (any name; appended to), or a directory "
        "(one file per exchange; a trailing / or no suffix); folders are created",
    )
    parser.set_defaults(handler=run, command="record")
