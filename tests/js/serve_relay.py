"""Serve ``rawsse.relay.RelayApp`` under uvicorn for the JavaScript end-to-end tests.

    python tests/js/serve_relay.py UPSTREAM [--models a,b] [--heartbeat S] [--coalesce S]
                                   [--store memory]

``UPSTREAM`` is an OpenAI-compatible base URL (the fixture server's). The models
default to the upstream's ``GET /models``. The first line printed (flushed) is
the relay's URL, once its socket listens; SIGTERM stops it. ``--store memory``
makes streams resumable (``RelayApp(store=MemoryStore())``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import urllib.request
from typing import Any

import uvicorn

import rawsse
from rawsse.relay import RelayApp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("upstream")
    parser.add_argument("--models")
    parser.add_argument("--heartbeat", type=float, default=15.0)
    parser.add_argument("--coalesce", type=float, default=0.0)
    parser.add_argument("--store", choices=["memory"])
    args = parser.parse_args()
    options: dict[str, Any] = {}
    if args.store == "memory":
        from rawsse.relay import MemoryStore

        options["store"] = MemoryStore()
    if args.models:
        models = args.models.split(",")
    else:
        with urllib.request.urlopen(f"{args.upstream}/models") as response:
            models = [m["id"] for m in json.load(response)["data"]]

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}/", flush=True)

    async def serve() -> None:
        client = rawsse.AsyncClient(base_url=args.upstream, api_key="unused", retries=0)
        app: Any = RelayApp(
            client,
            models=models,
            demo=True,
            heartbeat=args.heartbeat,
            coalesce=args.coalesce,
            **options,
        )
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        try:
            await uvicorn.Server(config).serve(sockets=[sock])
        finally:
            await client.aclose()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
