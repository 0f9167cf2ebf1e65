"""The rdma_pool manager: KV in memory servers' DRAM behind RDMA NICs (SAC's and Mooncake store's baseline)."""

from __future__ import annotations

import pytest

from simcxl.cli import main
from simcxl.simulate import simulate

from .conftest import CONFIGS, scenario

PROMPT = 32768
NO_REUSE = ("workload.shared_prefix=null", "kv_manager.prefix_cache=null")
ONE = ("workload.num_requests=1", f"workload.input_tokens={{dist: fixed, value: {PROMPT}}}",
       "workload.output_tokens={dist: fixed, value: 20}", *NO_REUSE)


def _transfer(*overrides: str):
    outcome = simulate(scenario("sac_rdma_hbm.yaml", *ONE, *overrides))
    return outcome, outcome.report.requests.iloc[0]


def test_one_request_crosses_the_pool_nics_twice_and_pays_two_rpcs():
    outcome, row = _transfer()
    cluster = outcome.report.cluster
    kv = PROMPT * cluster.llm.kv_bytes_per_token
    assert outcome.summary["kv"]["bytes_moved"] == {"rdma_pool_write": kv, "rdma_pool_read": kv}
    pool_nics = {link for port in cluster.fabric.topology.memory_ports for link in (port.nic.tx, port.nic.rx)}
    assert sum(link.carried for link in pool_nics) == pytest.approx(2 * kv)
    # 8 GPU shards over 2 pool NICs: each NIC carries half the KV each way, at its line rate
    nic = cluster.scenario.fabric.nic
    one_way = kv / 2 / (nic.line_rate * nic.efficiency)
    rdma = cluster.fabric.rdma
    rpc = 2 * rdma.one_way_latency(gpu_memory=False) + nic.per_transfer_overhead
    assert row.kv_sync_s == pytest.approx(2 * rpc)
    assert row.kv_transfer_end_s - row.prefill_end_s == pytest.approx(2 * one_way + 2 * rpc, rel=0.01)


def test_pool_nics_are_the_bottleneck_more_nics_halve_the_transfer():
    _, two = _transfer()
    _, four = _transfer("fabric.memory_pool.nics_per_node=4")
    moved = [(r.kv_transfer_end_s - r.prefill_end_s - r.kv_sync_s) for r in (two, four)]
    assert moved[0] / moved[1] == pytest.approx(2.0, rel=0.02)


def test_decode_holds_the_whole_prefix_so_scarce_hbm_makes_requests_wait_unlike_sac():
    """SAC's P2: the pool baseline reserves HBM for the whole prefix, SAC only for a hot buffer."""
    load = (*NO_REUSE, "workload.num_requests=60", "serving.decode.max_batch_size=40", "workload.rate=20",
            "gpu.memory_utilization=0.605",
            f"workload.input_tokens={{dist: fixed, value: {PROMPT}}}",
            "workload.output_tokens={dist: fixed, value: 1024}")
    pool = simulate(scenario("sac_rdma_hbm.yaml", *load))
    sac = simulate(scenario("sac.yaml", *load))
    capacity = pool.report.cluster.compute.kv_capacity_tokens
    assert capacity < 10 * PROMPT  # fewer than ten whole prefixes fit in the decode instance
    assert pool.summary["ttft_breakdown_s"]["decode_wait"] > 0.5
    assert sac.summary["ttft_breakdown_s"]["decode_wait"] == 0
    assert max(pool.report.cluster.decode[0].iteration_ends) > 0
    assert sac.summary["throughput"]["output_tokens_per_s"] > pool.summary["throughput"]["output_tokens_per_s"]


def test_rdma_pool_needs_memory_servers(capsys):
    assert main(["run", str(CONFIGS / "sac.yaml"), "--set", "kv_manager.type=rdma_pool"]) == 2
    assert "'rdma_pool' needs memory servers" in capsys.readouterr().err
