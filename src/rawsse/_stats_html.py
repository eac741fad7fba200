"""A self-contained HTML page for a ``StatsSummary``: TTFT over time per group, and the table.

Like the stream report: one file, inline CSS and inline SVG, no scripts and no
external resources.  Model and provider names come from servers and logs, so
every string is escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from html import escape

from ._stats import GroupSummary, StatsSummary, TimelinePoint, table_rows
from ._svg import svg_frame

__all__ = ["render_stats_html"]

_W, _H = 960, 360
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 20, 50
_PLOT_W = _W - _LEFT - _RIGHT
_PLOT_H = _H - _TOP - _BOTTOM
_COLOURS = (
    "#0969da",
    "#cf222e",
    "#1a7f37",
    "#8250df",
    "#bf8700",
    "#1b7c83",
    "#bc4c00",
    "#57606a",
)

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
.sub{color:#57606a;margin:0 0 16px}
table{border-collapse:collapse;font:12px/1.35 ui-monospace,monospace}
th,td{border-bottom:1px solid #d0d7de;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.num{text-align:right;white-space:nowrap}
svg{border:1px solid #d0d7de;background:#fff;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#57606a}
.legend span{display:inline-block;margin-right:16px}
.sw{display:inline-block;width:12px;height:12px;vertical-align:-2px;margin-right:4px}
"""


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M")


def render_stats_html(summary: StatsSummary, *, title: str = "rawsse stats") -> str:
    """The whole page as a string; the summary needs ``timeline=True`` for the chart."""
    what = "provider" if summary.by == "provider" else "model"
    sub = f"{summary.records:,} streams, by {what}; times in seconds"
    if summary.skipped:
        sub += f"; {summary.skipped:,} lines skipped"
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
            f'<h1>{escape(title)}</h1>\n<p class="sub">{escape(sub)}</p>\n',
            f"<h2>Time to first token per {what}</h2>\n",
            _chart(summary),
            "<h2>Summary</h2>\n",
            _table(summary),
            "</body>\n</html>\n",
        ]
    )


def _table(summary: StatsSummary) -> str:
    rows = list(table_rows(summary))
    head = "".join(f"<th>{escape(cell)}</th>" for cell in rows[0])
    body = []
    for row in rows[1:]:
        cells = "".join(
            f"<td>{escape(c)}</td>" if i < 2 else f'<td class="num">{escape(c)}</td>'
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>\n")
    return (
        f'<table id="summary">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        f"{''.join(body)}</tbody>\n</table>\n"
    )


def _chart(summary: StatsSummary) -> str:
    series = [g for g in summary.groups.values() if any(p.ttft_p50 is not None for p in g.timeline)]
    if not series:
        return "<p>No streams with a time to first token.</p>\n"
    points = [p for g in series for p in g.timeline if p.ttft_p50 is not None]
    t0 = min(p.start for p in points)
    t1 = max(p.start + p.width for p in points)
    span = max(t1 - t0, 1.0)
    top = max(p.ttft_p95 or p.ttft_p50 or 0.0 for p in points) or 1.0

    def x_of(p: TimelinePoint) -> float:
        return _LEFT + (p.start + p.width / 2 - t0) / span * _PLOT_W

    def y_of(v: float) -> float:
        return _TOP + _PLOT_H - v / top * _PLOT_H

    svg = svg_frame(
        _W, _H, (_LEFT, _TOP, _PLOT_W, _PLOT_H), "time to first token over time", "ttft"
    )
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = _LEFT + frac * _PLOT_W
        y = _TOP + _PLOT_H - frac * _PLOT_H
        anchor = "start" if frac == 0.0 else "end" if frac == 1.0 else "middle"
        svg.append(
            f'<text x="{x:.1f}" y="{_TOP + _PLOT_H + 16}" text-anchor="{anchor}">'
            f"{escape(_when(t0 + frac * span))}</text>"
        )
        svg.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + _PLOT_W}" y2="{y:.1f}" '
            'stroke="#eaeef2"/>'
        )
        svg.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{frac * top:.3f}</text>'
        )
    svg.append(
        f'<text x="{_LEFT + _PLOT_W / 2}" y="{_H - 8}" text-anchor="middle">'
        "time (UTC); solid: median, dashed: 95th percentile</text>"
    )
    svg.append(
        f'<text x="14" y="{_TOP + _PLOT_H / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_TOP + _PLOT_H / 2})">TTFT (s)</text>'
    )
    legend = []
    for n, g in enumerate(series):
        colour = _COLOURS[n % len(_COLOURS)]
        svg.append(_series(g, n, colour, x_of, y_of))
        legend.append(
            f'<span><i class="sw" style="background:{colour}"></i>{escape(g.name)}</span>'
        )
    svg.append("</svg>")
    return "\n".join(svg) + f'\n<p class="legend">{"".join(legend)}</p>\n'


def _series(
    g: GroupSummary,
    n: int,
    colour: str,
    x_of: Callable[[TimelinePoint], float],
    y_of: Callable[[float], float],
) -> str:
    p50 = [(x_of(p), y_of(p.ttft_p50)) for p in g.timeline if p.ttft_p50 is not None]
    p95 = [(x_of(p), y_of(p.ttft_p95)) for p in g.timeline if p.ttft_p95 is not None]
    name = escape(g.name)
    parts = [f'<g class="series" data-name="{name}" id="series-{n}"><title>{name}</title>']
    if len(p95) > 1:
        parts.append(_polyline(p95, colour, ' stroke-dasharray="4 3" stroke-opacity="0.6"'))
    if len(p50) > 1:
        parts.append(_polyline(p50, colour, ""))
    for p in g.timeline:
        if p.ttft_p50 is None:
            continue
        tip = (
            f"{g.name}: {_when(p.start)} UTC, {p.count:,} streams, {p.errors:,} errors, "
            f"TTFT p50 {p.ttft_p50:.3f} s, p95 {p.ttft_p95 or 0.0:.3f} s"
        )
        parts.append(
            f'<circle cx="{x_of(p):.1f}" cy="{y_of(p.ttft_p50):.1f}" r="2.5" fill="{colour}">'
            f"<title>{escape(tip)}</title></circle>"
        )
    parts.append("</g>")
    return "".join(parts)


def _polyline(points: list[tuple[float, float]], colour: str, extra: str) -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"{extra}/>'
