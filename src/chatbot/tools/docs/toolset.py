"""The agent's docs search: `search_docs` over the process's docs index."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic_ai.toolsets import FunctionToolset

from chatbot.agent.deps import TurnDeps
from chatbot.tools.docs.index import DocsIndex


def docs_toolset(index: DocsIndex) -> FunctionToolset[TurnDeps]:
    """The agent's docs search: one tool, `search_docs`, over `index`."""

    async def search_docs(query: str, limit: int = 5) -> dict[str, Any]:
        """Search the assistant's user guide and the operator's docs.

        They explain how this assistant works: the networks it can use and how to switch,
        how transactions are proposed, simulated and approved in the user's own wallet,
        the chain tools, and safety advice. Use it when the user asks how the assistant
        or the app works, rather than guessing. Returns the best matching passages.

        Args:
            query: What to look for, in plain words (e.g. "transaction simulation revert").
            limit: How many passages to return, 1 to 10.
        """
        hits = await asyncio.to_thread(index.search, query, max(1, min(limit, 10)))
        results = [hit.public() for hit in hits]
        if not results:
            return {
                "results": [],
                "note": "Nothing in the docs matched. Try other words, or answer without "
                "the docs and say so.",
            }
        return {"results": results}

    toolset: FunctionToolset[TurnDeps] = FunctionToolset()
    toolset.add_function(search_docs, takes_ctx=False)
    return toolset
