"""The Python API: what the ``simcxl`` commands do, as functions a notebook or a script can call.

>>> import simcxl
>>> result = simcxl.run("rdma", overrides={"workload.num_requests": 200}, seed=1)
>>> result.summary["throughput"], result.requests.ttft_s.mean()

Every function is built on the code the command line runs, so an API call and the command with the same
scenario, overrides and seed give the same numbers:

- a scenario is loaded by :func:`simcxl.config.loader.load_scenario`, and overrides given as a mapping are
  turned into the ``--set KEY=VALUE`` strings a sweep point uses (:meth:`simcxl.sweep.spec.Point.set_args`),
  so they merge, validate and fail exactly as ``--set`` does;
- :func:`run` is :func:`simcxl.simulate.simulate`; :func:`sweep`, :func:`goodput` and :func:`plan` are
  :mod:`simcxl.sweep`'s runner, search and planner, on the executor ``-j``/``--executor`` would pick.

Bad input raises :class:`simcxl.errors.SimcxlError` (a :class:`~simcxl.errors.ConfigError` for a scenario)
with the message the command line prints after ``simcxl: error:``.
"""

from __future__ import annotations

import io
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Mapping, Sequence, Union

import pandas as pd

from simcxl.config.loader import LoadedScenario, load_scenario
from simcxl.config.schema import Scenario as ScenarioSpec
from simcxl.errors import ConfigError
from simcxl.simulate import RunOutcome, simulate

Overrides = Union[Mapping[str, Any], Sequence[str], None]
"""``{"workload.rate": 8}`` (values as Python data) or ``["workload.rate=8"]`` (as ``--set`` reads them)."""


