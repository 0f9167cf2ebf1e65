"""Per-request records as columns: what a request leaves behind once it finishes (or the run ends).

A run of a million requests cannot keep a million request objects (their block hashes, timestamps and
bookkeeping come to kilobytes each), so the cluster records each request here as it finishes and drops
it: one fixed-size row per request in one buffer, about 150 bytes a request, written by a single
``struct`` call. The report reads each column as a numpy view of the buffer, without copying. Requests
that never arrived keep their workload values and NaN times. The log counts the rows of each block of
consecutive ids still to come, and says when a block is whole, so the table can be built while the run goes on.
"""

from __future__ import annotations

from operator import attrgetter
from struct import Struct
from typing import Callable

import numpy as np

from simcxl.sim.request import Request

# the request attributes recorded, by type: 'd' float64 (NaN until set), 'q' int64
RECORDED = (
    ("arrival", "d"), ("input_tokens", "q"), ("output_tokens", "q"), ("prefill_instance", "q"),
    ("decode_instance", "q"), ("cached_tokens", "q"), ("prefill_start", "d"), ("prefix_load_end", "d"),
    ("prefill_end", "d"), ("decode_admit", "d"), ("kv_transfer_start", "d"), ("kv_transfer_end", "d"),
    ("decode_wait", "d"), ("kv_sync", "d"), ("finish", "d"), ("kv_bytes", "d"), ("join_iteration", "q"),
    ("finish_iteration", "q"))
ROW = Struct("<" + "".join(kind for _, kind in RECORDED))  # one request's row, packed little-endian
DTYPE = np.dtype([(name, "<f8" if kind == "d" else "<i8") for name, kind in RECORDED])  # the same row for numpy
BLOCK_BITS = 16  # a block is 65,536 consecutive ids: a few MB of columns, ~15 blocks for a million requests


def blocks(requests: int) -> int:
    """How many blocks ``requests`` ids make (one, empty, when there are none)."""
    return max(-(-requests >> BLOCK_BITS), 1)


def block_ids(block: int, requests: int) -> tuple[int, int]:
    """The ids [first, last) of a block of ``requests`` ids."""
    return block << BLOCK_BITS, min((block + 1) << BLOCK_BITS, requests)


class RequestLog:
    """One row per request of a workload of ``len(arrival)`` requests; ``stints`` holds the earlier token
    stints of the (few) requests that were preempted, by id. ``on_block(block)`` is called when every request
    of a block has been recorded."""

    def __init__(self, arrival: np.ndarray, input_tokens: np.ndarray, output_tokens: np.ndarray,
                 on_block: Callable[[int], None] | None = None):
        self._buffer = bytearray(ROW.size * len(arrival))
        self._rows = np.frombuffer(self._buffer, dtype=DTYPE)
        fresh = Request(0, 0.0, 1, 1)  # a request's values before anything happens to it (times NaN)
        self._rows[:] = tuple(getattr(fresh, name) for name, _ in RECORDED)
        self._rows["arrival"], self._rows["input_tokens"], self._rows["output_tokens"] = (
            arrival, input_tokens, output_tokens)
        self.stints: dict[int, tuple[tuple[int, int], ...]] = {}
        self._values = attrgetter(*(name for name, _ in RECORDED))  # every recorded attribute in one call
        self._on_block = on_block or (lambda block: None)
        count = len(arrival)
        self._unrecorded = [hi - lo for lo, hi in (block_ids(b, count) for b in range(blocks(count)))]

    def __len__(self) -> int:
        return len(self._rows)

    def record(self, request: Request) -> None:
        ROW.pack_into(self._buffer, request.id * ROW.size, *self._values(request))
        if request.stints:
            self.stints[request.id] = request.stints
        unrecorded, block = self._unrecorded, request.id >> BLOCK_BITS
        unrecorded[block] -= 1
        if not unrecorded[block]:
            self._on_block(block)

    def column(self, name: str) -> np.ndarray:
        """A recorded attribute as a numpy array (a view of the log, not a copy)."""
        return self._rows[name]
