"""Reproduce TraCT's headline (arXiv 2512.18194): CXL shared-memory KV transfer and rack-wide prefix cache
vs RDMA transfer, and vs a per-node DRAM cache, over a sweep of request rates.

Usage: python experiments/tract/run.py   (writes experiments/tract/results/{sweep.csv,ttft_throughput.png})
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rate_sweep import descriptor_sweep, ratios, sweep_scenarios  # noqa: E402

PAPER = {"ttft_mean": 9.8, "ttft_p99": 6.2, "throughput": 1.6}
RATES = [4, 8, 12, 14, 15.5, 16, 18, 24, 32, 48, 64]


def main() -> None:
    start = time.perf_counter()
    out = Path(__file__).resolve().parent / "results"
    configs, rows = sweep_scenarios(out, ["tract", "tract_rdma", "tract_dram", "tract_mooncake"], RATES,
                                    "offered load (requests/s)", 15.5)
    for baseline in ("tract_rdma", "tract_dram", "tract_mooncake"):
        print(f"\n{baseline} / tract (paper, 'up to': TTFT mean {PAPER['ttft_mean']}x, P99 {PAPER['ttft_p99']}x, "
              f"peak throughput {PAPER['throughput']}x)")
        for r in ratios(rows, "tract", baseline):
            print(f"  rate {r['rate']:>5g}: TTFT mean {r['ttft_mean']:6.2f}x  P99 {r['ttft_p99']:6.2f}x  "
                  f"throughput {r['throughput']:5.2f}x")
        peak = {name: max(r["throughput_rps"] for r in rows if r["scenario"] == name) for name in ("tract", baseline)}
        print(f"  peak throughput over the sweep: {peak['tract']:.2f} vs {peak[baseline]:.2f} req/s = "
              f"{peak['tract'] / peak[baseline]:.2f}x")
    print("\nper-descriptor posting cost on the baselines' block paths, at 15.5 req/s (what it would take):")
    descriptor_sweep(configs[0], configs[1:], [], out / "descriptor_cost.csv")
    print(f"\n{time.perf_counter() - start:.0f} s; wrote {out}/sweep.csv, ttft_throughput.png, descriptor_cost.csv")


if __name__ == "__main__":
    main()
