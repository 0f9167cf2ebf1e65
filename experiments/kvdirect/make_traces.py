"""KVDirect's repository benchmark (TensorDirect/KVDirect, KVDirect/benchmark/feed_data.sh): 50 requests of one
fixed (prompt, response) length pair, sent at a constant inter-arrival of 1/QPS. Written as Mooncake-format traces
at 1 request/s (``workload.time_scale`` = QPS replays them at QPS): configs/papers/kvdirect/traces/isl{I}_osl{O}.jsonl.
hash_ids are unique per request (the benchmark's prompts share no prefix the scenarios could reuse: no prefix cache).

Usage: python experiments/kvdirect/make_traces.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

PAIRS = [(8192, 128), (16384, 128), (32768, 128), (8192, 512), (16384, 512), (32768, 512), (64000, 1)]  # feed_data.sh
REQUESTS = 50  # feed_data.sh: num_req=50
BLOCK = 512  # simcxl.workload.traces.MOONCAKE_BLOCK_TOKENS
OUT = Path(__file__).resolve().parents[2] / "configs" / "papers" / "kvdirect" / "traces"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for isl, osl in PAIRS:
        blocks = math.ceil(isl / BLOCK)
        lines = [json.dumps({"timestamp": i * 1000, "input_length": isl, "output_length": osl,
                             "hash_ids": list(range(i * blocks, (i + 1) * blocks))}) for i in range(REQUESTS)]
        (OUT / f"isl{isl}_osl{osl}.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
