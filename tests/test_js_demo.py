"""demo.html in headless Chromium, against the scripted relay in tests/js/fake_relay.mjs.

Skipped, saying why, when Node.js, Chromium or Playwright is absent.  The
same page against the real relay and fixture server is tested apart; these
tests pin the page's own behaviour: streaming, Stop, errors, reconnects, reload.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAKE_RELAY = ROOT / "tests" / "js" / "fake_relay.mjs"
ANSWER = "Streaming héllo 🌍 from the fake relay, token by token, to the end."
ENDED = (
    "['complete', 'error', 'truncated', 'cancelled', 'timed_out']"
    ".includes(document.getElementById('status').dataset.status)"
)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed (Debian package `chromium`)")


@pytest.fixture(scope="module")
def relay_url() -> Iterator[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    process = subprocess.Popen([node, str(FAKE_RELAY)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, relay_url: str) -> Iterator[Any]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(relay_url)
    page.wait_for_selector("body[data-ready=true]")
    yield page
    page.close()
    assert errors == []


def ask(page: Any, prompt: str) -> None:
    page.fill("[data-testid=prompt]", prompt)
    page.click("[data-testid=send]")


def shown(page: Any) -> dict[str, str]:
    names = ("status", "output", "ttft", "tps", "usage", "cost", "error")
    return {name: page.inner_text(f"[data-testid={name}]") for name in names}


def test_answer_streams_with_ttft_speed_usage_and_cost(page: Any, tmp_path: Path) -> None:
    assert page.eval_on_selector("[data-testid=model]", "e => e.tagName") == "SELECT"
    ask(page, "hello")
    # Text shows while the answer is still streaming.
    page.wait_for_function(
        "document.getElementById('output').textContent.length > 0"
        " && document.getElementById('status').dataset.status === 'streaming'"
    )
    page.wait_for_function(ENDED)
    got = shown(page)
    assert got["status"] == "complete"
    assert got["output"] == ANSWER
    assert got["ttft"].endswith(("ms", "s"))
    assert got["tps"].endswith("tok/s")
    assert got["usage"] == "3 in · 13 out"
    assert got["cost"] == "$0.000100"
    assert got["error"] == ""
    assert page.is_disabled("[data-testid=stop]")
    page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)


def test_stop_keeps_the_partial_text(page: Any) -> None:
    ask(page, "slow")
    page.wait_for_function("document.getElementById('output').textContent.length > 10")
    page.click("[data-testid=stop]")
    page.wait_for_function(ENDED)
    got = shown(page)
    assert got["status"] == "cancelled"
    assert ANSWER.startswith(got["output"])
    assert 10 < len(got["output"]) < len(ANSWER)


def test_error_event_is_shown_with_the_partial_text(page: Any) -> None:
    ask(page, "fail")
    page.wait_for_function(ENDED)
    got = shown(page)
    assert got["status"] == "error"
    assert "upstream failed" in got["error"]
    assert got["output"] == "Streaming héllo 🌍 from the fake "


def test_http_error_is_shown(page: Any) -> None:
    ask(page, "http429")
    page.wait_for_function(ENDED)
    got = shown(page)
    assert got["status"] == "error"
    assert "429" in got["error"]
    assert "slow down" in got["error"]


def test_a_cut_connection_resumes_and_seams_show(page: Any) -> None:
    ask(page, "cut with a seam")
    page.wait_for_function(ENDED)
    assert shown(page)["output"] == ANSWER
    assert shown(page)["status"] == "complete"
    assert page.locator("[data-testid=seam]").count() == 1


def test_reload_mid_answer_continues(page: Any) -> None:
    ask(page, "hello")
    page.wait_for_function(ENDED)
    ask(page, "slow reload")
    page.wait_for_function("document.getElementById('output').textContent.length > 15")
    page.reload()
    page.wait_for_function(ENDED, timeout=20_000)
    got = shown(page)
    assert got["status"] == "complete"
    assert got["output"] == ANSWER
    assert page.inner_text("[data-testid=question]") == "slow reload"
    # The earlier turn is back too; the stored stream is gone once it ended.
    assert page.inner_text("#history").count(ANSWER) == 1
    assert page.evaluate("sessionStorage.length") == 0


# -- the page served by the real relay, over the fixture server ----------------------


@pytest.fixture(scope="module")
def real_relay() -> Iterator[tuple[str, io.StringIO]]:
    """The relay (tests/js/serve_relay.py) over a fixture server with recorded timing."""
    pytest.importorskip("rawsse.relay", reason="rawsse.relay is not built yet")
    try:
        from rawsse.relay import RelayApp  # noqa: F401
    except ImportError:
        pytest.skip("rawsse.relay has no RelayApp yet")
    pytest.importorskip("uvicorn", reason="uvicorn is not installed (rawsse[relay])")
    import rawsse.testing

    log = io.StringIO()
    with rawsse.testing.FixtureServer(speed=2, log=log) as fixtures:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "js" / "serve_relay.py"), fixtures.base_url],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), url
            yield url, log
        finally:
            process.terminate()
            process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()


def _recorded_text(model: str) -> str:
    import rawsse
    from rawsse import parse_chat_stream
    from rawsse._accumulate import accumulate
    from rawsse.testing import load_cassette

    name = model.removeprefix("rawsse/") + ".jsonl"
    path = Path(rawsse.__file__).parent / "recordings" / name
    return accumulate(parse_chat_stream(load_cassette(path).body)).text


def test_page_streams_from_the_real_relay(
    browser: Any, real_relay: tuple[str, io.StringIO], tmp_path: Path
) -> None:
    url, _ = real_relay
    page = browser.new_page()
    try:
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("[data-testid=model]", "rawsse/demo")
        ask(page, "What are Server-Sent Events?")
        page.wait_for_function(
            "document.getElementById('output').textContent.length > 0"
            " && document.getElementById('status').dataset.status === 'streaming'"
        )
        page.wait_for_function(ENDED, timeout=30_000)
        got = shown(page)
        assert got["status"] == "complete", got
        assert got["output"] == _recorded_text("rawsse/demo")
        assert " out" in got["usage"]
        assert got["cost"].startswith("$")
        page.screenshot(path=str(tmp_path / "demo-relay.png"), full_page=True)
    finally:
        page.close()


def test_stop_on_the_real_relay_cancels_upstream(
    browser: Any, real_relay: tuple[str, io.StringIO]
) -> None:
    url, log = real_relay
    page = browser.new_page()
    try:
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("[data-testid=model]", "rawsse/demo")
        before = len(log.getvalue())
        ask(page, "Stop me")
        page.wait_for_function("document.getElementById('output').textContent.length > 5")
        page.click("[data-testid=stop]")
        page.wait_for_function(ENDED)
        assert shown(page)["status"] == "cancelled"
        deadline = time.monotonic() + 5
        while "client went away" not in log.getvalue()[before:]:
            assert time.monotonic() < deadline, log.getvalue()[before:]
            time.sleep(0.02)
    finally:
        page.close()


def test_decoder_passes_the_spec_vectors_in_chromium(page: Any, relay_url: str) -> None:
    # The browser's own TextDecoder and string engine, on the shared vector table:
    # whole, byte by byte and split at every position.
    vectors = json.loads((ROOT / "tests" / "data" / "sse_vectors.json").read_text())["vectors"]
    failures = page.evaluate(
        """async ([url, vectors]) => {
          const { SSEDecoder } = await import(url + "rawsse.js");
          const decode = (chunks) => {
            const decoder = new SSEDecoder();
            const out = [];
            for (const chunk of chunks) out.push(...decoder.feed(chunk));
            out.push(...decoder.close());
            return JSON.stringify(out);
          };
          const failures = [];
          for (const vector of vectors) {
            const bytes = Uint8Array.from(vector.input, (c) => c.charCodeAt(0));
            const want = JSON.stringify(vector.events);
            const ways = [[bytes], Array.from(bytes, (b) => Uint8Array.of(b))];
            for (let i = 0; i <= bytes.length; i++) ways.push([bytes.slice(0, i), bytes.slice(i)]);
            for (const chunks of ways) {
              if (decode(chunks) !== want) {
                failures.push(vector.name);
                break;
              }
            }
          }
          return failures;
        }""",
        [relay_url, vectors],
    )
    assert len(vectors) >= 40
    assert failures == []
