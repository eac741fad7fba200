"""The pytest plugin, driven through pytester: replay, clear failures, recording, asyncio + trio."""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

import pytest

from rawsse import accumulate, parse_chat_stream
from rawsse.testing import load_cassette

from .conftest import FIXTURES
from .server import running_server, sse_script

pytest_plugins = ["pytester"]

PLAIN = FIXTURES / "cassettes" / "plain_text.jsonl"
PLAIN_TEXT = accumulate(parse_chat_stream(load_cassette(PLAIN).body)).text
KEY = "sk-or-v1-c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffee"

CONFTEST = """
import pytest

@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param
"""


def plugin_args() -> list[str]:
    """``-p rawsse.pytest_plugin`` unless the installed entry point loads it already."""
    entry_points = importlib.metadata.entry_points(group="pytest11")
    if any(ep.value == "rawsse.pytest_plugin" for ep in entry_points):
        return []
    return ["-p", "rawsse.pytest_plugin"]


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A test project with strict settings and the plain-text cassette as ``plain``."""
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    pytester.makeini(
        "[pytest]\naddopts = --strict-markers --strict-config\nfilterwarnings = error\n"
    )
    pytester.makeconftest(CONFTEST)
    (pytester.path / "cassettes").mkdir()
    shutil.copy(PLAIN, pytester.path / "cassettes" / "plain.jsonl")
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # Hypothesis's plugin imports all of hypothesis at session end: a second per run.
    quiet = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    return pytester.runpytest(*plugin_args(), *quiet, *args)


def test_sync_client_replays_the_cassette(project: pytest.Pytester) -> None:
    project.makepyfile(
        f"""
        import pytest
        import rawsse

        @pytest.mark.rawsse_cassette("plain")
        def test_answer(rawsse_client):
            result = rawsse_client.complete(model="openai/gpt-4o-mini", messages=[])
            assert result.status == rawsse.ChatStatus.COMPLETE
            assert result.text == {PLAIN_TEXT!r}

        @pytest.mark.rawsse_cassette("plain")
        def test_events(rawsse_client):
            with rawsse_client.stream(model="openai/gpt-4o-mini", messages=[]) as stream:
                text = "".join(stream.text_stream)
            assert text == {PLAIN_TEXT!r}
        """
    )
    run(project).assert_outcomes(passed=2)


def test_async_client_on_asyncio_and_trio(project: pytest.Pytester) -> None:
    project.makepyfile(
        f"""
        import pytest

        @pytest.mark.anyio
        @pytest.mark.rawsse_cassette("plain", chunking="byte")
        async def test_answer(rawsse_async_client):
            result = await rawsse_async_client.complete(model="m", messages=[])
            assert result.text == {PLAIN_TEXT!r}

        @pytest.mark.anyio
        @pytest.mark.rawsse_cassette("plain", speed=1000)
        async def test_events(rawsse_async_client):
            async with rawsse_async_client.stream(model="m", messages=[]) as stream:
                text = "".join([t async for t in stream.text_stream])
            assert text == {PLAIN_TEXT!r}
        """
    )
    result = run(project, "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_answer?asyncio? PASSED*", "*test_answer?trio? PASSED*"])


def test_transports_take_the_marker_options(project: pytest.Pytester) -> None:
    body = load_cassette(PLAIN).body
    project.makepyfile(
        f"""
        import httpx
        import pytest

        URL = "https://x.test/api/v1/chat/completions"

        @pytest.mark.rawsse_cassette("plain", chunking=10, cut_after=95)
        def test_sync(rawsse_transport):
            got = []
            with httpx.Client(transport=rawsse_transport) as client:
                with client.stream("POST", URL, json={{}}) as response:
                    with pytest.raises(httpx.RemoteProtocolError):
                        got.extend(response.iter_raw())
            assert [len(p) for p in got] == [10] * 9 + [5]
            assert b"".join(got) == {body[:95]!r}

        @pytest.mark.anyio
        @pytest.mark.rawsse_cassette("plain", status=500)
        async def test_async(rawsse_async_transport, rawsse_cassette):
            async with httpx.AsyncClient(transport=rawsse_async_transport) as client:
                response = await client.post(URL, json={{}})
            assert response.status_code == 500
            assert response.content == rawsse_cassette.body
        """
    )
    run(project).assert_outcomes(passed=3)


def test_a_missing_cassette_fails_clearly(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.rawsse_cassette("nope")
        def test_sync(rawsse_client):
            raise AssertionError("never reached")

        @pytest.mark.anyio
        @pytest.mark.rawsse_cassette("nope")
        async def test_async(rawsse_async_client):
            raise AssertionError("never reached")
        """
    )
    result = run(project)
    result.assert_outcomes(errors=3)
    missing = project.path / "cassettes" / "nope.jsonl"
    result.stdout.fnmatch_lines(
        [
            f"*rawsse: cassette not found: {missing}*",
            "*Record it once with `pytest --rawsse-record` (OPENROUTER_API_KEY for OpenRouter)*",
        ]
    )
    result.stdout.no_fnmatch_line("*never reached*")


