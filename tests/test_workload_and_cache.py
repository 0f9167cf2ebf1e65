"""Trace replay, synthetic workloads and the prefix-aware KV cache."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from simcxl.cli import main
from simcxl.config.schema import PoissonWorkload
from simcxl.simulate import simulate
from simcxl.workload.synthetic import interarrival_times, poisson_workload

from .conftest import ROOT, scenario

WORKLOADS = ROOT / "workloads"
MOONCAKE = WORKLOADS / "mooncake_conversation.jsonl.gz"
AZURE = WORKLOADS / "azure_llm_2023_conv.csv.gz"


def ideal_block_hit_ratio(path, first=None) -> float:
    """The trace's reuse computed directly: a block hits when it and every earlier block were seen before."""
    seen, hits, blocks = set(), 0, 0
    with gzip.open(path, "rt") as handle:
        for i, line in enumerate(handle):
            if first is not None and i >= first:
                break
            ids = json.loads(line)["hash_ids"]
            prefix = 0
            while prefix < len(ids) and ids[prefix] in seen:
                prefix += 1
            hits, blocks = hits + prefix, blocks + len(ids)
            seen.update(ids)
    return hits / blocks


def test_full_mooncake_trace_with_unbounded_cache_reaches_the_ideal_hit_rate():
    outcome = simulate(scenario("rdma_mooncake.yaml", "workload.first=null",
                                "kv_manager.prefix_cache.capacity=null"))
    kv, requests = outcome.summary["kv"], outcome.summary["requests"]
    assert requests == {"arrived": 12031, "completed": 12031, "unfinished": 0}
    assert kv["looked_up_blocks"] == 288_500
    assert kv["ideal_prefix_hit_rate"] == pytest.approx(ideal_block_hit_ratio(MOONCAKE))
    assert kv["ideal_prefix_hit_rate"] == pytest.approx(0.366, abs=5e-4)
    # short of the ideal only by blocks whose producer was still in prefill when they were asked for
    assert kv["hit_blocks"] + kv["inflight_miss_blocks"] - kv["late_hit_blocks"] == kv["ideal_hit_blocks"]
    assert kv["inflight_miss_blocks"] < 0.001 * kv["ideal_hit_blocks"]
    assert kv["evicted_blocks"] == 0


def test_hit_rate_falls_monotonically_as_capacity_shrinks():
    rates = []
    for capacity in ("null", "256 GiB", "64 GiB", "16 GiB", "4 GiB"):
        kv = simulate(scenario("rdma_mooncake.yaml", "workload.first=1500",
                               f"kv_manager.prefix_cache.capacity={capacity}")).summary["kv"]
        rates.append((kv["prefix_hit_rate"], kv["evicted_blocks"]))
    hit_rates = [r for r, _ in rates]
    assert hit_rates == sorted(hit_rates, reverse=True)
    assert hit_rates[0] > hit_rates[-1] + 0.1
    assert rates[0][1] == 0 and rates[-1][1] > 0


def test_prefix_hits_skip_prefill_compute_but_pay_the_load():
    common = ("workload.first=800",)
    cached = simulate(scenario("rdma_mooncake.yaml", *common)).summary
    uncached = simulate(scenario("rdma_mooncake.yaml", *common, "kv_manager.prefix_cache=null",
                                 "serving.router=round_robin")).summary
    assert cached["kv"]["prefix_hit_rate_tokens"] > 0.15
    assert cached["ttft_breakdown_s"]["prefill"] < 0.9 * uncached["ttft_breakdown_s"]["prefill"]
    assert cached["ttft_breakdown_s"]["prefix_load"] > 0 == uncached["ttft_breakdown_s"]["prefix_load"]
    assert cached["kv"]["bytes_moved"]["dram_local"] + cached["kv"]["bytes_moved"]["dram_remote"] == pytest.approx(
        cached["kv"]["hit_blocks"] * 512 * 131_072)


def test_cache_aware_routing_keeps_hits_on_the_node_that_holds_them():
    moved = {}
    for router in ("round_robin", "cache_aware"):
        kv = simulate(scenario("rdma_mooncake.yaml", "workload.first=800", f"serving.router={router}")).summary["kv"]
        moved[router] = kv["bytes_moved"]["dram_local"] / (kv["bytes_moved"]["dram_local"]
                                                           + kv["bytes_moved"]["dram_remote"])
    assert moved["cache_aware"] > moved["round_robin"] + 0.2


