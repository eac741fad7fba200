from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import ServerThread, running_server

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
# RAWSSE_CORPUS points at the shared corpus where it is not beside the checkout.
CORPUS = Path(os.environ.get("RAWSSE_CORPUS") or ROOT.parent / "shared" / "corpus")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    """The scripted HTTP server (``tests/server.py``) on real TCP, one per test module."""
    with running_server() as s:
        yield s


@pytest.fixture(params=["sync", "asyncio", "trio"])
def mode(request: pytest.FixtureRequest) -> str:
    """Drive a client test with the sync client, and the async one on asyncio and trio."""
    return str(request.param)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``@pytest.mark.anyio`` test on asyncio and on trio."""
    return str(request.param)


def corpus_files(suffix: str = ".sse") -> list[Path]:
    """The captured streams in ../shared/corpus (empty where it is absent)."""
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.iterdir() if p.name.endswith(suffix))


def fixture_files(suffix: str = ".sse") -> list[Path]:
    """The project's own recorded streams in fixtures/."""
    return sorted(p for p in FIXTURES.rglob(f"*{suffix}"))


def corpus_params(suffix: str = ".sse") -> list[object]:
    """pytest params over the corpus, or one skipped param saying why."""
    files = corpus_files(suffix)
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{CORPUS} is absent"))]
    return [pytest.param(p, id=p.name) for p in files]
