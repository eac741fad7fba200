"""``rawsse chat`` never prints the key, and writes any result: real processes, real TCP.

The key arrives with a line end (a file, a CRLF ``.env``), with a control
character inside, or in a URL's ``user:password@`` part; the stream carries lone
surrogates in fields rawsse keeps verbatim.  Output goes to a UTF-8 pipe, as in
``rawsse chat ... | jq``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import rawsse_cli
from tests.hostile_server import HostileServer, Plan

KEY = "sk-or-v1-CLIHOSTILE0123456789SECRET"
DONE = b"data: [DONE]\n\n"
# A tool call whose id and name, and a usage object whose extra field, hold lone
# surrogates: the decoder mends text, but keeps these fields verbatim.
ODD = (
    b'data: {"id":"gen-1","model":"m","choices":[{"index":0,"delta":{"content":"Hi \\ud83d",'
    b'"tool_calls":[{"index":0,"id":"call\\udc00","type":"function","function":'
    b'{"name":"f\\ud83d","arguments":"{}"}}]},"finish_reason":null}]}\n\n'
    b'data: {"id":"gen-1","model":"m","choices":[{"index":0,"delta":{},'
    b'"finish_reason":"tool_calls","note":"\\udead"}],'
    b'"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"odd":"\\ud800"}}\n\n'
)


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def rawsse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``rawsse_cli`` with the command writing UTF-8 whatever the locale (read strictly)."""
    full_env = {"PYTHONIOENCODING": "utf-8", **(env or {})}
    if "RAWSSE_TEST_SRC" in os.environ:  # run another checkout's rawsse
        full_env["PYTHONPATH"] = os.environ["RAWSSE_TEST_SRC"]
    return rawsse_cli(*args, env=full_env)


def ok_plan() -> Plan:
    body = b'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n'
    return Plan(body=lambda: [body, DONE])


# -- the key ------------------------------------------------------------------------------


@pytest.mark.parametrize("json_out", [False, True], ids=["live", "json"])
@pytest.mark.parametrize(
    "raw_key", [f"{KEY}\n", f"{KEY}\r\n", f" {KEY} "], ids=["lf", "crlf", "sp"]
)
def test_a_key_with_a_line_end_is_stripped_and_never_printed(
    hostile: HostileServer, raw_key: str, json_out: bool
) -> None:
    plan = ok_plan()
    url = hostile.url("cli-key", plan)
    args = ["chat", "m", "hi", "--base-url", url, *(["--json"] if json_out else [])]
    proc = rawsse(*args, env={"RAWSSE_API_KEY": raw_key})
    assert proc.returncode == 0, proc.stderr
    assert plan.requests[-1]["authorization"] == f"Bearer {KEY}"
    assert KEY not in proc.stdout + proc.stderr
    if json_out:
        assert json.loads(proc.stdout)["text"] == "ok"


@pytest.mark.parametrize("json_out", [False, True], ids=["live", "json"])
def test_a_key_with_a_control_character_is_refused_without_echoing_it(
    hostile: HostileServer, json_out: bool
) -> None:
    url = hostile.url("cli-key", ok_plan())
    args = ["chat", "m", "hi", "--base-url", url, *(["--json"] if json_out else [])]
    proc = rawsse(*args, env={"RAWSSE_API_KEY": f"{KEY[:12]}\x01{KEY[12:]}"})
    assert proc.returncode == 2
    assert "control character" in proc.stderr
    assert KEY[:12] not in proc.stdout + proc.stderr
    assert KEY[12:] not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_verbose_redacts_the_url_password_and_the_key(hostile: HostileServer) -> None:
    url = hostile.url("cli-key", ok_plan()).replace("http://", "http://alice:hunter2pw@")
    proc = rawsse(
        "chat", "m", "hi", "--base-url", url, "--verbose", env={"RAWSSE_API_KEY": f"{KEY}\n"}
    )
    assert "hunter2pw" not in proc.stdout + proc.stderr
    assert "alice" not in proc.stderr
    assert "> POST http://***@127.0.0.1:" in proc.stderr
    assert KEY not in proc.stdout + proc.stderr


# -- text that cannot be written ----------------------------------------------------------


@pytest.mark.parametrize("json_out", [False, True], ids=["live", "json"])
def test_chat_writes_fields_holding_lone_surrogates(hostile: HostileServer, json_out: bool) -> None:
    url = hostile.url("cli-odd", Plan(body=lambda: [ODD, DONE]))
    args = ["chat", "m", "hi", "--base-url", url, *(["--json"] if json_out else [])]
    proc = rawsse(*args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    if json_out:
        doc = json.loads(proc.stdout)
        assert doc["text"] == "Hi \ufffd"
        assert doc["tool_calls"][0]["name"] == "f\ud83d"  # the escape, exactly as sent
        assert doc["tool_calls"][0]["id"] == "call\udc00"
        assert doc["usage"]["odd"] == "\ud800"
    else:
        assert proc.stdout.startswith("Hi ")
        assert "\ufffd" in proc.stdout  # the held high surrogate, at the finish
        assert "[tool call #0 f\\ud83d]" in proc.stdout


@pytest.mark.parametrize("events", [False, True], ids=["text", "events"])
def test_replay_writes_fields_holding_lone_surrogates(tmp_path: Path, events: bool) -> None:
    path = tmp_path / "odd.sse"
    path.write_bytes(ODD + DONE)
    proc = rawsse("replay", str(path), "--speed", "0", *(["--events"] if events else []))
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert "\ufffd" in proc.stdout