def test_azure_trace_replays_with_slicing_and_time_compression():
    base = ("workload={type: trace, format: azure, path: %s, first: 400}" % AZURE,)
    normal = simulate(scenario("rdma.yaml", *base))
    fast = simulate(scenario("rdma.yaml", *base, "workload.time_scale=4"))
    assert normal.summary["requests"]["completed"] == fast.summary["requests"]["completed"] == 400
    last = normal.report.requests.arrival_s.iloc[-1]
    assert fast.report.requests.arrival_s.iloc[-1] == pytest.approx(last / 4)
    assert normal.report.requests.input_tokens.iloc[0] == 374  # the trace's first row
    capped = simulate(scenario("rdma.yaml", *base, "workload.max_input_tokens=500"))
    assert capped.report.requests.input_tokens.max() == 500


BAD_MOONCAKE = [
    ('{"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [1, 2]}\n{"timestamp": 1, "inp',
     ":2: invalid JSON"),
    ('{"timestamp": 0, "input_length": -3, "output_length": 5, "hash_ids": []}\n', ":1: input_length must be >= 1"),
    ('{"timestamp": 0, "output_length": 5, "hash_ids": []}\n', ":1: missing input_length"),
    ('{"timestamp": 5, "input_length": 10, "output_length": 5, "hash_ids": [1]}\n'
     '{"timestamp": 2, "input_length": 10, "output_length": 5, "hash_ids": [2]}\n', ":2: timestamps must not decrease"),
    ('{"timestamp": 0, "input_length": 1000, "output_length": 5, "hash_ids": [1]}\n', ":1: hash_ids has 1 blocks"),
]


@pytest.mark.parametrize("text, fragment", BAD_MOONCAKE)
def test_malformed_mooncake_rows_name_file_and_line(tmp_path, capsys, text, fragment):
    trace = tmp_path / "t.jsonl"
    trace.write_text(text)
    args = ["validate", "configs/rdma.yaml", "--set", f"workload={{type: trace, format: mooncake, path: {trace}}}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{trace}{fragment}" in err and "Traceback" not in err


def test_malformed_azure_rows_and_missing_file(tmp_path, capsys):
    trace = tmp_path / "a.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:47.1,12\n")
    spec = f"workload={{type: trace, format: azure, path: {trace}}}"
    assert main(["validate", "configs/rdma.yaml", "--set", spec]) == 2
    assert f"{trace}:3: expected 3 columns" in capsys.readouterr().err
    assert main(["validate", "configs/rdma.yaml", "--set", spec, "--set", "workload.skip_bad_rows=true"]) == 0
    assert "1 bad trace rows skipped" in capsys.readouterr().out
    trace.write_text("TIME,Context\n")
    assert main(["validate", "configs/rdma.yaml", "--set", spec]) == 2
    assert f"{trace}:1: expected the header" in capsys.readouterr().err
    assert main(["validate", "configs/rdma.yaml", "--set", spec.replace("a.csv", "nope.csv")]) == 2
    assert "nope.csv: trace file not found" in capsys.readouterr().err


def test_relative_trace_path_resolves_against_the_file_that_sets_it(tmp_path):
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces/t.jsonl").write_text(
        '{"timestamp": 0, "input_length": 700, "output_length": 3, "hash_ids": [7, 8]}\n'
        '{"timestamp": 5000, "input_length": 1100, "output_length": 3, "hash_ids": [7, 8, 9]}\n')
    config = tmp_path / "s.yaml"
    config.write_text(f"include: [{ROOT}/configs/rdma.yaml]\nkv_manager: {{prefix_cache: {{}}}}\n"
                      "workload: {type: trace, format: mooncake, path: traces/t.jsonl}\n")
    outcome = simulate(__import__("simcxl.config.loader", fromlist=["x"]).load_scenario(config))
    assert outcome.summary["kv"]["hit_blocks"] == 2  # the second request reuses both blocks of the first
    assert outcome.report.requests.cached_tokens.tolist() == [0, 1024]


