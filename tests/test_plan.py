"""`simcxl plan`: goodput and cost over a grid of configurations, the Pareto frontier, the cheapest meeting a target."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from simcxl.cli import main
from simcxl.metrics.cost import CostTable, bill, capital_cost
from simcxl.sweep.plan import pareto

from .conftest import CONFIGS


def test_pareto_keeps_points_nothing_beats_on_both_cost_and_goodput():
    rows = [{"point": "a", "cost_usd": 100, "goodput": 10}, {"point": "b", "cost_usd": 100, "goodput": 12},
            {"point": "c", "cost_usd": 150, "goodput": 11}, {"point": "d", "cost_usd": 200, "goodput": 20},
            {"point": "e", "cost_usd": 90, "goodput": 5}]
    assert pareto(rows) == {"e", "b", "d"}  # a: b costs the same and does more; c: b is cheaper and does more


def write_plan(tmp_path, **extra) -> str:
    spec = {"base": str(CONFIGS / "rdma.yaml"),
            "grid": {"cluster.decode_nodes": [1, 4], "workload.num_requests": [600]},
            "slo": {"ttft_p99": "0.5s", "tbt_p99": "50ms"}, "target": 20, "tolerance": 0.1, **extra}
    path = tmp_path / "plan.yaml"
    path.write_text(json.dumps(spec))
    return str(path)


def test_plan_prices_each_point_and_picks_the_cheapest_meeting_the_target(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["plan", write_plan(tmp_path, costs={"gpu": 30000}), "-o", str(out), "-j", "2"]
    assert main(args) == 0
    table = pd.read_csv(out / "plan.csv")
    result = json.loads((out / "plan.json").read_text())
    assert list(table["cluster.decode_nodes"]) == [1, 4]
    # cost: the bill of each configuration at the plan's prices (4 prefill + N decode one-GPU nodes)
    for _, row in table.iterrows():
        nodes = 4 + row["cluster.decode_nodes"]
        counts = {"gpu": nodes, "gpu_server": nodes, "gpu_slot": nodes, "nic": nodes, "nic_100gbps": nodes * 4}
        assert row.cost_usd == pytest.approx(capital_cost(counts, CostTable(gpu=30000)))
        assert row.usd_per_goodput == pytest.approx(row.cost_usd / row.goodput)
        assert row.meets_target == (row.goodput >= 20)
    one, four = table.iloc[0], table.iloc[1]
    assert four.goodput > one.goodput  # more decode capacity carries more load within the TBT SLO
    meeting = table[table.meets_target]
    assert result["cheapest_meeting_target"]["point"] == meeting.sort_values("cost_usd").iloc[0].point
    assert set(table[table.pareto].point) == pareto(table.to_dict("records"))
    assert (out / "plan.png").is_file() and "cheapest meeting the target" in capsys.readouterr().out
    before = (out / "plan.csv").read_bytes()
    assert main(args) == 0  # resumed: every load of every point is found already run
    assert (out / "plan.csv").read_bytes() == before


def test_the_bill_counts_memory_servers_for_both_rdma_pool_managers():
    from simcxl.config.loader import load_scenario

    for config in ("sac_rdma.yaml", "sac_rdma_hbm.yaml"):
        counts = bill(load_scenario(CONFIGS / config).resolved)
        assert counts["memory_server"] == 1 and counts["dram_gb"] == pytest.approx(2 * 1024**4 / 1e9)
    assert math.isclose(bill(load_scenario(CONFIGS / "sac.yaml").resolved)["cxl_device"], 8)


@pytest.mark.parametrize("extra, where", [({"costs": {"gpus": 1}}, "costs.gpus"),
                                          ({"slo": {"ttft_p98": "1s"}}, "slo.ttft_p98"),
                                          ({"target": 0}, "target")])
def test_a_bad_plan_is_a_clear_error(tmp_path, capsys, extra, where):
    assert main(["plan", write_plan(tmp_path, **extra), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "plan.yaml" in err and where in err
