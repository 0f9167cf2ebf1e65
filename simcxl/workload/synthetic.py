"""Synthetic workloads: Poisson or bursty (gamma) arrivals with lengths from simple distributions.

Each request carries chained block hashes (one per ``block_tokens`` of prompt) so prefix caching works
on synthetic traffic too: with ``shared_prefix``, every request belongs to one of ``groups`` that share
their first ``tokens`` of prompt (a system prompt, few-shot examples) in front of its own tokens.
All randomness comes from one numpy Generator seeded by the scenario's seed.
"""

from __future__ import annotations

import math
from itertools import count

import numpy as np

from simcxl.config.schema import FixedLength, LognormalLength, PoissonWorkload, UniformLength
from simcxl.serving.request import Request


def sample_lengths(spec: FixedLength | UniformLength | LognormalLength, n: int, rng: np.random.Generator
                   ) -> np.ndarray:
    """``n`` token counts from a length distribution, as int64 within [1, its upper bound]."""
    if isinstance(spec, FixedLength):
        return np.full(n, spec.value, dtype=np.int64)
    if isinstance(spec, UniformLength):
        return rng.integers(spec.min, spec.max + 1, size=n, dtype=np.int64)
    mu = math.log(spec.mean) - spec.sigma**2 / 2  # so that the untruncated mean is spec.mean
    return np.clip(np.rint(rng.lognormal(mu, spec.sigma, size=n)), 1, spec.max).astype(np.int64)


def interarrival_times(rate: float, burstiness: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaps with mean 1/rate and coefficient of variation ``burstiness`` (1: Poisson; > 1: bursty gamma)."""
    if burstiness == 1.0:
        return rng.exponential(1.0 / rate, size=n)
    shape = 1.0 / burstiness**2
    return rng.gamma(shape, 1.0 / (rate * shape), size=n)


def poisson_requests(spec: PoissonWorkload, seed: int) -> list[Request]:
    rng = np.random.default_rng(seed)
    n = spec.num_requests
    arrivals = np.cumsum(interarrival_times(spec.rate, spec.burstiness, n, rng))
    inputs = sample_lengths(spec.input_tokens, n, rng)
    outputs = sample_lengths(spec.output_tokens, n, rng)
    groups = rng.integers(spec.shared_prefix.groups, size=n) if spec.shared_prefix else None
    fresh = count()
    group_blocks: dict[int, tuple[int, ...]] = {}
    requests = []
    for i in range(n):
        prefix: tuple[int, ...] = ()
        prefix_tokens = 0
        if groups is not None:
            prefix_tokens = spec.shared_prefix.tokens
            g = int(groups[i])
            if g not in group_blocks:
                group_blocks[g] = tuple(next(fresh) for _ in range(prefix_tokens // spec.block_tokens))
            prefix = group_blocks[g]
        n_in = prefix_tokens + int(inputs[i])
        own = math.ceil(n_in / spec.block_tokens) - len(prefix)
        requests.append(Request(i, float(arrivals[i]), n_in, int(outputs[i]),
                                prefix + tuple(next(fresh) for _ in range(own))))
    return requests
