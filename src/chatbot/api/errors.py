"""The one error envelope, `{"error": {"code", "message"}}`, for every failure."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

from chatbot import errors
from chatbot.api.responses import JsonResponse

log = logging.getLogger("chatbot.api")

STATUS: dict[type[errors.ChatbotError], int] = {
    errors.InvalidInput: 422,
    errors.InvalidSessionId: 400,
    errors.InvalidCursor: 400,
    errors.InvalidLastEventId: 400,
    # No session named, none found: 404, like an unknown id (and what a schema-valid
    # request without the optional id may get).
    errors.MissingSessionId: 404,
    errors.EmptyMessage: 422,
    errors.MessageTooLong: 422,
    errors.SessionNotFound: 404,
    errors.MessageNotFound: 404,
    errors.SessionBusy: 409,
    errors.QueueFull: 429,
    errors.RateLimited: 429,
    errors.WalletTxNotFound: 404,
    errors.WalletTxAlreadyResolved: 409,
    errors.WalletTxPending: 409,
    errors.WalletTxExpired: 410,
    errors.ModelUnavailable: 503,
    errors.BackendUnavailable: 503,
    errors.TooManySessions: 503,
    errors.TooManyStreams: 503,
    errors.Unauthorized: 401,
    errors.SignInRefused: 401,
    errors.AuthMethodDisabled: 404,
    errors.UnknownCommand: 400,
    errors.UnknownNetwork: 400,
}

# FastAPI's detail for a body it could not decode at all (invalid UTF-8, nesting too deep).
_FASTAPI_UNPARSABLE_BODY = "There was an error parsing the body"

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    410: "gone",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int,
    code: str,
    message: str,
    retry_after: float | None = None,
    extra: dict[str, Any] | None = None,
) -> JsonResponse:
    """An error envelope with its status and, at limits, `Retry-After`.

    `extra` adds top-level fields, for legacy endpoints whose clients read them.
    """
    headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after is not None else None
    body = {**(extra or {}), "error": {"code": code, "message": message}}
    return JsonResponse(body, status, headers=headers)


def chatbot_error_response(
    error: errors.ChatbotError, extra: dict[str, Any] | None = None
) -> JsonResponse:
    """The response for a domain error."""
    status = next((STATUS[kind] for kind in type(error).__mro__ if kind in STATUS), 400)
    response = error_response(status, error.code, error.message, error.retry_after, extra)
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def _on_chatbot_error(request: Request, error: Exception) -> JsonResponse:
    assert isinstance(error, errors.ChatbotError)
    return chatbot_error_response(error)


async def _on_validation_error(request: Request, error: Exception) -> JsonResponse:
    assert isinstance(error, RequestValidationError)
    problems = list(error.errors())
    if any(problem.get("type") == "json_invalid" for problem in problems):
        return error_response(400, "invalid_json", "The request body is not valid JSON.")
    parts = []
    for problem in problems[:5]:
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        parts.append(f"{where or 'body'}: {problem.get('msg', 'invalid')}")
    return error_response(422, "invalid_request", "; ".join(parts) or "Invalid request.")


async def _on_http_error(request: Request, error: Exception) -> JsonResponse:
    assert isinstance(error, HTTPException)
    code = _HTTP_CODES.get(error.status_code, "http_error")
    if error.status_code == 400 and error.detail == _FASTAPI_UNPARSABLE_BODY:
        code = "invalid_json"
    response = error_response(error.status_code, code, str(error.detail))
    if error.headers:
        response.headers.update(error.headers)
    if error.status_code == 405:
        response.headers["Allow"] = ", ".join(_allowed(request))
    return response


def _allowed(request: Request) -> list[str]:
    """Every method some route serves at this path: Starlette names only the first route's."""
    methods: set[str] = set()
    for route in request.app.routes:
        if (
            isinstance(route, Route)
            and route.methods
            and route.matches(request.scope)[0]
            in (
                Match.FULL,
                Match.PARTIAL,
            )
        ):
            methods |= route.methods
    return sorted(methods)


async def _on_unexpected(request: Request, error: Exception) -> JsonResponse:
    route = request.scope.get("route")
    # The route template, never the concrete path: paths carry full session ids.
    log.exception("unhandled error", extra={"route": getattr(route, "path", "?")})
    return error_response(500, "internal_error", "Something went wrong on the server.")


def install_error_handlers(app: FastAPI) -> None:
    """Route every kind of failure to the envelope."""
    app.add_exception_handler(errors.ChatbotError, _on_chatbot_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
