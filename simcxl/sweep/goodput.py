"""Goodput: the highest offered load at which a scenario still meets its latency SLOs (DistServe's measure).

An SLO is either per request (``ttft=2s``, ``tpot=100ms``, ``tbt_max=...``, ``e2e=...``), met by a run when
at least ``attainment`` of its requests meet every per-request SLO (DistServe's definition), or a statistic
of the run (``ttft_p99=2s``, ``tbt_p99=50ms``, ``e2e_mean=...``) from its summary. A run with unfinished
requests meets none, nor does one that did not reach steady state (``summary.json``'s ``steady_state``,
:mod:`simcxl.metrics.steady_state`): a short run at a load above capacity can meet the SLOs before its queue
has grown. A load whose run is too short to tell runs again with ``workload.num_requests`` doubled, up to
``MAX_GROWTH`` times the scenario's (``points/rate=R,n=N``). The load knob is ``workload.rate`` (or a trace's ``workload.time_scale``).

The search assumes that meeting the SLOs is monotone in load: it brackets the goodput by doubling or
halving from the scenario's own load, then bisects, ``jobs`` loads per round spread evenly over the bracket,
until the bracket is within ``tolerance``. Every load runs into its own results folder (``points/``), so an
interrupted search resumes where it stopped, and the same arguments always try the same loads (a load whose
folder holds a run of another scenario, e.g. after changing ``--set``, runs again).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from simcxl.config.units import parse_duration
from simcxl.errors import ConfigError, SimcxlError
from simcxl.metrics.results import dump_json, write_atomic
from simcxl.sweep.executors import Executor
from simcxl.sweep.runner import finished, run_point

PER_REQUEST = {"ttft": "ttft_s", "tpot": None, "tbt_max": "tbt_max_s", "e2e": "e2e_s", "tbt": "tbt_mean_s"}
STATISTICS = {"ttft": "ttft_s", "tbt": "tbt_s", "tpot": "tpot_s", "e2e": "e2e_s"}
_STATISTIC = re.compile(r"^(ttft|tbt|tpot|e2e)_(mean|p50|p90|p99)$")
MAX_DOUBLINGS = 20
LOAD_DIGITS = 6
"""Loads are named (and run) to this many significant digits, so a bracket narrower than that cannot shrink."""
MAX_GROWTH = 8
"""A load too short to tell reruns with num_requests doubled, up to this many times the scenario's."""
MIN_TOLERANCE = 1e-4
"""The narrowest bracket a search may ask for: ten times the precision of the load names (1e-5 relative)."""


class PointFailed(SimcxlError):
    """A load's run failed (the model does not fit, a bad override...): the search has no answer."""


class LoadDoesNotBind(SimcxlError):
    """The SLOs are met at every load tried, up to 2**MAX_DOUBLINGS times the scenario's: no goodput edge."""

    def __init__(self, message: str, highest_met: float):
        super().__init__(message)
        self.highest_met = highest_met


def check_tolerance(tolerance: float, where: str = "--tolerance") -> None:
    """A tolerance the bisection can reach: finite and at least MIN_TOLERANCE."""
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= MIN_TOLERANCE):
        raise ConfigError(f"{where} {tolerance!r}: expected a relative bracket width >= {MIN_TOLERANCE:g} (loads are "
                          f"named to {LOAD_DIGITS} significant digits, so a narrower bracket could never be reached)")


def finite_json(value):
    """``value`` with every infinite or NaN float written as None: what the project writes is standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value


@dataclass(frozen=True)
class SLO:
    """``name`` <= ``limit`` seconds: per request (``ttft``) or a statistic of the run (``ttft_p99``)."""

    name: str
    limit: float

    @classmethod
    def parse(cls, text: str) -> "SLO":
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or not (name in PER_REQUEST or _STATISTIC.match(name)):
            raise ConfigError(f"--slo {text}: expected NAME=DURATION with NAME a per-request SLO "
                              f"({', '.join(PER_REQUEST)}) or a statistic such as ttft_p99, tbt_p99, tpot_mean, "
                              f"e2e_p90 (mean, p50, p90, p99), e.g. --slo ttft_p99=2s")
        try:
            limit = parse_duration(value.strip())
        except ValueError as exc:
            raise ConfigError(f"--slo {text}: {exc}") from None
        if not limit > 0:
            raise ConfigError(f"--slo {text}: the limit must be > 0")
        return cls(name, limit)

    @property
    def per_request(self) -> bool:
        return self.name in PER_REQUEST

    def __str__(self) -> str:
        return f"{self.name}<={self.limit * 1e3:g}ms"


def request_values(requests: pd.DataFrame, name: str) -> np.ndarray:
    """Each request's value of a per-request SLO metric; NaN (a miss) for a request that did not finish."""
    if name == "tpot":  # as serving benchmarks and DistServe: (E2E - TTFT) / (output tokens - 1)
        steps = (requests.output_tokens - 1).to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(steps > 0, (requests.e2e_s - requests.ttft_s).to_numpy() / steps, 0.0)
    return requests[PER_REQUEST[name]].to_numpy(dtype=float)


