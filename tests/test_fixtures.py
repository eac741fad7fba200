"""The project's own recorded streams: generated exactly, self-consistent, and parseable.

``fixtures/generate.py`` writes every ``fixtures/*.sse`` body, its cassette, ``expected.json``
and the recordings shipped in ``src/rawsse/recordings``; these tests hold them to it.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from rawsse import Comment, ServerSentEvent, SSEDecoder

from .conftest import FIXTURES, ROOT
from .helpers import byte_at_a_time, every_split, whole

CASSETTES = FIXTURES / "cassettes"
RECORDINGS = ROOT / "src" / "rawsse" / "recordings"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text("utf-8"))
# Under this size a body is cut at every position; above it at a sample of positions.
EXHAUSTIVE_BYTES = 20_000
SAMPLED_SPLITS = 400


def _cassette_params(directory: Path) -> list[Any]:
    return [pytest.param(p, id=p.stem) for p in sorted(directory.glob("*.jsonl"))]


CASSETTE_FILES = _cassette_params(CASSETTES)
RECORDING_FILES = _cassette_params(RECORDINGS)
SSE_BODIES = [pytest.param(p, id=p.stem) for p in sorted(FIXTURES.glob("*.sse"))]
STREAMS = [pytest.param(name, id=name) for name, e in EXPECTED.items() if e["kind"] == "stream"]


def read_cassette(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """(header, chunk lines, end line) of a cassette, checking each line's shape."""
    lines = path.read_text("utf-8").split("\n")
    assert lines[-1] == "", "a cassette ends with a newline"
    records = [json.loads(line) for line in lines[:-1]]
    header, *chunks, end = records
    assert header["format"] == 1
    for chunk in chunks:
        assert set(chunk) in ({"t", "text"}, {"t", "b64"}), chunk
    assert set(end) <= {"t", "end", "error"}
    assert end["end"] in ("eof", "error")
    assert ("error" in end) == (end["end"] == "error")
    return header, chunks, end


def chunk_bytes(chunk: dict[str, Any]) -> bytes:
    if "text" in chunk:
        return bytes(chunk["text"], "utf-8")
    return base64.b64decode(chunk["b64"], validate=True)


def decode(chunks: list[bytes]) -> list[ServerSentEvent | Comment]:
    decoder = SSEDecoder()
    out: list[ServerSentEvent | Comment] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.close()


# -- the generator


