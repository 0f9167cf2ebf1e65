"""Workloads: the requests a run replays, from synthetic generators or real traces."""

from __future__ import annotations

import os

import numpy as np

from simcxl.config.schema import ClosedLoopWorkload, PoissonWorkload, TraceWorkload, round_concurrency
from simcxl.workload.synthetic import closed_loop_workload, poisson_workload
from simcxl.workload.traces import MOONCAKE_BLOCK_TOKENS, load_trace
from simcxl.workload.workload import Resolver, Workload, as_written

__all__ = ["Resolver", "Workload", "as_written", "block_tokens_of", "build_workload", "bytes_per_request",
           "length_bounds", "memory_bytes"]


# Peak memory per simulated request, measured (benchmarks/RESULTS.md): prompts that share nothing keep only
# columns (1M requests of configs/rdma.yaml: 1,459 MB); prompts with shared prefixes or conversations keep
# every request's block hashes (~14.6 KB each before requests were streamed, the bound kept for them).
BYTES_PER_FRESH_REQUEST = 1_500
BYTES_PER_SHARING_REQUEST = 16_000


def bytes_per_request(spec: PoissonWorkload | TraceWorkload | ClosedLoopWorkload) -> int:
    """Memory one request of this workload takes over a run (for refusing runs that cannot fit)."""
    sharing = getattr(spec, "shared_prefix", None) is not None or getattr(spec, "conversation", None) is not None
    return BYTES_PER_SHARING_REQUEST if sharing or isinstance(spec, TraceWorkload) else BYTES_PER_FRESH_REQUEST


def block_tokens_of(spec: PoissonWorkload | TraceWorkload | ClosedLoopWorkload) -> int:
    """Tokens per prefix-block hash of the workload a spec describes (known before it is built)."""
    return MOONCAKE_BLOCK_TOKENS if isinstance(spec, TraceWorkload) else spec.block_tokens


def length_bounds(spec: PoissonWorkload | TraceWorkload | ClosedLoopWorkload) -> dict[str, int]:
    """The largest token count each synthetic length setting can produce, by key path (traces: none).
    Checked against the KV room before any request is drawn, so that an absurd length fails at once
    instead of allocating its block hashes."""
    if isinstance(spec, TraceWorkload):
        return {}
    bounds = {}
    for key in ("input_tokens", "output_tokens"):
        length = getattr(spec, key)
        upper = getattr(length, "value", None) or getattr(length, "max", None)
        if upper is not None:
            bounds[f"workload.{key}"] = upper
    if getattr(spec, "shared_prefix", None) is not None:
        bounds["workload.shared_prefix.tokens"] = spec.shared_prefix.tokens
    return bounds


def memory_bytes() -> int:
    """Physical memory of this machine (0 where the platform does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def build_workload(spec: PoissonWorkload | TraceWorkload | ClosedLoopWorkload, seed: int, resolve: Resolver = as_written,
                   context_window: int | None = None) -> Workload:
    """The workload a spec describes; ``resolve(key path, path as written)`` finds the files it names; with
    ``rounds``, sent that many times (:meth:`Workload.repeated`). A trace's requests must fit ``context_window``."""
    workload = _one_round(spec, seed, resolve, context_window)
    rounds = round_concurrency(spec)
    return workload if rounds is None else workload.repeated(rounds)


def _one_round(spec: PoissonWorkload | TraceWorkload | ClosedLoopWorkload, seed: int, resolve: Resolver,
               context_window: int | None) -> Workload:
    if isinstance(spec, PoissonWorkload):
        return poisson_workload(spec, seed, resolve)
    if isinstance(spec, ClosedLoopWorkload):
        return closed_loop_workload(spec, seed, resolve)
    trace = load_trace(resolve(("workload", "path"), spec.path), spec.format, skip_bad_rows=spec.skip_bad_rows,
                      first=spec.first, start=spec.start, end=spec.end, time_scale=spec.time_scale,
                      max_input_tokens=spec.max_input_tokens, max_output_tokens=spec.max_output_tokens,
                      context_window=context_window)
    if spec.concurrency is not None:  # a closed loop over the trace's prompts: each arrives when it is sent
        trace = Workload(np.zeros(len(trace)), trace.input_tokens, trace.output_tokens, trace.hashes,
                         trace.block_tokens, trace.bad_rows, spec.concurrency)
    return trace
