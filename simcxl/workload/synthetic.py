"""Synthetic workloads: Poisson or bursty (gamma) arrivals with lengths from simple or empirical distributions,
or a closed loop of clients (arrivals decided during the run).

Each request carries chained block hashes (one per ``block_tokens`` of prompt; a block's hash stands
for every token up to its end) so prefix caching works on synthetic traffic too:
- ``shared_prefix``: every request belongs to one of ``groups`` that share their first ``tokens`` of
  prompt (a system prompt, few-shot examples) in front of its own tokens;
- ``conversation``: requests come in multi-turn chats whose every prompt re-sends the history, so a
  turn reuses the full blocks of the previous turns' prompts and answers.
All randomness comes from one numpy Generator seeded by the scenario's seed.
"""

from __future__ import annotations

import math
from array import array
from itertools import count
from pathlib import Path
from typing import Callable

import numpy as np

from simcxl.config.schema import (ClosedLoopWorkload, EmpiricalLength, FixedLength, LognormalLength, PoissonWorkload,
                                  UniformLength)
from simcxl.sim.request import Request
from simcxl.workload.workload import Resolver, Workload, as_written

Length = FixedLength | UniformLength | LognormalLength | EmpiricalLength


def sample_lengths(spec: Length, n: int, rng: np.random.Generator, trace_path: Callable[[str], Path] = Path
                   ) -> np.ndarray:
    """``n`` token counts from a length distribution, as int64 within [1, its upper bound]."""
    if isinstance(spec, FixedLength):
        return np.full(n, spec.value, dtype=np.int64)
    if isinstance(spec, UniformLength):
        return rng.integers(spec.min, spec.max + 1, size=n, dtype=np.int64)
    if isinstance(spec, EmpiricalLength):
        from simcxl.workload.traces import load_trace

        trace = load_trace(trace_path(spec.trace), spec.format)
        values = trace.input_tokens if spec.column == "input" else trace.output_tokens
        picked = rng.choice(values, size=n)
        return np.minimum(picked, spec.max).astype(np.int64) if spec.max else picked.astype(np.int64)
    mu = math.log(spec.mean) - spec.sigma**2 / 2  # so that the untruncated mean is spec.mean
    return np.clip(np.rint(rng.lognormal(mu, spec.sigma, size=n)), 1, spec.max).astype(np.int64)


def interarrival_times(rate: float, burstiness: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaps with mean 1/rate and coefficient of variation ``burstiness`` (1: Poisson; > 1: bursty gamma)."""
    if burstiness == 1.0:
        return rng.exponential(1.0 / rate, size=n)
    shape = 1.0 / burstiness**2
    return rng.gamma(shape, 1.0 / (rate * shape), size=n)


class _TokenStream:
    """The growing token sequence of one conversation (or one request), as chained block hashes."""

    def __init__(self, fresh: count, block_tokens: int, shared: tuple[int, ...] = ()):
        self.fresh = fresh
        self.block_tokens = block_tokens
        self.full_blocks = list(shared)

    def prompt_hashes(self, tokens: int) -> tuple[int, ...]:
        """Hashes of a prompt of ``tokens`` that starts with this stream (its last block may be partial)."""
        full, partial = divmod(tokens, self.block_tokens)
        while len(self.full_blocks) < full:
            self.full_blocks.append(next(self.fresh))
        return tuple(self.full_blocks[:full]) + ((next(self.fresh),) if partial else ())


def _fresh_hashes(input_tokens: np.ndarray, block_tokens: int) -> Callable[[int], range]:
    """Hashes of prompts that share nothing: each takes the next ceil(tokens / block_tokens) fresh numbers,
    so request i's are one range, found from a running sum instead of being stored."""
    ends = np.cumsum(-(-input_tokens // block_tokens), dtype=np.int64)
    bounds = array("q", [0])  # bounds[i], bounds[i + 1]: request i's range, read as Python ints (8 bytes each)
    bounds.frombytes(ends.tobytes())
    return lambda i: range(bounds[i], bounds[i + 1])


def poisson_workload(spec: PoissonWorkload, seed: int, resolve: Resolver = as_written) -> Workload:
    rng = np.random.default_rng(seed)
    n = spec.num_requests
    turns = spec.conversation.turns if spec.conversation else 1
    starts = np.cumsum(interarrival_times(spec.rate / turns, spec.burstiness, math.ceil(n / turns), rng))
    inputs = sample_lengths(spec.input_tokens, n, rng, lambda p: resolve(("workload", "input_tokens", "trace"), p))
    outputs = sample_lengths(spec.output_tokens, n, rng, lambda p: resolve(("workload", "output_tokens", "trace"), p))
    if not spec.shared_prefix and not spec.conversation:  # arrivals already in order, prompts share nothing
        return Workload(starts, inputs, outputs, _fresh_hashes(inputs, spec.block_tokens), spec.block_tokens)
    groups = rng.integers(spec.shared_prefix.groups, size=len(starts)) if spec.shared_prefix else None
    fresh = count()
    group_blocks: dict[int, tuple[int, ...]] = {}
    drafts = []  # (arrival, conversation, turn, input tokens, output tokens, hashes)
    for c, start in enumerate(starts):
        shared: tuple[int, ...] = ()
        history = 0
        if groups is not None:
            g = int(groups[c])
            if g not in group_blocks:
                group_blocks[g] = tuple(next(fresh) for _ in range(spec.shared_prefix.tokens // spec.block_tokens))
            shared, history = group_blocks[g], spec.shared_prefix.tokens
        stream = _TokenStream(fresh, spec.block_tokens, shared)
        for t in range(turns):
            i = c * turns + t
            if i >= n:
                break
            prompt = history + int(inputs[i])
            arrival = float(start) + (t * spec.conversation.think_time if spec.conversation else 0.0)
            drafts.append((arrival, c, t, prompt, int(outputs[i]), stream.prompt_hashes(prompt)))
            history = prompt + int(outputs[i])
    drafts.sort(key=lambda d: (d[0], d[1], d[2]))
    return Workload.of_requests([Request(i, arrival, n_in, n_out, hashes)
                                 for i, (arrival, _, _, n_in, n_out, hashes) in enumerate(drafts)], spec.block_tokens)


def closed_loop_workload(spec: ClosedLoopWorkload, seed: int, resolve: Resolver = as_written) -> Workload:
    """The requests closed-loop clients send, in sending order; each arrives when it is sent (set by the
    cluster), so ``arrival`` is 0 here. Prompts share nothing (a benchmark's random dataset)."""
    rng = np.random.default_rng(seed)
    n = spec.num_requests
    inputs = sample_lengths(spec.input_tokens, n, rng, lambda p: resolve(("workload", "input_tokens", "trace"), p))
    outputs = sample_lengths(spec.output_tokens, n, rng, lambda p: resolve(("workload", "output_tokens", "trace"), p))
    return Workload(np.zeros(n), inputs, outputs, _fresh_hashes(inputs, spec.block_tokens), spec.block_tokens,
                    concurrency=spec.concurrency)
