"""The Python API (``import simcxl``): docs/api.md's examples run as written; a run through the API equals the
same run through the command line (summary, request table, overrides as ``--set``); bad input raises the error
the command line prints."""

from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest

import simcxl
from simcxl.cli import main
from simcxl.errors import ConfigError, SimcxlError

from .conftest import CONFIGS, ROOT

SMALL = {"workload.num_requests": 200}


def code_blocks(markdown: str) -> list[str]:
    """The ```python blocks of a markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def test_code_blocks_finds_each_python_block_and_nothing_else():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\nz = 3\n```\n"
    assert code_blocks(text) == ["x = 1\n", "y = 2\nz = 3\n"]


def test_every_example_of_docs_api_md_runs(tmp_path, monkeypatch):
    """In order, in one namespace, from a folder laid out as a checkout's root (configs/), writing under it."""
    (tmp_path / "configs").symlink_to(CONFIGS)
    monkeypatch.chdir(tmp_path)
    blocks = code_blocks((ROOT / "docs" / "api.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 7  # run, determinism, scenarios, errors, compare, sweep, goodput, plan
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"docs/api.md block {number}", "exec"), namespace)
    assert (tmp_path / "results" / "api_example" / "summary.json").is_file()


def test_run_twice_in_one_process_and_the_cli_give_one_summary(tmp_path):
    first = simcxl.run("rdma", SMALL, seed=3)
    second = simcxl.run(CONFIGS / "rdma.yaml", SMALL, seed=3)
    assert first.summary == second.summary
    assert main(["run", str(CONFIGS / "rdma.yaml"), "-q", "-o", str(tmp_path / "cli"),
                 "--set", "workload.num_requests=200", "--set", "seed=3"]) == 0
    written = (tmp_path / "cli" / "summary.json").read_text()
    assert json.loads(written) == json.loads(json.dumps(first.summary))
    assert simcxl.run("rdma", SMALL, seed=4).summary != first.summary  # the seed is applied


def test_requests_and_timeseries_equal_the_files_the_cli_writes(tmp_path):
    result = simcxl.run("rdma", SMALL)
    assert main(["run", "rdma", "-q", "-o", str(tmp_path), "--set", "workload.num_requests=200"]) == 0
    pd.testing.assert_frame_equal(result.requests, pd.read_parquet(tmp_path / "requests.parquet"))
    pd.testing.assert_frame_equal(result.timeseries, pd.read_csv(tmp_path / "timeseries.csv"))
    assert len(result.requests) == 200 and len(result.timeseries) > 0


def test_instances_equals_the_instances_csv_the_cli_writes(tmp_path, capsys):
    result = simcxl.run("rdma", SMALL)
    assert main(["run", "rdma", "-o", str(tmp_path), "--set", "workload.num_requests=200"]) == 0
    assert "instances.csv" in capsys.readouterr().out.splitlines()[-1]  # the results line names the file
    written = pd.read_csv(tmp_path / "instances.csv")
    pd.testing.assert_frame_equal(result.instances, written)
    roles = set(written.role)
    assert roles == {"prefill", "decode"} and len(written) > len(roles)


