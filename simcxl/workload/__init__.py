"""Workloads: the requests a run replays, from synthetic generators or real traces."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from simcxl.config.schema import ClosedLoopWorkload, PoissonWorkload, TraceWorkload
from simcxl.serving.request import Request


@dataclass
class Workload:
    """Requests sorted by arrival, the tokens per prefix-block hash, and trace rows that were skipped."""

    requests: list[Request]
    block_tokens: int
    bad_rows: list[str] = field(default_factory=list)
    concurrency: int | None = None  # closed loop: that many clients; None: requests arrive at their times


Resolver = Callable[[tuple[str, ...], str], Path]

BYTES_PER_REQUEST = 16_000  # measured peak RSS per simulated request (benchmarks/RESULTS.md: ~14.6 KB)


def block_tokens_of(spec: PoissonWorkload | TraceWorkload | ClosedLoopWorkload) -> int:
    """Tokens per prefix-block hash of the workload a spec describes (known before it is built)."""
    from simcxl.workload.traces import MOONCAKE_BLOCK_TOKENS

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


def as_written(key_path: tuple[str, ...], written: str) -> Path:
    return Path(written)


def build_workload(spec: PoissonWorkload | TraceWorkload | ClosedLoopWorkload, seed: int, resolve: Resolver = as_written) -> Workload:
    """The workload a spec describes; ``resolve(key path, path as written)`` finds the files it names."""
    from simcxl.workload.synthetic import closed_loop_requests, poisson_requests
    from simcxl.workload.traces import MOONCAKE_BLOCK_TOKENS, load_trace

    if isinstance(spec, PoissonWorkload):
        return Workload(poisson_requests(spec, seed, resolve), spec.block_tokens)
    if isinstance(spec, ClosedLoopWorkload):
        return Workload(closed_loop_requests(spec, seed, resolve), spec.block_tokens, concurrency=spec.concurrency)
    requests, bad = load_trace(resolve(("workload", "path"), spec.path), spec.format,
                               skip_bad_rows=spec.skip_bad_rows, first=spec.first, start=spec.start, end=spec.end,
                               time_scale=spec.time_scale, max_input_tokens=spec.max_input_tokens,
                               max_output_tokens=spec.max_output_tokens)
    return Workload(requests, MOONCAKE_BLOCK_TOKENS, bad)
