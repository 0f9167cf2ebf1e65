"""Reproduce Beluga's headline (SIGMOD'26): a CXL-pool KV cache vs Mooncake's RDMA-based store in vLLM,
replaying the Mooncake trace at increasing speed.

Usage: python experiments/beluga/run.py   (writes experiments/beluga/results/{sweep.csv,ttft_throughput.png})
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rate_sweep import descriptor_sweep, ratios, sweep_scenarios  # noqa: E402

PAPER = {"ttft_reduction": 0.896, "throughput": 7.35}
TIME_SCALES = [1, 2, 3, 4, 6]


def main() -> None:
    start = time.perf_counter()
    out = Path(__file__).resolve().parent / "results"
    configs, rows = sweep_scenarios(out, ["beluga", "beluga_mooncake"], TIME_SCALES,
                                    "trace speed-up (x recorded arrival rate)", 3)
    print(f"\nbeluga vs beluga_mooncake (paper: TTFT -{PAPER['ttft_reduction']:.1%}, "
          f"throughput {PAPER['throughput']}x)")
    for r in ratios(rows, "beluga", "beluga_mooncake"):
        print(f"  speed-up {r['rate']:g}x: TTFT {1 - 1 / r['ttft_mean']:+.1%} reduction, "
              f"throughput {r['throughput']:.2f}x")
    print("\nper-descriptor posting cost on the baseline's block paths, at 3x speed-up (what it would take):")
    descriptor_sweep(configs[0], configs[1:], ["workload.time_scale=3"], out / "descriptor_cost.csv")
    print(f"\n{time.perf_counter() - start:.0f} s; wrote {out}/sweep.csv, ttft_throughput.png, descriptor_cost.csv")


if __name__ == "__main__":
    main()
