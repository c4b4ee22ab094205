"""`chatbot serve` and `chatbot db …` (also `python -m chatbot …`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
from functools import partial
from types import FrameType

import uvicorn
from pydantic import ValidationError

from chatbot import launch
from chatbot.app import create_app
from chatbot.collector import tune_for_serving
from chatbot.config import AuthMethod, Settings
from chatbot.logs import configure_logging
from chatbot.sessions.manager import SessionManager
from chatbot.store import StoreError, admin
from chatbot.workers import Supervisor

log = logging.getLogger("chatbot")


class Server(uvicorn.Server):
    """uvicorn, but open SSE streams end as soon as shutdown starts.

    uvicorn waits for in-flight responses before the app's shutdown runs; a stream
    never finishes by itself, so without this every shutdown would hang until
    the graceful timeout and then cancel the streams mid-write.
    """

    def __init__(self, config: uvicorn.Config, manager: SessionManager) -> None:
        super().__init__(config)
        self.manager = manager

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Ask every stream to finish, then shut down as uvicorn does."""
        with contextlib.suppress(RuntimeError):  # no loop yet: nothing is streaming
            asyncio.get_running_loop().call_soon_threadsafe(self.manager.end_streams)
        super().handle_exit(sig, frame)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run it."""
    parser = argparse.ArgumentParser(prog="chatbot", description="Multi-user agent chat server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the HTTP API (and the web UI)")
    serve.add_argument("--host", help="bind address (default: BACKEND_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: BACKEND_PORT, 8080)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on the one port (more than 1 needs REDIS_URL: cluster mode)",
    )
    cluster = commands.add_parser(
        "cluster", help="try cluster mode on this machine: Redis, N workers, nginx in front"
    )
    cluster.add_argument("--workers", type=int, default=3, help="workers (default: 3)")
    cluster.add_argument("--host", help="nginx's address (default: BACKEND_HOST, 127.0.0.1)")
    cluster.add_argument("--port", type=int, help="nginx's port (default: BACKEND_PORT, 8080)")
    for command in (serve, cluster):
        command.add_argument(
            "--no-docs",
            action="store_true",
            help="no docs index and no search_docs tool (DOCS_ENABLED=false)",
        )
    db = commands.add_parser("db", help="operate on the database (DATABASE_URL)")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply the missing migrations and exit")
    db_commands.add_parser("check", help="connect; print the schema version and session count")
    copy = db_commands.add_parser("copy", help="copy every session to another database")
    copy.add_argument("--from", dest="source", help="source URL (default: DATABASE_URL)")
    copy.add_argument("--to", dest="target", required=True, help="target URL")
    args = parser.parse_args(argv)
    if getattr(args, "no_docs", False):
        # As the setting, so that every worker process reads it the same way.
        os.environ["DOCS_ENABLED"] = "false"
    try:
        settings = Settings()
    except ValidationError as error:
        parser.exit(2, f"chatbot: invalid configuration:\n{error}\n")
    configure_logging(settings.log_level)
    try:
        if args.command == "db":
            return _db(args, settings)
        # Migrated before serving: a database that cannot be used is one clear line here,
        # not a traceback from the server's start-up.
        asyncio.run(admin.upgrade(settings.database_url))
    except StoreError as error:
        parser.exit(1, f"chatbot: cannot open the database: {error}\n")
    host = args.host or settings.backend_host
    if not (is_loopback(host) or settings.requires_credentials or settings.allow_anonymous_remote):
        parser.exit(
            2,
            f"chatbot: refusing to serve on {host} without authentication: anyone who can "
            "reach it could read any session whose id they know and spend your model "
            "budget. Set AUTH (e.g. AUTH=siwe,apikey; see the README), serve on 127.0.0.1 "
            "behind your own authenticating proxy, or set ALLOW_ANONYMOUS_REMOTE=true to "
            "do it anyway.\n",
        )
    if not is_loopback(host) and AuthMethod.SIWE in settings.auth and not settings.siwe_domain:
        parser.exit(
            2,
            f"chatbot: refusing to serve Sign-In with Ethereum on {host} without SIWE_DOMAIN: "
            "the domain a wallet shows and signs must be the one users reach (e.g. "
            "SIWE_DOMAIN=chat.example.org), not whatever Host header a request carries.\n",
        )
    if args.command == "cluster":
        port = settings.backend_port if args.port is None else args.port
        return launch.run(args.workers, host, port, settings.database_url)
    return _serve(args, settings, parser)


def _db(args: argparse.Namespace, settings: Settings) -> int:
    """`chatbot db upgrade | check | copy`."""
    url = settings.database_url
    if args.db_command == "upgrade":
        version = asyncio.run(admin.upgrade(url))
        print(f"schema version {version}")
    elif args.db_command == "check":
        report = asyncio.run(admin.check(url))
        print(
            f"database {report.where}: schema version {report.schema_version}, "
            f"{report.sessions} sessions"
        )
    else:

        def progress(copied: int) -> None:
            print(f"copied {copied} sessions", flush=True)

        copied = asyncio.run(admin.copy(args.source or url, args.target, progress))
        print(f"done: {copied} sessions copied")
    return 0


def _serve(args: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    """Run the server (or N workers on one port) until it is told to stop."""
    host = args.host or settings.backend_host
    port = settings.backend_port if args.port is None else args.port
    if args.workers < 1:
        parser.exit(2, "chatbot: --workers must be at least 1\n")
    if args.workers > 1 and settings.redis_url is None:
        parser.exit(2, "chatbot: --workers above 1 needs REDIS_URL (cluster mode)\n")
    log.info(
        "starting",
        extra={
            "host": host,
            "port": port,
            "workers": args.workers,
            "provider": settings.provider.value,
        },
    )
    if args.workers == 1:
        return _run_worker(_config(host, port), settings, parser)
    config = _config(host, port)
    sock = config.bind_socket()
    # Listening from now on: connections wait in the backlog while the workers start (and
    # while a dead one is replaced) instead of being refused.
    sock.listen(config.backlog)
    return Supervisor(args.workers, sock, partial(_worker_main, host, port)).run()


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _config(host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        "chatbot.app:create_app",
        factory=True,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
    )


def _run_worker(
    config: uvicorn.Config,
    settings: Settings,
    parser: argparse.ArgumentParser | None,
    sock: socket.socket | None = None,
) -> int:
    try:
        app = create_app(settings)
    except ValueError as error:
        if parser is None:
            raise
        parser.exit(2, f"chatbot: {error}\n")
    config.app = app
    config.factory = False
    tune_for_serving()
    server = Server(config, app.state.manager)
    server.run(sockets=[sock] if sock is not None else None)
    return 0 if server.started else 1


def _worker_main(host: str, port: int, sock: socket.socket) -> None:
    """One worker of `--workers N`, in its own process, on the parent's socket."""
    settings = Settings()
    configure_logging(settings.log_level)
    raise SystemExit(_run_worker(_config(host, port), settings, None, sock))
