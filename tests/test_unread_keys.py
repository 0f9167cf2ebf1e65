"""A section the serving mode never reads is an error where the scenario sets it, and one warning line each where
it was set before the mode was chosen (issue #40 item 1): no knob silently does nothing."""

from __future__ import annotations

import pytest

from simcxl.cli import main
from simcxl.config.loader import load_scenario
from simcxl.errors import ConfigError

from .conftest import CONFIGS

AGGREGATED = ("serving.mode=aggregated", "cluster.prefill_nodes=null", "cluster.decode_nodes=null", "cluster.nodes=1")


def test_a_disaggregated_scenario_refuses_the_aggregated_section():
    with pytest.raises(ConfigError, match=r"--set serving.aggregated.max_num_seqs=64: serving.aggregated: not read in "
                                          r"serving.mode: disaggregated"):
        load_scenario(CONFIGS / "rdma.yaml", ["serving.aggregated.max_num_seqs=64"])


def test_an_aggregated_scenario_that_sets_prefill_itself_is_refused(write_yaml):
    path = write_yaml("agg.yaml", f"include: [{CONFIGS / 'engine/vllm_llama-3.1-70b-fp8_h100.yaml'}]\n"
                                  "serving: {prefill: {max_batch_tokens: 4096}}\n")
    with pytest.raises(ConfigError, match=r"agg.yaml: serving.prefill: not read in serving.mode: aggregated: aggregated "
                                          r"serving has no prefill workers"):
        load_scenario(path)


def test_switching_the_mode_over_a_disaggregated_scenario_warns_once_per_section(capsys):
    loaded = load_scenario(CONFIGS / "rdma.yaml", list(AGGREGATED))
    assert [w.split(": ")[1] for w in loaded.warnings] == ["serving.prefill", "serving.decode", "kv_manager"]
    assert main(["validate", "configs/rdma.yaml", *(a for pair in AGGREGATED for a in ("--set", pair))]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("simcxl: warning: configs/rdma.yaml: ") for line in err)
    assert err[0].endswith("ignored (serving.mode was chosen after it)")


def test_every_bundled_scenario_loads_without_an_unread_key():
    names = [p for p in sorted(CONFIGS.glob("*.yaml")) + sorted(CONFIGS.glob("engine/*.yaml"))]
    assert names and all(load_scenario(p).warnings == () for p in names)