def judge(folder: Path, slos: list[SLO], attainment: float) -> dict:
    """Whether the run in ``folder`` meets ``slos``, with the value behind each verdict."""
    summary = json.loads((folder / "summary.json").read_text())
    verdict: dict = {"unfinished": summary["requests"]["unfinished"], "values": {}}
    steady = summary.get("steady_state") or _steady_from_table(folder)
    if steady is not None:
        verdict["steady"] = {key: steady[key] for key in ("verdict", "conclusive", "reason")}
    per_request = [slo for slo in slos if slo.per_request]
    if per_request:
        requests = pd.read_csv(folder / "requests.csv")
        ok = np.ones(len(requests), dtype=bool)
        for slo in per_request:
            ok &= request_values(requests, slo.name) <= slo.limit  # NaN compares False: a miss
        verdict["attainment"] = float(ok.mean()) if len(ok) else 0.0
    for slo in slos:
        if not slo.per_request:
            metric, stat = slo.name.rsplit("_", 1)
            verdict["values"][slo.name] = summary[STATISTICS[metric]][stat]
    verdict["met"] = meets(verdict, slos, attainment)
    return verdict


def meets(verdict: dict, slos: list[SLO], attainment: float) -> bool:
    """Whether a judged run meets the SLOs at the attainment threshold ``attainment``: every request finished,
    steady state reached, the share meeting every per-request SLO at least ``attainment``, and every statistic
    within its limit. (The same run judged at another threshold: the attainment curve.)"""
    met = verdict["unfinished"] == 0 and bool(verdict.get("steady", {"verdict": True})["verdict"])
    if "attainment" in verdict:
        met &= verdict["attainment"] >= attainment
    for slo in slos:
        if not slo.per_request:
            value = verdict["values"][slo.name]
            met &= value is not None and value <= slo.limit
    return bool(met)


def bracket(points: list[dict], met: Callable[[dict], bool], knob: str) -> tuple[float, float]:
    """(highest load met, lowest load missed) of judged ``points`` with nothing in between tried: the loads
    above the lowest miss do not count as met (meeting the SLOs is taken to be monotone in load)."""
    high = min((p[knob] for p in points if not met(p)), default=math.inf)
    return max((p[knob] for p in points if met(p) and p[knob] < high), default=0.0), high


ATTAINMENT_THRESHOLDS = (0.80, 0.85, 0.90, 0.95, 0.99)
"""The thresholds goodput.json's attainment curve judges the search's runs at (and the search's own)."""


def attainment_curve(points: list[dict], slos: list[SLO], knob: str, attainment: float) -> list[dict]:
    """Goodput as a function of the attainment threshold, from the runs a search made (no new runs): for each
    threshold, the bracket (highest load met, lowest load missed) when the same runs are judged at it. A
    threshold whose edge lies outside the runs has ``max_rate`` 0 (every load tried missed: the goodput is
    below the lowest load tried) or ``lowest_missed`` None (every load met: it is above the highest); ``width``
    is the bracket's relative width, narrow (the search's tolerance) only near the search's own threshold."""
    curve = []
    for threshold in sorted({*ATTAINMENT_THRESHOLDS, attainment}):
        low, high = bracket(points, lambda p: meets(p, slos, threshold), knob)
        entry = {"attainment": threshold, "max_rate": low, "lowest_missed": high,
                 "width": high / low - 1 if 0 < low and high < math.inf else None}
        if low == 0:
            entry["edge"] = f"below the lowest load tried ({min(p[knob] for p in points):.6g})"
        elif high == math.inf:
            entry["edge"] = f"above the highest load tried ({max(p[knob] for p in points):.6g})"
        curve.append(entry)
    return curve


def _steady_from_table(folder: Path) -> dict:
    """The steady-state verdict of a run written before summaries had one (open loop: goodput needs a rate);
    None for a table without the timestamps."""
    from simcxl.metrics.steady_state import steady_state

    columns = ("arrival_s", "ttft_s", "finish_s", "e2e_s")
    requests = pd.read_csv(folder / "requests.csv")
    if not set(columns) <= set(requests.columns):
        return None
    return steady_state(*(requests[c].to_numpy(dtype=float) for c in columns),
                        closed_loop=False)


