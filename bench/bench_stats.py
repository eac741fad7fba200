"""``rawsse stats`` on a large metrics log: time and peak memory, beside an exact baseline.

Writes a log of N lines (default 10^6, about 420 MB) in a temporary directory,
then summarises it, each contender in a fresh process (so peak RSS is its own),
turns interleaved, best of the rounds kept:

* rawsse: ``summarise_files`` (streaming, ``QuantileSketch`` per model);
* exact: the same streaming read, but every TTFT kept in a list and sorted at
  the end: the simplest exact answer, whose memory grows with the log.

Both must agree: the same counts, and TTFT p50/p95/p99 within 1 % per model.

    python bench/bench_stats.py [--lines 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from rawsse._metrics import StreamMetrics
from rawsse._metrics_log import encode_record, metrics_record

MODELS = ["openai/gpt-4o", "anthropic/claude-sonnet-4", "google/gemini-2.5-flash", "x/tiny"]
T0 = 1_780_000_000.0

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

RAWSSE = (
    PEAK
    + """
import json, sys, time
from rawsse._stats import summarise_files
started = time.perf_counter()
s = summarise_files([sys.argv[1]], timeline=sys.argv[2] == "html")
elapsed = time.perf_counter() - started
print(json.dumps({
    "seconds": elapsed,
    "rss_kib": peak_kib(),
    "models": {n: [g.count, g.errors, g.ttft_p50, g.ttft_p95, g.ttft_p99]
               for n, g in s.models.items()},
}))
"""
)

EXACT = (
    PEAK
    + """
import json, sys, time
from rawsse._metrics import percentile
started = time.perf_counter()
values, counts, errors = {}, {}, {}
with open(sys.argv[1], "rb") as f:
    for line in f:
        r = json.loads(line)
        m = r["model"]
        counts[m] = counts.get(m, 0) + 1
        errors[m] = errors.get(m, 0) + (r["status"] not in ("complete", "cancelled"))
        if r["ttft"] is not None:
            values.setdefault(m, []).append(r["ttft"])
out = {}
for m, v in values.items():
    v.sort()
    out[m] = [counts[m], errors[m], percentile(v, 0.5), percentile(v, 0.95), percentile(v, 0.99)]
elapsed = time.perf_counter() - started
print(json.dumps({
    "seconds": elapsed,
    "rss_kib": peak_kib(),
    "models": out,
}))
"""
)


def write_log(path: Path, lines: int) -> None:
    """``lines`` records: 10,000 distinct ones, repeated with the time moved on."""
    rng = random.Random(11)
    distinct = []
    for i in range(10_000):
        model = rng.choice(MODELS)
        ok = rng.random() > 0.03
        ttft = rng.lognormvariate(-1.2 + MODELS.index(model) * 0.3, 0.5)
        metrics = StreamMetrics(
            ttft=ttft,
            ttfb=ttft * 0.7,
            total=ttft + rng.uniform(1, 5),
            attempts=1,
            status="complete" if ok else "error",
            model=model + "-2026",
            provider="Provider",
            generation_id=f"gen-{i:08d}",
            gap_p50=0.01,
            gap_p95=0.04,
            gap_max=0.2,
            prompt_tokens=20,
            completion_tokens=300,
            reasoning_tokens=0,
            cost=0.0012,
            tokens_per_second=rng.uniform(50, 200),
            request_model=model,
            error_type=None if ok else "StreamError",
        )
        distinct.append(encode_record(metrics_record(metrics, now=T0 + i)))
    block = b"".join(distinct)
    with open(path, "wb") as f:
        for n in range(lines // len(distinct)):
            year = f'"time":"{2026 + n // 10}-'.encode()
            f.write(block.replace(b'"time":"2026-', year))


def run(script: str, path: Path, mode: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", script, str(path), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.jsonl"
        write_log(path, args.lines)
        size = path.stat().st_size
        contenders = {
            "rawsse stats (table, --json)": (RAWSSE, "table"),
            "rawsse stats --html (timeline)": (RAWSSE, "html"),
            "exact: keep and sort every TTFT": (EXACT, "table"),
        }
        best: dict[str, dict[str, object]] = {}
        for _ in range(args.rounds):
            for name, (script, mode) in contenders.items():
                r = run(script, path, mode)
                if name not in best or float(r["seconds"]) < float(best[name]["seconds"]):  # type: ignore[arg-type]
                    best[name] = r
    exact = best["exact: keep and sort every TTFT"]["models"]
    assert isinstance(exact, dict)
    for name, r in best.items():
        got = r["models"]
        assert isinstance(got, dict)
        assert set(got) == set(exact), name
        for model, (count, errors, *qs) in got.items():
            e_count, e_errors, *e_qs = exact[model]
            assert (count, errors) == (e_count, e_errors), (name, model)
            for q, e in zip(qs, e_qs, strict=True):
                assert abs(q - e) <= 0.0101 * e, (name, model, q, e)
    print(f"{args.lines:,} lines, {size / 1e6:.0f} MB; Python {platform.python_version()}")
    print(f"best of {args.rounds}, each in a fresh process; quantiles agree within 1 %\n")
    base = float(best["exact: keep and sort every TTFT"]["seconds"])  # type: ignore[arg-type]
    print(f"{'':34} {'seconds':>8} {'lines/s':>10} {'peak RSS':>10} {'time':>7}")
    for name, r in best.items():
        seconds = float(r["seconds"])  # type: ignore[arg-type]
        rss = int(r["rss_kib"]) / 1024  # type: ignore[call-overload]
        print(
            f"{name:34} {seconds:8.2f} {args.lines / seconds:10,.0f} {rss:8.1f} MB"
            f" {seconds / base:6.2f}×"
        )


if __name__ == "__main__":
    main()
