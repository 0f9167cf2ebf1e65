"""workload.rounds (send the workload R times, report the last round) and closed loops over a trace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simcxl.cli import main
from simcxl.config.loader import load_scenario
from simcxl.simulate import simulate

from .conftest import ROOT

RDMA = str(ROOT / "configs/rdma.yaml")
BELUGA = ROOT / "configs/papers/beluga/vllm_beluga.yaml"
MOONCAKE = ROOT / "configs/papers/beluga/vllm_mooncake.yaml"
CLOSED = ("workload={type: closed_loop, concurrency: 4, num_requests: 50, input_tokens: {dist: uniform, min: 200, "
          "max: 2000}, output_tokens: {dist: uniform, min: 2, max: 64}}")


def run(path, *overrides: str, output=None):
    return simulate(load_scenario(path, list(overrides)), output=output)


def test_closed_loop_rounds_conserve_requests_with_unique_ids_and_own_clients(tmp_path):
    outcome = run(RDMA, CLOSED, "workload.rounds=[{concurrency: 2}, {concurrency: 8}]", output=tmp_path)
    df, s = outcome.report.requests, outcome.summary
    assert len(df) == 100 and df.finish_s.notna().all()  # R * N completed
    assert (df.id.to_numpy() == np.arange(100)).all()  # r * N + i
    assert (df["round"].to_numpy() == np.arange(100) // 50).all()
    assert s["requests"] == {"arrived": 50, "completed": 50, "unfinished": 0}
    assert [(r, v["concurrency"], v["requests"], v["completed"]) for r, v in s["rounds"].items()] == [
        ("0", 2, 50, 50), ("1", 8, 50, 50)]
    start = s["rounds"]["1"]["start_s"]
    assert start == pytest.approx(df.finish_s[:50].max())  # round 1 starts once round 0 has drained
    assert df.arrival_s[50:].min() == start and (df.arrival_s[50:] >= df.finish_s[:50].max()).all()
    # the same prompts each round; concurrency: exactly 2, then 8 requests sent at the round's start
    assert (df.input_tokens[:50].to_numpy() == df.input_tokens[50:].to_numpy()).all()
    assert (df.arrival_s[:50] == 0).sum() == 2 and (df.arrival_s[50:] == start).sum() == 8
    written = pd.read_csv(tmp_path / "requests.csv")
    assert list(written.columns[:3]) == ["id", "round", "arrival_s"] and written["round"].tolist() == df["round"].tolist()


def test_no_round_column_without_rounds(tmp_path):
    run(RDMA, CLOSED, output=tmp_path)
    assert "round" not in pd.read_csv(tmp_path / "requests.csv").columns


def measured_from_rows(df: pd.DataFrame, start: float, end: float) -> dict:
    part = df[df["round"] == df["round"].max()]
    tpot = ((part.e2e_s - part.ttft_s) / (part.output_tokens - 1))[part.output_tokens > 1]
    return {"completed": int(part.finish_s.notna().sum()), "ttft_mean": part.ttft_s.mean(),
            "ttft_p50": float(np.percentile(part.ttft_s, 50)), "ttft_p99": float(np.percentile(part.ttft_s, 99)),
            "e2e_p90": float(np.percentile(part.e2e_s, 90)), "tpot_mean": tpot.mean(),
            "queue": (part.prefill_start_s - part.arrival_s).mean(),
            "requests_per_s": len(part) / (end - start),
            "output_tokens_per_s": part.output_tokens.sum() / (end - start)}


def test_cached_design_round_two_hits_the_pool_and_summary_is_round_two(tmp_path):
    outcome = run(BELUGA, "workload.first=24", output=tmp_path)  # the rig's rounds: 2, concurrency 16
    s = outcome.summary
    df = pd.read_csv(tmp_path / "requests.csv")
    first, second = s["rounds"].values()
    assert first["prefix_hit_rate_tokens"] == 0.0  # a cold pool: nothing to hit
    assert second["prefix_hit_rate_tokens"] > 0.999  # every prompt sent before: all but the last partial block
    kv = s["kv"]  # the measured round's counters
    assert kv["ideal_prefix_hit_rate"] == 1.0 and kv["prefix_hit_rate"] == kv["ideal_prefix_hit_rate"]
    assert kv["looked_up_blocks"] == kv["hit_blocks"] == int((-(-df[df["round"] == 1].input_tokens // 512)).sum())  # the trace's hash_ids: one per 512 tokens begun
    assert first["ttft_mean_s"] > 10 * second["ttft_mean_s"]  # 19 s of prefill per prompt, against a pool read
    rows = measured_from_rows(df, second["start_s"], s["sim"]["simulated_s"])
    assert s["requests"]["completed"] == rows["completed"] == 24
    assert s["ttft_s"]["mean"] == pytest.approx(rows["ttft_mean"], rel=1e-12)
    assert s["ttft_s"]["mean"] == pytest.approx(second["ttft_mean_s"], rel=1e-12)
    assert s["ttft_s"]["p50"] == pytest.approx(rows["ttft_p50"], rel=1e-12)
    assert s["ttft_s"]["p99"] == pytest.approx(rows["ttft_p99"], rel=1e-12)
    assert s["e2e_s"]["p90"] == pytest.approx(rows["e2e_p90"], rel=1e-12)
    assert s["tpot_s"]["mean"] == pytest.approx(rows["tpot_mean"], rel=1e-12)
    assert s["ttft_breakdown_s"]["queue"] == pytest.approx(rows["queue"], rel=1e-9, abs=1e-15)
    for key in ("requests_per_s", "output_tokens_per_s"):
        assert s["throughput"][key] == pytest.approx(rows[key], rel=1e-12)
    assert second["span_s"] == pytest.approx(s["sim"]["simulated_s"] - second["start_s"], rel=1e-12)
    assert s["workload"]["requests"] == 24


def test_open_loop_rounds_replay_arrivals_offset_and_an_idle_round_repeats_itself():
    plain = run(RDMA, "workload.num_requests=200")
    twice = run(RDMA, "workload.num_requests=200", "workload.rounds=2")
    df, s = twice.report.requests, twice.summary
    start = s["rounds"]["1"]["start_s"]
    assert start == df.finish_s[:200].max()
    np.testing.assert_allclose(df.arrival_s[200:].to_numpy() - start, df.arrival_s[:200].to_numpy(), atol=1e-9)
    # no prefix cache: the second round meets an empty rack again, so it measures what one round does
    p = plain.summary
    for section in ("ttft_s", "tbt_s", "e2e_s", "tpot_s"):
        for key in ("mean", "p50", "p99"):
            assert s[section][key] == pytest.approx(p[section][key], rel=1e-6), (section, key)
    assert s["throughput"]["requests_per_s"] == pytest.approx(p["throughput"]["requests_per_s"], rel=1e-6)
    assert s["requests"] == p["requests"]


def test_closed_loop_over_a_trace_keeps_its_prefixes_and_its_clients():
    outcome = run(MOONCAKE, "workload.first=20", "workload.concurrency=5", "workload.rounds=1")
    df = outcome.report.requests
    assert len(df) == 20 and (df.arrival_s == 0).sum() == 5
    times = sorted([(t, 1) for t in df.arrival_s] + [(t, -1) for t in df.finish_s], key=lambda e: (e[0], e[1]))
    assert max(np.cumsum([d for _, d in times])) == 5  # never more than 5 in flight
    # the trace's rows 201-400 repeat rows 1-200 (same hash_ids): replayed in a closed loop, row 201 onward hits
    outcome = run(MOONCAKE, "workload.first=220", "workload.concurrency=16", "workload.rounds=null")
    df = outcome.report.requests
    assert df.cached_tokens[:200].sum() == 0 and (df.cached_tokens[200:] > 0.99 * df.input_tokens[200:]).all()


@pytest.mark.parametrize("setting, message", [
    ("workload.rounds=[]", "workload.rounds: list should have at least 1 item"),
    ("workload.rounds=0", "workload.rounds: expected a number of rounds >= 1"),
    ("workload.rounds=[{concurrency: 0}]", "workload.rounds.0.concurrency: input should be greater than 0"),
    ("workload.rounds=[{clients: 3}]", "workload.rounds.0.clients: unknown key"),
    ("workload.concurrency=0", "workload.concurrency: input should be greater than 0"),
])
def test_bad_rounds_exit_2_naming_the_key(capsys, setting, message):
    assert main(["validate", str(BELUGA), "--set", setting]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simcxl: error: ") and message in err and "Traceback" not in err


def test_open_loop_round_with_clients_exits_2(capsys):
    assert main(["validate", RDMA, "--set", "workload.rounds=[{}, {concurrency: 8}]"]) == 2
    assert "rounds[1].concurrency: only a closed-loop workload" in capsys.readouterr().err
