"""Domain errors: a stable machine-readable code plus a sentence for people.

The HTTP layer maps each code to a status (api/errors.py); nothing below it knows HTTP.
"""

from __future__ import annotations


class ChatbotError(Exception):
    """A request the server refuses for a reason the client can act on."""

    code = "error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class InvalidInput(ChatbotError):
    code = "invalid_request"


class InvalidLastEventId(ChatbotError):
    code = "invalid_last_event_id"


class InvalidCursor(ChatbotError):
    code = "invalid_cursor"


class InvalidSessionId(ChatbotError):
    code = "invalid_session_id"


class MissingSessionId(ChatbotError):
    code = "missing_session_id"


class EmptyMessage(ChatbotError):
    code = "empty_message"


class MessageTooLong(ChatbotError):
    code = "message_too_long"


class SessionNotFound(ChatbotError):
    code = "session_not_found"


class MessageNotFound(ChatbotError):
    code = "message_not_found"


class SessionBusy(ChatbotError):
    code = "session_busy"


class ModelUnavailable(ChatbotError):
    code = "missing_api_key"


class WalletTxNotFound(ChatbotError):
    code = "wallet_tx_not_found"


class WalletTxAlreadyResolved(ChatbotError):
    code = "wallet_tx_already_resolved"


class WalletTxExpired(ChatbotError):
    code = "wallet_tx_expired"


class WalletTxPending(ChatbotError):
    code = "wallet_tx_pending"


class QueueFull(ChatbotError):
    code = "queue_full"


class RateLimited(ChatbotError):
    code = "rate_limited"


class BackendUnavailable(ChatbotError):
    code = "backend_unavailable"


class TooManySessions(ChatbotError):
    code = "too_many_sessions"


class TooManyStreams(ChatbotError):
    code = "too_many_streams"


class Unauthorized(ChatbotError):
    """No credentials, or ones that are forged, expired or revoked (AUTH)."""

    code = "unauthorized"


class SignInRefused(ChatbotError):
    """A sign-in that does not hold; its code names the check that failed (`siwe_*`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class AuthMethodDisabled(ChatbotError):
    """A sign-in route for a method AUTH does not list."""

    code = "auth_method_disabled"


class UnknownCommand(ChatbotError):
    code = "unknown_command"


class UnknownNetwork(ChatbotError):
    code = "unknown_network"


def error_for_code(code: str, message: str, retry_after: float | None = None) -> ChatbotError:
    """The error a code names (as raised on another cluster worker), ready to raise here."""
    pending = list(ChatbotError.__subclasses__())
    while pending:
        kind = pending.pop()
        if kind.code == code:
            return kind(message, retry_after=retry_after)
        pending.extend(kind.__subclasses__())
    return ChatbotError(message, retry_after=retry_after)