def load_knob(resolved: dict) -> tuple[str, float]:
    """The key that sets the offered load, and its value in the scenario."""
    workload = resolved.get("workload", {})
    if "rate" in workload:
        return "workload.rate", float(workload["rate"])
    if workload.get("type") == "trace":
        return "workload.time_scale", float(workload.get("time_scale", 1.0))
    raise ConfigError(f"workload: goodput searches the offered load, so the workload needs a rate "
                      f"(poisson, gamma) or is a trace (time_scale); a {workload.get('type')!r} workload has neither")


def _name(value: float) -> str:
    return f"{value:.{LOAD_DIGITS}g}"


@dataclass
class GoodputSearch:
    """One search: the scenario (path and --set overrides), SLOs, and where the runs go."""

    config: Path
    overrides: list[str]
    slos: list[SLO]
    attainment: float
    out: Path
    executor: Executor
    jobs: int
    tolerance: float = 0.02
    report: Callable[[str], None] = print

    def __post_init__(self):
        from simcxl.config.loader import load_scenario

        if not self.slos:
            raise ConfigError("goodput: give at least one --slo, e.g. --slo ttft_p99=2s")
        if not 0 < self.attainment <= 1:
            raise ConfigError(f"--attainment {self.attainment}: expected a share in (0, 1]")
        check_tolerance(self.tolerance)
        loaded = load_scenario(self.config, self.overrides)
        self.config = loaded.path
        self.knob, self.start = load_knob(loaded.resolved)
        workload = loaded.resolved.get("workload", {})
        self.num_requests = int(workload["num_requests"]) if "num_requests" in workload else None
        self.tried: dict[float, dict] = {}

    def _point(self, load: float, n: int | None) -> tuple[list[str], Path]:
        """The overrides and folder of ``load`` run with ``n`` requests (None: the scenario's)."""
        overrides = [*self.overrides, f"{self.knob}={_name(load)}"]
        name = f"{self.knob.split('.')[-1]}={_name(load)}"
        if n is not None and n != self.num_requests:
            overrides.append(f"workload.num_requests={n}")
            name += f",n={n}"
        return overrides, self.out / "points" / name

    def _evaluate(self, loads: list[float]) -> int:
        """Run (or find already run) every load, then judge each; how many loads were new."""
        loads = sorted({float(_name(load)) for load in loads} - set(self.tried))
        pending = {load: self.num_requests for load in loads}
        short: dict[float, list[int]] = {}  # each load's request counts that were too short to tell
        while pending:
            points = {load: self._point(load, n) for load, n in pending.items()}
            todo = [(str(self.config), overrides, str(folder)) for overrides, folder in points.values()
                    if not finished(folder, self.config, overrides)]
            for folder, error in self.executor.run(run_point, todo):
                if error is not None:
                    raise PointFailed(f"{folder}: the run failed: {error.strip().splitlines()[-1]}")
            grow = {}
            for load, (_, folder) in sorted(points.items()):
                verdict = {self.knob: load, **judge(folder, self.slos, self.attainment)}
                n = pending[load]
                if not verdict.get("steady", {"conclusive": True})["conclusive"] and n is not None and 2 * n <= MAX_GROWTH * self.num_requests:
                    grow[load] = 2 * n
                    short.setdefault(load, []).append(n)
                    continue
                if n is not None:
                    verdict["num_requests"] = n
                if load in short:
                    verdict["too_short_with"] = short[load]
                self.tried[load] = verdict
                self.report(self._line(verdict))
            pending = grow
        return len(loads)

    def _line(self, verdict: dict) -> str:
        parts = [f"{name} {value * 1e3:,.1f} ms" if value is not None else f"{name} -"
                 for name, value in verdict["values"].items()]
        if "attainment" in verdict:
            parts.append(f"attainment {verdict['attainment']:.1%}")
        if verdict["unfinished"]:
            parts.append(f"{verdict['unfinished']} unfinished")
        if not verdict.get("steady", {"verdict": True})["verdict"]:
            parts.append(f"not steady: {verdict['steady']['reason']}")
        if verdict.get("too_short_with"):
            parts.append(f"{' and '.join(f'{n:,}' for n in verdict['too_short_with'])} requests too short to tell: "
                         f"ran workload.num_requests={verdict['num_requests']:,}")
        return f"  {self.knob}={_name(verdict[self.knob])}: {'met' if verdict['met'] else 'missed'} ({', '.join(parts)})"

    def _bracket(self) -> tuple[float, float]:
        """(highest load met, lowest load missed) with nothing in between tried."""
        return bracket(list(self.tried.values()), lambda v: v["met"], self.knob)

    def _load_insensitive(self) -> bool:
        """Whether the two lowest loads tried both miss with the same values (within 1%): the SLOs are missed
        by requests alone, not by queueing, so a lower load cannot meet them (the goodput is 0)."""
        lowest = [self.tried[load] for load in sorted(self.tried)[:2]]
        if len(lowest) < 2 or any(v["met"] for v in lowest):
            return False
        a, b = ({**v["values"], **({"attainment": v["attainment"]} if "attainment" in v else {})} for v in lowest)
        return all(a[k] is not None and b[k] is not None and abs(a[k] - b[k]) <= 0.01 * max(abs(b[k]), 1e-12)
                   for k in a)

    def run(self) -> dict:
        jobs = self.jobs
        self._evaluate([self.start * 2**k for k in range(jobs)])
        for _ in range(MAX_DOUBLINGS):
            low, high = self._bracket()
            if low > 0 and high < math.inf:
                break
            if high == math.inf:
                self._evaluate([low * 2**(k + 1) for k in range(jobs)])
            else:
                self._evaluate([high / 2**(k + 1) for k in range(jobs)])
            if low == 0 and self._load_insensitive():
                break
        low, high = self._bracket()
        if high == math.inf:
            raise LoadDoesNotBind(f"goodput: the SLOs are met even at {self.knob}={_name(low)} "
                                  f"({2**MAX_DOUBLINGS}x the scenario's): the load does not bind; check the SLOs", low)
        while low > 0 and high / low - 1 > self.tolerance:
            if not self._evaluate([low + (high - low) * (i + 1) / (jobs + 1) for i in range(jobs)]):
                break  # the bracket is as narrow as the load names can tell apart
            low, high = self._bracket()
        result = {"config": str(self.config), "overrides": self.overrides, "knob": self.knob,
                  "slos": {slo.name: slo.limit for slo in self.slos}, "attainment": self.attainment,
                  "tolerance": self.tolerance, "max_rate": low, "lowest_missed": high,
                  "points": [self.tried[load] for load in sorted(self.tried)]}
        if any(slo.per_request for slo in self.slos):
            result["attainment_curve"] = attainment_curve(result["points"], self.slos, self.knob, self.attainment)
        write_atomic(self.out / "goodput.json", dump_json(finite_json(result)))
        return result


