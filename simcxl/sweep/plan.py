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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import ConfigDict, Field, ValidationError

from simcxl.config.loader import load_scenario
from simcxl.errors import ConfigError, SimcxlError
from simcxl.metrics.cost import CostTable, bill, capital_cost
from simcxl.metrics.results import dump_json, write_atomic
from simcxl.sweep.executors import Executor
from simcxl.sweep.goodput import MIN_TOLERANCE, SLO, GoodputSearch, LoadDoesNotBind, finite_json
from simcxl.sweep.spec import SweepSpec, invalid, read_spec, sweep_of


class PlanSpec(SweepSpec):
    model_config = ConfigDict(extra="forbid", frozen=True)

    slo: dict[str, str] = Field(min_length=1)
    attainment: float = Field(0.9, gt=0, le=1)
    target: float = Field(gt=0, allow_inf_nan=False)
    tolerance: float = Field(0.05, ge=MIN_TOLERANCE, allow_inf_nan=False)
    costs: dict[str, float] = Field(default_factory=dict)


@dataclass
class Plan:
    """A loaded plan: its points (as a sweep's), SLOs, target and prices."""

    path: Path
    spec: PlanSpec
    points: list
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
    sweep = sweep_of(path, spec)
    return Plan(path, spec, sweep.points, sweep.base, slos, prices)


def pareto(rows: list[dict]) -> set[str]:
    """Ids of the points no other point beats on both cost (lower) and goodput (higher)."""
    frontier, best = set(), -math.inf
    for row in sorted(rows, key=lambda r: (r["cost_usd"], -r["goodput"])):
        if row["goodput"] > best:
            frontier.add(row["point"])
            best = row["goodput"]
    return frontier


def run_plan(plan: Plan, out: Path, executor: Executor, jobs: int,
             report: Callable[[str], None] = print) -> dict[str, Any]:
    """Goodput and cost of every point, the plan's CSV and summary, and the cheapest point meeting the target."""
    rows = []
    for point in plan.points:
        overrides = point.set_args()
        report(f"point {point.id}: {' '.join(overrides) or '(the base scenario)'}")
        rows.append(_plan_point(plan, point, overrides, out, executor, jobs, report))
    ran = [row for row in rows if row["goodput"] is not None]
    frontier = pareto(ran)
    for row in rows:
        row["pareto"] = row["point"] in frontier
    meeting = [row for row in rows if row["meets_target"]]
    cheapest = min(meeting, key=lambda r: (r["cost_usd"], -r["goodput"], r["point"]), default=None)
    _write_csv(out / "plan.csv", rows)
    result = {"plan": str(plan.path), "base": str(plan.base), "slos": {s.name: s.limit for s in plan.slos},
              "attainment": plan.spec.attainment, "target": plan.spec.target, "prices": plan.prices.model_dump(),
              "cheapest_meeting_target": cheapest, "points": rows,
              "failed_points": [row["point"] for row in rows if row["goodput"] is None]}
    write_atomic(out / "plan.json", dump_json(finite_json(result)))
    return result


def _plan_point(plan: Plan, point, overrides: list[str], out: Path, executor: Executor, jobs: int,
                report: Callable[[str], None]) -> dict[str, Any]:
    """One point's row. A point that cannot run (its model does not fit, an override it rejects) is a failed
    point: goodput None, the error in ``note``, never meeting the target. One whose SLOs hold at every load
    tried has that load as its goodput, marked as a lower bound."""
    row: dict[str, Any] = {"point": point.id, **point.overrides}
    goodput, bound, note = None, "", ""
    try:
        search = GoodputSearch(plan.base, overrides, plan.slos, plan.spec.attainment, out / "points" / point.id,
                               executor, jobs, plan.spec.tolerance, report)
        goodput = search.run()["max_rate"]
        knob = search.knob
    except LoadDoesNotBind as exc:  # the SLOs hold at any load tried: the goodput is at least that load
        goodput, bound, note, knob = exc.highest_met, "lower", str(exc), search.knob
    except SimcxlError as exc:
        note, knob = f"failed: {exc}", ""
    try:
        counts = bill(load_scenario(plan.base, overrides).resolved)
        cost = capital_cost(counts, plan.prices)
    except SimcxlError as exc:
        counts, cost = {}, None
        goodput, note = None, note or f"failed: {exc}"
    meets = goodput is not None and goodput >= plan.spec.target
    row.update({"goodput": goodput, "goodput_bound": bound, "cost_usd": cost,
                "usd_per_goodput": cost / goodput if goodput and cost is not None else None,
                "meets_target": meets, **{f"count.{item}": value for item, value in counts.items()}, "note": note})
    if goodput is None:
        report(f"  failed (not counted): {note.removeprefix('failed: ')}")
    else:
        report(f"  goodput {'>= ' if bound else ''}{goodput:.4g} {knob}, ${cost:,.0f}"
               + (" (meets the target)" if meets else ""))
    return row


def _write_csv(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    write_atomic(path, pd.DataFrame(rows).to_csv(index=False, lineterminator="\n"))


def plot(result: dict, out: Path) -> list[Path]:
    """Capital cost against goodput: every point, the Pareto frontier joined, the target and the choice."""
    from simcxl.metrics.plots import _pyplot, _save

    plt = _pyplot()
    rows = [r for r in result["points"] if r["goodput"] is not None and math.isfinite(r["goodput"])]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter([r["goodput"] for r in rows], [r["cost_usd"] / 1e6 for r in rows], color="gray", label="points")
    frontier = sorted((r for r in rows if r["pareto"]), key=lambda r: r["cost_usd"])
    ax.plot([r["goodput"] for r in frontier], [r["cost_usd"] / 1e6 for r in frontier], "o-", color="C0",
            label="Pareto frontier")
    for r in rows:
        ax.annotate(r["point"][:4], (r["goodput"], r["cost_usd"] / 1e6), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.axvline(result["target"], color="red", linestyle="--", label=f"target {result['target']:g}")
    choice = result["cheapest_meeting_target"]
    if choice and choice["goodput"] is not None and math.isfinite(choice["goodput"]):
        ax.scatter([choice["goodput"]], [choice["cost_usd"] / 1e6], s=160, facecolors="none", edgecolors="green",
                   label=f"cheapest meeting it ({choice['point'][:4]})")
    ax.set_xlabel("goodput (load meeting the SLOs)")
    ax.set_ylabel("capital cost (million USD)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out, "plan")
