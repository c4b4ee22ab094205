"""Requests between workers: run a session operation on the worker that holds it.

A request goes to the holder's inbox channel and names the asker's inbox for the
answer. PUBLISH reports how many connections received it: none means the holder's
connection is gone (the worker died), which the asker learns at once instead of
waiting out a timeout. Errors travel as their code and message and are raised again
on the asking side as the same `ChatbotError`, so a 409 on A is a 409 on B.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from chatbot.cluster.keys import Keys
from chatbot.cluster.link import Link
from chatbot.errors import ChatbotError, error_for_code

log = logging.getLogger("chatbot.cluster")

Request = dict[str, Any]
Answer = dict[str, Any]


class NotHolder(Exception):
    """The asked worker no longer holds the session (it evicted or handed it over)."""


class WorkerGone(Exception):
    """The asked worker did not take the request: its connection is gone."""


NOT_HOLDER = "not_holder"


class Rpc:
    """Asks other workers, and answers their requests with `serve`."""

    def __init__(
        self,
        link: Link,
        keys: Keys,
        me: str,
        serve: Callable[[Request], Awaitable[Answer]],
        timeout: float,
    ) -> None:
        self.link = link
        self.keys = keys
        self.me = me
        self.serve = serve
        self.timeout = timeout
        self._waiting: dict[str, asyncio.Future[Answer]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, worker: str, request: Request) -> Answer:
        """Run `request` on `worker` and return its answer (or raise its error)."""
        request_id = secrets.token_hex(8)
        answer = self._waiting[request_id] = asyncio.get_running_loop().create_future()
        payload = orjson.dumps({"k": "ask", "id": request_id, "from": self.me, **request})
        try:
            received = await self.link.call(
                self.link.redis.publish(self.keys.inbox(worker), payload)
            )
            if not received:
                raise WorkerGone(worker)
            try:
                return await asyncio.wait_for(answer, self.timeout)
            except TimeoutError:
                raise WorkerGone(worker) from None
        finally:
            self._waiting.pop(request_id, None)

    def received(self, payload: bytes) -> None:
        """A message in this worker's inbox: a request to serve or an answer to wait on."""
        message = orjson.loads(payload)
        if message["k"] == "ask":
            task = asyncio.create_task(self._answer(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        waiter = self._waiting.get(message["id"])
        if waiter is None or waiter.done():
            return
        error = message.get("error")
        if error is None:
            waiter.set_result(message["ok"])
        elif error["code"] == NOT_HOLDER:
            waiter.set_exception(NotHolder())
        else:
            waiter.set_exception(
                error_for_code(error["code"], error["message"], error.get("retry_after"))
            )

    async def _answer(self, request: Request) -> None:
        reply: dict[str, Any] = {"k": "re", "id": request["id"]}
        try:
            reply["ok"] = await self.serve(request)
        except NotHolder:
            reply["error"] = {"code": NOT_HOLDER, "message": ""}
        except ChatbotError as error:
            reply["error"] = {
                "code": error.code,
                "message": error.message,
                "retry_after": error.retry_after,
            }
        except Exception:
            log.exception("request failed", extra={"op": request.get("op")})
            reply["error"] = {"code": "backend_unavailable", "message": "The worker failed."}
        with contextlib.suppress(ChatbotError):  # Redis is away: the asker times out, 503
            await self.link.call(
                self.link.redis.publish(self.keys.inbox(request["from"]), orjson.dumps(reply))
            )
