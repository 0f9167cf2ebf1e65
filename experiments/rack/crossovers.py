"""Where CXL and RDMA cross over on the rack of rack.yaml, as prefix reuse, context length and rack size vary.

    python -m experiments.rack.crossovers [-j 2]

The designs with a rack-wide prefix cache that run.py found closest: the RDMA push with a DRAM cache in every
server (Mooncake store) and the CXL pool (TraCT/Beluga) with one and with two x16 host ports per server. A
synthetic workload sets each factor exactly: a prompt is a shared prefix of ``shared`` tokens (one of 8
documents) followed by the request's own tokens (lognormal, mean ``own``), so reuse varies at a fixed
prompt length and length at a fixed reuse; answers are 256 tokens mean. Each point is a goodput search (the
SLO of run.py: 90% of requests within TTFT 2 s and TPOT 50 ms; bisection to 5%) over ``workload.rate``.
Writes experiments/rack/results/crossovers.csv; runs go to results/rack_crossovers/ (resumable).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.rack.run import ATTAINMENT, DESIGNS, RACK, SLOS, write_csv
from simcxl.sweep.executors import LocalExecutor
from simcxl.sweep.goodput import GoodputSearch

HERE = Path(__file__).resolve().parent
RUNS = HERE.parents[1] / "results" / "rack_crossovers"
COMPARED = {"rdma_cache": DESIGNS["rdma + DRAM cache (Mooncake store)"],
            "cxl_block": DESIGNS["cxl_block (TraCT/Beluga)"],
            "cxl_block_2ports": [*DESIGNS["cxl_block (TraCT/Beluga)"], "fabric.cxl.host_ports_per_node=2"]}
BASE = {"shared": 4096, "own": 4096, "servers": 8}
FACTORS = {  # factor: points (the others stay at BASE)
    "reuse": [{"shared": 0, "own": 8192}, {"shared": 4096, "own": 4096}, {"shared": 7168, "own": 1024}],
    "context": [{"shared": 1024, "own": 1024}, {"shared": 4096, "own": 4096}, {"shared": 8192, "own": 8192}],
    "servers": [{"servers": n} for n in (4, 8, 12, 16, 32, 64)],
}
MAX_CXL_SERVERS = 12  # one XC50256 (256 lanes) attaches 8 x8 devices and at most 12 servers with an x16 port each
REQUESTS_PER_SERVER = 60
RATE_PER_SERVER = 0.5                  # the search's first load; it brackets from there


def workload(shared: int, own: int, servers: int) -> list[str]:
    prompt = f"{{dist: lognormal, mean: {own}, sigma: 0.6, max: 32768}}"
    prefix = f"{{groups: 8, tokens: {shared}}}" if shared else "null"
    return [f"workload={{type: poisson, rate: {RATE_PER_SERVER * servers}, num_requests: "
            f"{REQUESTS_PER_SERVER * servers}, block_tokens: 512, input_tokens: {prompt}, "
            f"output_tokens: {{dist: lognormal, mean: 256, sigma: 0.6, max: 2048}}, shared_prefix: {prefix}}}",
            f"cluster.prefill_nodes={servers // 2}", f"cluster.decode_nodes={servers - servers // 2}"]


def _show(goodput: float | None) -> str:
    return "-" if goodput is None else f"{goodput:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for factor, points in FACTORS.items():
        for change in points:
            point = {**BASE, **change}
            row = {"factor": factor, **point, "reuse": point["shared"] / (point["shared"] + point["own"])}
            for design, overrides in COMPARED.items():
                if design.startswith("cxl") and point["servers"] > MAX_CXL_SERVERS:
                    row[f"{design}_goodput"] = None  # needs several switches and pools: not modelled
                    continue
                name = f"{design}_{point['shared']}_{point['own']}_{point['servers']}"
                search = GoodputSearch(RACK, [*overrides, *workload(**point)], SLOS, ATTAINMENT, RUNS / name,
                                       LocalExecutor(args.jobs), args.jobs, tolerance=0.05, report=lambda line: None)
                row[f"{design}_goodput"] = search.run()["max_rate"]
            rows.append(row)
            print(f"{factor}: shared {point['shared']}, own {point['own']}, {point['servers']} servers: goodput (req/s) "
                  + ", ".join(f"{design} {_show(row[f'{design}_goodput'])}" for design in COMPARED), flush=True)
    write_csv(HERE / "results" / "crossovers.csv", rows)


if __name__ == "__main__":
    main()
