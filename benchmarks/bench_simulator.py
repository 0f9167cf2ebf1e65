"""Simulator speed on a scenario: simulated requests and SimPy events per wall-clock second.

Usage: python benchmarks/bench_simulator.py [CONFIG] [--repeat N] [--set KEY=VALUE ...]
Writes nothing; prints one line per repetition and the best. Record the numbers in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import time

from simcxl.config.loader import load_scenario
from simcxl.simulate import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="configs/rdma.yaml")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    loaded = load_scenario(args.config, args.overrides)
    best = None
    for i in range(args.repeat):
        start = time.perf_counter()
        summary = simulate(loaded).summary
        wall = time.perf_counter() - start
        requests, events = summary["requests"]["completed"], summary["sim"]["events"]
        print(f"run {i + 1}: {requests} requests, {events} events, {summary['sim']['simulated_s']:.1f} s simulated "
              f"in {wall:.2f} s wall: {requests / wall:,.0f} requests/s, {events / wall:,.0f} events/s, "
              f"{events / max(requests, 1):.1f} events/request")
        best = wall if best is None else min(best, wall)
    print(f"best of {args.repeat}: {best:.2f} s wall ({args.config}, Python {platform.python_version()}, "
          f"{platform.machine()})")


if __name__ == "__main__":
    main()
