"""Every scenario under configs/papers/** (issue #36) validates and runs a few requests; fragments named
``_*.yaml`` are included by them, not scenarios. Plus the LMCache connector's data path."""

from __future__ import annotations

import pytest

from simcxl.config.loader import load_scenario
from simcxl.simulate import simulate

from .conftest import CONFIGS

SCENARIOS = sorted(p for p in (CONFIGS / "papers").rglob("*.yaml") if not p.name.startswith("_"))


def few(path, n: int = 6) -> list[str]:
    """Overrides that keep the scenario's workload but only its first ``n`` requests."""
    workload = load_scenario(path).scenario.workload
    if workload.type == "trace":
        return [f"workload.first={n}"]
    return [f"workload.num_requests={n}"]


def test_there_are_paper_scenarios():
    names = {p.relative_to(CONFIGS / "papers").as_posix() for p in SCENARIOS}
    assert {"tract/tract.yaml", "tract/tract_nocache.yaml", "tract/lmcache.yaml", "tract/nixl.yaml"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.relative_to(CONFIGS / "papers").as_posix())
def test_paper_scenario_runs(path):
    summary = simulate(load_scenario(path, few(path))).summary
    assert summary["requests"]["completed"] == summary["requests"]["arrived"] > 0
    assert summary["ttft_s"]["mean"] > 0


def _static(system: str, tokens: int = 6000) -> dict:
    spec = ('workload={type: poisson, rate: 0.05, num_requests: 4, block_tokens: 64, '
            f'input_tokens: {{dist: fixed, value: {tokens}}}, output_tokens: {{dist: fixed, value: 3}}}}')
    return simulate(load_scenario(CONFIGS / "papers/tract" / f"{system}.yaml", [spec])).summary


def test_lmcache_sends_the_whole_prompt_in_chunks():
    """LMCache's PD path sends every block (24 WRITEs of a 256-token chunk for 6000 tokens) and, unloaded,
    moves them at about the NIC's rate: 6000 x 131,072 B over 100 Gb/s x 0.97 is ~65 ms."""
    summary = _static("lmcache")
    kv = 6000 * 131072
    assert summary["kv"]["bytes_moved"]["lmcache"] == pytest.approx(4 * kv)
    assert 0.060 < summary["ttft_breakdown_s"]["kv_transfer"] < 0.080


def test_tract_nocache_pays_the_shared_device_twice():
    """Without hits TraCT writes the prompt into the one Niagara 2.0 device and decode reads it back, both at
    its 10.1 GB/s: ~2 x 78 ms for 6000 tokens, slower than one pass over the 100 Gb/s NIC."""
    cxl = _static("tract_nocache")["ttft_breakdown_s"]["kv_transfer"]
    nixl = _static("nixl")["ttft_breakdown_s"]["kv_transfer"]
    assert 0.14 < cxl < 0.17 and nixl < cxl


@pytest.mark.parametrize("system", ["sac", "rdma", "local_dram", "hbm"])
def test_sac_is_one_aggregated_server(system):
    """SAC's rig (configs/papers/sac/_rig.yaml) is one SGLang server of 8 H20 (TP 8): one aggregated instance,
    whose KV connector is asked where the design keeps KV outside HBM (issue #38)."""
    from simcxl.serving.cluster import Cluster
    loaded = load_scenario(CONFIGS / "papers/sac" / f"{system}.yaml", few(CONFIGS / "papers/sac" / f"{system}.yaml"))
    cluster = Cluster(loaded, block_tokens=64)
    assert not cluster.prefill and not cluster.decode and len(cluster.aggregated) == 1
    assert len(cluster.aggregated[0].gpus) == 8 and not cluster.scenario.serving.aggregated.mixed_prefill
    assert (cluster.aggregated[0].connector is cluster.kv_manager) == (system != "hbm")
