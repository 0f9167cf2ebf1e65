"""Push vs pull KV transfer (KVDirect): the mechanism, not just the outcome."""

from __future__ import annotations

import pytest

from simcxl.simulate import simulate

from .conftest import scenario

SMALL = ("workload.num_requests=600",)


def test_scarce_decode_memory_blocks_push_prefill_but_not_pull():
    scarce = ("gpu.hbm_capacity=24 GB", "workload.rate=40", *SMALL)  # ~5 GB of KV room per decode instance
    push = simulate(scenario("kvdirect_push.yaml", *scarce)).summary
    pull = simulate(scenario("kvdirect.yaml", *scarce)).summary
    assert push["utilization"]["gpu"]["prefill_blocked"] > 0.3
    assert pull["utilization"]["gpu"]["prefill_blocked"] == 0.0
    # pull parks the wait at the decode side, where it does not stop other prompts from being prefilled
    assert pull["decode_wait_s"]["mean"] > push["decode_wait_s"]["mean"]
    assert pull["ttft_breakdown_s"]["queue"] < push["ttft_breakdown_s"]["queue"]


def test_with_ample_memory_and_light_load_the_two_converge():
    light = ("workload.rate=4", *SMALL)
    push = simulate(scenario("kvdirect_push.yaml", *light)).summary
    pull = simulate(scenario("kvdirect.yaml", *light)).summary
    assert pull["e2e_s"]["mean"] == pytest.approx(push["e2e_s"]["mean"], rel=0.01)
    assert pull["ttft_s"]["mean"] == pytest.approx(push["ttft_s"]["mean"], rel=0.1)


def test_layer_messages_pay_one_rendezvous_per_tensor():
    one = ("workload.num_requests=1", "workload.input_tokens={dist: fixed, value: 4096}",
           "workload.output_tokens={dist: fixed, value: 8}")
    tensor = simulate(scenario("kvdirect_push.yaml", *one, "kv_manager.messages=tensor")).report
    layer = simulate(scenario("kvdirect_push.yaml", *one)).report
    rdma = tensor.cluster.fabric.rdma
    per_message = 2 * rdma.one_way_latency() + rdma.one_way_latency() + rdma.nic.per_transfer_overhead
    extra = layer.requests.kv_transfer_end_s[0] - tensor.requests.kv_transfer_end_s[0]
    assert extra == pytest.approx(63 * per_message + 2 * rdma.one_way_latency(), rel=0.01)


def test_pull_reads_the_kv_with_one_sided_reads():
    outcome = simulate(scenario("kvdirect.yaml", "workload.num_requests=50"))
    moved = outcome.summary["kv"]["bytes_moved"]
    assert set(moved) == {"rdma_pull"}
    assert moved["rdma_pull"] == pytest.approx(outcome.report.requests.input_tokens.sum() * 131_072)


def test_a_blocking_receive_stalls_the_decode_batch_for_each_transfer():
    """vLLM v0's decode instance receives KV on its own loop: every transfer is time the batch does not run."""
    sparse = ("workload.num_requests=40", "workload.rate=2", "workload.input_tokens={dist: fixed, value: 4096}",
              "workload.output_tokens={dist: fixed, value: 512}")
    aside = simulate(scenario("kvdirect_push.yaml", *sparse, "kv_manager.blocking_receive=false"))
    inline = simulate(scenario("kvdirect_push.yaml", *sparse))
    first = aside.report.requests.iloc[0]
    transfer = first.kv_transfer_end_s - first.kv_transfer_start_s  # alone on the fabric
    stalled = sum(worker.receive_time for worker in inline.report.cluster.decode)
    assert stalled == pytest.approx(40 * transfer, rel=0.01)
    assert sum(worker.receive_time for worker in aside.report.cluster.decode) == 0
    assert inline.summary["tbt_s"]["mean"] > aside.summary["tbt_s"]["mean"]
    assert inline.summary["utilization"]["gpu"]["decode_receiving"] > 0


def test_descriptor_posting_bounds_a_block_based_transfer_but_not_a_tensor_centric_pull():
    """4,096 tokens of Llama-3.1-8B in 16-token blocks: 256 blocks x 32 layers x (K, V) = 16,384 descriptors."""
    one = ("workload.num_requests=1", "workload.input_tokens={dist: fixed, value: 4096}",
           "workload.output_tokens={dist: fixed, value: 8}", "kv_manager.messages=tensor",
           "kv_manager.blocking_receive=false", "kv_manager.descriptor_time=10 us")
    push = simulate(scenario("kvdirect_push.yaml", *one)).report.requests.iloc[0]
    pull = simulate(scenario("kvdirect.yaml", *one[:3])).report.requests.iloc[0]  # rdma_pull reads no descriptor_time
    assert push.kv_transfer_end_s - push.kv_transfer_start_s == pytest.approx(16_384 * 10e-6)
    assert pull.kv_transfer_end_s - pull.kv_transfer_start_s < 0.02  # one region per shard: bandwidth-bound


def test_an_instance_posts_descriptors_from_one_thread_so_concurrent_transfers_queue():
    two = ("workload.num_requests=2", "workload.rate=100000", "workload.input_tokens={dist: fixed, value: 4096}",
           "workload.output_tokens={dist: fixed, value: 8}", "kv_manager.messages=tensor", "cluster.prefill_nodes=1",
           "kv_manager.blocking_receive=false", "kv_manager.blocking_send=false", "kv_manager.descriptor_time=10 us")
    first, second = simulate(scenario("kvdirect_push.yaml", *two)).report.requests.sort_values("id").itertuples()
    posting = 16_384 * 10e-6
    assert second.prefill_end_s < first.kv_transfer_end_s  # the second prompt is ready while the first still posts
    assert first.kv_transfer_end_s == pytest.approx(first.prefill_end_s + posting)
    assert second.kv_transfer_end_s == pytest.approx(first.kv_transfer_end_s + posting)
