"""Aggregated serving with a tiered KV connector (issue #38; docs/notes/sac_aggregated.md): SAC's one server.

An aggregated instance whose connector keeps KV outside HBM asks it what a disaggregated pair would: prefix hits
and their load at admission, the hand-off's write after prefill, each decode step's top-k misses, release.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from simcxl.config.loader import load_scenario
from simcxl.kvcache.sparse_access import hot_buffer_hit_rate
from simcxl.metrics.request_table import RequestTable
from simcxl.simulate import prepare

RIG = Path(__file__).resolve().parents[1] / "configs" / "papers" / "sac"
SMALL = ["workload.input_tokens={dist: uniform, min: 8192, max: 24576}", "workload.output_tokens={dist: fixed, value: 16}",
         "workload.num_requests=12", "workload.concurrency=4"]
ROUNDS = ["workload.rounds=[{concurrency: 4}, {concurrency: 4}]"]


def _run(system: str, sets: list[str]):
    cluster, workload = prepare(load_scenario(RIG / f"{system}.yaml", sets), None)
    table = RequestTable(cluster, None)
    cluster.run(workload, None, table.block_recorded)
    return cluster, workload


@pytest.mark.parametrize("system, written, prefix_read", [
    ("sac", "cxl_write", "cxl_prefix_read"),
    ("local_dram", "host_dram_write", "host_dram_prefix_read"),
    ("rdma", "rdma_pool_write", "rdma_pool_prefix_read"),
])
def test_requests_bytes_and_hbm_conserved_over_two_rounds(system, written, prefix_read):
    cluster, workload = _run(system, SMALL + ROUNDS)
    log, llm, worker = cluster.log, cluster.llm, cluster.aggregated[0]
    n = 2 * workload.round_requests
    assert cluster.completed == n and worker.connector is cluster.kv_manager
    inputs = [int(log.column("input_tokens")[i]) for i in range(n)]
    cached = [int(log.column("cached_tokens")[i]) for i in range(n)]
    block = cluster.kv_manager.prefix_cache.block_tokens
    assert all(c == 0 for c in cached[:n // 2])  # round 1: distinct prompts, a cold pool
    # round 2 re-sends every prompt: all of it hits the tier but its last token, which is computed for its logits
    assert cached[n // 2:] == [i - 1 for i in inputs[n // 2:]]
    moved = cluster.kv_manager.bytes_moved
    # every prompt's new KV is written to the tier once
    assert moved[written] == pytest.approx(sum(llm.kv_bytes(i - c) for i, c in zip(inputs, cached)), rel=1e-12)
    # each hit is read once, in whole 64-token pages (the prompt's hashed blocks, its last one partial, as a paged
    # KV moves pages): the cached tokens' bytes plus at most one page's padding per request, nothing more
    pages = [math.ceil(i / block) for i in inputs[n // 2:]]
    assert moved[prefix_read] == pytest.approx(sum(llm.kv_bytes(p * block) for p in pages), rel=1e-12)
    padding = moved[prefix_read] - sum(llm.kv_bytes(c) for c in cached)
    assert 0 <= padding < llm.kv_bytes(block) * (n // 2)
    if system == "rdma":  # one server: the prefix crosses the NIC once, then PCIe into HBM; no second prefetch
        assert moved["host_prefix_load"] == moved[prefix_read] and "rdma_pool_read" not in moved
    # HBM: every block back, nothing loading or in a hand-off; the host pool's room all returned
    assert worker.kv.free == worker.kv.total and worker.loading == worker.handing_off == 0 and not worker._offloaded
    for pool in getattr(cluster.kv_manager, "_host_pools", {}).values():
        assert pool.level == pytest.approx(pool.capacity)


def test_hbm_design_never_asks_a_connector():
    """GPU-only: the default connector (rdma) keeps no tier, so the aggregated instance runs the plain path
    (the dense goldens in tests/golden/ pin that path byte for byte) and moves no byte through the connector."""
    cluster, _ = _run("hbm", SMALL)
    assert cluster.completed == 12 and not cluster.kv_manager.tiered
    assert cluster.aggregated[0].connector is None and not cluster.kv_manager.bytes_moved


def test_hot_buffer_only_in_hbm_after_prefill():
    """SGLang HiSparse frees a request's device KV after prefill: while decoding it holds its hot buffer and its
    generated tokens, not its prompt; while prefilling, the whole prompt."""
    cluster, workload = prepare(load_scenario(RIG / "sac.yaml", [
        "workload.input_tokens={dist: fixed, value: 40000}", "workload.output_tokens={dist: fixed, value: 200}",
        "workload.num_requests=2", "workload.concurrency=2"]), None)
    worker, kv, buffer = cluster.aggregated[0], cluster.aggregated[0].kv, cluster.kv_manager.buffer_tokens
    seen, release = [], worker.release

    def probe(request):  # the hand-off's write has put the prompt in the pool: HBM shrinks now
        before = request.blocks
        release(request)
        seen.append((before, request.blocks))
    worker.release = probe
    table = RequestTable(cluster, None)
    cluster.run(workload, None, table.block_recorded)
    assert seen == [(kv.blocks_for(40000), kv.blocks_for(buffer))] * 2
    assert kv.free == kv.total and cluster.completed == 2


def test_decode_step_time_closed_form():
    """One request alone on local_dram: a decode step is its misses' gather (8 ranks' shares over their PCIe
    links, sharing the host's DRAM) + the other layers' gather latencies (HiSparse swaps in between indexer and
    attention: fetch_overlap false) + the top-k step's compute + the iteration overhead."""
    input_tokens = 32768
    cluster, _ = _run("local_dram", [f"workload.input_tokens={{dist: fixed, value: {input_tokens}}}",
                                     "workload.output_tokens={dist: fixed, value: 8}", "workload.num_requests=1",
                                     "workload.concurrency=1"])
    worker, kvm, llm, compute = cluster.aggregated[0], cluster.kv_manager, cluster.llm, cluster.compute
    gpu_spec, gpus = cluster.scenario.gpu, worker.gpus
    ends = list(worker.iteration_ends)
    assert len(ends) == 1 + 7  # one prefill pass (the first token), seven decode steps
    for j in (3, 4, 5):  # decode steps j >= 2 find a warm hot buffer; step j follows step j - 1 back to back
        context = input_tokens + j  # the cached tokens and the new one
        attended = min(context, llm.topk)
        hit = hot_buffer_hit_rate(context, llm.topk, kvm.buffer_tokens, kvm.overlap)
        share = attended * (1 - hit) * llm.layers / len(gpus) * kvm.entry_bytes
        rate = min(gpu_spec.host_gather_bandwidth, gpus[0].pcie_in.capacity, gpus[0].dram.capacity / len(gpus))
        fetch = gpu_spec.host_gather_latency + share / rate
        step = (fetch + (llm.layers - 1) * gpu_spec.host_gather_latency
                + compute.decode_step_time(1, context, attended) + worker.iteration_overhead)
        assert ends[j] - ends[j - 1] == pytest.approx(step, rel=1e-9)


def test_sparse_aggregated_needs_prefill_only_iterations(tmp_path):
    from simcxl.config.loader import ConfigError
    from simcxl.simulate import prepare as prep
    with pytest.raises(ConfigError, match="serving.aggregated.mixed_prefill"):
        try:
            prep(load_scenario(RIG / "sac.yaml", SMALL + ["serving.aggregated.mixed_prefill=true"]), None)
        except SystemExit:
            raise ConfigError("serving.aggregated.mixed_prefill") from None
