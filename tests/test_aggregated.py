"""Aggregated serving (chunked prefill, on-demand KV blocks, preemption by recompute), closed-loop
clients, TPOT, FP8 GEMMs and the all-reduce table: closed forms, conservation and end-to-end trades."""

from __future__ import annotations

import numpy as np
import pytest

from simcxl.hardware.gpu import GPUCompute
from simcxl.hardware.model import LLM
from simcxl.simulate import simulate

from .conftest import scenario

ENGINE = "engine/vllm_llama-3.1-70b-fp8_h100.yaml"
AGGREGATED_8B = ("serving.mode=aggregated", "cluster.prefill_nodes=null", "cluster.decode_nodes=null",
                 "cluster.nodes=1")
# the bundled engine's fixed-path stages off, where a test prices the scalar frontend_latency / iteration_overhead
NO_STAGES = tuple(f"serving.frontend.{k}=0 s" for k in ("http_in", "tokenize", "tokenize_per_token", "ipc",
                                                      "ipc_per_token", "detokenize", "stream_out")) + tuple(
    f"serving.step_cpu.{k}=0 s" for k in ("schedule", "prepare_inputs", "sample"))


def closed_loop(concurrency: int, requests: int, n_in: int, n_out: int) -> list[str]:
    return [f"workload={{type: closed_loop, concurrency: {concurrency}, num_requests: {requests}, "
            f"input_tokens: {{dist: fixed, value: {n_in}}}, output_tokens: {{dist: fixed, value: {n_out}}}}}"]


def test_one_client_ttft_is_one_prefill_pass_plus_the_engine_overhead():
    loaded = scenario(ENGINE, *closed_loop(1, 3, 2000, 50), "serving.iteration_overhead=1 ms",
                      "serving.frontend_latency=0 s", *NO_STAGES)
    outcome = simulate(loaded)
    compute = outcome.report.cluster.compute
    expected = compute.forward_time(0, 0, [(2000, 0, True)]) + 1e-3
    assert outcome.report.requests.ttft_s.to_numpy() == pytest.approx([expected] * 3, rel=1e-12)
    decode_step = compute.forward_time(1, 2001, []) + 1e-3  # the first decode step: context 2000 + 1
    assert outcome.report.requests.tbt_max_s.iloc[0] == pytest.approx(compute.forward_time(1, 2049, []) + 1e-3)
    assert outcome.report.requests.tbt_mean_s.iloc[0] > decode_step


def test_the_frontend_counts_both_ways_and_a_sent_request_misses_the_step_already_running():
    one = simulate(scenario(ENGINE, *closed_loop(1, 3, 2000, 50), "serving.frontend_latency=1 ms", *NO_STAGES))
    compute = one.report.cluster.compute
    # alone: in through the frontend, one prefill pass, out through the frontend
    assert one.report.requests.ttft_s.to_numpy() == pytest.approx([compute.forward_time(0, 0, [(2000, 0, True)])
                                                                 + 2e-3] * 3, rel=1e-12)
    # four clients: a request sent when another finishes reaches the engine after the next step has begun
    # (an engine takes new requests between steps) and waits for it; with no frontend it never waits
    args = ("workload={type: closed_loop, concurrency: 4, num_requests: 40, input_tokens: {dist: uniform, min: 800, "
            "max: 1000}, output_tokens: {dist: uniform, min: 150, max: 250}}",)
    instant = simulate(scenario(ENGINE, *args, "serving.frontend_latency=0 s", *NO_STAGES)).report.requests
    sent = simulate(scenario(ENGINE, *args, "serving.frontend_latency=1 us", *NO_STAGES)).report.requests
    late = sent.ttft_s.mean() - instant.ttft_s.mean()
    assert 0.5 * instant.tbt_mean_s.mean() < late < 1.5 * instant.tbt_mean_s.mean()


def test_closed_loop_obeys_littles_law_and_keeps_concurrency_requests_in_flight():
    outcome = simulate(scenario(ENGINE, *closed_loop(8, 160, 1000, 200)))
    summary, table = outcome.summary, outcome.report.requests
    assert summary["requests"]["completed"] == 160
    # each client sends its next request the moment it has seen its last one's final token
    seen = np.sort((table.finish_s + outcome.report.cluster.frontend_latency).to_numpy())[:-8]
    assert np.allclose(np.sort(table.arrival_s.to_numpy())[8:], seen)
    throughput = summary["throughput"]["requests_per_s"]
    little = 8 / summary["e2e_s"]["mean"]  # L = lambda W, with L = 8 clients
    assert throughput == pytest.approx(little, rel=0.05)


def test_tpot_is_per_request_time_after_the_first_token_over_the_tokens_after_it():
    outcome = simulate(scenario(ENGINE, *closed_loop(4, 20, 800, 100)))
    t = outcome.report.requests
    per_request = ((t.e2e_s - t.ttft_s) / (t.output_tokens - 1)).to_numpy()
    assert outcome.summary["tpot_s"]["mean"] == pytest.approx(per_request.mean(), rel=1e-12)


