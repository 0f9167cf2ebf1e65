"""Max-min solver: where arrays overtake dicts (the crossover sets ``maxmin.ARRAY_ROUTES``).

Usage: python benchmarks/bench_maxmin.py [--routes 4 8 16 ...] [--nics 64] [--repeat 20]
Each component is R routes between random pairs of N NICs (tx, rx) through one of 2N PCIe links, a third
of them with a rate cap. Per representation it times a fresh filling, then a replay after one random route
leaves (the common case in a run), best of --repeat. Prints microseconds per call. The crossover moves with
how much of the component a departure re-fills (more links, more levels, more re-filled), so
``maxmin.ARRAY_ROUTES`` is set from the end-to-end benchmark, bench_fabric_flows.py (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import math
import random
import time

from simcxl.fabric.maxmin import ArrayFilling, DictFilling
from simcxl.fabric.network import Link, Route

GB = 1e9


def component(n_routes: int, nics: int, seed: int) -> tuple[list[Route], list[Link]]:
    rng = random.Random(seed)
    tx = [Link(f"tx{i}", "nic", 25 * GB) for i in range(nics)]
    rx = [Link(f"rx{i}", "nic", 25 * GB) for i in range(nics)]
    pcie = [Link(f"pcie{i}", "pcie", 32 * GB) for i in range(2 * nics)]
    routes = []
    for seq in range(n_routes):
        a, b = rng.sample(range(nics), 2)
        route = Route((pcie[rng.randrange(2 * nics)], tx[a], rx[b]), (1.0, 1.0, 1.0),
                      rng.choice([math.inf, math.inf, 4 * GB]), seq, seq)
        for link in route.links:
            link.routes[route] = None
        routes.append(route)
    links = list({link: None for route in routes for link in route.links})
    return routes, links


def time_once(kind: type, n_routes: int, nics: int, seed: int) -> tuple[float, float]:
    routes, links = component(n_routes, nics, seed)
    start = time.perf_counter()
    filling = kind(routes, links, [0.0] * n_routes)
    filling.fill()
    fresh = time.perf_counter() - start
    leaving = routes[random.Random(seed).randrange(n_routes)]
    for link in leaving.links:
        del link.routes[leaving]
    start = time.perf_counter()
    filling.remove([leaving])
    filling.fill()
    return fresh, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, nargs="+", default=[2, 4, 8, 16, 32, 48, 64, 128, 256, 1024])
    parser.add_argument("--nics", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"{'routes':>6s} {'dict fresh':>11s} {'array fresh':>11s} {'dict replay':>11s} {'array replay':>12s}  (us)")
    for n in args.routes:
        best = {}
        for kind in (DictFilling, ArrayFilling):
            runs = [time_once(kind, n, args.nics, seed) for seed in range(args.repeat)]
            best[kind] = (min(r[0] for r in runs) * 1e6, min(r[1] for r in runs) * 1e6)
        print(f"{n:6d} {best[DictFilling][0]:11.1f} {best[ArrayFilling][0]:11.1f} "
              f"{best[DictFilling][1]:11.1f} {best[ArrayFilling][1]:12.1f}")


if __name__ == "__main__":
    main()
