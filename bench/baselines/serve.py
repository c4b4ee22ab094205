"""How the bench starts a FastAPI baseline: `--host`/`--port`, uvicorn on uvloop + httptools."""

from __future__ import annotations

import argparse
import socket

import uvicorn
from starlette.types import ASGIApp


def serve(app: ASGIApp, description: str, default_port: int) -> None:
    """Parse the command line and serve `app` until stopped."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    args = parser.parse_args()
    sock = socket.create_server((args.host, args.port), backlog=4096)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    print("ready", flush=True)  # the socket listens already; uvicorn accepts from it
    uvicorn.Server(config).run(sockets=[sock])
