"""Fabric scalability: wall time for N concurrent flows that all start at t=0 and run to completion.

Usage: python benchmarks/bench_fabric_flows.py [--hardware configs/hardware/rack_cxl_pool.yaml]
Two patterns on a rack of 8 nodes x 8 GPUs:
- pool: every GPU writes blocks of random size (lognormal, mean 8 MiB) to the CXL pool, not striped
  (each block lands on one of the 8 devices): 64 x 8 = 512 routes;
- peers: every flow is an RDMA write between a random pair of GPUs on different nodes: up to
  64 x 56 = 3,584 routes, the worst case for the solver.
Prints one line per (pattern, N), the best of --repeat runs (this machine's speed drifts); record them in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import simpy

from simcxl.config.loader import load_profile
from simcxl.config.schema import FabricSpec
from simcxl.fabric.fabric import Fabric

MiB = 1024 * 1024


def run(spec: FabricSpec, pattern: str, flows: int, seed: int = 0) -> tuple[float, float, int, int]:
    """Wall seconds, simulated seconds, rate re-solves and how many of them replayed a kept filling."""
    rng = np.random.default_rng(seed)
    env = simpy.Environment()
    if pattern == "pool":
        spec = spec.model_copy(update={"cxl": spec.cxl.model_copy(update={"interleave": False})})
    fabric = Fabric(env, spec, nodes=8, gpus_per_node=8)
    gpus = fabric.topology.gpus
    sizes = rng.lognormal(np.log(8 * MiB) - 0.5, 1.0, size=flows)
    events = []
    start = time.perf_counter()
    for i, size in enumerate(sizes):
        src = gpus[i % len(gpus)]
        if pattern == "pool":
            events.append(fabric.cxl.dma(src, float(size), write=True, key=int(rng.integers(8))))
        else:
            dst = gpus[int(rng.integers(len(gpus)))]
            while dst.node == src.node:
                dst = gpus[int(rng.integers(len(gpus)))]
            events.append(fabric.rdma.write(src, dst, float(size)))
    env.run(until=env.all_of(events))
    return time.perf_counter() - start, env.now, fabric.network.recomputations, fabric.network.replays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hardware", default="configs/hardware/rack_cxl_pool.yaml")
    parser.add_argument("--flows", type=int, nargs="+", default=[1000, 2500, 5000, 10000, 20000])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    spec = load_profile(args.hardware, "fabric", FabricSpec)
    for pattern in ("pool", "peers"):
        for n in args.flows:
            runs = [run(spec, pattern, n) for _ in range(args.repeat)]
            wall, simulated, recomputations, replays = min(runs)
            print(f"{pattern:5s} {n:6d} flows: {wall:6.2f} s wall, {simulated * 1e3:8.1f} ms simulated, "
                  f"{recomputations:6d} rate re-solves ({replays} replayed), {n / wall:8.0f} flows/s")


if __name__ == "__main__":
    main()
