"""Shared fixtures: one real server for most tests; others start their own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext

from tests.browser import launch_browser
from tests.postgres import POSTGRES_BIN, Postgres, fresh_database, run_postgres
from tests.redis import REDIS_SERVER, Redis, run_redis
from tests.server import RunningServer, run_server


@pytest.fixture(scope="session")
async def server() -> AsyncIterator[RunningServer]:
    """The default server: scripted provider at 100 tokens/s, BUSY_POLICY=reject."""
    async with run_server(SCRIPTED_TOKENS_PER_SECOND="100") as running:
        yield running


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as http:
        yield http


@pytest.fixture
def sid() -> str:
    """A session id no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
async def postgres_server() -> AsyncIterator[Postgres]:
    """One private Postgres cluster for the whole run (a start costs 1.5 s); never stop it."""
    if POSTGRES_BIN is None:
        pytest.skip("Postgres is not installed (Debian's postgresql: make test)")
    async with run_postgres() as running:
        yield running


@pytest.fixture
async def postgres_url(postgres_server: Postgres) -> AsyncIterator[str]:
    """The URL of a fresh, empty database on the shared cluster: no test sees another's rows."""
    async with fresh_database(postgres_server, f"test_{uuid.uuid4().hex[:16]}") as url:
        yield url


@pytest.fixture(scope="session")
async def redis_server() -> AsyncIterator[Redis]:
    """One private redis-server for the whole run; never stop it (stopping tests run their own)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian's redis-server: make test)")
    async with run_redis() as running:
        yield running


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses: tests share one Redis and keep apart by prefix."""
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium, headless, for one test module."""
    async with launch_browser() as launched:
        yield launched


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (cookies, storage) for one test, at a desktop size."""
    opened = await browser.new_context(viewport={"width": 1200, "height": 800})
    yield opened
    await opened.close()
