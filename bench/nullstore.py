"""`python -m bench.nullstore serve …`: our server with a store that keeps nothing.

A measuring instrument, not a product feature: the store scenario (bench/store.py) runs
the server with SQLite, with Postgres and with this, and what the first two cost above
this is the store's cost. Nothing in `src/` changes; this launcher replaces
`store_from_url` where the app and the start-up migration look it up, then runs the
real `chatbot serve`.
"""

from __future__ import annotations

import sys
from datetime import datetime

from chatbot.model import Message, WalletAccount, WalletStatus, WalletTx
from chatbot.store.base import MessagePage, Store, StoredSession


class NullStore:
    """A `Store` that forgets everything at once: saves do nothing, loads find nothing."""

    where = "nowhere (the bench's null store)"
    available = True
    retry_after = 1.0

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def load(self, session_id: str, limit: int) -> StoredSession | None:
        return None

    def save_session(
        self,
        session_id: str,
        *,
        network: str,
        title: str | None,
        created_at: str,
        last_active_at: str,
        wallet: WalletAccount | None = None,
    ) -> None:
        pass

    def save_message(self, session_id: str, position: int, message: Message) -> None:
        pass

    def save_wallet_tx(self, session_id: str, tx: WalletTx, status: WalletStatus | None) -> None:
        pass

    async def flush(self) -> None:
        pass

    async def delete(self, session_id: str) -> bool:
        return False

    async def page(self, session_id: str, before: str | None, limit: int) -> MessagePage | None:
        return None

    async def delete_inactive_since(self, cutoff: datetime) -> int:
        return 0

    async def schema_version(self) -> int:
        return 0

    async def count_sessions(self) -> int:
        return 0

    async def session_ids(self, after: str | None, limit: int) -> list[str]:
        return []

    async def wallet_txs(self, session_id: str) -> list[tuple[WalletTx, WalletStatus | None]]:
        return []


def null_store(url: str) -> Store:
    """Stands in for `store_from_url`: whatever DATABASE_URL says, nothing is kept."""
    return NullStore()


def main() -> int:
    """Patch the two places that build a store, then run `chatbot` with our arguments."""
    import chatbot.app
    import chatbot.store.admin
    from chatbot.cli import main as chatbot_main

    # Each module bound the name at import: patch it where it is looked up.
    chatbot.app.store_from_url = null_store  # type: ignore[attr-defined]
    chatbot.store.admin.store_from_url = null_store  # type: ignore[attr-defined]
    return chatbot_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
