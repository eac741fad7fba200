"""``rawsse relay`` and ``rawsse demo --browser``: real processes, real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from rawsse import ServerSentEvent, SSEDecoder
from rawsse._cli import main
from rawsse.testing import FixtureServer

CHAT = {"model": "rawsse/demo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FixtureServer]:
    with FixtureServer(speed=0) as server:
        yield server


@contextmanager
def command(*argv: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    env = {**os.environ, "BROWSER": "true", "NO_COLOR": "1"}  # `true URL` opens nothing
    proc = subprocess.Popen(
        [sys.executable, "-m", "rawsse", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("http://127.0.0.1:"), (
            first,
            proc.stderr.read() if proc.stderr else "",
        )
        yield first.split()[0], proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def events(data: bytes) -> list[tuple[str, dict[str, object]]]:
    found = [e for e in SSEDecoder().feed(data) if isinstance(e, ServerSentEvent)]
    return [(e.event, json.loads(e.data)) for e in found]


def test_relay_serves_chat_models_and_the_demo_page(upstream: FixtureServer) -> None:
    argv = ("relay", "--upstream", upstream.base_url, "--port", "0", "--demo")
    with command(*argv) as (url, proc):
        assert url.endswith("/")
        models = httpx.get(url + "models").json()
        assert [m["id"] for m in models["data"]] == upstream.models  # from the upstream
        response = httpx.post(url + "chat", json=CHAT, timeout=10)
        assert response.status_code == 200
        assert events(response.content)[-1][0] == "done"
        assert httpx.get(url).status_code == 200
        assert httpx.get(url + "rawsse.js").headers["content-type"].startswith("text/javascript")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_relay_flags_reach_the_app(upstream: FixtureServer) -> None:
    argv = ("relay", "--upstream", upstream.base_url, "--port", "0", "--models",
            "rawsse/demo,rawsse/reasoning", "--heartbeat", "0.2", "--coalesce", "10",
            "--max-body", "300")  # fmt: skip
    with command(*argv) as (url, _):
        models = httpx.get(url + "models").json()
        assert [m["id"] for m in models["data"]] == ["rawsse/demo", "rawsse/reasoning"]
        assert httpx.get(url).status_code == 404  # no --demo
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 400}]}
        assert httpx.post(url + "chat", json=big).status_code == 413
        response = httpx.post(url + "chat", json=CHAT, timeout=10)
        texts = [d for n, d in events(response.content) if n == "text"]
        assert len(texts) == 1  # one coalescing window held the whole answer
        refused = httpx.post(url + "chat", json={**CHAT, "model": "rawsse/tool-call"})
        assert refused.status_code == 400


def test_demo_browser_runs_the_whole_chain_with_no_key() -> None:
    with command("demo", "--browser", "--speed", "0") as (url, _):
        page = httpx.get(url)
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        response = httpx.post(url + "chat", json=CHAT, timeout=10)
        assert events(response.content)[-1][1]["status"] == "complete"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--coalesce", "-1"], "must be >= 0 seconds"),
        (["--heartbeat", "x"], "not a number"),
        (["--max-body", "0"], "must be >= 1 byte"),
        (["--port", "70000"], "not a port"),
        (["--models", ","], "list at least one model"),
    ],
)
def test_bad_flags_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["relay", "--upstream", "http://127.0.0.1:9/api/v1", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_an_upstream_without_models_needs_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["relay", "--upstream", "http://127.0.0.1:9/api/v1", "--port", "0"]) == 2
    assert "--models a,b" in capsys.readouterr().err


def test_a_clear_message_when_uvicorn_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn -> ImportError
    argv = ["relay", "--upstream", "http://127.0.0.1:9/api/v1", "--models", "m", "--port", "0"]
    assert main(argv) == 2
    assert "pip install 'rawsse[relay]'" in capsys.readouterr().err