def test_gamma_arrivals_have_the_requested_burstiness():
    rng = np.random.default_rng(0)
    gaps = interarrival_times(rate=10.0, burstiness=3.0, n=200_000, rng=rng)
    assert gaps.mean() == pytest.approx(0.1, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(3.0, rel=0.05)


def test_shared_prefix_groups_produce_reusable_chained_blocks():
    spec = PoissonWorkload.model_validate(dict(
        type="poisson", rate=5, num_requests=50, input_tokens={"dist": "fixed", "value": 100},
        output_tokens={"dist": "fixed", "value": 4}, block_tokens=16, shared_prefix={"groups": 2, "tokens": 64}))
    requests = poisson_workload(spec, seed=3)
    assert {r.input_tokens for r in requests} == {164}
    assert all(len(r.block_hashes) == math.ceil(164 / 16) for r in requests)
    assert len({r.block_hashes[:4] for r in requests}) == 2  # two groups share 4 prefix blocks
    assert len({r.block_hashes[4] for r in requests}) == 50  # then every request is its own


def test_synthetic_shared_prefix_run_hits_the_cache():
    summary = simulate(scenario(
        "rdma.yaml", "workload.num_requests=200", "kv_manager.prefix_cache={}",
        "workload.shared_prefix={groups: 4, tokens: 1024}",
        "workload.input_tokens={dist: fixed, value: 1024}")).summary
    # 128 blocks per request, the first 64 shared by the group: all but the first request per group hit 64
    assert summary["kv"]["ideal_hit_blocks"] == (200 - 4) * 64
    assert summary["kv"]["hit_blocks"] + summary["kv"]["inflight_miss_blocks"] - summary["kv"]["late_hit_blocks"] \
        == summary["kv"]["ideal_hit_blocks"]


def test_conversations_resend_history_and_reuse_its_full_blocks():
    spec = PoissonWorkload.model_validate(dict(
        type="poisson", rate=2, num_requests=9, input_tokens={"dist": "fixed", "value": 40},
        output_tokens={"dist": "fixed", "value": 30}, block_tokens=16,
        conversation={"turns": 3, "think_time": "20 s"}))
    requests = poisson_workload(spec, seed=1)
    by_conversation: dict[int, list] = {}
    for r in requests:
        by_conversation.setdefault(r.block_hashes[0], []).append(r)
    assert len(by_conversation) == 3
    for turns in by_conversation.values():
        assert [r.input_tokens for r in turns] == [40, 110, 180]  # history (prompt + answer) + 40 new
        assert turns[1].arrival - turns[0].arrival == pytest.approx(20.0)
        # turn 2 reuses the 2 full blocks of turn 1's prompt; turn 3 the 6 full blocks of turn 2's stream
        assert turns[1].block_hashes[:2] == turns[0].block_hashes[:2]
        assert turns[1].block_hashes[2] != turns[0].block_hashes[2]  # the partial block was re-filled
        assert turns[2].block_hashes[:6] == turns[1].block_hashes[:6]
    assert [r.id for r in requests] == list(range(9))
    assert [r.arrival for r in requests] == sorted(r.arrival for r in requests)


def test_empirical_lengths_come_from_the_trace():
    spec = PoissonWorkload.model_validate(dict(
        type="poisson", rate=2, num_requests=2000,
        input_tokens={"dist": "empirical", "trace": str(AZURE), "format": "azure", "column": "input"},
        output_tokens={"dist": "empirical", "trace": str(AZURE), "format": "azure", "column": "output", "max": 500}))
    requests = poisson_workload(spec, seed=0)
    inputs = np.array([r.input_tokens for r in requests])
    assert inputs.mean() == pytest.approx(1155, rel=0.08)          # the trace's mean context (README)
    assert max(r.output_tokens for r in requests) == 500


@pytest.mark.parametrize("name, fmt, rows", [
    ("burstgpt_head.csv", "burstgpt", [(0.0, 472, 18), (40.0, 1087, 230), (113.0, 417, 276)]),
    ("azure_llm_2024_code_head.csv", "azure", [(0.0, 2162, 5)]),
])
def test_bundled_format_samples_replay_row_for_row(name, fmt, rows):
    outcome = simulate(scenario("rdma.yaml", f"workload={{type: trace, format: {fmt}, path: {WORKLOADS / name}}}"))
    table = outcome.report.requests
    assert list(zip(table.arrival_s, table.input_tokens, table.output_tokens)) == rows
    assert outcome.summary["requests"]["completed"] == len(rows)


def test_azure_2024_timestamps_with_a_utc_offset_are_read_in_utc(tmp_path):
    trace = tmp_path / "a.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00.009930+00:00,10,2\n"
                     "2024-05-10 02:00:01.5+02:00,10,2\n2024-05-10 00:00:03Z,10,2\n")
    from simcxl.workload.traces import load_trace

    workload = load_trace(trace, "azure")
    assert [r.arrival for r in workload] == pytest.approx([0.0, 1.49007, 2.99007])
