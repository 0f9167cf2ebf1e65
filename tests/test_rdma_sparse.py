"""rdma_sparse: SAC's RDMA baseline as described (HiSparse over an RDMA pool, whole prefixes in decode host memory)."""

from __future__ import annotations

import pytest

from simcxl.cli import main
from simcxl.simulate import simulate

from .conftest import CONFIGS, scenario

PROMPT = 32768
NO_REUSE = ("workload.shared_prefix=null", "kv_manager.prefix_cache=null")
ONE = ("workload.num_requests=1", f"workload.input_tokens={{dist: fixed, value: {PROMPT}}}",
       "workload.output_tokens={dist: fixed, value: 1}", *NO_REUSE)


def test_one_request_lands_whole_in_host_memory_then_gathers_its_top_k_per_step():
    outcome = simulate(scenario("sac_rdma.yaml", *ONE))
    cluster, row = outcome.report.cluster, outcome.report.requests.iloc[0]
    llm, gpu = cluster.llm, cluster.scenario.gpu
    kv = PROMPT * llm.kv_bytes_per_token
    moved = outcome.summary["kv"]["bytes_moved"]
    assert moved["rdma_pool_write"] == moved["rdma_pool_read"] == kv  # P1: the whole prefix, once each way
    decode_node = cluster.decode[0].gpus[0].node
    dram = next(link for link in cluster.fabric.topology.links if link.name == f"node{decode_node}.dram")
    # the prefix lands in host DRAM (not HBM), and the step's top-k gathers read it back out
    assert dram.carried == pytest.approx(kv + moved["host_topk_fetch"])
    # first step: the hot buffer is empty, so the whole top-k of every layer is gathered, split over the 8 ranks,
    # each layer's gather after the last (HiSparse swaps in between indexer and attention): 61 x 19.9 us + bytes
    entries = llm.topk * llm.layers
    assert moved["host_topk_fetch"] == pytest.approx(entries * llm.kv_bytes_per_token_per_layer, rel=1e-3)
    share = entries / 8 * llm.kv_bytes_per_token_per_layer
    gather = llm.layers * gpu.host_gather_latency + share / gpu.host_gather_bandwidth
    compute = cluster.decode[0].iteration_overhead + cluster.compute.decode_step_time(1, PROMPT, llm.topk)
    assert row.first_token_s - row.kv_transfer_end_s == pytest.approx(compute + gather, rel=1e-3)


def test_a_full_host_pool_makes_requests_wait_for_finished_ones():
    """P2: the decode host pool holds whole prefixes; with room for two, the third waits for one to finish."""
    load = (*NO_REUSE, "workload.num_requests=3", "workload.rate=1000",
            f"workload.input_tokens={{dist: fixed, value: {PROMPT}}}", "workload.output_tokens={dist: fixed, value: 1000}")
    prefix = PROMPT * 40016  # DeepSeek-V3.2 FP8 MLA + indexer bytes per token
    tight = simulate(scenario("sac_rdma.yaml", *load, f"kv_manager.host_pool={int(2.5 * prefix)} B"))
    roomy = simulate(scenario("sac_rdma.yaml", *load))
    assert roomy.summary["kv"]["host_pool_wait_s"] == 0
    waits = tight.report.requests.sort_values("kv_transfer_start_s").decode_wait_s.to_numpy()
    assert tight.summary["kv"]["host_pool_wait_s"] > 0 and (waits > 0).sum() == 1
    first_finish = tight.report.requests.finish_s.min()
    assert tight.report.requests.kv_transfer_end_s.max() > first_finish  # the third landed after a finish
    assert tight.summary["requests"]["completed"] == 3


def test_a_prompt_larger_than_the_host_pool_is_a_config_error(capsys):
    code = main(["run", str(CONFIGS / "sac_rdma.yaml"), "-q", "--set", "kv_manager.host_pool=1 GB", *sum(
        (["--set", o] for o in ONE), [])])
    assert code == 2
    err = capsys.readouterr().err
    assert "kv_manager.type" in err and "host pool" in err


def test_rdma_sparse_needs_a_measured_host_gather(capsys):
    assert main(["run", str(CONFIGS / "sac_rdma.yaml"), "-q", "--set", "gpu.host_gather_bandwidth=null"]) == 2
    assert "host_gather_bandwidth" in capsys.readouterr().err


def test_the_h200_profile_holds_the_fit_of_its_gather_measurement():
    from simcxl.config.loader import load_scenario
    from simcxl.profiling.host_gathers import fit_zero_copy

    latency, bandwidth = fit_zero_copy(CONFIGS / "hardware/calibration/h200/host_gathers.csv")
    gpu = load_scenario(CONFIGS / "sac_rdma.yaml").scenario.gpu
    assert gpu.host_gather_latency == pytest.approx(latency, rel=0.01)
    assert gpu.host_gather_bandwidth == pytest.approx(bandwidth, rel=0.01)
