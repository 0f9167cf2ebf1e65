"""The parts of the papers' own rigs (issue #36): GPU, fabric, model and workload files load through the real
loader, with the numbers the papers and datasheets give."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from simcxl.config.loader import load_profile, load_scenario
from simcxl.config.schema import GPUSpec, ModelSpec

from .conftest import CONFIGS, ROOT

HW = CONFIGS / "hardware"
PAPERS = ROOT / "workloads/papers"
GB = 1e9


def rig(write_yaml, gpu: str, nic: str, cxl: str, model: str, pcie: str = "pcie_gen4.yaml", extra: str = "",
        workload: str | None = None, cluster: str = "{prefill_nodes: 1, decode_nodes: 1}"):
    """A small disaggregated scenario built from the paper parts, through include: like a real scenario."""
    includes = [HW / pcie, HW / nic, HW / cxl, HW / gpu, CONFIGS / "models/papers" / model]
    if workload:
        includes.append(PAPERS / workload)
    text = (f"include: [{', '.join(str(p) for p in includes)}]\nname: parts\n"
            f"cluster: {cluster}\nkv_manager: {{type: cxl_block}}\n" + extra)
    if not workload:
        text += ("workload: {type: poisson, rate: 1, num_requests: 5, block_tokens: 64, "
                 "input_tokens: {dist: fixed, value: 1500}, output_tokens: {dist: fixed, value: 3}}\n")
    return write_yaml("parts.yaml", text)


def test_rtx_a6000_profile():
    gpu = load_profile(HW / "rtx_a6000.yaml", "gpu", GPUSpec)
    a100 = load_profile(HW / "a100_80gb.yaml", "gpu", GPUSpec)
    assert gpu.hbm_capacity == 48 * GB and gpu.hbm_bandwidth == 768 * GB
    assert gpu.peak_flops == 154.8e12 and gpu.fp8_peak_flops is None  # Ampere: no FP8 tensor cores
    assert (gpu.compute_efficiency, gpu.attention_efficiency, gpu.memory_efficiency, gpu.layer_overhead) == \
        (a100.compute_efficiency, a100.attention_efficiency, a100.memory_efficiency, a100.layer_overhead)
    assert not gpu.calibrated


def test_h20_profile():
    gpu = load_profile(HW / "h20.yaml", "gpu", GPUSpec)
    h100 = load_profile(HW / "h100_sxm.yaml", "gpu", GPUSpec)
    assert gpu.hbm_capacity == 96 * GB and gpu.hbm_bandwidth == 4.0e12
    assert gpu.peak_flops == 148e12 and gpu.fp8_peak_flops == 296e12
    assert gpu.nvlink_bandwidth == 450 * GB  # 900 GB/s total, each way half
    assert gpu.memory_utilization == 0.92    # Beluga's gpu_memory_utilization
    assert gpu.compute_efficiency == h100.compute_efficiency and gpu.allreduce == h100.allreduce
    assert gpu.fused_layer_overhead == h100.fused_layer_overhead and not gpu.calibrated


def test_qwen3_32b_kv_bytes_per_token_is_the_closed_form():
    model = load_profile(CONFIGS / "models/papers/qwen3-32b.yaml", "model", ModelSpec)
    assert (model.layers, model.kv_heads, model.head_dim, model.heads, model.hidden) == (64, 8, 128, 64, 5120)


def test_model_kv_bytes_through_a_scenario(write_yaml):
    for name, layers in (("qwen3-32b.yaml", 64), ("deepseek-r1-distill-llama-8b.yaml", 32)):
        loaded = load_scenario(rig(write_yaml, "h20.yaml", "nic_cx7_200g.yaml", "cxl_beluga_pool.yaml", name,
                                   pcie="pcie_gen5.yaml"))
        m = loaded.scenario.model
        assert 2 * m.layers * m.kv_heads * m.head_dim * 2 == 2 * layers * 8 * 128 * 2
    # Qwen3-32B: 262,144 B/token; DeepSeek-R1-Distill-Llama-8B = Llama-3.1-8B: 131,072 B/token
    assert 2 * 64 * 8 * 128 * 2 == 262_144 and 2 * 32 * 8 * 128 * 2 == 131_072


def test_distill_8b_is_llama_3_1_8b_shaped():
    a = load_profile(CONFIGS / "models/papers/deepseek-r1-distill-llama-8b.yaml", "model", ModelSpec)
    b = load_profile(CONFIGS / "models/llama-3.1-8b.yaml", "model", ModelSpec)
    assert a.model_dump(exclude={"name"}) == b.model_dump(exclude={"name"})


def test_hf_config_json_reproduces_the_profiles():
    from simcxl.config.hf_import import model_from_hf, read_hf_config
    for folder, profile in (("Qwen3-32B", "qwen3-32b"), ("DeepSeek-R1-Distill-Llama-8B", "deepseek-r1-distill-llama-8b")):
        path = CONFIGS / "models/hf" / folder / "config.json"
        imported = ModelSpec.model_validate(model_from_hf(read_hf_config(path), path).fields)
        assert imported == load_profile(CONFIGS / f"models/papers/{profile}.yaml", "model", ModelSpec)


def test_tract_rig_niagara_and_cx6dx(write_yaml):
    s = load_scenario(rig(write_yaml, "rtx_a6000.yaml", "nic_cx6dx_100g.yaml", "cxl_niagara2.yaml",
                          "deepseek-r1-distill-llama-8b.yaml", extra="serving: {execution: eager}\n")).scenario
    cxl = s.fabric.cxl
    assert cxl.devices == 1 and cxl.switch_hops == 0 and cxl.device_latency == pytest.approx(640e-9)
    assert cxl.devices * cxl.device_capacity == 64 * GB
    assert cxl.device_link_bandwidth == cxl.device_media_bandwidth == cxl.host_port_bandwidth == 10.1 * GB
    assert s.fabric.nic.line_rate == 100e9 / 8
    from simcxl.fabric.cxl import CXLPool
    assert CXLPool.load_latency.__doc__  # the 640 ns is the whole CPU load latency: no switch hop is added
    assert cxl.device_latency + 2 * cxl.switch_hops * cxl.switch_latency == pytest.approx(640e-9)


def test_beluga_rig_pool_and_cx7_ports(write_yaml):
    s = load_scenario(rig(write_yaml, "h20.yaml", "nic_cx7_200g.yaml", "cxl_beluga_pool.yaml", "qwen3-32b.yaml",
                          pcie="pcie_gen5.yaml", cluster="{prefill_nodes: 1, decode_nodes: 1, "
                          "gpus_per_node: 8, nics_per_node: 8}")).scenario
    cxl = s.fabric.cxl
    assert cxl.devices == 32 and cxl.devices * cxl.device_capacity == 8192 * GB  # 32 x 256 GB = 8 TB
    assert cxl.host_ports_per_node == 2 and cxl.host_port_bandwidth == 26 * GB and cxl.link_efficiency == 1.0
    assert cxl.device_link_bandwidth == 22.5 * GB and cxl.interleave
    assert cxl.device_latency + 2 * cxl.switch_hops * cxl.switch_latency == pytest.approx(750e-9)
    assert s.fabric.nic.line_rate == 200e9 / 8 and s.cluster.nics_per_node == 8  # 4 dual-port CX-7 per server


def test_tract_rig_simulates_6000_token_static_set(write_yaml):
    path = rig(write_yaml, "rtx_a6000.yaml", "nic_cx6dx_100g.yaml", "cxl_niagara2.yaml",
               "deepseek-r1-distill-llama-8b.yaml", extra="serving: {execution: eager}\n",
               workload="tract_static_isl6000.yaml")
    try:  # simcxl.simulate pulls in serving/ and kvcache/, which may be mid-refactor in a working tree
        from simcxl.simulate import simulate
    except ImportError as exc:
        pytest.skip(f"simcxl.simulate does not import here: {exc}")
    loaded = load_scenario(path, ["workload.num_requests=5"])
    w = loaded.scenario.workload
    assert (w.input_tokens.value, w.output_tokens.value, w.block_tokens) == (6000, 3, 64)
    summary = simulate(loaded).summary
    # prefill writes 6000 x 131,072 B to the device, decode reads them back, both at 10.1 GB/s: >= 156 ms
    assert summary["ttft_breakdown_s"]["kv_transfer"] >= 2 * 6000 * 131_072 / 10.1e9 * 0.99


@pytest.mark.parametrize("name", ["tract_static_isl1500.yaml", "tract_static_isl3000.yaml",
                                  "tract_static_isl4500.yaml", "tract_synthetic_A.yaml", "tract_synthetic_B.yaml",
                                  "tract_synthetic_C.yaml", "beluga_lveval_like.yaml"])
def test_workload_fragments_load(write_yaml, name):
    gpu, nic, cxl, model, pcie = (("h20.yaml", "nic_cx7_200g.yaml", "cxl_beluga_pool.yaml", "qwen3-32b.yaml",
                                   "pcie_gen5.yaml") if name.startswith("beluga") else
                                  ("rtx_a6000.yaml", "nic_cx6dx_100g.yaml", "cxl_niagara2.yaml",
                                   "deepseek-r1-distill-llama-8b.yaml", "pcie_gen4.yaml"))
    extra = "" if name.startswith("beluga") else "serving: {execution: eager}\n"
    loaded = load_scenario(rig(write_yaml, gpu, nic, cxl, model, pcie=pcie, extra=extra, workload=name))
    assert loaded.scenario.workload.type in ("poisson", "trace", "closed_loop")


def rows(name: str) -> list[dict]:
    with gzip.open(PAPERS / name, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_traces_are_regenerated_byte_identically(tmp_path):
    before = {p.name: p.read_bytes() for p in PAPERS.glob("*.jsonl.gz")}
    subprocess.run([sys.executable, str(PAPERS / "make_synthetic.py")], check=True, capture_output=True)
    assert {p.name: p.read_bytes() for p in PAPERS.glob("*.jsonl.gz")} == before


def test_synthetic_sets_span_three_regimes_of_prefix_reuse():
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_synthetic", PAPERS / "make_synthetic.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    hits = [mod.ideal_hit_ratio(rows(f"tract_synthetic_{s}.jsonl.gz")) for s in "ABC"]
    assert hits[0] < 0.15 < hits[1] < 0.35 < hits[2]


def test_lveval_like_prompts_exceed_15k_and_round_two_repeats_round_one():
    r = rows("beluga_lveval_like.jsonl.gz")
    half = len(r) // 2
    assert all(x["input_length"] > 15_000 for x in r)
    assert [x["hash_ids"] for x in r[:half]] == [x["hash_ids"] for x in r[half:]]
    assert r[half]["timestamp"] > r[half - 1]["timestamp"]
