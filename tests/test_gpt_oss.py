"""gpt-oss-120b from its config.json: MXFP4 experts beside BF16 attention, sliding layers, and its engine configs."""

from __future__ import annotations

import json

import pytest

from simcxl.cli import main
from simcxl.config.hf_import import model_from_hf, read_hf_config
from simcxl.config.loader import load_profile
from simcxl.config.schema import GPUSpec, ModelSpec
from simcxl.hardware.gpu import GPUCompute
from simcxl.hardware.model import LLM
from simcxl.metrics.results import dump_json
from simcxl.simulate import simulate

from .conftest import CONFIGS, scenario

CONFIG = CONFIGS / "models/hf/gpt-oss-120b/config.json"
ENGINES = ("engine/vllm_gpt-oss-120b_h100.yaml", "engine/vllm_gpt-oss-120b_h200.yaml")
MXFP4 = 0.5 + 1 / 32  # E2M1 nibble + one E8M0 byte per 32
EXPERT = 3 * 2880 * 2880  # gate, up, down of one expert
EXPERTS = 36 * 128 * EXPERT
REST = 36 * (2 * 2880 * 64 * 64 + 2 * 2880 * 8 * 64) + 36 * 2880 * 128 + 2 * 2880 * 201088  # attention, router, embed+head


def spec() -> ModelSpec:
    return ModelSpec.model_validate(model_from_hf(read_hf_config(CONFIG), CONFIG).fields)


def test_the_config_json_imports_mxfp4_experts_and_18_sliding_layers():
    s = spec()
    assert (s.name, s.dtype, s.kv_dtype, s.sliding_window, s.sliding_layers) == ("gpt-oss-120b", "mxfp4", "bf16", 128, 18)
    assert (s.moe.routed_experts, s.moe.experts_per_token, s.moe.expert_intermediate, s.moe.dense_layers) == (128, 4, 2880, 0)
    assert (s.heads, s.kv_heads, s.head_dim, s.layers) == (64, 8, 64, 36)


def test_parameters_and_weight_bytes_in_closed_form():
    """116.79B parameters counted (the model card's 116.83B adds biases, norms and sinks), 5.13B active."""
    llm = LLM(spec())
    assert llm.total_params == EXPERTS + REST == 116_788_838_400
    assert llm.active_params == 36 * 4 * EXPERT + REST - 2880 * 201088 == 5_131_100_160
    assert llm.weight_bytes == pytest.approx(EXPERTS * MXFP4 + REST * 2, rel=1e-15)  # 65.17 GB
    assert llm.kv_bytes(1000) == (18 * 1000 + 18 * 128) * 2 * 8 * 64 * 2


def test_mxfp4_streams_expert_bytes_at_0_53_per_parameter_and_computes_at_the_bf16_rate():
    mxfp4 = LLM(spec())
    bf16 = LLM(spec().model_copy(update={"dtype": "bf16"}))
    assert mxfp4.expert_weight_bytes(16) == pytest.approx(bf16.expert_weight_bytes(16) * MXFP4 / 2, rel=1e-15)
    non_expert = bf16.decode_weight_bytes(16) - bf16.expert_weight_bytes(16)
    assert mxfp4.decode_weight_bytes(16) == pytest.approx(non_expert + mxfp4.expert_weight_bytes(16), rel=1e-12)
    gpu = load_profile(CONFIGS / "hardware/h100_sxm.yaml", "gpu", GPUSpec)
    compute = GPUCompute(gpu, mxfp4, 1, fused=True)
    assert compute.roofline.flops == gpu.peak_flops * gpu.compute_efficiency  # weight-only: BF16 tensor cores
    assert compute.peak_flops == gpu.peak_flops
    assert compute.decode_step_time(16, 16 * 1024) < 0.5 * GPUCompute(gpu, bf16, 1, fused=True).decode_step_time(16, 16 * 1024)


def test_every_bundled_config_json_imports():
    """from-hf refuses none of the bundled families (Llama, Qwen2/3, DeepSeek V3/V3.2, gpt-oss)."""
    for path in sorted((CONFIGS / "models/hf").glob("*/config.json")):
        ModelSpec.model_validate(model_from_hf(read_hf_config(path), path).fields)


def test_gpt_oss_without_layer_types_takes_transformers_default(tmp_path):
    config = {k: v for k, v in json.loads(CONFIG.read_text()).items() if k != "layer_types"}
    path = tmp_path / "config.json"
    assert ModelSpec.model_validate(model_from_hf(config, path).fields).sliding_layers == 18


@pytest.mark.parametrize("change, expected", [
    ({"layer_types": ["sliding_attention"] * 35}, "layer_types: expected 36 entries"),
    ({"layer_types": ["chunked_attention"] * 36}, "each full_attention or sliding_attention"),
    ({"sliding_window": None}, "sliding_window: missing, and layer_types lists 18"),
])
def test_a_bad_sliding_window_config_exits_2_naming_the_key(tmp_path, capsys, change, expected):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**json.loads(CONFIG.read_text()), **change}))
    assert main(["model", "from-hf", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and expected in err and "Traceback" not in err


def test_mxfp4_on_a_dense_model_exits_2(tmp_path, capsys):
    path = tmp_path / "config.json"
    dense = json.loads((CONFIGS / "models/hf/Llama-3.1-8B/config.json").read_text())
    path.write_text(json.dumps({**dense, "quantization_config": {"quant_method": "mxfp4"}}))
    assert main(["model", "from-hf", str(path)]) == 2
    assert "quant_method: 'mxfp4' is priced for MoE expert weights" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ENGINES)
def test_the_engine_configs_run_deterministically(engine):
    small = ("workload.num_requests=32",)
    first, second = simulate(scenario(engine, *small)), simulate(scenario(engine, *small))
    assert dump_json(first.summary) == dump_json(second.summary)
    model = scenario(engine).scenario.model
    assert (model.dtype, model.sliding_layers, scenario(engine).scenario.serving.aggregated.prefix_caching) == (
        "mxfp4", 18, False)


def test_the_window_shortens_decode_steps_end_to_end():
    """The same run with no sliding layer (every layer full) decodes slower: its steps read all 36 layers' KV."""
    small = ("workload.num_requests=32",)
    windowed = simulate(scenario(ENGINES[0], *small)).summary
    full = simulate(scenario(ENGINES[0], *small, "model.sliding_layers=0")).summary
    assert windowed["tpot_s"]["mean"] < full["tpot_s"]["mean"]
