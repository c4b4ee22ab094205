"""Docs search: what the agent finds in a docs folder, and when the index is rebuilt."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from chatbot.tools.docs import DocsIndex, docs_toolset
from tests.fakes import FakeLLM, Reply, ToolCall
from tests.server import run_server

GUIDE = Path(__file__).parent.parent / "src" / "chatbot" / "guide"

Opener = Callable[..., Awaitable[DocsIndex]]


@pytest.fixture
async def open_index(tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens indexes (of tmp_path/docs into tmp_path/var/index.sqlite by default), closing each."""
    opened: list[DocsIndex] = []

    async def opener(docs: Path | None = None, index: Path | None = None) -> DocsIndex:
        docs_index = await DocsIndex.open(
            docs or tmp_path / "docs", index or tmp_path / "var" / "index.sqlite"
        )
        opened.append(docs_index)
        return docs_index

    yield opener
    for docs_index in opened:
        docs_index.close()


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A small mixed docs folder: markdown, text, HTML, and files that must be ignored."""
    root = tmp_path / "docs"
    write(
        root,
        "wallet.md",
        "# Wallet\n\nThe wallet approves transactions.\n\n"
        "## Simulation\n\nEvery proposal is tried with eth_call before it is shown; "
        "a revert is reported with its reason.\n\n"
        "## Expiry\n\nA proposal expires after ten minutes.\n",
    )
    write(
        root,
        "guides/networks.markdown",
        "Networks intro before any heading.\n\n"
        "# Networks\n\n## Switching\n\nUse the selector to switch the session to Sepolia.\n",
    )
    write(
        root,
        "faq.txt",
        "Frequently asked questions.\n\nThe assistant cannot see your seed phrase.\n\n"
        "Gas is paid in the native currency of the chain.\n",
    )
    write(
        root,
        "operators/deploy.html",
        "<html><head><title>Deploying</title><style>.kraken { color: red }</style>"
        "<script>var leviathan = 1;</script></head><body>"
        "<h1>Deploying</h1><p>Run the server behind a proxy.</p>"
        "<h2>Postgres</h2><p>Set DATABASE_URL to a postgresql URL &amp; restart.</p>"
        "</body></html>",
    )
    write(root, "notes.rst", "Release notes\n=============\n\nVersion one shipped the cormorant.\n")
    write(root, ".hidden.md", "# Secret\n\nThe platypus hides here.\n")
    write(root, ".git/config.md", "# Git\n\nplatypus\n")
    write(root, "image.png", "platypus")
    write(root, "data.json", '{"platypus": 1}')
    return root


async def test_finds_the_right_chunk_in_markdown_text_and_html(
    docs: Path, open_index: Opener
) -> None:
    index = await open_index()
    assert index.rebuilt
    assert index.files == 5

    [top, *_] = index.search("eth_call revert reason")
    assert (top.source, top.heading) == ("wallet.md", "Wallet \u203a Simulation")
    assert "eth_call" in top.text
    assert top.score > 0

    [top, *_] = index.search("switch to sepolia")
    assert (top.source, top.heading) == ("guides/networks.markdown", "Networks \u203a Switching")

    [top, *_] = index.search("seed phrase")
    assert (top.source, top.heading) == ("faq.txt", "Faq")

    [top, *_] = index.search("DATABASE_URL postgresql")
    assert (top.source, top.heading) == ("operators/deploy.html", "Deploying \u203a Postgres")
    assert "postgresql URL & restart" in top.text

    [top, *_] = index.search("cormorant")
    assert top.source == "notes.rst"

    # Text before a file's first heading is filed under the file's title.
    [top, *_] = index.search("intro")
    assert (top.source, top.heading) == ("guides/networks.markdown", "Networks")


async def test_skips_hidden_and_foreign_files_and_html_scripts(
    docs: Path, open_index: Opener
) -> None:
    index = await open_index()
    assert index.search("platypus") == []
    assert index.search("leviathan") == []
    assert index.search("kraken") == []


async def test_heading_match_ranks_first(tmp_path: Path, open_index: Opener) -> None:
    root = tmp_path / "docs"
    write(
        root,
        "a.md",
        "# Guide\n\n## Fees\n\nYou pay for gas. Bridges are mentioned here in passing, "
        "and bridges again, as the body text talks about bridges.\n",
    )
    write(root, "b.md", "# Guide\n\n## Bridges\n\nMoving funds between chains.\n")
    index = await open_index()
    hits = index.search("bridges")
    assert [hit.heading for hit in hits] == ["Guide \u203a Bridges", "Guide \u203a Fees"]
    assert hits[0].score > hits[1].score


async def test_unchanged_folder_reuses_the_index(
    docs: Path, open_index: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    first = await open_index()
    assert first.rebuilt
    with caplog.at_level(logging.INFO, logger="chatbot.docs"):
        again = await open_index()
    assert not again.rebuilt
    assert [r.getMessage() for r in caplog.records] == ["docs index reused"]
    assert caplog.records[0].__dict__["chunks"] == again.chunks
    assert again.search("eth_call")[0].source == "wallet.md"


async def test_changed_new_and_deleted_files_are_reindexed(
    docs: Path, open_index: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    await open_index()

    # Changed content (a different size, so the change shows without waiting for the clock).
    write(docs, "wallet.md", "# Wallet\n\n## Approval\n\nThe user approves with a hardware key.\n")
    with caplog.at_level(logging.INFO, logger="chatbot.docs"):
        changed = await open_index()
    assert changed.rebuilt
    built = [r for r in caplog.records if r.getMessage() == "docs index built"]
    assert built
    assert built[0].__dict__["files"] == 5
    assert changed.search("hardware")[0].heading == "Wallet \u203a Approval"
    assert changed.search("eth_call") == []

    # Same size, new modification time.
    path = docs / "faq.txt"
    path.write_text(path.read_text().replace("seed phrase", "seed thrase"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    touched = await open_index()
    assert touched.rebuilt
    assert touched.search("thrase")[0].source == "faq.txt"

    # A new file.
    write(docs, "new/bridges.md", "# Bridges\n\nMoving funds between rollups.\n")
    added = await open_index()
    assert added.rebuilt
    assert added.files == 6
    assert added.search("rollups")[0].source == "new/bridges.md"

    # A deleted file.
    (docs / "operators" / "deploy.html").unlink()
    removed = await open_index()
    assert removed.rebuilt
    assert removed.files == 5
    assert removed.search("postgresql") == []

    assert not (await open_index()).rebuilt


async def test_open_indexes_survive_a_rebuild(docs: Path, open_index: Opener) -> None:
    """A worker searching the old index keeps working while another process rebuilds it."""
    old = await open_index()
    write(docs, "wallet.md", "# Wallet\n\nRewritten.\n")
    new = await open_index()
    assert new.rebuilt
    assert old.search("eth_call")[0].source == "wallet.md"
    assert new.search("eth_call") == []
    leftovers = [p.name for p in (docs.parent / "var").iterdir() if p.name != "index.sqlite"]
    assert leftovers == []


async def test_a_damaged_or_foreign_index_file_is_rebuilt(docs: Path, tmp_path: Path) -> None:
    index_path = tmp_path / "index.sqlite"
    index_path.write_bytes(b"not a database at all")
    index = await DocsIndex.open(docs, index_path)
    try:
        assert index.rebuilt
        assert index.search("eth_call")[0].source == "wallet.md"
    finally:
        index.close()


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   ",
        "?!.,;:-",
        '"',
        '"unbalanced',
        "*",
        "wall*",
        "NEAR(",
        "NEAR(wallet proposal, 2)",
        "AND",
        "wallet AND",
        "OR NOT",
        "^wallet",
        "heading:wallet",
        "{heading body}: x",
        "(((",
        "'; DROP TABLE chunks; --",
        "\x00\u200b",
        "x" * 5000,
        " ".join(["wallet"] * 500),
    ],
)
async def test_weird_queries_never_raise(docs: Path, open_index: Opener, query: str) -> None:
    index = await open_index()
    hits = index.search(query)
    assert isinstance(hits, list)
    assert len(hits) <= 5


async def test_operator_words_are_searched_as_words(docs: Path, open_index: Opener) -> None:
    index = await open_index()
    assert index.search('"wallet" AND NEAR(')[0].source == "wallet.md"
    assert index.search("?!") == []
    assert len(index.search("wallet proposal", limit=1)) == 1
    assert index.search("wallet", limit=0) == []


async def test_missing_or_empty_docs_folder_gives_an_empty_index(
    tmp_path: Path, open_index: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="chatbot.docs"):
        missing = await open_index(tmp_path / "nowhere", tmp_path / "deep" / "er" / "i.sqlite")
    assert missing.chunks == 0
    assert missing.search("wallet") == []
    assert any("not found" in r.getMessage() for r in caplog.records)

    caplog.clear()
    (tmp_path / "empty").mkdir()
    with caplog.at_level(logging.WARNING, logger="chatbot.docs"):
        empty = await open_index(tmp_path / "empty", tmp_path / "e.sqlite")
    assert empty.chunks == 0
    assert empty.search("wallet") == []
    assert any(r.levelno == logging.WARNING for r in caplog.records)


async def test_long_sections_are_split_and_hits_trimmed(tmp_path: Path, open_index: Opener) -> None:
    paragraphs = [f"Paragraph {n} talks about staking rewards at length. " * 8 for n in range(20)]
    write(tmp_path / "docs", "long.md", "# Staking\n\n" + "\n\n".join(paragraphs))
    write(tmp_path / "docs", "wall.txt", "lorem " * 2000 + "albatross")
    index = await open_index()
    assert index.chunks > 3
    hits = index.search("staking rewards", limit=20)
    assert len(hits) > 3
    assert all(len(hit.text) <= 1200 for hit in hits)
    assert all(hit.heading == "Staking" for hit in hits)
    [albatross] = index.search("albatross")
    assert albatross.text.endswith("albatross")


async def test_the_default_guide_answers_questions(tmp_path: Path, open_index: Opener) -> None:
    index = await open_index(GUIDE, tmp_path / "guide.sqlite")
    assert index.files >= 4
    assert index.search("simulation revert")[0].source == "wallet.md"
    assert index.search("Sepolia chain id")[0].source == "networks.md"
    assert index.search("seed phrase private key")[0].source == "safety.md"
    assert index.search("unlimited allowance approvals")[0].source == "safety.md"
    assert index.search("resolve ENS name")[0].source == "tools.md"
    assert index.search("how long until a proposal expires")[0].source == "wallet.md"
    for path in sorted(GUIDE.glob("*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("# "), path.name
        assert any(line.startswith("## ") for line in lines), path.name


async def test_toolset_offers_search_docs(docs: Path, open_index: Opener) -> None:
    toolset = docs_toolset(await open_index())
    assert list(toolset.tools) == ["search_docs"]
    tool = toolset.tools["search_docs"]
    assert not tool.takes_ctx
    assert "user guide" in (tool.description or "")
    schema: dict[str, Any] = tool.function_schema.json_schema
    assert set(schema["properties"]) == {"query", "limit"}
    assert schema["required"] == ["query"]

    found = await tool.function(query="eth_call revert", limit=2)
    assert json.loads(json.dumps(found)) == found
    assert 1 <= len(found["results"]) <= 2
    assert set(found["results"][0]) == {"source", "heading", "text", "score"}
    assert found["results"][0]["source"] == "wallet.md"

    nothing = await tool.function(query="zeppelin", limit=99)
    assert nothing["results"] == []
    assert nothing["note"]


async def test_the_agent_searches_the_docs_and_no_docs_offers_no_tool(tmp_path: Path) -> None:
    """Through the app: the model is offered `search_docs` and gets the chunk; with
    `--no-docs` the tool is not offered at all."""
    docs = tmp_path / "operator-docs"
    write(docs, "fees.md", "# Fees\n\n## Refunds\n\nRefunds of gas are never possible.\n")
    async with FakeLLM.start("anthropic") as fake:
        fake.script(ToolCall("search_docs", {"query": "gas refunds"}), Reply(["Never."]))
        async with (
            run_server(DOCS_DIR=str(docs), **fake.env()) as running,
            running.client() as http,
        ):
            chat = {"message": "can I get my gas back?", "session_id": "docs-on"}
            assert (await http.post("/api/chat", json=chat)).status_code == 200
            offered, answered = await fake.wait_requests(2, timeout=15)
        assert "search_docs" in offered.tool_names
        (result,) = answered.tool_results()
        hits = json.loads(result.content)["results"]
        assert (hits[0]["source"], hits[0]["heading"]) == ("fees.md", "Fees \u203a Refunds")
        assert "never possible" in hits[0]["text"]

        fake.reset()
        async with (
            run_server("--no-docs", DOCS_DIR=str(docs), **fake.env()) as running,
            running.client() as http,
        ):
            chat = {"message": "hello", "session_id": "docs-off"}
            assert (await http.post("/api/chat", json=chat)).status_code == 200
            (offered,) = await fake.wait_requests(1, timeout=15)
        assert "search_docs" not in offered.tool_names
        assert "docs index" not in running.log_text(), "nothing was built"
