"""Summaries of metrics logs: per model (or provider) counts, errors, TTFT quantiles, cost.

``StatsSummariser`` is sans-I/O: feed it lines (``feed_line``) or records
(``add``) and read a ``StatsSummary``.  ``summarise_files`` is the I/O shell,
reading each file one line at a time.  Memory does not grow with the number of
lines: a group keeps counters and ``QuantileSketch``es (exact up to 1,024
values, then within 1 % relative error), and the optional timeline keeps at
most ``TIMELINE_BINS`` time bins per group, doubling their width as the covered
time grows.  It grows only with the number of distinct groups (models), and the
names of served models kept per group are capped at ``MAX_NAMES``.

Errors are the streams whose status is neither ``complete`` nor ``cancelled``
(``error``, ``timed_out``, ``truncated``); cancelled streams are counted apart,
since the caller chose to stop them.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from ._metrics_log import format_time
from ._sketch import QuantileSketch

__all__ = [
    "MAX_LINE",
    "TIMELINE_BINS",
    "GroupSummary",
    "StatsSummariser",
    "StatsSummary",
    "TimelinePoint",
    "parse_since",
    "read_lines",
    "render_table",
    "summarise_files",
    "summary_json",
]

GroupBy = Literal["model", "provider"]

MAX_LINE = 64 * 1024
"""Longer lines are skipped without being read into memory whole."""
TIMELINE_BINS = 120
# A chart needs less precision than the table, and the timeline holds many sketches.
_TIMELINE_ERROR = 0.05
MAX_NAMES = 32
"""Distinct served models (or providers) remembered per group; the rest count as other."""
OTHER = "(other)"
# The decoder's scanner (set in JSONDecoder.__init__; typeshed leaves it out).
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
UNKNOWN = "(unknown)"


# -- summaries (immutable) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """One time bin of one group: streams that ended in ``[start, start + width)``."""

    start: float
    """Epoch seconds."""
    width: float
    count: int
    errors: int
    ttft_p50: float | None
    ttft_p95: float | None


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """What ``rawsse stats`` reports for one model (or provider); times in seconds."""

    name: str
    count: int
    errors: int
    cancelled: int
    ttft_p50: float | None
    ttft_p95: float | None
    ttft_p99: float | None
    tokens_per_second_p50: float | None
    tokens_in: int
    tokens_out: int
    cost: float | None
    """The sum of the reported costs; None when no stream reported one."""
    served: tuple[tuple[str, int], ...]
    """Served models (or, grouped by provider, requested models) with counts, most first."""
    first: str | None
    last: str | None
    timeline: tuple[TimelinePoint, ...] = ()
    exact: bool = True
    """True when the quantiles are exact (few enough streams to keep every value)."""

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0


@dataclass(frozen=True, slots=True)
class StatsSummary:
    """A whole summary: the groups by name, and what was read."""

    by: GroupBy
    groups: Mapping[str, GroupSummary]
    models: Mapping[str, GroupSummary]
    """Always per requested model (equal to ``groups`` when ``by == "model"``)."""
    lines: int
    records: int
    skipped: int
    """Lines that were not version-1 records (blank, cut, not JSON, too long)."""
    filtered: int
    """Records before ``since``."""
    since: float | None


# -- the sans-I/O summariser ---------------------------------------------------------


class _Names:
    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, name: str) -> None:
        counts = self.counts
        if name in counts:
            counts[name] += 1
        elif len(counts) < MAX_NAMES:
            counts[name] = 1
        else:
            counts[OTHER] = counts.get(OTHER, 0) + 1

    def most_first(self) -> tuple[tuple[str, int], ...]:
        return tuple(sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))


class _Timeline:
    """At most ``TIMELINE_BINS`` bins of ``width`` seconds, aligned to the epoch."""

    __slots__ = ("bins", "width")

    def __init__(self) -> None:
        self.width = 1.0
        self.bins: dict[int, list[Any]] = {}  # index -> [count, errors, ttft sketch]

    def add(self, t: float, error: bool, ttft: float | None) -> None:
        i = math.floor(t / self.width)
        b = self.bins.get(i)
        if b is None:
            self.bins[i] = b = [0, 0, QuantileSketch(_TIMELINE_ERROR, exact_limit=64)]
            if len(self.bins) > TIMELINE_BINS:
                doublings = self._coarsen()  # replaces self.bins
                b = self.bins[i >> doublings]
        b[0] += 1
        b[1] += error
        if ttft is not None:
            b[2].add(ttft)

    def _coarsen(self) -> int:
        """Double the width until the bins fit; return how many times it doubled."""
        doublings = 0
        while len(self.bins) > TIMELINE_BINS:
            doublings += 1
            self.width *= 2
            merged: dict[int, list[Any]] = {}
            for i, (count, errors, sketch) in self.bins.items():
                j = i // 2
                m = merged.get(j)
                if m is None:
                    merged[j] = [count, errors, sketch]
                else:
                    m[0] += count
                    m[1] += errors
                    m[2].merge(sketch)
            self.bins = merged
        return doublings

    def points(self) -> tuple[TimelinePoint, ...]:
        return tuple(
            TimelinePoint(
                start=i * self.width,
                width=self.width,
                count=count,
                errors=errors,
                ttft_p50=sketch.quantile(0.5),
                ttft_p95=sketch.quantile(0.95),
            )
            for i, (count, errors, sketch) in sorted(self.bins.items())
        )


class _Group:
    __slots__ = (
        "cancelled",
        "cost",
        "errors",
        "first",
        "last",
        "n",
        "names",
        "timeline",
        "tokens_in",
        "tokens_out",
        "tps",
        "ttft",
    )

    def __init__(self, timeline: bool) -> None:
        self.n = 0
        self.errors = 0
        self.cancelled = 0
        self.ttft = QuantileSketch()
        self.tps = QuantileSketch()
        self.tokens_in = 0
        self.tokens_out = 0
        self.cost: float | None = None
        self.names = _Names()
        self.first: str | None = None
        self.last: str | None = None
        self.timeline = _Timeline() if timeline else None

    def count(
        self, get: Callable[[str], Any], stamp: str | None, t: float | None, name: str
    ) -> None:
        self.n += 1
        status = get("status")
        error = status != "complete" and status != "cancelled"
        if error:
            self.errors += 1
        elif status == "cancelled":
            self.cancelled += 1
        ttft = get("ttft")
        if type(ttft) is float or type(ttft) is int:
            self.ttft.add(ttft)
        else:
            ttft = None
        tps = get("tokens_per_second")
        if type(tps) is float or type(tps) is int:
            self.tps.add(tps)
        tokens = get("tokens_in")
        if type(tokens) is int:
            self.tokens_in += tokens
        tokens = get("tokens_out")
        if type(tokens) is int:
            self.tokens_out += tokens
        cost = get("cost")
        if (type(cost) is float or type(cost) is int) and math.isfinite(cost):
            self.cost = cost if self.cost is None else self.cost + cost
        self.names.add(name)
        if stamp is not None:
            if self.first is None or stamp < self.first:
                self.first = stamp
            if self.last is None or stamp > self.last:
                self.last = stamp
            if self.timeline is not None and t is not None:
                self.timeline.add(t, error, ttft)

    def summary(self, name: str) -> GroupSummary:
        return GroupSummary(
            name=name,
            count=self.n,
            errors=self.errors,
            cancelled=self.cancelled,
            ttft_p50=self.ttft.quantile(0.5),
            ttft_p95=self.ttft.quantile(0.95),
            ttft_p99=self.ttft.quantile(0.99),
            tokens_per_second_p50=self.tps.quantile(0.5),
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            cost=self.cost,
            served=self.names.most_first(),
            first=self.first,
            last=self.last,
            timeline=self.timeline.points() if self.timeline is not None else (),
            exact=self.ttft.exact and self.tps.exact,
        )


def _epoch(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


class StatsSummariser:
    """Summarise metrics-log records fed one at a time; ``summary()`` at any point.

    ``by`` picks the grouping of ``summary().groups``; ``since`` (epoch seconds)
    drops older records; ``timeline`` keeps TTFT over time per group (for the
    HTML page).
    """

    def __init__(
        self, *, by: GroupBy = "model", since: float | None = None, timeline: bool = False
    ) -> None:
        if by not in ("model", "provider"):
            raise ValueError(f"by must be 'model' or 'provider': {by!r}")
        self.by: GroupBy = by
        self.since = since
        self._since_text = format_time(since) if since is not None else None
        self._timeline = timeline
        self._models: dict[str, _Group] = {}
        self._providers: dict[str, _Group] = {}
        self.lines = 0
        self.records = 0
        self.skipped = 0
        self.filtered = 0

    def feed_line(self, line: bytes | str) -> None:
        """One line of a metrics log (with or without its newline)."""
        self.lines += 1
        try:
            text = line.decode("utf-8") if isinstance(line, bytes) else line
            # The JSON scanner alone: a record line starts with "{" (no whitespace to skip).
            record, end = _scan(text, 0)
        except (ValueError, StopIteration):  # not JSON, not UTF-8, blank: a cut or foreign line
            self.skipped += 1
            return
        if type(record) is not dict or record.get("v") != 1 or text[end:].strip():
            self.skipped += 1
            return
        self.add(record)

    def skip_line(self) -> None:
        """Count a line that was not fed (too long to read)."""
        self.lines += 1
        self.skipped += 1

    def add(self, record: Mapping[str, Any]) -> None:
        """One version-1 record (a dict as ``metrics_record`` makes it)."""
        get = record.get
        stamp = get("time")
        t: float | None = None
        if type(stamp) is not str:
            stamp = None
        elif len(stamp) != 24 or stamp[10] != "T" or stamp[23] != "Z":
            # Not the log's own format: normalise it, so that text order is time order.
            t = _epoch(stamp)
            stamp = format_time(t) if t is not None else None
        if self._since_text is not None and (stamp is None or stamp < self._since_text):
            self.filtered += 1
            return
        self.records += 1
        if self._timeline and stamp is not None and t is None:
            t = _epoch(stamp)
        model = _name(get("model"))
        self._group(self._models, model).count(get, stamp, t, _name(get("served_model")))
        if self.by == "provider":
            self._group(self._providers, _name(get("provider"))).count(get, stamp, t, model)

    def _group(self, groups: dict[str, _Group], name: str) -> _Group:
        g = groups.get(name)
        if g is None:
            groups[name] = g = _Group(self._timeline)
        return g

    def summary(self) -> StatsSummary:
        models = {name: g.summary(name) for name, g in sorted(self._models.items())}
        if self.by == "provider":
            groups = {name: g.summary(name) for name, g in sorted(self._providers.items())}
        else:
            groups = models
        return StatsSummary(
            by=self.by,
            groups=groups,
            models=models,
            lines=self.lines,
            records=self.records,
            skipped=self.skipped,
            filtered=self.filtered,
            since=self.since,
        )


def _name(value: object) -> str:
    """A record's model or provider name; ``UNKNOWN`` when it has none."""
    return value if type(value) is str and value else UNKNOWN


