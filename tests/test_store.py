"""The stores against real databases: what is saved comes back exactly, and a database a
store cannot use stops the start with a clear error instead of silently starting empty.

The contract tests run on both backends: SQLite files, and Postgres (a private cluster
the suite starts, one fresh database per test). The tests after them are one backend's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import sys
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chatbot.model import (
    Message,
    MessageStatus,
    Simulation,
    ToolCallInfo,
    ToolStatus,
    WalletAccount,
    WalletStatus,
    WalletTx,
    iso_in,
    redact,
)
from chatbot.store.base import StoreError, StoreUnavailable
from chatbot.store.postgres import SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION
from chatbot.store.postgres import PostgresStore
from chatbot.store.sqlite import SqliteStore
from tests.postgres import Postgres, needs_postgres, run_postgres
from tests.server import free_port
from tests.stores import AnyStore, Backend, PostgresBackend, SqliteBackend

CREATED = "2026-01-02T03:04:05.678Z"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A database file in a directory that does not exist yet (open creates it)."""
    return tmp_path / "var" / "chatbot.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
def backend(request: pytest.FixtureRequest, db_path: Path) -> Backend:
    """The test's own database, on each backend in turn."""
    if request.param == "sqlite":
        return SqliteBackend(db_path)
    # Asked for only here, so a run of the SQLite tests alone starts no cluster.
    return PostgresBackend(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[AnyStore]:
    opened = backend.make()
    await opened.open()
    yield opened
    await opened.close()


@contextmanager
def reopened_sync(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection, to look at the rows the way another process would."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def add_session(
    store: AnyStore,
    session_id: str,
    *,
    last_active_at: str = CREATED,
    network: str = "mainnet",
    wallet: WalletAccount | None = None,
) -> None:
    store.save_session(
        session_id,
        network=network,
        title=f"title of {session_id}",
        created_at=CREATED,
        last_active_at=last_active_at,
        wallet=wallet,
    )


def add_messages(store: AnyStore, session_id: str, count: int, *, start: int = 0) -> list[Message]:
    """Queue `count` messages at positions `start`, `start + 1`, …; the messages saved."""
    messages = [
        Message(sender="user" if i % 2 == 0 else "agent", content=f"{session_id} #{i}")
        for i in range(start, start + count)
    ]
    for position, message in enumerate(messages, start=start):
        store.save_message(session_id, position, message)
    return messages


def wallet_tx(expires_in: float, description: str = "Send 1 ETH") -> WalletTx:
    return WalletTx(
        to="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        value="1000000000000000000000000",  # more than 64 bits: stays an exact string
        data="0xdeadbeef",
        chain_id=31337,
        network="hardhat",
        description=description,
        expires_at=iso_in(expires_in),
        deadline=time.monotonic() + expires_in,
    )


# ---- round trips ------------------------------------------------------------------------


async def test_session_with_every_kind_of_message_round_trips(
    store: AnyStore, backend: Backend
) -> None:
    add_session(store, "s-kinds", network="sepolia")
    messages = [
        Message(sender="user", content="What is my balance? 🙂 \"quoted\" 'and' \\ \n lines"),
        Message(sender="system", content="Network switched to sepolia"),
        Message(
            sender="agent",
            content="",
            tool=ToolCallInfo(
                name="get_balance",
                args={"address": "0xabc", "block": "latest", "nested": {"n": [1, 2.5, None]}},
                status=ToolStatus.SUCCESS,
                call_id="call_1",
                result={"wei": "12000000000000000000", "ok": True},
            ),
        ),
        Message(
            sender="agent",
            content="",
            tool=ToolCallInfo(
                name="get_code",
                args={},
                status=ToolStatus.ERROR,
                call_id="call_2",
                error="RPC timed out",
            ),
        ),
        Message(sender="agent", content="You have 12 ETH."),
        Message(sender="agent", content="Half a rep", status=MessageStatus.INTERRUPTED),
    ]
    for position, message in enumerate(messages):
        store.save_message("s-kinds", position, message)
    await store.close()

    again = backend.make()
    await again.open()
    try:
        loaded = await again.load("s-kinds", 50)
    finally:
        await again.close()

    assert loaded is not None
    assert (loaded.id, loaded.network, loaded.title) == ("s-kinds", "sepolia", "title of s-kinds")
    assert (loaded.created_at, loaded.last_active_at) == (CREATED, CREATED)
    assert loaded.messages == messages
    assert loaded.older_messages == 0
    assert loaded.pending_wallet_tx is None
    assert loaded.resolved_wallet_txs == {}
    assert loaded.wallet is None


async def test_unknown_session_is_none(store: AnyStore) -> None:
    assert await store.load("never-stored", 10) is None


async def test_streaming_message_is_one_row_with_the_final_content(
    store: AnyStore, backend: Backend
) -> None:
    add_session(store, "s-stream")
    store.save_message("s-stream", 0, Message(sender="user", content="Tell me a story"))
    reply = Message(sender="agent", content="", is_streaming=True, status=MessageStatus.STREAMING)
    for chunk in ["Once ", "upon ", "a time"]:
        reply.content += chunk
        store.save_message("s-stream", 1, reply)

    midway = await store.load("s-stream", 10)
    assert midway is not None
    assert midway.messages[1].content == "Once upon a time"
    assert midway.messages[1].is_streaming

    reply.content += ", the end."
    store.save_message("s-stream", 1, reply)
    reply.is_streaming, reply.status = False, MessageStatus.COMPLETE
    store.save_message("s-stream", 1, reply)
    reply.content = "changed after the last save"  # a save stores the message as it was then
    await store.flush()

    loaded = await store.load("s-stream", 10)
    assert loaded is not None
    assert [m.content for m in loaded.messages] == [
        "Tell me a story",
        "Once upon a time, the end.",
    ]
    assert not loaded.messages[1].is_streaming
    assert loaded.messages[1].status is MessageStatus.COMPLETE
    assert await backend.count_rows("messages", "s-stream") == 2


async def test_limit_returns_the_newest_and_counts_the_older(store: AnyStore) -> None:
    add_session(store, "s-limit")
    messages = add_messages(store, "s-limit", 10)

    newest = await store.load("s-limit", 3)
    assert newest is not None
    assert newest.messages == messages[7:]
    assert newest.older_messages == 7

    everything = await store.load("s-limit", 100)
    assert everything is not None
    assert everything.messages == messages
    assert everything.older_messages == 0

    nothing = await store.load("s-limit", 0)
    assert nothing is not None
    assert (nothing.messages, nothing.older_messages) == ([], 10)


async def test_page_walks_back_through_history(store: AnyStore) -> None:
    add_session(store, "s-page")
    messages = add_messages(store, "s-page", 10)
    add_session(store, "s-empty")

    newest = await store.page("s-page", None, 3)
    assert newest is not None
    assert (newest.messages, newest.has_more) == (messages[7:], True)

    before_7 = await store.page("s-page", messages[7].id, 3)
    assert before_7 is not None
    assert (before_7.messages, before_7.has_more) == (messages[4:7], True)

    before_3 = await store.page("s-page", messages[3].id, 3)
    assert before_3 is not None
    assert (before_3.messages, before_3.has_more) == (messages[:3], False)

    before_2 = await store.page("s-page", messages[2].id, 5)
    assert before_2 is not None
    assert (before_2.messages, before_2.has_more) == (messages[:2], False)

    before_first = await store.page("s-page", messages[0].id, 5)
    assert before_first is not None
    assert (before_first.messages, before_first.has_more) == ([], False)

    empty = await store.page("s-empty", None, 5)
    assert empty is not None
    assert (empty.messages, empty.has_more) == ([], False)

    assert await store.page("s-page", "m_not_a_message", 5) is None
    assert await store.page("s-unknown", None, 5) is None
    assert await store.page("s-empty", messages[0].id, 5) is None  # another session's id


# ---- wallet transactions ---------------------------------------------------------------


async def test_pending_and_resolved_wallet_txs_round_trip(
    store: AnyStore, backend: Backend
) -> None:
    account = WalletAccount("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", 11155111)
    add_session(store, "s-wallet", wallet=account)
    statuses = list(WalletStatus)
    resolved = [wallet_tx(60, f"old {i}") for i in range(40)]
    for i, tx in enumerate(resolved):
        store.save_wallet_tx("s-wallet", tx, None)
        store.save_wallet_tx("s-wallet", tx, statuses[i % len(statuses)])
    pending = wallet_tx(300)
    pending.simulation = Simulation(ok=True, gas=21_001, fee_wei=2**70)  # beyond 64 bits
    store.save_wallet_tx("s-wallet", pending, None)
    await store.close()

    again = backend.make()
    await again.open()
    try:
        loaded = await again.load("s-wallet", 10)
    finally:
        await again.close()

    assert loaded is not None
    assert loaded.pending_wallet_tx is not None
    assert loaded.pending_wallet_tx.public() == pending.public()
    assert loaded.pending_wallet_tx.simulation == pending.simulation
    assert loaded.wallet == account
    assert 290 < loaded.pending_wallet_tx.deadline - time.monotonic() <= 300
    # The 32 most recently resolved, oldest first, as WalletSlot keeps them.
    assert list(loaded.resolved_wallet_txs) == [tx.id for tx in resolved[8:]]
    assert loaded.resolved_wallet_txs[resolved[39].id] is statuses[39 % len(statuses)]
    assert loaded.resolved_wallet_txs[resolved[8].id] is statuses[8 % len(statuses)]


async def test_expired_pending_tx_has_a_past_deadline(store: AnyStore) -> None:
    add_session(store, "s-expired")
    store.save_wallet_tx("s-expired", wallet_tx(-120), None)

    loaded = await store.load("s-expired", 10)
    assert loaded is not None
    assert loaded.pending_wallet_tx is not None
    assert loaded.pending_wallet_tx.deadline < time.monotonic() - 100


async def test_resolving_the_pending_tx_moves_it_to_resolved(store: AnyStore) -> None:
    add_session(store, "s-resolve")
    tx = wallet_tx(300)
    store.save_wallet_tx("s-resolve", tx, None)
    await store.flush()
    store.save_wallet_tx("s-resolve", tx, WalletStatus.REJECTED)

    loaded = await store.load("s-resolve", 10)
    assert loaded is not None
    assert loaded.pending_wallet_tx is None
    assert loaded.resolved_wallet_txs == {tx.id: WalletStatus.REJECTED}


# ---- batching, flush and close --------------------------------------------------------


async def test_flush_makes_queued_writes_visible_to_another_store(backend: Backend) -> None:
    writer = backend.make(batch_interval=60)
    await writer.open()
    reader = backend.make()
    await reader.open()
    try:
        add_session(writer, "s-visible")
        messages = add_messages(writer, "s-visible", 3)
        assert await reader.load("s-visible", 10) is None  # still queued, not on disk

        async with asyncio.timeout(5):  # a flush does not wait out the batch interval
            await writer.flush()

        loaded = await reader.load("s-visible", 10)
        assert loaded is not None
        assert loaded.messages == messages
    finally:
        await reader.close()
        await writer.close()


async def test_close_commits_what_is_still_queued(backend: Backend) -> None:
    first = backend.make(batch_interval=60)
    await first.open()
    add_session(first, "s-close")
    messages = add_messages(first, "s-close", 5)
    async with asyncio.timeout(5):
        await first.close()

    with pytest.raises(StoreError, match="not open"):
        add_session(first, "s-after-close")

    second = backend.make()
    await second.open()
    try:
        loaded = await second.load("s-close", 10)
    finally:
        await second.close()
    assert loaded is not None
    assert loaded.messages == messages


async def test_concurrent_flushes_all_return_with_their_writes_stored(store: AnyStore) -> None:
    add_session(store, "s-many")

    async def save_and_flush(position: int) -> None:
        store.save_message("s-many", position, Message(sender="user", content=str(position)))
        await store.flush()

    await asyncio.gather(*(save_and_flush(i) for i in range(200)))
    page = await store.page("s-many", None, 500)
    assert page is not None
    assert [m.content for m in page.messages] == [str(i) for i in range(200)]


async def test_a_cancelled_flush_does_not_cancel_the_commit_others_wait_for(
    store: AnyStore,
) -> None:
    add_session(store, "s-cancel")
    cancelled = asyncio.create_task(store.flush())
    waiting = asyncio.create_task(store.flush())
    await asyncio.sleep(0)  # both are now waiting on the same batch
    cancelled.cancel()
    await waiting
    assert cancelled.cancelled()
    assert await store.load("s-cancel", 1) is not None


async def test_a_failed_batch_fails_its_flushes_and_the_writer_goes_on(
    store: AnyStore, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    add_session(store, "alpha-session-1")
    add_session(store, "bravo-session-2")
    await store.flush()
    await backend.refuse_messages("private words", "no room")  # stands in for a full disk

    store.save_message("alpha-session-1", 0, Message(sender="user", content="fine"))
    store.save_message("bravo-session-2", 0, Message(sender="user", content="private words"))
    with (
        caplog.at_level(logging.ERROR, logger="chatbot.store"),
        pytest.raises(StoreError, match="no room"),
    ):
        await store.flush()

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "no room" in logged
    assert redact("bravo-session-2") in logged
    assert "bravo-session-2" not in logged
    assert "private words" not in logged
    assert await backend.count_rows("messages", "alpha-session-1") == 0  # one batch, one commit

    retried = Message(sender="user", content="fine again")
    store.save_message("alpha-session-1", 0, retried)
    await store.flush()
    loaded = await store.load("alpha-session-1", 10)
    assert loaded is not None
    assert loaded.messages == [retried]


# ---- deletion ---------------------------------------------------------------------------


async def test_delete_cascades_and_leaves_other_sessions(store: AnyStore, backend: Backend) -> None:
    for session_id in ("s-doomed", "s-kept"):
        add_session(store, session_id)
        add_messages(store, session_id, 4)
        store.save_wallet_tx(session_id, wallet_tx(60), None)
        store.save_wallet_tx(session_id, wallet_tx(60), WalletStatus.SENT)
    await store.flush()
    add_messages(store, "s-doomed", 6)  # still queued: deleted too

    assert await store.delete("s-doomed") is True
    assert await store.load("s-doomed", 10) is None
    assert await backend.count_rows("messages", "s-doomed") == 0
    assert await backend.count_rows("wallet_txs", "s-doomed") == 0
    assert await store.delete("s-doomed") is False

    # A turn that ends after the delete saves late: ignored, and the batch still commits.
    store.save_message("s-doomed", 6, Message(sender="agent", content="late"))
    store.save_message("s-kept", 4, Message(sender="agent", content="on time"))
    await store.flush()
    assert await store.load("s-doomed", 10) is None
    assert await backend.count_rows("messages", "s-doomed") == 0
    kept = await store.load("s-kept", 10)
    assert kept is not None
    assert [m.content for m in kept.messages][-1] == "on time"
    assert kept.pending_wallet_tx is not None
    assert len(kept.resolved_wallet_txs) == 1


async def test_delete_inactive_since_deletes_only_older_sessions(store: AnyStore) -> None:
    cutoff = datetime(2026, 3, 1, 12, 0, 0, 500, tzinfo=UTC)  # half a millisecond past noon
    old = {
        "s-ancient": "2025-01-01T00:00:00.000Z",
        "s-just-before": "2026-03-01T12:00:00.000Z",  # 0.5 ms before the cutoff
        "s-offset-old": "2026-03-01T12:30:00+02:00",  # 10:30 UTC, though its text sorts later
    }
    recent = {
        "s-just-after": "2026-03-01T12:00:00.001Z",
        "s-offset-new": "2026-03-01T11:30:00-01:00",  # 12:30 UTC, though its text sorts earlier
        "s-today": "2026-11-24T00:00:00.000Z",
    }
    for session_id, last_active_at in (old | recent).items():
        add_session(store, session_id, last_active_at=last_active_at)
        add_messages(store, session_id, 2)

    assert await store.delete_inactive_since(cutoff) == len(old)
    for session_id in old:
        assert await store.load(session_id, 10) is None
    for session_id in recent:
        assert await store.load(session_id, 10) is not None
    assert await store.delete_inactive_since(cutoff) == 0

    kept = await store.load("s-offset-new", 10)
    assert kept is not None
    assert kept.last_active_at == "2026-03-01T12:30:00.000Z"  # stored in one comparable form


# ---- schema versions --------------------------------------------------------------------


async def test_migrations_run_once_and_keep_data(backend: Backend) -> None:
    for n in range(2):
        opened = backend.make()
        await opened.open()
        add_session(opened, f"s-migrate-{n}")
        await opened.close()

    assert await backend.recorded_version() == backend.schema_version
    again = backend.make()
    await again.open()
    try:
        assert await again.schema_version() == backend.schema_version
        assert await again.count_sessions() == 2  # the second start dropped nothing
    finally:
        await again.close()


async def test_newer_schema_version_is_an_error(backend: Backend) -> None:
    first = backend.make()
    await first.open()
    add_session(first, "s-future")
    await first.close()
    await backend.record_version(backend.schema_version + 1)

    with pytest.raises(StoreError, match="newer") as raised:
        await backend.make().open()

    for name in backend.names:
        assert name in str(raised.value)
    assert await backend.recorded_version() == backend.schema_version + 1
    assert await backend.fetch("SELECT count(*) FROM sessions") == [(1,)]


# ---- volume -------------------------------------------------------------------------------


async def test_500_sessions_of_20_messages_read_back_exactly(backend: Backend) -> None:
    writer = backend.make()
    await writer.open()
    expected: dict[str, list[Message]] = {}
    for n in range(500):
        session_id = f"s-bulk-{n:03d}"
        add_session(writer, session_id, network=f"net-{n % 3}")
        messages = add_messages(writer, session_id, 20)
        messages[5] = Message(
            sender="agent",
            content="",
            tool=ToolCallInfo(
                name="lookup", args={"n": n}, status=ToolStatus.SUCCESS, result=[n, str(n)]
            ),
        )
        writer.save_message(session_id, 5, messages[5])
        expected[session_id] = messages
    await writer.close()

    reader = backend.make()
    await reader.open()
    try:
        for session_id, messages in expected.items():
            loaded = await reader.load(session_id, 20)
            assert loaded is not None
            assert loaded.messages == messages
            assert loaded.older_messages == 0
    finally:
        await reader.close()


# ---- SQLite only --------------------------------------------------------------------


async def test_sqlite_database_is_in_wal_mode(db_path: Path) -> None:
    opened = SqliteStore(db_path)
    await opened.open()
    await opened.close()
    with reopened_sync(db_path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ---- databases it cannot use ---------------------------------------------------------


def write_garbage(path: Path) -> bytes:
    path.parent.mkdir(parents=True)
    garbage = os.urandom(64 * 1024)
    path.write_bytes(garbage)
    return garbage


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


async def test_corrupt_file_is_an_error_naming_it(db_path: Path) -> None:
    garbage = write_garbage(db_path)

    with pytest.raises(StoreError) as raised:
        await SqliteStore(db_path).open()

    assert str(db_path) in str(raised.value)
    assert "not a database" in str(raised.value)
    assert read_bytes(db_path) == garbage  # never replaced by an empty database


OPEN_AND_REPORT = """
import asyncio, sys
from pathlib import Path
from chatbot.store.base import StoreError
from chatbot.store.sqlite import SqliteStore

async def main() -> None:
    store = SqliteStore(Path(sys.argv[1]))
    try:
        await store.open()
    except StoreError as exc:
        print("StoreError:", exc)
    else:
        await store.close()
        print("opened")

asyncio.run(main())
"""
# Root ignores permission bits through these capabilities; without them root is held to
# the owner bits like anyone else, so the chmods below bite.
DROP_PERMISSION_OVERRIDE = "--bounding-set=-dac_override,-dac_read_search,-fowner"


async def open_as_ordinary_process(path: Path) -> str:
    """Open the store where file permissions apply; what it reports."""
    if os.geteuid() != 0:
        try:
            store = SqliteStore(path)
            await store.open()
        except StoreError as exc:
            return f"StoreError: {exc}"
        await store.close()
        return "opened"
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    process = await asyncio.create_subprocess_exec(
        setpriv,
        DROP_PERMISSION_OVERRIDE,
        sys.executable,
        "-c",
        OPEN_AND_REPORT,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0 and stderr.startswith(b"setpriv"):
        pytest.skip(f"cannot drop capabilities here: {stderr.decode().strip()}")
    assert process.returncode == 0, stderr.decode()
    return stdout.decode().strip()


def remove(path: Path) -> None:
    path.unlink()


@contextmanager
def read_only(path: Path, *, file: bool, directory: bool) -> Iterator[None]:
    """chmod the database file and/or its directory read-only, for the duration."""
    if file:
        path.chmod(0o444)
    if directory:
        path.parent.chmod(0o555)
    try:
        yield
    finally:
        path.parent.chmod(0o755)
        if file:
            path.chmod(0o644)


@pytest.mark.parametrize(
    ("read_only_file", "read_only_directory", "expected_reason"),
    [
        (True, False, "the file is read-only"),
        (True, True, "the file is read-only"),
        (False, True, "its directory is read-only"),
    ],
)
async def test_read_only_database_is_an_error_naming_it(
    db_path: Path, read_only_file: bool, read_only_directory: bool, expected_reason: str
) -> None:
    first = SqliteStore(db_path)
    await first.open()
    add_session(first, "s-read-only")
    add_messages(first, "s-read-only", 3)
    await first.close()
    if not read_only_file:
        remove(db_path)  # a new database in a directory it may not write

    with read_only(db_path, file=read_only_file, directory=read_only_directory):
        report = await open_as_ordinary_process(db_path)

    assert report.startswith("StoreError:"), report
    assert str(db_path) in report
    assert expected_reason in report
    if read_only_file:  # and nothing was lost
        again = SqliteStore(db_path)
        await again.open()
        try:
            loaded = await again.load("s-read-only", 10)
        finally:
            await again.close()
        assert loaded is not None
        assert len(loaded.messages) == 3


# ---- URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///./var/chatbot.db", Path("var/chatbot.db")),
        ("sqlite:///var/chatbot.db", Path("var/chatbot.db")),
        ("sqlite:////srv/data/chatbot.db", Path("/srv/data/chatbot.db")),
        ("sqlite:///:memory:", Path(":memory:")),
    ],
)
def test_from_url_accepts_sqlite_urls(url: str, path: Path) -> None:
    assert SqliteStore.from_url(url).path == path


@pytest.mark.parametrize(
    "url",
    [
        "postgres://admin:hunter2@db.example/chat",
        "sqlite://host/chat.db",
        "sqlite:///",
        "sqlite:///var/",
        "sqlite:///chat.db?mode=ro",
        "chat.db",
        "",
    ],
)
def test_from_url_rejects_anything_else(url: str) -> None:
    with pytest.raises(StoreError) as raised:
        SqliteStore.from_url(url)
    assert "hunter2" not in str(raised.value)


async def test_relative_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = SqliteStore.from_url("sqlite:///./var/chatbot.db")
    await store.open()
    add_session(store, "s-relative")
    await store.close()
    assert (tmp_path / "var" / "chatbot.db").is_file()


async def test_in_memory_store_works() -> None:
    store = SqliteStore.from_url("sqlite:///:memory:")
    await store.open()
    try:
        add_session(store, "s-memory")
        messages = add_messages(store, "s-memory", 3)
        loaded = await store.load("s-memory", 10)
    finally:
        await store.close()
    assert loaded is not None
    assert loaded.messages == messages


# ---- Postgres ----------------------------------------------------------------------------


@needs_postgres
async def test_workers_starting_at_once_migrate_the_schema_once(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = PostgresBackend(postgres_url)
    stores = [backend.make() for _ in range(4)]
    with caplog.at_level(logging.INFO, logger="chatbot.store"):
        await asyncio.gather(*(store.open() for store in stores))
    try:
        migrated = [r for r in caplog.records if r.getMessage().startswith("Migrated")]
        assert len(migrated) == POSTGRES_SCHEMA_VERSION  # each migration ran in one worker
        assert await backend.recorded_version() == POSTGRES_SCHEMA_VERSION
        tables = await backend.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        assert tables == [("chatbot_schema",), ("messages",), ("sessions",), ("wallet_txs",)]

        add_session(stores[0], "s-shared")
        messages = add_messages(stores[0], "s-shared", 3)
        await stores[0].flush()
        for other in stores[1:]:
            loaded = await other.load("s-shared", 10)
            assert loaded is not None
            assert loaded.messages == messages
    finally:
        await asyncio.gather(*(store.close() for store in stores))


@needs_postgres
@pytest.mark.parametrize("wrong", ["user", "database", "port"])
async def test_a_postgres_it_cannot_use_is_an_error_naming_it_without_the_password(
    postgres_server: Postgres, wrong: str
) -> None:
    user, database, port = "chat", "chat", postgres_server.port
    if wrong == "user":
        user = "nobody"
    elif wrong == "database":
        database = "no_such_database"
    else:
        port = free_port()  # nothing listens there
    url = f"postgresql://{user}:hunter2@{postgres_server.host}:{port}/{database}"

    store = PostgresStore.from_url(url)
    with pytest.raises(StoreError) as raised:
        await store.open()

    message = str(raised.value)
    assert f"'{database}'" in message
    assert f"{postgres_server.host}:{port}" in message
    assert {"user": "nobody", "database": "no_such_database", "port": "refused"}[wrong] in message
    # Nor in the traceback a log would show, causes and all.
    assert "hunter2" not in "".join(traceback.format_exception(raised.value))


@needs_postgres
async def test_writes_queued_while_postgres_is_down_land_in_order_when_it_is_back() -> None:
    # A cluster of its own: stopping the shared one would pull every other test's database.
    async with run_postgres() as cluster:
        store = PostgresStore(cluster.url)
        await store.open()
        try:
            add_session(store, "s-outage")
            before = add_messages(store, "s-outage", 5)
            await store.flush()

            await cluster.stop()
            during = add_messages(store, "s-outage", 5, start=5)
            with pytest.raises(StoreUnavailable) as raised:
                await store.flush()
            assert raised.value.retry_after >= 1
            assert not store.available

            # Later writes queue behind the kept ones; the flush for them answers at once.
            during += add_messages(store, "s-outage", 5, start=10)
            async with asyncio.timeout(0.5):
                with pytest.raises(StoreUnavailable):
                    await store.flush()
                with pytest.raises(StoreUnavailable):
                    await store.load("s-outage", 100)

            await cluster.start()
            async with asyncio.timeout(30):
                while True:
                    try:
                        await store.flush()
                        break
                    except StoreUnavailable:
                        # Nothing to await for the database's return but the writer's retry;
                        # a client would come back after a while, as here.
                        await asyncio.sleep(0.05)
            assert store.available
        finally:
            await store.close()

        again = PostgresStore(cluster.url)
        await again.open()
        try:
            loaded = await again.load("s-outage", 100)
        finally:
            await again.close()
        assert loaded is not None
        assert loaded.messages == before + during
