"""Replications (--seeds N): the seed rule, Student-t intervals checked against tables and against their
coverage, intervals that vanish where the seed changes nothing and shrink with N where it does, results that
do not depend on the number of processes, --seeds 1 equal to today's run, and bad counts refused."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import simcxl
from simcxl.cli import main
from simcxl.errors import ConfigError
from simcxl.metrics.replications import MAX_SEEDS, half_width, interval, replica_seeds, t_quantile_975
from simcxl.sweep.executors import LocalExecutor
from simcxl.sweep.runner import run_replicated

from .conftest import CONFIGS

RDMA = CONFIGS / "rdma.yaml"
SMALL = ["workload.num_requests=100"]
FIXED = ["workload={type: closed_loop, concurrency: 4, num_requests: 24, input_tokens: {dist: fixed, value: 512}, "
         "output_tokens: {dist: fixed, value: 16}}"]


@pytest.mark.parametrize("df, expected", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (29, 2.0452),
                                          (120, 1.9799)])
def test_t_quantile_matches_the_published_table(df, expected):
    """t(0.975, df) from NIST/SEMATECH's table of the t distribution's critical values."""
    assert t_quantile_975(df) == pytest.approx(expected, abs=1e-4)


def test_the_interval_covers_the_true_mean_95_percent_of_the_time():
    """4,000 sets of 5 normal draws: a Student-t interval covers the mean 95% of the time (binomial sd 0.34%);
    the normal quantile 1.96 would cover only 88%."""
    draws = np.random.default_rng(7).normal(3.0, 2.0, size=(4000, 5))
    covered = [(s := interval(list(row)))["ci95_low"] <= 3.0 <= s["ci95_high"] for row in draws]
    assert np.mean(covered) == pytest.approx(0.95, abs=0.012)


def test_one_value_is_its_own_interval_and_a_missing_value_gives_none():
    assert interval([2.5]) == {"mean": 2.5, "ci95_low": 2.5, "ci95_high": 2.5}
    assert interval([1.0, None])["mean"] is None


def test_the_seed_rule_counts_up_from_the_scenarios_seed():
    assert replica_seeds(7, 3) == [7, 8, 9] and replica_seeds(0, 1) == [0]


def test_a_run_the_seed_does_not_change_has_zero_width(tmp_path):
    """Closed loop, fixed lengths: nothing is drawn at random, so every replication is the same run."""
    summary = run_replicated(RDMA, FIXED, tmp_path, [1, 2, 3], LocalExecutor(1))
    for key, stats in summary["replications"]["metrics"].items():
        assert half_width(stats) == 0.0, key
    assert summary["replications"]["metrics"]["ttft_s.mean"]["mean"] == summary["ttft_s"]["mean"]


def test_a_poisson_runs_interval_shrinks_like_one_over_sqrt_n(tmp_path):
    """Mean TTFT of 100-request Poisson runs: 16 seeds against 4 narrow the interval by about
    t(0.975,15)/t(0.975,3) / 2 = 0.33 (the sample sd varies from set to set, so within a factor of 2)."""
    four = run_replicated(RDMA, SMALL, tmp_path / "4", list(range(1, 5)), LocalExecutor(2))
    sixteen = run_replicated(RDMA, SMALL, tmp_path / "16", list(range(1, 17)), LocalExecutor(2))
    ratio = half_width(sixteen["replications"]["metrics"]["ttft_s.mean"]) / \
        half_width(four["replications"]["metrics"]["ttft_s.mean"])
    expected = t_quantile_975(15) / t_quantile_975(3) / 2
    assert expected / 2 < ratio < expected * 2
    # each mean is the mean of the seeds' own summaries
    values = [json.loads((tmp_path / "16" / f"seed={k}" / "summary.json").read_text())["ttft_s"]["mean"]
              for k in range(1, 17)]
    assert sixteen["replications"]["metrics"]["ttft_s.mean"]["mean"] == pytest.approx(np.mean(values), rel=1e-12)
    assert sixteen["replications"]["seeds"] == list(range(1, 17))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "run.json"}  # run.json: wall-clock data only


def test_replications_are_byte_identical_across_processes(tmp_path):
    run_replicated(RDMA, SMALL, tmp_path / "one", [1, 2, 3], LocalExecutor(1))
    run_replicated(RDMA, SMALL, tmp_path / "two", [1, 2, 3], LocalExecutor(2))
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert one == two and "seed=3/requests.csv" in one and "replications.csv" in one


def test_seeds_1_writes_the_same_files_as_a_run_without_it(tmp_path, capsys):
    args = ["run", "rdma", "--set", "workload.num_requests=100", "-q", "-o"]
    assert main([*args, str(tmp_path / "plain")]) == 0
    assert main([*args, str(tmp_path / "one"), "--seeds", "1"]) == 0
    plain = _files(tmp_path / "plain")
    assert plain == _files(tmp_path / "one") and "summary.json" in plain and "instances.csv" in plain


def test_run_seeds_writes_a_folder_per_seed_and_prints_intervals(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "rdma", "--set", "workload.num_requests=100", "--seeds", "3", "-j", "2", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    block = summary["replications"]
    assert block["n"] == 3 and block["seeds"] == [1, 2, 3]  # configs/rdma.yaml has seed: 1
    assert sorted(p.name for p in out.iterdir()) == ["replications.csv", "seed=1", "seed=2", "seed=3", "summary.json"]
    first = json.loads((out / "seed=1" / "summary.json").read_text())
    assert {k: v for k, v in summary.items() if k != "replications"} == first
    stats = block["metrics"]["throughput.requests_per_s"]
    assert f"{stats['mean']:,.2f} ± {half_width(stats):,.2f}" in printed and "TTFT p99 (ms)" in printed


@pytest.mark.parametrize("command", [["run", "rdma"], ["compare", "rdma"], ["goodput", "rdma", "--slo", "ttft=1s"]])
@pytest.mark.parametrize("value", ["0", "-2", "1.5", "many", str(MAX_SEEDS + 1)])
def test_a_bad_seed_count_exits_2_naming_the_option(command, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([*command, "--seeds", value, "-o", str(tmp_path / "x")])
    assert stop.value.code == 2
    assert f"argument --seeds: expected a whole number of replications from 1 to {MAX_SEEDS}" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("value", [0, 1.0, True, MAX_SEEDS + 1])
def test_the_api_refuses_a_bad_seed_count(value):
    with pytest.raises(ConfigError, match="seeds"):
        simcxl.run("rdma", {"workload.num_requests": 10}, seeds=value)


def test_api_run_and_compare_with_seeds_equal_the_command_line(tmp_path, capsys):
    replicated = simcxl.run("rdma", {"workload.num_requests": 100}, seeds=2, output=tmp_path / "api")
    assert main(["run", "rdma", "--set", "workload.num_requests=100", "--seeds", "2", "-q", "-o",
                 str(tmp_path / "cli")]) == 0
    assert _files(tmp_path / "api") == _files(tmp_path / "cli")
    assert list(replicated.per_seed.seed) == [1, 2]
    assert replicated.intervals.loc["ttft_s.p99", "mean"] == replicated.summary["replications"]["metrics"]["ttft_s.p99"]["mean"]
    table = simcxl.compare(["rdma", "kvdirect"], {"workload.num_requests": 100}, seeds=2)
    assert table.loc["rdma", "ttft_s.p99.mean"] == replicated.intervals.loc["ttft_s.p99", "mean"]
    assert table.loc["kvdirect", "ttft_s.p99.ci95_low"] <= table.loc["kvdirect", "ttft_s.p99.mean"]


def test_compare_seeds_writes_intervals_to_compare_csv(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["compare", "rdma", "kvdirect", "--set", "workload.num_requests=100", "--seeds", "2", "-o",
                 str(out)]) == 0
    lines = (out / "compare.csv").read_text().splitlines()
    assert lines[0] == "metric,rdma,rdma ci95_low,rdma ci95_high,kvdirect,kvdirect ci95_low,kvdirect ci95_high"
    summary = json.loads((out / "rdma" / "summary.json").read_text())
    row = dict(zip(lines[0].split(","), lines[1].split(",")))
    assert row["metric"] == "TTFT mean (ms)"
    assert float(row["rdma"]) == pytest.approx(summary["replications"]["metrics"]["ttft_s.mean"]["mean"] * 1e3)
    assert math.isclose(float(row["rdma ci95_high"]),
                        summary["replications"]["metrics"]["ttft_s.mean"]["ci95_high"] * 1e3, rel_tol=1e-12)
