"""The cluster behind nginx, configured as `chatbot cluster` configures it.

Round robin with no stickiness reaches every worker, events pass through unbuffered, two
people chat in real browsers through the proxy, and `chatbot cluster` starts everything
with one command and leaves nothing behind when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from chatbot.launch import NGINX, nginx_command, nginx_config
from tests import test_browser as browser_tests
from tests.browser import launch_browser, needs_chromium
from tests.cluster import run_cluster
from tests.redis import Redis, needs_redis
from tests.server import CHATBOT, RunningServer, free_port, server_environment
from tests.sse import EventsView, is_idle_state, open_sse

needs_nginx = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK), reason="nginx is not installed (Debian's nginx: make test)"
)
pytestmark = [needs_nginx, needs_redis]

# Seconds nginx may take to answer through to a worker.
NGINX_START_TIMEOUT = 10.0
DOCS = Path(__file__).parent.parent / "docs" / "DEPLOY.md"


@asynccontextmanager
async def run_nginx(workers: list[RunningServer]) -> AsyncIterator[RunningServer]:
    """nginx on a free port with launch.py's config, round robin over `workers`."""
    prefix = Path(tempfile.mkdtemp(prefix="chatbot-nginx-"))
    port = free_port()
    upstreams = [httpx.URL(worker.url).port or 80 for worker in workers]
    (prefix / "nginx.conf").write_text(nginx_config("127.0.0.1", port, upstreams, prefix))
    with (prefix / "nginx.out").open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *nginx_command(prefix),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )
    proxy = RunningServer(url=f"http://127.0.0.1:{port}", process=process)

    def logs() -> str:
        return "".join(
            (prefix / name).read_text(errors="replace")
            for name in ("nginx.out", "error.log")
            if (prefix / name).is_file()
        )

    try:
        deadline = time.monotonic() + NGINX_START_TIMEOUT
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"nginx exited ({process.returncode}):\n{logs()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{proxy.url}/health")).text == "OK":
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not answer within 10 s:\n{logs()}")
                await asyncio.sleep(0.05)
        yield proxy
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
        await asyncio.to_thread(shutil.rmtree, prefix, ignore_errors=True)


@pytest.fixture
async def proxied(
    redis_server: Redis, redis_prefix: str, postgres_url: str
) -> AsyncIterator[tuple[list[RunningServer], RunningServer]]:
    """Two workers on Redis and Postgres, scripted at 25 tokens/s, and nginx in front."""
    async with (
        run_cluster(
            2,
            redis_url=redis_server.url,
            prefix=redis_prefix,
            database_url=postgres_url,
            SCRIPTED_TOKENS_PER_SECOND="25",
        ) as workers,
        run_nginx(workers) as proxy,
    ):
        yield workers, proxy


def new_sid() -> str:
    return f"p-{uuid.uuid4().hex[:12]}"


async def test_requests_through_nginx_reach_every_worker(
    proxied: tuple[list[RunningServer], RunningServer],
) -> None:
    """New sessions land on both workers, and each is read back whichever worker answers."""
    workers, proxy = proxied
    marks = [len(worker.log) for worker in workers]
    sids = [new_sid() for _ in range(6)]
    async with proxy.client() as http:
        for sid in sids:
            response = await http.post("/api/chat", json={"message": "hello", "session_id": sid})
            assert response.status_code == 200, response.text
        for worker, mark in zip(workers, marks, strict=True):
            await worker.wait_for_log("session created", after=mark)
        for sid in sids:  # round robin: each read goes to the next worker
            state = (await http.get("/api/state", params={"session_id": sid})).json()
            assert state["messages"][0]["content"] == "hello"
    created = sum(
        b"session created" in line
        for worker, mark in zip(workers, marks, strict=True)
        for line in worker.log[mark:]
    )
    assert created == len(sids)


