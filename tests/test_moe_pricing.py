"""Mixture-of-experts and MLA GEMM pricing (issue #37) against closed forms: the expert GEMMs as their own roofline
group at the profile's measured grouped-GEMM efficiency (GPUSpec.moe_gemm), MLA's replicated q_a/kv_a projection,
and the unsharded sum of the experts' outputs; dense models keep the single roofline, bit for bit."""

from __future__ import annotations

import pytest

from simcxl.config.loader import load_profile
from simcxl.config.schema import GPUSpec
from simcxl.hardware.gpu import GPUCompute

from .conftest import CONFIGS
from .test_model_and_gpu import gpu, llm

TABLE = [{"tokens": 1, "efficiency": 0.25}, {"tokens": 8, "efficiency": 0.5}, {"tokens": 1024, "efficiency": 0.75}]


def fp8_gpu(**overrides):
    return gpu(fp8_peak_flops="2000 TFLOP/s", fp8_compute_efficiency=0.5, **overrides)


def test_deepseek_replicated_projection_and_expert_sizes_by_hand():
    model = llm("deepseek-v3")
    assert model.replicated_linear_params == 61 * 7168 * (1536 + 512 + 64)
    expert = 3 * 7168 * 2048
    assert model.expert_flops_per_token == 2.0 * 58 * (8 + 1) * expert
    touched = 256 * (1 - (1 - 8 / 256) ** 4)
    assert model.expert_weight_bytes(4) == pytest.approx(58 * (touched + 1) * expert * 1)  # fp8: one byte
    # every weight byte a forward streams is expert or not: the split adds up to decode_weight_bytes
    others = model.decode_weight_bytes(4) - model.expert_weight_bytes(4)
    assert others == pytest.approx((model.total_params - model.lm_head_params - 58 * 257 * expert) * 1)


def test_moe_output_sum_traffic_is_replicated_and_averaged_over_layers():
    model = llm("deepseek-v3")
    assert model.replicated_activation_bytes == pytest.approx(2.0 * 10 * 7168 + 2.0 * (8 + 1 + 1) * 7168 * 58 / 61)
    assert llm("llama-3.1-8b").replicated_activation_bytes == 2.0 * 10 * 4096


@pytest.mark.parametrize("tokens, efficiency", [(1, 0.25), (8, 0.5), (4, 0.25 + 0.25 * 3 / 7),
                                                (1024, 0.75), (5000, 0.75), (516, 0.5 + 0.25 * 508 / 1016)])
def test_expert_gemms_are_their_roofline_over_the_interpolated_efficiency(tokens, efficiency):
    model, tp = llm("deepseek-v3"), 8
    compute = GPUCompute(fp8_gpu(moe_gemm=TABLE), model, tp)
    flops, nbytes = tokens * model.expert_flops_per_token / tp, model.expert_weight_bytes(tokens) / tp
    roof = max(flops / 2000e12, nbytes / 2e12)  # datasheet peaks, not the efficiencies of the other GEMMs
    assert compute.expert_gemm_time(tokens, flops, nbytes) == pytest.approx(roof / efficiency, rel=1e-12)


@pytest.mark.parametrize("tokens", [1, 4, 64, 1024, 8192])
def test_a_moe_forward_sums_the_expert_group_and_the_rest_with_replicated_mla(tokens):
    model, tp = llm("deepseek-v3"), 8
    compute = GPUCompute(fp8_gpu(moe_gemm=TABLE), model, tp)
    expert_flops, expert_bytes = tokens * model.expert_flops_per_token, model.expert_weight_bytes(tokens)
    flops = tokens * (model.linear_flops_per_token - model.lm_head_flops_per_token) + tokens * model.lm_head_flops_per_token
    rep = model.replicated_linear_params
    rest_flops = (flops - expert_flops - 2.0 * tokens * rep) / tp + 2.0 * tokens * rep
    rest_bytes = (model.decode_weight_bytes(tokens) - expert_bytes - rep) / tp + rep
    rest = max(rest_flops / (2000e12 * 0.5), rest_bytes / (2e12 * 0.5))
    experts = compute.expert_gemm_time(tokens, expert_flops / tp, expert_bytes / tp)
    assert compute._linear(tokens, sampled=tokens) == pytest.approx(rest + experts, rel=1e-12)


def test_without_a_table_the_experts_stay_in_the_one_roofline_and_dense_models_are_unchanged():
    model, tp, tokens = llm("deepseek-v3"), 8, 16
    compute = GPUCompute(fp8_gpu(), model, tp)
    flops = tokens * model.linear_flops_per_token
    rep = model.replicated_linear_params
    assert compute._linear(tokens, tokens) == pytest.approx(max(
        ((flops - 2.0 * tokens * rep) / tp + 2.0 * tokens * rep) / 1000e12,
        ((model.decode_weight_bytes(tokens) - rep) / tp + rep) / 1e12), rel=1e-12)
    dense = llm("llama-3.1-70b-fp8")
    with_table, without = GPUCompute(fp8_gpu(moe_gemm=TABLE), dense, 4), GPUCompute(fp8_gpu(), dense, 4)
    for b in (1, 7, 300, 4096):
        assert with_table._linear(b, 1) == without._linear(b, 1) == without.roofline.linear(
            (b * (dense.linear_flops_per_token - dense.lm_head_flops_per_token) + dense.lm_head_flops_per_token) / 4,
            dense.decode_weight_bytes(b) / 4)
        assert with_table.prefill_time([b]) == without.prefill_time([b])


def test_decode_stretch_is_decode_step_time_bit_for_bit_with_the_expert_table():
    compute = GPUCompute(load_profile(CONFIGS / "hardware/h200.yaml", "gpu", GPUSpec), llm("deepseek-v3"), 8, fused=True)
    for batch, context in [(1, 10), (4, 5600), (37, 100_000), (256, 300_000)]:
        ends, end = [0.5], 0.5
        compute.decode_stretch(batch, context, context, 12, 1e-5, ends)
        for i in range(1, 13):
            end = end + (1e-5 + compute.decode_step_time(batch, context + i * batch, context + i * batch))
            assert ends[i] == end


def test_the_bundled_profiles_table_is_the_measured_one():
    from experiments.validation.moe_gemm_efficiency import efficiencies

    measured = [(t, round(e, 3)) for t, e in efficiencies()]
    for name in ("h100_sxm", "h200"):
        spec = load_profile(CONFIGS / f"hardware/{name}.yaml", "gpu", GPUSpec)
        assert [(p.tokens, p.efficiency) for p in spec.moe_gemm] == measured
