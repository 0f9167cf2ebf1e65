"""`simcxl goodput`: the highest load meeting SLOs, by bracketing and bisection, resumable."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from simcxl.cli import main
from simcxl.simulate import simulate
from simcxl.sweep.goodput import SLO, judge

from .conftest import scenario

SLOS = ["--slo", "ttft_p99=0.5s", "--slo", "tbt_p99=50ms"]


def meets(rate: float) -> bool:
    summary = simulate(scenario("rdma.yaml", "workload.num_requests=1500", f"workload.rate={rate}")).summary
    return summary["ttft_s"]["p99"] <= 0.5 and summary["tbt_s"]["p99"] <= 0.05 and not summary["requests"]["unfinished"]


def test_goodput_is_met_at_max_rate_and_missed_at_115_percent_of_it(tmp_path, capsys):
    out = tmp_path / "gp"
    args = ["goodput", "rdma", *SLOS, "-o", str(out), "-j", "2", "--set", "workload.num_requests=1500"]
    assert main(args) == 0
    result = json.loads((out / "goodput.json").read_text())
    rate = result["max_rate"]
    assert rate > 0 and result["lowest_missed"] / rate - 1 <= 0.02
    assert meets(rate) and not meets(1.15 * rate)
    assert (out / "goodput.png").is_file() and "max workload.rate meeting the SLOs" in capsys.readouterr().out
    runs = sorted(p.name for p in (out / "points").iterdir())
    before = (out / "goodput.json").read_bytes()
    assert main(args) == 0  # resumed: every load is found already run, and the answer is the same
    assert sorted(p.name for p in (out / "points").iterdir()) == runs
    assert (out / "goodput.json").read_bytes() == before


def test_attainment_is_the_share_of_requests_meeting_every_per_request_slo(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"requests": {"unfinished": 0}}))
    pd.DataFrame({"ttft_s": [0.1 * i for i in range(1, 11)], "e2e_s": [0.1 * i + 1.0 for i in range(1, 11)],
                  "output_tokens": [11] * 9 + [1], "tbt_max_s": [0.01] * 10, "tbt_mean_s": [0.01] * 10}
                 ).to_csv(tmp_path / "requests.csv", index=False)
    ttft = SLO.parse("ttft=500ms")
    assert judge(tmp_path, [ttft], 0.5) == {"unfinished": 0, "values": {}, "attainment": 0.5, "met": True}
    assert not judge(tmp_path, [ttft], 0.6)["met"]
    # TPOT per request is (E2E - TTFT) / (output - 1) = 1.0 / 10 = 100 ms (0 for a one-token request)
    assert judge(tmp_path, [SLO.parse("tpot=100ms")], 1.0)["attainment"] == 1.0
    assert judge(tmp_path, [SLO.parse("tpot=99ms")], 0.1)["attainment"] == 0.1
    assert judge(tmp_path, [ttft, SLO.parse("tpot=99ms")], 0.1)["attainment"] == 0.0


@pytest.mark.parametrize("args, expected", [
    (["--slo", "ttft_p98=1s"], "expected NAME=DURATION"),
    (["--slo", "ttft=fast"], "--slo ttft=fast:"),
    (["--slo", "ttft=1s", "--attainment", "1.5"], "expected a share in (0, 1]"),
    (["--slo", "ttft=1s", "--set", "workload={type: closed_loop, concurrency: 4, num_requests: 10, "
      "input_tokens: {dist: fixed, value: 100}, output_tokens: {dist: fixed, value: 10}}"], "needs a rate"),
])
def test_bad_goodput_arguments_exit_2(tmp_path, capsys, args, expected):
    assert main(["goodput", "rdma", "-o", str(tmp_path / "gp"), *args]) == 2
    assert expected in capsys.readouterr().err


def test_an_slo_no_single_request_can_meet_stops_the_search_at_goodput_zero(tmp_path, capsys):
    """A TTFT below one prompt's prefill is missed at any load: two halvings that change nothing end the search."""
    out = tmp_path / "gp"
    assert main(["goodput", "rdma", "--slo", "ttft_p50=1ms", "-o", str(out), "-j", "2",
                 "--set", "workload.num_requests=200"]) == 0
    result = json.loads((out / "goodput.json").read_text())
    assert result["max_rate"] == 0 and len(result["points"]) <= 10  # not the 40 loads of 20 halvings
    assert "no load tried meets the SLOs" in capsys.readouterr().out


def test_a_search_into_a_folder_of_another_scenario_reruns_its_loads(tmp_path):
    """Resuming reuses a load's run only if it ran this very scenario: changing --set must not reuse it."""
    out = tmp_path / "gp"
    base = ["goodput", "rdma", "--slo", "ttft_p99=0.5s", "-o", str(out), "-j", "2"]
    assert main([*base, "--set", "workload.num_requests=200"]) == 0
    assert main([*base, "--set", "workload.num_requests=300"]) == 0
    summary = json.loads((out / "points" / "rate=24" / "summary.json").read_text())
    assert summary["requests"]["arrived"] == 300
