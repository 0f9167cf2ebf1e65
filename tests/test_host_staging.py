"""Connectors that stage KV through host memory (vLLM v0's Mooncake-store connector) and run on the workers' loops."""

from __future__ import annotations

import pytest

from simcxl.cli import main
from simcxl.simulate import simulate

from .conftest import CONFIGS, scenario

PROMPT = 8192
SEND, RECEIVE = 0.5e9, 0.8e9  # bytes of KV per second through each end's host copies
STAGING = (f"kv_manager.host_staging={{send: {SEND / 1e9} GB/s, receive: {RECEIVE / 1e9} GB/s}}",)
ALONE = ("workload.type=poisson", "workload.num_requests=1", "workload.rate=1",
         f"workload.input_tokens={{dist: fixed, value: {PROMPT}}}", "workload.output_tokens={dist: fixed, value: 16}",
         "kv_manager.prefix_cache=null")


def _one(config: str, *overrides: str):
    outcome = simulate(scenario(config, *ALONE, *overrides))
    return outcome, outcome.report.requests.iloc[0]


@pytest.mark.parametrize("config", ["beluga_mooncake.yaml", "kvdirect_push.yaml"])
def test_host_staging_adds_each_ends_copies_to_the_transfer(config):
    """Closed form: one request alone; the staged transfer is the bare one plus kv/send + kv/receive."""
    bare, bare_row = _one(config, "kv_manager.host_staging=null")
    staged, row = _one(config, *STAGING)
    kv = PROMPT * staged.report.cluster.llm.kv_bytes_per_token
    tp = staged.report.cluster.scenario.cluster.tensor_parallel
    extra = (kv / tp) / SEND + (kv / tp) / RECEIVE
    assert (row.kv_transfer_end_s - row.prefill_end_s) - (bare_row.kv_transfer_end_s - bare_row.prefill_end_s) \
        == pytest.approx(extra, rel=1e-6)
    assert staged.summary["kv"]["bytes_moved"] == bare.summary["kv"]["bytes_moved"]  # same bytes, slower path


def test_a_blocking_pool_connector_holds_the_prefill_loop_until_its_put_is_done():
    """v0's put runs on the prefill model runner: the worker is blocked for the staging, the write and the
    publication RPCs, not for the decode side's get."""
    outcome, row = _one("beluga_mooncake.yaml", *STAGING)
    prefill = next(w for w in outcome.report.cluster.prefill if w.blocked_time > 0)
    kv = PROMPT * outcome.report.cluster.llm.kv_bytes_per_token
    assert prefill.blocked_time > kv / SEND
    assert prefill.blocked_time < row.kv_transfer_end_s - row.prefill_end_s - kv / RECEIVE
    decode = next(w for w in outcome.report.cluster.decode if w.receive_time > 0)
    assert decode.receive_time == pytest.approx(row.kv_transfer_end_s - row.decode_admit_s, rel=1e-6)


def test_the_store_baseline_saturates_far_below_beluga_on_the_staging_chains():
    """Each end's chain moves ~0.5 GB/s: with 1 GB prompts a 1P:1D rig serves at most ~0.5 req/s; the CXL
    pool, reached by DMA, is bounded by prefill compute instead."""
    load = ("cluster.prefill_nodes=1", "cluster.decode_nodes=1", "workload.type=poisson", "workload.rate=2",
            "workload.num_requests=40", "workload.input_tokens={dist: fixed, value: 8192}",
            "workload.output_tokens={dist: fixed, value: 64}", "kv_manager.prefix_cache=null")
    store = simulate(scenario("beluga_mooncake.yaml", *load)).summary
    cxl = simulate(scenario("beluga.yaml", *load)).summary
    kv = 8192 * 131_072
    bound = 1 / max(kv / 0.446e9, kv / 0.666e9)  # the slower chain, one request at a time
    assert store["throughput"]["requests_per_s"] == pytest.approx(bound, rel=0.15)
    assert cxl["throughput"]["requests_per_s"] > 3 * store["throughput"]["requests_per_s"]
    assert store["utilization"]["gpu"]["prefill_blocked"] > 0.5


def test_host_staging_rates_need_bandwidth_units(capsys):
    assert main(["run", str(CONFIGS / "beluga_mooncake.yaml"), "--set", "kv_manager.host_staging.send=fast"]) == 2
    err = capsys.readouterr().err
    assert "kv_manager.host_staging.send" in err and "GB/s" in err
