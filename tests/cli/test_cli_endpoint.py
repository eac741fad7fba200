"""Where ``chat`` and ``bench`` send their requests, and with which key: one rule for both."""

from __future__ import annotations

from pathlib import Path

import pytest

from rawsse._cli import main

NO_KEY = (
    "error: no API key: set the OPENROUTER_API_KEY environment variable "
    "(or point --base-url at another server, e.g. one started by `rawsse serve`)\n"
)


def argv(command: str, *more: str) -> list[str]:
    """``command`` asking model ``x/y`` once."""
    return [command, "x/y", "hi" if command == "chat" else "--runs=1", *more]


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENROUTER_API_KEY", "RAWSSE_API_KEY", "RAWSSE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("command", ["chat", "bench"])
@pytest.mark.parametrize("key", [None, "", "   ", "\t\r\n"])
def test_a_missing_or_blank_openrouter_key_is_the_same_usage_error(
    command: str,
    key: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if key is not None:
        monkeypatch.setenv("OPENROUTER_API_KEY", key)
    log = tmp_path / "m.jsonl"
    assert main(argv(command, f"--metrics={log}")) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"rawsse {command}: {NO_KEY}")
    assert not log.exists()


@pytest.mark.parametrize("command", ["chat", "bench"])
@pytest.mark.parametrize("base_url", [None, "http://127.0.0.1:9/v1"])
def test_a_key_the_client_refuses_is_the_same_usage_error(
    command: str,
    base_url: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # OpenRouter's key for OpenRouter, $RAWSSE_API_KEY for any other server.
    monkeypatch.setenv("OPENROUTER_API_KEY" if base_url is None else "RAWSSE_API_KEY", "ab\x01c")
    more = [] if base_url is None else [f"--base-url={base_url}"]
    assert main(argv(command, f"--metrics={tmp_path / 'm.jsonl'}", *more)) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (
        "",
        f"rawsse {command}: error: the API key contains a control character (U+0001); "
        "it cannot be sent in a header\n",
    )
