"""Every bundled scenario still gives its golden summary (exact counts, latencies to 1e-6 relative).

After an intended change, regenerate: ``.venv/bin/python -m tests.golden.update``.
"""

from __future__ import annotations

import pytest

from simcxl.metrics.regression import diff_summaries

from .golden.scenarios import GOLDEN, SCENARIOS, golden_of, summary_of


@pytest.mark.parametrize("name", SCENARIOS)
def test_bundled_scenario_matches_its_golden(name):
    if not (GOLDEN / f"{name}.json").is_file():
        pytest.fail(f"{name}: no golden summary yet; create it with `.venv/bin/python -m tests.golden.update`")
    moved = diff_summaries(name, golden_of(name), summary_of(name))
    assert not moved, "simulated results moved (regenerate with `.venv/bin/python -m tests.golden.update` " \
                      "if intended):\n" + "\n".join(moved)


def test_a_changed_hardware_number_is_caught_with_scenario_metric_and_values():
    moved = diff_summaries("rdma", golden_of("rdma"), summary_of("rdma", ("gpu.hbm_bandwidth=3.0 TB/s",)))
    ttft = next(line for line in moved if line.startswith("rdma: ttft_s.mean: golden "))
    assert "-> now" in ttft and "%)" in ttft
    assert any(line.startswith("rdma: tbt_s.p99: ") for line in moved)


def test_policy_counts_exact_floats_relative():
    golden = {"requests": {"completed": 10}, "ttft_s": {"mean": 1.0}}
    assert diff_summaries("s", golden, {"requests": {"completed": 10}, "ttft_s": {"mean": 1.0 + 1e-9}}) == []
    assert diff_summaries("s", golden, {"requests": {"completed": 11}, "ttft_s": {"mean": 1.0}}) == [
        "s: requests.completed: golden 10 -> now 11 (+10.00%)"]
    assert diff_summaries("s", golden, {"requests": {"completed": 10}, "ttft_s": {"mean": 1.01}}) == [
        "s: ttft_s.mean: golden 1.0 -> now 1.01 (+1.00%)"]
