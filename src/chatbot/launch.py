"""`chatbot cluster`: the whole cluster on one machine, with one command.

Cluster mode takes three kinds of process: Redis, several workers, and an HTTP load
balancer in front of them. Someone who wants to see it work should not have to set up
each by hand, so this starts a private `redis-server` (no persistence, loopback only), N
`chatbot serve` workers on ports of their own with REDIS_URL pointing at it, and nginx as
a round-robin proxy on one address, from Debian's binaries (`make run-cluster` installs
them). Each piece is polled until it answers, within a deadline. Ctrl+C or SIGTERM stops
nginx, then the workers, then Redis, and removes the temporary folder; a worker that dies
meanwhile is started again, so failover can be watched by killing one.

It shows the cluster and serves as a test bed; it does not supervise production. The
nginx configuration is the one docs/DEPLOY.md shows (`nginx_config`), and the tests run
nginx with it too.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

NGINX = "/usr/sbin/nginx"
REDIS_SERVER = "/usr/bin/redis-server"
MISSING = "chatbot: {name} is not installed; run `make run-cluster`, which installs it"

# Deadlines for each piece to answer (a worker imports the whole app, several at once).
REDIS_READY_SECONDS = 10.0
WORKER_READY_SECONDS = 120.0
NGINX_READY_SECONDS = 10.0
POLL_SECONDS = 0.1
WATCH_SECONDS = 1.0
STOP_SECONDS = 15.0

PR_SET_PDEATHSIG = 1
# Health checks go straight to the loopback address, whatever http_proxy says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def nginx_config(
    host: str,
    port: int,
    upstream_ports: Sequence[int],
    prefix: Path,
    *,
    as_root: bool | None = None,
) -> str:
    """nginx as a round-robin, SSE-safe proxy on host:port to workers on 127.0.0.1."""
    if as_root is None:
        as_root = os.geteuid() == 0
    # As root with no `user`, nginx's workers would run as nobody, who cannot enter a
    # private folder; as anyone else, `user` is ignored with a warning.
    user = "user root;\n" if as_root else ""
    servers = "".join(f"        server 127.0.0.1:{upstream};\n" for upstream in upstream_ports)
    return f"""\
# nginx in front of the chatbot workers: round robin, no stickiness, SSE unbuffered.
# Rendered by chatbot.launch.nginx_config; run with
#   nginx -p {prefix} -e {prefix}/error.log -c {prefix}/nginx.conf -g 'daemon off;'
{user}# One process, so round robin alternates strictly (each process keeps its own turn).
worker_processes 1;
worker_rlimit_nofile 16384;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    # A proxied stream takes two connections: about 4,000 open streams.
    worker_connections 8192;
}}

