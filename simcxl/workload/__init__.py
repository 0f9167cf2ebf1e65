"""Workloads: the requests a run replays, from synthetic generators or real traces."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from simcxl.config.schema import ClosedLoopWorkload, PoissonWorkload, TraceWorkload
from simcxl.serving.request import Request


class Workload:
    """The requests a run replays, sorted by arrival, as columns: a request object is made only when the
    cluster sends it, so a run of millions holds only the requests in flight. Also the trace rows that were
    skipped, and, for a closed loop, the number of clients.

    ``hashes(i)`` gives request i's prefix-block hashes (chained: one per ``block_tokens`` of prompt)."""

    def __init__(self, arrival: np.ndarray, input_tokens: np.ndarray, output_tokens: np.ndarray,
                 hashes: Callable[[int], Sequence[int]], block_tokens: int, bad_rows: list[str] | None = None,
                 concurrency: int | None = None):
        if not len(arrival) == len(input_tokens) == len(output_tokens):
            raise ValueError(f"workload columns differ in length: {len(arrival)}, {len(input_tokens)}, "
                             f"{len(output_tokens)}")
        self.arrival = np.asarray(arrival, dtype=np.float64)
        self.input_tokens = np.asarray(input_tokens, dtype=np.int64)
        self.output_tokens = np.asarray(output_tokens, dtype=np.int64)
        self.hashes = hashes
        self.block_tokens = block_tokens
        self.bad_rows = bad_rows or []
        self.concurrency = concurrency  # closed loop: that many clients; None: requests arrive at their times

    @classmethod
    def of_requests(cls, requests: list[Request], block_tokens: int, bad_rows: list[str] | None = None,
                    concurrency: int | None = None) -> "Workload":
        """A workload of requests already made (ids 0, 1, ... in order), e.g. read from a trace."""
        hashes = [r.block_hashes for r in requests]
        return cls(np.array([r.arrival for r in requests], dtype=np.float64),
                   np.array([r.input_tokens for r in requests], dtype=np.int64),
                   np.array([r.output_tokens for r in requests], dtype=np.int64),
                   hashes.__getitem__, block_tokens, bad_rows, concurrency)

    def __len__(self) -> int:
        return len(self.arrival)

    def request(self, i: int) -> Request:
        return Request(i, float(self.arrival[i]), int(self.input_tokens[i]), int(self.output_tokens[i]),
                       self.hashes(i))

    def __iter__(self) -> Iterator[Request]:
        """The requests in order, made one by one (columns are read a chunk at a time as Python numbers)."""
        for start in range(0, len(self), 4096):
            stop = min(start + 4096, len(self))
            for i, arrival, n_in, n_out in zip(range(start, stop), self.arrival[start:stop].tolist(),
                                               self.input_tokens[start:stop].tolist(),
                                               self.output_tokens[start:stop].tolist()):
                yield Request(i, arrival, n_in, n_out, self.hashes(i))

    @property
    def largest(self) -> int:
        """The id of the request with the most KV (prompt + output) when it finishes (-1: none)."""
        return int(np.argmax(self.input_tokens + self.output_tokens)) if len(self) else -1


Resolver = Callable[[tuple[str, ...], str], Path]

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
    from simcxl.workload.synthetic import closed_loop_workload, poisson_workload
    from simcxl.workload.traces import load_trace

    if isinstance(spec, PoissonWorkload):
        return poisson_workload(spec, seed, resolve)
    if isinstance(spec, ClosedLoopWorkload):
        return closed_loop_workload(spec, seed, resolve)
    return load_trace(resolve(("workload", "path"), spec.path), spec.format, skip_bad_rows=spec.skip_bad_rows,
                      first=spec.first, start=spec.start, end=spec.end, time_scale=spec.time_scale,
                      max_input_tokens=spec.max_input_tokens, max_output_tokens=spec.max_output_tokens)