# -- I/O -----------------------------------------------------------------------------


def read_lines(path: str | Path, summariser: StatsSummariser) -> None:
    """Feed every line of ``path`` to ``summariser``, holding one line at a time."""
    with open(path, "rb") as f:
        while True:
            line = f.readline(MAX_LINE)
            if not line:
                return
            if len(line) == MAX_LINE and not line.endswith(b"\n"):
                # Too long to be a record: skip to the next newline, a block at a time.
                while line and not line.endswith(b"\n"):
                    line = f.readline(MAX_LINE)
                summariser.skip_line()
                continue
            summariser.feed_line(line)


def summarise_files(
    paths: Iterable[str | Path],
    *,
    by: GroupBy = "model",
    since: float | None = None,
    timeline: bool = False,
) -> StatsSummary:
    """Summarise metrics logs, one line at a time."""
    summariser = StatsSummariser(by=by, since=since, timeline=timeline)
    for path in paths:
        read_lines(path, summariser)
    return summariser.summary()


_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, *, now: float | None = None) -> float:
    """``--since``: an ISO date or date-time (UTC unless it says otherwise), or an age
    such as ``90m``, ``24h``, ``7d``; returns epoch seconds.  Raises ``ValueError``."""
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        age = timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
        return (time.time() if now is None else now) - age.total_seconds()
    t = _epoch(text)
    if t is None:
        raise ValueError(
            f"not a date: {text!r} (use 2026-11-30, 2026-11-30T07:00, "
            "2026-11-30T07:00:00+01:00, or an age like 24h or 7d)"
        )
    return t


