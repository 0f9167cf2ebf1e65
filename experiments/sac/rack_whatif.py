"""SAC (2026): top-k KV fetch from a CXL pool vs its RDMA baselines, and what bounds each.

Usage: python experiments/sac/rack_whatif.py  (a what-if on our own H200 rack; the paper rig is run.py)
Writes experiments/sac/results/: sweep.csv + ttft_throughput.png (configs/sac.yaml, configs/sac_rdma.yaml
(the paper's described baseline: HiSparse over an RDMA pool) and configs/sac_rdma_hbm.yaml (whole prefix
into HBM) over request rates, headline ratios next to the paper's), variants.csv (every variant at the
operating point, with where a decode step's time goes), sensitivity.csv + sensitivity.png (SAC's hot-buffer
size, top-k overlap between consecutive steps, CXL load latency).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rate_sweep import ROOT, ratios, sweep_scenarios  # noqa: E402

from simcxl.config.loader import load_scenario  # noqa: E402
from simcxl.metrics.results import write_atomic  # noqa: E402
from simcxl.simulate import simulate  # noqa: E402

PAPER = {"throughput": 2.1, "ttft": 9.7, "tbt": 1.8}
RATES = [4, 8, 10, 12, 16, 24]
VARIANTS = {  # name: (config, overrides)
    "sac (1 CXL port per node)": ("sac.yaml", ()),
    "sac, 2 CXL ports per node": ("sac.yaml", ("fabric.cxl.host_ports_per_node=2",)),
    "sac, 4 CXL ports per node": ("sac.yaml", ("fabric.cxl.host_ports_per_node=4",)),
    "sac, fetch prefetched a layer ahead": ("sac.yaml", ("kv_manager.fetch_overlap=true",)),
    "sac_rdma (HiSparse over RDMA, 1.5 TB host pool)": ("sac_rdma.yaml", ()),
    "sac_rdma, 0.4 TB host pool": ("sac_rdma.yaml", ("kv_manager.host_pool=0.4 TB",)),
    "sac_rdma_hbm (whole prefix into HBM)": ("sac_rdma_hbm.yaml", ()),
    "sac, on-demand RDMA pages (200 requests)": ("sac.yaml", ("kv_manager.sparse_fetch=rdma_page",
                                                              "workload.num_requests=200")),
}
SWEEPS = {
    "kv_manager.hot_buffer_tokens": [2048, 4096, 8192, 16384],
    "kv_manager.topk_overlap": [0.5, 0.7, 0.9, 0.97],
    "fabric.cxl.device_latency": ["250 ns", "1 us", "4 us", "16 us"],
}
COLUMNS = ("ttft_mean_s", "tbt_mean_s", "throughput_tok_s", "hit_rate", "fetched_mb_per_step", "step_compute_ms",
           "step_fetch_ms", "step_ms", "decode_wait_s", "kv_transfer_s")


def run(config: str, *overrides: str) -> dict:
    s = simulate(load_scenario(ROOT / "configs" / config, list(overrides))).summary
    step = s["kv"].get("fetching_step_s", {})
    return {"ttft_mean_s": s["ttft_s"]["mean"], "tbt_mean_s": s["tbt_s"]["mean"],
            "throughput_tok_s": s["throughput"]["output_tokens_per_s"],
            "hit_rate": s["kv"].get("hot_buffer_hit_rate", ""),
            "fetched_mb_per_step": s["kv"].get("fetched_bytes_per_decode_step", 0) / 1e6,
            "step_compute_ms": step.get("compute", 0) * 1e3, "step_fetch_ms": step.get("fetch", 0) * 1e3,
            "step_ms": step.get("step", 0) * 1e3, "decode_wait_s": s["ttft_breakdown_s"]["decode_wait"],
            "kv_transfer_s": s["ttft_breakdown_s"]["kv_transfer"]}


def main() -> None:
    start = time.perf_counter()
    out = Path(__file__).resolve().parent / "results"
    _, rows = sweep_scenarios(out, ["sac", "sac_rdma", "sac_rdma_hbm"], RATES, "offered load (req/s)", 12)
    for baseline in ("sac_rdma", "sac_rdma_hbm"):
        print(f"\n{baseline} / sac (paper: TTFT {PAPER['ttft']}x, TBT {PAPER['tbt']}x lower; "
              f"throughput {PAPER['throughput']}x)")
        for r in ratios(rows, "sac", baseline):
            print(f"  rate {r['rate']:>4g}: TTFT mean {r['ttft_mean']:6.2f}x  TBT {r['tbt_mean']:5.2f}x  "
                  f"throughput {r['throughput']:5.2f}x")
    results = {}
    lines = ["variant," + ",".join(COLUMNS)]
    for name, (config, overrides) in VARIANTS.items():
        results[name] = r = run(config, *overrides)
        lines.append(f'"{name}",' + ",".join(str(r[k]) for k in COLUMNS))
        print(f"  {name}: TTFT {r['ttft_mean_s']:.2f} s, TBT {r['tbt_mean_s'] * 1e3:.1f} ms (step: compute "
              f"{r['step_compute_ms']:.1f} ms, fetch {r['step_fetch_ms']:.1f} ms), {r['throughput_tok_s']:,.0f} tok/s",
              flush=True)
    write_atomic(out / "variants.csv", "\n".join(lines) + "\n")
    sac, rdma = results["sac (1 CXL port per node)"], results["sac_rdma (HiSparse over RDMA, 1.5 TB host pool)"]
    print(f"\nat the operating point of configs/sac.yaml vs configs/sac_rdma.yaml: TTFT "
          f"{rdma['ttft_mean_s'] / sac['ttft_mean_s']:.2f}x lower (paper {PAPER['ttft']}x), TBT "
          f"{rdma['tbt_mean_s'] / sac['tbt_mean_s']:.2f}x lower (paper {PAPER['tbt']}x), throughput "
          f"{sac['throughput_tok_s'] / rdma['throughput_tok_s']:.2f}x (paper {PAPER['throughput']}x)")
    rows = ["parameter,value,ttft_mean_s,tbt_mean_s,throughput_tok_s,hit_rate,fetched_mb_per_step,tbt_vs_rdma"]
    for key, values in SWEEPS.items():
        for value in values:
            r = run("sac.yaml", f"{key}={value}")
            rows.append(f"{key},{value}," + ",".join(str(r[k]) for k in COLUMNS[:5]) +
                        f",{r['tbt_mean_s'] / rdma['tbt_mean_s']}")
            print(f"  {key}={value}: TBT {r['tbt_mean_s'] * 1e3:.2f} ms ({r['tbt_mean_s'] / rdma['tbt_mean_s']:.2f}x "
                  f"RDMA's), throughput {r['throughput_tok_s'] / rdma['throughput_tok_s']:.2f}x, hit rate "
                  f"{r['hit_rate']:.3f}, {r['fetched_mb_per_step']:.2f} MB fetched per step", flush=True)
    write_atomic(out / "sensitivity.csv", "\n".join(rows) + "\n")
    plot(rows, out / "sensitivity.png")
    print(f"{time.perf_counter() - start:.0f} s; wrote {out}")


AXES = {"kv_manager.hot_buffer_tokens": "hot buffer (tokens per request)",
        "kv_manager.topk_overlap": "top-k overlap between steps (fraction)",
        "fabric.cxl.device_latency": "CXL device latency"}


def plot(rows: list[str], path: Path) -> None:
    """SAC's TBT relative to the RDMA baseline's against each swept parameter, in simcxl's figure style."""
    from simcxl.metrics.plots import use_style

    plt = use_style()
    table = [r.split(",") for r in rows[1:]]
    fig, axes = plt.subplots(1, len(SWEEPS), figsize=(3.6 * len(SWEEPS), 3.2), sharey=True)
    for ax, key in zip(axes, SWEEPS):
        points = [r for r in table if r[0] == key]
        ax.plot(range(len(points)), [float(r[-1]) for r in points], marker="o", label="SAC (CXL, sparse)")
        ax.set_xticks(range(len(points)), [r[1] for r in points])  # categorical: values carry their units
        ax.axhline(1.0, color="gray", linestyle="--", label="RDMA baseline")
        ax.set_xlabel(AXES[key])
    axes[0].set_ylabel("TBT relative to RDMA (ratio)")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
