"""``rawsse chat`` and ``rawsse replay`` show every choice of an ``n > 1`` answer, labelled,
never interleaved.  The CLI runs as a subprocess (chat against a fixture server over TCP)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from rawsse import accumulate, parse_chat_stream
from rawsse.testing import FixtureServer, load_cassette
from tests.conftest import FIXTURES
from tests.helpers import rawsse_cli

N2 = FIXTURES / "cassettes" / "n2_choices.jsonl"
TEXTS = [c.content for c in accumulate(parse_chat_stream(load_cassette(N2).body)).choices]


@pytest.fixture(scope="module")
def server() -> Iterator[FixtureServer]:
    with FixtureServer(N2, speed=0) as s:
        yield s


def test_replay_labels_every_choice_in_order() -> None:
    result = rawsse_cli("replay", "--speed", "0", str(N2))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == ["[choice 0]", TEXTS[0], "[choice 1]", TEXTS[1]]
    assert lines[4].startswith("-- ttft ")
    assert len(lines) == 5


def test_chat_shows_the_other_choices_labelled_after_the_live_one(server: FixtureServer) -> None:
    result = rawsse_cli("chat", "--base-url", server.base_url, "openai/gpt-4o", "A cat name?")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # The choice that arrives first is written live; the other follows under its label.
    first = 0 if lines[0] == TEXTS[0] else 1
    assert lines[:4] == [
        TEXTS[first],
        f"(the text above is choice {first})",
        f"[choice {1 - first}]",
        TEXTS[1 - first],
    ]
    assert lines[4].startswith("-- ttft ")


def test_a_single_choice_has_no_label() -> None:
    result = rawsse_cli("replay", "--speed", "0", str(FIXTURES / "cassettes" / "plain_text.jsonl"))
    assert result.returncode == 0, result.stderr
    assert "[choice" not in result.stdout
    assert "text above is choice" not in result.stdout


def test_chat_json_lists_every_choice(server: FixtureServer) -> None:
    result = rawsse_cli("chat", "--json", "--base-url", server.base_url, "openai/gpt-4o", "Hi")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["choices"] == 2
    assert [(c["index"], c["text"], c["finish_reason"]) for c in doc["choice_results"]] == [
        (0, TEXTS[0], "stop"),
        (1, TEXTS[1], "stop"),
    ]
