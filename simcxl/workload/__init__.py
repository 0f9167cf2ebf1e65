"""Workloads: the requests a run replays, from synthetic generators or real traces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from simcxl.config.schema import PoissonWorkload, TraceWorkload
from simcxl.serving.request import Request


@dataclass
class Workload:
    """Requests sorted by arrival, the tokens per prefix-block hash, and trace rows that were skipped."""

    requests: list[Request]
    block_tokens: int
    bad_rows: list[str] = field(default_factory=list)


Resolver = Callable[[tuple[str, ...], str], Path]


def as_written(key_path: tuple[str, ...], written: str) -> Path:
    return Path(written)


def build_workload(spec: PoissonWorkload | TraceWorkload, seed: int, resolve: Resolver = as_written) -> Workload:
    """The workload a spec describes; ``resolve(key path, path as written)`` finds the files it names."""
    from simcxl.workload.synthetic import poisson_requests
    from simcxl.workload.traces import MOONCAKE_BLOCK_TOKENS, load_trace

    if isinstance(spec, PoissonWorkload):
        return Workload(poisson_requests(spec, seed, resolve), spec.block_tokens)
    requests, bad = load_trace(resolve(("workload", "path"), spec.path), spec.format,
                               skip_bad_rows=spec.skip_bad_rows, first=spec.first, start=spec.start, end=spec.end,
                               time_scale=spec.time_scale, max_input_tokens=spec.max_input_tokens,
                               max_output_tokens=spec.max_output_tokens)
    return Workload(requests, MOONCAKE_BLOCK_TOKENS, bad)
