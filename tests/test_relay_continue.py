"""A relay with a resume policy: an upstream cut mid-answer is continued in a new request
(the fixture server continues its recording from the prefill), and the browser sees one
stream with one ``continued`` event; without the policy the cut is an ``error`` event."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from rawsse import AsyncClient, Resume, TextDelta, accumulate, parse_chat_stream
from rawsse._cassette import load_cassette
from rawsse.relay import MemoryStore, RelayApp
from rawsse.testing import FixtureServer

from .conftest import FIXTURES
from .relay_helpers import parse_events, serve_asgi, serve_trio

CASSETTES = FIXTURES / "cassettes"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
Event = tuple[str, dict[str, Any]]
_tokens = itertools.count()


@pytest.fixture(scope="module")
def fixtures() -> Iterator[FixtureServer]:
    with FixtureServer(CASSETTES, speed=0) as server:
        yield server


def body_of(name: str) -> bytes:
    return load_cassette(CASSETTES / f"{name}.jsonl").body


def uncut_text(name: str) -> str:
    return accumulate(parse_chat_stream(body_of(name))).text


def after_text(name: str, chars: int) -> int:
    """The offset just after the event that brings the answer past ``chars`` characters."""
    seen = position = 0
    for block in body_of(name).split(b"\n\n"):
        position += len(block) + 2
        seen += sum(len(e.text) for e in parse_chat_stream(block + b"\n\n") if type(e) is TextDelta)
        if seen >= chars:
            return position
    raise AssertionError("the answer is shorter")


def cut_headers(name: str, at: int) -> dict[str, str]:
    """Cut the first request after ``at`` bytes (a fresh once-token per relay)."""
    token = f"relay{next(_tokens)}-{time.monotonic_ns()}"
    return {"X-Rawsse-Cassette": name, "X-Rawsse-Cut-After": str(at), "X-Rawsse-Once": token}


def relay(fixtures: FixtureServer, headers: dict[str, str], **options: Any) -> Any:
    clients: list[AsyncClient] = []
    stores: list[Any] = []

    def make() -> RelayApp:
        client = AsyncClient(base_url=fixtures.base_url, api_key="", retries=0, headers=headers)
        clients.append(client)
        if options.get("store") is True:
            options["store"] = MemoryStore()
            stores.append(options["store"])
        return RelayApp(client, models=["m"], heartbeat=None, **options)

    async def stop() -> None:
        for client in clients:
            await client.aclose()
        for store in stores:
            await store.aclose()

    return serve_asgi(make, on_stop=stop)


def text_of(events: list[Event]) -> str:
    return "".join(d["text"] for n, d in events if n == "text" and d["choice"] == 0)


def ids_of(body: bytes) -> list[int]:
    return [int(line[4:]) for line in body.split(b"\n") if line.startswith(b"id: ")]


def check_continued(body: bytes, name: str) -> list[Event]:
    events = parse_events(body)
    names = [n for n, _ in events]
    assert names.count("continued") == 1, names
    seam = names.index("continued")
    assert events[seam][1] == {"reason": "cut", "attempt": 1}
    assert "text" in names[:seam]
    assert "text" in names[seam:]
    assert names[0] == "start"
    assert names.count("start") == 1
    assert names[-1] == "done"
    assert names.count("done") + names.count("error") == 1
    assert events[-1][1]["status"] == "complete"
    # Joined at the seam with nothing lost or repeated: exactly the uncut answer.
    assert text_of(events) == uncut_text(name)
    assert ids_of(body) == list(range(1, len(events) + 1))
    return events


@pytest.mark.parametrize("resume", [True, Resume()])
@pytest.mark.parametrize("coalesce", [0.0, 5.0])
def test_a_cut_upstream_is_continued_into_one_stream(
    fixtures: FixtureServer, resume: Any, coalesce: float
) -> None:
    headers = cut_headers("plain_text", after_text("plain_text", 20))
    with relay(fixtures, headers, resume=resume, coalesce=coalesce) as url:
        response = httpx.post(url + "/chat", json=CHAT, timeout=20)
        assert response.status_code == 200
        events = check_continued(response.content, "plain_text")
        if coalesce:  # the text gathered before the seam left before it, in one event
            assert [n for n, _ in events] == ["start", "text", "continued", "text", "usage", "done"]


def test_cut_offsets_across_the_answer_join_exactly(fixtures: FixtureServer) -> None:
    body = body_of("plain_text")
    done_at = body.rindex(b"data: [DONE]")
    first = after_text("plain_text", 1)
    for at in sorted({first - 1, first, first + 7, *range(first, done_at, done_at // 5)}):
        with relay(fixtures, cut_headers("plain_text", at), resume=True) as url:
            response = httpx.post(url + "/chat", json=CHAT, timeout=20)
            events = parse_events(response.content)
            names = [n for n, _ in events]
            assert text_of(events) == uncut_text("plain_text"), at
            if names[-1] == "error":
                # Cut after the answer finished, before usage and [DONE]: nothing to
                # continue; the error carries the whole answer (the client's rule).
                assert events[-1][1]["status"] == "truncated", at
                assert events[-1][1]["text"] == uncut_text("plain_text")
                assert "continued" not in names
                continue
            assert events[-1][1]["status"] == "complete", at
            assert names.count("continued") == 1, at


def test_without_resume_a_cut_ends_with_an_error_event(fixtures: FixtureServer) -> None:
    headers = cut_headers("plain_text", after_text("plain_text", 20))
    with relay(fixtures, headers) as url:
        response = httpx.post(url + "/chat", json=CHAT, timeout=20)
        events = parse_events(response.content)
        names = [n for n, _ in events]
        assert "continued" not in names
        assert names[-1] == "error"
        error = events[-1][1]
        assert error["status"] == "truncated"
        assert error["text"] == text_of(events)
        assert 0 < len(error["text"]) < len(uncut_text("plain_text"))


def test_a_resumable_stream_keeps_the_seam_for_readers_that_resume(
    fixtures: FixtureServer,
) -> None:
    headers = cut_headers("plain_text", after_text("plain_text", 20))
    with relay(fixtures, headers, resume=True, store=True) as url, httpx.Client(timeout=20) as http:
        response = http.post(url + "/chat", json=CHAT)
        stream_id = response.headers["x-rawsse-stream-id"]
        events = check_continued(response.content, "plain_text")
        again = http.get(f"{url}/chat/{stream_id}", headers={"last-event-id": "1"})
        assert parse_events(again.content) == events[1:]


def test_a_cut_upstream_is_continued_under_trio(fixtures: FixtureServer) -> None:
    headers = cut_headers("plain_text", after_text("plain_text", 20))
    with serve_trio(
        fixtures.base_url, ["m"], headers=headers, heartbeat=None, resume=True, coalesce=5.0
    ) as url:
        response = httpx.post(url + "/chat", json=CHAT, timeout=20)
    assert response.status_code == 200
    check_continued(response.content, "plain_text")


def test_the_resume_flag_reaches_the_app(
    monkeypatch: pytest.MonkeyPatch, fixtures: FixtureServer
) -> None:
    from rawsse._cli import main
    from rawsse._cli import relay as relay_command

    made: list[RelayApp] = []

    def serve(make: Any, *args: Any, **kwargs: Any) -> int:
        async def build() -> None:
            app, client = make()
            made.append(app)
            await client.aclose()

        anyio.run(build)
        return 0

    monkeypatch.setattr(relay_command, "_serve", serve)
    argv = ["relay", "--upstream", fixtures.base_url, "--models", "m"]
    assert main([*argv, "--resume"]) == 0
    assert main(argv) == 0
    assert [app.resume for app in made] == [True, None]
