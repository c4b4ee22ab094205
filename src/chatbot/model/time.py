"""Timestamps: one form everywhere, ISO-8601 UTC in milliseconds with a `Z`.

Every stored and sent time has this exact shape (`2026-11-24T03:04:05.123Z`), so two of
them compare correctly as text, in Python and in SQL alike.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


def iso_utc(moment: datetime | float) -> str:
    """A moment (aware, naive meaning UTC, or a unix timestamp) in the app's one form."""
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    return as_utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_timestamp() -> str:
    """Now, e.g. `2026-11-24T03:04:05.123Z`."""
    return iso_utc(datetime.now(UTC))


def iso_in(seconds: float) -> str:
    """The moment `seconds` from now."""
    return iso_utc(datetime.now(UTC) + timedelta(seconds=seconds))


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_iso(text: str) -> datetime:
    """An ISO-8601 time as an aware UTC datetime; ValueError if it is not one."""
    return as_utc(datetime.fromisoformat(text))


def monotonic_deadline(expires_at: str) -> float:
    """A wall-clock expiry as a `time.monotonic()` value in this process."""
    remaining = parse_iso(expires_at) - datetime.now(UTC)
    return time.monotonic() + remaining.total_seconds()
