"""The requests a run replays, as columns, and how a workload finds the files it names."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from simcxl.sim.request import Request


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
        self.rounds: list[int | None] | None = None  # sent again in rounds: each round's clients (None: open loop)
        self.round_requests = len(self.arrival)  # requests per round (all of them without rounds)

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
        return self.requests(0, len(self))

    def requests(self, lo: int, hi: int) -> Iterator[Request]:
        """Requests ``lo`` to ``hi`` (exclusive) in order, made one by one."""
        for start in range(lo, hi, 4096):
            stop = min(start + 4096, hi)
            for i, arrival, n_in, n_out in zip(range(start, stop), self.arrival[start:stop].tolist(),
                                               self.input_tokens[start:stop].tolist(),
                                               self.output_tokens[start:stop].tolist()):
                yield Request(i, arrival, n_in, n_out, self.hashes(i))

    def repeated(self, rounds: list[int | None]) -> "Workload":
        """This workload sent ``len(rounds)`` times, one round after another (``rounds``: each round's clients,
        None for open loop): request i of round r has id r*N + i and request i's prompt (the same block
        hashes); its arrival is relative to its round's start (the cluster offsets it)."""
        n, count = len(self), len(rounds)
        base = self.hashes
        out = Workload(np.tile(self.arrival, count), np.tile(self.input_tokens, count),
                       np.tile(self.output_tokens, count), (lambda i: base(i % n)) if n else base,
                       self.block_tokens, self.bad_rows, self.concurrency)
        out.rounds, out.round_requests = list(rounds), n
        return out

    @property
    def largest(self) -> int:
        """The id of the request with the most KV (prompt + output) when it finishes (-1: none)."""
        return int(np.argmax(self.input_tokens + self.output_tokens)) if len(self) else -1


Resolver = Callable[[tuple[str, ...], str], Path]


def as_written(key_path: tuple[str, ...], written: str) -> Path:
    return Path(written)
