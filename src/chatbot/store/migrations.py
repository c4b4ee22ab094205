"""Versioned schema migrations, the one scheme every backend follows.

A backend lists its migrations in order, each a tuple of statements; the database
records how many it has applied (its schema version). At start the missing ones run in
one transaction, under a lock that makes processes starting at once migrate once. Append
new migrations, never edit old ones: databases in the field have run them already.
"""

from __future__ import annotations

from collections.abc import Sequence

from chatbot.store.base import StoreError

Migration = tuple[str, ...]


def pending_migrations(
    version: int, migrations: Sequence[Migration], database: str
) -> list[tuple[int, Migration]]:
    """The migrations a database at `version` still needs, numbered from 1.

    A database newer than this program is refused: its schema may mean things this
    code would get wrong.
    """
    known = len(migrations)
    if version > known:
        raise StoreError(
            f"{database} has schema version {version}, newer than this program knows "
            f"({known}); run a newer version of the program, or point DATABASE_URL "
            "at another database."
        )
    return list(enumerate(migrations[version:], start=version + 1))
