"""Simulator speed on a scenario: simulated requests and SimPy events per wall-clock second, against the
bare-SimPy floor measured in the same run.

Usage: python benchmarks/bench_simulator.py [CONFIG] [--repeat N] [--set KEY=VALUE ...]
The floor is a SimPy loop of 100 processes that do nothing but time out: what SimPy itself costs per
event on this machine now. Shared machines drift, so each repetition measures the floor, the scenario as
it runs, and the scenario with one event per decode iteration (quiet stretches off), interleaved; the best
of each is reported with its ratio to the floor. Since a stretch does the work of many events in one, the
events/s of the default run understate its speed: it is also given as the events the one-per-iteration run
processes (the same simulated work, bit-identical results, checked here) per wall second of the default run.
Removing an event lowers the ratio without slowing anything, so the run's cost is also given in units that
neither the machine's speed nor the event count move: wall time per request in bare-SimPy events.
Writes nothing; record the numbers in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import time

import simpy

from simcxl.config.loader import load_scenario
from simcxl.serving.decode import DecodeWorker
from simcxl.simulate import simulate


def simpy_floor(events: int = 1_000_000, processes: int = 100) -> float:
    """Events per wall second of bare SimPy: ``processes`` generators, each yielding timeouts."""
    env = simpy.Environment()

    def sleeper(delay: float):
        while True:
            yield env.timeout(delay)

    for i in range(processes):
        env.process(sleeper(1.0 + i * 1e-3))
    start = time.perf_counter()
    env.run(until=events / processes)
    return env.now * processes / (time.perf_counter() - start)  # ~ events processed


def timed_run(loaded, stretches: bool) -> tuple[float, dict]:
    DecodeWorker.stretches = stretches
    try:
        start = time.perf_counter()
        summary = simulate(loaded).summary
        return time.perf_counter() - start, summary
    finally:
        DecodeWorker.stretches = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="configs/rdma.yaml")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    loaded = load_scenario(args.config, args.overrides)
    best = {True: float("inf"), False: float("inf")}
    events, best_floor = {}, 0.0
    for i in range(args.repeat):
        floor = simpy_floor()
        best_floor = max(best_floor, floor)
        summaries = {}
        for stretches in (True, False):
            wall, summary = timed_run(loaded, stretches)
            summaries[stretches] = summary
            requests, events[stretches] = summary["requests"]["completed"], summary["sim"]["events"]
            best[stretches] = min(best[stretches], wall)
            print(f"run {i + 1}, {'default' if stretches else 'one event per decode iteration'}: {requests} "
                  f"requests, {events[stretches]} events, {summary['sim']['simulated_s']:.1f} s simulated in "
                  f"{wall:.2f} s wall: {requests / wall:,.0f} requests/s, {events[stretches] / wall:,.0f} events/s, "
                  f"{events[stretches] / max(requests, 1):.1f} events/request; bare SimPy {floor:,.0f} events/s")
        for summary in summaries.values():
            summary["sim"].pop("events")
        if summaries[True] != summaries[False]:
            raise SystemExit("quiet stretches changed the results: that is a bug")
    rate, plain_rate = events[True] / best[True], events[False] / best[False]
    equivalent = events[False] / best[True]
    print(f"best of {args.repeat} ({args.config}, Python {platform.python_version()}, {platform.machine()}): "
          f"bare SimPy {best_floor:,.0f} events/s\n"
          f"  default: {best[True]:.2f} s wall, {rate:,.0f} events/s, ratio {rate / best_floor:.3f}; "
          f"as one-event-per-iteration events: {equivalent:,.0f} /s, ratio {equivalent / best_floor:.3f}\n"
          f"  one event per decode iteration: {best[False]:.2f} s wall, {plain_rate:,.0f} events/s, "
          f"ratio {plain_rate / best_floor:.3f}\n"
          f"  cost per request: {best[True] * best_floor / requests:.1f} floor events (wall per request x the "
          f"floor's events/s: what the ratio means once events do unequal work; 1 / ratio x events/request)")


if __name__ == "__main__":
    main()
