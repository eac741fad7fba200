"""The ``chat``, ``record``, ``inspect`` and ``replay`` subcommands, run as the user runs them.

Golden files live in tests/golden/; regenerate them with ``RAWSSE_REGEN_GOLDEN=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CORPUS, FIXTURES, ROOT
from tests.helpers import rawsse_cli
from tests.inspector.test_inspect import parse_html
from tests.server import Reset, ServerThread, error_script, sse_script

GOLDEN = Path(__file__).parent.parent / "golden"
REGEN = os.environ.get("RAWSSE_REGEN_GOLDEN") == "1"
KEY = "sk-or-v1-CLITESTKEY0123456789SECRET"
CASSETTES = FIXTURES / "cassettes"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The same as ``rawsse_cli`` in this process (faster): for the many file-reading cases."""
    from rawsse._cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Paths in the golden output are relative to the repository root.
    monkeypatch.chdir(ROOT)
    for name in ("NO_COLOR", "OPENROUTER_API_KEY", "RAWSSE_API_KEY", "RAWSSE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGEN or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not REGEN:
            pytest.fail(f"wrote missing golden file {path}; check it and run again")
    assert text == path.read_text(encoding="utf-8")


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr
    assert "Traceback" not in proc.stdout


def cassette(name: str) -> str:
    path = CASSETTES / f"{name}.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return str(path.relative_to(ROOT))


# -- inspect ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("error_after_length", ()),
        ("keepalives_between", ()),
        ("truncated", ("--width", "80")),
        ("tool_call", ("--summary",)),
        ("http_401_unauthorized", ()),
    ],
)
def test_inspect_cassette_golden(name: str, args: tuple[str, ...]) -> None:
    proc = cli("inspect", cassette(name), *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "\x1b" not in proc.stdout
    golden(f"inspect_{name}.txt", proc.stdout)


@pytest.mark.parametrize("name", ["done_without_blank_line", "garbage_line", "crlf_line_endings"])
def test_inspect_raw_sse_golden(name: str) -> None:
    proc = cli("inspect", f"fixtures/{name}.sse", "--width", "90")
    assert proc.returncode == 0, proc.stderr
    golden(f"inspect_{name}_sse.txt", proc.stdout)


def test_inspect_json_golden() -> None:
    proc = cli("inspect", "--json", cassette("usage_cost"))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "complete"
    assert {"status", "events", "anomalies"} <= set(doc)
    golden("inspect_usage_cost.json", proc.stdout)


def test_inspect_json_in_band_error_from_a_cassette() -> None:
    doc = json.loads(cli("inspect", "--json", cassette("error_midstream")).stdout)
    assert doc["status"] == "error"
    errors = [a for a in doc["anomalies"] if a["kind"] == "in_band_error"]
    assert [e["message"] for e in errors] == [
        json.loads((FIXTURES / "expected.json").read_text())["error_midstream"]["error"]["message"]
    ]


CORPUS_ANOMALIES = {
    "openrouter__chat_midstream_error_token_limit_minimax.sse": [
        {"kind": "keep_alive", "message": "17 keep-alive comment(s) (': OPENROUTER PROCESSING')"},
        {"kind": "in_band_error", "message": "Token limit reached"},
        {
            "kind": "finish_repeated",
            "message": "choice 0 got a finish reason 2 times ('length', 'length')",
        },
    ],
    "openrouter__chat_tool_call_empty_args_claude_bedrock.sse": [
        {
            "kind": "empty_tool_arguments",
            "message": "tool call get_all_tabs (choice 0) has empty arguments (read as {})",
        },
        {
            "kind": "unterminated_event",
            "message": "the body ends inside an event ('data: [DONE]' has no blank line after "
            "it), so a spec-compliant parser discards it",
        },
        {
            "kind": "no_done",
            "message": "the stream ended without data: [DONE] (the [DONE] at the end was not "
            "terminated)",
        },
    ],
    # Each choice opens with the standard {"role": "assistant", "content": ""}: nothing to report.
    "openai__chat_multiple_choices_n3.sse": [],
}


@pytest.mark.parametrize("name", sorted(CORPUS_ANOMALIES))
def test_inspect_json_corpus_anomalies_exactly(name: str) -> None:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    proc = cli("inspect", "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    got = [{"kind": a["kind"], "message": a["message"]} for a in doc["anomalies"]]
    assert got == CORPUS_ANOMALIES[name]
    assert doc["kind"] == "sse"
    assert doc["timing"]["timed"] is False


def test_inspect_html_report(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    proc = cli("inspect", cassette("keepalives_between"), "--html", str(out), "--summary")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == f"wrote {out}\n"
    page = out.read_text(encoding="utf-8")
    html = parse_html(page)
    assert "<script" not in page
    assert html.classes("polyline") == ["bytes", "tokens"]
    expected = json.loads((FIXTURES / "expected.json").read_text())["keepalives_between"]
    assert html.classes("line").count("keep-alive") == expected["keepalives"]
    assert "ttft" in html.classes("g")
    assert "headers" in html.classes("g")
    assert any(t.startswith("TTFT ") for t in html.text)
    assert [a.get("id") for t, a in html.tags if t == "span" and a.get("id")] == ["status"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all\n", "line 1: damaged JSON"),
        (
            '{"format": 99, "request": {"method": "POST", "url": "u"}, '
            '"response": {"status": 200, "headers": {}}}\n',
            "line 1: format 99 is newer than this rawsse reads",
        ),
        ("", "line 1: empty file"),
        (
            '{"format": 1, "request": {"method": "POST", "url": "u"}, '
            '"response": {"status": 200, "headers": {}}}\n{"t": 0.1, "text": 5}\n',
            'line 2: bad chunk: "text" must be a string',
        ),
    ],
)
def test_inspect_bad_cassette_exits_2_with_one_line(
    tmp_path: Path, content: str, message: str
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    proc = rawsse_cli("inspect", str(bad))
    assert proc.returncode == 2
    no_traceback(proc)
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"rawsse inspect: error: not a usable cassette: {bad}, ")
    assert message in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_inspect_stdin_is_timed_on_arrival() -> None:
    body = (FIXTURES / "error_midstream.sse").read_text(encoding="utf-8")
    proc = rawsse_cli("inspect", "-", "--json", stdin=body)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "stdin"
    assert doc["timing"]["timed"] is True
    assert doc["status"] == "error"
    assert [a["kind"] for a in doc["anomalies"]][:2] == ["keep_alive", "in_band_error"]


def test_inspect_missing_file_and_bad_threshold() -> None:
    proc = cli("inspect", "no/such/file.sse")
    assert (proc.returncode, proc.stderr) == (
        2,
        "rawsse inspect: error: no/such/file.sse: no such file\n",
    )
    proc = cli("inspect", "fixtures")
    assert (proc.returncode, proc.stderr) == (
        2,
        "rawsse inspect: error: fixtures: is a directory, not a cassette or .sse file\n",
    )
    proc = cli("inspect", "fixtures/plain_text.sse", "--stall-threshold", "0")
    assert proc.returncode == 2
    assert "--stall-threshold must be positive" in proc.stderr
    proc = rawsse_cli("inspect")
    assert proc.returncode == 2
    no_traceback(proc)


# -- replay -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("reasoning_text_signature", 0),
        ("tool_call", 0),
        ("error_after_length", 1),
        ("truncated", 1),
    ],
)
def test_replay_golden(name: str, code: int) -> None:
    proc = cli("replay", cassette(name), "--speed", "0")
    assert proc.returncode == code, proc.stderr
    no_traceback(proc)
    golden(f"replay_{name}.txt", proc.stdout + "--- stderr\n" + proc.stderr)


