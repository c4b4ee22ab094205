"""Session ids: what clients may send, what the server makes, what logs may show.

With sign-in (AUTH), ids are scoped per principal: the server keys a session by
`{id}.{scope}`, the scope a hash of its owner. Two principals' `session-1` are then two
sessions, and asking for another's id finds nothing, exactly like an unknown id. The dot
cannot occur in a client's id, so a key never collides with an unscoped one.
"""

from __future__ import annotations

import hashlib
import re
import uuid

_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_SCOPE_MARK = "."


def is_valid_session_id(value: str) -> bool:
    """True for 1-128 characters of `[A-Za-z0-9_-]`."""
    return _SESSION_ID.fullmatch(value) is not None


def new_session_id() -> str:
    """A fresh UUIDv4, the form of every server-made id."""
    return str(uuid.uuid4())


def scope_of(principal: str) -> str:
    """The scope of a principal's sessions: a short hash, the same on every worker."""
    return hashlib.blake2b(principal.encode(), digest_size=10).hexdigest()


def scoped(session_id: str, scope: str) -> str:
    """The key of the session a principal calls `session_id`; unscoped ("") keeps the id."""
    return f"{session_id}{_SCOPE_MARK}{scope}" if scope else session_id


def public_id(key: str) -> str:
    """The id its owner calls a session by."""
    return key.partition(_SCOPE_MARK)[0]


def scope_in(key: str) -> str:
    """The owner's scope a session key carries ("" for an unscoped session)."""
    return key.partition(_SCOPE_MARK)[2]


def redact(session_id: str) -> str:
    """The prefix of an id that logs may carry; a full id would let a log reader join a chat."""
    return session_id[:6] + "…" if len(session_id) > 6 else session_id
