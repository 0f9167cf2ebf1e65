"""Sliding-window layers: the KV a sequence keeps and the (query, key) pairs attention covers, in closed form."""

from __future__ import annotations

import pytest

from simcxl.cli import main
from simcxl.config.loader import load_profile
from simcxl.config.schema import GPUSpec, ModelSpec
from simcxl.hardware.gpu import GPUCompute
from simcxl.hardware.model import LLM

from .conftest import CONFIGS

ENGINE = CONFIGS / "engine/vllm_gpt-oss-120b_h100.yaml"
# a hybrid model: 6 layers, 2 of them sliding over 16 tokens; 4 KV heads x 32 dims in bf16: 512 B per token and layer
HYBRID = dict(name="hybrid", layers=6, hidden=256, heads=8, kv_heads=4, head_dim=32, intermediate=512, vocab=1000,
              sliding_window=16, sliding_layers=2)
PER_LAYER = 2 * 4 * 32 * 2


def llm(**changes) -> LLM:
    return LLM(ModelSpec(**{**HYBRID, **changes}))


def brute_pairs(new: int, cached: int, window: int | None) -> int:
    """Pairs position by position: the query at 1-based position p sees p keys, or min(p, window)."""
    return sum(p if window is None else min(p, window) for p in range(cached + 1, cached + new + 1))


def test_kv_bytes_below_and_above_the_window():
    hybrid = llm()
    assert hybrid.kv_bytes(10) == 6 * 10 * PER_LAYER == 30_720  # within the window every layer keeps every token
    assert hybrid.kv_bytes(16) == 6 * 16 * PER_LAYER
    assert hybrid.kv_bytes(1000) == (4 * 1000 + 2 * 16) * PER_LAYER == 2_064_384  # sliding layers keep 16
    assert hybrid.kv_bytes_per_token == 6 * PER_LAYER  # the rate of a token inside the window, all layers
    dense = llm(sliding_window=None, sliding_layers=None)
    assert dense.kv_bytes(1000) == 6 * 1000 * PER_LAYER


def test_every_layer_slides_when_sliding_layers_is_not_given():
    mistral = llm(sliding_layers=None)
    assert (mistral.sliding_layers, mistral.full_layers) == (6, 0)
    assert mistral.kv_bytes(1000) == 6 * 16 * PER_LAYER


@pytest.mark.parametrize("new, cached", [(1, 0), (10, 0), (16, 0), (17, 0), (40, 0), (5, 100), (30, 3), (1, 999)])
def test_attention_pairs_are_each_layers_reach_averaged_over_the_layers(new, cached):
    hybrid = llm()
    expected = (4 * brute_pairs(new, cached, None) + 2 * brute_pairs(new, cached, 16)) / 6
    assert hybrid.attention_pairs(new, cached) == pytest.approx(expected, rel=1e-15)
    # a model without a window keeps the formula it had, float for float
    assert llm(sliding_window=None, sliding_layers=None).attention_pairs(new, cached) == new * cached + new * (new + 1) / 2


def test_a_1000_token_prompt_of_gpt_oss_covers_a_closed_form_of_pairs():
    """Full layers: 1000 x 1001 / 2 = 500,500 pairs; sliding (128): 128 x 129 / 2 + 872 x 128 = 119,872."""
    gpt = llm(layers=36, sliding_window=128, sliding_layers=18)
    assert gpt.attention_pairs(1000, 0) == (18 * 500_500 + 18 * 119_872) / 36 == 310_186


def test_decode_reads_the_window_of_each_sequence_past_it():
    hybrid = llm()
    # 3 sequences of 1000 cached tokens: full layers read 3000, sliding ones 3 x 16
    assert hybrid.decode_attended(3, 3000) == (4 * 3000 + 2 * 48) / 6
    assert hybrid.decode_attended(3, 30) == 30  # under the window (3 x 10 tokens): everything is read
    assert llm(sliding_window=None, sliding_layers=None).decode_attended(3, 3000) == 3000


def test_the_decode_pricers_and_the_aggregated_pass_apply_the_same_window():
    gpu = load_profile(CONFIGS / "hardware/h100_sxm.yaml", "gpu", GPUSpec)
    spec = load_profile(CONFIGS / "models/llama-3.1-8b.yaml", "model", ModelSpec)
    hybrid = GPUCompute(gpu, LLM(spec.model_copy(update={"sliding_window": 128, "sliding_layers": 16})), 1, fused=True)
    dense = GPUCompute(gpu, LLM(spec), 1, fused=True)
    batch, context = 8, 8 * 4000
    step = hybrid.decode_step_time(batch, context)
    assert step == hybrid.forward_time(batch, context, [])  # disaggregated decode and aggregated pass agree
    # the attention saved is the sliding half's reads beyond the window: (32000 - 8 x 128) / 2 tokens x 128 KiB
    saved = dense.decode_step_time(batch, context) - step
    assert saved == pytest.approx(dense.decode_attention(context - (context + 8 * 128) / 2, 0), rel=1e-9)
    ends = [0.0]
    hybrid.decode_stretch(batch, context, context, 3, 0.0, ends)
    assert ends[1:] == pytest.approx([sum(hybrid.decode_step_time(batch, context + i * batch) for i in range(1, k + 1))
                                      for k in (1, 2, 3)], rel=1e-12)


def test_a_sliding_layer_count_above_the_layers_exits_2_naming_it(capsys):
    assert main(["validate", str(ENGINE), "--set", "model.sliding_layers=40"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "sliding_layers (40) needs sliding_window and at most layers (36)" in err
