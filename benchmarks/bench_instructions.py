"""Instructions the simulator executes on a scenario, counted by valgrind: unlike wall time they do not
drift with a shared machine's speed, so two versions of the code compare to a fraction of a percent.

Usage: python benchmarks/bench_instructions.py [CONFIG] [--set KEY=VALUE ...] [--no-stretches]
Runs `simulate` (and the run's summary) under `valgrind --tool=callgrind` (about 40x slower than a plain run) twice, with
PYTHONHASHSEED=0: on the scenario, and on the same scenario with 10 requests (start-up: imports, compiling
modules where no bytecode is cached, building the cluster). Prints both counts and their difference, the
simulation's own instructions. Needs valgrind on the PATH. Writes nothing; record the numbers in RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

from simcxl.config.loader import load_scenario
from simcxl.errors import ConfigError

RUN = """
import sys
from simcxl.config.loader import load_scenario
from simcxl.serving.decode import DecodeWorker
from simcxl.simulate import simulate
DecodeWorker.stretches = sys.argv[1] == "stretches"
simulate(load_scenario(sys.argv[2], sys.argv[3:])).summary  # worked out on first use: counted, as before
"""


def instructions(config: str, overrides: list[str], stretches: bool) -> int:
    """Instructions valgrind counts for one process that simulates ``config``."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", RUN,
               "stretches" if stretches else "plain", config, *overrides]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind run failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="configs/rdma.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--no-stretches", action="store_true", help="one event per decode iteration")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("bench_instructions: valgrind is not installed (e.g. apt install valgrind)", file=sys.stderr)
        raise SystemExit(2)
    stretches = not args.no_stretches
    try:
        workload = load_scenario(args.config, args.overrides).scenario.workload
    except ConfigError as exc:
        print(f"bench_instructions: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    few = "workload.first=10" if workload.type == "trace" else "workload.num_requests=10"
    whole = instructions(args.config, args.overrides, stretches)
    start_up = instructions(args.config, [*args.overrides, few], stretches)
    print(f"{args.config} {' '.join(args.overrides)}{'' if stretches else ' (no stretches)'}: {whole:,} instructions; "
          f"with 10 requests {start_up:,}; simulation {whole - start_up:,}")


if __name__ == "__main__":
    main()
