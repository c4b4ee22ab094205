"""The application factory: routes, middleware, and the per-process agent and registry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import orjson
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.staticfiles import StaticFiles

from chatbot.agent.providers import build_backend
from chatbot.agent.runtime import AgentRuntime
from chatbot.api import auth, legacy, sessions, stream, wallet
from chatbot.api.errors import install_error_handlers
from chatbot.api.limits import BodySizeLimit
from chatbot.api.openapi import install_openapi
from chatbot.auth.ledger import MemoryLedger, RedisLedger
from chatbot.auth.principals import Authenticator
from chatbot.cluster import Cluster
from chatbot.config import Settings
from chatbot.errors import ChatbotError
from chatbot.limiter import Limiter
from chatbot.metrics import Metrics
from chatbot.sessions.manager import SessionManager
from chatbot.sessions.service import LocalSessions, Sessions
from chatbot.store import StoreError, store_from_url
from chatbot.tools.docs import DocsIndex, docs_toolset
from chatbot.tools.evm.rpc import RpcClient
from chatbot.tools.mcp_pool import McpPool, load_config
from chatbot.tools.wallet import Preflight, wallet_toolset

log = logging.getLogger("chatbot")

DESCRIPTION = """
Multi-user Ethereum agent chat. Every session (every browser tab) has its own
conversation, turn, network and pending wallet transaction, streamed live over SSE.

