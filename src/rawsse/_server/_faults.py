"""Fault replay: a cassette written to a socket as ``rawsse._replay_plan`` plans it.

The request's fault headers (``X-Rawsse-Cut-After: N``, ``X-Rawsse-Stall: N,S``,
``X-Rawsse-Speed: X``) become the same plan ``ReplayTransport`` serves, so there
is one fault model; this module only sleeps, writes HTTP chunks and drops the
connection where the plan ends unclean.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from .._cassette import Cassette
from .._replay_plan import plan_replay
from ._http import CORS, BadRequest, response_head, write_chunk

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


def parse_speed(text: str) -> float:
    """``X`` as a speed: a positive number, ``0``/``instant`` (no waiting) or ``inf``."""
    if text.strip().lower() == "instant":
        return 0.0
    value = float(text)
    if math.isnan(value) or value < 0:
        raise ValueError(f"speed must be >= 0, not {text!r}")
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
            cut = int(headers["x-rawsse-cut-after"])
            if cut < 0:
                raise ValueError
        if "x-rawsse-stall" in headers:
            at, _, seconds = headers["x-rawsse-stall"].partition(",")
            stall = (int(at), float(seconds))
            if stall[0] < 0 or not 0 <= stall[1] < math.inf:
                raise ValueError
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
            "(byte, seconds), X-Rawsse-Speed: X (number or 'instant'), "
            "X-Rawsse-Keepalive: S (seconds)",
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
    headers += [("transfer-encoding", "chunked"), ("server", "rawsse"), *CORS]
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
