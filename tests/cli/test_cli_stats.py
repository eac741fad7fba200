"""``rawsse stats``, ``rawsse bench`` and ``rawsse chat --metrics`` end to end."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rawsse._cli import main
from rawsse._metrics import StreamMetrics
from rawsse._metrics_log import encode_record, metrics_record
from rawsse.testing import FixtureServer

T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENROUTER_API_KEY", "RAWSSE_API_KEY", "RAWSSE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def fixtures() -> Iterator[FixtureServer]:
    with FixtureServer(speed=20.0) as server:
        yield server


def write_log(path: Path) -> Path:
    rows = [
        ("a/fast", 0.1, "complete", T0),
        ("a/fast", 0.2, "complete", T0 + 60),
        ("a/fast", 0.3, "error", T0 + 120),
        ("b/slow", 1.0, "complete", T0 + 3600),
        ("b/slow", 2.0, "cancelled", T0 + 7200),
    ]
    with open(path, "wb") as f:
        for model, ttft, status, at in rows:
            metrics = StreamMetrics(
                ttft=ttft,
                status=status,
                model=model + "-v2",
                provider="Prov" if model == "a/fast" else "Other",
                cost=0.5,
                tokens_per_second=10.0,
                request_model=model,
            )
            f.write(encode_record(metrics_record(metrics, now=at)))
    return path


def test_stats_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write_log(tmp_path / "m.jsonl")
    assert main(["stats", str(log)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == [
        "model", "served", "count", "errors", "ttft", "p50", "p95", "p99", "tok/s", "p50", "cost",
    ]  # fmt: skip
    assert lines[2].split() == [
        "a/fast", "a/fast-v2", "3", "1", "(33.3%)", "0.200", "0.300", "0.300", "10.0", "1.5",
    ]  # fmt: skip
    assert lines[3].split() == [
        "b/slow", "b/slow-v2", "2", "0", "(0.0%)", "1.000", "2.000", "2.000", "10.0", "1",
    ]  # fmt: skip
    assert lines[4] == "5 streams (times in seconds)"


def test_stats_json_by_provider_since_and_several_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write_log(tmp_path / "1.jsonl")
    second = write_log(tmp_path / "2.jsonl")
    argv = ["stats", str(first), str(second), "--json", "--by", "provider"]
    assert main([*argv, "--since", "2026-05-28T20:27:00Z"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["models"]["a/fast"]["count"] == 4  # two files, the first record of each before
    assert doc["models"]["a/fast"]["ttft_p50"] == 0.3  # of 0.2, 0.2, 0.3, 0.3: rank 2
    assert doc["models"]["b/slow"]["errors"] == 0
    assert doc["models"]["b/slow"]["cancelled"] == 2
    assert set(doc["providers"]) == {"Prov", "Other"}
    assert doc["filtered"] == 2
    assert doc["since"] == "2026-05-28T20:27:00.000Z"


def test_stats_html_and_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = write_log(tmp_path / "m.jsonl")
    page = tmp_path / "ttft.html"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(log.read_bytes())))
    assert main(["stats", "-", "--html", str(page)]) == 0
    captured = capsys.readouterr()
    assert "5 streams" in captured.out
    assert captured.err == f"wrote {page}\n"
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert html.count('class="series"') == 2


def test_stats_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["stats", "x.jsonl", "--since", "yesterday"])
    assert exit_info.value.code == 2
    assert "not a date" in capsys.readouterr().err


def test_bench_against_the_fixture_server_needs_no_key(
    fixtures: FixtureServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "bench.jsonl"
    log.write_text('{"v":1,"model":"earlier"}\n')
    argv = ["bench", "rawsse/demo", "rawsse/reasoning", "--runs", "3", "--concurrency", "2"]
    argv += ["--base-url", fixtures.base_url, "--metrics", str(log), "--prompt", "hello"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:4]}
    assert set(rows) == {"rawsse/demo", "rawsse/reasoning"}
    assert all(row[2:4] == ["3", "0"] for row in rows.values())
    assert "6 streams (times in seconds)" in out
    assert "fastest median TTFT: rawsse/" in out
    assert f"appended to {log}" in out
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[0] == {"v": 1, "model": "earlier"}
    assert sorted(r["model"] for r in records[1:]) == ["rawsse/demo"] * 3 + ["rawsse/reasoning"] * 3
    assert all(r["status"] == "complete" and r["ttft"] is not None for r in records[1:])


def test_bench_counts_failures(
    fixtures: FixtureServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "bench.jsonl"
    argv = ["bench", "rawsse/error-midstream", "--runs", "2", "--json"]
    argv += ["--base-url", fixtures.base_url, "--metrics", str(log)]
    assert main(argv) == 1  # every run failed
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["models"]["rawsse/error-midstream"]["errors"] == 2
    assert captured.err.startswith("error: rawsse/error-midstream: StreamError: ")
    assert len(log.read_text().splitlines()) == 2


def test_bench_without_a_key_for_openrouter_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "x/y", "--metrics", str(tmp_path / "m.jsonl")]) == 2
    assert "no API key" in capsys.readouterr().err
    assert not (tmp_path / "m.jsonl").exists()


def test_chat_metrics_appends_one_record(
    fixtures: FixtureServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "chat.jsonl"
    argv = ["chat", "rawsse/demo", "hi", "--base-url", fixtures.base_url, "--metrics", str(log)]
    assert main(argv) == 0
    assert main(argv) == 0
    capsys.readouterr()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["model"], r["status"]) for r in records] == [("rawsse/demo", "complete")] * 2
    assert all(r["ttft"] is not None and r["tokens_out"] for r in records)
