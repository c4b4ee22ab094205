"""Conversation titles: the first words of the first message, then, with a remote model,
a short title the model writes after the first reply, off the turn's path."""

from __future__ import annotations

import uuid

from tests.fakes import FakeLLM, Reply
from tests.server import run_server
from tests.sse import open_sse


async def test_the_model_names_a_conversation_after_its_first_reply() -> None:
    async with FakeLLM.start("openai") as fake:
        fake.script(Reply.words("Your balance is 3 ETH."), Reply(['"ETH balance check."']))
        env = {**fake.env(), "LLM_TITLES": "true"}
        async with run_server(**env) as server, server.client() as http:
            sid = f"titled-{uuid.uuid4().hex[:8]}"
            async with open_sse(http, f"/api/sessions/{sid}/events") as events:
                await events.next()
                body = {"message": "what is my balance on mainnet right now", "session_id": sid}
                answer = (await http.post("/api/chat", json=body)).json()
                assert answer["title"] == "what is my balance on mainnet…"
                await events.until(
                    lambda e: e.event == "state" and e.json()["title"] == "ETH balance check"
                )
            requests = await fake.wait_requests(2)
            assert requests[0].stream
            assert not requests[1].stream  # one small request, after the reply
            assert "what is my balance" in requests[1].last_user_text
            assert "Your balance is 3 ETH." in requests[1].last_user_text
            # The next turns ask for no more titles, and a rename is the owner's to keep.
            renamed = await http.patch(f"/api/sessions/{sid}", json={"title": "Mine"})
            assert renamed.json()["title"] == "Mine"
            fake.script(Reply.words("Still 3 ETH."))
            await http.post("/api/chat", json={"message": "and now?", "session_id": sid})
            async with open_sse(http, f"/api/sessions/{sid}/events") as events:
                await events.until(
                    lambda e: e.event in ("state", "snapshot") and not e.json()["is_processing"]
                )
            assert len(await fake.wait_requests(3)) == 3
            state = (await http.get(f"/api/sessions/{sid}")).json()
            assert state["title"] == "Mine"