def test_replay_events_golden() -> None:
    proc = cli("replay", "--events", "--speed", "0", cassette("error_midstream"))
    assert proc.returncode == 1
    golden("replay_events_error_midstream.txt", proc.stdout + "--- stderr\n" + proc.stderr)


def test_replay_keeps_recorded_timing_scaled() -> None:
    from rawsse._cli.replay import run as run_replay

    slept: list[float] = []
    args = argparse.Namespace(file=cassette("keepalives_between"), speed=4.0, events=False)
    out = io.StringIO()
    assert run_replay(args, out=out, err=io.StringIO(), sleep=slept.append) == 0
    lines = (CASSETTES / "keepalives_between.jsonl").read_text().splitlines()
    last_chunk_t = [json.loads(x)["t"] for x in lines[1:] if "end" not in json.loads(x)][-1]
    assert sum(slept) == pytest.approx(last_chunk_t / 4)
    assert all(s > 0 for s in slept)
    assert out.getvalue().startswith("Ship small, test everything, and read the wire.\n-- ttft ")


def test_replay_bad_file_and_speed() -> None:
    proc = cli("replay", "nope.jsonl")
    assert (proc.returncode, proc.stderr) == (2, "rawsse replay: error: nope.jsonl: no such file\n")
    proc = cli("replay", "fixtures/plain_text.sse", "--speed", "-1")
    assert proc.returncode == 2
    assert "--speed must be >= 0" in proc.stderr


