"""Cluster mode: three workers on one Redis and one Postgres; any worker answers for any session."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.cluster import run_cluster
from tests.fakes.llm import FakeLLM, Reply, ToolCall
from tests.postgres import Postgres, fresh_database
from tests.redis import Redis, run_redis
from tests.server import RunningServer, free_port, run_chatbot, run_server, server_environment
from tests.sse import EventsView, SSEReader, is_idle_state, open_sse


@pytest.fixture(scope="module")
async def workers(
    redis_server: Redis, postgres_server: Postgres
) -> AsyncIterator[list[RunningServer]]:
    """Three workers, scripted at 50 tokens/s, shared by the tests that leave them running
    (each uses sessions of its own)."""
    async with (
        fresh_database(postgres_server, f"cluster_{uuid.uuid4().hex[:12]}") as database_url,
        run_cluster(
            3,
            redis_url=redis_server.url,
            prefix=f"t{uuid.uuid4().hex[:10]}:",
            database_url=database_url,
            SCRIPTED_TOKENS_PER_SECOND="50",
        ) as running,
    ):
        yield running


async def read_reply(reader: SSEReader, view: EventsView) -> None:
    """Apply events until the turn is over."""
    while True:
        event = await reader.next()
        view.apply(event)
        if is_idle_state(event) and any(m["sender"] == "agent" for m in view.messages.values()):
            return


async def test_chat_on_one_worker_streams_on_the_others(workers: list[RunningServer]) -> None:
    """Chat on A; the events stream on B and the legacy stream on C see every delta."""
    a, b, c = workers
    sid = f"c-{uuid.uuid4().hex[:12]}"
    async with (
        a.client() as on_a,
        b.client() as on_b,
        c.client() as on_c,
        open_sse(on_b, f"/api/sessions/{sid}/events") as events,
        open_sse(on_c, f"/api/chat/stream?session_id={sid}") as legacy,
    ):
        view = EventsView()
        view.apply(await events.next())
        assert (await legacy.next()).json()["messages"] == []
        response = await on_a.post(
            "/api/chat", json={"message": "hello cluster", "session_id": sid}
        )
        assert response.status_code == 200, response.text
        await read_reply(events, view)
        reply = next(m for m in view.messages.values() if m["sender"] == "agent")
        assert reply["content"] == "You said: hello cluster"
        assert "".join(view.deltas[reply["id"]]) == reply["content"]
        while True:
            state = (await legacy.next()).json()
            agent = [m for m in state["messages"] if m["sender"] == "agent"]
            if agent and not state["is_processing"]:
                assert agent[0]["content"] == "You said: hello cluster"
                break
        state_on_c = (await on_c.get("/api/state", params={"session_id": sid})).json()
        assert [m["content"] for m in state_on_c["messages"]] == [
            "hello cluster",
            "You said: hello cluster",
        ]


def sid_for(test: str) -> str:
    """A session id no other test uses."""
    return f"{test}-{uuid.uuid4().hex[:10]}"


async def test_a_stream_dropped_on_one_worker_resumes_on_another(
    workers: list[RunningServer],
) -> None:
    """Drop the events stream on B mid-reply, reconnect on C with Last-Event-ID: no gap, no dupe."""
    a, b, c = workers
    sid = sid_for("resume")
    text = " ".join(f"w{i}" for i in range(60))
    async with a.client() as on_a, b.client() as on_b, c.client() as on_c:
        view = EventsView()
        async with open_sse(on_b, f"/api/sessions/{sid}/events") as events:
            view.apply(await events.next())
            response = await on_a.post("/api/chat", json={"message": text, "session_id": sid})
            assert response.status_code == 200, response.text
            while not any(len(d) >= 5 for d in view.deltas.values()):
                view.apply(await events.next())
        headers = {"Last-Event-ID": str(view.last_seq)}
        async with open_sse(on_c, f"/api/sessions/{sid}/events", headers=headers) as resumed:
            first = await resumed.next()
            assert first.event != "snapshot", "the missed events are replayed, not a snapshot"
            view.apply(first)
            await read_reply(resumed, view)
    reply = next(m for m in view.messages.values() if m["sender"] == "agent")
    assert reply["content"] == f"You said: {text}"
    assert "".join(view.deltas[reply["id"]]) == reply["content"]


async def test_resumes_on_workers_that_just_started_mirroring_replay_exactly(
    workers: list[RunningServer],
) -> None:
    """Twenty resumes in a row, switching between two workers that do not hold the
    session: a mirror made for a resume starts from the holder's state, and every missed
    event is still replayed.

    The holder's outbox holds tokens back for a moment; unless it ships them before it
    answers a mirror's state request, a resume in that moment gets a snapshot."""
    a, b, c = workers
    sid = sid_for("resumes")
    async with a.client() as on_a, b.client() as on_b, c.client() as on_c:
        view = EventsView()
        async with open_sse(on_b, f"/api/sessions/{sid}/events") as events:
            view.apply(await events.next())
            message = " ".join(f"w{i}" for i in range(400))
            response = await on_a.post("/api/chat", json={"message": message, "session_id": sid})
            assert response.status_code == 200, response.text
            while not view.deltas:
                view.apply(await events.next())
        for attempt in range(20):
            # Tokens come every 20 ms (50/s): each resume starts 1 ms later after the token
            # it last saw than the one before, so some fall in the moment a token is held.
            await asyncio.sleep(attempt / 1000)
            headers = {"Last-Event-ID": str(view.last_seq)}
            client = (on_c, on_b)[attempt % 2]
            async with open_sse(client, f"/api/sessions/{sid}/events", headers=headers) as resumed:
                first = await resumed.next()
                assert first.event != "snapshot", f"resume {attempt + 1} got a snapshot"
                view.apply(first)  # asserts it is the next event: no gap, no duplicate
                view.apply(await resumed.next())
        response = await on_a.post("/api/interrupt", json={"session_id": sid})
        assert response.status_code == 200, response.text
    reply = next(m for m in response.json()["messages"] if m["sender"] == "agent")
    assert reply["content"].startswith("".join(view.deltas[reply["id"]]))


