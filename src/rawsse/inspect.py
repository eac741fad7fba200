"""See what a stream did: the sans-I/O inspector and its HTML report.

``inspect_stream(body)`` (or ``inspect_cassette(cassette)``) returns a
``StreamReport``: one row per network chunk and per SSE item with the typed chat
events it produced, the anomalies a naive client trips on, timing figures and
the stream's status, decided by ``rawsse.stream_status`` like everywhere else.
``render_html_report(report)`` draws it as one self-contained page.
"""

from __future__ import annotations

from . import _inspect, _inspect_report, _report_html
from ._inspect import StreamInspector as StreamInspector
from ._inspect import inspect_cassette as inspect_cassette
from ._inspect import inspect_stream as inspect_stream
from ._inspect_report import ANOMALY_KINDS as ANOMALY_KINDS
from ._inspect_report import DEFAULT_STALL_THRESHOLD as DEFAULT_STALL_THRESHOLD
from ._inspect_report import Anomaly as Anomaly
from ._inspect_report import ChunkRow as ChunkRow
from ._inspect_report import EventRow as EventRow
from ._inspect_report import Row as Row
from ._inspect_report import StreamReport as StreamReport
from ._inspect_report import event_to_dict as event_to_dict
from ._inspect_report import row_to_dict as row_to_dict
from ._inspect_report import sse_lines as sse_lines
from ._report_html import render_html_report as render_html_report

# What the three modules export, in ruff's order: constants, classes, then functions.
__all__ = sorted(
    [*_inspect.__all__, *_inspect_report.__all__, *_report_html.__all__],
    key=lambda name: (not name.isupper(), not name[0].isupper(), name),
)
