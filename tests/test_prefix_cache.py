"""The prefix cache's index (LRU order, eviction, per-node copies, the one-token cap) and the cache-aware router
asking the connector where a request's prefix is cheapest to read."""

from __future__ import annotations

from simcxl.kvcache.prefix import PrefixCache
from simcxl.simulate import simulate

from .conftest import scenario


def test_a_hit_refreshes_its_lru_position_so_the_coldest_block_is_evicted():
    cache = PrefixCache(1, block_tokens=16, block_bytes=100.0, capacity=300.0)  # room for 3 blocks
    assert cache.insert((1, 2, 3), 0) == 3
    cache.lookup((1,), input_tokens=32, ideal=0)  # block 1 is now the most recently used
    assert cache.insert((4,), 0) == 1
    assert list(cache.stores[0]) == [3, 1, 4]  # block 2, the coldest, went
    assert cache.stats.evicted_blocks == 1
    assert cache.matched_nodes((1, 2, 3)) == [0]  # a request reuses only its leading run of cached blocks


def test_without_a_rack_wide_index_each_node_keeps_its_own_copy():
    cache = PrefixCache(2, block_tokens=16, block_bytes=1.0, capacity=None, rack_wide=False)
    assert cache.insert((7, 8), 0) == 2
    assert cache.insert((7, 8), 1) == 2  # node 1 cannot see node 0's copy
    assert cache.matched_nodes((7, 8), 1) == [1, 1]
    shared = PrefixCache(2, block_tokens=16, block_bytes=1.0, capacity=None, rack_wide=True)
    shared.insert((7, 8), 0)
    assert shared.insert((7, 8), 1) == 0  # one copy rack-wide: node 1 reads node 0's
    assert shared.matched_nodes((7, 8)) == [0, 0]


def test_a_fully_cached_prompt_still_computes_one_token():
    cache = PrefixCache(1, block_tokens=16, block_bytes=1.0, capacity=None)
    assert cache.cached_tokens(hit_blocks=4, input_tokens=64) == 63
    assert cache.cached_tokens(hit_blocks=2, input_tokens=64) == 32


def test_with_a_pool_every_instance_reads_the_prefix_at_one_cost_so_cache_aware_is_least_loaded():
    """cxl_block keeps one store for the rack: every prefill instance sees the same hits, whatever its node
    (before the protocol, only node 0's instances got the bonus: the store number is 0)."""
    load = ("workload.num_requests=600", "serving.router={}")
    aware = simulate(scenario("tract.yaml", load[0], load[1].format("cache_aware"))).report.requests
    loaded = simulate(scenario("tract.yaml", load[0], load[1].format("least_loaded"))).report.requests
    assert aware.prefill_instance.tolist() == loaded.prefill_instance.tolist()
    assert aware.prefill_instance.nunique() == 4
    assert aware.ttft_s.tolist() == loaded.ttft_s.tolist()


def test_a_cache_in_each_prefill_instances_hbm_loads_nothing_and_takes_its_room():
    """vLLM's automatic prefix caching on a disaggregated prefill worker: hits come from the instance's own HBM
    (no DRAM or RDMA bytes), each instance caches only what it prefilled, and the cache's blocks are HBM the
    instance's prompts cannot use."""
    hbm = ("kv_manager.prefix_cache={scope: instance, capacity: 20 GB}", "workload.num_requests=400")
    run = simulate(scenario("tract_dram.yaml", *hbm))
    kv = run.summary["kv"]
    assert set(kv["bytes_moved"]) == {"rdma"}
    assert 0 < kv["prefix_hit_rate"] < simulate(scenario("tract_dram.yaml", hbm[1])).summary["kv"]["prefix_hit_rate"]
    prefill = run.report.cluster.prefill[0]
    block_bytes = 16 * 131_072  # Llama-3.1-8B bf16, the workload's 16-token blocks
    assert prefill.kv_capacity_tokens == prefill.compute.kv_capacity_tokens - int(20e9 // block_bytes) * 16


def test_a_pool_refuses_a_prefix_cache_in_the_prefill_instances(capsys):
    from simcxl.cli import main

    assert main(["validate", "configs/tract.yaml", "--set",
                 "kv_manager.prefix_cache={scope: instance, capacity: 20 GB}"]) == 2
    assert "kv_manager.type" in capsys.readouterr().err
