"""Running a sweep: skip finished points, run the rest on an executor, then collect ``sweep.csv``.

Each point writes its own results folder atomically (``points/<id>/``); a point counts as finished
once its ``summary.json`` exists beside the resolved scenario it would run now (so editing the base
scenario reruns the points it changes instead of reusing stale results). So Ctrl-C or a crashed point
loses nothing that finished, and a rerun of the same command picks up where it stopped. Failed points leave ``error.txt`` and are listed.
``sweep.csv`` is rebuilt from the finished points, one row per point in spec order: the override
columns, then every summary metric flattened (``ttft_s.mean``, ...), never wall-clock data, so it is
identical whether the sweep ran at once, resumed, locally or on Ray.
"""

from __future__ import annotations

import csv
import io
import json
import traceback
from pathlib import Path
from typing import Callable

import yaml

from simcxl.metrics.results import dump_json, flatten, write_atomic
from simcxl.sweep.executors import Executor
from simcxl.sweep.spec import Point, Sweep


def run_point(base: str, overrides: list[str], out_dir: str) -> tuple[str, str | None]:
    """Run one point into ``out_dir``; returns (out_dir, error message or None). Runs in a worker."""
    from simcxl.config.loader import load_scenario
    from simcxl.errors import SimcxlError
    from simcxl.simulate import simulate

    try:
        loaded = load_scenario(base, overrides)
        simulate(loaded, output=Path(out_dir))
        return out_dir, None
    except SimcxlError as exc:
        message = str(exc)
    except Exception:  # a crash in one point must not take the sweep down: report it
        message = traceback.format_exc()
    write_atomic(Path(out_dir) / "error.txt", message + "\n")
    return out_dir, message


def finished(out_dir: Path, base: str | Path, overrides: list[str]) -> bool:
    """Whether ``out_dir`` holds a finished run of exactly this scenario: its summary, and a resolved
    scenario equal to what ``base`` with ``overrides`` resolves to now. (A change to simcxl itself is not
    detected: delete the folder to rerun after one.)"""
    from simcxl.config.loader import load_scenario
    from simcxl.errors import SimcxlError

    summary, resolved = out_dir / "summary.json", out_dir / "config.resolved.yaml"
    if not (summary.is_file() and resolved.is_file()):
        return False
    try:
        if json.loads(summary.read_text())["sim"].get("interrupted"):  # a run stopped by Ctrl-C (simcxl run)
            return False
        return yaml.safe_load(resolved.read_text()) == load_scenario(base, overrides).resolved
    except (yaml.YAMLError, json.JSONDecodeError, KeyError, TypeError, AttributeError, SimcxlError):
        return False


def point_dir(out: Path, point: Point) -> Path:
    return out / "points" / point.id


def pending_points(sweep: Sweep, out: Path) -> list[Point]:
    return [p for p in sweep.points if not finished(point_dir(out, p), sweep.base, p.set_args())]


def run_sweep(sweep: Sweep, out: Path, executor: Executor,
              on_done: Callable[[int, int], None] | None = None) -> dict[str, str]:
    """Run every unfinished point; return {point id: error} of the points that failed."""
    todo = pending_points(sweep, out)
    for point in todo:
        (point_dir(out, point) / "error.txt").unlink(missing_ok=True)
    failures: dict[str, str] = {}
    finished = len(sweep.points) - len(todo)
    tasks = [(str(sweep.base), point.set_args(), str(point_dir(out, point))) for point in todo]
    try:
        for directory, error in executor.run(run_point, tasks):
            finished += 1
            if error is not None:
                failures[Path(directory).name] = error
            if on_done:
                on_done(finished, len(sweep.points))
    finally:
        write_atomic(out / "sweep.csv", sweep_csv(sweep, out))
    return failures


def sweep_csv(sweep: Sweep, out: Path) -> str:
    """One row per finished point, in spec order: point id, overrides, flattened summary metrics."""
    rows = []
    for point in sweep.points:
        summary = point_dir(out, point) / "summary.json"
        if summary.is_file():
            rows.append({"point": point.id, **{k: json.dumps(v) if isinstance(v, (dict, list)) else v
                                               for k, v in point.overrides.items()},
                         **flatten(json.loads(summary.read_text()))})
    columns = ["point", *sweep.keys]
    for row in rows:
        columns += [k for k in row if k not in columns]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def seed_dir(out: Path, seed: int) -> Path:
    """Where replication ``seed`` of a replicated run writes its results folder."""
    return out / f"seed={seed}"


def run_replicated(base: str | Path, overrides: list[str], out: Path, seeds: list[int], executor: Executor
                   ) -> dict:
    """Run ``base`` once per seed into ``out/seed=K/`` (in parallel on ``executor``; a seed already finished
    is kept), then write ``out/summary.json`` (the first seed's summary plus the ``replications`` block of
    :mod:`simcxl.metrics.replications`) and ``out/replications.csv``; returns that summary. A failed seed
    raises: an interval over the seeds that happened to run would answer another question."""
    from simcxl.errors import SimcxlError
    from simcxl.metrics.replications import per_seed_csv, replications

    runs = [(seed, [*overrides, f"seed={seed}"], seed_dir(out, seed)) for seed in seeds]
    todo = [(str(base), args, str(folder)) for _, args, folder in runs if not finished(folder, base, args)]
    for directory, error in executor.run(run_point, todo):
        if error is not None:
            raise SimcxlError(f"{directory}: the run failed: {error.strip().splitlines()[-1]}")
    summaries = [json.loads((folder / "summary.json").read_text()) for _, _, folder in runs]
    flat = [flatten(summary) for summary in summaries]
    summary = {**summaries[0], "replications": replications(flat, seeds)}
    write_atomic(out / "replications.csv", per_seed_csv(flat, seeds))
    write_atomic(out / "summary.json", dump_json(summary))
    return summary
