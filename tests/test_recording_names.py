"""Recording names and files: any file name, missing parents, directories, and one file that
keeps every exchange (appended in order, replayed in order)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import rawsse
from rawsse.testing import (
    Cassette,
    CassetteError,
    RecordingTransport,
    ReplayTransport,
    append_cassette,
    dumps_cassette,
    load_cassette,
    load_cassettes,
    loads_cassettes,
    save_cassette,
)

from .conftest import FIXTURES
from .server import ServerThread, running_server, sse_script
from .test_pytest_plugin import project, run

pytest_plugins = ["pytester"]
__all__ = ["project"]  # the pytester project fixture, shared with the plugin tests

FIRST = (FIXTURES / "plain_text.sse").read_bytes()
SECOND = (FIXTURES / "usage_cost.sse").read_bytes()
TEXTS = [rawsse.accumulate(rawsse.parse_chat_stream(b)).text for b in (FIRST, SECOND)]
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with running_server() as s:
        yield s


def record_two(server: ServerThread, record_to: str | Path) -> None:
    """Two exchanges through ``rawsse.Client(record_to=...)`` over TCP."""
    server.expect(sse_script(FIRST), sse_script(SECOND))
    with rawsse.Client(base_url=server.url, record_to=record_to, retries=0) as client:
        texts = [client.complete(model=f"m/{i}", messages=MESSAGES).text for i in (1, 2)]
    assert texts == TEXTS


# -- any file name, parents created ---------------------------------------------------


@pytest.mark.parametrize("name", ["out.cassette", "OUT.JSONL", "out.jsonl", "a/b/c/out.txt"])
def test_any_file_name_records_one_file(server: ServerThread, tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    record_two(server, target)
    assert [c.body for c in load_cassettes(target)] == [FIRST, SECOND]
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name], "no stray files"


@pytest.mark.parametrize("name", ["existing", "new/", "new-without-suffix", "deep/er/dir/"])
def test_a_directory_gets_one_file_per_exchange(
    server: ServerThread, tmp_path: Path, name: str
) -> None:
    if name == "existing":
        (tmp_path / name).mkdir()
    record_to = f"{tmp_path}/{name}"
    record_two(server, record_to)
    saved = sorted(Path(record_to).iterdir())  # <UTC time>-<model>.jsonl
    assert len(saved) == 2
    assert [load_cassette(p).body for p in saved] == [FIRST, SECOND]
    assert [load_cassette(p).model for p in saved] == ["m/1", "m/2"]


def test_an_existing_file_that_is_not_a_cassette_is_refused(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    with pytest.raises(CassetteError, match="exists and is not a cassette"):
        RecordingTransport(httpx.HTTPTransport(), notes)
    with pytest.raises(CassetteError, match="exists and is not a cassette"):
        append_cassette(Cassette.from_body(FIRST), notes)
    assert notes.read_text() == "my notes\n"


# -- one file keeps every exchange ----------------------------------------------------------


def test_one_file_appends_and_replays_in_order(server: ServerThread, tmp_path: Path) -> None:
    target = tmp_path / "one.jsonl"
    record_two(server, target)
    with pytest.raises(CassetteError, match=r"holds 2 exchanges.*load_cassettes"):
        load_cassette(target)
    transport = ReplayTransport(target)
    with rawsse.Client(
        api_key="", base_url=server.url, http_client=httpx.Client(transport=transport)
    ) as client:
        texts = [client.complete(model="any", messages=MESSAGES).text for _ in range(2)]
    assert texts == TEXTS
    assert [c.body for _, c in transport.played] == [FIRST, SECOND]


def test_a_later_run_appends_to_the_earlier_ones(server: ServerThread, tmp_path: Path) -> None:
    target = tmp_path / "runs.jsonl"
    record_two(server, target)
    record_two(server, target)
    assert [c.body for c in load_cassettes(target)] == [FIRST, SECOND, FIRST, SECOND]


@pytest.mark.anyio
async def test_the_async_client_appends_too(server: ServerThread, tmp_path: Path) -> None:
    target = tmp_path / "async.jsonl"
    server.expect(sse_script(FIRST), sse_script(SECOND))
    async with rawsse.AsyncClient(base_url=server.url, record_to=target, retries=0) as client:
        texts = [(await client.complete(model="m", messages=MESSAGES)).text for _ in range(2)]
    assert texts == TEXTS
    assert [c.body for c in load_cassettes(target)] == [FIRST, SECOND]


def test_append_after_a_file_without_a_final_newline(tmp_path: Path) -> None:
    target = tmp_path / "x.jsonl"
    target.write_bytes(dumps_cassette(Cassette.from_body(FIRST)).rstrip(b"\n"))
    append_cassette(Cassette.from_body(SECOND), target)
    assert [c.body for c in load_cassettes(target)] == [FIRST, SECOND]


def test_save_cassette_still_replaces_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "p" / "q" / "r.jsonl"
    save_cassette(Cassette.from_body(FIRST), target)
    save_cassette(Cassette.from_body(SECOND), target)
    assert load_cassette(target).body == SECOND


def test_errors_in_a_later_exchange_name_the_file_line(tmp_path: Path) -> None:
    one = dumps_cassette(Cassette.from_body([b"a", b"b"]))
    assert one.count(b"\n") == 4
    bad = one + one.replace(b'"text": "b"', b'"text": 5')
    with pytest.raises(CassetteError, match=r"x\.jsonl, line 7: bad chunk"):
        loads_cassettes(bad, source="x.jsonl")


def test_load_cassettes_on_a_directory_is_a_cassette_error(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="is a directory"):
        load_cassettes(tmp_path)


# -- the pytest plugin: several requests in one test ---------------------------------


def test_rawsse_record_keeps_every_request_and_replays_them_in_order(
    project: pytest.Pytester, server: ServerThread
) -> None:
    server.expect(sse_script(FIRST), sse_script(SECOND))
    project.makepyfile(
        f"""
        import pytest

        @pytest.mark.rawsse_cassette("two", base_url={server.url!r})
        def test_two(rawsse_client, request):
            texts = [
                rawsse_client.complete(model="openai/gpt-4o-mini", messages=[]).text
                for _ in range(2)
            ]
            assert texts == {TEXTS!r}

        @pytest.mark.rawsse_cassette("two")
        def test_all_kept(rawsse_cassettes, rawsse_cassette):
            assert len(rawsse_cassettes) == 2
            assert rawsse_cassette == rawsse_cassettes[0]
        """
    )
    run(project, "--rawsse-record", "-k", "test_two").assert_outcomes(passed=1)
    assert len(server.exchanges) == 2
    recorded = project.path / "cassettes" / "two.jsonl"
    assert [c.body for c in load_cassettes(recorded)] == [FIRST, SECOND]
    run(project).assert_outcomes(passed=2)  # replayed in order, no server needed
    assert len(server.exchanges) == 2