def test_replay_raw_sse_has_no_timing() -> None:
    proc = cli("replay", "fixtures/plain_text.sse")
    assert proc.returncode == 0
    text = json.loads((FIXTURES / "expected.json").read_text())["plain_text"]["text"]
    assert proc.stdout.startswith(text + "\n-- ttft \u2013 | total \u2013 | tokens 19 in / 15 out")


# -- chat ----------------------------------------------------------------------------------

SUMMARY = re.compile(
    r"-- ttft \d+\.\d{3} s \| total \d+\.\d{3} s \| tokens (\S+) in / (\S+) out \| (\S+) tok/s"
    r" \| cost (\S+) \| provider (.+?) \| finish (\S+) \| status (\S+)\n"
)


def fixture_body(name: str) -> bytes:
    return (FIXTURES / f"{name}.sse").read_bytes()


def local(
    server: ServerThread, *args: str, key: str | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {"OPENROUTER_API_KEY": KEY}
    if key is not None:
        env["RAWSSE_API_KEY"] = key
    return rawsse_cli("chat", "--base-url", server.url, *args, env=env, stdin=stdin)


def test_chat_streams_text_then_one_summary_line(server: ServerThread) -> None:
    body = fixture_body("reasoning_text_signature")
    server.expect(sse_script(body, splits=[100, 700, 1500]))
    proc = local(server, "m/x", "What is 17 x 23?")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    expected = json.loads((FIXTURES / "expected.json").read_text())["reasoning_text_signature"]
    choice = expected["choices"][0]
    text, summary = proc.stdout.rsplit("\n-- ", 1)
    assert text == f"[reasoning] {choice['reasoning']}\n{choice['content']}"
    m = SUMMARY.fullmatch("-- " + summary)
    assert m is not None, summary
    usage = expected["usage"]
    assert m.groups()[:2] == (str(usage["prompt_tokens"]), str(usage["completion_tokens"]))
    assert m.group(4) == f"{usage['cost']:.10f}".rstrip("0")
    assert m.group(5, 6, 7) == (expected["provider"], "stop", "complete")
    sent = server.exchanges[-1]
    assert sent.json()["model"] == "m/x"
    assert sent.json()["messages"] == [{"role": "user", "content": "What is 17 x 23?"}]
    # OpenRouter's key goes to OpenRouter only.
    assert "authorization" not in {k.lower() for k in sent.headers}


def test_chat_tool_calls_as_they_assemble(server: ServerThread) -> None:
    server.expect(sse_script(fixture_body("parallel_tool_calls")))
    proc = local(server, "m/x", "weather and time?")
    assert proc.returncode == 0, proc.stderr
    *lines, summary = proc.stdout.splitlines()
    assert SUMMARY.fullmatch(summary + "\n")
    expected = json.loads((FIXTURES / "expected.json").read_text())["parallel_tool_calls"]
    calls = expected["choices"][0]["tool_calls"]
    # Interleaved fragments: each switch starts a line; "…" marks a continued call.
    assembled: dict[str, str] = {}
    for line in lines:
        m = re.fullmatch(r"\[tool call #(\d+) (\w+)\] (\u2026?)(.*)", line)
        assert m is not None, line
        key = f"{m.group(1)} {m.group(2)}"
        assert (m.group(3) == "\u2026") == (key in assembled)
        assembled[key] = assembled.get(key, "") + m.group(4)
    assert assembled == {f"{c['index']} {c['name']}": c["arguments"] for c in calls}


def test_chat_one_tool_call_is_one_line(server: ServerThread) -> None:
    server.expect(sse_script(fixture_body("tool_call")))
    proc = local(server, "m/x", "weather?")
    assert proc.returncode == 0, proc.stderr
    call = json.loads((FIXTURES / "expected.json").read_text())["tool_call"]["choices"][0][
        "tool_calls"
    ][0]
    assert proc.stdout.splitlines()[0] == f"[tool call #0 {call['name']}] {call['arguments']}"


def test_chat_prompt_from_stdin_and_options(server: ServerThread) -> None:
    server.expect(sse_script(fixture_body("plain_text")))
    proc = local(server, "m/x", "-", "--system", "Be brief.", "--max-tokens", "50",
                 "--reasoning-effort", "low", stdin="hello from stdin\n")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    body = server.exchanges[-1].json()
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello from stdin\n"},
    ]
    assert body["max_tokens"] == 50
    assert body["reasoning"] == {"effort": "low"}