@pytest.mark.parametrize("policy", ["reject", "queue"])
async def test_busy_policy_holds_across_workers(
    redis_server: Redis, redis_prefix: str, postgres_url: str, policy: str
) -> None:
    """A second message on B while A runs the turn: 409 under reject, queued under queue."""
    async with run_cluster(
        2,
        redis_url=redis_server.url,
        prefix=redis_prefix,
        database_url=postgres_url,
        BUSY_POLICY=policy,
        SCRIPTED_TOKENS_PER_SECOND="20",
    ) as (a, b):
        sid = sid_for(policy)
        async with a.client() as on_a, b.client() as on_b:
            first = await on_a.post(
                "/api/chat", json={"message": "one two three four", "session_id": sid}
            )
            assert first.status_code == 200
            assert first.json()["is_processing"] is True
            second = await on_b.post("/api/chat", json={"message": "second", "session_id": sid})
            if policy == "reject":
                assert second.status_code == 409, second.text
                assert second.json()["error"]["code"] == "session_busy"
            else:
                assert second.status_code == 200, second.text
                assert [m["content"] for m in second.json()["queued"]] == ["second"]


async def test_interrupt_on_one_worker_stops_the_turn_on_another(
    redis_server: Redis, redis_prefix: str, postgres_url: str
) -> None:
    """Interrupt on C stops the turn on A: the provider sees its stream closed; the partial
    reply stays, marked interrupted."""
    async with FakeLLM.start("openai") as fake:
        fake.script(Reply(["tick "] * 400, delay=0.03))
        async with run_cluster(
            3,
            redis_url=redis_server.url,
            prefix=redis_prefix,
            database_url=postgres_url,
            **fake.env(),
        ) as (a, _b, c):
            sid = sid_for("interrupt")
            async with a.client() as on_a, c.client() as on_c:
                view = EventsView()
                async with open_sse(on_c, f"/api/sessions/{sid}/events") as events:
                    view.apply(await events.next())
                    await on_a.post("/api/chat", json={"message": "count", "session_id": sid})
                    while not any(len(d) >= 3 for d in view.deltas.values()):
                        view.apply(await events.next())
                    response = await on_c.post("/api/interrupt", json={"session_id": sid})
                    await fake.wait_disconnect(timeout=5)
                    assert response.status_code == 200, response.text
                    state = response.json()
                    assert state["is_processing"] is False
                    partial = next(m for m in state["messages"] if m["sender"] == "agent")
                    assert partial["status"] == "interrupted"
                    assert partial["content"].startswith("tick tick tick")


