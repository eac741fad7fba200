"""Relay instances in processes of their own (uvicorn), sharing one Redis, for the resume tests.

``python -m tests.relay_process UPSTREAM REDIS_URL PORT [SPEED] [LEASE]`` serves a
``RelayApp`` backed by ``RedisStore`` on 127.0.0.1:PORT; ``RelayProcess`` starts one
and waits until it answers, ``kill()`` sends SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


class RelayProcess:
    """One relay process; ``url`` is its base URL."""

    def __init__(
        self, upstream: str, redis_url: str, port: int, *, speed: str = "1", lease: float = 5.0
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        args = [sys.executable, "-m", "tests.relay_process", upstream, redis_url, str(port)]
        self.process = subprocess.Popen(
            [*args, speed, str(lease)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the relay process exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/models", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the relay process did not answer within 30 s")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the instance dies mid-answer, with no chance to clean up."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def main(argv: list[str]) -> None:
    import uvicorn

    from rawsse import AsyncClient
    from rawsse.relay import RedisStore, RelayApp

    upstream, redis_url, port, speed, lease = [*argv, "1", "5"][:5]
    client = AsyncClient(
        base_url=upstream, api_key="", retries=0, headers={"x-rawsse-speed": speed}
    )
    store = RedisStore(redis_url, lease_ttl=float(lease), block=0.5)
    models = ["rawsse/demo", "rawsse/reasoning", "rawsse/slow-start", "rawsse/tool-call"]
    app = RelayApp(client, models=models, store=store, linger=30)
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning", lifespan="off")


if __name__ == "__main__":
    main(sys.argv[1:])