async def test_events_pass_through_nginx_as_they_happen(
    proxied: tuple[list[RunningServer], RunningServer],
) -> None:
    """The snapshot arrives while the stream is open, then the reply token by token."""
    _, proxy = proxied
    sid = new_sid()
    async with proxy.client() as http, open_sse(http, f"/api/sessions/{sid}/events") as events:
        first = await events.next()
        assert first.event == "snapshot"
        assert not events.ended
        view = EventsView()
        view.apply(first)
        response = await http.post(
            "/api/chat", json={"message": "through the proxy", "session_id": sid}
        )
        assert response.status_code == 200, response.text
        while True:
            event = await events.next()
            view.apply(event)
            if is_idle_state(event) and any(m["sender"] == "agent" for m in view.messages.values()):
                break
        reply = next(m for m in view.messages.values() if m["sender"] == "agent")
        assert reply["content"] == "You said: through the proxy"
        assert len(view.deltas[reply["id"]]) > 1  # streamed in pieces, not as one block
        assert "".join(view.deltas[reply["id"]]) == reply["content"]


@needs_chromium
@pytest.mark.skipif(not browser_tests.UI_BUILT, reason="make test builds the UI")
async def test_two_people_chat_at_once_through_nginx(
    proxied: tuple[list[RunningServer], RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_browser's two-people test, against the cluster behind nginx."""
    monkeypatch.delenv("UPDATE_SCREENSHOTS", raising=False)  # the screenshots are test_browser's
    _, proxy = proxied
    async with launch_browser() as browser:
        await browser_tests.test_two_people_chat_at_once_and_see_only_their_own(browser, proxy)


def test_deploy_guide_shows_the_rendered_config() -> None:
    """docs/DEPLOY.md shows exactly the configuration `chatbot cluster` runs."""
    rendered = nginx_config(
        "127.0.0.1", 8080, [8081, 8082, 8083], Path("/var/lib/chatbot/nginx"), as_root=False
    )
    assert rendered in DOCS.read_text(encoding="utf-8")


def descendants(root: int) -> dict[int, str]:
    """Every process below `root`, with its command name (from /proc)."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # it exited meanwhile
        pid = int(stat.parent.name)
        name, _, rest = text[text.index("(") + 1 :].rpartition(")")
        names[pid] = name
        children.setdefault(int(rest.split()[1]), []).append(pid)
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = names[child]
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while the process runs (a zombie has finished)."""
    try:
        text = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return text.rpartition(")")[2].split()[0] != "Z"


async def test_chatbot_cluster_serves_and_stops_cleanly() -> None:
    """One command starts Redis, two workers and nginx; SIGTERM stops all of them."""
    port = free_port()
    env = server_environment(port, SCRIPTED_TOKENS_PER_SECOND="25")
    env.pop("REDIS_URL", None)
    process = await asyncio.create_subprocess_exec(
        *CHATBOT,
        "cluster",
        "--workers",
        "2",
        "--port",
        str(port),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []

    async def read_until_serving() -> None:
        while line := await stdout.readline():
            lines.append(line.decode(errors="replace"))
            if "Serving the cluster" in lines[-1]:
                return
        raise AssertionError("chatbot cluster exited before serving:\n" + "".join(lines))

    async def drain() -> None:
        while line := await stdout.readline():
            lines.append(line.decode(errors="replace"))

    started: dict[int, str] = {}
    try:
        await asyncio.wait_for(read_until_serving(), timeout=90)
        drainer = asyncio.create_task(drain())
        assert f"==> Serving the cluster at http://127.0.0.1:{port} (Ctrl+C stops)\n" in lines
        assert sum("==> [cluster] worker " in line for line in lines) == 2
        files = Path(next(line for line in lines if "config and logs in" in line).split()[6])
        assert await asyncio.to_thread(files.is_dir)
        started = descendants(process.pid)
        assert {"redis-server", "nginx"} <= set(started.values()), started
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"http://127.0.0.1:{port}/health")
        assert response.status_code == 200
        assert response.text == "OK"

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=60) == 0, "".join(lines)
        await drainer
        assert [(pid, name) for pid, name in started.items() if alive(pid)] == []
        assert not await asyncio.to_thread(files.exists)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for pid in started:  # whatever a failed run left behind
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
