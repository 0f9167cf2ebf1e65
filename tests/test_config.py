"""Loading scenarios: includes, overrides, and a clear error (file, key path, expectation) for bad input."""

from __future__ import annotations

import pytest

from simcxl.cli import main
from simcxl.config.loader import load_scenario
from simcxl.errors import ConfigError
from simcxl.simulate import prepare

from .conftest import CONFIGS, scenario

BASE = f"""include:
  - {CONFIGS}/hardware/h100_sxm.yaml
  - {CONFIGS}/hardware/rack_rdma_400g.yaml
  - {CONFIGS}/models/llama-3.1-8b.yaml
name: t
cluster: {{prefill_nodes: 1, decode_nodes: 1}}
workload:
  type: poisson
  rate: 1
  num_requests: 4
  input_tokens: {{dist: fixed, value: 100}}
  output_tokens: {{dist: fixed, value: 10}}
"""


def test_bundled_default_loads_with_units_resolved():
    loaded = scenario()
    assert loaded.scenario.gpu.hbm_bandwidth == pytest.approx(3.35e12)
    assert loaded.scenario.fabric.nic.line_rate == pytest.approx(50e9)
    assert loaded.scenario.fabric.nic.latency == pytest.approx(0.6e-6)
    assert loaded.source_of(("gpu", "peak_flops")).endswith("hardware/h100_sxm.yaml")


def test_set_overrides_win_and_replace_a_mapping_of_another_kind():
    loaded = scenario("rdma.yaml", "workload.rate=8", "workload.input_tokens={dist: fixed, value: 512}",
                      "gpu.hbm_capacity=141 GB")
    assert loaded.scenario.workload.rate == 8
    assert loaded.scenario.workload.input_tokens.value == 512
    assert loaded.scenario.gpu.hbm_capacity == 141e9
    assert loaded.resolved["workload"]["input_tokens"] == {"dist": "fixed", "value": 512}


def test_scenario_keys_override_included_profiles(write_yaml):
    path = write_yaml("s.yaml", BASE + "gpu: {hbm_capacity: 40 GB}\n")
    assert load_scenario(path).scenario.gpu.hbm_capacity == 40e9


@pytest.fixture
def with_base(write_yaml):
    """A scenario file that includes a valid base scenario and adds ``extra`` on top of it."""
    write_yaml("base.yaml", BASE)
    return lambda extra: write_yaml("s.yaml", "include: [base.yaml]\n" + extra)


def _error(path, *overrides) -> str:
    with pytest.raises(ConfigError) as info:
        prepare(load_scenario(path, list(overrides)))
    return str(info.value)


@pytest.mark.parametrize("extra, fragments", [
    ("cluster: {prefill_nodez: 2}\n", ["s.yaml: cluster.prefill_nodez: unknown key"]),
    ("cluster: {prefill_nodes: four}\n", ["s.yaml: cluster.prefill_nodes:", "valid integer", "'four'"]),
    ("cluster: {prefill_nodes: 0}\n", ["s.yaml: cluster.prefill_nodes:", "greater than 0"]),
    ("gpu: {hbm_bandwidth: 3.35 TB}\n", ["s.yaml: gpu.hbm_bandwidth:", "unknown bandwidth unit 'TB'"]),
    ("gpu: {hbm_capacity: 0 GB}\n", ["s.yaml: gpu.hbm_capacity:", "greater than 0"]),
    ("gpu: {hbm_capacity: -80 GB}\n", ["s.yaml: gpu.hbm_capacity:", "greater than 0"]),
    ("fabric: {nic: {latency: 2}}\n", ["s.yaml: fabric.nic.latency:", "bare number"]),
    ("workload: {input_tokens: {dist: zipf, value: 3}}\n", ["s.yaml: workload.input_tokens:", "'zipf'"]),
    ("workload: {input_tokens: {dist: uniform, min: 9, max: 3}}\n",
     ["s.yaml: workload.input_tokens.max:", "min (9) exceeds max (3)"]),
    ("cluster: {gpus_per_node: 4, tensor_parallel: 3}\n", ["s.yaml: cluster.tensor_parallel:", "must divide gpus_per_node (4)"]),
])
def test_bad_values_name_file_key_and_expectation(with_base, extra, fragments):
    message = _error(with_base(extra))
    for fragment in fragments:
        assert fragment in message


def test_unknown_key_in_an_included_profile_names_that_profile(write_yaml, with_base):
    gpu = write_yaml("gpu.yaml", (CONFIGS / "hardware/h100_sxm.yaml").read_text() + "  hbm_colour: blue\n")
    message = _error(with_base(f"include: [{gpu}]\n"))
    assert "s.yaml:2: invalid YAML: duplicate key 'include'" in message
    message = _error(write_yaml("s2.yaml", f"include: [base.yaml, {gpu}]\n"))
    assert f"{gpu}: gpu.hbm_colour: unknown key" in message


def test_missing_include_and_missing_file(write_yaml, tmp_path):
    message = _error(write_yaml("s.yaml", BASE.replace("models/llama-3.1-8b.yaml", "models/nope.yaml")))
    assert "s.yaml: include: file not found:" in message and "nope.yaml" in message
    assert "file not found" in _error(tmp_path / "absent.yaml")


def test_missing_required_key(write_yaml):
    assert "s.yaml: workload.rate: missing (required)" in _error(write_yaml("s.yaml", BASE.replace("  rate: 1\n", "")))


def test_invalid_yaml_gives_line_number(write_yaml):
    assert "s.yaml:4: invalid YAML" in _error(write_yaml("s.yaml", "name: x\ncluster:\n  a: [1, 2\n"))


def test_model_weights_larger_than_hbm(write_yaml):
    path = write_yaml("s.yaml", BASE.replace("llama-3.1-8b", "llama-3.1-70b"))
    message = _error(path)
    assert "h100_sxm.yaml: gpu.hbm_capacity: Llama-3.1-70B weights (141.1 GB) do not fit" in message
    load_scenario(path, ["cluster.gpus_per_node=4", "cluster.tensor_parallel=4"])  # fits with TP 4


def test_one_request_kv_larger_than_hbm(write_yaml):
    message = _error(write_yaml("s.yaml", BASE), "workload.input_tokens={dist: fixed, value: 600000}")
    assert "workload.input_tokens: up to 600,000 tokens, but one instance has KV room for 426,784 tokens" in message
    # each length fits alone, prompt + output does not: caught once the requests are drawn (with the model's
    # context window lifted: Llama-3.1-8B's 131,072 tokens would refuse the lengths first)
    message = _error(write_yaml("s.yaml", BASE), "workload.input_tokens={dist: fixed, value: 420000}",
                     "workload.output_tokens={dist: fixed, value: 10000}", "model.context_window=1000000")
    assert "gpu.hbm_capacity: request 0 needs KV for 430000 tokens" in message


def test_malformed_override():
    with pytest.raises(ConfigError, match="expected KEY.PATH=VALUE"):
        scenario("rdma.yaml", "workload.rate")


def test_cli_prints_one_message_and_exits_2_without_traceback(with_base, capsys):
    path = with_base("cluster: {prefill_nodez: 2}\n")
    assert main(["run", str(path), "-o", str(path.parent / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simcxl: error: ") and "cluster.prefill_nodez: unknown key" in err
    assert "Traceback" not in err
    assert not (path.parent / "out").exists()
    assert main(["validate", str(path.parent / "missing.yaml")]) == 2
    assert "missing.yaml: file not found" in capsys.readouterr().err
