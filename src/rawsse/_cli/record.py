"""``rawsse record MODEL [PROMPT] -o FILE``: ``chat``, recording the exchange as a cassette."""

from __future__ import annotations

import argparse

from ._args import Command
from .chat import add_chat_arguments, run

__all__ = ["COMMAND", "add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``record``'s arguments."""
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


COMMAND = Command(
    "record",
    help="stream one chat completion and record it as a cassette",
    description="Like `rawsse chat`, and record the exchange (format v1 cassette) to FILE.",
    epilog="exit codes: 0 ok, 1 API or stream error (the cassette is still written), 2 usage",
)
