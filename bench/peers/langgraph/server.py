"""Start and stop LangGraph's agent server (`langgraph dev`, in-memory) fully offline.

The peer runs from its own venv (`setup.sh` makes it) so LangGraph never enters the
project's environment. Every switch that would make the server talk to the outside is
turned off: LangSmith tracing (all four spellings langsmith and langgraph-api read),
the CLI's analytics ping, the API's PyPI version check, OpenTelemetry and metrics
export, and the keys that would start the metadata/licence beacons are removed. The
server is started in its own process group so that stopping it also stops anything it
forked (uvicorn runs in the CLI's process: one process, whose pid we pin and measure).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
LANGGRAPH = VENV / "bin" / "langgraph"

# What langsmith, langgraph-cli and langgraph-api read (checked in the installed sources).
OFFLINE_ENV = {
    "LANGSMITH_TRACING": "false",
    "LANGSMITH_TRACING_V2": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGCHAIN_TRACING": "false",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "OTEL_ENABLED": "false",
    "OTEL_SDK_DISABLED": "true",
    "LANGGRAPH_METRICS_ENABLED": "false",
    "PYTHONUNBUFFERED": "1",
}
# Any of these would make the server report to a remote endpoint.
REMOTE_KEYS = (
    "LANGSMITH_API_KEY",
    "LANGCHAIN_API_KEY",
    "LANGSMITH_CONTROL_PLANE_API_KEY",
    "LANGGRAPH_CLOUD_LICENSE_KEY",
    "LANGSMITH_ENDPOINT",
    "LANGCHAIN_ENDPOINT",
    "LSD_DD_API_KEY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral port nobody listens on now (`langgraph dev` would silently pick
    another one if ours were taken, so we choose and check it ourselves)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def version() -> str:
    """The installed langgraph-api/langgraph-cli/langgraph versions, from the venv's metadata."""
    site = next((VENV / "lib").glob("python*/site-packages"))
    found = {}
    for name in ("langgraph_api", "langgraph_cli", "langgraph", "langgraph_runtime_inmem"):
        for info in site.glob(f"{name}-*.dist-info"):
            found[name.replace("_", "-")] = info.name.removesuffix(".dist-info").split("-", 1)[1]
    return " ".join(f"{name}=={ver}" for name, ver in sorted(found.items()))


_RUNNING: set[LangGraphServer] = set()


@atexit.register
def _stop_all() -> None:
    """Never leave a server behind, whatever ends the driver."""
    for server in list(_RUNNING):
        server.stop()


class LangGraphServer:
    """One `langgraph dev` process; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        jobs: int,
        port: int | None = None,
        host: str = "127.0.0.1",
        tokens_per_second: float = 20.0,
        reply: str = "You said: {message}",
        log: Path | None = None,
        core: int | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.jobs = jobs
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in REMOTE_KEYS},
            **OFFLINE_ENV,
            "SCRIPTED_TOKENS_PER_SECOND": str(tokens_per_second),
            "SCRIPTED_REPLY": reply,
            # graph.py replays bench/baselines/script.py, the token script of every server.
            "PYTHONPATH": str(HERE.parents[2]),
        }
        self.log = log or VENV / "server.log"
        self.core = core
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self, timeout: float = 90.0) -> int:
        """Start the server and wait until `GET /ok` answers; returns its pid."""
        if not LANGGRAPH.exists():
            raise RuntimeError(f"{LANGGRAPH} is missing: run bench/peers/langgraph/setup.sh")
        command = [
            str(LANGGRAPH),
            "dev",
            "--no-browser",
            "--no-reload",
            "--n-jobs-per-worker",
            str(self.jobs),
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        # The dev server pickles its state into ./.langgraph_api every 10 s and loads it at
        # start: begin every server empty, as a benchmark point must.
        shutil.rmtree(HERE / ".langgraph_api", ignore_errors=True)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=HERE,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._pin if self.core is not None else None,
            )
        _RUNNING.add(self)
        deadline = time.monotonic() + timeout
        url = f"http://{self.host}:{self.port}/ok"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"langgraph dev exited: see {self.log}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return self.process.pid
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(
            f"langgraph dev did not serve /ok within {timeout:.0f} s: see {self.log}"
        )

    def _pin(self) -> None:
        """In the child before exec: every thread the server makes inherits this core."""
        assert self.core is not None
        if self.core < (os.cpu_count() or 1):
            os.sched_setaffinity(0, {self.core})

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT the process group (uvicorn's clean shutdown), then SIGKILL if it lingers."""
        process, self.process = self.process, None
        _RUNNING.discard(self)
        if process is None:
            return
        try:
            self._end(process, timeout)
        finally:
            shutil.rmtree(HERE / ".langgraph_api", ignore_errors=True)

    @staticmethod
    def _end(process: subprocess.Popen[bytes], timeout: float) -> None:
        if process.poll() is not None:
            return
        group = os.getpgid(process.pid)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=timeout if sig != signal.SIGKILL else None)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> LangGraphServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
