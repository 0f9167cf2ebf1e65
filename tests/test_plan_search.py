"""`simcxl plan --search`: deployments of a GPU budget (aggregated or disaggregated, P:D split, TP), the ones that
cannot fit pruned by the simulator's own sizes, the rest ranked by goodput per GPU; every bad input exits 2."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from simcxl.cli import main
from simcxl.config.loader import load_scenario
from simcxl.hardware.model import LLM
from simcxl.metrics.cost import bill, capital_cost
from simcxl.sweep.plan import load_plan

from .conftest import CONFIGS

PLAN = CONFIGS / "plan"
DISAGG, AGG = PLAN / "llama70b_fp8_h100_disagg.yaml", PLAN / "llama70b_fp8_h100_agg.yaml"


def write_search(tmp_path, search=None, **extra) -> str:
    spec = {"base": str(DISAGG),
            "search": {"gpus": 16, "tensor_parallel": [1, 2, 4], "also": [str(AGG)]} if search is None else search,
            "slo": {"ttft": "2s", "tpot": "50ms"}, "attainment": 0.9, **extra}
    path = tmp_path / "plan.yaml"
    path.write_text(json.dumps(spec))
    return str(path)


def test_the_issue_question_has_every_split_of_four_nodes_and_tp1_is_pruned_by_its_kv_room(tmp_path):
    plan = load_plan(write_search(tmp_path))
    labels = [point.info["deployment"] for point in plan.points]
    # 4 four-GPU nodes: TP 1 gives 4 instances a node, TP 2 two, TP 4 one; P:D moves a node at a time
    assert labels == ["4P:12D TP1", "8P:8D TP1", "12P:4D TP1", "2P:6D TP2", "4P:4D TP2", "6P:2D TP2",
                      "1P:3D TP4", "2P:2D TP4", "3P:1D TP4", "agg 16x TP1", "agg 8x TP2", "agg 4x TP4"]
    pruned = {point.info["deployment"] for point in plan.points if point.pruned}
    assert pruned == {"4P:12D TP1", "8P:8D TP1", "12P:4D TP1", "agg 16x TP1"}
    # closed form: 80 GB x 0.9 usable on one H100, less the FP8 weights (1 byte a parameter), over
    # 80 layers x K and V x 8 KV heads x 128 x 2 bytes (bf16 KV) = 327,680 B a token
    llm = LLM(load_scenario(DISAGG).scenario.model)
    assert llm.kv_bytes_per_token == 80 * 2 * 8 * 128 * 2
    room = int((80e9 * 0.9 - llm.total_params) // (80 * 2 * 8 * 128 * 2))
    assert 4_000 < room < 5_000  # 70.6 B parameters leave ~1.4 GB
    need = 16_384 + 1_024  # the workload's longest prompt and output
    assert all(f"KV room {room:,} tokens" in p.pruned and f"{need:,} needed" in p.pruned
               for p in plan.points if p.pruned)
    # the deployments are the overrides the scenario takes, one TP for both phases
    by_label = {point.info["deployment"]: point for point in plan.points}
    assert by_label["3P:1D TP4"].overrides == {"cluster.prefill_nodes": 3, "cluster.decode_nodes": 1,
                                              "cluster.tensor_parallel": 4}
    assert by_label["agg 8x TP2"].base == AGG and by_label["agg 8x TP2"].overrides == {
        "cluster.nodes": 4, "cluster.tensor_parallel": 2}


def test_min_kv_tokens_prunes_by_the_room_an_instance_needs(tmp_path):
    plan = load_plan(write_search(tmp_path, {"gpus": 16, "tensor_parallel": [2, 4], "min_kv_tokens": 200_000}))
    # TP 2: 2 x 72 GB - 70.6 GB = ~73 GB = ~224k tokens; TP 4: ~216 GB = ~660k tokens
    assert not [p for p in plan.points if p.pruned]
    plan = load_plan(write_search(tmp_path, {"gpus": 16, "tensor_parallel": [2, 4], "min_kv_tokens": 300_000}))
    assert {p.info["tensor_parallel"] for p in plan.points if p.pruned} == {2}
    assert all("search.min_kv_tokens" in p.pruned for p in plan.points if p.pruned)


def test_a_search_ranks_by_goodput_per_gpu_and_resumes_to_the_same_bytes(tmp_path, capsys):
    """8 GPUs (two 4-GPU nodes), TP 4: 1P:1D against two aggregated instances, small runs."""
    out = tmp_path / "out"
    spec = write_search(tmp_path, {"gpus": 8, "tensor_parallel": 4, "also": [str(AGG)]},
                        grid={"workload.num_requests": [200]}, tolerance=0.25)
    args = ["plan", spec, "--search", "-o", str(out), "-j", "2"]
    assert main(args) == 0
    table = pd.read_csv(out / "plan.csv")
    result = json.loads((out / "plan.json").read_text())
    assert list(table.status) == ["ran", "ran"] and sorted(table.deployment) == ["1P:1D TP4", "agg 2x TP4"]
    assert list(table["rank"]) == [1, 2]
    assert table.goodput_per_gpu.is_monotonic_decreasing and (table.goodput > 0).all()
    for _, row in table.iterrows():
        scenario = load_scenario(DISAGG if row["mode"] != "aggregated" else AGG,
                                 [f"{k}={int(row[k])}" for k in row.index if k.startswith("cluster.")
                                  and not pd.isna(row[k])] + ["workload.num_requests=200"])
        assert row.cost_usd == pytest.approx(capital_cost(bill(scenario.resolved)))
        assert row.goodput_per_gpu == pytest.approx(row.goodput / 8)
        assert row.goodput_per_musd == pytest.approx(row.goodput / row.cost_usd * 1e6)
        searched = json.loads((out / "points" / row.point / "goodput.json").read_text())
        # the goodput is a load the search met, and the next load up was missed within the tolerance
        assert searched["max_rate"] == row.goodput
        assert searched["lowest_missed"] > row.goodput and searched["lowest_missed"] / row.goodput - 1 <= 0.25
        assert any(p["met"] and p["workload.rate"] == row.goodput for p in searched["points"])
    assert result["best_per_gpu"]["point"] == table.iloc[0].point and result["target"] is None
    assert (out / "plan.png").is_file()
    printed = capsys.readouterr().out
    assert "best goodput per GPU" in printed and table.iloc[0].deployment in printed
    before = (out / "plan.csv").read_bytes(), (out / "plan.json").read_bytes()
    assert main(args) == 0  # resumed: every load found already run, the same answer to the byte
    assert ((out / "plan.csv").read_bytes(), (out / "plan.json").read_bytes()) == before
    import simcxl  # the Python API answers the same search from the same folder

    assert simcxl.plan(spec, output=out, jobs=2).best_per_gpu == result["best_per_gpu"]


BAD = [
    ({"gpus": 0}, "search.gpus"),
    ({"gpus": -4}, "search.gpus"),
    ({"gpus": "sixteen"}, "search.gpus"),
    ({"gpus": []}, "search.gpus"),
    ({"gpus": [16, 16]}, "search.gpus"),
    ({"gpus": 10}, "search.gpus: 10 is not a whole number"),
    ({"gpus": 4}, "search.gpus: 4 GPUs are one"),
    ({"gpus": 16.5}, "search.gpus"),
    ({"gpus": True}, "search.gpus"),
    ({"gpus": 16, "tensor_parallel": [3]}, "search.tensor_parallel: 3 does not divide"),
    ({"gpus": 16, "tensor_parallel": [8]}, "search.tensor_parallel: 8 does not divide"),
    ({"gpus": 16, "tensor_parallel": [0]}, "search.tensor_parallel"),
    ({"gpus": 16, "tensor_parallel": [4, 4]}, "search.tensor_parallel"),
    ({"gpus": 16, "tensor_parallel": []}, "search.tensor_parallel"),
    ({"gpus": 16, "also": ["nope.yaml"]}, "search.also[0]: file not found"),
    ({"gpus": 16, "also": ["."]}, "search.also[0]: a directory, not a regular file"),
    ({"gpus": 16, "min_kv_tokens": 0}, "search.min_kv_tokens"),
    ({"gpus": 16, "min_kv_tokens": 10**9}, "search: every deployment is pruned"),
    ({"gpus": 16, "tp": 4}, "search.tp"),
    ({}, "search.gpus"),
    ("16 GPUs", "search"),
]


@pytest.mark.parametrize("search, where", BAD, ids=[str(b[0]) for b in BAD])
def test_a_bad_search_exits_2_naming_the_file_and_key(tmp_path, capsys, search, where):
    assert main(["plan", write_search(tmp_path, search), "--search", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "plan.yaml" in err and where in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_a_plan_needs_a_target_or_a_search_and_search_needs_its_section(tmp_path, capsys):
    spec = tmp_path / "plan.yaml"
    spec.write_text(json.dumps({"base": str(DISAGG), "slo": {"ttft": "2s"}}))
    assert main(["plan", str(spec), "-o", str(tmp_path / "out")]) == 2
    assert "plan.yaml: target: missing" in capsys.readouterr().err
    spec.write_text(json.dumps({"base": str(DISAGG), "slo": {"ttft": "2s"}, "target": 5}))
    assert main(["plan", str(spec), "--search", "-o", str(tmp_path / "out")]) == 2
    assert "plan.yaml: search: missing" in capsys.readouterr().err


def test_a_base_that_is_not_a_file_is_named_as_what_it_is(tmp_path, capsys):
    """sweep and plan specs: the base's problem comes from errors.describe_file (directory, FIFO, missing)."""
    folder, fifo = tmp_path / "configs", tmp_path / "pipe.yaml"
    folder.mkdir()
    os.mkfifo(fifo)
    spec = tmp_path / "spec.yaml"
    for base, what in [(folder, "a directory, not a regular file"), (fifo, "a FIFO (named pipe), not a regular file"),
                       (tmp_path / "gone.yaml", "file not found")]:
        spec.write_text(json.dumps({"base": str(base), "slo": {"ttft": "2s"}, "target": 5}))
        assert main(["plan", str(spec), "-o", str(tmp_path / "out")]) == 2
        assert f"spec.yaml: base: {what}: {base}" in capsys.readouterr().err
        spec.write_text(json.dumps({"base": str(base)}))
        assert main(["sweep", str(spec), "-o", str(tmp_path / "out")]) == 2
        assert f"spec.yaml: base: {what}: {base}" in capsys.readouterr().err


