"""The ``nixl`` connector (vLLM v1's NixlConnector): decode READs the prompt's KV one page, layer and tensor at
a time. Written on the hand-off protocol as one file and one registry line."""

from __future__ import annotations

import pytest

from simcxl.cli import main
from simcxl.errors import ConfigError
from simcxl.kvcache import CONNECTORS, connector_class
from simcxl.simulate import simulate

from .conftest import scenario

ONE = ("workload.num_requests=1", "workload.input_tokens={dist: fixed, value: 4096}",
       "workload.output_tokens={dist: fixed, value: 8}")


def transfer_s(kind: str, *overrides: str) -> float:
    request = simulate(scenario("kvdirect.yaml", *ONE, f"kv_manager.type={kind}", *overrides)).report.requests.iloc[0]
    return request.kv_transfer_end_s - request.kv_transfer_start_s


def test_nixl_is_registered_by_name():
    assert CONNECTORS["nixl"] == "simcxl.kvcache.nixl:NIXLRead"
    assert connector_class("nixl").name == "nixl"


def test_with_32_kib_pages_the_reads_are_bandwidth_bound_as_a_bulk_pull_is():
    """Llama-3.1-8B, 16-token pages: 2 KiB per token per layer and tensor, so each READ is 32 KiB; 64 read credits
    per 3.6 us round trip cover ~580 GB/s, far above the 48.5 GB/s a ConnectX-7 delivers: the same time as
    rdma_pull's 64 MiB chunks, to the last bit."""
    assert transfer_s("nixl") == transfer_s("rdma_pull")


def test_one_token_pages_make_the_read_credits_the_bound():
    """2 KiB READs: 64 credits x 2 KiB per round trip is below line rate, so the pull slows by that ratio."""
    nixl, pull = transfer_s("nixl", "kv_manager.page_tokens=1"), transfer_s("rdma_pull")  # rdma_pull reads no pages
    assert nixl > 1.2 * pull


def test_the_decode_instance_posts_one_descriptor_per_page_layer_and_tensor():
    """256 pages x 32 layers x (K, V) = 16,384 descriptors at 10 us each, posted by the reader."""
    assert transfer_s("nixl", "kv_manager.descriptor_time=10 us") == pytest.approx(16_384 * 10e-6, rel=0.01)
    assert transfer_s("rdma_pull") < 0.02  # one region per shard: no descriptors, so descriptor_time is refused
    with pytest.raises(ConfigError, match="kv_manager.descriptor_time: not read in kv_manager.type: rdma_pull"):
        transfer_s("rdma_pull", "kv_manager.descriptor_time=10 us")


def test_prefill_never_waits_for_a_reading_decode_and_the_bytes_are_the_prompts():
    with pytest.raises(ConfigError, match="kv_manager.blocking_send: not read in kv_manager.type: nixl"):
        scenario("kvdirect.yaml", "kv_manager.type=nixl", "kv_manager.blocking_send=true")  # nothing to wait for
    run = simulate(scenario("kvdirect.yaml", "workload.num_requests=200", "kv_manager.type=nixl"))
    assert sum(worker.blocked_time for worker in run.report.cluster.prefill) == 0
    requests = run.report.requests
    assert run.summary["kv"]["bytes_moved"] == {"nixl": float((requests.input_tokens * 131_072).sum())}


def test_options_of_message_based_connectors_are_refused(capsys):
    assert main(["validate", "configs/kvdirect.yaml", "--set", "kv_manager.type=nixl",
                 "--set", "kv_manager.messages=layer"]) == 2
    assert "kv_manager.type" in capsys.readouterr().err
