"""Simulator speed on a scenario: simulated requests and SimPy events per wall-clock second, against the
bare-SimPy floor measured in the same run.

Usage: python benchmarks/bench_simulator.py [CONFIG] [--repeat N] [--set KEY=VALUE ...]
The floor is a SimPy loop of 100 processes that do nothing but time out: what SimPy itself costs per
event on this machine now. Shared machines drift by tens of percent within minutes, so the floor is timed
before and after every run and each run is set against the mean of the two; the scenario as it runs and with
one event per decode iteration (quiet stretches off) alternate, and the best and median of each are
reported. Since a stretch does the work of many events in one, the events/s of the default run understate
its speed: it is also given as the events the one-per-iteration run processes (the same simulated work,
bit-identical results, checked here) per wall second of the default run.
Removing an event lowers the ratio without slowing anything, so the run's cost is also given in units that
neither the machine's speed nor the event count move: wall time per request in bare-SimPy events.
Writes nothing; record the numbers in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from statistics import median

import simpy

from simcxl.config.loader import load_scenario
from simcxl.metrics.results import python_build
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
    walls: dict[bool, list[float]] = {True: [], False: []}
    floors: dict[bool, list[float]] = {True: [], False: []}  # bare SimPy around each run: the mean of before and after
    events = {}
    after = simpy_floor()
    for i in range(args.repeat):
        summaries = {}
        for stretches in (True, False):
            before = after
            wall, summary = timed_run(loaded, stretches)
            after = simpy_floor()
            floor = (before + after) / 2
            summaries[stretches] = summary
            requests, events[stretches] = summary["requests"]["completed"], summary["sim"]["events"]
            walls[stretches].append(wall)
            floors[stretches].append(floor)
            print(f"run {i + 1}, {'default' if stretches else 'one event per decode iteration'}: {requests} "
                  f"requests, {events[stretches]} events, {summary['sim']['simulated_s']:.1f} s simulated in "
                  f"{wall:.2f} s wall: {requests / wall:,.0f} requests/s, {events[stretches] / wall:,.0f} events/s, "
                  f"{events[stretches] / max(requests, 1):.1f} events/request; bare SimPy {floor:,.0f} events/s, "
                  f"ratio {events[stretches] / wall / floor:.3f}; {wall * floor / requests:.1f} floor events/request")
        for summary in summaries.values():
            summary["sim"].pop("events")
        if summaries[True] != summaries[False]:
            raise SystemExit("quiet stretches changed the results: that is a bug")

    def ratios(stretches: bool, counted: int) -> list[float]:
        """Each run's events (``counted`` of them) per wall second over the floor measured around it."""
        return sorted(counted / wall / floor for wall, floor in zip(walls[stretches], floors[stretches]))

    costs = sorted(wall * floor / requests for wall, floor in zip(walls[True], floors[True]))
    default, equivalent, plain = ratios(True, events[True]), ratios(True, events[False]), ratios(False, events[False])
    print(f"{args.repeat} runs each ({args.config}, {python_build()}, {platform.machine()}): "
          f"bare SimPy {min(floors[True]):,.0f}-{max(floors[True]):,.0f} events/s; each run against the floor "
          f"around it, best and median:\n"
          f"  default: {min(walls[True]):.2f} s wall at best, ratio {default[-1]:.3f} / {median(default):.3f}; as "
          f"one-event-per-iteration events: ratio {equivalent[-1]:.3f} / {median(equivalent):.3f}\n"
          f"  one event per decode iteration: {min(walls[False]):.2f} s wall at best, ratio {plain[-1]:.3f} / "
          f"{median(plain):.3f}\n"
          f"  cost per request: {costs[0]:.1f} / {median(costs):.1f} floor events (wall per request x the floor's "
          f"events/s: what the ratio means once events do unequal work; 1 / ratio x events/request)")

if __name__ == "__main__":
    main()
