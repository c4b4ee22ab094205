"""Session ids: what clients may send, what the server makes, what logs may show."""

from __future__ import annotations

import re
import uuid

_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def is_valid_session_id(value: str) -> bool:
    """True for 1-128 characters of `[A-Za-z0-9_-]`."""
    return _SESSION_ID.fullmatch(value) is not None


def new_session_id() -> str:
    """A fresh UUIDv4, the form of every server-made id."""
    return str(uuid.uuid4())


def redact(session_id: str) -> str:
    """The prefix of an id that logs may carry; a full id would let a log reader join a chat."""
    return session_id[:6] + "…" if len(session_id) > 6 else session_id
