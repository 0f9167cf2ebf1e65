"""One run, start to finish: scenario -> cluster -> workload -> SimPy -> report.

The CLI, the sweep runner, the benchmarks and the tests all call :func:`simulate`, so there is one way
to run a scenario.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from simcxl.config.loader import LoadedScenario
from simcxl.metrics.report import RunReport
from simcxl.metrics.results import write_results
from simcxl.serving.cluster import Cluster
from simcxl.serving.request import Request
from simcxl.workload.synthetic import build_workload


@dataclass
class RunOutcome:
    report: RunReport
    summary: dict
    wall_s: float

    def write(self, out_dir: Path, loaded: LoadedScenario) -> None:
        csv = self.report.requests.to_csv(index=False, lineterminator="\n")
        write_results(out_dir, self.summary, csv, loaded.resolved, self.wall_s)


def prepare(loaded: LoadedScenario) -> tuple[Cluster, list[Request]]:
    """Build the cluster and the workload and check they fit, without running (``simcxl validate``)."""
    cluster = Cluster(loaded)
    requests = build_workload(loaded.scenario.workload, loaded.scenario.seed)
    cluster.check_requests_fit(loaded, requests)
    return cluster, requests


def simulate(loaded: LoadedScenario, progress: Callable[[int], None] | None = None) -> RunOutcome:
    start = time.perf_counter()
    cluster, requests = prepare(loaded)
    cluster.run(requests, progress)
    report = RunReport(cluster)
    summary = report.summary()
    return RunOutcome(report, summary, time.perf_counter() - start)
