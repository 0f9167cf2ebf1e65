"""Reproduce KVDirect's headline (arXiv 2501.14743): pull-based, tensor-centric KV transfer vs a
message-based synchronous push, per-request latency over a sweep of request rates.

Usage: python experiments/kvdirect/rack_whatif.py (our rack-scale what-if; the repo-benchmark reproduction is run.py)   (writes experiments/kvdirect/results/{sweep.csv,ttft_throughput.png})
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rate_sweep import sweep_scenarios  # noqa: E402

PAPER_LATENCY_REDUCTION = 0.55
RATES = [16, 24, 28, 32, 34, 35, 36, 37, 38]


def main() -> None:
    start = time.perf_counter()
    out = Path(__file__).resolve().parent / "results"
    _, rows = sweep_scenarios(out, ["kvdirect", "kvdirect_push"], RATES, "offered load (requests/s)", 35)
    by = {(r["scenario"], r["rate"]): r for r in rows}
    print(f"\nper-request latency (E2E) reduction of pull vs push (paper: {PAPER_LATENCY_REDUCTION:.0%})")
    for rate in RATES:
        pull, push = by[("kvdirect", rate)], by[("kvdirect_push", rate)]
        print(f"  rate {rate:>3g}: E2E {1 - pull['e2e_mean_s'] / push['e2e_mean_s']:6.1%}, "
              f"TTFT {1 - pull['ttft_mean_s'] / push['ttft_mean_s']:6.1%}")
    print(f"\n{time.perf_counter() - start:.0f} s; wrote {out}/sweep.csv and ttft_throughput.png")


if __name__ == "__main__":
    main()
