"""The store backends under one face, so the store contract tests are written once.

A `Backend` is one test's database: it makes stores on it and looks at the rows the way
another process would (its own connection, never the store's), so a test sees what is
really committed.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from contextlib import closing
from pathlib import Path
from typing import Any, TypeAlias

import psycopg
from psycopg.conninfo import conninfo_to_dict

from chatbot.store import postgres as postgres_store
from chatbot.store import sqlite as sqlite_store
from chatbot.store.postgres import PostgresStore
from chatbot.store.sqlite import SqliteStore

AnyStore: TypeAlias = SqliteStore | PostgresStore
"""A store of either backend (both have `available`, `schema_version`, `count_sessions`)."""


class Backend(ABC):
    """One test's database, and the backend-specific ways to reach its rows."""

    name: str
    schema_version: int
    """The schema version this program's migrations for the backend lead to."""

    @abstractmethod
    def make(self, *, batch_interval: float = 0.05) -> AnyStore:
        """A new, unopened store on this database."""

    @property
    @abstractmethod
    def names(self) -> tuple[str, ...]:
        """What an error about this database must mention for an operator to find it."""

    @abstractmethod
    async def execute(self, sql: str) -> None:
        """Run SQL, committed at once, outside any store."""

    @abstractmethod
    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of one query, read outside any store."""

    @abstractmethod
    async def count_rows(self, table: str, session_id: str) -> int:
        """How many rows of `table` belong to the session."""

    @abstractmethod
    async def recorded_version(self) -> int:
        """The schema version the database itself records."""

    @abstractmethod
    async def record_version(self, version: int) -> None:
        """Overwrite the recorded schema version, as a newer program would have."""

    @abstractmethod
    async def refuse_messages(self, content: str, reason: str) -> None:
        """Make the database refuse any new message with `content` (a stand-in for a full disk)."""


class SqliteBackend(Backend):
    """A SQLite file (in a directory `open` has to create)."""

    name = "sqlite"
    schema_version = sqlite_store.SCHEMA_VERSION

    def __init__(self, path: Path) -> None:
        self.path = path

    def make(self, *, batch_interval: float = 0.05) -> SqliteStore:
        """A new, unopened store on the file."""
        return SqliteStore(self.path, batch_interval=batch_interval)

    @property
    def names(self) -> tuple[str, ...]:
        """The file's path."""
        return (str(self.path),)

    def _connect(self) -> closing[sqlite3.Connection]:
        """A plain sqlite3 connection in autocommit mode, closed after use."""
        return closing(sqlite3.connect(self.path, isolation_level=None))

    async def execute(self, sql: str) -> None:
        """Run SQL (several statements allowed) on a connection of its own."""
        with self._connect() as connection:
            connection.executescript(sql)

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of one query, on a connection of its own."""
        with self._connect() as connection:
            return connection.execute(sql).fetchall()

    async def count_rows(self, table: str, session_id: str) -> int:
        """How many rows of `table` belong to the session."""
        with self._connect() as connection:
            query = f"SELECT count(*) FROM {table} WHERE session_id = ?"
            return int(connection.execute(query, (session_id,)).fetchone()[0])

    async def recorded_version(self) -> int:
        """`PRAGMA user_version`."""
        rows = await self.fetch("PRAGMA user_version")
        return int(rows[0][0])

    async def record_version(self, version: int) -> None:
        """Set `PRAGMA user_version`."""
        await self.execute(f"PRAGMA user_version = {int(version)}")

    async def refuse_messages(self, content: str, reason: str) -> None:
        """A trigger that aborts the statement inserting such a message."""
        await self.execute(
            f"CREATE TRIGGER refuse AFTER INSERT ON messages WHEN NEW.content = {quote(content)}"
            f" BEGIN SELECT RAISE(ABORT, {quote(reason)}); END"
        )


class PostgresBackend(Backend):
    """A database of its own on the shared test cluster."""

    name = "postgres"
    schema_version = postgres_store.SCHEMA_VERSION

    def __init__(self, url: str) -> None:
        self.url = url
        parts = conninfo_to_dict(url)
        self.host = str(parts["host"])
        self.database = str(parts["dbname"])

    def make(self, *, batch_interval: float = 0.05) -> PostgresStore:
        """A new, unopened store on the database."""
        return PostgresStore(self.url, batch_interval=batch_interval)

    @property
    def names(self) -> tuple[str, ...]:
        """The database's name and its host."""
        return (self.database, self.host)

    async def execute(self, sql: str) -> None:
        """Run SQL (several statements allowed) in autocommit mode, on a connection of its own."""
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as connection:
            await connection.execute(sql)

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of one query, on a connection of its own."""
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as connection:
            cursor = await connection.execute(sql)
            return await cursor.fetchall()

    async def count_rows(self, table: str, session_id: str) -> int:
        """How many rows of `table` belong to the session."""
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as connection:
            query = f"SELECT count(*) FROM {table} WHERE session_id = %s"
            cursor = await connection.execute(query, (session_id,))
            row = await cursor.fetchone()
            assert row is not None
            return int(row[0])

    async def recorded_version(self) -> int:
        """The single row of `chatbot_schema`."""
        rows = await self.fetch("SELECT version FROM chatbot_schema")
        assert len(rows) == 1, rows
        return int(rows[0][0])

    async def record_version(self, version: int) -> None:
        """Update the single row of `chatbot_schema`."""
        await self.execute(f"UPDATE chatbot_schema SET version = {int(version)}")

    async def refuse_messages(self, content: str, reason: str) -> None:
        """A plpgsql trigger that raises on inserting such a message."""
        await self.execute(
            f"""
            CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.content = {quote(content)} THEN
                    RAISE EXCEPTION {quote(reason)};
                END IF;
                RETURN NEW;
            END
            $$;
            CREATE TRIGGER refuse AFTER INSERT ON messages
                FOR EACH ROW EXECUTE FUNCTION refuse();
            """
        )


def quote(text: str) -> str:
    """`text` as an SQL string literal (the same in both dialects)."""
    return "'" + text.replace("'", "''") + "'"
