"""Goodput as a function of the attainment threshold, from the runs a search made: monotone in the threshold,
equal to the search's own answer at its threshold, edges outside the runs named; and goodput --seeds N."""

from __future__ import annotations

import json

import pytest

import simcxl
from simcxl.cli import main
from simcxl.sweep.goodput import SLO, attainment_curve, judge, meets

SLOS = [SLO.parse("ttft=500ms"), SLO.parse("tpot=20ms")]
KNOB = "workload.rate"


def point(rate: float, share: float, **extra) -> dict:
    return {KNOB: rate, "unfinished": 0, "values": {}, "attainment": share, "steady": {"verdict": True}, **extra}


def test_the_curve_is_read_off_the_runs_at_each_threshold():
    points = [point(10, 0.99), point(20, 0.96), point(30, 0.91), point(40, 0.86), point(50, 0.70)]
    curve = {e["attainment"]: (e["max_rate"], e["lowest_missed"]) for e in attainment_curve(points, SLOS, KNOB, 0.9)}
    assert curve == {0.80: (40, 50), 0.85: (40, 50), 0.90: (30, 40), 0.95: (20, 30), 0.99: (10, 20)}


def test_a_load_above_the_lowest_miss_does_not_count_and_other_verdicts_still_bind():
    """A met load above a missed one is noise the monotone search does not believe; an unsteady run misses at
    every threshold."""
    points = [point(10, 0.99), point(20, 0.80), point(30, 0.97, steady={"verdict": False}), point(40, 0.99)]
    curve = {e["attainment"]: e for e in attainment_curve(points, SLOS, KNOB, 0.9)}
    assert (curve[0.80]["max_rate"], curve[0.80]["lowest_missed"]) == (20, 30)
    assert (curve[0.85]["max_rate"], curve[0.85]["lowest_missed"]) == (10, 20)


def test_edges_outside_the_runs_are_named():
    low = attainment_curve([point(10, 0.5), point(20, 0.4)], SLOS, KNOB, 0.9)
    assert all(e["max_rate"] == 0 and e["edge"].startswith("below the lowest load tried (10)") for e in low)
    high = attainment_curve([point(10, 0.999), point(20, 0.995)], SLOS, KNOB, 0.9)
    assert all(e["lowest_missed"] == float("inf") and e["edge"].startswith("above the highest load tried (20)")
               for e in high)


def test_a_real_searchs_curve_is_monotone_and_agrees_with_the_search(tmp_path, capsys):
    out = tmp_path / "gp"
    assert main(["goodput", "rdma", "--slo", "ttft=500ms", "--slo", "tpot=20ms", "--attainment", "0.95",
                 "--set", "workload.num_requests=200", "-o", str(out)]) == 0
    result = json.loads((out / "goodput.json").read_text())
    curve = result["attainment_curve"]
    assert [e["attainment"] for e in curve] == [0.80, 0.85, 0.90, 0.95, 0.99]
    rates = [e["max_rate"] for e in curve]
    assert all(a >= b for a, b in zip(rates, rates[1:])) and rates[0] > 0
    own = next(e for e in curve if e["attainment"] == 0.95)
    assert (own["max_rate"], own["lowest_missed"]) == (result["max_rate"], result["lowest_missed"])
    for p in result["points"]:  # the threshold's verdict is judge's, run by run
        grown = f",n={p['num_requests']}" if p["num_requests"] != 200 else ""
        folder = out / "points" / f"rate={p[KNOB]:.6g}{grown}"
        assert meets(p, SLOS, 0.95) == judge(folder, SLOS, 0.95)["met"] == p["met"]


def test_goodput_seeds_reports_each_searchs_answer_and_their_interval(tmp_path, capsys):
    """Two searches, one per seed, in parallel; each equals the single search of the scenario with that seed."""
    result = simcxl.goodput("rdma", {"ttft": "500ms", "tpot": "20ms"}, {"workload.num_requests": 200}, seeds=2,
                            jobs=2, output=tmp_path / "two")
    alone = simcxl.goodput("rdma", {"ttft": "500ms", "tpot": "20ms"}, {"workload.num_requests": 200, "seed": 2},
                           output=tmp_path / "alone")
    per_seed = {e["seed"]: e["max_rate"] for e in result.raw["per_seed"]}
    assert set(per_seed) == {1, 2} and per_seed[2] == alone.max_rate
    assert result.max_rate == pytest.approx((per_seed[1] + per_seed[2]) / 2)
    assert result.interval["ci95_low"] <= result.max_rate <= result.interval["ci95_high"]
    curve = result.attainment_curve
    assert list(curve["attainment"]) == [0.80, 0.85, 0.90, 0.95, 0.99]
    means = list(curve["max_rate.mean"])
    assert all(a >= b for a, b in zip(means, means[1:]))
    assert set(result.points.seed) == {1, 2}
    assert (tmp_path / "two" / "seed=1" / "goodput.json").is_file()
    assert len(result.plot(tmp_path / "plot")) >= 1
