"""The cxl_block manager: KV through the CXL pool, two-tier publication, the pool as a rack-wide cache."""

from __future__ import annotations

import pytest

from simcxl.simulate import simulate

from .conftest import scenario

MiB = 1024 * 1024
ONE = ("workload.num_requests=1", "workload.shared_prefix=null", "workload.input_tokens={dist: fixed, value: 4000}",
       "workload.output_tokens={dist: fixed, value: 20}", "kv_manager.prefix_cache=null")


def test_single_request_moves_through_the_pool_and_pays_the_sync():
    outcome = simulate(scenario("tract.yaml", *ONE))
    cluster, row = outcome.report.cluster, outcome.report.requests.iloc[0]
    fabric, pool = cluster.scenario.fabric, cluster.fabric.cxl
    kv = 4000 * 131_072
    # a DMA: setup + one-way load latency, then bytes at the GPU's PCIe (55 GB/s < 8 devices x 30 GB/s)
    dma = fabric.pcie.dma_setup + pool.load_latency(from_gpu=True) / 2 + kv / fabric.pcie.bandwidth
    sync = 0.2e-6 + pool.lock_time() + pool.flush_time(250 * 64)  # 250 index entries of 16-token blocks
    assert row.kv_sync_s == pytest.approx(sync)
    assert row.kv_transfer_end_s - row.prefill_end_s == pytest.approx(2 * dma + sync)
    assert row.ttft_s == pytest.approx(cluster.compute.prefill_time([4000]) + 2 * dma + sync
                                       + cluster.compute.decode_step_time(1, 4000))
    moved = outcome.summary["kv"]["bytes_moved"]
    assert moved == {"cxl_read": kv, "cxl_write": kv}
    nic = [link for link in cluster.fabric.topology.links if link.kind == "nic"]
    assert sum(link.carried for link in nic) == 0  # no NIC on this path
    assert outcome.summary["ttft_breakdown_s"]["kv_sync"] == pytest.approx(sync)


def test_publishers_queue_on_the_locks():
    """64 short prompts prefilled in one batch publish at once: each waits for the ones before it."""
    small = ("workload.num_requests=256", "workload.shared_prefix=null", "serving.prefill.max_batch_size=64",
             "workload.input_tokens={dist: fixed, value: 160}", "workload.output_tokens={dist: fixed, value: 4}")
    quiet = simulate(scenario("tract.yaml", *small, "workload.rate=1")).summary["ttft_breakdown_s"]["kv_sync"]
    burst = simulate(scenario("tract.yaml", *small, "workload.rate=100000")).summary["ttft_breakdown_s"]["kv_sync"]
    one = 0.2e-6 + 1e-6 + 0.5e-6  # node lock, rack lock round trips, flush of 10 index entries (one round)
    assert quiet == pytest.approx(one)
    assert burst > 10 * quiet


def test_the_pool_is_a_rack_wide_prefix_cache_and_beats_per_node_dram():
    pool = simulate(scenario("tract.yaml", "workload.num_requests=600")).summary
    per_node = simulate(scenario("tract_dram.yaml", "workload.num_requests=600")).summary
    assert pool["kv"]["prefix_hit_rate"] > per_node["kv"]["prefix_hit_rate"]
    # every cached block is found wherever the request lands: only in-flight misses keep it under the ideal
    kv = pool["kv"]
    assert kv["hit_blocks"] + kv["inflight_miss_blocks"] - kv["late_hit_blocks"] == kv["ideal_hit_blocks"]
    assert pool["kv"]["bytes_moved"]["cxl_prefix_read"] == pytest.approx(kv["hit_blocks"] * 16 * 131_072)
    assert pool["ttft_s"]["mean"] < per_node["ttft_s"]["mean"]


def test_without_reuse_two_dma_hops_cost_more_than_one_rdma_write():
    cxl = simulate(scenario("tract.yaml", *ONE)).summary["ttft_breakdown_s"]["kv_transfer"]
    rdma = simulate(scenario("tract_rdma.yaml", *ONE)).summary["ttft_breakdown_s"]["kv_transfer"]
    assert rdma < cxl < 2.5 * rdma


def test_prefill_time_spent_loading_cached_prefixes_is_reported():
    """A prefix hit is loaded before the batch computes: that wait is its own share of the prefill GPU."""
    few = ("workload.num_requests=200",)
    cached = simulate(scenario("tract.yaml", *few)).summary["utilization"]["gpu"]
    uncached = simulate(scenario("tract_rdma.yaml", *few)).summary["utilization"]["gpu"]
    assert cached["prefill_loading"] > 0.1 * cached["prefill"]  # the 8K shared prefix loads before each batch computes
    assert uncached["prefill_loading"] == 0
