"""Request bodies, and the response shapes the OpenAPI docs at `/docs` describe.

Responses are rendered straight from the session's dataclasses by orjson; the
response models here exist so that the docs say exactly what comes back.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

SESSION_ID_SCHEMA: JsonDict = {
    "pattern": "^[A-Za-z0-9_-]{1,128}$",
    "minLength": 1,
    "maxLength": 128,
}
"""What the document says of every session id (checked in api/params.py, answered with
400 `invalid_session_id`, so it is stated here rather than validated by FastAPI)."""
SESSION_ID_DOC = (
    "1-128 characters of [A-Za-z0-9_-]. May also come as the `X-Session-Id` header; "
    "this field wins."
)
EXAMPLE_ID = "0b7c4c0e-8f6a-4a43-9d7e-2f1f6f2b8c11"


class ChatRequest(BaseModel):
    """A user message."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"message": "What is my balance?", "session_id": "session-1"}]
        }
    )

    message: str = Field(description="The text, 1 to MAX_MESSAGE_LENGTH characters.")
    session_id: str | None = Field(
        default=None, description=SESSION_ID_DOC, json_schema_extra=SESSION_ID_SCHEMA
    )


class SystemRequest(BaseModel):
    """A system note: shown at once, given to the agent as a note, not a user prompt."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"message": "Transaction sent: 0xabc…", "session_id": "session-1"}]
        }
    )

    message: str
    session_id: str | None = Field(
        default=None, description=SESSION_ID_DOC, json_schema_extra=SESSION_ID_SCHEMA
    )


class InterruptRequest(BaseModel):
    """Stop the running turn of a session."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"session_id": "session-1"}]})

    session_id: str | None = Field(
        default=None, description=SESSION_ID_DOC, json_schema_extra=SESSION_ID_SCHEMA
    )


class McpCommandRequest(BaseModel):
    """A session command, as the original app sent it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"command": "set_network", "args": {"network": "testnet"}, "session_id": "s-1"},
                {"command": "list_networks", "args": {}, "session_id": "s-1"},
            ]
        }
    )

    command: str = Field(description="`set_network`, `get_network` or `list_networks`.")
    args: dict[str, Any] | str | None = Field(
        default=None, description='For `set_network`: `{"network": NAME}` (or just NAME).'
    )
    session_id: str | None = Field(
        default=None, description=SESSION_ID_DOC, json_schema_extra=SESSION_ID_SCHEMA
    )


class WalletResultRequest(BaseModel):
    """The user's wallet answering a pending transaction."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_id": "session-1",
                    "tx_id": "tx_5f1c2a9e03b4d7c1",
                    "status": "sent",
                    "hash": "0x" + "ab" * 32,
                },
                {
                    "session_id": "session-1",
                    "tx_id": "tx_5f1c2a9e03b4d7c1",
                    "status": "rejected",
                    "error": "User rejected the request.",
                },
            ]
        }
    )

    session_id: str | None = Field(
        default=None, description=SESSION_ID_DOC, json_schema_extra=SESSION_ID_SCHEMA
    )
    tx_id: str = Field(min_length=1, max_length=64)
    status: Literal["sent", "rejected", "failed"]
    hash: str | None = Field(default=None, description="For `sent`: the transaction hash.")
    error: str | None = Field(default=None, max_length=2000)


ADDRESS_PATTERN = "^0x[0-9a-fA-F]{40}$"


