"""`simcxl model from-hf`: model profiles from Hugging Face config.json files, and ``model: {hf_config: ...}``."""

from __future__ import annotations

import json

import pytest

from simcxl.cli import main
from simcxl.config.hf_import import model_from_hf, read_hf_config
from simcxl.config.loader import load_profile
from simcxl.config.schema import ModelSpec
from simcxl.errors import ConfigError
from simcxl.metrics.results import dump_json
from simcxl.simulate import simulate

from .conftest import CONFIGS, scenario

HF = CONFIGS / "models/hf"
BUNDLED = {"Llama-3.1-8B": "llama-3.1-8b", "Llama-3.1-70B": "llama-3.1-70b", "Llama-3.1-70B-FP8": "llama-3.1-70b-fp8",
           "Qwen2.5-32B": "qwen2.5-32b", "DeepSeek-V3": "deepseek-v3", "DeepSeek-V3.2": "deepseek-v3.2"}


def imported(name: str) -> ModelSpec:
    path = HF / name / "config.json"
    return ModelSpec.model_validate(model_from_hf(read_hf_config(path), path).fields)


def test_every_bundled_model_profile_is_reproduced_from_its_config_json():
    assert sorted(BUNDLED.values()) == sorted(p.stem for p in (CONFIGS / "models").glob("*.yaml"))
    for folder, profile in BUNDLED.items():
        assert imported(folder) == load_profile(CONFIGS / f"models/{profile}.yaml", "model", ModelSpec), folder


def test_the_written_profile_loads_back_to_the_same_model(tmp_path, capsys):
    for folder in BUNDLED:
        out = tmp_path / f"{folder}.yaml"
        assert main(["model", "from-hf", str(HF / folder / "config.json"), "-o", str(out)]) == 0
        assert load_profile(out, "model", ModelSpec) == imported(folder)
    assert "# num_key_value_heads" in (tmp_path / "Llama-3.1-8B.yaml").read_text()
    assert "not modelled: 1 multi-token-prediction" in (tmp_path / "DeepSeek-V3.yaml").read_text()


def test_a_scenario_with_hf_config_simulates_byte_identically_to_the_bundled_profile():
    small = ("workload.num_requests=300",)
    plain = simulate(scenario("rdma.yaml", *small))
    from_hf = simulate(scenario("rdma.yaml", *small, f"model.hf_config={HF / 'Llama-3.1-8B/config.json'}"))
    assert dump_json(from_hf.summary) == dump_json(plain.summary)


