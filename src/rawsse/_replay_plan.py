"""How a cassette is replayed, planned without I/O: one fault model for every replayer.

``plan_replay`` says which bytes are served, in which pieces, when (seconds from
the request, already scaled), where a stall goes and how the body ends.
``ReplayTransport`` (httpx) and the fixture server (a socket) only sleep, write
and end as the plan says.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, TypeAlias

from ._cassette import Cassette
from ._constants import END_EOF, END_ERROR

__all__ = ["MIN_SPEED", "RANDOM_MAX_CHUNK", "Chunking", "ReplayPlan", "plan_replay"]

Chunking: TypeAlias = "Literal['recorded', 'byte', 'random'] | int"

MIN_SPEED = 0.001
"""The slowest replay speed (a thousand times slower than recorded): a smaller factor
would make a cassette's times (at most ``MAX_SECONDS``) overflow to an endless wait."""

RANDOM_MAX_CHUNK = 64
"""``chunking="random"`` cuts pieces of 1 to this many bytes."""


@dataclass(frozen=True)
class ReplayPlan:
    """One replay: what to serve, when, and how it ends.

    ``steps()`` gives the body in order: ``(offset, bytes)`` pieces (offsets
    already scaled) and ``None`` where the stall goes.  It is lazy, so the first
    piece is ready at once however long the recording.
    """

    cassette: Cassette
    scale: float
    chunking: Chunking
    seed: int
    cut_after: int | None
    stall_at: int | None
    head_t: float
    """When the response head is sent."""
    end_t: float
    """When the body ends (cleanly or not)."""
    end: Literal["eof", "cut", "error", "missing"]
    """``eof``: a clean end; ``cut``: the ``cut_after`` fault; ``error``: the
    recording ended in a transport error (``error`` says which); ``missing``: the
    recording stops (``closed`` or no end line) and the rest was never recorded."""
    error: str | None = None
    """The recorded ``"ExcType: message"`` of an ``error`` end."""

    def steps(self) -> Iterator[tuple[float, bytes] | None]:
        """The pieces of the body in order, and ``None`` once where the stall goes."""
        if self.chunking == "recorded":
            return self._recorded_steps()
        return self._rechunked_steps()

    def _recorded_steps(self) -> Iterator[tuple[float, bytes] | None]:
        scale, limit, stall_at = self.scale, self.cut_after, self.stall_at
        stalled = stall_at is None
        offset = 0
        for t, data in self.cassette.chunks:
            if limit is not None and offset >= limit:
                break
            if not data:
                continue
            end = offset + len(data)
            if limit is not None and end > limit:
                data = data[: limit - offset]
                end = limit
            if stall_at is not None and not stalled and stall_at < end:
                stalled = True
                split = max(stall_at - offset, 0)
                if split:
                    yield (t * scale, data[:split])
                yield None
                data = data[split:]
            if data:
                yield (t * scale, data)
            offset = end
        if not stalled:
            yield None  # past the end: before the end

    def _rechunked_steps(self) -> Iterator[tuple[float, bytes] | None]:
        body = self.cassette.body
        size = len(body)
        rec_ends, rec_times = _recorded_ends(self.cassette)
        cuts = set(_boundaries(self.chunking, self.seed, rec_ends, size))
        limit = size if self.cut_after is None else min(self.cut_after, size)
        if 0 < limit < size:
            cuts.add(limit)
        if self.stall_at is not None and 0 < self.stall_at < limit:
            cuts.add(self.stall_at)
        ends = sorted(c for c in cuts if 0 < c <= limit)
        # Stall after every piece that ends at or before byte ``stall_at``.
        stall_index = None if self.stall_at is None else bisect.bisect_right(ends, self.stall_at)
        for index, (start, end) in enumerate(itertools.pairwise([0, *ends])):
            if index == stall_index:
                yield None
            yield (rec_times[bisect.bisect_left(rec_ends, end)] * self.scale, body[start:end])
        if stall_index == len(ends):
            yield None


def _recorded_ends(cassette: Cassette) -> tuple[list[int], list[float]]:
    """Each recorded chunk's end offset in the body, and its time."""
    ends: list[int] = []
    times: list[float] = []
    total = 0
    for t, data in cassette.chunks:
        total += len(data)
        ends.append(total)
        times.append(t)
    return ends, times


def _boundaries(chunking: Chunking, seed: int, recorded: list[int], size: int) -> list[int]:
    """Where the body is cut into pieces (each piece's end offset)."""
    if chunking == "recorded":
        return recorded
    if chunking == "byte":
        return list(range(1, size + 1))
    if chunking == "random":
        rng = random.Random(seed)
        ends, total = [], 0
        while total < size:
            total = min(size, total + rng.randint(1, RANDOM_MAX_CHUNK))
            ends.append(total)
        return ends
    step = int(chunking)
    return [*range(step, size, step), size] if size else []


def _last_piece_t(cassette: Cassette, limit: int | None) -> float | None:
    """When the last served byte (before ``limit``, if given) was recorded to arrive."""
    if limit is None:
        for t, data in reversed(cassette.chunks):
            if data:
                return t
        return None
    if limit <= 0:
        return None
    total = 0
    last = None
    for t, data in cassette.chunks:
        if data:
            last = t
        total += len(data)
        if total >= limit:
            break
    return last


def plan_replay(
    cassette: Cassette,
    *,
    scale: float = 1.0,
    chunking: Chunking = "recorded",
    seed: int = 0,
    cut_after: int | None = None,
    stall_at: int | None = None,
) -> ReplayPlan:
    """Plan the replay of ``cassette`` with its times multiplied by ``scale``.

    ``scale`` is finite and at most ``1 / MIN_SPEED`` (``ValueError`` otherwise).
    A piece is served when its last byte was recorded to arrive.  ``cut_after=N``
    ends the body after exactly N bytes (at its end when it is shorter);
    ``stall_at=N`` stalls before body byte N (past the end: before the end).
    """
    if not 0 <= scale <= 1 / MIN_SPEED:
        raise ValueError(f"scale must be between 0 and {1 / MIN_SPEED:g}: {scale!r}")
    end: Literal["eof", "cut", "error", "missing"] = "eof"
    if cut_after is not None:
        end = "cut"
    elif cassette.end == END_ERROR:
        end = "error"
    elif cassette.end != END_EOF:
        end = "missing"
    last_t = _last_piece_t(cassette, cut_after)
    last = cassette.response_t * scale if last_t is None else last_t * scale
    end_t = cassette.end_t * scale if cassette.end_t is not None else last
    if end == "cut":
        end_t = last
    return ReplayPlan(
        cassette=cassette,
        scale=scale,
        chunking=chunking,
        seed=seed,
        cut_after=cut_after,
        stall_at=stall_at,
        head_t=cassette.response_t * scale,
        end_t=max(end_t, last),
        end=end,
        error=cassette.error if end == "error" else None,
    )
