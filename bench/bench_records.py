"""What one event costs to build and read: the measurement behind ``rawsse._frozen``.

python bench/bench_records.py
"""

from __future__ import annotations

import platform
import timeit
from dataclasses import dataclass

from rawsse import ServerSentEvent


@dataclass(frozen=True, slots=True)
class FrozenEvent:
    event: str
    data: str
    id: str
    retry: int | None


@dataclass(slots=True)
class MutableEvent:
    event: str
    data: str
    id: str
    retry: int | None


def main() -> None:
    new = tuple.__new__
    env = {
        "FrozenEvent": FrozenEvent,
        "MutableEvent": MutableEvent,
        "ServerSentEvent": ServerSentEvent,
        "new": new,
    }
    build = {
        "frozen slotted dataclass": "FrozenEvent('message', 'x', '', None)",
        "mutable slotted dataclass": "MutableEvent('message', 'x', '', None)",
        "rawsse Frozen, public constructor": "ServerSentEvent('message', 'x', '', None)",
        "rawsse Frozen, as the decoder builds it": (
            "new(ServerSentEvent, ('message', 'x', '', None))"
        ),
    }
    number = 500_000
    print(f"Python {platform.python_version()}, best of 7 x {number:,}")
    print()
    print("| representation | build (ns) | read .data (ns) |")
    print("|---|---:|---:|")
    for name, stmt in build.items():
        cost = min(timeit.repeat(stmt, globals=env, number=number, repeat=7)) / number * 1e9
        env["obj"] = eval(stmt, env)
        read = min(timeit.repeat("obj.data", globals=env, number=number, repeat=7)) / number * 1e9
        print(f"| {name} | {cost:.0f} | {read:.0f} |")


if __name__ == "__main__":
    main()
