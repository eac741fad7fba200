"""``rawsse serve`` and ``rawsse demo`` as subprocesses, and the entry point itself."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import rawsse
from rawsse import accumulate, parse_chat_stream
from rawsse._cli import build_parser
from rawsse._cli.demo import run as run_demo
from rawsse.testing import load_cassette
from tests.conftest import FIXTURES

RECORDINGS = Path(rawsse.__file__).parent / "recordings"
DEMO = load_cassette(RECORDINGS / "demo.jsonl")
DEMO_TEXT = accumulate(parse_chat_stream(DEMO.body)).text
URL_LINE = re.compile(r"^http://127\.0\.0\.1:(\d+)/api/v1  \(rawsse fixture server: ")
SUMMARY = re.compile(
    r"^-- ttft \d+\.\d{3} s \| total \d+\.\d{3} s \| tokens 14 in / 78 out \| [\d.]+ tok/s \| "
    r"cost 0\.0000489 \| provider rawsse \| finish stop \| status complete$"
)


def _env(**extra: str) -> dict[str, str]:
    # No PYTHONUNBUFFERED: the URL line must reach the pipe because rawsse flushes it.
    drop = ("NO_COLOR", "OPENROUTER_API_KEY", "PYTHONUNBUFFERED")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def _rawsse(*args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rawsse", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(**env),
        check=False,
    )


def _read_line(proc: subprocess.Popen[str], timeout: float = 10) -> str:
    """The next stdout line, or fail after ``timeout`` (the pipe must not hold it back)."""
    box: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    assert box, f"no line from the server within {timeout} s"
    return box[0]


@pytest.fixture
def serve() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rawsse", "serve", "--port", "0", "--speed", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


# -- serve ----------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_prints_the_url_first_and_stops_cleanly(
    serve: subprocess.Popen[str], signum: int
) -> None:
    first = _read_line(serve)
    match = URL_LINE.match(first)
    assert match, first
    base_url = first.split()[0]
    curl = _read_line(serve)
    assert curl.startswith(f"curl --no-buffer {base_url}/chat/completions ")
    models = httpx.get(base_url + "/models").json()
    assert models["data"][0]["id"] == "rawsse/demo"
    body = httpx.post(
        base_url + "/chat/completions", json={"model": "rawsse/demo", "stream": True}
    ).content
    assert body == DEMO.body
    serve.send_signal(signum)
    out, err = serve.communicate(timeout=10)
    assert serve.returncode == 0
    assert "Traceback" not in err
    assert err.splitlines()[0].startswith("GET /api/v1/models model=- 200 ")
    assert err.splitlines()[1].startswith("POST /api/v1/chat/completions model=rawsse/demo 200 ")
    assert err.splitlines()[-1] == "rawsse serve: stopped"
    assert "\x1b[" not in first + out  # a pipe gets plain text


def test_serve_a_directory_given_on_the_command_line() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rawsse", "serve", str(FIXTURES / "cassettes"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        base_url = _read_line(proc).split()[0]
        ids = [m["id"] for m in httpx.get(base_url + "/models").json()["data"]]
        assert "openai/gpt-4o-mini" in ids
        assert "http_429_rate_limited" in ids or "google/gemini-2.5-flash" in ids
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "/nonexistent/dir"], "no such file or directory"),
        (["serve", "--port", "70000"], "not a port"),
        (["serve", "--speed", "-1"], "not a speed"),
        (["demo", "--model", "nope"], "no recording 'nope'; choose one of: rawsse/demo"),
        (["demo", "--speed", "fast"], "not a speed"),
        (["nosuchcommand"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_without_a_traceback(args: list[str], message: str) -> None:
    result = _rawsse(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_on_a_busy_port_is_a_usage_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _rawsse("serve", "--port", str(port))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "try --port 0" in result.stderr
    assert "Traceback" not in result.stderr


# -- demo -------------------------------------------------------------------------------


def test_demo_streams_the_shipped_recording_and_prints_the_summary() -> None:
    result = _rawsse("demo", "--speed", "20")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.match(
        r"^rawsse demo: rawsse/demo from a local fixture server at http://127\.0\.0\.1:\d+/api/v1 "
        r"\(no key, no network; recorded timing at 20x\)$",
        lines[0],
    )
    assert lines[1] == "> What are Server-Sent Events?"
    assert lines[2] == DEMO_TEXT
    assert SUMMARY.match(lines[3]), lines[3]
    assert lines[4].startswith("next: ")
    assert len(lines) == 5
    assert result.stderr == ""
    assert "\x1b[" not in result.stdout


def test_demo_takes_the_recorded_time_at_speed_1() -> None:
    result = _rawsse("demo")
    assert result.returncode == 0, result.stderr
    summary = next(line for line in result.stdout.splitlines() if line.startswith("-- "))
    total = float(re.search(r"total (\d+\.\d+) s", summary).group(1))  # type: ignore[union-attr]
    assert DEMO.chunks[-1][0] - 0.1 <= total < DEMO.chunks[-1][0] + 2.0


def test_demo_of_a_stream_error_exits_1_after_the_partial_text() -> None:
    result = _rawsse("demo", "--model", "rawsse/error-midstream", "--speed", "0")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[1] == "> Tell me about the moon."
    assert lines[2].startswith("The Moon is Earth's only natural satellite.")
    assert lines[3].endswith("| finish error | status error")
    assert result.stderr.splitlines() == [
        "error: the server sent an error in the stream: Provider returned error (code 502)"
    ]


@pytest.mark.parametrize("name", ["rawsse/tool-call", "reasoning"])
def test_demo_of_other_recordings(name: str) -> None:
    result = _rawsse("demo", "--model", name, "--speed", "0")
    assert result.returncode == 0, result.stderr
    assert "| status complete" in result.stdout


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _demo_args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{"model": "rawsse/demo", "speed": 0.0, **kw})


def test_demo_is_coloured_only_on_a_terminal_without_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    out, err = _Terminal(), io.StringIO()
    assert run_demo(_demo_args(), out=out, err=err) == 0
    assert "\x1b[32mcomplete\x1b[0m" in out.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    out = _Terminal()
    assert run_demo(_demo_args(), out=out, err=err) == 0
    assert "\x1b[" not in out.getvalue()
    assert DEMO_TEXT in out.getvalue()


def test_demo_never_sends_the_users_key(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-or-v1-" + "f" * 64
    monkeypatch.setenv("OPENROUTER_API_KEY", secret)
    out, err = io.StringIO(), io.StringIO()
    seen: list[str] = []
    real_send = httpx.Client.send

    def spy(self: httpx.Client, request: httpx.Request, **kw: object) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return real_send(self, request, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(httpx.Client, "send", spy)
    assert run_demo(_demo_args(), out=out, err=err) == 0
    assert seen
    assert all(secret not in value for value in seen)
    assert secret not in out.getvalue() + err.getvalue()


# -- the entry point ------------------------------------------------------------------------


def test_help_lists_every_subcommand() -> None:
    result = _rawsse("--help")
    assert result.returncode == 0
    for command in ("demo", "serve", "chat", "record", "inspect", "replay"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), command


def test_parser_dispatches_to_handlers() -> None:
    parser = build_parser()
    args = parser.parse_args(["serve", "--port", "0", "--speed", "instant"])
    assert (args.command, args.port, args.speed, args.dir, args.host) == (
        "serve",
        0,
        0.0,
        None,
        "127.0.0.1",
    )
    assert parser.parse_args(["inspect", "x.jsonl"]).command == "inspect"
    assert json.loads(json.dumps(vars(parser.parse_args(["demo"]))["speed"])) == 1.0
