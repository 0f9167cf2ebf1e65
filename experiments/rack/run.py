"""Every KV design on one rack (rack.yaml), one workload, one SLO: goodput, tails at a fixed load, bytes by
path, link utilization and capital cost per unit of goodput.

    python -m experiments.rack.run [-j 2]

Writes experiments/rack/results/designs.csv and cxl_host_ports.csv; runs go to results/rack/ (resumable; delete it to rerun).
Each design is the rack scenario with the KV manager and serving its system uses (DESIGNS); nothing else
differs. The sparse-attention design (cxl_sparse, SAC) needs a sparse model and is not on this rack yet.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from simcxl.config.loader import load_scenario
from simcxl.metrics.cost import bill, capital_cost
from simcxl.metrics.results import write_atomic
from simcxl.simulate import simulate
from simcxl.sweep.executors import LocalExecutor
from simcxl.sweep.goodput import SLO, GoodputSearch

HERE = Path(__file__).resolve().parent
RACK = HERE / "rack.yaml"
RUNS = HERE.parents[1] / "results" / "rack"
SLOS = [SLO.parse("ttft=2s"), SLO.parse("tpot=50ms")]  # DistServe's form, our limits: 90% of requests meet both
ATTAINMENT = 0.9
FIXED_LOAD = 2.0  # time_scale of the fixed-load comparison: about 5.5 req/s

DESIGNS = {
    "rdma (Dynamo/NIXL push)": ["kv_manager={type: rdma}"],
    "rdma + DRAM cache (Mooncake store)": ["kv_manager={type: rdma, prefix_cache: {capacity: 1 TiB, scope: rack}}",
                                           "serving.router=cache_aware"],
    "rdma_pull (KVDirect)": ["kv_manager={type: rdma_pull}"],
    "rdma_pool (Mooncake pool)": ["kv_manager={type: rdma_pool, prefix_cache: {}}", "serving.router=cache_aware"],
    "cxl_block (TraCT/Beluga)": ["kv_manager={type: cxl_block, prefix_cache: {}}", "serving.router=cache_aware"],
    "aggregated (no disaggregation)": ["serving.mode=aggregated", "cluster.prefill_nodes=null",
                                       "cluster.decode_nodes=null", "cluster.nodes=8", "serving.router=cache_aware"],
}


def slug(name: str) -> str:
    return name.split(" ")[0] + ("_cache" if "DRAM" in name else "")


def fixed_load(overrides: list[str]) -> dict:
    loaded = load_scenario(RACK, [*overrides, f"workload.time_scale={FIXED_LOAD}"])
    outcome = simulate(loaded)
    s, requests = outcome.summary, outcome.report.requests
    rate = len(requests) / requests.arrival_s.max()
    counts = bill(loaded.resolved)
    links = {kind: u["max"] for kind, u in s["utilization"]["link"].items()}
    return {"ttft_p99_s": s["ttft_s"]["p99"], "tbt_p99_s": s["tbt_s"]["p99"], "tpot_mean_s": s["tpot_s"]["mean"],
            "requests_per_s_at_time_scale_1": rate / FIXED_LOAD, "prefix_hit_rate": s["kv"].get("prefix_hit_rate", s["kv"].get("prefix_hit_rate_tokens", 0.0)),
            "bytes_moved": json.dumps({k: round(v) for k, v in s["kv"]["bytes_moved"].items()}, sort_keys=True),
            "link_max_utilization": json.dumps({k: round(v, 4) for k, v in links.items()}, sort_keys=True),
            "capital_cost_usd": capital_cost(counts), "bill": json.dumps(counts, sort_keys=True)}


def goodput(name: str, overrides: list[str], jobs: int) -> float:
    """The design's goodput as the trace's time_scale (runs kept under results/rack/NAME)."""
    search = GoodputSearch(RACK, overrides, SLOS, ATTAINMENT, RUNS / name, LocalExecutor(jobs), jobs,
                           tolerance=0.03, report=lambda line: None)
    return search.run()["max_rate"]


def host_port_crossover(jobs: int) -> list[dict]:
    """cxl_block's goodput as each server gets more x16 CXL host ports (the rack profile gives one, shared by
    its 8 GPUs; the RDMA designs have a NIC per GPU)."""
    rows = []
    for ports in (1, 2, 4, 8):
        overrides = [*DESIGNS["cxl_block (TraCT/Beluga)"], f"fabric.cxl.host_ports_per_node={ports}"]
        rows.append({"host_ports_per_node": ports, "goodput_time_scale": goodput(f"cxl_ports{ports}", overrides, jobs)})
        print(f"cxl_block with {ports} CXL host port(s) per server: goodput time_scale {rows[-1]['goodput_time_scale']:.3g}")
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for name, overrides in DESIGNS.items():
        scale = goodput(slug(name), overrides, args.jobs)
        row = {"design": name, "goodput_time_scale": scale, **fixed_load(overrides)}
        row["goodput_requests_per_s"] = row["goodput_time_scale"] * row["requests_per_s_at_time_scale_1"]
        row["usd_per_goodput_request_per_s"] = (row["capital_cost_usd"] / row["goodput_requests_per_s"]
                                                if row["goodput_requests_per_s"] else None)
        rows.append(row)
        print(f"{name:36s} goodput {row['goodput_requests_per_s']:6.2f} req/s (time_scale {scale:.3g}); "
              f"at time_scale {FIXED_LOAD}: TTFT P99 {row['ttft_p99_s'] * 1e3:8.1f} ms, TBT P99 "
              f"{row['tbt_p99_s'] * 1e3:6.2f} ms; ${row['capital_cost_usd'] / 1e6:.2f}M, "
              f"${(row['usd_per_goodput_request_per_s'] or 0) / 1e3:,.0f}k per req/s")
    write_csv(HERE / "results" / "designs.csv", rows)
    write_csv(HERE / "results" / "cxl_host_ports.csv", host_port_crossover(args.jobs))


if __name__ == "__main__":
    main()
