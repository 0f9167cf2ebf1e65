"""A model profile from a Hugging Face ``config.json``: the architecture every served model ships with.

``model_from_hf`` maps the keys of Llama/Qwen/Mistral (dense GQA), Mixtral/Qwen-MoE, DeepSeek-V3/V3.2
(MLA + MoE + DSA) and gpt-oss configs onto ``ModelSpec`` fields, remembering which key each came from so
that the written profile cites it. What a config.json cannot say (how an engine stores the KV cache, a
quantization the roofline does not price) is either a rule stated here or a clear error; what the
simulator does not model (attention sinks, biases) is named in the profile's comments. Sliding-window layers
(``layer_types``, or each family's transformers default) become ``sliding_window`` and ``sliding_layers``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simcxl.errors import ConfigError, read_text_checked

DENSE = {"llama", "mistral", "qwen2", "qwen3"}
MOE = {"mixtral", "qwen2_moe", "qwen3_moe", "gpt_oss"}
MLA = {"deepseek_v3", "deepseek_v32"}
# Kernels of one decoder layer as SGLang runs the family (model.layer_kernels: heavy, light), counted from its source:
# docs/notes/layer_kernels.md. Families not listed launch a Llama layer's (the GPU profiles' calibration layer).
LAYER_KERNELS = {"deepseek_v3": (7, 17), "deepseek_v32": (11, 23)}
SUPPORTED = sorted(DENSE | MOE | MLA)
TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16"}
MAX_VALUE = 10**7
"""No size in a config.json (hidden size, vocabulary, experts...) is this large; a larger one is a typo."""
MAX_LAYERS = 10_000
"""The largest published models have under 200 layers."""


@dataclass
class ImportedModel:
    """The model section (``fields``), a comment per key path saying where it came from, and notes on what
    the profile does not model."""

    fields: dict[str, Any]
    comments: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    source: str = ""

    def to_yaml(self) -> str:
        """The profile as YAML in the bundled profiles' style: one commented line per key."""
        lines = [f"# {self.fields['name']}: imported by `simcxl model from-hf` from {self.source}"]
        lines += [f"# not modelled: {note}" for note in self.notes]
        lines.append("model:")
        lines += self._lines(self.fields, "", "  ")
        return "\n".join(lines) + "\n"

    def _lines(self, mapping: dict, prefix: str, indent: str) -> list[str]:
        out = []
        for key, value in mapping.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict):
                out.append(f"{indent}{key}:")
                out += self._lines(value, path + ".", indent + "  ")
                continue
            text = f"{indent}{key}: {json.dumps(value) if key == 'name' else value}"
            comment = self.comments.get(path)
            out.append(f"{text:<31} # {comment}" if comment else text)
        return out


def read_hf_config(path: Path) -> dict[str, Any]:
    """A config.json as a dict; a missing, unreadable or non-object file is a ConfigError naming it. A
    ModelOpt checkpoint states its quantization in ``hf_quant_config.json`` beside it (where vLLM looks):
    read as the config's ``quantization_config``."""
    config = _read_json(path)
    beside = path.parent / "hf_quant_config.json"
    if "quantization_config" not in config and beside.is_file():
        quantization = _read_json(beside).get("quantization")
        if not isinstance(quantization, dict):
            raise ConfigError(f"{beside}: quantization: expected a mapping (quant_algo, kv_cache_quant_algo)")
        config["quantization_config"] = {"quant_method": "modelopt", **quantization}
    return config


def _read_json(path: Path) -> dict[str, Any]:
    text = read_text_checked(path, "a Hugging Face config.json")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid JSON: nested too deep (a config.json nests a few levels)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object (a Hugging Face config.json)")
    return data


def default_name(path: Path, config: dict[str, Any]) -> str:
    """The model's name: the folder a ``config.json`` was downloaded into (``--local-dir NAME``), else the
    last part of ``_name_or_path``, else the file's stem."""
    if path.name == "config.json" and path.parent.name not in ("", "."):
        return path.resolve().parent.name
    if isinstance(config.get("_name_or_path"), str) and config["_name_or_path"]:
        return config["_name_or_path"].rstrip("/").rsplit("/", 1)[-1]
    return path.stem