def plot(result: dict, out: Path) -> list[Path]:
    """Each SLO's value (or the attainment) against the load, with its limit and the goodput marked, and the
    goodput against the attainment threshold. With replications: one line per seed, and the goodput's mean
    with its 95% interval."""
    from simcxl.metrics.plots import _pyplot, _save
    from simcxl.metrics.plots import label as human
    from simcxl.metrics.replications import draw_interval

    plt = _pyplot()
    knob = result["knob"]
    runs = [(f"seed {e['seed']}", e["points"]) for e in result["per_seed"]] if "per_seed" in result \
        else [(None, result["points"])]
    panels = [name for name in result["slos"] if name not in PER_REQUEST]
    per_request = len(panels) < len(result["slos"])
    panels += ["attainment"] if per_request else []
    curve = result.get("attainment_curve")
    fig, axes = plt.subplots(1, len(panels) + bool(curve), figsize=(4.5 * (len(panels) + bool(curve)), 3.6),
                             squeeze=False)
    goodput = f"goodput {result['max_rate']:.4g}" + (" (mean)" if "per_seed" in result else "")
    for ax, name in zip(axes[0], panels):
        for label, points in runs:
            loads = [p[knob] for p in points]
            if name == "attainment":
                ax.plot(loads, [p.get("attainment", 0) for p in points], "o-", label=label, alpha=0.8)
            else:
                ax.plot(loads, [(p["values"][name] or math.nan) * 1e3 for p in points], "o-", label=label, alpha=0.8)
        if name == "attainment":
            ax.axhline(result["attainment"], color="red", linestyle="--", label="target")
            ax.set_ylabel("requests meeting every per-request SLO")
        else:
            ax.axhline(result["slos"][name] * 1e3, color="red", linestyle="--", label="SLO")
            ax.set_ylabel(f"{name} (ms)")
            ax.set_yscale("log")
        ax.axvline(result["max_rate"], color="green", linestyle=":", label=goodput)
        ax.set_xlabel(human(knob))
        ax.legend(fontsize=7)
    if curve:
        ax = axes[0][-1]
        thresholds = [entry["attainment"] for entry in curve]
        if "per_seed" in result:
            draw_interval(ax, thresholds, [entry["max_rate"] for entry in curve], label="mean, 95% interval")
        else:
            ax.plot(thresholds, [entry["max_rate"] for entry in curve], "o-", label="highest load met")
            ax.fill_between(thresholds, [entry["max_rate"] for entry in curve],
                            [_finite_or(entry["lowest_missed"], entry["max_rate"]) for entry in curve],
                            alpha=0.2, label="bracket (to the lowest load missed)")
        ax.axvline(result["attainment"], color="red", linestyle="--", label="search's threshold")
        ax.set_xlabel("attainment threshold")
        ax.set_ylabel(f"goodput: {human(knob)}")
        ax.legend(fontsize=7)
    fig.suptitle(f"goodput of {Path(result['config']).name}")
    fig.tight_layout()
    return _save(fig, out, "goodput")


