"""`python -m bench [--quick] [--only NAME,...]`: run the scenarios, write JSON, report.

Full size writes bench/results/*.json and docs/BENCHMARKS.md with its plots; `--quick`
runs every scenario small (about a minute each at most) into var/bench-quick/.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench import cluster, costs, fanout, idle, interrupt, resume, sessions, store, wire
from bench.flavors import CEILING, FASTAPI, OURS, OURS_PROBED, SEED
from bench.loadgen import pin, raise_open_files_limit
from bench.progress import step
from bench.report import write_report
from bench.target import CLIENT_CORE, ROOT

LANGGRAPH = ROOT / "bench" / "peers" / "langgraph"


def sizes(quick: bool) -> dict[str, Any]:
    """How big each scenario runs."""
    if quick:
        return {
            "idle": [300],
            "idle_quiet": 3.0,
            "idle_baselines": 200,
            "fanout_points": [(200, 20), (200, 60)],
            "fanout_seconds": 2.0,
            "fanout_probed_point": (200, 20),
            "fanout_baseline_points": {
                "raw_ceiling": [(200, 20)],
                "fastapi_sse": [(200, 20)],
                "seed_polling": [(200, 20)],
            },
            "first_token_repeats": 5,
            "cost_turns": 100,
            "cost_tokens": 2000,
            "sessions": 3000,
            "wire_history": [10, 100],
            "interrupt_repeats": 5,
            "resume_repeats": 3,
            "store_sessions": 200,
            "store_seconds": 3.0,
            "store_repeats": 1,
            "store_alone_seconds": 2.0,
            "cluster_points": [(200, 20)],
            "cluster_window": 2.0,
            "cluster_repeats": 1,
            "cluster_interrupt_repeats": 5,
            "cluster_resume_repeats": 5,
            "cluster_failover_repeats": 1,
            "cluster_batches": [1, 16],
            "cluster_ceiling_seconds": 1.5,
        }
    return {
        "idle": [1000, 5000, 10000],
        "idle_quiet": 32.0,  # two keep-alive rounds
        "idle_baselines": 1000,
        "fanout_points": [
            (100, 20),
            (500, 20),
            (1000, 20),
            (1000, 30),
            (2000, 20),
            (1000, 40),
            (1000, 50),
            (1000, 60),
        ],
        "fanout_seconds": 8.0,
        "fanout_probed_point": (1000, 20),
        "fanout_baseline_points": {
            "raw_ceiling": [(100, 20), (1000, 20), (1000, 60), (1000, 100)],
            "fastapi_sse": [(100, 20), (500, 20), (1000, 20)],
            "seed_polling": [(100, 20), (1000, 20)],
        },
        "first_token_repeats": 30,
        "cost_turns": 1000,
        "cost_tokens": 50_000,
        "sessions": 100_000,
        "wire_history": [10, 100, 1000],
        "interrupt_repeats": 30,
        "resume_repeats": 20,
        "store_sessions": 1000,
        "store_seconds": 6.0,  # with 3 repeats, the whole scenario fits in ~8 minutes
        "store_repeats": 3,  # alternating backends: a busy machine's drift falls on all
        "store_alone_seconds": 5.0,
        # The light point first: 1,000 x 20 tokens/s is past what one worker streams here.
        "cluster_points": [(200, 20), (1000, 20)],
        "cluster_window": 6.0,
        "cluster_repeats": 3,  # each mode's run kept is its median's: this machine drifts
        "cluster_interrupt_repeats": 30,
        "cluster_resume_repeats": 30,
        "cluster_failover_repeats": 3,
        "cluster_batches": [1, 4, 16, 64],
        "cluster_ceiling_seconds": 3.0,
    }


async def run_idle(size: dict[str, Any]) -> Any:
    results = []
    for count in size["idle"]:
        with step(f"idle streams: ours, {count:,} streams"):
            results.append(await idle.idle_streams(OURS, count, size["idle_quiet"]))
    for flavor in (CEILING, FASTAPI, SEED):
        with step(f"idle streams: {flavor.name}, {size['idle_baselines']:,} streams"):
            quiet = min(size["idle_quiet"], 16.0)
            results.append(await idle.idle_streams(flavor, size["idle_baselines"], quiet))
    return results


async def run_fanout(size: dict[str, Any]) -> Any:
    seconds = size["fanout_seconds"]
    results = await fanout.sweep(OURS, size["fanout_points"], seconds)
    sessions, tps = size["fanout_probed_point"]
    with step(f"fan-out, event loop timed: {sessions} sessions x {tps} tokens/s"):
        probed = await fanout.fanout_point(OURS_PROBED, sessions, tps, seconds)
    for flavor in (CEILING, FASTAPI, SEED):
        results += await fanout.sweep(flavor, size["fanout_baseline_points"][flavor.name], seconds)
    first = []
    for flavor in (OURS, CEILING, FASTAPI):
        with step(f"first token: {flavor.name}"):
            first.append(await fanout.first_token(flavor, size["first_token_repeats"]))
    return {"sweep": results, "first_token": first, "probed": probed}


async def run_sessions(size: dict[str, Any]) -> Any:
    with step(f"session cost: {size['sessions']:,} creates"):
        return await sessions.session_cost(size["sessions"])


async def run_wire(size: dict[str, Any]) -> Any:
    results = []
    for history in size["wire_history"]:
        with step(f"wire: history of {history} messages, ours (both streams) and original"):
            results += await wire.ours(history)
            results += await wire.original(history)
    return results


async def run_costs(size: dict[str, Any]) -> Any:
    with step(f"costs: {size['cost_turns']} turns and a {size['cost_tokens']:,}-token reply"):
        return await costs.costs(size["cost_turns"], size["cost_tokens"])


async def run_interrupt(size: dict[str, Any]) -> Any:
    with step(f"interrupt: {size['interrupt_repeats']} replies from the fake OpenAI server"):
        return await interrupt.interrupt(size["interrupt_repeats"])


async def run_resume(size: dict[str, Any]) -> Any:
    results = []
    for flavor in (OURS, FASTAPI, CEILING):
        with step(f"resume: {flavor.name}, 1,000 missed events"):
            results.append(await resume.resume(flavor, 1000, size["resume_repeats"]))
    return results


async def run_store(size: dict[str, Any]) -> Any:
    return await store.store_costs(
        size["store_sessions"],
        20,
        size["store_seconds"],
        size["store_repeats"],
        size["store_alone_seconds"],
    )


async def run_cluster(size: dict[str, Any]) -> Any:
    return await cluster.cluster_costs(
        size["cluster_points"],
        size["cluster_window"],
        size["cluster_repeats"],
        size["cluster_interrupt_repeats"],
        size["cluster_resume_repeats"],
        size["cluster_failover_repeats"],
        size["cluster_batches"],
        size["cluster_ceiling_seconds"],
    )


def run_langgraph(out: Path, quick: bool) -> Any:
    """The peer's own driver, in its own venv's server (blocking: nothing else runs)."""
    with step("LangGraph dev server: set-up (a venv of its own)"):
        subprocess.run(["bash", str(LANGGRAPH / "setup.sh")], check=True)
    result = out / "langgraph.json"
    with step("LangGraph dev server: fan-out, first token, cancel, resume"):
        command = [sys.executable, str(LANGGRAPH / "run.py"), "--out", str(result)]
        subprocess.run([*command, *(["--quick"] if quick else [])], check=True, cwd=ROOT)
    return orjson.loads(result.read_bytes())


SCENARIOS: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
    "costs": run_costs,
    "sessions": run_sessions,
    "idle": run_idle,
    "fanout": run_fanout,
    "wire": run_wire,
    "interrupt": run_interrupt,
    "resume": run_resume,
    "store": run_store,
    "cluster": run_cluster,
}


async def main(quick: bool, only: list[str]) -> None:
    out = ROOT / ("var/bench-quick" if quick else "bench/results")
    out.mkdir(parents=True, exist_ok=True)
    size = sizes(quick)
    for name in only:
        if name == "langgraph":
            data = run_langgraph(out, quick)
        else:
            data = await SCENARIOS[name](size)
            (out / f"{name}.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        print(f"    wrote {out.relative_to(ROOT)}/{name}.json", flush=True)
    report = out / "BENCHMARKS.md" if quick else ROOT / "docs" / "BENCHMARKS.md"
    write_report(out, report)
    print(f"==> report: {report.relative_to(ROOT)}", flush=True)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute each")
    parser.add_argument(
        "--only",
        default=",".join([*SCENARIOS, "langgraph"]),
        help="comma-separated scenarios (default: all): " + ", ".join([*SCENARIOS, "langgraph"]),
    )
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(only) - {*SCENARIOS, "langgraph"}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    raise_open_files_limit()
    pin(0, CLIENT_CORE)
    uvloop.run(main(args.quick, only))


if __name__ == "__main__":
    cli()