def test_keys_beside_hf_config_override_it_and_paths_are_relative_to_the_file(write_yaml, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m/config.json").write_text((HF / "Llama-3.1-8B/config.json").read_text())
    path = write_yaml("s.yaml", f"include: [{CONFIGS / 'rdma.yaml'}]\nmodel: {{hf_config: m/config.json, kv_dtype: fp8}}\n")
    from simcxl.config.loader import load_scenario

    loaded = load_scenario(path)
    assert loaded.scenario.model.name == "m" and loaded.scenario.model.kv_dtype == "fp8"
    assert loaded.scenario.model.layers == 32 and "hf_config" not in loaded.resolved["model"]
    assert loaded.source_of(("model", "layers")) == str(tmp_path / "m/config.json")


MIXTRAL = {"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
           "num_hidden_layers": 32, "num_key_value_heads": 8, "num_local_experts": 8, "num_experts_per_tok": 2,
           "vocab_size": 32000, "torch_dtype": "bfloat16", "sliding_window": None}
QWEN3_MOE = {"model_type": "qwen3_moe", "hidden_size": 2048, "intermediate_size": 6144, "head_dim": 128,
             "num_attention_heads": 32, "num_hidden_layers": 48, "num_key_value_heads": 4, "num_experts": 128,
             "num_experts_per_tok": 8, "moe_intermediate_size": 768, "decoder_sparse_step": 1, "mlp_only_layers": [],
             "vocab_size": 151936, "torch_dtype": "bfloat16", "sliding_window": None, "use_sliding_window": False}
QWEN2_MOE = {"model_type": "qwen2_moe", "hidden_size": 2048, "intermediate_size": 5632, "num_attention_heads": 16,
             "num_hidden_layers": 24, "num_key_value_heads": 16, "num_experts": 60, "num_experts_per_tok": 4,
             "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632, "decoder_sparse_step": 1,
             "vocab_size": 151936, "torch_dtype": "bfloat16"}
GPT_OSS = {"model_type": "gpt_oss", "hidden_size": 2880, "intermediate_size": 2880, "head_dim": 64,
           "num_attention_heads": 64, "num_hidden_layers": 36, "num_key_value_heads": 8, "num_local_experts": 128,
           "num_experts_per_tok": 4, "experts_per_token": 4, "vocab_size": 201088, "sliding_window": 128,
           "torch_dtype": "bfloat16", "quantization_config": {"quant_method": "mxfp4"}}


def test_moe_families_map_their_own_key_names(tmp_path):
    path = tmp_path / "config.json"
    mixtral = ModelSpec.model_validate(model_from_hf(MIXTRAL, path, "Mixtral-8x7B").fields)
    assert (mixtral.moe.routed_experts, mixtral.moe.experts_per_token, mixtral.moe.expert_intermediate) == (8, 2, 14336)
    assert mixtral.head_dim == 128 and mixtral.moe.shared_experts == 0
    qwen3 = ModelSpec.model_validate(model_from_hf(QWEN3_MOE, path, "Qwen3-30B-A3B").fields)
    assert qwen3.head_dim == 128 and qwen3.hidden // qwen3.heads == 64  # head_dim given, not hidden / heads
    assert (qwen3.moe.routed_experts, qwen3.moe.experts_per_token, qwen3.moe.expert_intermediate) == (128, 8, 768)
    qwen2 = ModelSpec.model_validate(model_from_hf(QWEN2_MOE, path, "Qwen1.5-MoE-A2.7B").fields)
    assert qwen2.moe.shared_experts == 4  # 5632 / 1408: one shared expert four experts wide


def test_an_explicit_dtype_overrides_the_checkpoint_quantization(tmp_path):
    path = tmp_path / "config.json"
    gpt = model_from_hf(GPT_OSS, path, "gpt-oss-120b", dtype="fp8")
    assert ModelSpec.model_validate(gpt.fields).moe.routed_experts == 128
    assert ModelSpec.model_validate(gpt.fields).sliding_window == 128 and any("sinks" in n for n in gpt.notes)


@pytest.mark.parametrize("text, expected", [
    ('{"model_type": "bert"}', "model_type: 'bert' is not supported; expected one of"),
    ('{"model_type": "llama", "hidden_size": 4096}', "num_attention_heads: missing"),
    ('{"model_type": "llama",\n "hidden_size": }', "config.json:2: invalid JSON"),
    ('[1, 2]', "expected a JSON object"),
    ({**MIXTRAL, "num_hidden_layers": -1}, "num_hidden_layers: expected a whole number > 0, got -1"),
    ({**MIXTRAL, "torch_dtype": "float32"}, "torch_dtype: expected bfloat16 or float16, got 'float32'"),
])
def test_a_bad_config_json_exits_2_naming_the_file_and_key(tmp_path, capsys, text, expected):
    path = tmp_path / "config.json"
    path.write_text(text if isinstance(text, str) else json.dumps(text))
    assert main(["model", "from-hf", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and expected in err, err


def test_a_bundled_scenario_is_found_by_name(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the bundled ones are found beside the package
    assert main(["validate", "rdma"]) == 0
    assert "ok: rdma" in capsys.readouterr().out
    assert main(["validate", "rdmaa"]) == 2
    assert "no bundled scenario of that name (bundled: beluga" in capsys.readouterr().err