def set_args(overrides: Overrides) -> list[str]:
    """Overrides as ``--set KEY.PATH=VALUE`` strings: a mapping's values are written as YAML, as a sweep
    point's are; a list of strings is taken as it is."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        from simcxl.sweep.spec import Point

        return Point("", {str(key): _plain(key, value) for key, value in overrides.items()}).set_args()
    if isinstance(overrides, (str, bytes)) or not all(isinstance(text, str) for text in overrides):
        raise ConfigError(f"overrides: expected a mapping such as {{'workload.rate': 8}} or a list of "
                          f"'KEY.PATH=VALUE' strings, got {overrides!r}")
    return list(overrides)


def _plain(key: str, value: Any) -> Any:
    """``value`` as YAML can write it: numpy numbers as Python ones, paths as strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(f"{key}.{k}", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(key, v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and type(value).__module__ == "numpy":  # np.float64(8.0), np.int64(4)
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"overrides: {key}: {value!r} is not a config value (use numbers, strings, booleans, "
                      f"lists and mappings)")


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: a file (or a bundled scenario's name) and the overrides applied to it.

    ``spec`` is the typed, validated configuration (``scenario.spec.workload.rate``); change it with
    :meth:`with_overrides`, which returns a new, validated scenario and leaves this one as it was."""

    path: Path
    overrides: tuple[str, ...]
    loaded: LoadedScenario = field(compare=False, repr=False)  # what path and overrides load to

    @classmethod
    def load(cls, path: str | Path, overrides: Overrides = None) -> "Scenario":
        """Read, merge and validate ``path`` (``"configs/rdma.yaml"`` or ``"rdma"``) with ``overrides``."""
        args = tuple(set_args(overrides))
        loaded = load_scenario(path, args)
        return cls(loaded.path, args, loaded)

    def with_overrides(self, overrides: Overrides = None, /, **sections: Any) -> "Scenario":
        """A copy with more overrides, applied after this scenario's: ``{"workload.rate": 8}``, or keyword
        arguments naming top-level keys (``seed=3``, ``workload={"rate": 8}``: a mapping merges key by key)."""
        return Scenario.load(self.path, [*self.overrides, *set_args(overrides), *set_args(sections)])

    @property
    def spec(self) -> ScenarioSpec:
        """The typed configuration, every section validated (frozen: change it with :meth:`with_overrides`)."""
        return self.loaded.scenario

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def resolved(self) -> dict[str, Any]:
        """The merged configuration as ``config.resolved.yaml`` holds it."""
        return self.loaded.resolved


ScenarioLike = Union[Scenario, str, Path]


def scenario(source: ScenarioLike, overrides: Overrides = None, seed: int | None = None) -> Scenario:
    """``source`` (a :class:`Scenario`, a path or a bundled name) with ``overrides`` and ``seed`` applied."""
    base = source if isinstance(source, Scenario) else Scenario.load(source)
    seed_arg = {} if seed is None else {"seed": seed}
    return base.with_overrides(overrides, **seed_arg) if overrides or seed_arg else base


@dataclass(repr=False)
class Result:
    """One finished run: ``summary`` (summary.json's content), ``requests`` (requests.csv's rows),
    ``timeseries`` (timeseries.csv's) and ``instances`` (instances.csv's), in memory; :meth:`write` writes the
    results folder."""

    scenario: Scenario
    outcome: RunOutcome

    def __repr__(self) -> str:
        done = self.summary["requests"]
        return f"<simcxl.Result {self.scenario.name}: {done['completed']:,} of {done['arrived']:,} requests completed>"

    @property
    def summary(self) -> dict:
        return self.outcome.summary

    @property
    def requests(self) -> pd.DataFrame:
        """One row per request (the columns of requests.csv and .parquet)."""
        return self.outcome.report.requests

    @cached_property
    def timeseries(self) -> pd.DataFrame:
        """Utilization over time, the table timeseries.csv holds (read from the sampler's text, not a file)."""
        return pd.read_csv(io.StringIO(self.outcome.report.cluster.sampler.csv()))

    @cached_property
    def instances(self) -> pd.DataFrame:
        """Each instance's series over time, the table instances.csv holds (KV in use, waiting, running, ...)."""
        return pd.read_csv(io.StringIO(self.outcome.report.cluster.sampler.instances_csv()))

    @property
    def wall_s(self) -> float:
        return self.outcome.wall_s

    def write(self, folder: str | Path) -> Path:
        """The results folder ``simcxl run -o FOLDER`` writes (summary.json, requests.csv and .parquet,
        timeseries.csv, config.resolved.yaml, run.json); returns its path."""
        folder = Path(folder)
        self.outcome.write(folder, self.scenario.loaded)
        return folder


@dataclass(repr=False)
class Replications:
    """A scenario run with N seeds (``simcxl run --seeds N``): ``summary`` (summary.json: the first seed's
    summary plus ``replications``), ``intervals`` (one row per headline metric: mean, ci95_low, ci95_high) and
    ``per_seed`` (replications.csv: one row per seed)."""

    scenario: Scenario
    summary: dict
    per_seed: pd.DataFrame

    def __repr__(self) -> str:
        block = self.summary["replications"]
        return f"<simcxl.Replications {self.scenario.name}: {block['n']} seeds {block['seeds']}>"

    @property
    def intervals(self) -> pd.DataFrame:
        return pd.DataFrame(self.summary["replications"]["metrics"]).T


def _seeds(seeds: int) -> int:
    """``seeds`` checked as the command line checks ``--seeds``, as a SimcxlError."""
    from simcxl.metrics.replications import check_seeds

    try:
        return check_seeds(seeds, "seeds")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _replicate(chosen: Scenario, seeds: int, output: str | Path | None, jobs: int, executor: str,
               address: str | None) -> Replications:
    """``seeds`` replications of ``chosen`` (N > 1), read back from their folder."""
    from simcxl.metrics.replications import replica_seeds
    from simcxl.sweep.runner import run_replicated

    with _folder(output) as folder:
        summary = run_replicated(chosen.path, list(chosen.overrides), folder, replica_seeds(chosen.spec.seed, seeds),
                                 _executor(executor, jobs, address))
        return Replications(chosen, summary, pd.read_csv(folder / "replications.csv"))


def run(source: ScenarioLike, overrides: Overrides = None, seed: int | None = None,
        output: str | Path | None = None, seeds: int = 1, jobs: int = 1, executor: str = "local",
        address: str | None = None) -> Union[Result, Replications]:
    """Simulate a scenario (``simcxl run``). ``output``: also write its results folder, the request table
    streamed into it as the run goes (as the command does); without it nothing touches the disk.
    ``seeds=N`` (N > 1): N replications with seeds S..S+N-1 (S the scenario's seed), ``jobs`` at once on
    ``executor``, as ``simcxl run --seeds N``; returns their :class:`Replications` (each seed's folder is
    ``output/seed=K/``; without ``output``, a temporary folder)."""
    chosen = scenario(source, overrides, seed)
    if _seeds(seeds) > 1:
        return _replicate(chosen, seeds, output, jobs, executor, address)
    return Result(chosen, simulate(chosen.loaded, output=Path(output) if output is not None else None))


def compare(sources: Sequence[ScenarioLike], overrides: Overrides = None, seed: int | None = None,
            output: str | Path | None = None, seeds: int = 1, jobs: int = 1, executor: str = "local",
            address: str | None = None) -> pd.DataFrame:
    """Run several scenarios with the same overrides (``simcxl compare``): one row per scenario, indexed by its
    name, with every summary metric flattened (``ttft_s.mean``, the columns of sweep.csv). Ratios to the first:
    ``table / table.iloc[0]``. ``output``: also write each run's results folder under ``output/<name>/``.
    ``seeds=N`` (N > 1): each scenario replicated as :func:`run` does; the columns are each headline metric's
    ``KEY.mean``, ``KEY.ci95_low`` and ``KEY.ci95_high`` (``ttft_s.p99.ci95_high``)."""
    from simcxl.metrics.results import flatten

    rows = []
    for source in sources:
        chosen = scenario(source, overrides, seed)
        folder = Path(output) / chosen.name if output is not None else None
        if _seeds(seeds) > 1:
            replicated = _replicate(chosen, seeds, folder, jobs, executor, address)
            rows.append({"scenario": chosen.name, **flatten(replicated.summary["replications"]["metrics"])})
        else:
            rows.append(flatten(run(chosen, output=folder).summary))
    return pd.DataFrame(rows).set_index("scenario")


@contextmanager
def _folder(output: str | Path | None) -> Iterator[Path]:
    """``output``, or a temporary folder removed afterwards (the runs of a sweep or search go to disk)."""
    if output is not None:
        yield Path(output)
        return
    with tempfile.TemporaryDirectory(prefix="simcxl-") as folder:
        yield Path(folder)


def _executor(executor: str, jobs: int, address: str | None):
    """The executor ``-j JOBS --executor NAME --address ADDRESS`` gives, with the command line's errors."""
    from simcxl.cli import _executor as from_args

    return from_args(SimpleNamespace(executor=executor, jobs=jobs, address=address))


@dataclass
class SweepResult:
    """``table``: sweep.csv's rows (point id, overrides, flattened summary), one per finished point, in spec
    order; ``failures``: {point id: error} of the points that failed."""

    table: pd.DataFrame
    failures: dict[str, str]


def sweep(spec: str | Path | Mapping[str, Any], output: str | Path | None = None, jobs: int = 1,
          executor: str = "local", address: str | None = None) -> SweepResult:
    """Run a sweep (``simcxl sweep``): ``spec`` is a sweep YAML, or the same as a mapping (``base`` relative to
    the working directory). ``output``: the sweep folder, resumable (default: a temporary one)."""
    from pydantic import ValidationError

    from simcxl.sweep.runner import run_sweep
    from simcxl.sweep.spec import SweepSpec, invalid, load_sweep, sweep_of

    if isinstance(spec, Mapping):
        label = Path("sweep")  # errors read "sweep: grid.workload.rat: ..."; base is relative to its folder, "."
        try:
            loaded = sweep_of(label, SweepSpec.model_validate(dict(spec)))
        except ValidationError as exc:
            raise invalid(label, exc) from None
    else:
        loaded = load_sweep(spec)
    runner = _executor(executor, jobs, address)
    with _folder(output) as folder:
        failures = run_sweep(loaded, folder, runner)
        return SweepResult(_read_csv(folder / "sweep.csv"), failures)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # a sweep with no finished point
        return pd.DataFrame()


@dataclass
class GoodputResult:
    """A goodput search: ``max_rate`` (the highest load meeting the SLOs, in the unit of ``knob``),
    ``lowest_missed``, ``points`` (one row per load tried: the load, met, the values judged) and ``raw``
    (goodput.json's content)."""

    raw: dict

    @property
    def knob(self) -> str:
        return self.raw["knob"]

    @property
    def max_rate(self) -> float:
        return self.raw["max_rate"]

    @property
    def lowest_missed(self) -> float:
        return self.raw["lowest_missed"]

    @property
    def points(self) -> pd.DataFrame:
        """One row per load tried (with ``seeds=N``: every seed's loads, with a ``seed`` column)."""
        if "per_seed" in self.raw:
            return pd.json_normalize([{"seed": e["seed"], **p} for e in self.raw["per_seed"] for p in e["points"]])
        return pd.json_normalize(self.raw["points"])

    @property
    def interval(self) -> dict | None:
        """With ``seeds=N``: the goodput's mean, ci95_low and ci95_high (Student t over the seeds); else None."""
        return self.raw["replications"]["metrics"]["max_rate"] if "replications" in self.raw else None

    @property
    def attainment_curve(self) -> pd.DataFrame:
        """Goodput at each attainment threshold, judged on the same runs (per-request SLOs only)."""
        return pd.json_normalize(self.raw.get("attainment_curve", []))

    def plot(self, folder: str | Path) -> list[Path]:
        """goodput.png (and .pdf), as ``simcxl goodput`` draws it."""
        from simcxl.sweep.goodput import plot

        return plot(self.raw, Path(folder))


def goodput(source: ScenarioLike, slos: Mapping[str, str] | Sequence[str], overrides: Overrides = None,
            attainment: float = 0.9, tolerance: float = 0.02, output: str | Path | None = None, jobs: int = 1,
            executor: str = "local", address: str | None = None,
            progress: Callable[[str], None] | None = None, seeds: int = 1) -> GoodputResult:
    """The highest ``workload.rate`` (a trace's ``time_scale``) meeting the SLOs (``simcxl goodput``):
    ``slos`` as ``{"ttft_p99": "2s", "tpot": "100ms"}`` or ``["ttft_p99=2s"]``. ``progress`` receives the
    line the command prints for each load tried. ``output``: its folder, resumable (default: a temporary one).
    ``seeds=N`` (N > 1): one search per seed, ``jobs`` at once, as ``simcxl goodput --seeds N``: ``max_rate`` is
    their mean and ``interval`` its 95% interval."""
    from simcxl.sweep.goodput import SLO, GoodputSearch, replicated_goodput

    texts = [f"{name}={limit}" for name, limit in slos.items()] if isinstance(slos, Mapping) else list(slos)
    chosen = scenario(source, overrides)
    if _seeds(seeds) > 1:
        from simcxl.metrics.replications import replica_seeds

        parsed = [SLO.parse(text) for text in texts]
        with _folder(output) as folder:
            return GoodputResult(replicated_goodput(
                chosen.path, list(chosen.overrides), parsed, attainment, folder, _executor(executor, jobs, address),
                tolerance, replica_seeds(chosen.spec.seed, seeds), progress or (lambda line: None)))
    with _folder(output) as folder:
        search = GoodputSearch(chosen.path, list(chosen.overrides), [SLO.parse(text) for text in texts], attainment,
                               folder, _executor(executor, jobs, address), jobs, tolerance,
                               progress or (lambda line: None))
        return GoodputResult(search.run())


@dataclass
class PlanResult:
    """A capacity plan: ``table`` (plan.csv's rows: overrides, goodput, item counts, cost, meets target, on the
    Pareto frontier), ``cheapest`` (the cheapest point meeting the target, or None) and ``raw`` (plan.json)."""

    raw: dict

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.raw["points"])

    @property
    def cheapest(self) -> dict | None:
        return self.raw["cheapest_meeting_target"]

    @property
    def best_per_gpu(self) -> dict | None:
        """A search's answer (``search:`` in the spec): the deployment with the most goodput per GPU, or None."""
        return self.raw.get("best_per_gpu")

    def plot(self, folder: str | Path) -> list[Path]:
        """plan.png (and .pdf), as ``simcxl plan`` draws it."""
        from simcxl.sweep.plan import plot

        return plot(self.raw, Path(folder))


def plan(spec: str | Path, output: str | Path | None = None, jobs: int = 1, executor: str = "local",
         address: str | None = None, progress: Callable[[str], None] | None = None, seeds: int = 1) -> PlanResult:
    """Goodput and cost of each configuration of a plan YAML (``simcxl plan``; with a ``search:`` section the
    deployments it describes, as ``simcxl plan --search``: ``best_per_gpu``). ``output``: its folder, resumable
    (default: a temporary one); ``progress`` receives the lines the command prints; ``seeds`` > 1: each point's
    goodput is the mean of that many searches, with its 95% interval (``goodput_ci95_low/high`` in ``.table``)."""
    from simcxl.sweep.plan import load_plan, run_plan

    loaded = load_plan(spec)
    runner = _executor(executor, jobs, address)
    with _folder(output) as folder:
        return PlanResult(run_plan(loaded, folder, runner, jobs, progress or (lambda line: None),
                                   seeds=_seeds(seeds)))
