"""A key the scenario's own choices never read (a section the serving mode skips, a kv_manager key the chosen design
does not read, a key of another workload type or length dist) is an error where the scenario sets it, and one warning
line each where it was set before the choice was made (issue #40 item 1): no knob silently does nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simcxl.cli import main
from simcxl.config.applicability import manager_readers
from simcxl.config.loader import load_scenario
from simcxl.config.schema import KVManagerSpec
from simcxl.errors import ConfigError
from simcxl.kvcache import CONNECTORS, connector_class
from simcxl.simulate import simulate

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
    """Every scenario under configs/ (top level, engine/, papers/, ...): no warning; and no file, profile or not,
    fails for a key its choices leave unread (profiles fail for the sections they lack, which is not this)."""
    loaded, refused = [], []
    for path in sorted(CONFIGS.rglob("*.yaml")):
        try:
            loaded.append((path, load_scenario(path).warnings))
        except ConfigError as exc:
            refused += [str(exc)] if "not read in" in str(exc) else []
    assert refused == [] and [(p, w) for p, w in loaded if w] == []
    assert len([p for p, _ in loaded if "papers" in p.parts]) >= 12 and len(loaded) >= 30


# ------------------------------------------------------------------ keys the chosen KV manager does not read


def test_a_sparse_key_on_rdma_is_refused_naming_the_designs_that_read_it(capsys):
    with pytest.raises(ConfigError, match=r"^--set kv_manager.hot_buffer_tokens=2048: kv_manager.hot_buffer_tokens: not "
                                          r"read in kv_manager.type: rdma: read only by the cxl_sparse, rdma_sparse and "
                                          r"host_sparse KV managers; remove it or change kv_manager.type$"):
        load_scenario(CONFIGS / "rdma.yaml", ["kv_manager.hot_buffer_tokens=2048"])
    assert main(["validate", "configs/rdma.yaml", "--set", "kv_manager.hot_buffer_tokens=2048"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "kv_manager.hot_buffer_tokens: not read in kv_manager.type: rdma" in err[0]


def test_a_key_the_scenario_sets_beside_the_type_is_refused_in_that_file(write_yaml):
    path = write_yaml("pool.yaml", f"include: [{CONFIGS / 'tract.yaml'}]\n"
                                   "kv_manager: {type: cxl_block, descriptor_time: 2 us}\n")
    with pytest.raises(ConfigError, match=r"pool.yaml: kv_manager.descriptor_time: not read in kv_manager.type: "
                                          r"cxl_block: read only by the rdma, nixl and lmcache KV managers"):
        load_scenario(path)


def test_the_default_manager_is_a_choice_too(write_yaml):
    """No kv_manager.type written means rdma: a CXL-only key is refused against it."""
    text = (CONFIGS / "rdma.yaml").read_text(encoding="utf-8")
    assert "type: rdma" in text
    with pytest.raises(ConfigError, match=r"kv_manager.intra_node_lock: not read in kv_manager.type: rdma: read only "
                                          r"by the cxl_block and cxl_sparse KV managers"):
        load_scenario(CONFIGS / "rdma.yaml", ["kv_manager.intra_node_lock=1us"])


def test_a_shared_profile_under_another_design_warns_once_and_still_applies_where_read(write_yaml, capsys):
    """As a paper's rig profile: it sets the engine's page size for every system; the system files pick designs."""
    pages = write_yaml("pages.yaml", "kv_manager: {page_tokens: 64}\n")
    cxl = write_yaml("cxl.yaml", f"include: [{CONFIGS / 'tract.yaml'}, pages.yaml]\nkv_manager: {{type: cxl_block}}\n")
    write_yaml("nixl_type.yaml", "kv_manager: {type: nixl, prefix_cache: null}\n")
    nixl = write_yaml("nixl.yaml", f"include: [{CONFIGS / 'tract.yaml'}, nixl_type.yaml, pages.yaml]\n")
    assert load_scenario(cxl).warnings == (
        f"{pages}: kv_manager.page_tokens: not read in kv_manager.type: cxl_block: read only by the rdma, nixl, "
        "lmcache and cxl_sparse KV managers; ignored (kv_manager.type was chosen after it)",)
    loaded = load_scenario(nixl)
    assert loaded.warnings == () and loaded.scenario.kv_manager.page_tokens == 64
    assert main(["validate", str(cxl)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"simcxl: warning: {pages}: kv_manager.page_tokens: ")


def test_a_profile_that_sets_both_the_type_and_an_unread_key_is_refused(write_yaml):
    """Chosen in the same file (or at the same include depth) as the key: the key was never going to be read."""
    write_yaml("pages.yaml", "kv_manager: {page_tokens: 64}\n")
    both = write_yaml("both.yaml", f"include: [{CONFIGS / 'tract.yaml'}, pages.yaml]\n")
    with pytest.raises(ConfigError, match=r"pages.yaml: kv_manager.page_tokens: not read in kv_manager.type: cxl_block"):
        load_scenario(both)


def test_changing_the_type_on_the_command_line_replaces_the_section_whole():
    """``--set kv_manager.type=X`` names another type, so the old design's keys go with it: nothing to warn about."""
    loaded = load_scenario(CONFIGS / "sac.yaml", ["kv_manager.type=rdma", "model.sparse=null"])
    assert loaded.warnings == () and loaded.scenario.kv_manager.hot_buffer_tokens == \
        KVManagerSpec.model_fields["hot_buffer_tokens"].default


