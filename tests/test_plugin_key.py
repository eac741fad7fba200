"""The pytest plugin's key: the client's rule, over real TCP to a server that records headers.

``$OPENROUTER_API_KEY`` goes to OpenRouter's host only; a marker's ``api_key_env=`` names the
variable for another endpoint; a keyless local endpoint records with no key at all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rawsse.testing import load_cassette

from .server import ServerThread, running_server, sse_script
from .test_pytest_plugin import PLAIN, PLAIN_TEXT, project, run

pytest_plugins = ["pytester"]
__all__ = ["project"]  # the pytester project fixture, shared with the plugin tests

OPENROUTER_KEY = "sk-or-v1-0penr0uter0nly0penr0uter0nly0penr0uter0nly0penr0uter0nly"
OTHER_KEY = "sk-other-endpoint-key-1234567890abcdef"
BODY = load_cassette(PLAIN).body


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with running_server() as s:
        yield s


def sync_test(url: str, marker_extra: str = "") -> str:
    return f"""
        import pytest

        @pytest.mark.rawsse_cassette("fresh", base_url={url!r}{marker_extra})
        def test_it(rawsse_client):
            result = rawsse_client.complete(model="openai/gpt-4o-mini", messages=[])
            assert result.text == {PLAIN_TEXT!r}
        """


def test_the_openrouter_key_never_reaches_a_local_base_url(
    project: pytest.Pytester, server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", OPENROUTER_KEY)
    server.expect(sse_script(BODY))
    project.makepyfile(sync_test(server.url))
    run(project, "--rawsse-record").assert_outcomes(passed=1)
    assert len(server.exchanges) == 1
    assert "authorization" not in server.exchanges[0].headers
    assert OPENROUTER_KEY.encode() not in server.exchanges[0].body
    assert load_cassette(project.path / "cassettes" / "fresh.jsonl").body == BODY


def test_a_keyless_local_endpoint_records_without_any_key(
    project: pytest.Pytester, server: ServerThread
) -> None:
    # ``project`` unsets OPENROUTER_API_KEY.
    server.expect(sse_script(BODY))
    project.makepyfile(sync_test(server.url))
    run(project, "--rawsse-record").assert_outcomes(passed=1)
    assert "authorization" not in server.exchanges[0].headers
    run(project).assert_outcomes(passed=1)  # and replays, server or not


def test_api_key_env_names_the_key_for_another_endpoint(
    project: pytest.Pytester, server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", OPENROUTER_KEY)
    monkeypatch.setenv("MY_KEY", OTHER_KEY)
    server.expect(sse_script(BODY))
    project.makepyfile(sync_test(server.url, ', api_key_env="MY_KEY"'))
    run(project, "--rawsse-record").assert_outcomes(passed=1)
    assert server.exchanges[0].headers["authorization"] == f"Bearer {OTHER_KEY}"
    raw = (project.path / "cassettes" / "fresh.jsonl").read_bytes()
    assert OTHER_KEY.encode() not in raw
    assert OPENROUTER_KEY.encode() not in raw
    # Replaying needs neither the server nor the key.
    monkeypatch.delenv("MY_KEY")
    run(project).assert_outcomes(passed=1)


def test_api_key_env_that_is_unset_fails_clearly(
    project: pytest.Pytester, server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", OPENROUTER_KEY)
    monkeypatch.delenv("MY_KEY", raising=False)
    project.makepyfile(sync_test(server.url, ', api_key_env="MY_KEY"'))
    result = run(project, "--rawsse-record")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--rawsse-record needs MY_KEY (named by api_key_env=)*"])
    assert server.exchanges == []
    assert OPENROUTER_KEY not in result.stdout.str()


def test_api_key_env_must_name_a_variable(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.rawsse_cassette("plain", api_key_env=5)
        def test_it(rawsse_client):
            pass
        """
    )
    result = run(project)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*api_key_env names an environment variable: 5*"])


def test_openrouter_recording_still_needs_its_key(project: pytest.Pytester) -> None:
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


def test_the_async_client_follows_the_same_rule(
    project: pytest.Pytester, server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", OPENROUTER_KEY)
    monkeypatch.setenv("MY_KEY", OTHER_KEY)
    server.expect(*(sse_script(BODY) for _ in range(4)))
    project.makepyfile(
        f"""
        import pytest

        @pytest.mark.anyio
        @pytest.mark.rawsse_cassette("local", base_url={server.url!r})
        async def test_local(rawsse_async_client):
            result = await rawsse_async_client.complete(model="m", messages=[])
            assert result.text == {PLAIN_TEXT!r}

        @pytest.mark.anyio
        @pytest.mark.rawsse_cassette("named", base_url={server.url!r}, api_key_env="MY_KEY")
        async def test_named(rawsse_async_client):
            result = await rawsse_async_client.complete(model="m", messages=[])
            assert result.text == {PLAIN_TEXT!r}
        """
    )
    # asyncio records each cassette; trio then replays what asyncio recorded.
    run(project, "--rawsse-record", "-p", "no:randomly").assert_outcomes(passed=4)
    seen = [e.headers.get("authorization") for e in server.exchanges]
    assert seen == [None, f"Bearer {OTHER_KEY}"]


def test_a_bare_transport_records_without_any_key(
    project: pytest.Pytester, server: ServerThread
) -> None:
    server.expect(sse_script(BODY))
    project.makepyfile(
        f"""
        import httpx
        import pytest

        @pytest.mark.rawsse_cassette("bare")
        def test_it(rawsse_transport):
            with httpx.Client(transport=rawsse_transport) as http:
                response = http.post({server.url + "/chat/completions"!r}, json={{"model": "m"}})
            assert response.status_code == 200
        """
    )
    run(project, "--rawsse-record").assert_outcomes(passed=1)
    assert load_cassette(project.path / "cassettes" / "bare.jsonl").body == BODY