def test_plan_seeds_ranks_the_mean_of_its_searches_and_gives_their_interval(tmp_path):
    """--seeds 2 on a one-deployment search: the point's goodput is the mean of the two seeds' searches (each in
    points/ID/seed=S/), inside its 95% interval, and the CLI and the API agree to the byte."""
    spec = write_search(tmp_path, {"gpus": 8, "tensor_parallel": 4}, grid={"workload.num_requests": [200]},
                        tolerance=0.25)
    out = tmp_path / "out"
    assert main(["plan", spec, "--search", "--seeds", "2", "-o", str(out), "-j", "2"]) == 0
    row = pd.read_csv(out / "plan.csv").iloc[0]
    per_seed = [json.loads(p.read_text())["max_rate"] for p in sorted((out / "points" / row.point).glob("seed=*/goodput.json"))]
    assert len(per_seed) == 2 and row.goodput == pytest.approx(sum(per_seed) / 2)
    assert row.goodput_ci95_low <= row.goodput <= row.goodput_ci95_high
    assert row.goodput_per_gpu == pytest.approx(row.goodput / 8)
    import simcxl

    assert simcxl.plan(spec, output=tmp_path / "api", jobs=2, seeds=2).table.goodput.iloc[0] == row.goodput
    with pytest.raises(SystemExit) as refused:
        main(["plan", spec, "--seeds", "0"])
    assert refused.value.code == 2