# -- rendering -----------------------------------------------------------------------


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _group_json(g: GroupSummary) -> dict[str, Any]:
    return {
        "count": g.count,
        "errors": g.errors,
        "cancelled": g.cancelled,
        "error_rate": round(g.error_rate, 6),
        "ttft_p50": _seconds(g.ttft_p50),
        "ttft_p95": _seconds(g.ttft_p95),
        "ttft_p99": _seconds(g.ttft_p99),
        "tokens_per_second_p50": None
        if g.tokens_per_second_p50 is None
        else round(g.tokens_per_second_p50, 3),
        "tokens_in": g.tokens_in,
        "tokens_out": g.tokens_out,
        "cost": g.cost,
        "served": dict(g.served),
        "first": g.first,
        "last": g.last,
        "exact": g.exact,
    }


def summary_json(summary: StatsSummary) -> dict[str, Any]:
    """The ``rawsse stats --json`` document (``"models"`` is always there)."""
    doc: dict[str, Any] = {
        "v": 1,
        "by": summary.by,
        "since": None if summary.since is None else format_time(summary.since),
        "lines": summary.lines,
        "records": summary.records,
        "skipped": summary.skipped,
        "filtered": summary.filtered,
        "models": {name: _group_json(g) for name, g in summary.models.items()},
    }
    if summary.by == "provider":
        providers = {}
        for name, g in summary.groups.items():
            entry = _group_json(g)
            entry["models"] = entry.pop("served")
            providers[name] = entry
        doc["providers"] = providers
    return doc