PROPOSAL = {
    "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "value": "1000",
    "description": "A test transfer",
}


async def test_a_wallet_result_resolves_exactly_once_across_workers(
    workers: list[RunningServer],
) -> None:
    """A turn on A proposes a transaction; two results at once on B and C: one 200, one 409."""
    a, b, c = workers
    sid = sid_for("wallet")
    async with a.client() as on_a, b.client() as on_b, c.client() as on_c:
        async with open_sse(on_b, f"/api/sessions/{sid}/events") as events:
            await events.next()
            message = f"/tool send_transaction_to_wallet {json.dumps(PROPOSAL)}"
            await on_a.post("/api/chat", json={"message": message, "session_id": sid})
            (request,) = [
                e
                for e in await events.until(lambda e: e.event == "wallet.request")
                if e.event == "wallet.request"
            ]
        tx_id = request.json()["tx"]["id"]
        body = {"session_id": sid, "tx_id": tx_id, "status": "rejected"}
        answers = await asyncio.gather(
            on_b.post("/api/wallet/result", json=body), on_c.post("/api/wallet/result", json=body)
        )
        assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]


async def test_delete_on_one_worker_ends_streams_on_the_others(
    workers: list[RunningServer],
) -> None:
    """DELETE on B: the streams on A and C end with `session.closed`."""
    a, b, c = workers
    sid = sid_for("delete")
    async with a.client() as on_a, b.client() as on_b, c.client() as on_c:
        await on_b.post("/api/chat", json={"message": "hello", "session_id": sid})
        async with (
            open_sse(on_a, f"/api/sessions/{sid}/events") as on_a_events,
            open_sse(on_c, f"/api/sessions/{sid}/events") as on_c_events,
        ):
            await on_a_events.next()
            await on_c_events.next()
            response = await on_b.delete(f"/api/sessions/{sid}")
            assert response.status_code == 204, response.text
            for stream in (on_a_events, on_c_events):
                rest = await stream.rest()
                assert rest
                assert rest[-1].event == "session.closed"
        gone = await on_c.get("/api/state", params={"session_id": sid})
        assert gone.status_code == 404


async def test_three_hundred_sessions_over_three_workers_stay_apart(
    workers: list[RunningServer],
) -> None:
    """300 sessions with unique words: chatted on one worker, streamed on the next, read on
    the third; no word crosses sessions, in streams or states."""
    unbounded = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    clients = [worker.client(limits=unbounded) for worker in workers]
    ids = [sid_for(f"many{i}") for i in range(300)]
    words = {sid: f"word{uuid.uuid4().hex[:8]}" for sid in ids}

    async def one(index: int, sid: str) -> None:
        streaming, chatting, reading = (clients[(index + k) % 3] for k in range(3))
        async with open_sse(streaming, f"/api/sessions/{sid}/events") as events:
            seen = [await events.next()]
            response = await chatting.post(
                "/api/chat", json={"message": words[sid], "session_id": sid}
            )
            assert response.status_code == 200, response.text
            seen += await events.until(is_idle_state, timeout=30)
        state = (await reading.get("/api/state", params={"session_id": sid})).json()
        for text in (" ".join(e.data for e in seen), json.dumps(state["messages"])):
            assert words[sid] in text
            assert [w for s, w in words.items() if s != sid and w in text] == []

    try:
        await asyncio.gather(*(one(i, sid) for i, sid in enumerate(ids)))
    finally:
        for client in clients:
            await client.aclose()


