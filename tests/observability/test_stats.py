"""``rawsse stats``'s engine: quantile sketch, summariser, table, JSON document and HTML page."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawsse._metrics import StreamMetrics, percentile
from rawsse._metrics_log import encode_record, format_time, metrics_record
from rawsse._sketch import QuantileSketch
from rawsse._stats import (
    MAX_LINE,
    TIMELINE_BINS,
    StatsSummariser,
    parse_since,
    render_table,
    summarise_files,
    summary_json,
)
from rawsse._stats_html import render_stats_html

T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z

# The peak resident memory of the process since its exec (VmHWM); ru_maxrss would
# also count the parent's memory from before the fork.
PEAK = """
def peak_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")
"""


def record(
    model: str | None = "m/a",
    *,
    at: float = T0,
    ttft: float | None = 0.5,
    status: str = "complete",
    served: str | None = None,
    provider: str | None = "P",
    cost: float | None = 0.001,
    tps: float | None = 100.0,
) -> dict[str, Any]:
    metrics = StreamMetrics(
        ttft=ttft,
        ttfb=None if ttft is None else ttft / 2,
        total=None if ttft is None else ttft + 1,
        attempts=1,
        status=status,
        model=served if served is not None else (None if model is None else model + "-v1"),
        provider=provider,
        prompt_tokens=10,
        completion_tokens=20,
        cost=cost,
        tokens_per_second=tps,
        request_model=model,
    )
    return metrics_record(metrics, now=at)


def write_log(path: Path, records: list[dict[str, Any]]) -> Path:
    with open(path, "wb") as f:
        for r in records:
            f.write(encode_record(r))
    return path


# -- QuantileSketch ------------------------------------------------------------------


def test_sketch_is_exact_and_matches_stream_metrics_while_small() -> None:
    values = [random.Random(3).uniform(0, 5) for _ in range(500)]
    sketch = QuantileSketch()
    for v in values:
        sketch.add(v)
    assert sketch.exact
    ordered = sorted(values)
    for q in (0.0, 0.5, 0.95, 0.99, 1.0):
        assert sketch.quantile(q) == percentile(ordered, q)


def test_sketch_empty_and_bad_arguments() -> None:
    sketch = QuantileSketch()
    assert sketch.quantile(0.5) is None
    assert len(sketch) == 0
    sketch.add(math.nan)
    assert sketch.count == 0
    with pytest.raises(ValueError, match="q must be"):
        sketch.quantile(1.5)
    with pytest.raises(ValueError, match="relative_error"):
        QuantileSketch(relative_error=0.0)
    with pytest.raises(ValueError, match="different relative errors"):
        sketch.merge(QuantileSketch(relative_error=0.05))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=1e-6, max_value=1e5, allow_nan=False),
            st.just(0.0),
            st.floats(min_value=-1.0, max_value=0.0),
        ),
        min_size=1,
        max_size=300,
    ),
    st.sampled_from([0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_sketch_relative_error_bound_once_binned(values: list[float], q: float) -> None:
    sketch = QuantileSketch(relative_error=0.01, exact_limit=0)
    for v in values:
        sketch.add(v)
    assert not sketch.exact
    true = percentile(sorted(max(v, 0.0) for v in values), q)
    got = sketch.quantile(q)
    assert got is not None
    if true <= 1e-9:
        assert got == 0.0
    else:
        assert abs(got - true) <= 0.0101 * true


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-3, max_value=100.0), max_size=200),
    st.lists(st.floats(min_value=1e-3, max_value=100.0), max_size=200),
)
def test_sketch_merge_equals_one_sketch_of_everything(a: list[float], b: list[float]) -> None:
    one, left, right = (QuantileSketch(exact_limit=50) for _ in range(3))
    for v in a + b:
        one.add(v)
    for v in a:
        left.add(v)
    for v in b:
        right.add(v)
    left.merge(right)
    assert left.count == one.count
    for q in (0.0, 0.5, 0.99, 1.0):
        x, y = left.quantile(q), one.quantile(q)
        assert x is None or y is None or abs(x - y) <= 0.0202 * y


def test_sketch_memory_is_bounded_by_the_value_range() -> None:
    sketch = QuantileSketch(exact_limit=0)
    for exponent in range(-300, 300):
        sketch.add(10.0**exponent)
    sketch.add(math.inf)
    # Clamped to [1e-9, 1e9]: at 1 % about 2,100 bins at most, whatever goes in.
    assert len(sketch._bins) <= 2100
    assert sketch.quantile(1.0) == pytest.approx(1e9, rel=0.011)


# -- the summariser -------------------------------------------------------------------


def test_summary_groups_by_requested_model_with_served_model_apart(tmp_path: Path) -> None:
    records = [
        record("m/a", ttft=0.1, served="m/a-2026"),
        record("m/a", ttft=0.3, served="m/a-2026"),
        record("m/a", ttft=0.2, served="m/a-2025", status="error", cost=None, tps=None),
        record("m/b", ttft=None, status="timed_out", cost=None, tps=None),
        record("m/b", ttft=1.5, status="cancelled"),
    ]
    s = summarise_files([write_log(tmp_path / "log.jsonl", records)])
    assert list(s.groups) == ["m/a", "m/b"]
    a, b = s.groups["m/a"], s.groups["m/b"]
    assert (a.count, a.errors, a.cancelled) == (3, 1, 0)
    assert (a.ttft_p50, a.ttft_p95, a.ttft_p99) == (0.2, 0.3, 0.3)
    assert a.cost == pytest.approx(0.002)
    assert a.served == (("m/a-2026", 2), ("m/a-2025", 1))
    assert a.tokens_per_second_p50 == 100.0
    assert (b.count, b.errors, b.cancelled, b.ttft_p50) == (2, 1, 1, 1.5)
    assert b.error_rate == 0.5
    assert (s.lines, s.records, s.skipped, s.filtered) == (5, 5, 0, 0)


def test_json_document_has_the_fixed_keys(tmp_path: Path) -> None:
    records = [record("m/a", ttft=0.25), record("m/a", ttft=0.75, status="error")]
    doc = summary_json(summarise_files([write_log(tmp_path / "log.jsonl", records)]))
    assert json.loads(json.dumps(doc)) == doc
    entry = doc["models"]["m/a"]
    assert {k: entry[k] for k in ("count", "errors", "ttft_p50", "ttft_p95", "ttft_p99")} == {
        "count": 2,
        "errors": 1,
        "ttft_p50": 0.25,  # nearest rank round(0.5 * 1) == 0, as in StreamMetrics
        "ttft_p95": 0.75,
        "ttft_p99": 0.75,
    }
    assert entry["cost"] == pytest.approx(0.002)
    assert entry["served"] == {"m/a-v1": 2}
    assert doc["by"] == "model"
    assert "providers" not in doc


def test_by_provider_keeps_models_and_adds_providers(tmp_path: Path) -> None:
    records = [
        record("m/a", provider="Alpha"),
        record("m/b", provider="Alpha"),
        record("m/b", provider=None),
    ]
    path = write_log(tmp_path / "log.jsonl", records)
    s = summarise_files([path], by="provider")
    assert list(s.groups) == ["(unknown)", "Alpha"]
    assert s.groups["Alpha"].served == (("m/a", 1), ("m/b", 1))
    doc = summary_json(s)
    assert set(doc["models"]) == {"m/a", "m/b"}
    assert doc["providers"]["Alpha"]["count"] == 2
    assert doc["providers"]["Alpha"]["models"] == {"m/a": 1, "m/b": 1}
    with pytest.raises(ValueError, match="by must be"):
        StatsSummariser(by="served")  # type: ignore[arg-type]


def test_bad_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    extra = [
        b"\n",
        b'{"v":1,"time":"2026-05-28T20:2',  # cut mid-write, no newline: the file's end
    ]
    middle = [
        b"not json\n",
        b'{"v":2,"model":"future"}\n',
        b"[1,2]\n",
        b"\xff\xfe\n",
        b"x" * (MAX_LINE * 2) + b"\n",
    ]
    path = tmp_path / "log.jsonl"
    with open(path, "wb") as f:
        f.write(encode_record(record("m/a")))
        f.writelines(middle)
        f.write(encode_record(record("m/a")))
        f.writelines(extra)
    s = summarise_files([path])
    assert (s.lines, s.records, s.skipped) == (9, 2, 7)
    assert s.groups["m/a"].count == 2
    assert "7 lines skipped" in render_table(s)


def test_records_from_other_writers_are_read() -> None:
    summariser = StatsSummariser(since=T0)
    summariser.feed_line('{"v": 1, "model": "x", "status": "complete", "ttft": 1}')  # no time
    summariser.add({"v": 1, "model": "x", "time": "2026-05-28T22:26:40+02:00", "ttft": 2})
    summariser.add({"v": 1, "model": "x", "time": "2026-05-28T20:26:41", "ttft": True})
    summariser.add({"v": 1, "model": "", "time": format_time(T0 + 5), "ttft": "fast"})
    s = summariser.summary()
    assert s.filtered == 1  # the one without a time cannot be placed after --since
    assert s.groups["x"].count == 2
    assert s.groups["x"].ttft_p50 == 2  # True is not a number of seconds
    assert s.groups["x"].first == format_time(T0)
    assert s.groups["(unknown)"].ttft_p50 is None


def test_since_filters_older_records(tmp_path: Path) -> None:
    records = [record("m/a", at=T0 + i * 3600, ttft=float(i + 1)) for i in range(5)]
    path = write_log(tmp_path / "log.jsonl", records)
    s = summarise_files([path], since=T0 + 2 * 3600)
    assert (s.records, s.filtered) == (3, 2)
    assert s.groups["m/a"].ttft_p50 == 4.0
    assert summary_json(s)["since"] == format_time(T0 + 2 * 3600)
    assert "2 before --since" in render_table(s)


def test_parse_since() -> None:
    assert parse_since("2026-05-28T20:26:40Z") == T0
    assert parse_since("2026-05-28T22:26:40+02:00") == T0
    assert parse_since("2026-05-28T20:26:40") == T0  # naive means UTC
    assert parse_since("2026-05-28") == T0 - (20 * 3600 + 26 * 60 + 40)
    assert parse_since("24h", now=T0) == T0 - 86400
    assert parse_since(" 7d ", now=T0) == T0 - 7 * 86400
    assert parse_since("90m", now=T0) == T0 - 5400
    with pytest.raises(ValueError, match="not a date"):
        parse_since("yesterday")


def test_table_rendering(tmp_path: Path) -> None:
    records = [
        record("openai/gpt-4o", ttft=0.25, served="openai/gpt-4o-2024"),
        record("openai/gpt-4o", ttft=0.5, served="openai/gpt-4o-2025", status="error"),
        record("x/tiny", ttft=None, cost=None, tps=None, status="error"),
    ]
    table = render_table(summarise_files([write_log(tmp_path / "l.jsonl", records)]))
    assert table == (
        "model          served                   count      errors  ttft p50    p95    p99"
        "  tok/s p50   cost\n"
        "-------------  -----------------------  -----  ----------  --------  -----  -----"
        "  ---------  -----\n"
        "openai/gpt-4o  openai/gpt-4o-2024 (+1)      2   1 (50.0%)     0.250  0.500  0.500"
        "      100.0  0.002\n"
        "x/tiny         x/tiny-v1                    1  1 (100.0%)         -      -      -"
        "          -      -\n"
        "3 streams (times in seconds)\n"
    )


def test_timeline_keeps_a_bounded_number_of_bins() -> None:
    summariser = StatsSummariser(timeline=True)
    for i in range(5000):
        summariser.add(record("m/a", at=T0 + i * 7.0, ttft=0.1 + (i % 10) / 100))
    (group,) = summariser.summary().groups.values()
    points = group.timeline
    assert 0 < len(points) <= TIMELINE_BINS
    assert sum(p.count for p in points) == 5000
    widths = {p.width for p in points}
    assert len(widths) == 1
    width = widths.pop()
    assert width * TIMELINE_BINS >= 5000 * 7.0
    assert all(p.start % width == 0 for p in points)
    assert [p.start for p in points] == sorted(p.start for p in points)


def test_html_page_is_self_contained_and_escaped(tmp_path: Path) -> None:
    hostile = '<script>alert("x")</script>'
    records = [record(hostile, at=T0 + i * 60, ttft=0.1 * (i + 1)) for i in range(5)]
    records += [record("m/plain", at=T0 + i * 60, ttft=0.2) for i in range(5)]
    s = summarise_files([write_log(tmp_path / "l.jsonl", records)], timeline=True)
    page = render_stats_html(s, title="TTFT & friends")
    assert hostile not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<script" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    assert page.count('class="series"') == 2
    assert "<title>TTFT &amp; friends</title>" in page
    assert 'id="summary"' in page
    empty = render_stats_html(summarise_files([write_log(tmp_path / "e.jsonl", [])]))
    assert "No streams with a time to first token" in empty


def big_log(path: Path, lines: int) -> Path:
    """``lines`` records over 4 models and ``lines`` seconds (1,000 distinct, repeated)."""
    rng = random.Random(5)
    distinct = [
        encode_record(record(f"vendor/model-{i % 4}", at=T0 + i, ttft=rng.lognormvariate(-1, 0.6)))
        for i in range(1000)
    ]
    with open(path, "wb") as f:
        for n in range(lines // 1000):
            # Shift each copy in time, so the timeline keeps coarsening.
            block = b"".join(distinct)
            f.write(block.replace(b'"time":"2026-05-2', f'"time":"20{26 + n // 5}-05-2'.encode()))
    return path


def traced_peak(path: Path, *, timeline: bool) -> int:
    tracemalloc.start()
    try:
        s = summarise_files([path], timeline=timeline)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(g.count for g in s.groups.values()) == s.records == s.lines
    return peak


def test_memory_does_not_grow_with_the_log(tmp_path: Path) -> None:
    # The speed for 10^6 lines is measured in bench/bench_stats.py.
    small = big_log(tmp_path / "small.jsonl", 5_000)
    big = big_log(tmp_path / "big.jsonl", 20_000)
    peaks = [traced_peak(small, timeline=False), traced_peak(big, timeline=False)]
    assert peaks[1] < 1.1 * peaks[0] + 16 * 1024, peaks  # four times the lines, same memory
    # The timeline's sketches fill up to a fixed size (120 bins a model, 5 % error).
    assert traced_peak(big, timeline=True) < 2 * 1024 * 1024


def test_100k_lines_without_holding_them(tmp_path: Path) -> None:
    path = big_log(tmp_path / "big.jsonl", 100_000)  # about 40 MB
    small = big_log(tmp_path / "small.jsonl", 1_000)
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc")
    script = PEAK + (
        "import sys\n"
        "from rawsse._stats import summarise_files\n"
        "s = summarise_files([sys.argv[1]], timeline=True)\n"
        "assert s.records == int(sys.argv[2]), s.records\n"
        "print(peak_kib())\n"
    )
    rss = []
    for log, n in ((small, 1_000), (path, 100_000)):
        out = subprocess.run(
            [sys.executable, "-c", script, str(log), str(n)],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        rss.append(int(out.stdout))  # KiB on Linux
    assert rss[1] - rss[0] < 16 * 1024, rss  # reading the file whole would add 40 MB
