"""Model sizes against hand-computed values, and the roofline at its corners."""

from __future__ import annotations

import pytest

from simcxl.config.loader import _load_with_includes
from simcxl.config.schema import GPUSpec, ModelSpec
from simcxl.hardware.gpu import GPUCompute
from simcxl.hardware.model import LLM

from .conftest import CONFIGS


def llm(name: str) -> LLM:
    merged, _ = _load_with_includes(CONFIGS / "models" / f"{name}.yaml", ())
    return LLM(ModelSpec.model_validate(merged["model"]))


@pytest.mark.parametrize("name, kv_bytes", [
    ("llama-3.1-8b", 2 * 32 * 8 * 128 * 2),     # K and V x layers x KV heads x head dim x bf16
    ("llama-3.1-70b", 2 * 80 * 8 * 128 * 2),
    ("qwen2.5-32b", 2 * 64 * 8 * 128 * 2),
    ("deepseek-v3", 61 * (512 + 64) * 2),         # MLA: one latent + rope key per layer, bf16
])
def test_kv_bytes_per_token(name, kv_bytes):
    assert llm(name).kv_bytes_per_token == kv_bytes
    if name == "llama-3.1-8b":
        assert kv_bytes == 131_072


def test_llama_8b_flops_and_parameters_by_hand():
    model = llm("llama-3.1-8b")
    attention = 2 * 4096 * 4096 + 2 * 4096 * 1024      # q, o + k, v projections
    mlp = 3 * 4096 * 14336
    head = 4096 * 128256
    assert model.active_params == 32 * (attention + mlp) + head
    assert model.linear_flops_per_token == 2 * (32 * (attention + mlp) + head)
    assert model.total_params == pytest.approx(8.03e9, rel=0.001)
    assert model.attention_flops_per_pair(decode=True) == 4 * 32 * 128


def test_deepseek_v3_total_and_activated_parameters_match_the_report():
    model = llm("deepseek-v3")
    assert model.total_params == pytest.approx(671e9, rel=0.01)
    assert model.active_params == pytest.approx(37e9, rel=0.03)
    assert model.weight_bytes == model.total_params  # FP8: one byte per weight


def test_moe_decode_reads_only_the_experts_the_batch_touches():
    model = llm("deepseek-v3")
    per_expert = 3 * 7168 * 2048
    moe_layers = 61 - 3
    # one token: 8 routed experts per MoE layer; 248 untouched
    assert model.decode_weight_bytes(1) == pytest.approx(
        model.total_params - model.lm_head_params - moe_layers * 248 * per_expert)
    assert model.decode_weight_bytes(1) < model.decode_weight_bytes(32) < model.decode_weight_bytes(4096)
    assert model.decode_weight_bytes(4096) == pytest.approx(model.total_params - model.lm_head_params, rel=1e-6)
    dense = llm("llama-3.1-8b")
    assert dense.decode_weight_bytes(1) == dense.decode_weight_bytes(256) == (dense.total_params - dense.lm_head_params) * 2


def gpu(**overrides) -> GPUSpec:
    values = dict(name="round", peak_flops="1000 TFLOP/s", hbm_bandwidth="2 TB/s", hbm_capacity="80 GB",
                  memory_utilization=1.0, compute_efficiency=0.5, attention_efficiency=0.25, memory_efficiency=0.5,
                  layer_overhead="0 s", nvlink_bandwidth="400 GB/s", nvlink_latency="0 s")
    values.update(overrides)
    return GPUSpec.model_validate(values)


def elementwise(model: LLM, tokens: int, bandwidth: float = 2e12, tp: int = 1) -> float:
    """The elementwise ops' traffic on one of ``tp`` GPUs at the given achieved bandwidth, all layers."""
    per_gpu = model.replicated_activation_bytes + model.sharded_activation_bytes / tp
    return model.layers * tokens * per_gpu / bandwidth


def test_activation_traffic_by_hand():
    model = llm("llama-3.1-8b")
    assert model.replicated_activation_bytes == 2 * 10 * 4096  # norms and residuals: whole hidden state
    assert model.sharded_activation_bytes == 2 * (2 * (32 + 8) * 128 + 3 * 14336)  # RoPE, SwiGLU: split by TP


def test_tensor_parallel_splits_rope_and_swiglu_but_every_gpu_normalizes_the_whole_hidden_state():
    model = llm("llama-3.1-70b")
    one, four = GPUCompute(gpu(), model, 1), GPUCompute(gpu(), model, 4)
    tokens = 4096
    traffic = lambda c: c._fixed_and_elementwise(tokens)  # noqa: E731
    assert traffic(one) == pytest.approx(80 * tokens * 2 * (10 * 8192 + 2 * (64 + 8) * 128 + 3 * 28672) / 2e12)
    assert traffic(four) == pytest.approx(80 * tokens * 2 * (10 * 8192 + (2 * (64 + 8) * 128 + 3 * 28672) / 4) / 2e12)


