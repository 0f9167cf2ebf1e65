"""Capacity planning: over a grid of hardware and cluster knobs, the goodput of each configuration, what it
costs, and the cheapest one that meets a target rate.

```yaml
base: ../configs/rdma.yaml        # the scenario every point starts from (relative to this file)
grid:                             # as in a sweep: the cartesian product of these overrides
  cluster.decode_nodes: [2, 4]
  kv_manager.type: [rdma, rdma_pull]
points: []                        # and/or explicit override sets, each crossed with the grid
slo: {ttft_p99: 2s, tbt_p99: 50ms}
attainment: 0.9                   # for per-request SLOs (ttft, tpot, ...)
target: 20                        # the goodput to reach, in the load knob's unit (requests/s, or time_scale)
tolerance: 0.05                   # goodput bracket, relative
costs: {gpu: 30000}               # overrides of simcxl.metrics.cost.CostTable's prices (USD)
```
Each point's goodput is a :class:`GoodputSearch` in ``OUT/points/<point id>/`` (resumable: a rerun finds
what finished). ``OUT/plan.csv`` holds one row per point: its overrides, goodput, bill of materials, capital
cost and cost per unit of goodput, whether it meets the target and whether it is on the Pareto frontier
(no other point is both cheaper and higher in goodput); ``OUT/plan.json`` names the cheapest point that meets
the target; ``plan.png`` draws cost against goodput.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import ConfigDict, Field, ValidationError

from simcxl.config.loader import load_scenario
from simcxl.errors import ConfigError, SimcxlError
from simcxl.metrics.cost import CostTable, bill, capital_cost
from simcxl.metrics.replications import replica_seeds
from simcxl.metrics.results import dump_json, write_atomic
from simcxl.sweep.executors import Executor
from simcxl.sweep.goodput import MIN_TOLERANCE, SLO, GoodputSearch, LoadDoesNotBind, finite_json, replicated_goodput
from simcxl.sweep import search
from simcxl.sweep.search import SearchSpec
from simcxl.sweep.spec import Point, SweepSpec, invalid, read_spec, sweep_of


class PlanSpec(SweepSpec):
    model_config = ConfigDict(extra="forbid", frozen=True)

    slo: dict[str, str] = Field(min_length=1)
    attainment: float = Field(0.9, gt=0, le=1)
    target: float | None = Field(None, gt=0, allow_inf_nan=False)
    tolerance: float = Field(0.05, ge=MIN_TOLERANCE, allow_inf_nan=False)
    costs: dict[str, float] = Field(default_factory=dict)
    search: SearchSpec | None = None


@dataclass(frozen=True)
class PlanPoint:
    """One configuration to price and search: the scenario it starts from, its overrides, and (a deployment
    search's) what it describes and why it was pruned unrun."""

    id: str
    base: Path
    overrides: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    pruned: str | None = None

    def set_args(self) -> list[str]:
        return Point(self.id, self.overrides).set_args()


@dataclass
class Plan:
    """A loaded plan: its points (a sweep's, or a deployment search's candidates), SLOs, target and prices."""

    path: Path
    spec: PlanSpec
    points: list[PlanPoint]
    base: Path
    slos: list[SLO]
    prices: CostTable


def load_plan(path: str | Path) -> Plan:
    path = Path(path)
    spec = read_spec(path, PlanSpec)
    try:
        prices = CostTable(**spec.costs)
    except ValidationError as exc:
        raise invalid(path, exc, "costs.") from None
    slos = []
    for name, limit in spec.slo.items():
        try:
            slos.append(SLO.parse(f"{name}={limit}"))
        except ConfigError as exc:
            raise ConfigError(f"{path}: slo.{name}: {str(exc).split(': ', 1)[1]}") from None
    if spec.target is None and spec.search is None:
        raise ConfigError(f"{path}: target: missing: a plan without a search: section names the goodput to reach")
    sweep = sweep_of(path, spec)
    if spec.search is None:
        points = [PlanPoint(p.id, sweep.base, p.overrides) for p in sweep.points]
    else:
        points = []
        for candidate in search.candidates(path, sweep.base, spec.search):
            for point_id, overrides in search.points_of(candidate, sweep.points):
                args = Point(point_id, overrides).set_args()
                points.append(PlanPoint(point_id, candidate.base, overrides, candidate.describe(),
                                        search.prune(candidate, args, spec.search.min_kv_tokens)))
        if all(point.pruned for point in points):
            raise ConfigError(f"{path}: search: every deployment is pruned, so there is nothing to run (e.g. "
                              f"{points[0].info['deployment']}: {points[0].pruned.removeprefix('pruned: ')})")
    return Plan(path, spec, points, sweep.base, slos, prices)


def pareto(rows: list[dict], by: str = "cost_usd") -> set[str]:
    """Ids of the points no other point beats on both ``by`` (lower: cost, GPUs) and goodput (higher)."""
    frontier, best = set(), -math.inf
    for row in sorted(rows, key=lambda r: (r[by], -r["goodput"])):
        if row["goodput"] > best:
            frontier.add(row["point"])
            best = row["goodput"]
    return frontier


def run_plan(plan: Plan, out: Path, executor: Executor, jobs: int,
             report: Callable[[str], None] = print, seeds: int = 1) -> dict[str, Any]:
    """Goodput and cost of every point, the plan's CSV and summary, and the cheapest point meeting the target.
    ``seeds`` > 1: each point's goodput is the mean of that many searches (seeds S, S+1, ... of its scenario's S,
    simcxl.metrics.replications), with its 95% interval in ``goodput_ci95_low/high``; the ranking uses the mean."""
    rows = []
    for point in plan.points:
        overrides = point.set_args()
        report(f"point {point.id}: {' '.join(overrides) or '(the base scenario)'}")
        rows.append(_plan_point(plan, point, overrides, out, executor, jobs, report, seeds))
    ran = [row for row in rows if row["goodput"] is not None]
    by = "gpus" if plan.spec.search and len(plan.spec.search.gpus) > 1 else "cost_usd"
    frontier = pareto(ran, by)
    for row in rows:
        row["pareto"] = row["point"] in frontier
    meeting = [row for row in rows if row["meets_target"]]
    cheapest = min(meeting, key=lambda r: (r["cost_usd"], -r["goodput"], r["point"]), default=None)
    if plan.spec.search is not None:  # best first: goodput per GPU, then per dollar; unrun points last
        rows.sort(key=lambda r: (r["goodput"] is None, -(r["goodput_per_gpu"] or 0), -(r["goodput_per_musd"] or 0),
                                 r["point"]))
        for rank, row in enumerate(rows, 1):
            row["rank"] = rank if row["goodput"] is not None else None
    _write_csv(out / "plan.csv", rows)
    result = {"plan": str(plan.path), "base": str(plan.base), "slos": {s.name: s.limit for s in plan.slos},
              "attainment": plan.spec.attainment, "target": plan.spec.target, "prices": plan.prices.model_dump(),
              "pareto_by": by, "cheapest_meeting_target": cheapest,
              "best_per_gpu": rows[0] if plan.spec.search is not None and ran else None, "points": rows,
              "failed_points": [row["point"] for row in rows if row["goodput"] is None]}
    write_atomic(out / "plan.json", dump_json(finite_json(result)))
    return result


def _plan_point(plan: Plan, point, overrides: list[str], out: Path, executor: Executor, jobs: int,
                report: Callable[[str], None], seeds: int = 1) -> dict[str, Any]:
    """One point's row. A point that cannot run (its model does not fit, an override it rejects) is a failed
    point: goodput None, the error in ``note``, never meeting the target. One whose SLOs hold at every load
    tried has that load as its goodput, marked as a lower bound."""
    row: dict[str, Any] = {"point": point.id, **point.info, **point.overrides}
    goodput, bound, note, knob = None, "", "", ""
    try:
        if point.pruned:
            raise _Pruned(point.pruned)
        finder = GoodputSearch(point.base, overrides, plan.slos, plan.spec.attainment, out / "points" / point.id,
                               executor, jobs, plan.spec.tolerance, report)
        if seeds > 1:
            replicated = replicated_goodput(point.base, overrides, plan.slos, plan.spec.attainment,
                                            out / "points" / point.id, executor, plan.spec.tolerance,
                                            replica_seeds(load_scenario(point.base, overrides).scenario.seed, seeds),
                                            report)
            spread = replicated["replications"]["metrics"]["max_rate"]
            row.update(goodput_ci95_low=spread["ci95_low"], goodput_ci95_high=spread["ci95_high"])
            goodput = replicated["max_rate"]
        else:
            goodput = finder.run()["max_rate"]
        knob = finder.knob
    except LoadDoesNotBind as exc:  # the SLOs hold at any load tried: the goodput is at least that load
        goodput, bound, note, knob = exc.highest_met, "lower", str(exc), finder.knob
    except _Pruned as exc:
        note = str(exc)
    except SimcxlError as exc:
        note = f"failed: {exc}"
    try:
        counts = bill(load_scenario(point.base, overrides).resolved)
        cost = capital_cost(counts, plan.prices)
    except SimcxlError as exc:
        counts, cost = {}, None
        goodput, note = None, note or f"failed: {exc}"
    target = plan.spec.target
    meets = goodput is not None and target is not None and goodput >= target
    gpus = counts.get("gpu")
    status = "ran" if goodput is not None else "pruned" if point.pruned else "failed"
    row.update({"status": status, "goodput": goodput, "goodput_bound": bound, "cost_usd": cost,
                "usd_per_goodput": cost / goodput if goodput and cost is not None else None,
                "goodput_per_gpu": goodput / gpus if goodput is not None and gpus else None,
                "goodput_per_musd": goodput / cost * 1e6 if goodput is not None and cost else None,
                "meets_target": meets, **{f"count.{item}": value for item, value in counts.items()}, "note": note})
    if goodput is None:
        report(f"  {status} (not counted): "
               f"{note.removeprefix('failed: ').removeprefix('pruned: ')}")
    else:
        report(f"  goodput {'>= ' if bound else ''}{goodput:.4g} {knob}, ${cost:,.0f}"
               + (" (meets the target)" if meets else ""))
    return row


class _Pruned(SimcxlError):
    """A deployment search's candidate that cannot fit (search.prune's reason): not run, not counted."""


def _write_csv(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    write_atomic(path, pd.DataFrame(rows).to_csv(index=False, lineterminator="\n"))


def plot(result: dict, out: Path) -> list[Path]:
    """Goodput against what it costs (capital cost, or GPUs when a search tried several budgets): every point,
    the Pareto frontier joined, the target and the choice (or a search's best per GPU). A search adds a
    second panel: goodput per GPU of each deployment, best first (one budget puts every point at one cost)."""
    from simcxl.metrics.plots import _pyplot, _save, label, label_points, legend_outside

    plt = _pyplot()
    by = result.get("pareto_by", "cost_usd")
    scale, axis = (1e6, "capital cost (million USD)") if by == "cost_usd" else (1, "GPUs")
    rows = [r for r in result["points"] if r["goodput"] is not None and math.isfinite(r["goodput"])]
    searched = result.get("best_per_gpu") is not None
    fig, axes = plt.subplots(1, 2 if searched else 1, figsize=(12 if searched else 6.5, 4.5), squeeze=False,
                             layout="constrained")  # labels near the edge: no tight-layout warning
    ax = axes[0][0]
    ax.scatter([r["goodput"] for r in rows], [r[by] / scale for r in rows], color="gray", label="points")
    frontier = sorted((r for r in rows if r["pareto"]), key=lambda r: r[by])
    ax.plot([r["goodput"] for r in frontier], [r[by] / scale for r in frontier], "o-", color="C0",
            label="Pareto frontier")
    label_points(ax, [r["goodput"] for r in rows], [r[by] / scale for r in rows],
                 [r.get("deployment") or r["point"][:4] for r in rows])
    if result["target"] is not None:
        ax.axvline(result["target"], color="red", linestyle="--", label=f"target {result['target']:g}")
    choice = result["cheapest_meeting_target"]
    name = "cheapest meeting it"
    if searched and choice is None:
        choice, name = result["best_per_gpu"], "best goodput per GPU"
    if choice and choice["goodput"] is not None and math.isfinite(choice["goodput"]):
        ax.scatter([choice["goodput"]], [choice[by] / scale], s=160, facecolors="none", edgecolors="green",
                   label=f"{name} ({choice.get('deployment') or choice['point'][:4]})")
    ax.set_xlabel(f"goodput: {label(result.get('knob', 'workload.rate'))} meeting the SLOs")
    ax.set_ylabel(axis)
    ax.grid(alpha=0.3)
    legend_outside(ax, fontsize=8)
    if searched:
        bars = axes[0][1]
        ranked = [r for r in result["points"] if r["status"] == "ran"][::-1]
        bars.barh([r["deployment"] for r in ranked], [r["goodput_per_gpu"] for r in ranked],
                  color=["C1" if r["mode"] == "aggregated" else "C0" for r in ranked])
        bars.set_xlabel(f"goodput per GPU ({label(result.get('knob', 'workload.rate')).rsplit('(', 1)[-1].rstrip(')')}"
                        " per GPU; blue: disaggregated, orange: aggregated)")
        bars.grid(alpha=0.3, axis="x")
    return _save(fig, out, "plan")
