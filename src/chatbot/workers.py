"""`chatbot serve --workers N`: N full servers sharing one listening socket.

The parent binds the port once and starts each worker as a fresh (spawned) process that
serves on the inherited socket; the kernel spreads new connections across them. With
REDIS_URL they form one cluster, so no request needs to reach a particular worker. A
worker that dies is replaced; SIGTERM or Ctrl+C stops them all.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

log = logging.getLogger("chatbot")
RESTART_PAUSE_SECONDS = 1.0


class Supervisor:
    """Starts N worker processes on one socket, replaces the ones that die, stops them all."""

    def __init__(
        self, workers: int, sock: socket.socket, target: Callable[[socket.socket], None]
    ) -> None:
        self.workers = workers
        self.sock = sock
        self.target = target
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[BaseProcess] = []
        self.stopping = threading.Event()

    def run(self) -> int:
        """Serve until told to stop; returns the exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        self.processes = [self._spawn() for _ in range(self.workers)]
        log.info("workers started", extra={"workers": self.workers})
        while not self.stopping.wait(RESTART_PAUSE_SECONDS):
            for index, process in enumerate(self.processes):
                if not process.is_alive() and not self.stopping.is_set():
                    log.warning(
                        "worker died; starting another",
                        extra={"pid": process.pid, "exitcode": process.exitcode},
                    )
                    self.processes[index] = self._spawn()
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.join(timeout=15)
            if process.is_alive():
                process.kill()
        return 0

    def _spawn(self) -> BaseProcess:
        process = self.context.Process(target=self.target, args=(self.sock,), daemon=False)
        process.start()
        return process

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()
