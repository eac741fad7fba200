"""Fault replay: a cassette written to a socket as ``rawsse._replay_plan`` plans it.

The request's fault headers (``X-Rawsse-Cut-After: N``, ``X-Rawsse-Stall: N,S``,
``X-Rawsse-Speed: X``) become the same plan ``ReplayTransport`` serves, so there
is one fault model; this module only sleeps, writes HTTP chunks and drops the
connection where the plan ends unclean.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass

from .._cassette import MAX_SECONDS, Cassette
from .._replay_plan import MIN_SPEED, plan_replay
from ._http import BadRequest, response_head, write_chunk

__all__ = ["Faults", "parse_faults", "parse_speed", "serve_replay"]

# Headers of the recorded response that describe the original connection or
# encoding, not the body we send: the replay sets its own framing.
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "date",
        "server",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-expose-headers",
    }
)


KEEPALIVE = b": OPENROUTER PROCESSING\n\n"
_DIGITS = re.compile(r"[0-9]{1,18}")


def parse_speed(text: str) -> float:
    """``X`` as a speed: ``0``/``instant`` (no waiting), a number from ``MIN_SPEED`` on, or ``inf``.

    ``ValueError`` otherwise: a tinier factor would stretch a recording past any
    clock (``1e-320`` makes every wait infinite).
    """
    if text.strip().lower() == "instant":
        return 0.0
    value = float(text)
    if math.isnan(value) or value < 0 or 0 < value < MIN_SPEED:
        raise ValueError(f"speed must be 0 or at least {MIN_SPEED:g}, not {text!r}")
    return value


def _offset(text: str) -> int:
    """A byte offset: ASCII digits only (``int()`` also takes ``+``, ``_`` and other scripts)."""
    text = text.strip(" \t")
    if not _DIGITS.fullmatch(text):
        raise ValueError(text)
    return int(text)


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= MAX_SECONDS:
        raise ValueError(text)
    return value


@dataclass(frozen=True)
class Faults:
    """What a request asked to go wrong."""

    cut_after: int | None = None
    stall_at: int | None = None
    stall_for: float = 0.0
    speed: float | None = None
    keepalive: float | None = None
    """During the stall, a keep-alive comment every so many seconds
    (``X-Rawsse-Keepalive: S``): bytes flow, content does not."""


def parse_faults(headers: dict[str, str]) -> Faults:
    """The fault headers of a request; ``BadRequest`` (400) when one is malformed."""
    cut: int | None = None
    stall: tuple[int, float] | None = None
    speed: float | None = None
    keepalive: float | None = None
    try:
        if "x-rawsse-cut-after" in headers:
            cut = _offset(headers["x-rawsse-cut-after"])
        if "x-rawsse-stall" in headers:
            at, _, seconds = headers["x-rawsse-stall"].partition(",")
            stall = (_offset(at), _seconds(seconds))
        if "x-rawsse-speed" in headers:
            speed = parse_speed(headers["x-rawsse-speed"])
        if "x-rawsse-keepalive" in headers:
            keepalive = float(headers["x-rawsse-keepalive"])
            if not 0 < keepalive < math.inf:
                raise ValueError
    except ValueError:
        raise BadRequest(
            400,
            "bad fault header: X-Rawsse-Cut-After: N (bytes), X-Rawsse-Stall: N,S "
            f"(byte, seconds up to {MAX_SECONDS:g}), X-Rawsse-Speed: X (0, 'instant' or "
            f"a number from {MIN_SPEED:g}), X-Rawsse-Keepalive: S (seconds)",
        ) from None
    if stall is None:
        return Faults(cut, None, 0.0, speed, keepalive)
    return Faults(cut, stall[0], stall[1], speed, keepalive)


async def serve_replay(
    writer: asyncio.StreamWriter,
    cassette: Cassette,
    received: float,
    speed: float,
    faults: Faults,
    sent: list[int],
    cors: list[tuple[str, str]],
) -> str:
    """Write ``cassette`` as a chunked response, timed from ``received`` (loop time).

    ``sent[0]`` counts the body bytes as they go.  Returns ``""`` after a clean
    end (the connection may carry another request), else why the connection
    must be dropped now.
    """
    loop = asyncio.get_running_loop()
    timed = not (speed == 0 or math.isinf(speed))
    plan = plan_replay(
        cassette,
        scale=1.0 / speed if timed else 0.0,
        cut_after=faults.cut_after,
        stall_at=faults.stall_at,
    )
    shift = 0.0  # seconds added by a stall fault

    async def at(t: float) -> None:
        if timed:
            delay = received + shift + t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def stall() -> None:
        nonlocal shift
        await writer.drain()
        if faults.keepalive is None:
            await asyncio.sleep(faults.stall_for)
        else:  # keep-alives only: the stall clock fires, the idle clock does not
            end = loop.time() + faults.stall_for
            while (left := end - loop.time()) > 0:
                await asyncio.sleep(min(faults.keepalive, left))
                if loop.time() < end:
                    await write_chunk(writer, KEEPALIVE)
        shift += faults.stall_for

    await at(plan.head_t)
    headers = [(k, v) for k, v in cassette.headers.items() if k.lower() not in _HOP_HEADERS]
    headers += [("transfer-encoding", "chunked"), ("server", "rawsse"), *cors]
    writer.write(response_head(cassette.status, headers))
    for step in plan.steps():
        if step is None:
            await stall()
            continue
        await at(step[0])
        await write_chunk(writer, step[1])
        sent[0] += len(step[1])
    if plan.end == "cut":
        size = len(cassette.body)
        if faults.cut_after is not None and faults.cut_after > size:
            return "cut at the end of the body"
        return f"cut after {faults.cut_after} bytes"
    if plan.end != "eof":
        # The recording was cut: cut the replay too, at the same point.
        await at(plan.end_t)
        return f"recording ends {cassette.end!r}: connection dropped"
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return ""
