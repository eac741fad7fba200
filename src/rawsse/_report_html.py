"""A self-contained HTML page for a ``StreamReport``: a timeline picture and the event table.

One file, inline CSS and inline SVG, no scripts and no external resources, so
it opens anywhere (and from a CI artifact).  Every string that came from the
stream is escaped: a stream is untrusted input.
"""

from __future__ import annotations

from html import escape

from ._chat_events import is_token
from ._inspect_report import ChunkRow, EventRow, StreamReport, sse_lines
from ._sse import Comment
from ._svg import svg_frame
from ._unicode import mend_surrogates

__all__ = ["render_html_report"]

_W, _H = 960, 320
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 70, 20, 50
_PLOT_W = _W - _LEFT - _RIGHT
_PLOT_H = _H - _TOP - _BOTTOM
_CELL_LIMIT = 300
_LABEL_ROW = 14  # px between rows of timeline labels
_CHAR_W = 6.5  # px: a generous width of one 11 px character, to keep labels apart

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
.sub{color:#57606a;margin:0 0 16px}
.status{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600}
.status.complete{background:#1a7f37}.status.truncated{background:#9a6700}
.status.error{background:#cf222e}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:0}
dl.facts dt{color:#57606a} dl.facts dd{margin:0}
ul.anomalies{padding-left:20px} ul.anomalies code{background:#f6f8fa;padding:0 4px}
table{border-collapse:collapse;width:100%;font:12px/1.35 ui-monospace,monospace}
th,td{border-bottom:1px solid #d0d7de;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f6f8fa;position:sticky;top:0}
td.num{text-align:right;white-space:nowrap}
tr.chunk td{background:#f6f8fa;color:#57606a}
tr.comment td{color:#9a6700}
tr.bad td{background:#ffebe9}
td.wrap{word-break:break-all;white-space:pre-wrap}
svg{border:1px solid #d0d7de;background:#fff;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#57606a}
.legend span{display:inline-block;margin-right:16px}
.sw{display:inline-block;width:12px;height:12px;vertical-align:-2px;margin-right:4px}
pre.answer,pre.reasoning{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;
padding:8px;margin:4px 0;font:13px/1.45 ui-monospace,monospace}
h3{font-size:14px;margin:12px 0 4px} .refusal{color:#cf222e}
table.tool-calls{width:auto;margin:4px 0} .none{color:#57606a}
"""


def _fmt(value: float | None, unit: str = " s") -> str:
    return "\u2013" if value is None else f"{value:.3f}{unit}"


def _cut(text: str, limit: int = _CELL_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\u2026 ({len(text):,} characters)"


def render_html_report(report: StreamReport, *, title: str = "rawsse stream report") -> str:
    """The whole page as a string (UTF-8 text, ready to write to a ``.html`` file)."""
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
        f"<h1>{escape(title)}</h1>\n",
        _summary(report),
        _answer(report),
        "<h2>Timeline</h2>\n",
        _timeline(report),
        _anomalies(report),
        "<h2>Chunks and events</h2>\n",
        _table(report),
        "</body>\n</html>\n",
    ]
    # Raw payloads may hold lone surrogates, which no encoder writes.
    return mend_surrogates("".join(parts))[0]


def _summary(report: StreamReport) -> str:
    result = report.result
    usage = result.usage
    choice = result.choices[0] if result.choices else None
    facts: list[tuple[str, str]] = [
        ("model", result.model or "\u2013"),
        ("provider", result.provider or "\u2013"),
        ("finish reason", (choice.finish_reason if choice else None) or "\u2013"),
        ("HTTP status", "\u2013" if report.http_status is None else str(report.http_status)),
        ("response headers", _fmt(report.response_t)),
        ("time to first token", _fmt(report.ttft)),
        ("total", _fmt(report.total)),
        ("bytes / chunks", f"{report.total_bytes:,} / {report.chunks:,}"),
        ("content deltas", f"{report.content_events:,}"),
        ("keep-alives", f"{report.keep_alives:,}"),
        ("[DONE]", "yes" if report.done else "no"),
    ]
    if usage is not None:
        facts.append(("tokens in / out", f"{usage.prompt_tokens} / {usage.completion_tokens}"))
        cost = "\u2013" if usage.cost is None else f"{usage.cost:.10f}".rstrip("0").rstrip(".")
        facts.append(("cost", cost or "0"))
    if report.end_error:
        facts.append(("cut by", report.end_error))
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    status = escape(report.status)
    return (
        f'<p class="sub">status <span class="status {status}" id="status">{status}</span>'
        f'</p>\n<dl class="facts">{rows}</dl>\n'
    )


def _answer(report: StreamReport) -> str:
    """The assembled message: per choice its text, reasoning, refusal and tool calls."""
    choices = report.result.choices
    if not choices:
        return '<h2>Answer</h2>\n<p class="none" id="answer">No answer.</p>\n'
    parts = ['<h2>Answer</h2>\n<div id="answer">']
    for choice in choices:
        parts.append(f'<section class="choice" data-index="{choice.index}">')
        if len(choices) > 1:
            finish = choice.finish_reason or "\u2013"
            parts.append(f"<h3>choice {choice.index} (finish {escape(finish)})</h3>")
        if choice.reasoning:
            parts.append(
                f"<details><summary>reasoning ({len(choice.reasoning):,} characters)</summary>"
                f'<pre class="reasoning">{escape(choice.reasoning)}</pre></details>'
            )
        if choice.content:
            parts.append(f'<pre class="answer">{escape(choice.content)}</pre>')
        elif not choice.tool_calls and choice.refusal is None:
            parts.append('<p class="none">No text.</p>')
        if choice.refusal is not None:
            parts.append(f'<p class="refusal">refusal: {escape(choice.refusal)}</p>')
        if choice.tool_calls:
            rows = "".join(
                f"<tr><td>{call.index}</td><td>{escape(call.id or '')}</td>"
                f"<td>{escape(call.type or '')}</td><td>{escape(call.name or '')}</td>"
                f'<td class="wrap">{escape(call.arguments)}</td></tr>'
                for call in choice.tool_calls
            )
            parts.append(
                '<table class="tool-calls"><thead><tr><th>#</th><th>id</th><th>type</th>'
                f"<th>tool</th><th>arguments</th></tr></thead><tbody>{rows}</tbody></table>"
            )
        parts.append("</section>")
    parts.append("</div>\n")
    return "".join(parts)


def _anomalies(report: StreamReport) -> str:
    if not report.anomalies:
        return "<h2>Anomalies</h2>\n<p>None.</p>\n"
    items = []
    for a in report.anomalies:
        when = "" if a.t is None else f" at {a.t:.3f} s"
        items.append(
            f'<li class="anomaly" data-kind="{escape(a.kind)}"><code>{escape(a.kind)}</code> '
            f"{escape(a.message)}{escape(when)}</li>"
        )
    return (
        f"<h2>Anomalies ({len(report.anomalies)})</h2>\n"
        f'<ul class="anomalies">{"".join(items)}</ul>\n'
    )


def _timeline(report: StreamReport) -> str:
    chunk_rows = [r for r in report.rows if isinstance(r, ChunkRow)]
    event_rows = [r for r in report.rows if isinstance(r, EventRow)]
    if report.timed:
        span = max(
            [report.total or 0.0]
            + [r.t for r in chunk_rows if r.t is not None]
            + [report.response_t or 0.0]
        )
        span = span or 1.0
        x_label = "seconds since the request was sent"

        def x_of_t(t: float | None, chunk: int) -> float:
            return _LEFT + (t or 0.0) / span * _PLOT_W
    else:
        span = float(max(len(chunk_rows), 1))
        x_label = "chunk number (a raw .sse body has no timing)"

        def x_of_t(t: float | None, chunk: int) -> float:
            return _LEFT + chunk / span * _PLOT_W

    total_bytes = max(report.total_bytes, 1)
    # Cumulative bytes, as a step line over chunk arrivals.
    points: list[tuple[float, float]] = [(_LEFT, _TOP + _PLOT_H)]
    cum = 0
    for row in chunk_rows:
        x = x_of_t(row.t, row.number)
        points.append((x, _y(cum, total_bytes)))
        cum += row.size
        points.append((x, _y(cum, total_bytes)))
    # Cumulative content deltas (the closest the wire has to tokens).
    tokens = [0]
    token_points: list[tuple[float, float]] = [(_LEFT, _TOP + _PLOT_H)]
    total_tokens = max(sum(1 for r in event_rows for e in r.events if is_token(e)), 1)
    for erow in event_rows:
        n = sum(1 for e in erow.events if is_token(e))
        if n:
            x = x_of_t(erow.t, erow.chunk)
            token_points.append((x, _y(tokens[0], total_tokens)))
            tokens[0] += n
            token_points.append((x, _y(tokens[0], total_tokens)))
    svg = svg_frame(_W, _H, (_LEFT, _TOP, _PLOT_W, _PLOT_H), "stream timeline", "timeline")
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = _LEFT + frac * _PLOT_W
        label = f"{frac * span:.2f}" if report.timed else f"{round(frac * span)}"
        svg.append(
            f'<line x1="{x:.1f}" y1="{_TOP + _PLOT_H}" x2="{x:.1f}" '
            f'y2="{_TOP + _PLOT_H + 4}" stroke="#57606a"/>'
        )
        svg.append(
            f'<text x="{x:.1f}" y="{_TOP + _PLOT_H + 16}" text-anchor="middle">{label}</text>'
        )
        y = _TOP + _PLOT_H - frac * _PLOT_H
        svg.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{round(frac * report.total_bytes):,}</text>"
        )
        svg.append(
            f'<text x="{_LEFT + _PLOT_W + 6}" y="{y + 4:.1f}">{round(frac * (tokens[0])):,}</text>'
        )
    svg.append(
        f'<text x="{_LEFT + _PLOT_W / 2}" y="{_H - 8}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    svg.append(
        f'<text x="14" y="{_TOP + _PLOT_H / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_TOP + _PLOT_H / 2})">bytes</text>'
    )
    svg.append(
        f'<text x="{_W - 14}" y="{_TOP + _PLOT_H / 2}" text-anchor="middle" '
        f'transform="rotate(90 {_W - 14} {_TOP + _PLOT_H / 2})">content deltas</text>'
    )
    labels: list[tuple[str, float, str, str]] = []  # (class, x, colour, text)
    # Stalls first, so the lines draw over them.
    for a in report.anomalies:
        if a.kind == "stall" and a.t is not None and report.timed:
            stop = a.t + (a.duration or 0.0)
            x1, x2 = x_of_t(a.t, 0), x_of_t(stop, 0)
            svg.append(
                f'<rect class="stall" x="{x1:.1f}" y="{_TOP}" width="{max(x2 - x1, 1):.1f}" '
                f'height="{_PLOT_H}" fill="#cf222e" fill-opacity="0.12">'
                f"<title>stall: {escape(a.message)}</title></rect>"
            )
            labels.append(("stall", x1, "#cf222e", f"stall {a.duration or 0.0:.3f} s"))
    svg.append(_polyline("bytes", points, "#0969da"))
    svg.append(_polyline("tokens", token_points, "#1a7f37"))
    for erow in event_rows:
        if isinstance(erow.item, Comment):
            x = x_of_t(erow.t, erow.chunk)
            svg.append(
                f'<line class="keep-alive" x1="{x:.1f}" y1="{_TOP + _PLOT_H - 10}" '
                f'x2="{x:.1f}" y2="{_TOP + _PLOT_H}" stroke="#bf8700" stroke-width="2">'
                f"<title>keep-alive at {_fmt(erow.t)}</title></line>"
            )
    if report.response_t is not None and report.timed:
        x = x_of_t(report.response_t, 0)
        svg.append(_marker("headers", x, "#8c959f"))
        labels.append(("headers", x, "#8c959f", f"headers {report.response_t:.3f} s"))
    if report.ttft is not None:
        x = x_of_t(report.ttft, 0)
        svg.append(_marker("ttft", x, "#8250df"))
        labels.append(("ttft", x, "#8250df", f"TTFT {report.ttft:.3f} s"))
    svg += _labels(labels)
    for a in report.anomalies:
        if a.kind == "in_band_error" and a.t is not None:
            x = x_of_t(a.t, 0)
            svg.append(
                f'<circle class="in-band-error" cx="{x:.1f}" cy="{_TOP + 8}" r="5" '
                f'fill="#cf222e"><title>in-band error: {escape(a.message)}</title></circle>'
            )
    svg.append("</svg>")
    legend = (
        '<p class="legend">'
        '<span><i class="sw" style="background:#0969da"></i>cumulative bytes</span>'
        '<span><i class="sw" style="background:#1a7f37"></i>cumulative content deltas '
        "(\u2248 tokens)</span>"
        '<span><i class="sw" style="background:#bf8700"></i>keep-alive</span>'
        '<span><i class="sw" style="background:#cf222e;opacity:.3"></i>stall</span>'
        '<span><i class="sw" style="background:#8250df"></i>time to first token</span>'
        "</p>\n"
    )
    return "\n".join(svg) + "\n" + legend


def _y(value: int, top: int) -> float:
    return _TOP + _PLOT_H - value / top * _PLOT_H


def _polyline(name: str, points: list[tuple[float, float]], colour: str) -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return (
        f'<polyline class="{name}" points="{coords}" fill="none" stroke="{colour}" '
        'stroke-width="2"/>'
    )


def _marker(name: str, x: float, colour: str) -> str:
    return (
        f'<g class="{name}"><line x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" y2="{_TOP + _PLOT_H}" '
        f'stroke="{colour}" stroke-dasharray="4 3"/></g>'
    )


def _labels(labels: list[tuple[str, float, str, str]]) -> list[str]:
    """Label texts beside their lines, in rows so that none overlaps another.

    A label goes right of its line, or left of it where it would pass the plot's
    right edge; each takes the first row where it clears the labels already there.
    """
    rows: list[list[tuple[float, float]]] = []  # per row, the (left, right) spans taken
    out = []
    for name, x, colour, text in sorted(labels, key=lambda label: label[1]):
        width = len(text) * _CHAR_W
        left, anchor = x + 4, "start"
        if left + width > _LEFT + _PLOT_W:
            left, anchor = x - 4 - width, "end"
        if left < _LEFT:
            left, anchor = float(_LEFT), "start"
        span = (left - 2, left + width + 2)
        row = next(
            (
                i
                for i, taken in enumerate(rows)
                if all(span[0] >= b or span[1] <= a for a, b in taken)
            ),
            len(rows),
        )
        if row == len(rows):
            rows.append([])
        rows[row].append(span)
        tx = left + width if anchor == "end" else left
        y = _TOP + 12 + row * _LABEL_ROW
        out.append(
            f'<text class="{name}-label" x="{tx:.1f}" y="{y}" text-anchor="{anchor}" '
            f'data-left="{span[0] + 2:.1f}" data-right="{span[1] - 2:.1f}" '
            f'style="fill:{colour}">{escape(text)}</text>'
        )
    return out


def _table(report: StreamReport) -> str:
    out = [
        "<table>\n<thead><tr><th>t (s)</th><th>chunk</th><th>bytes</th><th>row</th>"
        "<th>SSE</th><th>typed events</th></tr></thead>\n<tbody>\n"
    ]
    for row in report.rows:
        t = "\u2013" if row.t is None else f"{row.t:.3f}"
        if isinstance(row, ChunkRow):
            out.append(
                f'<tr class="chunk"><td class="num">{t}</td><td class="num">{row.number}</td>'
                f'<td class="num">{row.size:,}</td><td>chunk</td>'
                f"<td>offset {row.offset:,}</td><td></td></tr>\n"
            )
            continue
        item = row.item
        if isinstance(item, Comment):
            kind, sse, cls = "comment", ": " + item.text, "comment"
        else:
            kind, cls = "event", "event"
            sse = "\n".join(sse_lines(item))
        if row.error is not None:
            cls += " bad"
        typed = "\n".join(repr(e) for e in row.events)
        if row.error is not None:
            typed = (typed + "\n" if typed else "") + f"error: {row.error}"
        out.append(
            f'<tr class="{cls}"><td class="num">{t}</td><td class="num">{row.chunk}</td>'
            f'<td class="num">{row.size:,}</td><td>{kind}</td>'
            f'<td class="wrap">{escape(_cut(sse))}</td>'
            f'<td class="wrap">{escape(_cut(typed))}</td></tr>\n'
        )
    out.append("</tbody>\n</table>\n")
    return "".join(out)
