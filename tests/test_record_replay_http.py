"""Record -> replay over real HTTP: every fixture and corpus stream, served by the
local fixture server, recorded through the recording transport, comes back byte-exact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import rawsse
from rawsse.testing import (
    Cassette,
    RecordingTransport,
    ReplayTransport,
    load_cassette,
    save_cassette,
)

from .conftest import corpus_files, fixture_files

STREAMS = {p.stem: p for p in fixture_files()} | {f"corpus-{p.stem}": p for p in corpus_files()}


def pieces(body: bytes, size: int = 1500) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rawsse.testing.FixtureServer]:
    directory = tmp_path_factory.mktemp("served")
    for name, path in STREAMS.items():
        cassette = Cassette.from_body(pieces(path.read_bytes()), request_body={"model": name})
        save_cassette(cassette, directory / f"{name}.jsonl")
    with rawsse.testing.FixtureServer(directory, speed=0) as running:
        yield running


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_served_recorded_and_replayed_byte_exact(
    name: str, server: rawsse.testing.FixtureServer, tmp_path: Path
) -> None:
    body = STREAMS[name].read_bytes()
    target = tmp_path / "recorded.jsonl"
    request = {"model": name, "stream": True, "messages": []}
    url = server.base_url + "/chat/completions"
    recording = RecordingTransport(httpx.HTTPTransport(), target)
    with (
        httpx.Client(transport=recording) as http,
        http.stream("POST", url, json=request) as response,
    ):
        assert response.status_code == 200
        received = b"".join(response.iter_raw())
    assert received == body
    recorded = load_cassette(target)
    assert recorded.body == body
    assert recorded.end == "eof"
    replay = ReplayTransport(target)
    with httpx.Client(transport=replay) as http:
        response = http.post(server.base_url + "/chat/completions", json=request)
    assert response.content == body


def test_every_stream_was_served(server: rawsse.testing.FixtureServer) -> None:
    assert set(server.models) >= set(STREAMS)
