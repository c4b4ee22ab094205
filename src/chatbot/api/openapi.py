"""The OpenAPI document, made to tell the truth about what this server accepts.

FastAPI derives the document from the request models; what depends on settings (the
message limit, the configured networks) or ties one field to another (`set_network`
needs a network) is added here, so generated clients and fuzzers send what is valid.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from chatbot.config import Settings

COMMANDS = ("set_network", "get_network", "list_networks")
SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A token from /api/auth/* (AUTH), an API key (API_KEYS) or the "
        "operator's JWT.",
    },
    "cookie": {"type": "apiKey", "in": "cookie", "name": "chatbot_token"},
}


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Serve the tailored document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            tailor(document, settings)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


NOT_BLANK = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
"""A character Python's `str.strip` keeps (the server's test of an empty message), as an
ECMA-262 class: its `\\S` differs on U+001C-U+001F, U+0085 and U+FEFF."""


def tailor(document: dict[str, Any], settings: Settings) -> None:
    """Add the settings' limits and networks, the command rules and the auth schemes."""
    schemas = document["components"]["schemas"]
    message = {
        "minLength": 1,
        "maxLength": settings.max_message_length,
        "pattern": NOT_BLANK,
    }
    for name in ("ChatRequest", "SystemRequest"):
        schemas[name]["properties"]["message"].update(message)
    networks = list(settings.networks)
    command = schemas["McpCommandRequest"]
    command["properties"]["command"]["enum"] = list(COMMANDS)
    command["allOf"] = [
        {
            "if": {"properties": {"command": {"const": "set_network"}}},
            "then": {
                "required": ["args"],
                "properties": {
                    "args": {
                        "anyOf": [
                            {
                                "type": "object",
                                "properties": {"network": {"enum": networks}},
                                "required": ["network"],
                            },
                            {"type": "string", "enum": networks},
                        ]
                    }
                },
            },
        }
    ]
    if settings.requires_credentials:
        document["components"]["securitySchemes"] = SECURITY_SCHEMES
        requirement: list[dict[str, list[str]]] = [{"bearer": []}, {"cookie": []}]
        for path, operations in document["paths"].items():
            if path.startswith("/api/") and not path.startswith("/api/auth/"):
                for operation in operations.values():
                    operation["security"] = requirement