class WalletAccountRequest(BaseModel):
    """The wallet the user's client is connected to, reported for one session."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_id": "session-1",
                    "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                    "chain_id": 1,
                },
                {"session_id": "session-1", "address": None, "chain_id": None},
            ]
        }
    )

    session_id: str | None = Field(
        default=None, description=SESSION_ID_DOC, json_schema_extra=SESSION_ID_SCHEMA
    )
    address: str | None = Field(
        description="The connected account (EIP-55 or lowercase); null when it disconnected.",
        pattern=ADDRESS_PATTERN,
    )
    chain_id: int | None = Field(
        default=None, ge=1, le=2**53 - 1, description="The chain the wallet is on."
    )


class ToolModel(BaseModel):
    """A tool call shown as its own message."""

    name: str
    args: dict[str, Any]
    status: Literal["running", "success", "error", "interrupted"]
    call_id: str
    result: Any = None
    error: str | None = None


class MessageModel(BaseModel):
    """One message of a conversation."""

    id: str
    sender: Literal["user", "agent", "system"]
    content: str
    timestamp: str = Field(description="ISO-8601 UTC, e.g. 2026-11-24T03:04:05.123Z")
    is_streaming: bool
    status: Literal["streaming", "complete", "interrupted", "error"]
    tool: ToolModel | None = None


class SimulationModel(BaseModel):
    """What `eth_call` and `eth_estimateGas` said of a proposed transaction."""

    ok: bool = Field(description="False: it would revert; the user is warned.")
    gas: int | None = Field(description="Estimated gas; null when it would revert.")
    fee_wei: str | None = Field(
        description="gas * (base fee + tip) in wei, as a decimal string; null when it reverts."
    )
    revert_reason: str | None = Field(description="The decoded reason it would revert.")


class WalletTxModel(BaseModel):
    """The pending transaction, typed: what `POST /api/wallet/result` answers by `id`."""

    id: str = Field(description="Answer it with this `tx_id`.")
    to: str = Field(description="EIP-55 address.")
    value: str = Field(description="Wei, as a decimal string.")
    data: str = Field(description="Calldata, 0x-prefixed hex (`0x` for none).")
    chain_id: int
    network: str
    description: str
    created_at: str = Field(description="ISO-8601 UTC.")
    expires_at: str = Field(
        description="After this the request expires (WALLET_TX_TIMEOUT_SECONDS)."
    )
    simulation: SimulationModel | None = Field(
        default=None,
        description="The transaction tried on its network from the user's address before it "
        "was shown; null when it could not be (no wallet address known, node away).",
    )


class WebStateResponse(BaseModel):
    """A session's full state: the original fields plus session_id, network, wallet_tx, seq."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_id": "session-1",
                    "seq": 42,
                    "older_messages": 0,
                    "messages": [
                        {
                            "id": "m_5f1c2a9e03b4d7c1",
                            "sender": "user",
                            "content": "Hello",
                            "timestamp": "2026-11-24T03:04:05.123Z",
                            "is_streaming": False,
                            "status": "complete",
                            "tool": None,
                        },
                        {
                            "id": "m_0a9d8c7b6e5f4a3b",
                            "sender": "agent",
                            "content": "You said: Hel",
                            "timestamp": "2026-11-24T03:04:05.130Z",
                            "is_streaming": True,
                            "status": "streaming",
                            "tool": None,
                        },
                    ],
                    "is_processing": True,
                    "is_loading": False,
                    "is_connecting_mcp": False,
                    "missing_api_key": False,
                    "network": "testnet",
                    "pending_wallet_tx": None,
                    "wallet_tx": None,
                    "queued": [],
                }
            ]
        }
    )

    session_id: str
    seq: int = Field(description="The number of the session's latest event.")
    messages: list[MessageModel] = Field(description="The newest SNAPSHOT_MESSAGES messages.")
    older_messages: int = Field(
        description="How many messages come before these: GET /api/sessions/{id}/messages."
    )
    is_processing: bool
    is_loading: bool
    is_connecting_mcp: bool
    missing_api_key: bool
    network: str
    title: str | None = Field(
        default=None, description="The conversation's title: its first words until renamed."
    )
    wallet_address: str | None = Field(
        default=None,
        description="The user's wallet as the client reported it (POST /api/wallet/account), "
        "else the signed-in address; tools that take an address default to it.",
    )
    wallet_chain_id: int | None = Field(
        default=None, description="The chain the client reported its wallet on."
    )
    pending_wallet_tx: str | None = Field(
        description="The original app's field, for its clients: null, or a JSON *string* of "
        "`{to, value, data, gas?, description, timestamp}` that they `JSON.parse`. New clients "
        "read `wallet_tx`.",
        examples=[
            '{"to":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","value":"1000000000000000000",'
            '"data":"0x","description":"Send 1 ETH to account 1",'
            '"timestamp":"2026-11-24T03:04:05.123Z"}'
        ],
    )
    wallet_tx: WalletTxModel | None = Field(
        description="The pending transaction as an object, with the id that "
        "`POST /api/wallet/result` answers, its chain and its expiry; null when none."
    )
    queued: list[MessageModel] = Field(
        description="Messages waiting under BUSY_POLICY=queue; each joins `messages` when its "
        "turn starts."
    )


