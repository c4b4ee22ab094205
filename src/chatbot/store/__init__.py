"""Where sessions are kept between processes: the interface, SQLite (the embedded
default) and Postgres (for several machines), chosen by `DATABASE_URL`."""

from __future__ import annotations

from chatbot.store.base import (
    MessagePage,
    SessionSummary,
    Store,
    StoredSession,
    StoreError,
    StoreUnavailable,
)
from chatbot.store.postgres import PostgresStore
from chatbot.store.sqlite import SqliteStore

__all__ = [
    "MessagePage",
    "SessionSummary",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredSession",
    "store_from_url",
]


def store_from_url(url: str) -> Store:
    """The store `DATABASE_URL` names: `sqlite:///…` or `postgresql://…`."""
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme == "sqlite":
        return SqliteStore.from_url(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresStore.from_url(url)
    # Only the scheme is echoed: a database URL may carry a password.
    raise StoreError(
        f"Unsupported DATABASE_URL scheme {scheme or '(none)'!r}: use sqlite:///path/to/file.db "
        "or postgresql://user:password@host:port/database."
    )
