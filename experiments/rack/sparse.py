"""The sparse-attention model on one rack: SAC's CXL pool against its RDMA baselines, by goodput and cost.

    python -m experiments.rack.sparse [-j 2]

DeepSeek-V3.2 (FP8, 690 GB of weights) does not fit eight 80 GB H100s, so this rack is configs/sac.yaml's
H200 servers, doubled: 4 prefill + 2 decode servers of 8 GPUs (TP 8), the XC50256-class CXL pool (one x16
port per server) and the RDMA memory server; the workload is SAC's (questions about 8 shared 96K-token
documents). Designs: ``cxl_sparse`` (SAC), ``rdma_sparse`` (SAC's baseline as the paper describes it:
HiSparse over the RDMA pool), ``rdma_pool`` (the whole prefix into decode HBM), and SAC with two x16 ports
per server. SLO (our limits for 100K-token contexts): 90% of requests within TTFT 10 s and TPOT 100 ms.
Writes experiments/rack/results/sparse.csv; runs go to results/rack_sparse/ (resumable).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.rack.run import write_csv
from simcxl.config.loader import load_scenario
from simcxl.metrics.cost import bill, capital_cost
from simcxl.sweep.executors import LocalExecutor
from simcxl.sweep.goodput import SLO, GoodputSearch

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parents[1] / "configs"
RUNS = HERE.parents[1] / "results" / "rack_sparse"
SLOS = [SLO.parse("ttft=10s"), SLO.parse("tpot=100ms")]
ATTAINMENT = 0.9
RACK = ["cluster.prefill_nodes=4", "cluster.decode_nodes=2", "workload.num_requests=800"]
DESIGNS = {  # name: (config, overrides)
    "cxl_sparse (SAC, 1 x16 port per server)": ("sac.yaml", []),
    "cxl_sparse (SAC, 2 x16 ports per server)": ("sac.yaml", ["fabric.cxl.host_ports_per_node=2"]),
    "rdma_sparse (HiSparse over an RDMA pool)": ("sac_rdma.yaml", []),
    "rdma_pool (whole prefix into decode HBM)": ("sac_rdma_hbm.yaml", []),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for name, (config, overrides) in DESIGNS.items():
        search = GoodputSearch(CONFIGS / config, [*RACK, *overrides], SLOS, ATTAINMENT,
                               RUNS / name.split(" (")[0] / str(len(overrides)), LocalExecutor(args.jobs), args.jobs,
                               tolerance=0.05, report=lambda line: None)
        goodput = search.run()["max_rate"]
        cost = capital_cost(bill(load_scenario(CONFIGS / config, [*RACK, *overrides]).resolved))
        rows.append({"design": name, "goodput_requests_per_s": goodput, "capital_cost_usd": cost,
                     "usd_per_goodput_request_per_s": cost / goodput if goodput else None})
        print(f"{name:44s} goodput {goodput:6.2f} req/s, ${cost / 1e6:.2f}M, "
              f"${(rows[-1]['usd_per_goodput_request_per_s'] or 0) / 1e3:,.0f}k per req/s", flush=True)
    write_csv(HERE / "results" / "sparse.csv", rows)


if __name__ == "__main__":
    main()
