"""Benchmark LangGraph's agent server (`langgraph dev`, in-memory) under our server's load.

Users who want "many people chat with an agent at once" often reach for LangGraph's agent
server, so our report puts it beside ours: the same scripted token stream (see graph.py),
the same raw-socket load generator (bench/loadgen.py), the same pinning (server on core 0,
this driver on core 1). Run it with the project's venv; the server runs from the peer's
own venv, made by setup.sh:

    /work/main/.venv/bin/python bench/peers/langgraph/run.py --out RESULT.json [--quick]

What is measured, and through which LangGraph API:

- fan-out: S threads (`POST /threads`), then S runs started over 1 s, each streamed on
  its own connection by `POST /threads/{thread_id}/runs/stream` with
  `stream_mode=["messages-tuple"]` (one SSE event per model token). A fresh server with
  `--n-jobs-per-worker S` per point, so every run can execute at once. Delivered
  tokens/s, token latency (from the stamps), server CPU and RSS are read over the window
  in which every stream is live: from the moment all have a token to the moment the
  first one has all of them.
- first token: one run on an idle server, request sent to first non-empty token event.
- cancel: `POST /threads/{thread_id}/runs/{run_id}/cancel` (action=interrupt, the
  default) while the run streams; time from sending it to the end of the run's stream.
- resume: a run made with `stream_resumable: true`; the client hangs up, misses some
  events, and rejoins with `GET /threads/{thread_id}/runs/{run_id}/stream` and
  `Last-Event-ID`; time from the rejoin request to the first replayed event, and whether
  the replay had no gap and no duplicate.
- idle streams: `GET /threads/{thread_id}/stream` (the thread's event stream, the
  equivalent of our per-session stream) on N threads with no run; RSS per stream and the
  CPU the server spends while they sit idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402
from bench.loadgen import Latencies, Stream, now_us  # noqa: E402
from bench.peers.langgraph.server import LangGraphServer, version  # noqa: E402

HOST = "127.0.0.1"
SERVER_CORE = 0
DRIVER_CORE = 1
ASSISTANT = "chat"  # the graph id in langgraph.json; the server makes a default assistant
STAGGER_S = 1.0


def log(message: str) -> None:
    """One progress line, flushed at once."""
    print(f"[langgraph] {message}", flush=True)


def stamped_message(tokens: int) -> str:
    """A user message whose echo is `tokens` stamped tokens (plus "You said:")."""
    return " ".join(["{now}"] * tokens)


def run_body(message: str, **extra: Any) -> bytes:
    payload = {
        "assistant_id": ASSISTANT,
        "input": {"messages": [{"role": "user", "content": message}]},
        "stream_mode": ["messages-tuple"],
        **extra,
    }
    return json.dumps(payload).encode()


def run_id_of(stream: Stream) -> str:
    """The run id, from the `Content-Location: /threads/{tid}/runs/{rid}` response header."""
    return stream.headers["content-location"].rsplit("/", 1)[1]


def median_ms(samples_us: list[int]) -> float:
    return round(statistics.median(samples_us) / 1000, 3) if samples_us else float("nan")


class Api:
    """Plain requests on one keep-alive connection (thread creation, cancel).

    uvicorn drops a keep-alive connection after 5 idle seconds, so a request that finds
    it closed opens a new one and is sent again (both are idempotent enough here: a
    second thread or a second cancel changes nothing we measure).
    """

    def __init__(self, port: int, connection: loadgen.Connection) -> None:
        self.port = port
        self.connection = connection

    @classmethod
    async def open(cls, port: int) -> Api:
        return cls(port, await loadgen.Connection.open(HOST, port))

    async def request(self, method: str, path: str, json: Any = None) -> loadgen.Response:
        try:
            return await self.connection.request(method, path, json=json)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.connection.close()
            self.connection = await loadgen.Connection.open(HOST, self.port)
            return await self.connection.request(method, path, json=json)

    async def new_thread(self) -> str:
        response = await self.request("POST", "/threads", json={})
        if response.status != 200:
            raise RuntimeError(f"POST /threads: {response.status} {response.body[:200]!r}")
        return str(response.json()["thread_id"])

    async def new_threads(self, count: int) -> list[str]:
        return [await self.new_thread() for _ in range(count)]

    def close(self) -> None:
        self.connection.close()


def pin_server(pid: int, core: int) -> None:
    """Pin every thread of the server (uvicorn's loop, the run loops, the flush thread)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        loadgen.pin(int(task), core)


def core_busy(core: int) -> tuple[int, int]:
    """(busy, total) clock ticks of one core so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith(f"cpu{core} "):
                ticks = [int(value) for value in line.split()[1:]]
                return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # less idle and iowait
    return 0, 0


@dataclass
class Snapshot:
    at: float
    tokens: int
    samples: int
    cpu: float
    core: tuple[int, int]
    driver: float


def own_cpu() -> float:
    """CPU seconds this driver has used (to show it is not the bottleneck)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def fanout(server: LangGraphServer, sessions: int, tps: float, tokens: int) -> dict[str, Any]:
    """S concurrent runs of `tokens` stamped tokens each; rates over the all-live window."""
    api = await Api.open(server.port)
    threads = await api.new_threads(sessions)
    api.close()
    latencies = Latencies()
    streams: list[Stream] = []
    failures: list[str] = []
    body = run_body(stamped_message(tokens))

    async def start(index: int, thread_id: str) -> None:
        await asyncio.sleep(index * STAGGER_S / sessions)
        try:
            stream = await asyncio.wait_for(
                loadgen.open_stream(
                    HOST, server.port, "POST", f"/threads/{thread_id}/runs/stream",
                    body=body, latencies=latencies,
                ),
                30,
            )  # fmt: skip
        except (OSError, TimeoutError) as error:
            failures.append(repr(error))
            return
        if stream.status != 200:
            failures.append(f"status {stream.status}")
        streams.append(stream)

    def snapshot() -> Snapshot:
        return Snapshot(
            time.monotonic(),
            sum(stream.tokens for stream in streams),
            len(latencies.samples),
            loadgen.proc_cpu(server.pid),
            core_busy(SERVER_CORE),
            own_cpu(),
        )

    began = time.monotonic()
    starters = [asyncio.create_task(start(i, tid)) for i, tid in enumerate(threads)]
    deadline = began + STAGGER_S + 5 + 4 * tokens / tps
    opened_at: Snapshot | None = None  # every stream's request is in
    first: Snapshot | None = None  # every stream has a token: all live
    last: Snapshot | None = None  # some stream has all its tokens
    while time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        if opened_at is None and len(streams) + len(failures) == sessions:
            opened_at = snapshot()
        if first is None and opened_at is not None and all(s.tokens for s in streams):
            first = snapshot()
        if first is not None and any(s.tokens >= tokens or s.done.done() for s in streams):
            last = snapshot()
            break
    # Never all live at once (a stream failed or never got a token): take what there is.
    first = first or opened_at or snapshot()
    last = last or snapshot()
    rss = loadgen.proc_rss(server.pid)
    await asyncio.gather(*starters)
    remaining = max(1.0, deadline - time.monotonic())
    pending = [stream.done for stream in streams if not stream.done.done()]
    if pending:
        await asyncio.wait(pending, timeout=remaining)
    for stream in streams:
        stream.close()
    window = max(last.at - first.at, 1e-9)
    window_latencies = Latencies(latencies.samples[first.samples : last.samples])
    complete = sum(stream.tokens == tokens for stream in streams)
    cpu = (last.cpu - first.cpu) / window
    ticks = last.core[1] - first.core[1]
    core = (last.core[0] - first.core[0]) / ticks if ticks else float("nan")
    return {
        "sessions": sessions,
        "tps": tps,
        "tokens_per_reply": tokens,
        "offered_tokens_per_s": round(sessions * tps, 1),
        "tokens_per_s": round((last.tokens - first.tokens) / window, 1),
        "p50_ms": round(window_latencies.p50_ms(), 2),
        "p99_ms": round(window_latencies.p99_ms(), 2),
        "p99_all_ms": round(latencies.p99_ms(), 2),
        "cpu": round(cpu, 3),
        # How busy the server's core was: well above `cpu` means another process shared
        # it during the window, and the point is not to be trusted.
        "core_busy": round(core, 3),
        "contended": core - cpu > 0.15,
        "driver_cpu": round((last.driver - first.driver) / window, 3),
        "rss_mb": round(rss / 2**20, 1),
        "window_s": round(window, 2),
        "complete_streams": complete,
        "failures": failures[:5],
    }


def first_token_watcher() -> tuple[Callable[[Stream, bytes], None], asyncio.Future[int]]:
    """An on_event hook resolving to now_us() at the first token event with text in it."""
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    marker = b'"content":"'

    def on_event(stream: Stream, event: bytes) -> None:
        if future.done() or not event.startswith(b"event: messages"):
            return
        at = event.find(marker)
        if at >= 0 and event[at + len(marker) : at + len(marker) + 1] != b'"':
            future.set_result(now_us())

    return on_event, future


def tokens_watcher(count: int) -> tuple[Callable[[Stream, bytes], None], asyncio.Future[None]]:
    """An on_event hook resolving once the stream has counted `count` stamped tokens."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_event(stream: Stream, event: bytes) -> None:
        if not future.done() and stream.tokens >= count:
            future.set_result(None)

    return on_event, future


def replay_counter(since_us: int) -> tuple[Callable[[Stream, bytes], None], list[int]]:
    """An on_event hook counting stamped tokens emitted before `since_us` (the replayed ones)."""
    count = [0]

    def on_event(stream: Stream, event: bytes) -> None:
        count[0] += sum(int(m.group()) < since_us for m in loadgen.STAMP.finditer(event))

    return on_event, count


async def first_token(server: LangGraphServer, samples: int) -> dict[str, Any]:
    """Request to first token, one run at a time on an otherwise idle server."""
    api = await Api.open(server.port)
    times: list[int] = []
    for _ in range(samples):
        thread_id = await api.new_thread()
        # The in-memory queue polls every 0.5 s: start at a random phase of that poll.
        await asyncio.sleep(random.uniform(0, 0.5))
        on_event, arrived = first_token_watcher()
        sent = now_us()
        stream = await loadgen.open_stream(
            HOST, server.port, "POST", f"/threads/{thread_id}/runs/stream",
            body=run_body("hi"), on_event=on_event,
        )  # fmt: skip
        times.append(await asyncio.wait_for(arrived, 10) - sent)
        await asyncio.wait_for(stream.done, 10)
    api.close()
    return {
        "first_token_ms": median_ms(times),
        "first_token_min_ms": round(min(times) / 1000, 3),
        "first_token_max_ms": round(max(times) / 1000, 3),
        "first_token_samples": len(times),
    }


async def cancel(server: LangGraphServer, samples: int) -> dict[str, Any]:
    """From sending the cancel request to the end of the streaming run's response."""
    api = await Api.open(server.port)
    times: list[int] = []
    statuses: set[int] = set()
    for _ in range(samples):
        thread_id = await api.new_thread()
        on_event, streaming = tokens_watcher(3)
        stream = await loadgen.open_stream(
            HOST, server.port, "POST", f"/threads/{thread_id}/runs/stream",
            body=run_body(stamped_message(200)), on_event=on_event,
        )  # fmt: skip
        await asyncio.wait_for(streaming, 10)
        path = f"/threads/{thread_id}/runs/{run_id_of(stream)}/cancel"
        sent = now_us()
        request = asyncio.create_task(api.request("POST", path))
        await asyncio.wait_for(stream.done, 10)
        times.append(now_us() - sent)
        statuses.add((await request).status)
        stream.close()
    api.close()
    return {
        "cancel_ms": median_ms(times),
        "cancel_samples": len(times),
        "cancel_status": sorted(statuses),
    }


async def resume(server: LangGraphServer, samples: int, miss_s: float) -> dict[str, Any]:
    """Hang up a resumable run's stream, miss events, rejoin with Last-Event-ID."""
    api = await Api.open(server.port)
    times: list[int] = []
    missed: list[int] = []
    exact = 0
    total = 40  # 5 read, ~miss_s * T missed, the rest live: short, the run must finish
    for _ in range(samples):
        thread_id = await api.new_thread()
        on_event, streaming = tokens_watcher(5)
        first = await loadgen.open_stream(
            HOST, server.port, "POST", f"/threads/{thread_id}/runs/stream",
            body=run_body(stamped_message(total), stream_resumable=True), on_event=on_event,
        )  # fmt: skip
        await asyncio.wait_for(streaming, 10)
        first.close()
        seen, last_id = first.tokens, first.last_event_id
        if last_id is None:
            raise RuntimeError("a resumable run's stream carried no SSE ids")
        await asyncio.sleep(miss_s)
        path = f"/threads/{thread_id}/runs/{run_id_of(first)}/stream"
        sent = now_us()
        on_event, replayed = replay_counter(sent)
        rejoined = await loadgen.open_stream(
            HOST, server.port, "GET", path,
            headers={"Last-Event-ID": last_id}, on_event=on_event,
        )  # fmt: skip
        times.append(await asyncio.wait_for(rejoined.first_event, 10) - sent)
        await asyncio.wait_for(rejoined.done, 30)
        missed.append(replayed[0])
        exact += seen + rejoined.tokens == total
    api.close()
    return {
        "resume_ms": median_ms(times),
        "resume_samples": len(times),
        "resume_missed_events": int(statistics.median(missed)),
        "resume_exact": exact == samples,
    }


async def idle_streams(server: LangGraphServer, count: int) -> dict[str, Any]:
    """N idle `GET /threads/{id}/stream` streams: RSS each, and CPU while they sit."""
    api = await Api.open(server.port)
    threads = await api.new_threads(count)
    api.close()
    await asyncio.sleep(1.0)
    rss_before = loadgen.proc_rss(server.pid)
    cpu_before, at_before = loadgen.proc_cpu(server.pid), time.monotonic()
    idle_cpu_before = cpu_before
    await asyncio.sleep(2.0)
    idle_cpu_base = (loadgen.proc_cpu(server.pid) - idle_cpu_before) / (
        time.monotonic() - at_before
    )
    streams: list[Stream] = []
    for start in range(0, count, 50):
        batch = threads[start : start + 50]
        streams += await asyncio.gather(
            *(
                loadgen.open_stream(HOST, server.port, "GET", f"/threads/{tid}/stream")
                for tid in batch
            )
        )
    bad = sum(stream.status != 200 for stream in streams)
    await asyncio.sleep(1.0)
    cpu_start, at_start = loadgen.proc_cpu(server.pid), time.monotonic()
    core_start = core_busy(SERVER_CORE)
    await asyncio.sleep(3.0)
    idle_cpu = (loadgen.proc_cpu(server.pid) - cpu_start) / (time.monotonic() - at_start)
    core_end = core_busy(SERVER_CORE)
    core = (core_end[0] - core_start[0]) / max(1, core_end[1] - core_start[1])
    rss_after = loadgen.proc_rss(server.pid)
    ended = sum(stream.done.done() for stream in streams)
    for stream in streams:
        stream.close()
    await asyncio.sleep(0.5)
    return {
        "idle_streams": count,
        "idle_stream_kib": round((rss_after - rss_before) / count / 1024, 1),
        "idle_cpu": round(idle_cpu, 3),
        "idle_cpu_no_streams": round(idle_cpu_base, 3),
        "idle_stream_endpoint": "GET /threads/{thread_id}/stream",
        "idle_streams_failed": bad + ended,
        "idle_core_busy": round(core, 3),
    }


@dataclass
class Plan:
    sweep: tuple[int, ...]
    tps: float
    tokens: int
    first_token_samples: int
    cancel_samples: int
    resume_samples: int
    resume_miss_s: float
    idle: int


FULL = Plan((10, 50, 100, 200), 20.0, 200, 20, 20, 10, 1.0, 500)
QUICK = Plan((10, 50), 20.0, 60, 8, 8, 4, 0.5, 100)


async def wait_quiet(limit_s: float, threshold: float = 0.10) -> bool:
    """Wait (up to limit_s) until the machine is idle, so other work does not share our
    cores; on a shared machine a point measured beside another benchmark is worthless."""
    deadline = time.monotonic() + limit_s
    told = False
    while True:
        before = [core_busy(core) for core in (SERVER_CORE, DRIVER_CORE)]
        await asyncio.sleep(1.0)
        after = [core_busy(core) for core in (SERVER_CORE, DRIVER_CORE)]
        busy = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
        total = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
        if total and busy / total < threshold:
            return True
        if time.monotonic() > deadline:
            log(f"the machine is still {busy / total:.0%} busy: measuring anyway")
            return False
        if not told:
            log(f"waiting for the machine to go quiet ({busy / total:.0%} busy)")
            told = True


async def main_async(
    plan: Plan, sweep: tuple[int, ...], quiet_s: float, retries: int
) -> dict[str, Any]:
    loadgen.raise_open_files_limit()  # before starting servers: they inherit it
    loadgen.pin(0, DRIVER_CORE)
    result: dict[str, Any] = {
        "name": "langgraph",
        "version": version(),
        "mode": "langgraph dev --no-browser --no-reload (in-memory runtime)",
        "stream_mode": "messages-tuple",
        "cores": {"server": SERVER_CORE, "driver": DRIVER_CORE},
        "load_generator": "bench/loadgen.py on the stdlib asyncio loop",
        "fanout": [],
    }
    for sessions in sweep:
        for attempt in range(1, retries + 2):
            await wait_quiet(quiet_s)
            server = LangGraphServer(jobs=sessions, tokens_per_second=plan.tps, core=SERVER_CORE)
            server.start()
            pin_server(server.pid, SERVER_CORE)
            try:
                point = await fanout(server, sessions, plan.tps, plan.tokens)
            finally:
                server.stop()
            point["attempts"] = attempt
            log(
                f"fan-out S={sessions} T={plan.tps:g}: {point['tokens_per_s']:.0f} tokens/s "
                f"of {point['offered_tokens_per_s']:.0f}, p50 {point['p50_ms']:.1f} ms, "
                f"p99 {point['p99_ms']:.1f} ms, cpu {point['cpu']:.2f}, "
                f"rss {point['rss_mb']:.0f} MB, {point['complete_streams']}/{sessions} complete"
                + (
                    f" (CONTENDED: core {SERVER_CORE} was {point['core_busy']:.0%} busy)"
                    if point["contended"]
                    else ""
                )
            )
            if not point["contended"]:
                break
        result["fanout"].append(point)
    await wait_quiet(quiet_s)
    server = LangGraphServer(jobs=10, tokens_per_second=plan.tps, core=SERVER_CORE)
    started = time.monotonic()
    server.start()
    result["startup_s"] = round(time.monotonic() - started, 2)
    pin_server(server.pid, SERVER_CORE)
    try:
        result |= await first_token(server, plan.first_token_samples)
        log(f"first token on an idle server: {result['first_token_ms']:.1f} ms (median)")
        result |= await cancel(server, plan.cancel_samples)
        log(f"cancel to end of stream: {result['cancel_ms']:.2f} ms (median)")
        result |= await resume(server, plan.resume_samples, plan.resume_miss_s)
        log(
            f"resume after ~{result['resume_missed_events']} missed events: "
            f"{result['resume_ms']:.2f} ms to first replayed event, exact={result['resume_exact']}"
        )
        result |= await idle_streams(server, plan.idle)
        log(
            f"{plan.idle} idle thread streams: {result['idle_stream_kib']:.1f} KiB each, "
            f"server cpu {result['idle_cpu']:.2f} while idle"
        )
    finally:
        server.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    parser.add_argument(
        "--sessions", type=int, nargs="*", help="fan-out sweep to run instead of the plan's"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="seconds to wait for an idle machine before each measurement (default 120)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="times to measure a fan-out point again when another process shared its core",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    sweep = tuple(args.sessions) if args.sessions is not None else plan.sweep
    # A kill (timeout, Ctrl-C) still stops the servers: server.py stops them at exit.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    began = time.monotonic()
    # The stdlib loop, not uvloop: loadgen's Stream asserts an asyncio.Transport, which
    # uvloop's transports are not.
    result = asyncio.run(main_async(plan, sweep, args.quiet_wait, args.retries))
    result["quick"] = args.quick
    result["elapsed_s"] = round(time.monotonic() - began, 1)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {args.out} in {result['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