def test_the_cassette_name_defaults_to_the_test_name(project: pytest.Pytester) -> None:
    shutil.copy(PLAIN, project.path / "cassettes" / "test_by_name.jsonl")
    project.makepyfile(
        """
        def test_by_name(rawsse_client, rawsse_cassette):
            assert rawsse_cassette.name == "test_by_name"
            assert rawsse_client.complete(model="m", messages=[]).text
        """
    )
    run(project).assert_outcomes(passed=1)


def test_ini_cassette_dir_is_relative_to_the_rootdir(project: pytest.Pytester) -> None:
    project.makeini(
        "[pytest]\naddopts = --strict-markers\nfilterwarnings = error\n"
        "rawsse_cassette_dir = recorded/streams\n"
    )
    target = project.path / "recorded" / "streams"
    target.mkdir(parents=True)
    shutil.copy(PLAIN, target / "plain.jsonl")
    sub = project.mkpydir("sub")
    (sub / "test_deep.py").write_text(
        "import pytest\n\n"
        '@pytest.mark.rawsse_cassette("plain")\n'
        "def test_deep(rawsse_cassette_path, rawsse_client):\n"
        f"    assert str(rawsse_cassette_path) == {str(target / 'plain.jsonl')!r}\n"
        "    assert rawsse_client.complete(model='m', messages=[]).text\n"
    )
    run(project).assert_outcomes(passed=1)


def test_record_needs_a_key(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.rawsse_cassette("fresh")
        def test_it(rawsse_client):
            raise AssertionError("never reached")
        """
    )
    result = run(project, "--rawsse-record")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*rawsse: --rawsse-record needs OPENROUTER_API_KEY*fresh.jsonl*"])


def test_record_then_replay(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    body = load_cassette(PLAIN).body
    with running_server() as server:
        server.expect(sse_script(body, splits=[50, 500]))
        project.makepyfile(
            f"""
            import pytest

            @pytest.mark.rawsse_cassette("fresh", base_url={server.url!r})
            def test_it(rawsse_client):
                result = rawsse_client.complete(model="openai/gpt-4o-mini", messages=[])
                assert result.text == {PLAIN_TEXT!r}
            """
        )
        monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
        run(project, "--rawsse-record").assert_outcomes(passed=1)
        # The OpenRouter key goes to OpenRouter only, never to this server.
        assert "authorization" not in server.exchanges[0].headers
    recorded = project.path / "cassettes" / "fresh.jsonl"
    raw = recorded.read_bytes()
    assert KEY.encode() not in raw
    cassette = load_cassette(recorded)
    assert cassette.body == body
    assert [len(data) for _, data in cassette.chunks][:2] == [50, 450]
    # The server is gone and the key unset: the test now replays.
    monkeypatch.delenv("OPENROUTER_API_KEY")
    run(project).assert_outcomes(passed=1)


def test_the_marker_is_registered(project: pytest.Pytester) -> None:
    result = run(project, "--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.rawsse_cassette(name, base_url=None, api_key_env=None, **replay_options)*"]
    )


def test_help_shows_the_options(project: pytest.Pytester) -> None:
    result = run(project, "--help")
    result.stdout.fnmatch_lines(["*--rawsse-record*", "*rawsse_cassette_dir*"])


def test_plugin_args_helper_is_consistent() -> None:
    assert plugin_args() in ([], ["-p", "rawsse.pytest_plugin"])
    assert Path(PLAIN).is_file()
