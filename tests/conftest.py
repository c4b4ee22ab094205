"""Shared fixtures: one real server for most tests; others start their own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

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
