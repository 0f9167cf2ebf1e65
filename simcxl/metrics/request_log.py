"""Per-request records as columns: what a request leaves behind once it finishes (or the run ends).

A run of a million requests cannot keep a million request objects (their block hashes, timestamps and
bookkeeping come to kilobytes each), so the cluster records each request here as it finishes and drops
it: one slot per request in typed arrays, about 170 bytes a request. The report reads the columns as
numpy arrays without copying. Requests that never arrived keep their workload values and NaN times.
"""

from __future__ import annotations

from array import array
from operator import attrgetter

import numpy as np

from simcxl.serving.request import Request

# the request attributes recorded, by array type: 'd' float64 (NaN until set), 'q' int64
RECORDED = (
    ("arrival", "d"), ("input_tokens", "q"), ("output_tokens", "q"), ("prefill_instance", "q"),
    ("decode_instance", "q"), ("cached_tokens", "q"), ("prefill_start", "d"), ("prefix_load_end", "d"),
    ("prefill_end", "d"), ("decode_admit", "d"), ("kv_transfer_start", "d"), ("kv_transfer_end", "d"),
    ("decode_wait", "d"), ("kv_sync", "d"), ("finish", "d"), ("kv_bytes", "d"), ("join_iteration", "q"),
    ("finish_iteration", "q"))
DTYPES = {"d": np.float64, "q": np.int64}


class RequestLog:
    """One slot per request of a workload of ``len(arrival)`` requests; ``stints`` holds the earlier token
    stints of the (few) requests that were preempted, by id."""

    def __init__(self, arrival: np.ndarray, input_tokens: np.ndarray, output_tokens: np.ndarray):
        n = len(arrival)
        fresh = Request(0, 0.0, 1, 1)  # a request's values before anything happens to it (times NaN)
        for name, kind in RECORDED:
            setattr(self, name, array(kind, [getattr(fresh, name)]) * n)
        for name, values in (("arrival", arrival), ("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            kind = getattr(self, name).typecode
            column = array(kind)
            column.frombytes(np.ascontiguousarray(values, dtype=DTYPES[kind]).tobytes())
            setattr(self, name, column)
        self.stints: dict[int, tuple[tuple[int, int], ...]] = {}
        self._columns = [getattr(self, name) for name, _ in RECORDED]
        self._values = attrgetter(*(name for name, _ in RECORDED))  # every recorded attribute in one call

    def __len__(self) -> int:
        return len(self.arrival)

    def record(self, request: Request) -> None:
        i = request.id
        for column, value in zip(self._columns, self._values(request)):
            column[i] = value
        if request.stints:
            self.stints[i] = request.stints

    def column(self, name: str) -> np.ndarray:
        """A recorded attribute as a numpy array (a view of the log, not a copy)."""
        values = getattr(self, name)
        return np.frombuffer(values, dtype=DTYPES[values.typecode]) if len(values) else np.empty(0, DTYPES[values.typecode])