async def test_a_worker_killed_mid_turn_is_taken_over_without_repeating_a_step(
    redis_server: Redis, redis_prefix: str, postgres_url: str
) -> None:
    """kill -9 of the worker running a two-step turn, after its tool call: another worker
    continues within TURN_LEASE_SECONDS + 2 s; the tool call is not made again; a stream
    that was on the dead worker resumes elsewhere with no gap; the history is complete."""
    lease = 2.0
    async with FakeLLM.start("openai") as fake:
        fake.script(
            ToolCall("send_transaction_to_wallet", PROPOSAL),
            Reply(["tick "] * 400, delay=0.03),
            Reply.words("Picked up where the other worker stopped."),
        )
        async with run_cluster(
            3,
            redis_url=redis_server.url,
            prefix=redis_prefix,
            database_url=postgres_url,
            TURN_LEASE_SECONDS=str(lease),
            **fake.env(),
        ) as (a, b, c):
            sid = sid_for("failover")
            async with a.client() as on_a, b.client() as on_b, c.client() as on_c:
                on_b_view, on_a_view = EventsView(), EventsView()
                async with (
                    open_sse(on_b, f"/api/sessions/{sid}/events") as on_b_events,
                    open_sse(on_a, f"/api/sessions/{sid}/events") as on_a_events,
                ):
                    on_b_view.apply(await on_b_events.next())
                    on_a_view.apply(await on_a_events.next())
                    await on_a.post("/api/chat", json={"message": "send it", "session_id": sid})
                    # Three deltas in: the reply's row may not be in the database yet; what
                    # the streams showed is what the takeover must keep.
                    for view, stream in ((on_a_view, on_a_events), (on_b_view, on_b_events)):
                        while not any(len(d) >= 3 for d in view.deltas.values()):
                            view.apply(await stream.next())
                    a.process.kill()
                    killed_at = time.monotonic()
                    await a.process.wait()

                    # The stream on B goes on: a snapshot from the new holder, then its reply.
                    event = await on_b_events.until(
                        lambda e: e.event == "snapshot" and int(e.id or 0) > 1,
                        timeout=lease + 10,
                    )
                    took_over_after = time.monotonic() - killed_at
                    for seen in event[:-1]:
                        on_b_view.apply(seen)
                    shown = {id: m["content"] for id, m in on_b_view.messages.items()}
                    on_b_view.apply(event[-1])
                    for message_id, content in shown.items():
                        assert on_b_view.messages[message_id]["content"] == content
                    while (
                        "Picked up where the other worker stopped."
                        not in [m["content"] for m in on_b_view.messages.values()]
                        or on_b_view.flags["is_processing"]
                    ):
                        on_b_view.apply(await on_b_events.next(timeout=15))
                assert took_over_after <= lease + 2, took_over_after

                # The stream that was on the dead worker resumes on C from where it was.
                headers = {"Last-Event-ID": str(on_a_view.last_seq)}
                async with open_sse(
                    on_c, f"/api/sessions/{sid}/events", headers=headers
                ) as resumed:
                    while on_a_view.last_seq < on_b_view.last_seq:
                        on_a_view.apply(await resumed.next())
                assert on_a_view.contents() == on_b_view.contents()

                # The tool ran once: one proposal, and the model was asked three times, the
                # last time with the tool's result in its history.
                assert len(fake.requests) == 3
                history = json.dumps(fake.requests[2].messages)
                assert history.count("send_transaction_to_wallet") == 1
                assert len(fake.requests[2].tool_results()) == 1

                page = (await on_c.get(f"/api/sessions/{sid}/messages")).json()["messages"]
                tools = [m for m in page if m["tool"] is not None]
                assert [t["tool"]["status"] for t in tools] == ["success"]
                agents = [m for m in page if m["sender"] == "agent" and m["tool"] is None]
                assert agents[0]["status"] == "interrupted"
                assert agents[0]["content"].startswith("tick tick tick")
                assert agents[0]["content"] == shown[agents[0]["id"]], "the text shown is kept"
                assert agents[-1]["content"] == "Picked up where the other worker stopped."
                assert agents[-1]["status"] == "complete"
                assert any("picks up" in m["content"] for m in page if m["sender"] == "system")
                state = (await on_b.get("/api/state", params={"session_id": sid})).json()
                assert state["wallet_tx"] is not None, "the proposal is still pending, once"