class _Reader:
    """Reads keys of one config.json, naming the file and key in every error."""

    def __init__(self, config: dict[str, Any], path: Path):
        self.config, self.path = config, path

    def error(self, key: str, expected: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {expected}")

    def int(self, key: str, default: int | None = None, positive: bool = True, most: int = MAX_VALUE) -> int:
        value = self.config.get(key, default)
        if value is None:
            raise self.error(key, f"missing (a {self.config.get('model_type')} config.json gives it)")
        if not isinstance(value, int) or isinstance(value, bool) or (positive and value <= 0) or value < 0:
            raise self.error(key, f"expected a whole number {'> 0' if positive else '>= 0'}, got {value!r}")
        if value > most:
            raise self.error(key, f"{value:,} is not a plausible value (at most {most:,}); check the file")
        return value


def model_from_hf(config: dict[str, Any], path: Path, name: str | None = None,
                  dtype: str | None = None) -> ImportedModel:
    """The model profile of ``config`` (read from ``path``); ``dtype`` overrides the weight dtype when the
    checkpoint's quantization is not one the roofline prices."""
    read = _Reader(config, path)
    model_type = config.get("model_type")
    if model_type not in SUPPORTED:
        raise read.error("model_type", f"{model_type!r} is not supported; expected one of {', '.join(SUPPORTED)}")
    imported = ImportedModel({"name": name or default_name(path, config)}, source=str(path))
    put = _Putter(imported)
    heads = read.int("num_attention_heads")
    hidden = read.int("hidden_size")
    put("layers", read.int("num_hidden_layers", most=MAX_LAYERS), "num_hidden_layers")
    put("hidden", hidden, "hidden_size")
    put("heads", heads, "num_attention_heads")
    kv_heads = read.int("num_key_value_heads", heads)
    if model_type not in MLA and (kv_heads > heads or heads % kv_heads):
        raise read.error("num_key_value_heads",
                         f"{kv_heads} KV heads, but num_attention_heads ({heads}) "
                         + ("is fewer" if kv_heads > heads else "is not a multiple of it")
                         + ": grouped-query attention shares each KV head among a whole number of query heads")
    put("kv_heads", kv_heads, "num_key_value_heads" + (" (MLA caches one latent per token, not per head)"
                                                       if model_type in MLA else " (GQA)"))
    if model_type in MLA:
        put("head_dim", read.int("v_head_dim"), "v_head_dim")
    elif "head_dim" in config and config["head_dim"] is not None:
        put("head_dim", read.int("head_dim"), "head_dim")
    else:
        if hidden % heads:
            raise read.error("head_dim", f"missing, and hidden_size ({hidden}) is not a multiple of "
                                         f"num_attention_heads ({heads})")
        put("head_dim", hidden // heads, "hidden_size / num_attention_heads")
    put("intermediate", read.int("intermediate_size"), "intermediate_size")
    put("vocab", read.int("vocab_size"), "vocab_size")
    if config.get("max_position_embeddings") is not None:
        put("context_window", read.int("max_position_embeddings"), "max_position_embeddings")
    weights, kv_cache_fp8 = _weight_dtype(read, dtype)
    put("dtype", weights[0], weights[1])
    if model_type in MLA:
        _mla(read, put, model_type)
    elif kv_cache_fp8:
        put("kv_dtype", "fp8", "quantization_config: FP8 KV cache")
    elif weights[0] in ("fp8", "int4", "mxfp4"):
        put("kv_dtype", "bf16", "engines keep the KV cache in bf16 unless told otherwise (kv_cache_dtype auto)")
    if model_type in MOE or model_type in MLA:
        _moe(read, put, model_type)
    elif weights[0] == "mxfp4":
        raise read.error("quantization_config.quant_method", "'mxfp4' is priced for MoE expert weights (gpt-oss); "
                                                             "this model has no experts: give --dtype bf16")
    if model_type not in MLA:
        _sliding_window(read, put, model_type)
    if model_type in LAYER_KERNELS:
        heavy, light = LAYER_KERNELS[model_type]
        put("layer_kernels.heavy", heavy, "GEMMs, bmm and attention of one layer as SGLang runs it (docs/notes/layer_kernels.md)")
        put("layer_kernels.light", light, "norms, quantizations, RoPE, cache store, routing (same count)")
    _not_modelled(config, imported)
    return imported


class _Putter:
    """Sets a (possibly nested) field of the imported model with the comment that cites its source."""

    def __init__(self, imported: ImportedModel):
        self.imported = imported

    def __call__(self, key_path: str, value: Any, comment: str) -> None:
        target = self.imported.fields
        *parents, leaf = key_path.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
        self.imported.comments[key_path] = comment


def _weight_dtype(read: _Reader, override: str | None) -> tuple[tuple[str, str], bool]:
    """(dtype, why) of the weights, and whether the checkpoint asks for an FP8 KV cache."""
    quant = read.config.get("quantization_config")
    kv_fp8 = isinstance(quant, dict) and str(quant.get("kv_cache_quant_algo") or "").upper() == "FP8"
    if override is not None:
        return (override, "given with --dtype"), kv_fp8
    if isinstance(quant, dict):
        method = quant.get("quant_method")
        if method == "fp8" or (method == "modelopt" and str(quant.get("quant_algo", "")).upper() == "FP8"):
            return ("fp8", f"quantization_config: {method} (FP8 e4m3 weights and activations)"), kv_fp8
        if method == "compressed-tensors" and _compressed_fp8(quant):
            return ("fp8", "quantization_config: compressed-tensors, 8-bit float weights"), kv_fp8
        if method in ("awq", "gptq") and quant.get("bits") == 4:
            return ("int4", f"quantization_config: {method}, 4-bit weights, 16-bit activations"), kv_fp8
        if method == "mxfp4":
            return ("mxfp4", "quantization_config: mxfp4 experts, the rest bf16 (modules_to_not_convert)"), kv_fp8
        raise read.error("quantization_config.quant_method",
                         f"{method!r} is not priced by the roofline (bf16, fp16, fp8, mxfp4 and 4-bit awq/gptq are); "
                         "give --dtype bf16 or --dtype fp8 to price the weights as one of those")
    torch_dtype = read.config.get("torch_dtype", read.config.get("dtype"))
    if torch_dtype not in TORCH_DTYPES:
        raise read.error("torch_dtype", f"expected bfloat16 or float16, got {torch_dtype!r}; "
                                        "give --dtype bf16|fp16|fp8 to choose how it is served")
    return (TORCH_DTYPES[torch_dtype], "torch_dtype"), kv_fp8


def _compressed_fp8(quant: dict) -> bool:
    groups = quant.get("config_groups") or {}
    weights = [g.get("weights") or {} for g in groups.values() if isinstance(g, dict)]
    return bool(weights) and all(w.get("num_bits") == 8 and w.get("type") == "float" for w in weights)


def _mla(read: _Reader, put: _Putter, model_type: str) -> None:
    """DeepSeek's latent attention, and for V3.2 its sparse indexer and the FP8 cache its kernels need."""
    sparse = model_type == "deepseek_v32"
    if sparse:
        latent, rope = read.int("kv_lora_rank"), read.int("qk_rope_head_dim")
        put("kv_dtype", "fp8", "DSA kernels read an FP8 latent cache (vLLM fp8_ds_mla, SGLang's FP8 MLA)")
        put("kv_bytes_per_token_per_layer", latent + 4 * (latent // 128) + 2 * rope,
            "FP8 latent + one fp32 scale per 128 + bf16 rope dims, as vLLM and SGLang store it")
    else:
        put("kv_dtype", "bf16", "the latent KV cache is kept in bf16 by default in vLLM and SGLang")
    put("attention", "mla", "kv_lora_rank present: multi-head latent attention")
    for key in ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
        put(f"mla.{key}", read.int(key), key)
    if sparse:
        index_dim = read.int("index_head_dim")
        put("sparse.index_heads", read.int("index_n_heads"), "index_n_heads")
        put("sparse.index_head_dim", index_dim, "index_head_dim")
        put("sparse.index_bytes_per_token_per_layer", index_dim + 4, "FP8 indexer key + one fp32 scale")
        put("sparse.topk", read.int("index_topk"), "index_topk")


def _moe(read: _Reader, put: _Putter, model_type: str) -> None:
    """Routed (and shared) experts under each model family's key names."""
    experts_key = {"deepseek_v3": "n_routed_experts", "deepseek_v32": "n_routed_experts",
                   "mixtral": "num_local_experts", "gpt_oss": "num_local_experts"}.get(model_type, "num_experts")
    size_key = "intermediate_size" if model_type in ("mixtral", "gpt_oss") else "moe_intermediate_size"
    put("moe.routed_experts", read.int(experts_key), experts_key)
    put("moe.experts_per_token", read.int("num_experts_per_tok"), "num_experts_per_tok")
    expert_size = read.int(size_key)
    if model_type in MLA:
        put("moe.shared_experts", read.int("n_shared_experts", 0, positive=False), "n_shared_experts")
    elif model_type == "qwen2_moe" and read.config.get("shared_expert_intermediate_size"):
        shared = read.int("shared_expert_intermediate_size")
        if shared % expert_size:
            raise read.error("shared_expert_intermediate_size",
                             f"{shared} is not a whole number of experts of moe_intermediate_size {expert_size}")
        put("moe.shared_experts", shared // expert_size,
            f"shared_expert_intermediate_size / moe_intermediate_size ({shared} / {expert_size})")
    put("moe.expert_intermediate", expert_size, size_key)
    if model_type in MLA:
        put("moe.dense_layers", read.int("first_k_dense_replace", 0, positive=False), "first_k_dense_replace")
        if read.config.get("moe_layer_freq", 1) != 1:
            raise read.error("moe_layer_freq", "only 1 (every layer after the dense ones is MoE) is modelled")
    if model_type in ("qwen2_moe", "qwen3_moe"):
        if read.config.get("decoder_sparse_step", 1) != 1 or read.config.get("mlp_only_layers"):
            raise read.error("decoder_sparse_step", "only every layer MoE (decoder_sparse_step 1, no "
                                                    "mlp_only_layers) is modelled")


def _sliding_window(read: _Reader, put: _Putter, model_type: str) -> None:
    """Which layers attend over a sliding window: ``layer_types`` when given, else transformers' default for
    the family (gpt-oss: even layers slide, GptOssConfig; Qwen2/3: layers from ``max_window_layers`` on when
    ``use_sliding_window``; Mistral/Mixtral: every layer when ``sliding_window`` is set)."""
    config, layers = read.config, read.config["num_hidden_layers"]
    types = config.get("layer_types")
    if types is not None:
        kinds = ("full_attention", "sliding_attention")
        if not isinstance(types, list) or len(types) != layers or any(kind not in kinds for kind in types):
            raise read.error("layer_types", f"expected {layers} entries, each full_attention or sliding_attention")
        sliding = types.count("sliding_attention")
        source = f"layer_types: {sliding} of {layers} sliding_attention"
    elif model_type == "gpt_oss":
        sliding, source = (layers + 1) // 2, "GptOssConfig's default layer_types (even layers slide)"
    elif model_type.startswith("qwen"):
        if not config.get("use_sliding_window"):
            return
        first = read.int("max_window_layers", positive=False, most=layers)
        sliding, source = layers - first, f"use_sliding_window: layers from max_window_layers ({first}) on"
    else:
        sliding, source = layers, "sliding_window set: every layer (Mistral's attention)"
    if sliding == 0 or config.get("sliding_window") is None:
        if sliding and types is not None:
            raise read.error("sliding_window", f"missing, and layer_types lists {sliding} sliding_attention layers")
        return
    put("sliding_window", read.int("sliding_window"), "sliding_window: keys a sliding layer attends to and keeps")
    if sliding < layers:
        put("sliding_layers", sliding, source)


def _not_modelled(config: dict[str, Any], imported: ImportedModel) -> None:
    """Architecture the config declares that the roofline does not price, said in the profile."""
    if config.get("model_type") == "gpt_oss":
        imported.notes.append("attention sinks (one learned logit per head in each softmax: no KV, one exp per "
                              "query and head) and the experts' biases")
    if config.get("num_nextn_predict_layers"):
        imported.notes.append(f"{config['num_nextn_predict_layers']} multi-token-prediction layer(s) "
                              "(speculative decoding is not simulated)")
    if config.get("attention_bias") or config.get("model_type") == "qwen2":
        imported.notes.append("q/k/v projection biases (a few thousand FLOPs per token)")
