"""Synthetic workloads: Poisson arrivals with lengths drawn from simple distributions.

All randomness comes from one numpy Generator seeded by the scenario's seed, so a scenario and seed
always produce the same requests.
"""

from __future__ import annotations

import math

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


def poisson_requests(spec: PoissonWorkload, seed: int) -> list[Request]:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / spec.rate, size=spec.num_requests))
    inputs = sample_lengths(spec.input_tokens, spec.num_requests, rng)
    outputs = sample_lengths(spec.output_tokens, spec.num_requests, rng)
    return [Request(i, float(t), int(n_in), int(n_out))
            for i, (t, n_in, n_out) in enumerate(zip(arrivals, inputs, outputs))]


def build_workload(spec: PoissonWorkload, seed: int) -> list[Request]:
    """The requests of a workload spec, sorted by arrival."""
    return poisson_requests(spec, seed)
