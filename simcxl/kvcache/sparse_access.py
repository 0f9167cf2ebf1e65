"""Which KV entries a sparse-attention decode step selects, and how often a per-request hot buffer has them.

The model: every step selects ``topk`` of the ``context`` cached tokens. Consecutive steps' queries are
similar, so a fraction ``overlap`` of the selection is carried over from the previous step; the step's
own newest token is always selected; the rest are drawn uniformly from the other cached tokens. The hot
buffer keeps the ``buffer`` most recently selected tokens (LRU). The steady-state hit rate is not
assumed: it is measured by running this process (numpy, a few dozen steps after a warm-up) and cached
per (context bucket, top-k, buffer, overlap), so the simulator pays for it once per distinct setting.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

WARMUP_STEPS = 16
MEASURED_STEPS = 48
CONTEXT_BUCKET = 1024


@lru_cache(maxsize=4096)
def _hit_rate(context: int, topk: int, buffer: int, overlap: float, seed: int) -> float:
    if context <= topk:
        return 1.0 if buffer >= context else buffer / context
    rng = np.random.default_rng(seed)
    last_used = np.full(context, -1, dtype=np.int64)
    selected = rng.choice(context - 1, topk - 1, replace=False)
    hits = looked = 0
    for step in range(WARMUP_STEPS + MEASURED_STEPS):
        if step:
            keep = rng.choice(selected, int(round(overlap * (topk - 1))), replace=False)
            mask = np.ones(context - 1, dtype=bool)
            mask[keep] = False
            fresh = rng.choice(np.flatnonzero(mask), topk - 1 - len(keep), replace=False)
            selected = np.concatenate([keep, fresh])
        if step >= WARMUP_STEPS:
            cached = last_used >= 0
            if cached.sum() > buffer:  # the buffer holds the `buffer` most recently used tokens
                threshold = np.partition(last_used[cached], -buffer)[-buffer]
                cached &= last_used >= threshold
            hits += int(cached[selected].sum())
            looked += topk - 1
        last_used[selected] = step
    return hits / looked


def hot_buffer_hit_rate(context: int, topk: int, buffer: int, overlap: float, seed: int = 0) -> float:
    """Steady-state share of a step's selected tokens already in the hot buffer (the newest token, always
    produced in HBM by the step before, counts as a hit)."""
    bucket = max(topk + 1, int(round(context / CONTEXT_BUCKET)) * CONTEXT_BUCKET) if context > topk else context
    rate = _hit_rate(bucket, topk, buffer, round(overlap, 4), seed)
    return (rate * (topk - 1) + 1) / topk if context > topk else rate