def test_fused_execution_uses_the_fused_figures_and_needs_them():
    model = llm("llama-3.1-8b")
    fused_gpu = gpu(layer_overhead="50 us", elementwise_efficiency=0.25, fused_layer_overhead="20 us",
                    fused_elementwise_efficiency=1.5)
    eager, fused = GPUCompute(fused_gpu, model), GPUCompute(fused_gpu, model, fused=True)
    assert eager._fixed_and_elementwise(1000) == pytest.approx(32 * 50e-6 + elementwise(model, 1000, 0.5e12))
    assert fused._fixed_and_elementwise(1000) == pytest.approx(32 * 20e-6 + elementwise(model, 1000, 3e12))
    with pytest.raises(ValueError, match="fused_layer_overhead"):
        GPUCompute(gpu(), model, fused=True)


def test_decode_linear_roofline_corner():
    """At the ridge point B* = rate / (bandwidth x 2 FLOPs / weight byte), compute and memory times meet."""
    model = llm("llama-3.1-8b")
    compute = GPUCompute(gpu(), model)
    flop_rate, byte_rate = 500e12, 1e12
    weights = model.decode_weight_bytes(1)
    memory_time = weights / byte_rate
    ridge = memory_time * flop_rate / model.linear_flops_per_token    # batch where GEMM time == memory time
    below, above = int(ridge) - 5, int(ridge) + 5
    linear = lambda b: compute.decode_step_time(b, 0) - elementwise(model, b)  # noqa: E731
    assert linear(below) == pytest.approx(memory_time)          # memory-bound plateau
    assert linear(above) == pytest.approx(above * model.linear_flops_per_token / flop_rate)
    assert linear(above) > memory_time


def test_decode_attention_reads_the_kv_of_every_context_token():
    model = llm("llama-3.1-8b")
    compute = GPUCompute(gpu(), model)
    context = 100_000
    base = compute.decode_step_time(1, 0)
    assert compute.decode_step_time(1, context) - base == pytest.approx(context * 131_072 / 1e12)


@pytest.mark.parametrize("name, tp", [("llama-3.1-8b", 1), ("llama-3.1-8b", 2), ("deepseek-v3", 8)])
def test_a_dense_decode_step_is_the_general_roofline_bit_for_bit(name, tp):
    """The pricer skips the indexer's terms for a model without one; they would add exactly +0.0, so every
    step time is the very float of the general expression (decode stretches and goldens rely on it). Llama's
    decode attention is bound by KV bytes (split over its GPUs); DeepSeek-V3's absorbed MLA, on a GPU with little
    attention efficiency, by FLOPs (its latent read whole on each GPU): both terms are checked."""
    model = llm(name)
    compute = GPUCompute(gpu(attention_efficiency=0.005 if name == "deepseek-v3" else 0.25), model, tensor_parallel=tp)
    roofline = compute.roofline
    for batch, context in [(1, 0), *((1 + i % 256, 977 * i * i + 1) for i in range(1, 400))]:
        flops = (context * model.attention_flops_per_pair(decode=True) + context * 0.0) * float(model.layers) \
            / float(tp) / roofline.attention_flops
        memory = (context * float(model.kv_bytes_per_token) + context * 0.0) / float(compute.kv_shards) \
            / roofline.kv_bandwidth
        if context:
            assert (flops > memory) == (name == "deepseek-v3")
        attention = max(flops, memory)
        expected = (compute._linear(batch, sampled=batch) + attention + compute._fixed_and_elementwise(batch)
                    + compute.allreduce_time(batch))
        assert compute.decode_step_time(batch, context) == expected


