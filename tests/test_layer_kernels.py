"""A graph-replayed layer's fixed cost grows with the kernels it launches (model.layer_kernels)."""

from __future__ import annotations

import pytest

from simcxl.config.loader import load_scenario
from simcxl.config.schema import LayerKernels
from simcxl.errors import ConfigError
from simcxl.hardware.gpu import CALIBRATION_LAYER, GPUCompute, fused_layer_overhead
from simcxl.hardware.model import LLM

from .conftest import CONFIGS
from .test_model_and_gpu import gpu, llm

FUSED = dict(fused_layer_overhead="20 us", fused_elementwise_efficiency=1.0)


def test_the_calibration_layer_pays_the_measured_overhead_and_more_kernels_pay_for_each():
    profile = gpu(graph_kernel_floor="1 us", **FUSED)
    measured = profile.fused_layer_overhead
    assert fused_layer_overhead(profile, None) == fused_layer_overhead(profile, CALIBRATION_LAYER) == measured
    heavy = (measured - CALIBRATION_LAYER.light * profile.graph_kernel_floor) / CALIBRATION_LAYER.heavy  # (20 - 6) / 5 = 2.8 us
    assert fused_layer_overhead(profile, LayerKernels(heavy=7, light=17)) == pytest.approx(7 * heavy + 17 * profile.graph_kernel_floor)
    assert fused_layer_overhead(profile, LayerKernels(heavy=7, light=17)) == pytest.approx(36.6e-6)


def test_a_decode_step_grows_by_layers_times_the_extra_fixed_cost():
    base = llm("deepseek-v3")
    plain = LLM(base.spec.model_copy(update={"layer_kernels": None}))
    profile = gpu(graph_kernel_floor="1 us", **FUSED)
    more, calibrated = GPUCompute(profile, base, 8, fused=True), GPUCompute(profile, plain, 8, fused=True)
    extra = fused_layer_overhead(profile, base.spec.layer_kernels) - profile.fused_layer_overhead
    for batch in (1, 4, 32):
        assert more.decode_step_time(batch, batch * 1000) - calibrated.decode_step_time(batch, batch * 1000) == \
            pytest.approx(base.layers * extra, rel=1e-9)


def test_eager_execution_keeps_the_eager_overhead():
    profile = gpu(graph_kernel_floor="1 us", layer_overhead="50 us", **FUSED)
    assert GPUCompute(profile, llm("deepseek-v3"), 8).layer_overhead == profile.layer_overhead


def test_layer_kernels_without_a_graph_floor_is_a_config_error():
    with pytest.raises(ConfigError, match="graph_kernel_floor"):
        load_scenario(CONFIGS / "engine/sglang_deepseek-v3-fp8_h200.yaml", ["gpu.graph_kernel_floor=null"])