def _cell_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _cell_cost(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"


def _served_cell(served: tuple[tuple[str, int], ...]) -> str:
    if not served:
        return "-"
    name = served[0][0]
    return name if len(served) == 1 else f"{name} (+{len(served) - 1})"


def table_rows(summary: StatsSummary) -> Iterator[list[str]]:
    """The table's header row, then one row per group."""
    by_provider = summary.by == "provider"
    yield [
        "provider" if by_provider else "model",
        "models" if by_provider else "served",
        "count",
        "errors",
        "ttft p50",
        "p95",
        "p99",
        "tok/s p50",
        "cost",
    ]
    for g in summary.groups.values():
        yield [
            g.name,
            _served_cell(g.served),
            f"{g.count:,}",
            f"{g.errors:,} ({g.error_rate:.1%})",
            _cell_s(g.ttft_p50),
            _cell_s(g.ttft_p95),
            _cell_s(g.ttft_p99),
            "-" if g.tokens_per_second_p50 is None else f"{g.tokens_per_second_p50:.1f}",
            _cell_cost(g.cost),
        ]


def render_table(summary: StatsSummary) -> str:
    """A plain-text table (times in seconds), one group per row, and a footer line."""
    rows = list(table_rows(summary))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    footer = f"{summary.records:,} streams (times in seconds)"
    if summary.skipped:
        footer += f"; {summary.skipped:,} lines skipped"
    if summary.filtered:
        footer += f"; {summary.filtered:,} before --since"
    if not all(g.exact for g in summary.groups.values()):
        footer += "; quantiles within 1%"
    lines.append(footer)
    return "\n".join(lines) + "\n"