def _finite_or(value: float | None, fallback: float) -> float:
    return value if value is not None and math.isfinite(value) else fallback


def search_seed(config: str, overrides: list[str], slos: list[SLO], attainment: float, out: str,
                tolerance: float) -> tuple[str, dict | None, str | None]:
    """One replication's search, run in a worker: (out, goodput.json's content or None, error or None). It
    tries one load at a time, so the loads it tries, and its answer, do not depend on ``-j``."""
    from simcxl.sweep.executors import LocalExecutor

    try:
        search = GoodputSearch(Path(config), overrides, slos, attainment, Path(out), LocalExecutor(1), 1, tolerance,
                               lambda line: None)
        return out, search.run(), None
    except SimcxlError as exc:
        return out, None, str(exc)


def replicated_goodput(config: Path, overrides: list[str], slos: list[SLO], attainment: float, out: Path,
                       executor: Executor, tolerance: float, seeds: list[int],
                       report: Callable[[str], None] = print) -> dict:
    """Goodput with ``--seeds N``: one search per seed (``out/seed=K/``, the scenario with ``seed=K``), the
    searches in parallel on ``executor``, and the goodput's mean and Student-t 95% interval over the seeds,
    at the search's attainment and along the attainment curve. Writes ``out/goodput.json``."""
    from simcxl.metrics.replications import interval, replications
    from simcxl.sweep.runner import seed_dir

    GoodputSearch(config, overrides, slos, attainment, out, executor, 1, tolerance)  # checks the arguments, runs nothing
    tasks = [(str(config), [*overrides, f"seed={seed}"], slos, attainment, str(seed_dir(out, seed)), tolerance)
             for seed in seeds]
    results: dict[str, dict] = {}
    for folder, result, error in executor.run(search_seed, tasks):
        if error is not None:
            raise SimcxlError(f"{folder}: {error}")
        results[folder] = result
        report(f"  {Path(folder).name}: goodput {result['max_rate']:.4g} (missed at {result['lowest_missed']:.4g})")
    per_seed = [{"seed": seed, **results[str(seed_dir(out, seed))]} for seed in seeds]
    first = per_seed[0]
    block = replications([{"max_rate": entry["max_rate"], "lowest_missed": entry["lowest_missed"]}
                          for entry in per_seed], seeds, ("max_rate", "lowest_missed"))
    combined = {"config": first["config"], "overrides": overrides, "knob": first["knob"], "slos": first["slos"],
                "attainment": attainment, "tolerance": tolerance, "max_rate": block["metrics"]["max_rate"]["mean"],
                "lowest_missed": block["metrics"]["lowest_missed"]["mean"], "replications": block}
    if "attainment_curve" in first:
        curve = []
        for i, entry in enumerate(first["attainment_curve"]):
            at = [seed_entry["attainment_curve"][i] for seed_entry in per_seed]
            outside = [seed for seed, e in zip(seeds, at) if "edge" in e]
            curve.append({"attainment": entry["attainment"], "max_rate": interval([e["max_rate"] for e in at]),
                          "per_seed": [e["max_rate"] for e in at],
                          "widest_bracket": max((e["width"] for e in at if e["width"] is not None), default=None),
                          **({"edge_outside_runs_for_seeds": outside} if outside else {})})
        combined["attainment_curve"] = curve
    combined["per_seed"] = [{"seed": e["seed"], "max_rate": e["max_rate"], "lowest_missed": e["lowest_missed"],
                             "points": e["points"]} for e in per_seed]
    write_atomic(out / "goodput.json", dump_json(finite_json(combined)))
    return combined
