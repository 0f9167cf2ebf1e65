"""Reproduce Beluga's headline (SIGMOD'26): a CXL-pool KV cache vs Mooncake's RDMA-based store in vLLM,
replaying the Mooncake trace from almost idle to far past the baseline's capacity.

Usage: python experiments/beluga/rack_whatif.py (our rack-scale what-if; the paper-rig Table 5 is run.py)
(writes experiments/beluga/results/{sweep.csv,ttft_throughput.png,ttft_breakdown.png,ablation.csv})
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rate_sweep import peak_throughput, ratios, sweep_scenarios, variant_sweep  # noqa: E402

PAPER = {"ttft_reduction": 0.896, "throughput": 7.35}
TIME_SCALES = [0.1, 0.25, 0.5, 1, 2, 3, 4, 6]
OPERATING_POINT = 3  # configs/beluga.yaml's time_scale
# Which of the baseline connector's two properties the gain comes from (each row turns some off).
ABLATION = {
    "v0 store connector (default)": ([], "configs/beluga_mooncake.yaml"),
    "asynchronous, host-staged": (["kv_manager.blocking_send=false", "kv_manager.blocking_receive=false"],
                                  "a connector off the model runner"),
    "synchronous, GPUDirect": (["kv_manager.host_staging=null"], "no host copies"),
    "asynchronous, GPUDirect": (["kv_manager.host_staging=null", "kv_manager.blocking_send=false",
                                 "kv_manager.blocking_receive=false"], "bandwidth alone"),
}


def main() -> None:
    start = time.perf_counter()
    out = Path(__file__).resolve().parent / "results"
    configs, rows = sweep_scenarios(out, ["beluga", "beluga_mooncake"], TIME_SCALES,
                                    "trace speed-up (x recorded arrival rate)", OPERATING_POINT)
    print(f"\nbeluga vs beluga_mooncake (paper: TTFT -{PAPER['ttft_reduction']:.1%}, "
          f"throughput {PAPER['throughput']}x)")
    for r in ratios(rows, "beluga", "beluga_mooncake"):
        print(f"  speed-up {r['rate']:g}x: TTFT {1 - 1 / r['ttft_mean']:+.1%} reduction, "
              f"throughput {r['throughput']:.2f}x")
    peak = {name: peak_throughput(rows, name) for name in ("beluga", "beluga_mooncake")}
    light = ratios(rows, "beluga", "beluga_mooncake")[0]
    print(f"\nheadline: TTFT -{1 - 1 / light['ttft_mean']:.1%} at {light['rate']:g}x "
          f"(paper -{PAPER['ttft_reduction']:.1%}); "
          f"peak throughput {peak['beluga']:.2f} / {peak['beluga_mooncake']:.2f} req/s = "
          f"{peak['beluga'] / peak['beluga_mooncake']:.2f}x (paper {PAPER['throughput']}x)")
    for scale in (TIME_SCALES[0], OPERATING_POINT):
        print(f"\nablation of the baseline's connector at {scale:g}x (ratios: baseline over beluga):")
        variant_sweep(configs[0], configs[1:], ABLATION, [f"workload.time_scale={scale}"],
                      out / f"ablation_{scale:g}x.csv")
    print(f"\n{time.perf_counter() - start:.0f} s; wrote {out}/sweep.csv, ttft_throughput.png, ttft_breakdown.png, "
          "ablation_*.csv")


if __name__ == "__main__":
    main()
