"""The OpenAPI document tells the truth: schemathesis (pinned) fuzzes every operation with
all its checks, without credentials and with them, and finds nothing.

The two streams are left out: a valid request to one is answered by a stream that never
ends, which is what tests/test_api.py and the SSE tests exercise.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.server import RunningServer, run_server

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
API_KEY = "schemathesis-key-" + "k" * 16


async def fuzz(server: RunningServer, *headers: str) -> tuple[int, str]:
    """Run schemathesis against the server: its exit code and output."""
    args = [
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "20",
        "--seed",
        "1",
        "--request-timeout",
        "5",
        "--exclude-path",
        "/api/chat/stream",
        "--exclude-path-regex",
        ".*/events$",
        *(part for header in headers for part in ("-H", header)),
    ]
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.mark.timeout(400)
async def test_the_api_without_sign_in_has_no_schemathesis_failures() -> None:
    async with run_server(RATE_LIMIT_AUTH="") as server:
        code, output = await fuzz(server)
    assert code == 0, output[-6000:]


@pytest.mark.timeout(400)
async def test_the_api_with_credentials_has_no_schemathesis_failures() -> None:
    env = {"AUTH": "anonymous,siwe,apikey", "API_KEYS": f"fuzz:{API_KEY}", "RATE_LIMIT_AUTH": ""}
    async with run_server(**env) as server:
        code, output = await fuzz(server, f"Authorization: Bearer {API_KEY}")
        assert code == 0, output[-6000:]
        code, output = await fuzz(server)  # and without: 401s, all documented
    assert code == 0, output[-6000:]
