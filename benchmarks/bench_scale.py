"""How wall time and memory grow with requests and with rack size: each point is one `simcxl run` in its
own process, so its peak RSS is its own.

Usage: python benchmarks/bench_scale.py [--requests 10000 100000 1000000] [--nodes 4 16 64 128] [--config C]
- requests: `configs/rdma.yaml` (4P + 4D, 24 req/s) with more requests;
- nodes: N/2 prefill + N/2 decode nodes, the arrival rate scaled with the nodes (6 req/s per node, the
  default's load) and 2,000 requests per node, so every rack runs at the same utilization.
Prints one line per point (wall, events, events per wall second, peak RSS); record them in RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

from simcxl.metrics.results import python_build


def run_point(config: str, overrides: list[str]) -> dict:
    """One quiet run in a child process: its wall time, peak RSS and simulated events."""
    with tempfile.TemporaryDirectory() as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        command = [sys.executable, "-m", "simcxl.cli", "run", config, "-q", "-o", out]
        for override in overrides:
            command += ["--set", override]
        subprocess.run(command, check=True)
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far, in KiB
        with open(os.path.join(out, "summary.json")) as handle:
            summary = json.load(handle)
    return {"wall_s": wall, "events": summary["sim"]["events"], "simulated_s": summary["sim"]["simulated_s"],
            "completed": summary["requests"]["completed"], "peak_rss_mb": peak / 1024 if peak > before else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/rdma.yaml")
    parser.add_argument("--requests", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--nodes", type=int, nargs="*", default=[4, 16, 64, 128])
    args = parser.parse_args()
    print(f"{python_build()}, {platform.machine()}, {os.cpu_count()} CPUs", flush=True)
    for n in args.requests:
        point = run_point(args.config, [f"workload.num_requests={n}"])
        rss = f"{point['peak_rss_mb']:,.0f} MB" if point["peak_rss_mb"] else "n/a (below an earlier point)"
        print(f"requests {n:>9,}: {point['wall_s']:7.1f} s wall, {point['events']:>11,} events, "
              f"{point['events'] / point['wall_s']:>9,.0f} events/s, peak RSS {rss}", flush=True)
    for nodes in args.nodes:
        half = nodes // 2
        point = run_point(args.config, [f"cluster.prefill_nodes={half}", f"cluster.decode_nodes={nodes - half}",
                                        f"workload.rate={6 * nodes}", f"workload.num_requests={2000 * nodes}"])
        print(f"nodes {nodes:>4}: {2000 * nodes:>9,} requests, {point['wall_s']:7.1f} s wall, "
              f"{point['events']:>11,} events, {point['events'] / point['wall_s']:>9,.0f} events/s", flush=True)


if __name__ == "__main__":
    main()
