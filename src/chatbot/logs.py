"""Structured logging: one JSON object per line, never a full session id or a secret.

Every line names the process that wrote it (`worker`: host and pid), because several
servers may serve one database and their logs end up side by side.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

import orjson

from chatbot.model import iso_utc

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Render a record and its `extra=` fields as a JSON line."""

    def __init__(self, worker: str) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": iso_utc(record.created),
            "worker": self.worker,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str) -> None:
    """Send every logger (uvicorn's too) through the JSON formatter on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    # Made here, in the process that logs: a forked worker gets its own pid.
    handler.setFormatter(JsonFormatter(f"{socket.gethostname()}:{os.getpid()}"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
