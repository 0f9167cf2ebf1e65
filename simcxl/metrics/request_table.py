"""The per-request table, built a block of requests at a time while the run goes on.

A request's token times (first token, TBT mean and max) are known once the iteration of its last token has
ended. So when every request of a block of ids has been recorded (:class:`RequestLog` says when), a helper
thread works out the block's token times and, when the run writes a results folder, appends the block to
requests.csv and .parquet. numpy and Arrow do most of that without the GIL, on the core the simulation
leaves idle: a million-request run's table is mostly built, and written, by the time its last event runs.
What is left (blocks with requests still running or never sent) is done at the end. Blocks are fixed
ranges of ids, handed over in order, so the numbers and the files do not depend on which finished early.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from simcxl.metrics import request_log
from simcxl.metrics.results import TableFiles
from simcxl.metrics.token_times import TokenTimes

if TYPE_CHECKING:
    from simcxl.serving.cluster import Cluster


class RequestTable:
    """The table of ``cluster``'s requests, streamed into the results folder ``output`` when one is given."""

    def __init__(self, cluster: Cluster, output: Path | None = None):
        self.cluster = cluster
        self.times: TokenTimes | None = None  # made when the first block is handed over: the log exists then
        self._files = TableFiles(output, "requests") if output is not None else None  # a bad folder fails now
        self._handed = 0  # blocks handed over for their token times
        self._appended = 0  # blocks handed over to be appended to the files
        self._whole: set[int] = set()  # blocks recorded whole that wait for an earlier one
        self._helper: ThreadPoolExecutor | None = None
        self._jobs: list[Future] = []
        self._failed = False  # a job failed, and the run was stopped

    def block_recorded(self, block: int) -> None:
        """The log's ``on_block``: hand over this block and the whole ones after it, if the ones before are."""
        if self._failed:  # the run is stopping: the requests still in flight are being recorded
            return
        self._whole.add(block)
        while self._handed in self._whole:
            self._whole.remove(self._handed)
            self._submit(self._add_block, *self._take(self._handed))
            self._handed += 1
            if self._files is not None:
                self._submit(self._append, self._files, self._appended)
                self._appended += 1
        while self._jobs and self._jobs[0].done():  # a failed job (a full disk) stops the run now
            error = self._jobs.pop(0).exception()
            if error is not None:
                self._failed = True
                raise error

    def finish(self) -> pd.DataFrame:
        """The whole table, once the run is over (the blocks not handed over get their token times here)."""
        self._wait()
        requests = len(self.cluster.log)
        for block in range(self._handed, request_log.blocks(requests)):
            self._add_block(*self._take(block))
        self._handed = request_log.blocks(requests)
        return pd.DataFrame(self.columns(0, requests), copy=False)  # views of the columns: no copy

    def distribution(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The run's token intervals and how many sequences saw each (after :meth:`finish`); with rounds, those
        of the measured (last) round: rounds never overlap, so its sequences saw only intervals between
        iterations that ended after it began (earlier ends are made NaN here, and their gaps dropped). The
        gaps preemptions cut are kept from every round."""
        ends = [np.frombuffer(worker.iteration_ends, dtype=float) for worker in self.cluster.token_workers]
        starts = self.cluster.round_starts
        if len(starts) < 2:
            return self.times.distribution(ends)
        ends = [np.where(e >= starts[-1], e, np.nan) for e in ends]
        gaps, counts = self.times.distribution(ends)
        kept = [~np.isnan(g) for g in gaps]
        return [g[k] for g, k in zip(gaps, kept)], [c[k] for c, k in zip(counts, kept)]

    def write(self, out_dir: Path) -> Callable[[], None]:
        """Start appending the blocks not yet written (all of them, if the table was not streamed into
        ``out_dir``) and renaming the files into place; returns the wait for that, which raises what the
        writing raised. The caller's thread can work meanwhile."""
        if self._files is None:
            self._files = TableFiles(out_dir, "requests")
        for block in range(self._appended, self._handed):
            self._submit(self._append, self._files, block)
        self._submit(self._files.commit)
        self._files, self._appended = None, 0  # written whole: a later write starts afresh
        return self._wait

    def abort(self) -> None:
        """Remove the files being streamed, if any (a run that failed leaves nothing half-written)."""
        try:
            self._wait()
        except Exception:  # the run's own error is the one to report
            pass
        if self._files is not None:
            self._files.abort()
            self._files = None

    def columns(self, lo: int, hi: int) -> dict[str, np.ndarray]:
        """Rows ``lo`` to ``hi``, column by column (views where a column is recorded as it is). TTFT and E2E
        are what the client sees: from sending the request to receiving the token, through the frontend."""
        log, times, out = self.cluster.log, self.times, self.cluster.frontend_latency

        def recorded(name: str) -> np.ndarray:
            return log.column(name)[lo:hi]

        arrival, finish, first_token = recorded("arrival"), recorded("finish"), times.first_token[lo:hi]
        rounds = {} if self.cluster.workload.rounds is None else {
            "round": np.arange(lo, hi) // max(self.cluster.workload.round_requests, 1)}
        return {
            "id": np.arange(lo, hi), **rounds, "arrival_s": arrival, "input_tokens": recorded("input_tokens"),
            "output_tokens": recorded("output_tokens"), "prefill_instance": recorded("prefill_instance"),
            "decode_instance": recorded("decode_instance"), "cached_tokens": recorded("cached_tokens"),
            "prefill_start_s": recorded("prefill_start"), "prefix_load_end_s": recorded("prefix_load_end"),
            "prefill_end_s": recorded("prefill_end"), "decode_admit_s": recorded("decode_admit"),
            "kv_transfer_start_s": recorded("kv_transfer_start"), "kv_transfer_end_s": recorded("kv_transfer_end"),
            "decode_wait_s": recorded("decode_wait"), "kv_sync_s": recorded("kv_sync"),
            "first_token_s": first_token, "finish_s": finish, "ttft_s": first_token + out - arrival,
            "tbt_mean_s": times.tbt_mean[lo:hi], "tbt_max_s": times.tbt_max[lo:hi], "e2e_s": finish + out - arrival,
            "kv_bytes": recorded("kv_bytes")}

    def _take(self, block: int) -> tuple[int, int, list[tuple[int, bytes]], dict]:
        """What the block's token times need, copied now on the simulation's thread (whose iteration ends and
        stints keep growing): its rows, its preempted requests and, per instance, the iteration ends from the
        first its requests emitted at (no older ones: a long run's are hundreds of MB)."""
        log, workers = self.cluster.log, self.cluster.token_workers
        if self.times is None:
            self.times = TokenTimes(len(log), len(workers))
        lo, hi = request_log.block_ids(block, len(log))
        stints = {i: runs for i, runs in log.stints.items() if lo <= i < hi}
        instance, join = log.column("decode_instance")[lo:hi], log.column("join_iteration")[lo:hi]
        first = np.full(len(workers), np.iinfo(np.int64).max)
        joined = join >= 0
        np.minimum.at(first, instance[joined], join[joined])
        for i, runs in stints.items():
            index = instance[i - lo]
            first[index] = min(first[index], *(a for a, _ in runs))
        ends = []
        for worker, start in zip(workers, first.tolist()):
            start = min(start, len(worker.iteration_ends))
            ends.append((start, memoryview(worker.iteration_ends)[start:].tobytes()))
        return lo, hi, ends, stints

    def _add_block(self, lo: int, hi: int, ends: list[tuple[int, bytes]], stints: dict) -> None:
        log = self.cluster.log
        instance = log.column("decode_instance")[lo:hi]
        join, finish = log.column("join_iteration"), log.column("finish_iteration")
        for index, (offset, instance_ends) in enumerate(ends):
            ids = np.flatnonzero(instance == index) + lo
            self.times.add(index, np.frombuffer(instance_ends), ids, join[ids], finish[ids], stints, offset)

    def _append(self, files: TableFiles, block: int) -> None:
        files.append(self.columns(*request_log.block_ids(block, len(self.cluster.log))))

    def _submit(self, job: Callable, *args) -> None:
        if self._helper is None:
            self._helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simcxl-table")
        self._jobs.append(self._helper.submit(job, *args))

    def _wait(self) -> None:
        """Wait for the helper's jobs and stop it; raises the first error a job raised."""
        if self._helper is not None:
            self._helper.shutdown(wait=True)
            self._helper = None
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.result()

