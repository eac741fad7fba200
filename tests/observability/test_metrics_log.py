"""The metrics log: the version-1 record, and ``MetricsLog`` under concurrent writers."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from rawsse._metrics import StreamMetrics
from rawsse._metrics_log import (
    FIELDS,
    MAX_FIELD,
    MetricsLog,
    encode_record,
    format_time,
    metrics_record,
)

T0 = 1_780_000_000.0

FULL = StreamMetrics(
    ttft=0.1234567891,
    total=1.5,
    attempts=2,
    ttfb=0.05,
    status="complete",
    model="openai/gpt-4o-2024-08-06",
    provider="OpenAI",
    generation_id="gen-1",
    content_events=10,
    events=14,
    keepalives=2,
    reads=9,
    bytes_received=4321,
    gap_p50=0.01,
    gap_p95=0.02,
    gap_max=0.03,
    prompt_tokens=12,
    completion_tokens=34,
    reasoning_tokens=5,
    cost=0.00042,
    tokens_per_second=123.45678,
    request_model="openai/gpt-4o",
    error_type=None,
)


def read_records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_record_has_every_field_in_order() -> None:
    record = metrics_record(FULL, now=T0)
    assert tuple(record) == FIELDS
    assert record == {
        "v": 1,
        "time": "2026-05-28T20:26:40.000Z",
        "model": "openai/gpt-4o",
        "served_model": "openai/gpt-4o-2024-08-06",
        "provider": "OpenAI",
        "status": "complete",
        "error_type": None,
        "ttft": 0.123457,
        "ttfb": 0.05,
        "total": 1.5,
        "gap_p50": 0.01,
        "gap_p95": 0.02,
        "gap_max": 0.03,
        "tokens_in": 12,
        "tokens_out": 34,
        "tokens_reasoning": 5,
        "tokens_per_second": 123.457,
        "cost": 0.00042,
        "attempts": 2,
        "continuations": 0,
        "generation_id": "gen-1",
    }


def test_empty_metrics_give_nulls_not_missing_keys() -> None:
    record = metrics_record(StreamMetrics(), now=T0)
    assert tuple(record) == FIELDS
    assert {k for k, v in record.items() if v is not None} == {
        "v",
        "time",
        "attempts",
        "continuations",
    }


def test_time_format() -> None:
    assert format_time(T0 + 0.9999) == "2026-05-28T20:26:40.999Z"
    assert format_time(0.0) == "1970-01-01T00:00:00.000Z"


def test_lines_are_short_whatever_the_server_sends() -> None:
    huge = "m" * 10_000
    metrics = StreamMetrics(model=huge, provider=huge, generation_id=huge, request_model=huge)
    line = encode_record(metrics_record(metrics, now=T0))
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert len(line) < 2048
    assert json.loads(line)["model"] == "m" * MAX_FIELD


def test_non_finite_numbers_become_null() -> None:
    metrics = StreamMetrics(ttft=float("nan"), cost=float("inf"), tokens_per_second=float("inf"))
    record = metrics_record(metrics, now=T0)
    assert (record["ttft"], record["cost"], record["tokens_per_second"]) == (None, None, None)
    assert b"NaN" not in encode_record(record)


def test_unicode_is_kept_and_newlines_escaped() -> None:
    metrics = StreamMetrics(model="modèle\n数据", request_model="a\u2028b")
    line = encode_record(metrics_record(metrics, now=T0))
    assert line.count(b"\n") == 1
    assert json.loads(line)["served_model"] == "modèle\n数据"


def test_sink_appends_and_keeps_what_was_there(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"v":1,"model":"earlier"}\n')
    with MetricsLog(path) as log:
        log(FULL)
        log(StreamMetrics(status="cancelled"))
        assert repr(log) == f"MetricsLog({str(path)!r})"
    assert log.closed
    records = read_records(path)
    assert [r["model"] for r in records] == ["earlier", "openai/gpt-4o", None]
    assert records[2]["status"] == "cancelled"
    with pytest.raises(ValueError, match="closed"):
        log(FULL)
    log.close()  # twice is fine


def test_sink_never_writes_secrets_or_content(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    with MetricsLog(path) as log:
        log(FULL)
    assert set(read_records(path)[0]) == set(FIELDS)


def test_a_failed_write_is_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    caplog.set_level(logging.WARNING, logger="rawsse.metrics")
    with MetricsLog("/dev/full") as log:
        log(FULL)  # ENOSPC: the stream that reported it must not fail
    (warning,) = caplog.records
    assert "record dropped" in warning.getMessage()


def test_threads_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    per_thread = 300
    with MetricsLog(path) as log:

        def work(n: int) -> None:
            for i in range(per_thread):
                log(StreamMetrics(request_model=f"t{n}", generation_id=f"{n}-{i}" + "x" * 150))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    records = read_records(path)
    assert len(records) == 8 * per_thread
    assert len({r["generation_id"] for r in records}) == 8 * per_thread


@pytest.mark.anyio
async def test_tasks_share_one_log(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    with MetricsLog(path) as log:

        async def work(n: int) -> None:
            for i in range(50):
                log(StreamMetrics(request_model=f"task{n}", generation_id=f"{n}-{i}"))
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            for n in range(10):
                tg.start_soon(work, n)
    assert len({r["generation_id"] for r in read_records(path)}) == 500


def test_processes_append_to_one_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    script = (
        "import sys\n"
        "from rawsse._metrics import StreamMetrics\n"
        "from rawsse._metrics_log import MetricsLog\n"
        "log = MetricsLog(sys.argv[1])\n"
        "for i in range(400):\n"
        "    log(StreamMetrics(request_model=sys.argv[2], generation_id=f'{sys.argv[2]}-{i}'"
        " + 'y' * 300))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), f"p{n}"]) for n in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    records = read_records(path)  # every line parses: none was torn or interleaved
    assert len(records) == 1600
    assert {r["model"] for r in records} == {"p0", "p1", "p2", "p3"}
    assert len({r["generation_id"] for r in records}) == 1600
