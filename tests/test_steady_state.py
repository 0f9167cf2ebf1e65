"""summary.json's steady_state (simcxl/metrics/steady_state.py) and goodput counting a load as met only in
steady state (docs/notes/steady_state.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simcxl.cli import main
from simcxl.metrics.steady_state import TOLERANCE, steady_state
from simcxl.simulate import simulate

from .conftest import scenario


def d_d_1(rate: float, service: float, n: int) -> dict:
    """Arrivals every 1/rate seconds to one server taking ``service`` seconds each, FIFO: a closed form."""
    arrival = np.arange(n) / rate
    finish = np.empty(n)
    free = 0.0
    for i, t in enumerate(arrival):
        free = finish[i] = max(free, t) + service
    e2e = finish - arrival
    return steady_state(arrival, e2e, finish, e2e, closed_loop=False)


def test_an_overloaded_queue_completes_its_capacity_and_its_wait_grows_by_offered_over_capacity_minus_1():
    out = d_d_1(rate=20, service=0.1, n=4000)  # capacity 10/s, offered 20/s
    assert not out["verdict"] and out["conclusive"]
    assert out["offered_rate"] == pytest.approx(20, rel=1e-3)
    assert out["completed_rate"] == pytest.approx(10, rel=0.01)
    assert out["queue_growth"] == pytest.approx(20 / 10 - 1, rel=1e-3)  # wait of arrival t: (rate*S - 1) t
    assert out["window_start_s"] == pytest.approx(400 / 20) and out["window_end_s"] == pytest.approx(3999 / 20)
    assert out["requests"] == 3600 and "short by more than 5%" in out["reason"]


def test_a_light_queue_is_steady_and_a_short_run_says_it_cannot_tell():
    out = d_d_1(rate=5, service=0.1, n=1000)
    assert out["verdict"] and out["conclusive"] and out["completed_rate"] == pytest.approx(out["offered_rate"], rel=0.01)
    assert out["queue_growth"] == pytest.approx(0, abs=1e-9) and out["lag_s"] == pytest.approx(0.1)
    short = d_d_1(rate=5, service=0.1, n=50)
    assert not short["verdict"] and not short["conclusive"] and short["reason"].startswith("too short to tell")


def test_a_closed_loop_is_judged_by_its_throughput_across_the_window_halves():
    finish = np.arange(1, 1001) * 0.1  # one completion every 0.1 s, each client sending again at once
    arrival = np.concatenate([[0.0], finish[:-1]])
    ttft = np.full(1000, 0.05)
    out = steady_state(arrival, ttft, finish, finish - arrival, closed_loop=True)
    assert out["verdict"] and out["offered_rate"] is None
    assert out["completed_rate_halves"] == pytest.approx([10, 10], rel=0.01)
    slowing = np.cumsum(np.where(np.arange(1000) < 500, 0.1, 0.2))  # throughput halves mid-run
    out = steady_state(np.concatenate([[0.0], slowing[:-1]]), ttft, slowing, np.diff(slowing, prepend=0),
                       closed_loop=True)
    assert not out["verdict"] and "halves" in out["reason"]


def test_the_simulator_flags_an_overloaded_run_and_passes_a_light_one():
    heavy = simulate(scenario("rdma.yaml", "workload.rate=200", "workload.num_requests=1500")).summary["steady_state"]
    assert not heavy["verdict"] and heavy["conclusive"]
    assert heavy["completed_rate"] < 0.5 * heavy["offered_rate"] and heavy["queue_growth"] > 10 * TOLERANCE
    light = simulate(scenario("rdma.yaml", "workload.rate=8", "workload.num_requests=1500")).summary["steady_state"]
    assert light["verdict"] and light["conclusive"] and light["requests"] == 1350
    assert light["completed_rate"] == pytest.approx(light["offered_rate"], rel=TOLERANCE)
    closed = simulate(scenario("engine/vllm_llama-3.1-70b-fp8_h100.yaml")).summary["steady_state"]
    assert closed["offered_rate"] is None and len(closed["completed_rate_halves"]) == 2


# M/D/1: one prefill instance, one prompt at a time (max_batch_size 1), every prompt 4,096 tokens: Poisson
# arrivals to a server with a fixed service time S (its prefill); two decode instances and 2-token outputs
# leave decode far from binding. Stable iff rate x S < 1, so with an SLO no stable run misses
# (e2e_p50 <= 1000 s) the goodput edge is 1/S. The steady-state rule passes an overload under TOLERANCE
# (completed within 5% of offered, TTFT growth under 0.05 s/s), so the edge lies in [1 - 5%, 1 + 5%] / S.
MD1 = ["cluster.prefill_nodes=1", "cluster.decode_nodes=2", "serving.prefill.max_batch_size=1",
       "workload.input_tokens={dist: fixed, value: 4096}", "workload.output_tokens={dist: fixed, value: 2}",
       "workload.num_requests=2000"]


def test_md1_mean_wait_and_goodput_edge_are_the_closed_forms(tmp_path):
    saturated = simulate(scenario("rdma.yaml", *MD1, "workload.rate=1000")).report.requests
    service = float(np.median(np.diff(np.sort(saturated.prefill_start_s.to_numpy()))))  # back to back: S
    assert service == pytest.approx(float((saturated.prefill_end_s - saturated.prefill_start_s).median()))
    rate = 0.5 / service  # rho = 0.5: Pollaczek-Khinchine's mean wait rho S / (2 (1 - rho)) = S / 2
    run = simulate(scenario("rdma.yaml", *MD1, f"workload.rate={rate}", "workload.num_requests=4000"))
    assert run.summary["steady_state"]["verdict"]
    assert run.summary["ttft_breakdown_s"]["queue"] == pytest.approx(service / 2, rel=0.15)
    out = tmp_path / "gp"
    assert main(["goodput", "rdma", "--slo", "e2e_p50=1000s", "-o", str(out), "-j", "4",
                 *[arg for key in MD1 for arg in ("--set", key)], "--set", "workload.rate=8"]) == 0
    result = json.loads((out / "goodput.json").read_text())
    assert (1 - TOLERANCE) / service <= result["max_rate"] <= (1 + TOLERANCE) / service
    missed = [p for p in result["points"] if not p["met"]]
    assert missed and all(not p["steady"]["verdict"] for p in missed)  # only the steady-state rule binds here


def test_goodput_reruns_a_load_too_short_to_tell_with_twice_the_requests(tmp_path, capsys):
    out = tmp_path / "gp"
    assert main(["goodput", "rdma", "--slo", "e2e_p50=1000s", "-o", str(out), "-j", "2",
                 *[arg for key in MD1[:-1] for arg in ("--set", key)], "--set", "workload.num_requests=60",
                 "--set", "workload.rate=8"]) == 0
    printed = capsys.readouterr().out
    assert "60 requests too short to tell: ran workload.num_requests=120" in printed
    result = json.loads((out / "goodput.json").read_text())
    assert {p["num_requests"] for p in result["points"]} <= {60, 120, 240, 480}
    assert all(p["steady"]["conclusive"] and not p["met"] for p in result["points"] if p["num_requests"] == 60)
    assert any(p.get("too_short_with", [None])[0] == 60 for p in result["points"])  # gross overloads need no rerun
    assert any(name.endswith(",n=120") for name in (p.name for p in (out / "points").iterdir()))


def test_a_plan_whose_slos_and_steady_state_never_bind_records_a_lower_bound_not_infinity(tmp_path, monkeypatch, capsys):
    """The path steady state now closes for open loops (an overload always fails it), kept honest: with the
    verdict ignored and an SLO no run misses, the point is a lower bound in standard JSON."""
    import importlib

    goodput = importlib.import_module("simcxl.sweep.goodput")
    original = goodput.judge

    def ignoring_steady_state(folder, slos, attainment):
        verdict = original(folder, slos, attainment)
        verdict["met"] = verdict["unfinished"] == 0 and all(
            verdict["values"][slo.name] is not None and verdict["values"][slo.name] <= slo.limit for slo in slos)
        return verdict

    monkeypatch.setattr(goodput, "judge", ignoring_steady_state)
    spec = tmp_path / "plan.yaml"
    spec.write_text(json.dumps({"base": str(scenario("rdma.yaml").path), "grid": {"workload.num_requests": [20]},
                                "slo": {"ttft_p99": "1000s"}, "target": 5, "tolerance": 0.5}))
    assert main(["plan", str(spec), "-o", str(tmp_path / "out"), "-j", "4"]) == 0
    capsys.readouterr()
    text = (tmp_path / "out" / "plan.json").read_text()
    (point,) = json.loads(text)["points"]
    assert "Infinity" not in text and point["goodput_bound"] == "lower" and point["goodput"] >= 2**20


def test_a_plan_counts_a_load_met_only_in_steady_state(tmp_path, capsys):
    """The same plan, judged as shipped: the overload at high loads fails steady state, so the goodput is finite."""
    spec = tmp_path / "plan.yaml"
    spec.write_text(json.dumps({"base": str(scenario("rdma.yaml").path), "grid": {"workload.num_requests": [20]},
                                "slo": {"ttft_p99": "1000s"}, "target": 5, "tolerance": 0.5}))
    assert main(["plan", str(spec), "-o", str(tmp_path / "out"), "-j", "4"]) == 0
    capsys.readouterr()
    (point,) = json.loads((tmp_path / "out" / "plan.json").read_text())["points"]
    assert point["goodput_bound"] == "" and 0 < point["goodput"] < 2**20
    result = json.loads((tmp_path / "out" / "points" / point["point"] / "goodput.json").read_text())
    assert all(not p["steady"]["verdict"] for p in result["points"] if not p["met"])
