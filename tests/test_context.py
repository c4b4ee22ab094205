"""A long conversation still fits the model: the newest turns and the system prompt are kept."""

from __future__ import annotations

import json

from tests.fakes import FakeLLM, Reply
from tests.server import run_server
from tests.sse import is_idle_state, open_sse


async def test_the_history_sent_to_the_model_is_trimmed_to_its_context_window() -> None:
    sid = "long-talk"
    words = 400  # about 2,000 characters, some 500 tokens, per message
    async with (
        FakeLLM.start("openai") as fake,
        run_server(**fake.env(), LLM_CONTEXT_TOKENS="2500", LLM_MAX_OUTPUT_TOKENS="200") as app,
        app.client() as http,
        open_sse(http, f"/api/sessions/{sid}/events") as reader,
    ):
        fake.default = Reply("Noted.")
        await reader.next()
        for turn in range(8):
            text = f"turn-{turn} " + " ".join(["filler"] * words)
            response = await http.post("/api/chat", json={"message": text, "session_id": sid})
            assert response.status_code == 200, response.text
            await reader.until(is_idle_state, timeout=20)

        sent = fake.requests[-1].body
        shown = json.dumps(sent["messages"])
        assert "turn-7 " in shown, "the newest message always reaches the model"
        assert "turn-0 " not in shown, "the oldest turns are dropped to fit"
        assert "Ethereum" in json.dumps(sent["messages"][0]), "the system prompt stays first"
        assert len(shown) < 2500 * 4, "what is sent fits the window"
        state = (await http.get("/api/state", params={"session_id": sid})).json()
        assert sum(m["sender"] == "user" for m in state["messages"]) == 8, "nothing is lost"