def test_chat_json(server: ServerThread) -> None:
    server.expect(sse_script(fixture_body("tool_call")))
    proc = local(server, "m/x", "hi", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    expected = json.loads((FIXTURES / "expected.json").read_text())["tool_call"]
    assert doc["status"] == "complete"
    assert doc["error"] is None
    assert doc["tool_calls"] == [
        {k: c[k] for k in ("index", "id", "type", "name", "arguments")}
        for c in expected["choices"][0]["tool_calls"]
    ]
    assert doc["usage"] == expected["usage"]
    assert doc["finish_reason"] == "tool_calls"
    assert set(doc["metrics"]) >= {"ttft", "total", "tokens_per_second", "cost", "status"}


def test_chat_raw_prints_the_bytes(server: ServerThread) -> None:
    body = fixture_body("keepalives_between")
    server.expect(sse_script(body, splits=[10, 200]))
    proc = local(server, "m/x", "hi", "--raw")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == body.decode("utf-8")
    assert SUMMARY.fullmatch(proc.stderr)


def test_chat_verbose_redacts_the_key(server: ServerThread) -> None:
    server.expect(sse_script(fixture_body("plain_text")))
    proc = local(server, "m/x", "hi", "-v", key=KEY)
    assert proc.returncode == 0, proc.stderr
    assert "> authorization: REDACTED\n" in proc.stderr
    assert f"> POST {server.url}/chat/completions\n" in proc.stderr
    assert "< HTTP 200\n" in proc.stderr
    assert KEY not in proc.stderr + proc.stdout
    assert server.exchanges[-1].headers.get("authorization") == f"Bearer {KEY}"


def test_chat_unknown_model_exits_1_with_the_servers_message(server: ServerThread) -> None:
    message = "No endpoints found for nope/nothing."
    answer = error_script(404, json.dumps({"error": {"code": 404, "message": message}}))
    server.expect(answer, answer)
    proc = local(server, "nope/nothing", "hi")
    assert proc.returncode == 1
    no_traceback(proc)
    assert proc.stdout == ""
    assert proc.stderr == f"error: HTTP 404: {message}\n"
    proc = local(server, "nope/nothing", "hi", "--json")
    doc = json.loads(proc.stdout)
    assert doc["error"]["server_message"] == message
    assert doc["status"] == "error"


def test_chat_cut_stream_prints_partial_text_then_exits_1(server: ServerThread) -> None:
    body = fixture_body("plain_text")
    cut = body.index(b"data:", body.index(b'"content":"Hello') + 10)
    server.expect(sse_script(body[: cut + 20], then=[Reset()]))
    proc = local(server, "m/x", "hi")
    assert proc.returncode == 1
    no_traceback(proc)
    assert proc.stdout.startswith("Hello")
    assert proc.stdout.splitlines()[-1].endswith("status truncated")
    assert proc.stderr.startswith("error: the connection broke mid-stream")
    assert proc.stderr.count("\n") == 1


def test_chat_in_band_error_exits_1_with_the_servers_message(server: ServerThread) -> None:
    server.expect(sse_script(fixture_body("error_midstream")))
    proc = local(server, "m/x", "hi")
    assert proc.returncode == 1
    expected = json.loads((FIXTURES / "expected.json").read_text())["error_midstream"]
    assert proc.stdout.startswith(expected["text"] + "\n-- ")
    assert proc.stdout.endswith("status error\n")
    assert expected["error"]["message"] in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_chat_cannot_connect_exits_1_with_one_line() -> None:
    proc = rawsse_cli("chat", "--base-url", "http://127.0.0.1:9/v1", "--retries", "0", "m/x", "hi")
    assert proc.returncode == 1
    no_traceback(proc)
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: the request failed before a response (ConnectError")
    assert proc.stderr.count("\n") == 1


def test_chat_without_key_for_openrouter_exits_2() -> None:
    proc = rawsse_cli("chat", "openai/gpt-4o-mini", "hi")
    assert proc.returncode == 2
    no_traceback(proc)
    assert "OPENROUTER_API_KEY" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_chat_usage_errors_exit_2() -> None:
    proc = rawsse_cli("chat", env={"OPENROUTER_API_KEY": KEY})
    assert proc.returncode == 2
    no_traceback(proc)
    proc = rawsse_cli("chat", "m/x", "--base-url", "http://127.0.0.1:9/v1", stdin="  \n")
    assert (proc.returncode, proc.stderr) == (2, "rawsse chat: error: the prompt is empty\n")


def test_record_then_inspect_and_replay(server: ServerThread, tmp_path: Path) -> None:
    body = fixture_body("plain_text")
    server.expect(sse_script(body, splits=[50, 300]))
    out = tmp_path / "plain.jsonl"
    proc = rawsse_cli("record", "--base-url", server.url, "m/x", "hi", "-o", str(out),
               env={"RAWSSE_API_KEY": KEY})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.endswith(f"recorded to {out}\n")
    assert KEY not in out.read_text()
    doc = json.loads(cli("inspect", "--json", str(out)).stdout)
    assert doc["status"] == "complete"
    assert doc["kind"] == "cassette"
    assert doc["request"]["model"] == "m/x"
    chunks = [e for e in doc["events"] if e["row"] == "chunk"]
    assert sum(c["bytes"] for c in chunks) == len(body)
    replay = cli("replay", "--speed", "0", str(out))
    assert replay.returncode == 0
    assert (
        replay.stdout.splitlines()[0]
        == json.loads((FIXTURES / "expected.json").read_text())["plain_text"]["text"]
    )


def test_record_an_error_still_writes_the_cassette(server: ServerThread, tmp_path: Path) -> None:
    message = "No endpoints found for nope/x."
    server.expect(error_script(404, json.dumps({"error": {"code": 404, "message": message}})))
    out = tmp_path / "err.jsonl"
    proc = rawsse_cli("record", "--base-url", server.url, "nope/x", "hi", "-o", str(out))
    assert proc.returncode == 1
    assert proc.stderr == f"recorded to {out}\nerror: HTTP 404: {message}\n"
    doc = json.loads(cli("inspect", "--json", str(out)).stdout)
    assert doc["http_status"] == 404
    assert doc["anomalies"][0]["kind"] == "http_error"
    assert doc["anomalies"][0]["message"] == f"HTTP 404: {message}"
    replay = cli("replay", "--speed", "0", str(out))
    assert (replay.returncode, replay.stderr) == (1, f"error: HTTP 404: {message}\n")


def test_record_refuses_a_file_that_is_not_a_cassette(tmp_path: Path) -> None:
    notes = tmp_path / "out.txt"
    notes.write_text("notes\n")
    proc = rawsse_cli("record", "m/x", "hi", "-o", str(notes), env={"OPENROUTER_API_KEY": KEY})
    assert proc.returncode == 2
    assert proc.stderr == (
        f"rawsse record: error: cannot record to {notes}: {notes}: exists and is not a "
        "cassette; not recording into it\n"
    )


# -- against the local fixture server (the recordings shipped with rawsse) ----------------


@pytest.fixture(scope="module")
def fixture_server() -> Iterator[str]:
    from rawsse.testing import FixtureServer

    with FixtureServer(speed=0) as srv:
        yield str(srv.base_url)


def shipped(name: str) -> Any:
    from rawsse.inspect import inspect_cassette
    from rawsse.testing import load_cassette

    return inspect_cassette(load_cassette(ROOT / "src" / "rawsse" / "recordings" / f"{name}.jsonl"))


def test_chat_against_the_fixture_server(fixture_server: str) -> None:
    proc = rawsse_cli("chat", "--base-url", fixture_server, "rawsse/tool-call", "weather?")
    assert proc.returncode == 0, proc.stderr
    report = shipped("tool-call")
    call = report.result.choices[0].tool_calls[0]
    first, summary = proc.stdout.splitlines()
    assert first == f"[tool call #0 {call.name}] {call.arguments}"
    m = SUMMARY.fullmatch(summary + "\n")
    assert m is not None, summary
    assert m.group(6, 7) == ("tool_calls", "complete")


def test_chat_in_band_error_from_the_fixture_server(fixture_server: str) -> None:
    proc = rawsse_cli("chat", "--base-url", fixture_server, "rawsse/error-midstream", "hi")
    assert proc.returncode == 1
    no_traceback(proc)
    report = shipped("error-midstream")
    assert proc.stdout.startswith(report.result.text + "\n-- ")
    assert proc.stdout.endswith("status error\n")
    assert report.result.error is not None
    assert proc.stderr == (
        f"error: the server sent an error in the stream: {report.result.error.message} "
        f"(code {report.result.error.code})\n"
    )


def test_chat_unknown_model_at_the_fixture_server(fixture_server: str) -> None:
    import httpx

    answer = httpx.post(
        f"{fixture_server}/chat/completions",
        json={
            "model": "nope/nothing",
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    message = answer.json()["error"]["message"]
    proc = rawsse_cli("chat", "--base-url", fixture_server, "nope/nothing", "hi")
    assert proc.returncode == 1
    no_traceback(proc)
    assert proc.stdout == ""
    assert proc.stderr == f"error: HTTP {answer.status_code}: {message}\n"


def test_record_from_the_fixture_server_round_trips(fixture_server: str, tmp_path: Path) -> None:
    out = tmp_path / "demo.jsonl"
    proc = rawsse_cli("record", "--base-url", fixture_server, "rawsse/demo", "hi", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(cli("inspect", "--json", str(out)).stdout)
    assert doc["status"] == "complete"
    assert doc["text"] == shipped("demo").result.text
    assert doc["request"]["model"] == "rawsse/demo"
    html = tmp_path / "demo.html"
    assert cli("inspect", str(out), "--html", str(html)).returncode == 0
    assert parse_html(html.read_text(encoding="utf-8")).classes("polyline") == ["bytes", "tokens"]


# -- terminal handling (in-process: a fake terminal) ------------------------------------


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def replay_in_process(name: str, monkeypatch: pytest.MonkeyPatch, *, no_color: bool) -> str:
    from rawsse._cli.replay import run as run_replay

    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    out = FakeTTY()
    args = argparse.Namespace(file=cassette(name), speed=0.0, events=False)
    assert run_replay(args, out=out, err=FakeTTY()) == 0
    return out.getvalue()


def test_colour_on_a_terminal_dims_reasoning(monkeypatch: pytest.MonkeyPatch) -> None:
    text = replay_in_process("reasoning_text_signature", monkeypatch, no_color=False)
    assert "\x1b[2m" in text
    assert "[reasoning]" not in text
    assert "\x1b[32mcomplete\x1b[0m" in text


def test_no_color_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    text = replay_in_process("reasoning_text_signature", monkeypatch, no_color=True)
    assert "\x1b" not in text
    assert text.startswith("[reasoning] ")


def test_live_progress_and_colour_only_on_a_terminal(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rawsse._cli import build_parser

    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("RAWSSE_API_KEY", KEY)
    args = build_parser().parse_args(["chat", "--base-url", server.url, "m/x", "hi"])
    server.expect(sse_script(fixture_body("keepalives_between"), splits=[30, 60, 400]))
    out, err = FakeTTY(), FakeTTY()
    assert args.handler(args, out=out, err=err) == 0
    assert err.getvalue().startswith("\r\x1b[Kwaiting for the first token: ")
    assert err.getvalue().endswith("keep-alive(s)\r\x1b[K")
    assert "\x1b[32mcomplete\x1b[0m" in out.getvalue()
    # The same with pipes: no escape codes anywhere.
    server.expect(sse_script(fixture_body("keepalives_between"), splits=[30, 60, 400]))
    out2, err2 = io.StringIO(), io.StringIO()
    assert args.handler(args, out=out2, err=err2) == 0
    assert err2.getvalue() == ""
    assert "\x1b" not in out2.getvalue()


@pytest.mark.parametrize("command", ["chat", "record", "inspect", "replay"])
def test_help(command: str) -> None:
    proc = cli(command, "--help")
    assert proc.returncode == 0
    assert "exit codes" in proc.stdout
