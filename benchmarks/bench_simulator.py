"""Simulator speed on a scenario: simulated requests and SimPy events per wall-clock second, against the
bare-SimPy floor measured in the same run.

Usage: python benchmarks/bench_simulator.py [CONFIG] [--repeat N] [--set KEY=VALUE ...]
The floor is a SimPy loop of 100 processes that do nothing but time out: what SimPy itself costs per
event on this machine now. Shared machines drift, so each repetition measures both, interleaved, and
the best of each is reported with their ratio (the share of SimPy's own speed the simulator keeps).
Writes nothing; record the numbers in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import time

import simpy

from simcxl.config.loader import load_scenario
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="configs/rdma.yaml")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    loaded = load_scenario(args.config, args.overrides)
    best_wall, best_floor = float("inf"), 0.0
    for i in range(args.repeat):
        floor = simpy_floor()
        start = time.perf_counter()
        summary = simulate(loaded).summary
        wall = time.perf_counter() - start
        requests, events = summary["requests"]["completed"], summary["sim"]["events"]
        print(f"run {i + 1}: {requests} requests, {events} events, {summary['sim']['simulated_s']:.1f} s simulated "
              f"in {wall:.2f} s wall: {requests / wall:,.0f} requests/s, {events / wall:,.0f} events/s, "
              f"{events / max(requests, 1):.1f} events/request; bare SimPy {floor:,.0f} events/s")
        best_wall, best_floor = min(best_wall, wall), max(best_floor, floor)
    rate = events / best_wall
    print(f"best of {args.repeat}: {best_wall:.2f} s wall, {rate:,.0f} events/s; bare SimPy {best_floor:,.0f} "
          f"events/s; ratio {rate / best_floor:.3f} ({args.config}, Python {platform.python_version()}, "
          f"{platform.machine()})")


if __name__ == "__main__":
    main()