def test_generator_check_passes() -> None:
    """The committed files are exactly what the generator produces."""
    proc = subprocess.run(
        [sys.executable, str(FIXTURES / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_generator_check_fails_on_a_changed_or_stale_file(tmp_path: Path) -> None:
    """``--check`` notices one changed byte and a file it did not generate."""
    copy = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, copy)
    shutil.copytree(RECORDINGS, tmp_path / "src" / "rawsse" / "recordings")
    script = [sys.executable, str(copy / "generate.py"), "--check"]
    assert subprocess.run(script, capture_output=True, check=False).returncode == 0

    body = copy / "plain_text.sse"
    original = body.read_bytes()
    body.write_bytes(original.replace(b"Hello", b"Jello", 1))
    proc = subprocess.run(script, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "plain_text.sse" in proc.stderr

    body.write_bytes(original)
    (copy / "cassettes" / "leftover.jsonl").write_text("{}\n")
    proc = subprocess.run(script, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "leftover.jsonl" in proc.stderr


def test_expected_lists_exactly_the_fixture_files() -> None:
    bodies = {p.name for p in FIXTURES.iterdir() if p.suffix in (".sse", ".json")}
    bodies.discard("expected.json")
    assert bodies == {e["body_file"] for e in EXPECTED.values()}
    assert {p.name for p in CASSETTES.glob("*.jsonl")} == {
        Path(e["cassette"]).name for e in EXPECTED.values()
    }
    assert all(e["synthetic"] for e in EXPECTED.values())


def test_fixture_dir_stays_small() -> None:
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    assert total < 800_000


# -- cassettes


@pytest.mark.parametrize("path", CASSETTE_FILES + RECORDING_FILES)
def test_cassette_is_valid_v1(path: Path) -> None:
    header, chunks, end = read_cassette(path)
    request, response = header["request"], header["response"]
    assert request["method"] == "POST"
    assert request["url"] == "https://openrouter.ai/api/v1/chat/completions"
    assert request["headers"]["authorization"] == "REDACTED"
    assert request["body"]["stream"] is True
    assert isinstance(response["status"], int)
    assert response["headers"]["content-type"].startswith(
        "text/event-stream" if response["status"] == 200 else "application/json"
    )
    times = [response["t"], *(c["t"] for c in chunks), end["t"]]
    assert all(isinstance(t, float) for t in times)
    assert times == sorted(times), "t never goes back"
    assert 0 < response["t"] < 1
    text = path.read_text("utf-8")
    assert "sk-" not in text
    assert "Bearer" not in text


@pytest.mark.parametrize("path", CASSETTE_FILES)
def test_cassette_concatenates_to_its_body(path: Path) -> None:
    _, chunks, end = read_cassette(path)
    entry = EXPECTED[path.stem]
    body = (FIXTURES / entry["body_file"]).read_bytes()
    assert b"".join(chunk_bytes(c) for c in chunks) == body
    # Text when a read is valid UTF-8 on its own, base64 only when it is not.
    for chunk in chunks:
        if "b64" in chunk:
            with pytest.raises(UnicodeDecodeError):
                chunk_bytes(chunk).decode("utf-8")
    assert end["end"] == ("error" if path.stem == "truncated" else "eof")


@pytest.mark.parametrize("path", CASSETTE_FILES)
def test_cassette_timing_is_realistic(path: Path) -> None:
    header, chunks, _ = read_cassette(path)
    if header["response"]["status"] != 200:
        assert len(chunks) == 1
        return
    first_data = next(c for c in chunks if chunk_bytes(c).lstrip().startswith(b"data:"))
    assert 0.3 <= first_data["t"] <= 5.0, "time to first data event"
    # The network does not follow event boundaries: some reads end mid-event.
    assert any(not chunk_bytes(c).endswith((b"\n\n", b"\r\n\r\n")) for c in chunks[:-1])


def test_some_reads_group_several_events() -> None:
    _, chunks, _ = read_cassette(CASSETTES / "long_text.jsonl")
    assert any(chunk_bytes(c).count(b"data:") >= 2 for c in chunks)
    assert len(chunks) >= 100


def test_multibyte_reads_cut_inside_characters() -> None:
    _, chunks, _ = read_cassette(CASSETTES / "multibyte_split.jsonl")
    assert sum("b64" in c for c in chunks) >= 10


def test_crlf_reads_cut_between_cr_and_lf() -> None:
    _, chunks, _ = read_cassette(CASSETTES / "crlf_line_endings.jsonl")
    assert any(chunk_bytes(c).endswith(b"\r") for c in chunks)
    body = (FIXTURES / "crlf_line_endings.sse").read_bytes()
    assert body.count(b"\n") == body.count(b"\r\n")


# -- the bodies through the SSE decoder


@pytest.mark.parametrize("path", SSE_BODIES)
def test_body_decodes_identically_under_any_chunking(path: Path) -> None:
    data = path.read_bytes()
    expected = decode(whole(data))
    assert expected, "something decodes"
    assert decode(byte_at_a_time(data)) == expected
    if len(data) <= EXHAUSTIVE_BYTES:
        for chunks in every_split(data):
            assert decode(chunks) == expected
    else:
        rng = random.Random(path.name)
        for cut in sorted(rng.sample(range(len(data) + 1), SAMPLED_SPLITS)):
            assert decode([data[:cut], data[cut:]]) == expected
    _, chunks, _ = read_cassette(CASSETTES / f"{path.stem}.jsonl")
    assert decode([chunk_bytes(c) for c in chunks]) == expected


@pytest.mark.parametrize("name", STREAMS)
def test_expected_agrees_with_the_decoded_events(name: str) -> None:
    """Light cross-checks of expected.json against the SSE layer (the chat layer tests more)."""
    entry = EXPECTED[name]
    events = decode([(FIXTURES / entry["body_file"]).read_bytes()])
    comments = [e for e in events if isinstance(e, Comment)]
    datas = [e.data for e in events if isinstance(e, ServerSentEvent)]
    assert len(comments) == entry["keepalives"]
    assert ("[DONE]" in datas) == entry["done"]
    payloads = [d for d in datas if d != "[DONE]"]
    malformed = []
    for payload in payloads:
        try:
            chunk = json.loads(payload)
        except ValueError:
            malformed.append(payload)
            continue
        assert isinstance(chunk, dict)
        assert chunk["id"] == entry["id"]
        assert chunk["created"] == entry["created"]
    assert malformed == entry["malformed_payloads"]
    assert entry["status"] in ("complete", "truncated", "error")
    assert entry["text"] == entry["choices"][0]["content"]


@pytest.mark.parametrize("name", STREAMS)
def test_expected_tool_arguments_are_json(name: str) -> None:
    for choice in EXPECTED[name]["choices"]:
        for call in choice["tool_calls"]:
            if call["type"] == "custom":
                continue  # a custom tool's input is free text, not JSON
            assert isinstance(json.loads(call["arguments"]), dict)


# -- the package recordings


def test_recordings_have_unique_model_ids() -> None:
    models = [read_cassette(p.values[0])[0]["request"]["body"]["model"] for p in RECORDING_FILES]
    assert len(models) == len(set(models))
    assert {"rawsse/demo", "rawsse/reasoning", "rawsse/tool-call"} <= set(models)
    assert {"rawsse/error-midstream", "rawsse/slow-start"} <= set(models)
    for param in RECORDING_FILES:
        path: Path = param.values[0]
        header = read_cassette(path)[0]
        assert header["request"]["body"]["model"] == "rawsse/" + path.stem


@pytest.mark.parametrize("path", RECORDING_FILES)
def test_recording_streams_a_whole_answer(path: Path) -> None:
    header, chunks, end = read_cassette(path)
    body = b"".join(chunk_bytes(c) for c in chunks)
    events = decode([body])
    assert isinstance(events[0], Comment), "a keep-alive comes before the first token"
    assert events[-1] == ServerSentEvent(data="[DONE]")
    assert end["end"] == "eof"
    assert 1.0 <= end["t"] <= 6.0
    model = header["request"]["body"]["model"]
    for event in events:
        if isinstance(event, ServerSentEvent) and event.data != "[DONE]":
            assert json.loads(event.data)["model"] == model


def test_recordings_ship_as_package_data() -> None:
    shipped = resources.files("rawsse") / "recordings"
    names = {entry.name for entry in shipped.iterdir()}
    assert {p.values[0].name for p in RECORDING_FILES} <= names
    assert "README.md" in names


def test_demo_recording_timing() -> None:
    _, chunks, end = read_cassette(RECORDINGS / "demo.jsonl")
    assert 2.0 <= end["t"] <= 4.0
    _, chunks, _ = read_cassette(RECORDINGS / "slow-start.jsonl")
    keepalives = [c for c in chunks if chunk_bytes(c).startswith(b": ")]
    first_data = next(c for c in chunks if chunk_bytes(c).startswith(b"data:"))
    assert len(keepalives) >= 5
    assert first_data["t"] >= 3.0


def test_cassettes_load_with_the_library_reader() -> None:
    testing = pytest.importorskip("rawsse.testing", reason="rawsse.testing is not built yet")
    for param in CASSETTE_FILES + RECORDING_FILES:
        path: Path = param.values[0]
        cassette = testing.load_cassette(path)
        _, chunks, end = read_cassette(path)
        assert cassette.end == end["end"], path.name
        assert [t for t, _ in cassette.chunks] == [c["t"] for c in chunks], path.name
        assert [data for _, data in cassette.chunks] == [chunk_bytes(c) for c in chunks]
