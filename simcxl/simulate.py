"""One run, start to finish: scenario -> workload -> cluster -> SimPy -> report.

The CLI, the benchmarks and the tests all call :func:`simulate`, so there is one way to run a scenario.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

from simcxl.config.loader import LoadedScenario
from simcxl.metrics.report import RunReport
from simcxl.metrics.request_table import RequestTable
from simcxl.metrics.results import write_atomic, write_results
from simcxl.metrics.timeline import Timeline
from simcxl.serving.cluster import Cluster
from simcxl.workload import Workload, block_tokens_of, build_workload


@dataclass
class RunOutcome:
    """A finished run: its report, and the wall seconds from start to its request table."""

    report: RunReport
    wall_s: float

    @cached_property
    def summary(self) -> dict:
        """summary.json's content, worked out on first use: :meth:`write` asks for it while the rest of the
        request table is written on another thread."""
        return self.report.summary()

    def write(self, out_dir: Path, loaded: LoadedScenario) -> None:
        write_results(out_dir, lambda: self.summary, self.report.table, loaded.resolved, self.wall_s,
                      self.report.cluster.sampler.csv(), self.report.cluster.sampler.instances_csv())
        if self.report.cluster.timeline is not None:
            write_atomic(out_dir / "timeline.json", self.report.cluster.timeline.json())


def prepare(loaded: LoadedScenario, timeline: Timeline | None = None) -> tuple[Cluster, Workload]:
    """Build the workload and the cluster and check they fit, without running (``simcxl validate``)."""
    spec = loaded.scenario.workload
    cluster = Cluster(loaded, block_tokens_of(spec), timeline)
    cluster.check_workload_fits(loaded)
    workload = build_workload(spec, loaded.scenario.seed, loaded.resolve_path, loaded.scenario.model.context_window)
    cluster.check_requests_fit(loaded, workload)
    return cluster, workload


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run, carrying the outcome up to that moment: the requests finished by then, the rest
    unfinished, and ``sim.interrupted`` in the summary (so a sweep never mistakes it for a finished run)."""

    def __init__(self, outcome: RunOutcome):
        super().__init__()
        self.outcome = outcome


def simulate(loaded: LoadedScenario, progress: Callable[[int, int], None] | None = None,
             timeline: Timeline | None = None, output: Path | None = None) -> RunOutcome:
    """Run a scenario; ``progress(done, total)`` is called as requests finish; ``timeline`` records a trace;
    ``output``: the results folder to write, the request table streamed into it as the run goes.
    Raises :class:`RunInterrupted` on Ctrl-C, holding (and having written) what had finished."""
    start = time.perf_counter()
    cluster, workload = prepare(loaded, timeline)
    total = len(workload)
    table = RequestTable(cluster, output)
    try:
        try:
            cluster.run(workload, (lambda done: progress(done, total)) if progress else None, table.block_recorded)
        except KeyboardInterrupt:
            try:
                partial = _outcome(cluster, workload, table, start)
            except Exception:  # the interrupt cut an event short and its state does not add up: keep nothing
                raise KeyboardInterrupt from None
            partial.summary["sim"]["interrupted"] = True
            if output is not None:
                partial.write(output, loaded)
            raise RunInterrupted(partial) from None
        outcome = _outcome(cluster, workload, table, start)
        if output is not None:
            outcome.write(output, loaded)
        return outcome
    finally:
        table.abort()  # what a failed run left half-written (nothing after a write)


def _outcome(cluster: Cluster, workload: Workload, table: RequestTable, start: float) -> RunOutcome:
    report = RunReport(cluster, workload, table)
    return RunOutcome(report, time.perf_counter() - start)