http {{
    log_format upstream '$remote_addr [$time_local] "$request" $status '
                        '$body_bytes_sent upstream=$upstream_addr $request_time';
    access_log {prefix}/access.log upstream;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    upstream chatbot {{
{servers}        keepalive 64;
    }}

    server {{
        listen {_netloc(host, port)};

        location / {{
            proxy_pass http://chatbot;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # Server-Sent Events: pass each event on as it comes; keep quiet streams open.
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
        }}
    }}
}}
"""


def nginx_command(prefix: Path, binary: str = NGINX) -> list[str]:
    """The command line that runs nginx in the foreground on `prefix`/nginx.conf."""
    return [
        binary,
        "-p",
        str(prefix),
        "-e",
        str(prefix / "error.log"),
        "-c",
        str(prefix / "nginx.conf"),
        "-g",
        "daemon off;",
    ]


def run(workers: int, host: str, port: int, database_url: str) -> int:
    """Serve the cluster on host:port until Ctrl+C or SIGTERM; returns the exit code."""
    if workers < 1:
        print("chatbot: --workers must be at least 1", file=sys.stderr)
        return 2
    redis_server = _find("redis-server", REDIS_SERVER)
    nginx = _find("nginx", NGINX)
    if redis_server is None or nginx is None:
        name = "redis-server" if redis_server is None else "nginx"
        print(MISSING.format(name=name), file=sys.stderr)
        return 1
    launcher = _Launcher(workers, host, port, redis_server, nginx)
    return launcher.run(database_url)


def _find(name: str, debian_path: str) -> str | None:
    if os.access(debian_path, os.X_OK):
        return debian_path
    return shutil.which(name)


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc}"))


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _health_answers(url: str) -> bool:
    try:
        with _OPENER.open(f"{url}/health", timeout=2) as response:
            body: bytes = response.read()
            return response.status == 200 and body.strip() == b"OK"
    except (OSError, http.client.HTTPException):
        return False


def _child_setup() -> Callable[[], None] | None:
    """What a child runs before exec: get SIGTERM when the launcher dies (Linux only).

    A launcher killed with SIGKILL then leaves no Redis, worker or nginx behind.
    """
    if sys.platform != "linux":
        return None
    prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def setup() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the launcher died before the line above
            os._exit(1)

    return setup


class LaunchError(Exception):
    """A piece of the cluster did not start; the message says which and why."""


class _Stopped(Exception):
    """Ctrl+C or SIGTERM arrived while the cluster was starting."""


@dataclass
class _Child:
    """One process of the cluster, in a session of its own (Ctrl+C reaches only the launcher)."""

    name: str
    command: list[str]
    env: dict[str, str] | None = None
    output: Path | None = None  # None: the launcher's own stdout and stderr
    setup: Callable[[], None] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        with contextlib.ExitStack() as files:
            out = None if self.output is None else files.enter_context(self.output.open("ab"))
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=None if out is None else subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self.setup,
            )

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self, seconds: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def redis_command(binary: str, port: int, directory: Path) -> list[str]:
    """A private, throwaway redis-server on 127.0.0.1: no persistence, files in `directory`."""
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        str(directory),
    ]


class _Launcher:
    """The cluster's processes, started in order and stopped in reverse."""

    def __init__(self, workers: int, host: str, port: int, redis_server: str, nginx: str) -> None:
        self.host = host
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="chatbot-cluster-"))
        self.stopping = threading.Event()
        setup = _child_setup()
        self.redis_port = _free_port()
        self.redis = _Child(
            "redis-server",
            redis_command(redis_server, self.redis_port, self.dir),
            output=self.dir / "redis.log",
            setup=setup,
        )
        env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0"}
        self.worker_ports = [_free_port() for _ in range(workers)]
        serve = [sys.executable, "-m", "chatbot", "serve", "--host", "127.0.0.1"]
        self.workers = [
            _Child(
                f"worker {index}/{workers}",
                [*serve, "--port", str(worker_port)],
                env=env,
                setup=setup,
            )
            for index, worker_port in enumerate(self.worker_ports, start=1)
        ]
        self.nginx = _Child(
            "nginx", nginx_command(self.dir, nginx), output=self.dir / "nginx.out", setup=setup
        )

    def run(self, database_url: str) -> int:
        """Start everything, watch it, stop it; returns the exit code."""
        stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.signal(sig, self._stop) for sig in stops}
        code = 0
        try:
            _say(f"[cluster] config and logs in {self.dir} (removed on exit)")
            _say(f"[cluster] database {_without_password(database_url)}")
            self._start()
            _say(f"Serving the cluster at http://{_netloc(self.host, self.port)} (Ctrl+C stops)")
            code = self._watch()
        except _Stopped:
            pass
        except LaunchError as error:
            print(f"chatbot: {error}", file=sys.stderr, flush=True)
            code = 1
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()

    def _start(self) -> None:
        self.redis.start()
        self._await("redis-server", partial(_redis_answers, self.redis_port), [self.redis])
        _say(f"[cluster] redis on 127.0.0.1:{self.redis_port}")
        for worker in self.workers:  # all at once: each takes seconds to import the app
            worker.start()
        for worker, worker_port in zip(self.workers, self.worker_ports, strict=True):
            url = f"http://127.0.0.1:{worker_port}"
            self._await(worker.name, partial(_health_answers, url), [self.redis, worker])
            _say(f"[cluster] {worker.name} on {url}")
        config = nginx_config(self.host, self.port, self.worker_ports, self.dir)
        (self.dir / "nginx.conf").write_text(config)
        self.nginx.start()
        try:
            url = f"http://{_netloc(_reachable(self.host), self.port)}"
            self._await("nginx", partial(_health_answers, url), [self.nginx])
        except LaunchError as error:
            raise LaunchError(f"{error}\n{_tail(self.dir / 'error.log')}") from None
        _say(f"[cluster] nginx on {self.host}:{self.port}, round robin over {len(self.workers)}")

    def _await(self, name: str, ready: Callable[[], bool], children: Sequence[_Child]) -> None:
        """Poll `ready` until it holds; fail when a child exits or the deadline passes."""
        seconds = {"redis-server": REDIS_READY_SECONDS, "nginx": NGINX_READY_SECONDS}.get(
            name, WORKER_READY_SECONDS
        )
        deadline = time.monotonic() + seconds
        while not ready():
            if self.stopping.is_set():
                raise _Stopped
            for child in children:
                code = child.exit_code()
                if code is not None:
                    raise LaunchError(f"{child.name} exited ({code}) before {name} answered")
            if time.monotonic() > deadline:
                raise LaunchError(f"{name} did not answer within {seconds:.0f} s")
            self.stopping.wait(POLL_SECONDS)

    def _watch(self) -> int:
        """Until told to stop: start again a worker that died; give up if Redis or nginx did."""
        while not self.stopping.wait(WATCH_SECONDS):
            for child in (self.redis, self.nginx):
                code = child.exit_code()
                if code is not None:
                    print(f"chatbot: {child.name} exited ({code})", file=sys.stderr, flush=True)
                    return 1
            for worker in self.workers:
                code = worker.exit_code()
                if code is not None and not self.stopping.is_set():
                    _say(f"[cluster] {worker.name} exited ({code}); starting it again")
                    worker.start()
        return 0

    def _shutdown(self) -> None:
        """nginx first (no new requests), then the workers (they save), then Redis."""
        for group in ([self.nginx], self.workers, [self.redis]):
            for child in group:
                child.terminate()
            for child in group:
                child.wait(STOP_SECONDS)
        shutil.rmtree(self.dir, ignore_errors=True)


def _reachable(host: str) -> str:
    """An address that reaches a server listening on `host` from this machine."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _say(line: str) -> None:
    print(f"==> {line}", flush=True)