Errors are always `{"error": {"code": "...", "message": "..."}}`.
"""


SIMULATION_TIMEOUT_SECONDS = 5.0
"""A proposal waits this long at most for its simulation; then it is shown unsimulated."""


def tool_server_env(settings: Settings) -> dict[str, str]:
    """What a stdio tool server is told: the networks, and where to find verified ABIs."""
    env = {
        "NETWORKS": orjson.dumps(
            {name: network.model_dump() for name, network in settings.networks.items()}
        ).decode(),
        "SOURCIFY_URL": settings.sourcify_url,
        "ETHERSCAN_API_URL": settings.etherscan_api_url,
    }
    if settings.etherscan_api_key is not None:
        env["ETHERSCAN_API_KEY"] = settings.etherscan_api_key.get_secret_value()
    return env


def open_docs(settings: Settings) -> DocsIndex | None:
    """The docs index for `search_docs` (built now if its files changed); None without docs.

    Built before serving, once per process: the default guide takes milliseconds, and a
    turn must never see the tool half-ready.
    """
    if not settings.docs_enabled:
        return None
    try:
        return DocsIndex.open_blocking(settings.docs_dir, settings.docs_index)
    except (OSError, sqlite3.Error) as error:
        log.warning("no docs search: the index cannot be built", extra={"error": str(error)})
        return None


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; one agent and one session registry per process, made here."""
    settings = settings or Settings()
    metrics = Metrics()
    backend = build_backend(settings)
    pool = McpPool(load_config(settings.mcp_config), env=tool_server_env(settings))
    rpc = RpcClient(SIMULATION_TIMEOUT_SECONDS)
    docs = open_docs(settings)
    toolsets = [
        wallet_toolset(Preflight(settings.networks, rpc)),
        *([docs_toolset(docs)] if docs is not None else []),
        *pool.toolsets,
    ]
    runtime = AgentRuntime(backend, settings, toolsets, pool)
    store = store_from_url(settings.database_url)
    manager = SessionManager(settings, runtime, metrics, store)
    cluster = Cluster(settings, manager) if settings.redis_url is not None else None
    if cluster is not None:
        metrics.in_cluster()
    service: Sessions = cluster.sessions if cluster is not None else LocalSessions(manager)
    ledger = (
        RedisLedger(settings.redis_url.get_secret_value(), settings.redis_prefix)
        if settings.redis_url is not None
        else MemoryLedger()
    )
    http = httpx2.AsyncClient(timeout=10.0)
    manager.status.missing_api_key = backend.missing_key is not None
    manager.status.is_loading = backend.load is not None
    manager.status.is_connecting_mcp = bool(pool.servers)

    async def connect_tools() -> None:
        try:
            await pool.start()
        finally:
            manager.set_status(is_connecting_mcp=False)

    async def load_model() -> None:
        try:
            await runtime.load()
        except Exception:
            log.exception("model failed to load", extra={"provider": backend.name.value})
        finally:
            manager.set_status(is_loading=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await store.open()
        except StoreError as error:
            log.error("cannot open the database", extra={"error": str(error)})
            raise
        if cluster is not None:
            await cluster.start()
        async with rpc:  # simulations' JSON-RPC client
            manager.start()
            # The model loads while the server already answers: sessions see is_loading.
            loading = asyncio.create_task(load_model()) if backend.load is not None else None
            connecting = asyncio.create_task(connect_tools())
            try:
                yield
            finally:
                for task in (loading, connecting):
                    if task is not None:
                        task.cancel()
                await manager.stop()
                if cluster is not None:
                    await cluster.stop()
                await pool.stop()
                await http.aclose()
                if isinstance(ledger, RedisLedger):
                    await ledger.close()
                await store.close()
                if docs is not None:
                    docs.close()

    # The docs pages are served from the package, not a CDN: they work offline.
    app = FastAPIOffline(
        title="chatbot",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.manager = manager
    app.state.sessions = service
    app.state.limiter = Limiter(settings, metrics)
    app.state.ledger = ledger
    app.state.authenticator = Authenticator(settings, ledger)
    app.state.http = http
    app.state.metrics = metrics

    install_error_handlers(app)
    install_openapi(app, settings)
    cors: dict[str, Any] = {
        "allow_origins": settings.allowed_origins,
        # With sign-in, listed origins may send the cookie (CORS_ORIGINS=* is refused).
        "allow_credentials": settings.requires_credentials,
        "allow_methods": ["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        "allow_headers": ["Content-Type", "X-Session-Id", "Last-Event-ID", "Authorization"],
        "expose_headers": ["X-Session-Id", "Retry-After"],
    }
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(CORSMiddleware, **cors)
    stream.serve_streams_first(app, cors)
    app.include_router(auth.router)
    app.include_router(legacy.router)
    app.include_router(sessions.router)
    app.include_router(stream.router)
    app.include_router(wallet.router)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics_endpoint(request: Request) -> Response:
        """Sessions active/created/expired, streams open, turns running, events sent; in a
        cluster also the cluster-wide gauges (`chatbot_cluster_*`)."""
        if cluster is not None and metrics.cluster is not None:
            with contextlib.suppress(ChatbotError):  # Redis away: this worker's own figures
                await cluster.update_gauges(metrics.cluster)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    serve_ui(app, settings.ui_dir)
    return app


UI_MISSING = """<!doctype html><meta charset="utf-8"><title>chatbot</title>
<p>The web UI is not built yet: <code>make run</code> builds it. The API is at
<a href="/docs">/docs</a>.</p>"""


def serve_ui(app: FastAPI, ui_dir: Path) -> None:
    """The built web UI at `/`, or a page that says how to build it.

    Only the UI's own top-level entries are routed (index.html at `/`, its files and
    asset folders by name): a catch-all mount at `/` would answer unknown API paths
    and wrong methods itself, outside the error envelope.
    """
    index = ui_dir / "index.html"
    if not index.is_file():

        @app.get("/", include_in_schema=False)
        async def ui_missing() -> HTMLResponse:
            return HTMLResponse(UI_MISSING)

        return

    @app.get("/", include_in_schema=False)
    async def ui() -> FileResponse:
        return FileResponse(index)

    for entry in sorted(ui_dir.iterdir()):
        if entry.is_dir():
            app.mount(f"/{entry.name}", StaticFiles(directory=entry), name=f"ui-{entry.name}")
        elif entry.name != "index.html":
            app.add_api_route(
                f"/{entry.name}", _file_endpoint(entry), methods=["GET"], include_in_schema=False
            )


def _file_endpoint(path: Path) -> Callable[[], Awaitable[FileResponse]]:
    async def serve() -> FileResponse:
        return FileResponse(path)

    return serve