def test_preemption_by_recompute_conserves_requests_tokens_and_blocks():
    # 40 prompts of 3,000 tokens growing by 3,000 tokens each: far more KV than the instance has
    loaded = scenario("rdma.yaml", *AGGREGATED_8B, *closed_loop(40, 60, 3000, 3000), "gpu.memory_utilization=0.3")
    outcome = simulate(loaded)
    worker = outcome.report.cluster.aggregated[0]
    assert outcome.summary["preemptions"]["count"] == worker.preemptions > 0
    assert outcome.summary["preemptions"]["recomputed_tokens"] > 0
    assert outcome.summary["requests"]["completed"] == 60
    log = outcome.report.cluster.log
    assert worker.kv.free == worker.kv.total and not worker.running and not worker.waiting
    assert log.stints, "some requests were preempted"
    # every request emitted one token per iteration of each stint: output tokens - 1 intervals
    join, finish = log.column("join_iteration"), log.column("finish_iteration")
    intervals = sum(sum(last - first for first, last in log.stints.get(i, ())) + finish[i] - join[i]
                    + len(log.stints.get(i, ())) for i in range(len(log)))
    assert intervals == (log.column("output_tokens") - 1).sum()
    assert outcome.report.token_intervals == intervals


def test_aggregated_trades_tbt_interference_for_no_kv_transfer():
    workload = ("workload.num_requests=400", "workload.rate=12", "workload.input_tokens={dist: fixed, value: 6000}",
                "workload.output_tokens={dist: fixed, value: 200}")
    disaggregated = simulate(scenario("rdma.yaml", *workload, "cluster.prefill_nodes=2", "cluster.decode_nodes=2"))
    aggregated = simulate(scenario("rdma.yaml", *workload, "serving.mode=aggregated", "cluster.prefill_nodes=null",
                                   "cluster.decode_nodes=null", "cluster.nodes=4"))
    d, a = disaggregated.summary, aggregated.summary
    assert d["kv"]["bytes_moved"]["rdma"] == pytest.approx(400 * 6000 * 131072)
    assert a["kv"]["bytes_moved"] == {} and a["ttft_breakdown_s"]["kv_transfer"] is None
    # prefill chunks share iterations with decodes: tokens wait behind 6k-token chunks
    assert a["tbt_s"]["p99"] > 3 * d["tbt_s"]["p99"]
    assert a["tbt_s"]["p50"] < 1.5 * d["tbt_s"]["p50"]


def test_forward_time_reduces_to_a_prefill_and_to_a_decode_step():
    loaded = scenario("rdma.yaml")
    compute = GPUCompute(loaded.scenario.gpu, LLM(loaded.scenario.model))
    assert compute.forward_time(0, 0, [(3000, 0, True)]) == pytest.approx(compute.prefill_time([3000]), rel=1e-12)
    assert compute.forward_time(0, 0, [(1000, 2000, True)]) == pytest.approx(compute.prefill_time([1000], [2000]))
    assert compute.forward_time(16, 16 * 4096, []) == pytest.approx(compute.decode_step_time(16, 16 * 4096), rel=1e-12)


def test_fp8_models_run_their_gemms_at_the_fp8_peak():
    loaded = scenario(ENGINE)
    gpu = loaded.scenario.gpu
    fp8 = GPUCompute(gpu, LLM(loaded.scenario.model), 4)
    bf16 = GPUCompute(gpu, LLM(scenario(ENGINE, "model.dtype=bf16").scenario.model), 4)
    assert fp8.roofline.flops == pytest.approx(1979e12 * gpu.fp8_compute_efficiency)
    assert bf16.roofline.flops == pytest.approx(989e12 * gpu.compute_efficiency)
    assert fp8.llm.weight_bytes == pytest.approx(bf16.llm.weight_bytes / 2)


def test_allreduce_table_interpolates_and_extrapolates_at_the_last_rate():
    compute = GPUCompute(scenario(ENGINE).scenario.gpu, LLM(scenario(ENGINE).scenario.model), 4)
    assert compute.one_allreduce(100) == pytest.approx(9.1e-6)                  # below the table: its latency
    assert compute.one_allreduce(32768) == pytest.approx(9.2e-6)                 # a point
    assert compute.one_allreduce((262144 + 1048576) / 2) == pytest.approx((20.6e-6 + 40.2e-6) / 2)
    slope = (1337.7e-6 - 115.4e-6) / (268435456 - 16777216)
    assert compute.one_allreduce(2 * 268435456) == pytest.approx(1337.7e-6 + slope * 268435456)
    assert compute.allreduce_time(4) == pytest.approx(80 * 2 * compute.one_allreduce(4 * 8192 * 2))


def test_unmixed_prefill_pauses_decodes_for_whole_prefill_passes():
    """SGLang without mixed chunks: a prompt runs in an iteration of its own, so a decoding sequence waits
    a whole prefill pass between two tokens, while the prompt's first token comes sooner."""
    args = ("workload={type: closed_loop, concurrency: 4, num_requests: 40, input_tokens: {dist: uniform, min: 1500, "
            "max: 2000}, output_tokens: {dist: uniform, min: 100, max: 200}}", "serving.frontend_latency=0 s",
            "serving.aggregated.async_scheduling=false")  # a batch formed as the last ends: the pause alone
    mixed = simulate(scenario(ENGINE, *args)).report
    unmixed = simulate(scenario(ENGINE, *args, "serving.aggregated.mixed_prefill=false")).report
    shortest_prefill = unmixed.cluster.compute.forward_time(0, 0, [(1500, 0, True)])
    assert unmixed.requests.tbt_max_s.max() >= shortest_prefill
    assert unmixed.requests.ttft_s.mean() < mixed.requests.ttft_s.mean()
    for report in (mixed, unmixed):
        assert report.requests.finish_s.notna().all()
