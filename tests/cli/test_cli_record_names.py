"""``rawsse chat --record`` and ``rawsse record -o``: any file name, missing parent folders, a
directory, and one file that keeps every exchange.  The CLI runs as a subprocess against a
fixture server over TCP."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rawsse.testing import FixtureServer, load_cassette, load_cassettes
from tests.helpers import rawsse_cli

DEMO = "rawsse/demo"


@pytest.fixture(scope="module")
def server() -> Iterator[FixtureServer]:
    with FixtureServer(speed=0) as s:
        yield s


def chat(server: FixtureServer, *extra: str) -> subprocess.CompletedProcess[str]:
    return rawsse_cli("chat", "--base-url", server.base_url, *extra, DEMO, "Hi")


@pytest.mark.parametrize("name", ["out.cassette", "OUT.JSONL", "new/folder/out.jsonl", "plain"])
def test_chat_records_to_any_file_name(server: FixtureServer, tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    if name == "plain":
        target.write_bytes(b"")  # an existing file without a suffix is a file
    result = chat(server, "--record", str(target))
    assert result.returncode == 0, result.stderr
    assert f"recorded to {target}" in result.stderr
    assert load_cassette(target).model == DEMO


def test_record_to_a_directory_and_a_new_folder(server: FixtureServer, tmp_path: Path) -> None:
    for where in (tmp_path, tmp_path / "fresh" / "dir"):
        result = rawsse_cli("record", "--base-url", server.base_url, "-o", f"{where}/", DEMO, "Hi")
        assert result.returncode == 0, result.stderr
        (saved,) = [p for p in where.iterdir() if p.is_file()]
        assert saved.name.endswith("-rawsse-demo.jsonl")
        assert load_cassette(saved).model == DEMO


def test_recording_twice_to_one_file_keeps_both(server: FixtureServer, tmp_path: Path) -> None:
    target = tmp_path / "both.cassette"
    for _ in range(2):
        assert chat(server, "--record", str(target)).returncode == 0
    assert [c.model for c in load_cassettes(target)] == [DEMO, DEMO]


def test_a_file_that_is_not_a_cassette_is_refused(server: FixtureServer, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    result = chat(server, "--record", str(notes))
    assert result.returncode == 2
    assert "exists and is not a cassette" in result.stderr
    assert "Traceback" not in result.stderr
    assert notes.read_text() == "mine\n"


def test_inspect_and_replay_name_one_exchange_of_a_file(
    server: FixtureServer, tmp_path: Path
) -> None:
    target = tmp_path / "two.jsonl"
    for _ in range(2):
        assert chat(server, "--record", str(target)).returncode == 0
    result = rawsse_cli("inspect", str(target))
    assert result.returncode == 2
    assert f"holds 2 exchanges: name one, {target}#1 to {target}#2" in result.stderr
    for n in (1, 2):
        assert rawsse_cli("inspect", "--json", f"{target}#{n}").returncode == 0
        replay = rawsse_cli("replay", "--speed", "0", f"{target}#{n}")
        assert replay.returncode == 0, replay.stderr
    missing = rawsse_cli("replay", f"{target}#3")
    assert missing.returncode == 2
    assert "there is no #3" in missing.stderr
