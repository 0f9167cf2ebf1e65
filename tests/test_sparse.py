"""Sparse attention over a CXL pool (SAC): DeepSeek-V3.2 sizes, the top-k access model, cxl_sparse."""

from __future__ import annotations

import pytest

from simcxl.cli import main
from simcxl.config.loader import load_profile
from simcxl.config.schema import GPUSpec, ModelSpec
from simcxl.hardware.gpu import GPUCompute
from simcxl.hardware.model import LLM
from simcxl.kvcache.sparse_access import hot_buffer_hit_rate
from simcxl.simulate import simulate

from .conftest import CONFIGS, scenario


@pytest.fixture(scope="module")
def v32() -> LLM:
    from simcxl.config.loader import _load_with_includes

    merged, _ = _load_with_includes(CONFIGS / "models/deepseek-v3.2.yaml", ())
    return LLM(ModelSpec.model_validate(merged["model"]))


def test_deepseek_v32_kv_and_indexer_bytes_by_hand(v32):
    assert v32.kv_bytes_per_token == 61 * (512 + 16 + 64 * 2)      # SGLang FP8 MLA: 40,016 B per token
    assert v32.indexer_bytes_per_token == 61 * (128 + 4)
    assert v32.topk == 2048
    assert v32.indexer_flops_per_pair() == 2 * 64 * 128
    assert v32.active_params == pytest.approx(37e9, rel=0.03)          # MoE: activated experts only


def test_sparse_decode_reads_topk_entries_but_indexes_the_whole_context(v32):
    gpu = load_profile(CONFIGS / "hardware/h200.yaml", "gpu", GPUSpec)
    compute = GPUCompute(gpu, v32, 8)
    short, long = compute.decode_step_time(1, 4096, 2048), compute.decode_step_time(1, 131072, 2048)
    dense_long = compute.decode_step_time(1, 131072, 131072)

    def attention(context):  # roofline of top-k attention plus the indexer over the whole context, per GPU
        flops = (2048 * v32.attention_flops_per_pair(decode=True) + context * 2 * 64 * 128) * 61 / 8
        nbytes = 2048 * 40_016 + context * 61 * 132  # MLA under TP attention: every GPU reads every latent
        return max(flops / (989e12 * gpu.attention_efficiency), nbytes / (4.8e12 * gpu.attention_memory_efficiency))

    assert long - short == pytest.approx(attention(131072) - attention(4096))  # only the indexer grows
    assert dense_long > long + 0.5 * (131072 - 2048) * 40_016 / 4.8e12


def test_hot_buffer_hit_rate_emerges_from_the_overlap_and_grows_with_the_buffer():
    low, high = hot_buffer_hit_rate(65536, 2048, 4096, 0.5), hot_buffer_hit_rate(65536, 2048, 4096, 0.9)
    assert 0.5 < low < 0.6 and 0.9 < high < 0.93
    assert hot_buffer_hit_rate(65536, 2048, 2048, 0.7) <= hot_buffer_hit_rate(65536, 2048, 16384, 0.7)
    assert hot_buffer_hit_rate(1000, 2048, 4096, 0.9) == 1.0  # short contexts fit the buffer


def test_sac_run_prints_hit_rate_and_bytes_per_step(tmp_path, capsys):
    assert main(["run", "configs/sac.yaml", "-o", str(tmp_path), "--set", "workload.num_requests=30"]) == 0
    out = capsys.readouterr().out
    assert "hot-buffer hit rate" in out and "KV fetched per decode step" in out


def test_cxl_sparse_holds_a_buffer_not_the_prefix_and_fetches_only_misses():
    outcome = simulate(scenario("sac.yaml", "workload.num_requests=30", "workload.shared_prefix=null",
                                "kv_manager.prefix_cache=null", "workload.rate=0.6",
                                "workload.input_tokens={dist: lognormal, mean: 32768, sigma: 0.7, max: 131072}"))
    kv, df = outcome.summary["kv"], outcome.report.requests
    assert 0.85 < kv["hot_buffer_hit_rate"] < 0.95
    assert set(kv["bytes_moved"]) == {"cxl_write", "cxl_topk_fetch"}
    assert kv["bytes_moved"]["cxl_write"] == pytest.approx(df.input_tokens.sum() * 40_016)
    # per step a request misses ~10% of its top-k across 61 layers; its first step misses them all
    assert kv["fetched_bytes_per_decode_step"] == pytest.approx(0.1 * 2048 * 61 * 656, rel=0.5)
    decode = outcome.report.cluster.decode[0]
    assert decode.kv.free == decode.kv.total  # buffers released


def test_cxl_sparse_needs_a_sparse_model(capsys):
    assert main(["validate", "configs/tract.yaml", "--set", "kv_manager.type=cxl_sparse"]) == 2
    assert "'cxl_sparse' needs a sparse-attention model" in capsys.readouterr().err


def test_on_demand_rdma_pages_cost_more_per_step_than_cache_line_loads():
    """The same misses, fetched as RDMA READs of 64-token pages: page amplification and read credits."""
    common = ("workload.num_requests=20",)
    cxl = simulate(scenario("sac.yaml", *common)).summary
    rdma = simulate(scenario("sac.yaml", *common, "kv_manager.sparse_fetch=rdma_page")).summary
    amplification = rdma["kv"]["bytes_moved"]["rdma_page_fetch"] / cxl["kv"]["bytes_moved"]["cxl_topk_fetch"]
    assert 55 < amplification < 75  # ~64 tokens per page (the batches differ a little as timing differs)
    assert rdma["tbt_s"]["mean"] > 1.5 * cxl["tbt_s"]["mean"]
