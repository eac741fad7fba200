"""What every command parses: its entry in ``rawsse --help`` and the argument types.

A command module names itself with a ``Command`` and adds its own arguments;
``build_parser`` registers it.  This module imports only the library.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .._server import parse_speed

__all__ = [
    "Command",
    "add_listen_arguments",
    "checked_arg",
    "count_arg",
    "number_arg",
    "port_arg",
    "speed_arg",
]

_T = TypeVar("_T")


@dataclass(frozen=True)
class Command:
    """A command's name and texts: ``help`` in ``rawsse --help``; ``description`` and
    ``epilog`` in ``rawsse NAME --help``."""

    name: str
    help: str
    description: str
    epilog: str

    def add_to(
        self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
    ) -> argparse.ArgumentParser:
        """This command's parser, added to ``subparsers``."""
        return subparsers.add_parser(
            self.name, help=self.help, description=self.description, epilog=self.epilog
        )


def checked_arg(
    convert: Callable[[str], _T],
    accept: Callable[[_T], bool],
    malformed: str,
    refused: str | None = None,
) -> Callable[[str], _T]:
    """An argparse type: ``convert(text)``, kept only when ``accept`` takes it.

    ``malformed`` is the message when ``convert`` raises ``ValueError``, ``refused``
    (default: ``malformed``) when ``accept`` says no; ``{}`` stands for the text's repr.
    """

    def parse(text: str) -> _T:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(malformed.format(repr(text))) from None
        if not accept(value):
            raise argparse.ArgumentTypeError((refused or malformed).format(repr(text)))
        return value

    return parse


number_arg = checked_arg(float, lambda value: True, "not a number: {}")
"""An argparse type: any number."""

count_arg = checked_arg(int, lambda value: value >= 0, "not a whole number: {}", "must be >= 0: {}")
"""An argparse type: a whole number >= 0."""

port_arg = checked_arg(
    int, lambda port: 0 <= port <= 65535, "not a port: {} (0-65535; 0 picks a free one)"
)
"""An argparse type: a TCP port (0 picks a free one)."""


def speed_arg(text: str) -> float:
    """An argparse type: a time scale (a number >= 0, or ``instant``)."""
    try:
        return parse_speed(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a speed: {text!r} (a number >= 0, or 'instant')"
        ) from None


def add_listen_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    """``--host`` and ``--port`` for a command that serves on loopback by default."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=port_arg,
        default=default_port,
        metavar="P",
        help=f"port (default {default_port}; 0 picks a free one)",
    )
