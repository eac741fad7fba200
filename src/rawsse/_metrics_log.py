"""The metrics log: one JSON object per stream, one line per object (JSON Lines).

Format version 1 (the ``"v"`` field); every key is always present, in this order::

    v                  1
    time               when the stream ended, UTC, "2026-11-30T07:01:02.123Z"
    model              the model the request named (null if unknown)
    served_model       the model that answered (``StreamMetrics.model``)
    provider           the upstream provider OpenRouter routed to, if it said
    status             complete | truncated | error | timed_out | cancelled
    error_type         the class name of the error the stream ended with, or null
    ttft, ttfb, total  seconds (see ``StreamMetrics``), null when not reached
    gap_p50, gap_p95, gap_max
                       seconds between reads that delivered content
    tokens_in, tokens_out, tokens_reasoning
                       from the usage chunk, null without one
    tokens_per_second  output tokens over the time from first to last content
    cost               as the server reported it (OpenRouter: credits, i.e. USD)
    attempts           HTTP attempts (1 + retries)
    continuations      resumed continuations after a cut (0 until resumption exists)
    generation_id      the ``X-Generation-Id`` header, else the chunk ``id``

Never the API key, the request or the answer.  Readers must ignore keys they do
not know (later versions only add keys) and skip lines that are not JSON (a
process killed mid-write).

``MetricsLog`` appends records from any number of threads, tasks and processes
to one file.  Each record is one ``os.write`` of one whole line to a descriptor
opened with ``O_APPEND``: the kernel moves to the end of the file and writes as
one step, so lines from different writers never interleave on a local file
system (on Linux the inode's lock covers the whole write; POSIX promises the
atomic seek-and-write).  Every string field is cut to ``MAX_FIELD`` characters,
so a line stays under 2 KiB, well under the 4 KiB that even pipes write whole.
No lock file is needed, and a crashed writer cannot leave one behind.  NFS does
not honour ``O_APPEND`` across machines: give each machine its own file and
pass them all to ``rawsse stats``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ._closing import ClosesOnExit
from ._metrics import StreamMetrics

__all__ = ["FIELDS", "MAX_FIELD", "VERSION", "MetricsLog", "format_time", "metrics_record"]

VERSION = 1
MAX_FIELD = 200
"""The longest string a record keeps (model names, ids); longer ones are cut."""

FIELDS = (
    "v",
    "time",
    "model",
    "served_model",
    "provider",
    "status",
    "error_type",
    "ttft",
    "ttfb",
    "total",
    "gap_p50",
    "gap_p95",
    "gap_max",
    "tokens_in",
    "tokens_out",
    "tokens_reasoning",
    "tokens_per_second",
    "cost",
    "attempts",
    "continuations",
    "generation_id",
)

_logger = logging.getLogger("rawsse.metrics")


def format_time(epoch: float) -> str:
    """``epoch`` as the log's time: UTC, milliseconds, ``Z``."""
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= MAX_FIELD else text[:MAX_FIELD]


def _seconds(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 6)


def _count(value: int | None) -> int | None:
    return None if value is None else int(value)


def metrics_record(metrics: StreamMetrics, *, now: float | None = None) -> dict[str, Any]:
    """The version-1 record for one stream's metrics; ``now`` is the end time (epoch)."""
    cost = metrics.cost
    tps = metrics.tokens_per_second
    return {
        "v": VERSION,
        "time": format_time(time.time() if now is None else now),
        "model": _text(metrics.request_model),
        "served_model": _text(metrics.model),
        "provider": _text(metrics.provider),
        "status": _text(metrics.status),
        "error_type": _text(metrics.error_type),
        "ttft": _seconds(metrics.ttft),
        "ttfb": _seconds(metrics.ttfb),
        "total": _seconds(metrics.total),
        "gap_p50": _seconds(metrics.gap_p50),
        "gap_p95": _seconds(metrics.gap_p95),
        "gap_max": _seconds(metrics.gap_max),
        "tokens_in": _count(metrics.prompt_tokens),
        "tokens_out": _count(metrics.completion_tokens),
        "tokens_reasoning": _count(metrics.reasoning_tokens),
        "tokens_per_second": None if tps is None or not math.isfinite(tps) else round(tps, 3),
        "cost": None if cost is None or not math.isfinite(cost) else cost,
        "attempts": metrics.attempts,
        # Filled in once streams resume after a cut; the key is part of version 1 already.
        "continuations": int(getattr(metrics, "continuations", 0) or 0),
        "generation_id": _text(metrics.generation_id),
    }


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One record as one line of UTF-8 JSON, newline included."""
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return line.encode("utf-8") + b"\n"


class MetricsLog(ClosesOnExit):
    """An ``on_metrics`` sink that appends one JSON line per stream to ``path``.

    Pass it as ``Client(on_metrics=rawsse.MetricsLog("metrics.jsonl"))``.  Safe to
    share between threads, tasks and processes writing to the same file (see the
    module docstring for why).  A failed write (disk full) is logged as a warning
    on ``rawsse.metrics`` and dropped: the metrics log never breaks a stream.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._fd: int | None = os.open(self.path, flags, 0o644)
        # Guards only the descriptor's life (close while another thread writes);
        # the atomicity of each line comes from O_APPEND, not from this lock.
        self._lock = threading.Lock()

    def __call__(self, metrics: StreamMetrics) -> None:
        self.write(metrics_record(metrics))

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record (a ``metrics_record`` or any JSON object) as one line."""
        data = encode_record(record)
        with self._lock:
            if self._fd is None:
                raise ValueError(f"the metrics log {self.path!r} is closed")
            try:
                written = os.write(self._fd, data)
                while written < len(data):  # only on a full disk or a signal
                    written += os.write(self._fd, data[written:])
            except OSError as exc:
                _logger.warning("metrics log %s: record dropped (%s)", self.path, exc)

    def close(self) -> None:
        """Close the file (further writes raise ``ValueError``)."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> MetricsLog:
        return self

    def __repr__(self) -> str:
        return f"MetricsLog({self.path!r})"

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
