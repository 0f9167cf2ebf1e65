"""4-bit weights with 16-bit activations (AWQ, GPTQ; SAC serves DeepSeek-V3.2 in AWQ): a quarter of BF16's weight
bytes plus the group scales and zeros, priced at the 16-bit tensor-core rate."""

from __future__ import annotations

import json

import pytest

from simcxl.cli import main
from simcxl.config.loader import load_profile
from simcxl.config.schema import GPUSpec, ModelSpec
from simcxl.hardware.gpu import GPUCompute
from simcxl.hardware.model import LLM

from .conftest import CONFIGS

AWQ = {"model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
       "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256, "torch_dtype": "float16",
       "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}}


def models() -> tuple[LLM, LLM]:
    bf16 = load_profile(CONFIGS / "models/llama-3.1-8b.yaml", "model", ModelSpec)
    return LLM(bf16), LLM(bf16.model_copy(update={"dtype": "int4", "kv_dtype": "bf16"}))


def test_weights_take_half_a_byte_per_parameter_plus_a_scale_and_zero_per_128():
    bf16, int4 = models()
    assert int4.weight_bytes == pytest.approx(bf16.weight_bytes / 2 * (0.5 + 2.5 / 128))
    assert int4.kv_bytes_per_token == bf16.kv_bytes_per_token  # the KV cache stays 16-bit


def test_decode_reads_a_quarter_of_the_bytes_and_prefill_computes_at_the_16_bit_rate():
    gpu = load_profile(CONFIGS / "hardware/h100_sxm.yaml", "gpu", GPUSpec)
    bf16, int4 = (GPUCompute(gpu, llm, 1) for llm in models())
    assert int4.decode_step_time(1, 1024) < 0.45 * bf16.decode_step_time(1, 1024)  # weight-bound: ~0.26x + fixed
    assert int4.prefill_time([8192]) == pytest.approx(bf16.prefill_time([8192]), rel=0.05)  # FLOP-bound


def test_an_awq_config_json_imports_as_int4_with_a_bf16_cache(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(AWQ))
    out = tmp_path / "awq.yaml"
    assert main(["model", "from-hf", str(config), "-o", str(out)]) == 0
    spec = load_profile(out, "model", ModelSpec)
    assert (spec.dtype, spec.kv_dtype) == ("int4", "bf16")


def test_int4_weights_need_the_kv_cache_dtype_named(capsys):
    assert main(["validate", "configs/rdma.yaml", "--set", "model.dtype=int4"]) == 2
    assert "model: dtype 'int4' quantizes the weights only: give kv_dtype" in capsys.readouterr().err