def test_every_kv_manager_key_is_in_the_config_reference():
    readme = (CONFIGS.parent / "README.md").read_text(encoding="utf-8")
    reference = readme[readme.index("## Config reference\n"):]
    reference = reference[:reference.index("\n## ", 1)]
    assert [key for key in KVManagerSpec.model_fields if f"`{key}`" not in reference] == []


def test_every_manager_declares_real_keys_and_every_key_has_a_reader():
    fields = set(KVManagerSpec.model_fields)
    for name in CONNECTORS:
        reads = connector_class(name).reads
        assert {"type", "prefix_cache"} <= reads <= fields, name
    assert [key for key in fields if not manager_readers(key)] == []


# A key a design is declared not to read changes nothing when it runs (the declaration is checked against the
# simulation); and one it does read changes something, so the comparison can tell.
UNREAD = [("rdma.yaml", "rdma_pull", {"descriptor_time": 5e-6, "messages": "layer", "blocking_send": True}),
          ("rdma.yaml", "nixl", {"blocking_send": True, "hot_buffer_tokens": 64}),
          ("tract.yaml", "cxl_block", {"descriptor_time": 5e-6, "page_tokens": 1, "host_pool": 1e9}),
          ("rdma.yaml", "rdma", {"intra_node_lock": 1e-3, "topk_overlap": 0.1, "sparse_fetch": "rdma_page"})]


@pytest.mark.parametrize("config, design, unread", UNREAD)
def test_a_key_declared_unread_changes_nothing(config, design, unread):
    loaded = load_scenario(CONFIGS / config, ["workload.num_requests=40", f"kv_manager.type={design}"])
    assert not set(unread) & connector_class(design).reads

    def run(update: dict) -> dict:
        return simulate(with_manager(loaded, update)).summary

    assert run(unread) == run({})


def test_a_key_declared_read_changes_the_run():
    loaded = load_scenario(CONFIGS / "rdma.yaml", ["workload.num_requests=40"])
    assert "messages" in connector_class("rdma").reads
    assert simulate(with_manager(loaded, {"messages": "layer"})).summary["ttft_s"]["mean"] > \
        simulate(loaded).summary["ttft_s"]["mean"]


def with_manager(loaded, update: dict):
    """The loaded scenario with kv_manager keys changed past the loader (which would refuse the unread ones)."""
    scenario = loaded.scenario
    return replace(loaded, scenario=scenario.model_copy(
        update={"kv_manager": scenario.kv_manager.model_copy(update=update)}))


# ------------------------------------------------------------------ keys of another workload type or length dist


def test_a_trace_key_on_a_poisson_workload_names_the_type_that_reads_it():
    with pytest.raises(ConfigError, match=r"--set workload.time_scale=2: workload.time_scale: not read in "
                                          r"workload.type: poisson: read only by workload.type: trace; remove it or "
                                          r"change workload.type$"):
        load_scenario(CONFIGS / "rdma.yaml", ["workload.time_scale=2"])


def test_a_key_of_another_length_dist_is_refused():
    with pytest.raises(ConfigError, match=r"workload.input_tokens.sigma: not read in workload.input_tokens.dist: "
                                          r"uniform: read only by workload.input_tokens.dist: lognormal"):
        load_scenario(CONFIGS / "rdma.yaml", ["workload.input_tokens={dist: uniform, min: 10, max: 20, sigma: 1}"])


def test_a_key_no_variant_has_is_still_a_misspelling():
    with pytest.raises(ConfigError, match=r"workload.rat: unknown key"):
        load_scenario(CONFIGS / "rdma.yaml", ["workload.rat=2"])
