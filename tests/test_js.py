"""rawsse.js: its node:test suites and the tsc --strict check of rawsse.d.ts.

Skipped, saying why, only when Node.js (>= 18) or the TypeScript compiler is
absent; ``npm ci --prefix tests/js`` installs the compiler.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SSE_PIECES

ROOT = Path(__file__).resolve().parent.parent
JS_TESTS = ROOT / "tests" / "js"
MODULE = ROOT / "src" / "rawsse" / "relay" / "rawsse.js"
TSC = JS_TESTS / "node_modules" / ".bin" / "tsc"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (rawsse.js needs Node.js >= 18 to test)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(re.match(r"v(\d+)", version.stdout).group(1))  # type: ignore[union-attr]
    if major < 18:
        pytest.skip(f"node {version.stdout.strip()} is older than 18")
    return node


def _tsc() -> Path:
    if not TSC.exists():
        pytest.skip("typescript is not installed: run `npm ci --prefix tests/js`")
    return TSC


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAWSSE_PYTHON": sys.executable}
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_node_test_suites_pass() -> None:
    node = _node()
    files = sorted(str(p.relative_to(ROOT)) for p in JS_TESTS.glob("*.test.mjs"))
    assert files, "no tests/js/*.test.mjs files"
    done = _run([node, "--test", "--test-reporter=tap", *files], timeout=900)
    summary = dict(re.findall(r"^# (tests|pass|fail|cancelled|skipped) (\d+)$", done.stdout, re.M))
    assert done.returncode == 0, f"{summary}\n{done.stdout[-20000:]}\n{done.stderr[-5000:]}"
    assert int(summary["tests"]) > 0
    assert summary["fail"] == "0"
    assert summary["cancelled"] == "0"


def test_types_accept_the_usage_file_under_strict() -> None:
    tsc = _tsc()
    done = _run([str(tsc), "--strict", "--noEmit", "-p", str(JS_TESTS / "tsconfig.json")], 300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_types_reject_misuse(tmp_path: Path) -> None:
    # The event union is discriminated: `text` is not on every event, and a
    # result's status is a ChatStatus, not any string.
    tsc = _tsc()
    (tmp_path / "bad.ts").write_text(
        f'import {{ streamChat }} from "{MODULE.as_posix()}";\n'
        "export async function f(): Promise<void> {\n"
        '  for await (const event of streamChat("/chat", {})) console.log(event.text);\n'
        '  const status: "ok" = (await streamChat("/chat", {}).result).status;\n'
        "  void status;\n"
        "}\n"
    )
    config = json.loads((JS_TESTS / "tsconfig.json").read_text())
    config["files"] = ["bad.ts"]
    (tmp_path / "tsconfig.json").write_text(json.dumps(config))
    done = _run([str(tsc), "--strict", "--noEmit", "-p", str(tmp_path / "tsconfig.json")], 300)
    assert done.returncode != 0
    assert "Property 'text' does not exist" in done.stdout, done.stdout
    assert "is not assignable to type '\"ok\"'" in done.stdout, done.stdout


def _openai_compatible(path: Path) -> bool:
    from rawsse import ServerSentEvent, SSEDecoder

    items = SSEDecoder().feed(path.read_bytes())
    return all(i.event == "message" for i in items if isinstance(i, ServerSentEvent))


def test_recorded_streams_decode_as_the_python_accumulator_does() -> None:
    # Every OpenAI-compatible recording (fixtures and corpus) through streamChat
    # gives choice 0's text, status, usage and tool arguments as Python's decoder
    # and accumulator do.
    from rawsse import ChatStatus, MalformedChunk, parse_chat_stream
    from rawsse._accumulate import accumulate
    from tests.conftest import corpus_files, fixture_files

    node = _node()
    paths = [p for p in [*fixture_files(), *corpus_files()] if _openai_compatible(p)]
    assert len(paths) >= 10
    script = JS_TESTS / "decode_streams.mjs"
    done = _run([node, str(script), *map(str, paths)], timeout=300)
    assert done.returncode == 0, done.stderr
    # Not splitlines(): the texts hold U+2028 and friends, which JSON leaves raw.
    lines = [json.loads(line) for line in done.stdout.split("\n") if line]
    assert [line["path"] for line in lines] == list(map(str, paths))
    for path, line in zip(paths, lines, strict=True):
        try:
            result = accumulate(parse_chat_stream(path.read_bytes()))
        except MalformedChunk:
            assert line.get("error") == "MalformedChunk", path
            continue
        choice = next((c for c in result.choices if c.index == 0), None)
        assert line["text"] == result.text, path
        status = ChatStatus(line["status"])
        assert status == result.status, path
        if result.usage is not None and status is not ChatStatus.ERROR:
            assert line["usage"]["completion_tokens"] == result.usage.completion_tokens, path
            assert line["usage"]["cost"] == result.usage.cost, path
        calls = {} if choice is None else {str(c.index): c.arguments for c in choice.tool_calls}
        assert line["tools"] == calls, path


def test_decoder_agrees_with_the_python_decoder_on_random_streams() -> None:
    # Differential: 3,000 seeded random streams built from the bytes that matter,
    # cut at random places, some with tight bounds; both decoders must give the
    # same events, last event ID and retry, or both raise their protocol error.
    import random

    from rawsse import Comment, SSEDecoder, SSEProtocolError

    node = _node()
    rng = random.Random(12)
    cases: list[dict[str, Any]] = []
    for n in range(3000):
        parts = [
            rng.choice(SSE_PIECES) if rng.random() < 0.8 else rng.randbytes(rng.randint(0, 4))
            for _ in range(rng.randint(0, 40))
        ]
        data = b"".join(parts)
        cuts = sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 8)))
        case: dict[str, Any] = {"input": data.decode("latin-1"), "cuts": cuts}
        if n % 5 == 0:
            case["limits"] = {
                "maxLineBytes": rng.randint(1, 30),
                "maxEventBytes": rng.randint(1, 40),
            }
        cases.append(case)
    done = subprocess.run(
        [node, str(JS_TESTS / "decode_sse.mjs")],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    for case, js in zip(cases, got, strict=True):
        limits = case.get("limits", {})
        decoder = SSEDecoder(
            max_line_bytes=limits.get("maxLineBytes", 16 * 1024 * 1024),
            max_event_bytes=limits.get("maxEventBytes", 64 * 1024 * 1024),
        )
        data = case["input"].encode("latin-1")
        bounds = [0, *case["cuts"], len(data)]
        try:
            items = []
            for a, b in itertools.pairwise(bounds):
                items += decoder.feed(data[a:b])
            items += decoder.close()
        except SSEProtocolError:
            assert js == {"error": "SSEProtocolError"}, case
            continue
        want = [
            {"comment": i.text}
            if isinstance(i, Comment)
            else {"event": i.event, "data": i.data, "id": i.id, "retry": i.retry}
            for i in items
        ]
        assert js == {
            "events": want,
            "lastEventId": decoder.last_event_id,
            "retry": decoder.retry,
        }, case