def test_write_gives_the_folder_simcxl_run_writes(tmp_path):
    result = simcxl.run("rdma", SMALL)
    folder = result.write(tmp_path / "api")
    assert main(["run", "rdma", "-q", "-o", str(tmp_path / "cli"), "--set", "workload.num_requests=200"]) == 0
    for name in ("summary.json", "requests.csv", "timeseries.csv", "config.resolved.yaml"):
        assert (folder / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    result.write(tmp_path / "again")  # a result can be written twice, whole each time
    assert (tmp_path / "again" / "requests.csv").read_bytes() == (folder / "requests.csv").read_bytes()


def test_output_streams_the_results_folder_as_the_run_goes(tmp_path):
    result = simcxl.run("rdma", SMALL, output=tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(result.summary))
    pd.testing.assert_frame_equal(result.requests, pd.read_parquet(tmp_path / "requests.parquet"))


def test_with_overrides_is_set_whatever_form_the_overrides_take():
    by_set = simcxl.Scenario.load("rdma", ["workload.num_requests=200", "workload.rate=8",
                                           "workload.input_tokens={dist: fixed, value: 1024}", "gpu.hbm_capacity=141 GB"])
    base = simcxl.Scenario.load("rdma", SMALL)
    by_mapping = base.with_overrides({"workload.rate": 8, "workload.input_tokens": {"dist": "fixed", "value": 1024},
                                      "gpu.hbm_capacity": "141 GB"})
    by_keywords = base.with_overrides(workload={"rate": 8, "input_tokens": {"dist": "fixed", "value": 1024}},
                                      gpu={"hbm_capacity": "141 GB"})
    assert by_mapping.resolved == by_set.resolved == by_keywords.resolved
    assert by_mapping.spec == by_set.spec and by_mapping.spec.gpu.hbm_capacity == 141e9
    assert base.spec.workload.rate == 24  # unchanged: a new scenario each time
    assert simcxl.run(by_mapping).summary == simcxl.run(by_set).summary


def test_numpy_numbers_and_paths_are_plain_values():
    np = pytest.importorskip("numpy")
    scenario = simcxl.Scenario.load("rdma", {"workload.rate": np.float64(3.5), "workload.num_requests": np.int64(50)})
    assert scenario.spec.workload.rate == 3.5 and scenario.spec.workload.num_requests == 50


def cli_error(capsys, *argv: str) -> str:
    """The message ``simcxl ARGV`` prints after ``simcxl: error:`` (exit 2)."""
    assert main(list(argv)) == 2
    return capsys.readouterr().err.strip().removeprefix("simcxl: error: ")


@pytest.mark.parametrize("overrides", [{"workload.rat": 8}, {"workload.rate": -1}, {"gpu.hbm_capacity": 80},
                                       {"cluster.prefill_nodes": "four"}])
def test_bad_overrides_raise_the_message_the_cli_prints(capsys, overrides):
    (key, value), = overrides.items()
    expected = cli_error(capsys, "validate", "rdma", "--set", f"{key}={value}")
    with pytest.raises(ConfigError) as raised:
        simcxl.run("rdma", overrides)
    assert str(raised.value) == expected


def test_a_missing_scenario_or_a_bad_seed_raises_the_cli_message(capsys):
    with pytest.raises(ConfigError) as raised:
        simcxl.run("no_such_scenario")
    assert str(raised.value) == cli_error(capsys, "run", "no_such_scenario")
    with pytest.raises(ConfigError) as raised:
        simcxl.run("rdma", seed=-1)
    assert str(raised.value) == cli_error(capsys, "validate", "rdma", "--set", "seed=-1")


@pytest.mark.parametrize("overrides", ["workload.rate=8", [("workload.rate", 8)], {"workload.rate": object()}])
def test_overrides_of_another_shape_are_rejected_by_name(overrides):
    with pytest.raises(ConfigError, match="^overrides: "):
        simcxl.Scenario.load("rdma", overrides)


def test_sweep_table_is_the_sweep_csv_the_cli_writes(tmp_path):
    spec = {"base": str(CONFIGS / "rdma.yaml"), "grid": {"workload.rate": [8, 16]},
            "points": [{"workload.num_requests": 100}]}
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))
    assert main(["sweep", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "cli")]) == 0
    by_path = simcxl.sweep(tmp_path / "spec.yaml", output=tmp_path / "api")
    by_mapping = simcxl.sweep(spec, jobs=2)
    expected = pd.read_csv(tmp_path / "cli" / "sweep.csv")
    pd.testing.assert_frame_equal(by_path.table, expected)
    pd.testing.assert_frame_equal(by_mapping.table, expected)
    assert by_path.failures == {} and list(expected["workload.rate"]) == [8, 16]


