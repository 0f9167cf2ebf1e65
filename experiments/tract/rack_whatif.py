"""Reproduce TraCT's headline (arXiv 2512.18194): CXL shared-memory KV transfer and rack-wide prefix cache
vs RDMA transfer, and vs a per-node DRAM cache, over a sweep of request rates.

Usage: python experiments/tract/rack_whatif.py (our rack-scale what-if study; the paper-rig reproduction is run.py)
(writes experiments/tract/results/{sweep.csv,ttft_throughput.png,ttft_breakdown.png,descriptor_cost.csv,
dram_capacity.csv,reuse.csv})
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rate_sweep import descriptor_sweep, peak_throughput, ratios, run_point, sweep_scenarios, variant_sweep, write_rows  # noqa: E402

PAPER = {"ttft_mean": 9.8, "ttft_p99": 6.2, "throughput": 1.6}
RATES = [4, 8, 12, 14, 15.5, 16, 18, 24, 32, 48, 64]
OPERATING_POINT = 15.5  # configs/tract.yaml's rate
PEAK_RATE = 64  # past every system's capacity: throughput there is each one's peak
# How much a per-node DRAM cache must hold (and so hit) for TraCT's peak-throughput gain to be the paper's.
DRAM_CAPACITIES = {f"{gib} GiB per node": ([f"kv_manager.prefix_cache.capacity={gib} GiB"], "")
                   for gib in (4, 8, 16, 24, 32, 40, 48, 64)}
# Prefix-reuse ratio (shared prefix / prompt) at the configs' mean prompt of 8,192 + 512 tokens.
PROMPT_TOKENS = 8704
REUSE = [0.25, 0.5, 0.75, 8192 / PROMPT_TOKENS]  # the last is configs/tract.yaml's own


def reuse_overrides(reuse: float) -> list[str]:
    """The workload of configs/tract.yaml with ``reuse`` of each prompt shared (16-token multiples)."""
    shared = round(reuse * PROMPT_TOKENS / 16) * 16
    question = PROMPT_TOKENS - shared
    return [f"workload.shared_prefix={{groups: 64, tokens: {shared}}}",
            f"workload.input_tokens={{dist: uniform, min: {question - 256}, max: {question + 256}}}"]


def reuse_sweep(configs: list[Path], out: Path) -> list[dict]:
    """Every baseline over TraCT at the operating point, for each prefix-reuse ratio."""
    rows = []
    for reuse in REUSE:
        points = [run_point(config, OPERATING_POINT, reuse_overrides(reuse)) for config in configs]
        for baseline in points[1:]:
            rows.append(dict(reuse=round(reuse, 3), baseline=baseline["scenario"], **ratios([points[0], baseline],
                                                                                   "tract", baseline["scenario"])[0]))
            r = rows[-1]
            print(f"  reuse {reuse:4.2f}, {r['baseline']:>15s}: TTFT mean {r['ttft_mean']:6.2f}x  "
                  f"P99 {r['ttft_p99']:6.2f}x  throughput {r['throughput']:5.2f}x", flush=True)
    write_rows(out, rows, list(rows[0]))
    return rows


def main() -> None:
    start = time.perf_counter()
    out = Path(__file__).resolve().parent / "results"
    configs, rows = sweep_scenarios(out, ["tract", "tract_rdma", "tract_dram", "tract_mooncake"], RATES,
                                    "offered load (requests/s)", OPERATING_POINT)
    for baseline in ("tract_rdma", "tract_dram", "tract_mooncake"):
        print(f"\n{baseline} / tract (paper, 'up to': TTFT mean {PAPER['ttft_mean']}x, P99 {PAPER['ttft_p99']}x, "
              f"peak throughput {PAPER['throughput']}x)")
        for r in ratios(rows, "tract", baseline):
            print(f"  rate {r['rate']:>5g}: TTFT mean {r['ttft_mean']:6.2f}x  P99 {r['ttft_p99']:6.2f}x  "
                  f"throughput {r['throughput']:5.2f}x")
        peak = {name: peak_throughput(rows, name) for name in ("tract", baseline)}
        print(f"  peak throughput over the sweep: {peak['tract']:.2f} vs {peak[baseline]:.2f} req/s = "
              f"{peak['tract'] / peak[baseline]:.2f}x")
    print(f"\nprefix-reuse ratio, at {OPERATING_POINT} req/s:")
    reuse_sweep(configs, out / "reuse.csv")
    print(f"\nper-descriptor posting cost on the baselines' block paths, at {OPERATING_POINT} req/s "
          "(what it would take):")
    descriptor_sweep(configs[0], configs[1:], [], out / "descriptor_cost.csv")
    print(f"\nper-node DRAM cache capacity of tract_dram, at {PEAK_RATE} req/s (the baseline's hit rate vs the gain):")
    variant_sweep(configs[0], [configs[2]], DRAM_CAPACITIES, [f"workload.rate={PEAK_RATE}"], out / "dram_capacity.csv")
    print(f"\n{time.perf_counter() - start:.0f} s; wrote {out}/sweep.csv, ttft_throughput.png, ttft_breakdown.png, "
          "descriptor_cost.csv, dram_capacity.csv, reuse.csv")


if __name__ == "__main__":
    main()
