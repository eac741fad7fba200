"""``--store`` and ``--linger`` for a relay's command line: a store from a short spec."""

from __future__ import annotations

import argparse
from typing import Any

from ._memory_store import MemoryStore
from ._redis_store import RedisStore
from ._resumable import DEFAULT_LINGER
from ._store import StreamStore

__all__ = ["add_store_arguments", "open_store", "store_options"]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
"""The URL forms ``open_store`` gives to ``RedisStore``."""


def open_store(spec: str) -> StreamStore:
    """``memory`` → ``MemoryStore()``; ``redis://HOST:PORT/DB`` (or ``rediss://``,
    ``unix://``) → ``RedisStore(spec)``; anything else is a ``ValueError``."""
    if spec == "memory":
        return MemoryStore()
    if spec.startswith(REDIS_SCHEMES):
        return RedisStore(spec)
    raise ValueError(f"--store is 'memory' or a Redis URL like redis://HOST:PORT/DB, not {spec!r}")


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds: {text!r}")
    return value


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--store memory|redis://HOST:PORT/DB`` and ``--linger S`` to a relay's parser."""
    parser.add_argument(
        "--store",
        metavar="SPEC",
        help="keep streams resumable: 'memory' (this process) or redis://HOST:PORT/DB "
        "(shared by relay instances); off by default",
    )
    parser.add_argument(
        "--linger",
        metavar="S",
        type=_seconds,
        default=DEFAULT_LINGER,
        help=f"with --store: seconds a stream goes on after its reader left "
        f"(default {DEFAULT_LINGER:g})",
    )


def store_options(args: argparse.Namespace) -> dict[str, Any]:
    """``RelayApp`` keyword arguments from the parsed ``--store`` and ``--linger``."""
    if args.store is None:
        return {}
    return {"store": open_store(args.store), "linger": args.linger}
