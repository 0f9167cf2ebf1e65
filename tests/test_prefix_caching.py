"""Automatic prefix caching in colocated instances (vLLM v1 / SGLang): shared blocks, LRU reuse, compute saved."""

from __future__ import annotations

import pytest

from simcxl.serving.kv_blocks import PrefixCachingBlocks
from simcxl.sim.request import Request
from simcxl.simulate import simulate

from .conftest import scenario

AGGREGATED = ("serving.mode=aggregated", "cluster.prefill_nodes=null", "cluster.decode_nodes=null", "cluster.nodes=1")


def computed(kv: PrefixCachingBlocks, request: Request) -> None:
    """The request's prompt is allocated and computed, as a colocated instance does."""
    request.computed = kv.admit(request)
    assert kv.grow(request, request.input_tokens)
    kv.publish(request)


def test_a_computed_prompt_is_shared_then_cached_when_free_and_overwritten_least_recently_freed_first():
    kv = PrefixCachingBlocks(capacity_tokens=16 * 10, block_tokens=16, hash_tokens=32)  # 10 blocks, 2 per hash
    a = Request(0, 0.0, 64, 4, block_hashes=(1, 2))
    computed(kv, a)
    assert a.computed == 0 and kv.free == 6 and a.block_refs == [1, 2] and a.blocks == 0
    b = Request(1, 0.0, 80, 4, block_hashes=(1, 2, 3))  # shares a's 64 tokens, then 16 of its own
    computed(kv, b)
    assert b.computed == 64 and kv.free == 5 and b.blocks == 1  # only its own block is new
    kv.release(a)
    assert kv.free == 5  # a's blocks are still referenced by b
    kv.release(b)
    assert kv.free == 10  # every block is free again; hashes 1, 2 still hold their KV
    c = Request(2, 0.0, 64, 4, block_hashes=(1, 2))  # at most prompt - 1 tokens come from the cache
    assert kv.admit(c) == 32 and kv.free == 8
    kv.release(c)
    d = Request(3, 0.0, 16 * 8, 4, block_hashes=(9, 8, 7, 6))
    assert kv.grow(d, 16 * 8)  # 8 of the 10 free blocks: one cached hash (two blocks) must be overwritten
    assert kv.admit(Request(4, 0.0, 64, 4, block_hashes=(1, 2))) == 32  # hash 1, freed last, survives
    assert kv.free == 0
    assert kv.admit(Request(5, 0.0, 96, 4, block_hashes=(1, 2, 5))) == 32  # hash 2 was overwritten


def test_a_second_request_on_a_shared_prefix_computes_only_its_own_tokens():
    load = (*AGGREGATED, "workload={type: poisson, rate: 0.05, num_requests: 2, block_tokens: 16, "
                         "shared_prefix: {groups: 1, tokens: 4096}, input_tokens: {dist: fixed, value: 512}, "
                         "output_tokens: {dist: fixed, value: 8}}")
    outcome = simulate(scenario("rdma.yaml", *load))
    first, second = outcome.report.requests.sort_values("arrival_s").itertuples()
    assert second.arrival_s > first.finish_s  # the first one is done: its blocks are cached, not in use
    assert (first.cached_tokens, second.cached_tokens) == (0, 4096)
    compute, overhead = outcome.report.cluster.compute, outcome.report.cluster.aggregated[0].iteration_overhead
    assert second.prefill_end_s - second.prefill_start_s == pytest.approx(
        compute.forward_time(0, 0, [(512, 4096, True)]) + overhead, rel=1e-9)
    assert outcome.summary["kv"]["prefix_hit_rate_tokens"] == pytest.approx(4096 / (2 * 4608))
    without = simulate(scenario("rdma.yaml", *load, "serving.aggregated.prefix_caching=false"))
    assert without.report.requests.cached_tokens.sum() == 0
    assert without.summary["ttft_s"]["mean"] > outcome.summary["ttft_s"]["mean"]
    worker = outcome.report.cluster.aggregated[0]
    assert worker.kv.free == worker.kv.total  # cached blocks are free blocks


def test_prompt_hashes_must_cover_whole_engine_blocks(capsys):
    from simcxl.cli import main

    assert main(["run", "rdma", "-q", *sum((["--set", o] for o in AGGREGATED), []),
                 "--set", "workload.block_tokens=8"]) == 2
    assert "serving.aggregated.prefix_caching" in capsys.readouterr().err


def test_cache_aware_routing_sends_a_prompt_to_the_instance_that_holds_its_prefix():
    load = ("serving.mode=aggregated", "cluster.prefill_nodes=null", "cluster.decode_nodes=null", "cluster.nodes=2",
            "workload={type: poisson, rate: 0.05, num_requests: 2, block_tokens: 16, "
            "shared_prefix: {groups: 1, tokens: 4096}, input_tokens: {dist: fixed, value: 512}, "
            "output_tokens: {dist: fixed, value: 8}}")
    aware = simulate(scenario("rdma.yaml", *load, "serving.router=cache_aware")).report.requests
    spread = simulate(scenario("rdma.yaml", *load, "serving.router=round_robin")).report.requests
    assert list(aware.prefill_instance) == [0, 0] and list(aware.cached_tokens) == [0, 4096]
    assert list(spread.prefill_instance) == [0, 1] and list(spread.cached_tokens) == [0, 0]