async def test_redis_going_away_answers_503_and_service_comes_back(
    redis_prefix: str, postgres_url: str
) -> None:
    """Redis stopped: writes answer 503 with Retry-After, no 500, nothing stored is lost;
    Redis back: the same workers serve as before, by themselves."""
    async with (
        run_redis() as redis,
        run_cluster(2, redis_url=redis.url, prefix=redis_prefix, database_url=postgres_url) as (
            a,
            b,
        ),
        a.client() as on_a,
        b.client() as on_b,
    ):
        sid = sid_for("outage")
        async with open_sse(on_b, f"/api/sessions/{sid}/events") as events:
            await events.next()
            await on_a.post("/api/chat", json={"message": "before", "session_id": sid})
            await events.until(is_idle_state)
        await redis.stop()
        for client in (on_a, on_b):
            response = await client.post("/api/chat", json={"message": "during", "session_id": sid})
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "backend_unavailable"
            assert int(response.headers["retry-after"]) >= 1
        await redis.start()

        async def chat_when_back(client: httpx.AsyncClient, text: str) -> httpx.Response:
            for _ in range(30):
                response = await client.post("/api/chat", json={"message": text, "session_id": sid})
                if response.status_code != 503:
                    return response
                await asyncio.sleep(float(response.headers["retry-after"]) / 4)
            raise AssertionError("the cluster did not come back")

        response = await chat_when_back(on_b, "after")
        assert response.status_code == 200, response.text
        contents = [m["content"] for m in response.json()["messages"]]
        assert contents[:3] == ["before", "You said: before", "after"]
        assert "during" not in contents


async def test_metrics_show_the_whole_cluster(workers: list[RunningServer]) -> None:
    """Each worker's /metrics has its own figures and the cluster's: three workers."""
    async with workers[0].client() as on_a:
        text = (await on_a.get("/metrics")).text
    assert "chatbot_sessions_active" in text
    (line,) = [line for line in text.splitlines() if line.startswith("chatbot_cluster_workers")]
    assert float(line.split()[-1]) == 3


async def test_serve_with_workers_spreads_requests_over_processes(
    redis_server: Redis, redis_prefix: str, postgres_url: str
) -> None:
    """`chatbot serve --workers 2`: two processes on one port, both answering, one cluster."""
    async with run_server(
        "--workers",
        "2",
        REDIS_URL=redis_server.url,
        REDIS_PREFIX=redis_prefix,
        DATABASE_URL=postgres_url,
    ) as server:
        fresh = httpx.Limits(max_keepalive_connections=0)  # a new connection per request
        async with server.client(limits=fresh) as client:
            ids = [sid_for(f"spread{i}") for i in range(40)]
            for sid in ids:
                response = await client.post("/api/chat", json={"message": "hi", "session_id": sid})
                assert response.status_code == 200, response.text
            for sid in ids:  # every session answers on whichever worker is asked
                state = (await client.get("/api/state", params={"session_id": sid})).json()
                assert state["messages"][0]["content"] == "hi"
        creators = {
            json.loads(line)["worker"]
            for line in server.log_text().splitlines()
            if '"session created"' in line
        }
        assert len(creators) == 2, creators
    assert server.process.returncode == 0


async def test_serve_with_workers_needs_redis() -> None:
    """More than one worker without REDIS_URL is refused at once, with the reason."""
    code, _, stderr = await run_chatbot(
        "serve", "--workers", "2", env=server_environment(free_port())
    )
    assert code == 2
    assert "REDIS_URL" in stderr


async def test_a_message_budget_holds_across_workers(
    redis_server: Redis, redis_prefix: str, postgres_url: str
) -> None:
    """RATE_LIMIT_MESSAGES is counted in Redis: two workers share one client's budget."""
    async with (
        run_cluster(
            2,
            redis_url=redis_server.url,
            prefix=redis_prefix,
            database_url=postgres_url,
            RATE_LIMIT_MESSAGES="3/minute",
        ) as (a, b),
        a.client() as on_a,
        b.client() as on_b,
    ):
        for client in (on_a, on_b, on_a):
            body = {"message": "hi", "session_id": sid_for("budget")}
            assert (await client.post("/api/chat", json=body)).status_code == 200
        body = {"message": "hi", "session_id": sid_for("budget")}
        over = await on_b.post("/api/chat", json=body)
        assert over.status_code == 429, over.text
        assert over.json()["error"]["code"] == "rate_limited"