@pytest.mark.parametrize("name, tp, attention_efficiency", [
    ("llama-3.1-8b", 3, 0.25), ("deepseek-v3", 6, 0.05), ("deepseek-v3.2", 8, 0.25),
    ("llama-3.1-8b", 3, 0.004 * (1 - 1e-12)),  # 16384 x 32 FLOPs per 131072 bytes: FLOPs win by 1e-12
    ("llama-3.1-8b", 1, 0.25), ("llama-3.1-8b", 1, 0.001),  # one GPU, bound by bytes, then by FLOPs
])
@pytest.mark.parametrize("overhead", [1e-5, 0.0])
def test_a_stretch_of_decode_steps_prices_each_step_as_one_call_would(name, tp, attention_efficiency, overhead):
    """``decode_stretch`` prices and times the next iterations of an unchanged batch in one call (decode
    stretches); each step must be the very float ``decode_step_time`` gives that iteration, bound by bytes, by
    FLOPs, indexed, or with the two terms so close that each iteration's rounding picks its own, and each end
    the float one iteration at a time sums (also where one GPU and no overhead leave terms out)."""
    model = llm(name)
    compute = GPUCompute(gpu(attention_efficiency=attention_efficiency), model, tp)
    for batch, context in [(1, 0), *((1 + 37 * i % 256, 977 * i * i + 1) for i in range(1, 100))]:
        steps = [compute.decode_step_time(batch, context + i * batch, context + i * batch) for i in range(1, 16)]
        assert steps[-1] > steps[0]  # every sequence is a token longer at each iteration
        ends, end = [7.25], 7.25  # as a worker waiting out each iteration sums them
        compute.decode_stretch(batch, context, context, 15, overhead, ends)
        for step in steps:
            end = end + (overhead + step)
            assert ends.pop(1) == end
        assert ends == [7.25]
    ends = [1.0]
    compute.decode_stretch(8, 100, 100, 0, 0.0, ends)
    assert ends == [1.0]


def test_prefill_is_compute_bound_and_quadratic_in_the_prompt():
    model = llm("llama-3.1-8b")
    compute = GPUCompute(gpu(layer_overhead="10 us"), model)
    n = 8192
    linear = (n * (model.linear_flops_per_token - model.lm_head_flops_per_token) + model.lm_head_flops_per_token) / 500e12
    pairs = n * (n + 1) / 2
    attention = pairs * 4 * 32 * 128 * 32 / 250e12
    assert compute.prefill_time([n]) == pytest.approx(linear + attention + 32 * 10e-6 + elementwise(model, n))
    # a cached prefix is attended to but not recomputed
    assert compute.prefill_time([1024], [7168]) < compute.prefill_time([8192]) / 4


def test_tensor_parallel_splits_work_and_adds_two_ring_allreduces_per_layer():
    model = llm("llama-3.1-70b")
    one, four = GPUCompute(gpu(), model, 1), GPUCompute(gpu(nvlink_latency="2 us"), model, 4)
    tokens = 4096
    ring = 2 * 3 / 4 * tokens * 8192 * 2 / 400e9
    assert four.allreduce_time(tokens) == pytest.approx(80 * 2 * (ring + 2e-6))
    # GEMMs, attention and the sharded ops split 4 ways; the norms and residuals do not
    replicated = lambda b: 3 / 4 * 80 * b * model.replicated_activation_bytes / 2e12  # noqa: E731
    assert four.prefill_time([tokens]) == pytest.approx(one.prefill_time([tokens]) / 4 + replicated(tokens)
                                                        + four.allreduce_time(tokens))
    assert four.decode_step_time(64, 10_000) == pytest.approx(one.decode_step_time(64, 10_000) / 4 + replicated(64)
                                                             + four.allreduce_time(64))
    assert one.kv_capacity_bytes == pytest.approx(80e9 - model.weight_bytes)
    assert four.kv_capacity_bytes == pytest.approx(4 * 80e9 - model.weight_bytes)


def test_mla_under_tensor_parallel_attention_keeps_every_latent_on_every_gpu():
    """MLA's latent has no head dimension: with TP attention each of the 8 GPUs stores and reads every token's
    latent, so the instance holds 1/8 the tokens and a memory-bound decode step reads 8x per GPU; DP attention
    spreads the requests instead."""
    model = llm("deepseek-v3")
    tp_attention = GPUCompute(gpu(hbm_capacity="141 GB"), model, tensor_parallel=8)
    dp_attention = GPUCompute(gpu(hbm_capacity="141 GB"), model, tensor_parallel=8, dp_attention=True)
    assert (tp_attention.kv_shards, dp_attention.kv_shards) == (1, 8)
    room = tp_attention.kv_capacity_bytes  # the same HBM after the same weights
    assert tp_attention.kv_capacity_tokens == int(room // (model.kv_bytes_per_token * 8))
    assert dp_attention.kv_capacity_tokens == int(room // model.kv_bytes_per_token)
    memory = 1_000_000 * model.kv_bytes_per_token / tp_attention.roofline.kv_bandwidth
    assert tp_attention.decode_attention(1_000_000, 1_000_000) == pytest.approx(memory, rel=1e-12)
    assert dp_attention.decode_attention(1_000_000, 1_000_000) == pytest.approx(memory / 8, rel=1e-12)
    # DP attention reads the attention weights whole on every GPU and computes only its own tokens' projections
    extra = (model.layers * model.attention_params_per_layer - model.replicated_linear_params) * 7 / 8 \
        * model.weight_dtype_bytes
    assert dp_attention.linear_work(1, 1)[1] - tp_attention.linear_work(1, 1)[1] == pytest.approx(extra * 8, rel=1e-9)