def test_a_bad_sweep_spec_raises_the_cli_message(tmp_path, capsys):
    spec = {"base": str(CONFIGS / "rdma.yaml"), "grid": {"workload.rat": [8]}}
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))
    expected = cli_error(capsys, "sweep", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "out"))
    with pytest.raises(ConfigError) as raised:
        simcxl.sweep(tmp_path / "spec.yaml")
    assert str(raised.value) == expected
    with pytest.raises(ConfigError, match=r"^sweep: grid\.workload\.rat: unknown key"):
        simcxl.sweep(spec)
    with pytest.raises(ConfigError, match=r"^sweep: grid: "):
        simcxl.sweep({"base": str(CONFIGS / "rdma.yaml"), "grid": [1]})
    with pytest.raises(SimcxlError, match="jobs must be >= 1"):
        simcxl.sweep({"base": str(CONFIGS / "rdma.yaml")}, jobs=0)


def test_goodput_is_the_search_the_cli_runs(tmp_path, capsys):
    args = ["--slo", "ttft_p99=500ms", "--slo", "tbt_p99=50ms", "--set", "workload.num_requests=200",
            "--tolerance", "0.1"]
    assert main(["goodput", "rdma", *args, "-o", str(tmp_path / "cli")]) == 0
    lines: list[str] = []
    found = simcxl.goodput("rdma", {"ttft_p99": "500ms", "tbt_p99": "50ms"}, SMALL, tolerance=0.1,
                           output=tmp_path / "api", progress=lines.append)
    expected = json.loads((tmp_path / "cli" / "goodput.json").read_text())
    assert {k: v for k, v in found.raw.items() if k != "config"} == {k: v for k, v in expected.items() if k != "config"}
    assert 0 < found.max_rate < found.lowest_missed and len(found.points) == len(lines) == len(expected["points"])
    assert lines == [line for line in capsys.readouterr().out.splitlines() if line.startswith("  workload.rate=")]
    with pytest.raises(ConfigError) as raised:
        simcxl.goodput("rdma", ["ttft_p99=fast"])
    assert str(raised.value) == cli_error(capsys, "goodput", "rdma", "--slo", "ttft_p99=fast")


def test_plan_is_the_plan_the_cli_makes(tmp_path):
    spec = {"base": str(CONFIGS / "rdma.yaml"), "grid": {"cluster.decode_nodes": [1, 4], "workload.num_requests": [200]},
            "slo": {"ttft_p99": "0.5s", "tbt_p99": "50ms"}, "target": 10, "tolerance": 0.2}
    (tmp_path / "plan.yaml").write_text(json.dumps(spec))
    assert main(["plan", str(tmp_path / "plan.yaml"), "-o", str(tmp_path / "cli")]) == 0
    planned = simcxl.plan(tmp_path / "plan.yaml")
    as_csv = pd.read_csv(io.StringIO(planned.table.to_csv(index=False)))  # read back as the file is
    pd.testing.assert_frame_equal(as_csv, pd.read_csv(tmp_path / "cli" / "plan.csv"))
    assert planned.cheapest == json.loads((tmp_path / "cli" / "plan.json").read_text())["cheapest_meeting_target"]
    assert planned.plot(tmp_path / "figures") and (tmp_path / "figures" / "plan.png").is_file()


def test_compare_has_one_row_per_scenario_of_its_summary(tmp_path):
    table = simcxl.compare(["rdma", CONFIGS / "kvdirect.yaml"], SMALL, output=tmp_path)
    alone = simcxl.run("kvdirect", SMALL)
    assert list(table.index) == ["rdma", "kvdirect"]
    assert table.loc["kvdirect", "ttft_s.mean"] == alone.summary["ttft_s"]["mean"]
    assert json.loads((tmp_path / "kvdirect" / "summary.json").read_text()) == json.loads(json.dumps(alone.summary))


def test_simcxl_sweep_is_the_function_even_after_its_subpackage_is_imported():
    from simcxl.sweep import runner  # noqa: F401 - what the CLI and the runner import

    import simcxl.sweep.spec  # noqa: F401
    assert callable(simcxl.sweep) and simcxl.sweep is simcxl.api.sweep
    assert set(simcxl.__all__) >= {"run", "compare", "sweep", "goodput", "plan", "Scenario", "__version__"}