class MessagePageResponse(BaseModel):
    """A page of older history."""

    messages: list[MessageModel]
    has_more: bool = Field(description="Whether messages older than these exist.")


class RenameRequest(BaseModel):
    """`PATCH /api/sessions/{id}`: the conversation's new title."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"title": "Gas fees on Base"}]})

    title: str = Field(min_length=1, max_length=200, pattern=r"\S")


class SessionSummaryModel(BaseModel):
    """One conversation in the caller's list."""

    session_id: str = Field(json_schema_extra=SESSION_ID_SCHEMA)
    title: str | None = Field(description="Its first words until renamed; null while empty.")
    created_at: str
    last_active_at: str
    message_count: int
    is_processing: bool


class SessionListResponse(BaseModel):
    """A page of the caller's conversations, most recently active first."""

    sessions: list[SessionSummaryModel]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class TokenResponse(BaseModel):
    """A sign-in: the bearer token (also set as the `chatbot_token` cookie)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "token": "eyJhbGciOiJIUzI1NiIs…",
                    "principal": "eth:0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
                    "expires_at": "2026-12-09T03:04:05.000Z",
                    "moved_sessions": 2,
                }
            ]
        }
    )

    token: str
    principal: str = Field(description="`anon:…`, `eth:0x…` (checksummed), `key:NAME`, `jwt:SUB`.")
    expires_at: str
    moved_sessions: int = Field(
        default=0, description="SIWE from an anonymous browser: how many of its sessions moved."
    )


class SiweNonceResponse(BaseModel):
    """What the EIP-4361 message must carry: the nonce, and this server's domain and URI."""

    nonce: str
    domain: str
    uri: str
    chain_id: int = Field(description="The default network's chain id (any configured one works).")
    expires_at: str = Field(description="When the nonce stops being accepted.")


class SiweRequest(BaseModel):
    """A signed EIP-4361 message."""

    message: str = Field(min_length=1, max_length=4096)
    signature: str = Field(min_length=4, max_length=32768, pattern=r"^0x[0-9a-fA-F]+$")


class MeResponse(BaseModel):
    """Who the caller is, and how one may sign in here."""

    principal: str | None = Field(description="Null when not signed in (or under AUTH=none).")
    methods: list[str] = Field(description="AUTH: `none`, or the methods accepted.")
    expires_at: str | None = Field(description="When this server's token ends; null otherwise.")


class SessionCreated(BaseModel):
    """A new session."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"session_id": EXAMPLE_ID}]})

    session_id: str


class McpCommandResponse(BaseModel):
    """The original command result shape."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "message": "Switched to testnet.",
                    "data": {"network": "testnet", "chain_id": 31337},
                }
            ]
        }
    )

    success: bool
    message: str
    data: Any = None
    session_id: str | None = Field(default=None, description="The session it applied to.")


class ErrorDetail(BaseModel):
    """What went wrong, for programs (code) and people (message)."""

    code: str
    message: str


class ErrorResponse(BaseModel):
    """Every error, whatever the endpoint."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "session_busy",
                        "message": "The agent is still answering; wait, or interrupt it first.",
                    }
                }
            ]
        }
    )

    error: ErrorDetail


def errors_doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses an endpoint can answer."""
    return {status: {"model": ErrorResponse} for status in statuses}


EVENT_TYPES = (
    "snapshot",
    "message.created",
    "message.delta",
    "message.completed",
    "tool.call",
    "tool.result",
    "state",
    "wallet.request",
    "wallet.resolved",
    "session.closed",
)
"""Every `event:` name of the typed stream."""


def sse_doc(
    description: str, example: str, event_types: tuple[str, ...] | None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entry for a text/event-stream response; the schema describes one event.

    `event_types` lists the `event:` names with their numbered `id:`; None means unnamed
    events with no id (the legacy stream). `data:` is always one line of JSON.
    """
    data = {"type": "string", "contentMediaType": "application/json"}
    event: dict[str, Any] = {"type": "object", "properties": {"data": data}, "required": ["data"]}
    if event_types is not None:
        event["properties"]["event"] = {"type": "string", "enum": list(event_types)}
        event["properties"]["id"] = {"type": "string", "pattern": "^[0-9]+$"}
        event["required"] = ["id", "event", "data"]
    return {
        200: {
            "description": description,
            "content": {"text/event-stream": {"schema": event, "example": example}},
        }
    }
