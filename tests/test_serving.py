"""End-to-end runs: hand-computed TTFT on an idle cluster, conservation, determinism, memory back-pressure."""

from __future__ import annotations

import json
import platform
import sys

import pytest

from simcxl.cli import main
from simcxl.simulate import simulate

from .conftest import scenario

ONE_REQUEST = ("workload.num_requests=1", "workload.input_tokens={dist: fixed, value: 4000}",
               "workload.output_tokens={dist: fixed, value: 50}")


def test_single_request_ttft_is_prefill_plus_transfer_plus_first_decode_step():
    outcome = simulate(scenario("rdma.yaml", *ONE_REQUEST))
    cluster = outcome.report.cluster
    fabric = cluster.scenario.fabric
    prefill = cluster.compute.prefill_time([4000])
    kv_bytes = 4000 * 131_072
    latency = 2 * fabric.pcie.latency + 2 * fabric.nic.latency + fabric.tor.latency + fabric.nic.per_transfer_overhead
    transfer = latency + kv_bytes / min(fabric.pcie.bandwidth, fabric.nic.line_rate * fabric.nic.efficiency)
    first_step = cluster.compute.decode_step_time(1, 4000)
    row = outcome.report.requests.iloc[0]
    assert row.prefill_end_s - row.prefill_start_s == pytest.approx(prefill)
    assert row.kv_transfer_end_s - row.kv_transfer_start_s == pytest.approx(transfer)
    assert row.ttft_s == pytest.approx(prefill + transfer + first_step)
    # 49 more tokens, each one decode step over a context one token longer
    steps = sum(cluster.compute.decode_step_time(1, 4000 + i) for i in range(1, 50))
    assert row.e2e_s == pytest.approx(prefill + transfer + first_step + steps)
    summary = outcome.summary
    assert summary["kv"]["bytes_moved"] == {"rdma": kv_bytes}
    assert summary["ttft_breakdown_s"]["queue"] == 0.0
    assert summary["tbt_s"]["mean"] == pytest.approx(steps / 49)


def test_every_request_finishes_and_tokens_are_conserved():
    outcome = simulate(scenario("rdma.yaml", "workload.num_requests=300", "workload.rate=40"))
    df, summary = outcome.report.requests, outcome.summary
    assert summary["requests"] == {"arrived": 300, "completed": 300, "unfinished": 0}
    assert (df.prefill_start_s >= df.arrival_s).all()
    assert (df.kv_transfer_start_s >= df.prefill_end_s).all()
    assert (df.first_token_s > df.kv_transfer_end_s).all()
    assert (df.finish_s >= df.first_token_s).all()
    assert summary["kv"]["bytes_moved"]["rdma"] == pytest.approx((df.input_tokens * 131_072).sum())
    assert summary["throughput"]["output_tokens_per_s"] * summary["sim"]["simulated_s"] == pytest.approx(
        df.output_tokens.sum())
    # every decode worker ends empty: all reserved KV released
    assert all(w.kv.free == w.kv.total and w.batch_size == 0 for w in outcome.report.cluster.decode)
    assert all(w.kv_held_tokens == 0 for w in outcome.report.cluster.prefill)


def test_scarce_decode_memory_makes_requests_wait_and_the_metrics_show_it():
    common = ("workload.num_requests=200", "workload.rate=50",
              "workload.input_tokens={dist: fixed, value: 8000}", "workload.output_tokens={dist: fixed, value: 400}")
    ample = simulate(scenario("rdma.yaml", *common)).summary
    # 24 GB of HBM leaves ~5.5 GB for KV: about 5 such requests per decode instance at a time
    scarce = simulate(scenario("rdma.yaml", *common, "gpu.hbm_capacity=24 GB")).summary
    assert ample["decode_wait_s"]["max"] == 0.0
    assert scarce["decode_wait_s"]["mean"] > 0.1
    assert scarce["ttft_s"]["mean"] > ample["ttft_s"]["mean"] + scarce["decode_wait_s"]["mean"] * 0.9
    assert scarce["requests"]["completed"] == 200


def test_unfinished_requests_are_reported_not_lost():
    summary = simulate(scenario("rdma.yaml", "workload.num_requests=200", "run.max_simulated_time=2 s")).summary
    assert 0 < summary["requests"]["arrived"] < 200  # arrivals continue past the 2 s limit
    assert summary["requests"]["completed"] + summary["requests"]["unfinished"] == 200
    assert summary["requests"]["unfinished"] > 0
    assert summary["sim"]["simulated_s"] == pytest.approx(2.0)


def test_same_config_and_seed_give_byte_identical_results(tmp_path):
    args = ["run", "configs/rdma.yaml", "-q", "--set", "workload.num_requests=400"]
    assert main(args + ["-o", str(tmp_path / "a")]) == 0
    assert main(args + ["-o", str(tmp_path / "b")]) == 0
    for name in ("summary.json", "requests.csv", "config.resolved.yaml"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert main(args + ["-o", str(tmp_path / "c"), "--set", "seed=2"]) == 0
    assert (tmp_path / "a/summary.json").read_bytes() != (tmp_path / "c/summary.json").read_bytes()


def test_run_writes_the_documented_results_folder(tmp_path, capsys):
    assert main(["run", "configs/rdma.yaml", "-o", str(tmp_path), "--set", "workload.num_requests=100"]) == 0
    assert "TTFT" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("requests", "ttft_s", "tbt_s", "e2e_s", "throughput", "ttft_breakdown_s", "kv", "utilization", "sim"):
        assert key in summary
    assert set(summary["ttft_s"]) == {"mean", "p50", "p90", "p99"}
    assert set(summary["ttft_breakdown_s"]) >= {"queue", "prefill", "kv_transfer", "first_decode"}
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["wall_s"] > 0
    assert run["python_build"].startswith(f"CPython {platform.python_version()} ({sys.executable}; libpython ")
    header = (tmp_path / "requests.csv").read_text().splitlines()[0]
    assert header.startswith("id,arrival_s,input_tokens,output_tokens")
    assert len((tmp_path / "requests.csv").read_text().splitlines()) == 101
    resolved = (tmp_path / "config.resolved.yaml").read_text()
    assert "peak_flops: 989 TFLOP/s" in resolved and "num_requests: 100" in resolved
    assert not list(tmp_path.glob(".*.tmp"))
    series = (tmp_path / "timeseries.csv").read_text().splitlines()
    assert series[0].startswith("time_s,gpu.decode,gpu.prefill,link.")
    assert len(series) - 1 == int(json.loads((tmp_path / "summary.json").read_text())["sim"]["simulated_s"])


def test_least_loaded_router_spreads_prefill_by_queued_tokens():
    outcome = simulate(scenario("rdma.yaml", "serving.router=least_loaded", "workload.num_requests=200"))
    counts = outcome.report.requests.prefill_instance.value_counts()
    assert set(counts.index) == {0, 1, 2, 3}
    assert outcome.summary["requests"]["completed"] == 200
