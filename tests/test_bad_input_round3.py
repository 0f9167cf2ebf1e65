"""Hostile input, round 3 (#40 parts 2-5, #39's bad searches): each case exits 2 with one line naming the file,
the key (or option) and what was expected, or (--timeline-max-events) behaves as documented."""

from __future__ import annotations

import json
import os
import time

import pytest
import yaml

from simcxl.cli import main
from simcxl.config import loader
from simcxl.config.bundled import configs_root

from .conftest import ROOT

RDMA = str(ROOT / "configs/rdma.yaml")
LLAMA_8B = ROOT / "configs/models/hf/Llama-3.1-8B/config.json"


def bad_input(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("simcxl: error: ") and err.count("\n") == 1
    return err


# ------------------------------------------------------------------ YAML: depth, size, the C loader


def test_yaml_nested_100000_deep_is_bad_input_not_a_recursion_error(tmp_path, capsys):
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 100_000 + "]" * 100_000)
    err = bad_input(capsys, "validate", str(path))
    assert f"{path}:1: invalid YAML: exceeded maximum nesting depth" in err and "at most 64 levels" in err


def test_yaml_nested_past_our_bound_but_within_libyamls_names_the_bound_and_line(tmp_path, capsys):
    path = tmp_path / "d.yaml"
    path.write_text("name: x\nmodel: " + "[" * 65 + "]" * 65 + "\n")
    err = bad_input(capsys, "validate", str(path))
    assert f"{path}: invalid YAML: nested more than 64 levels deep" in err and "at line 2" in err
    path.write_text(f"include: {RDMA}\nmodel: " + "[" * 60 + "]" * 60 + "\n")  # within the bound: the schema answers
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: model: input should be a valid dictionary" in err and "levels deep" not in err


def test_a_deep_set_value_is_refused_without_echoing_it(capsys):
    err = bad_input(capsys, "validate", RDMA, "--set", "model=" + "[" * 5000 + "]" * 5000)
    assert "--set model: nested more than 64 levels deep" in err and len(err) < 300


def test_a_50_mb_yaml_is_refused_at_once_naming_its_size(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    line = "# " + "padding " * 6 + "\n"
    path.write_text("name: x\n" + line * (50 * 2**20 // len(line)))
    start = time.perf_counter()
    err = bad_input(capsys, "validate", str(path))
    assert time.perf_counter() - start < 5
    assert f"{path}: too large (50.0 MiB; at most 4 MiB" in err


def test_too_many_values_are_refused_before_building_them(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(loader, "MAX_YAML_NODES", 1000)
    path = tmp_path / "wide.yaml"
    path.write_text("name: x\nmodel: [" + ", ".join(["1"] * 2000) + "]\n")
    assert f"{path}: invalid YAML: more than 1,000 values (at line 2)" in bad_input(capsys, "validate", str(path))


def test_the_c_loader_is_used_and_reads_every_bundled_yaml_as_the_python_loader_does():
    assert issubclass(loader._StrictLoader, yaml.CSafeLoader)
    files = sorted(configs_root().rglob("*.yaml"))
    assert len(files) > 30
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert yaml.load(text, Loader=loader._StrictLoader) == yaml.load(text, Loader=loader._StrictPyLoader), path


@pytest.mark.parametrize("text", ["a: 1\na: 2\n", "a: {b: 1, b: 2}\n"])
def test_duplicate_keys_are_refused_by_the_c_loader_too(tmp_path, capsys, text):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    assert "invalid YAML: duplicate key" in bad_input(capsys, "validate", str(path))


# ------------------------------------------------------------------ file-system oddities, each named


def test_a_directory_is_named_as_a_directory(tmp_path, capsys):
    err = bad_input(capsys, "validate", str(tmp_path))
    assert f"{tmp_path}: a directory, not a regular file (expected a YAML file)" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_named_and_does_not_hang(tmp_path, capsys):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    assert f"{path}: a FIFO (named pipe), not a regular file" in bad_input(capsys, "validate", str(path))


def test_a_symlink_loop_and_a_broken_symlink_are_named(tmp_path, capsys):
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    err = bad_input(capsys, "validate", str(tmp_path / "a.yaml"))
    assert f"{tmp_path / 'a.yaml'}: a symlink loop" in err
    (tmp_path / "c.yaml").symlink_to(tmp_path / "gone.yaml")
    err = bad_input(capsys, "validate", str(tmp_path / "c.yaml"))
    assert "c.yaml: file not found (a broken symlink to" in err and "gone.yaml" in err


def test_permission_denied_is_named(tmp_path, capsys, monkeypatch):
    path = tmp_path / "s.yaml"
    path.write_text("name: x\n")
    import simcxl.errors

    monkeypatch.setattr(simcxl.errors.os, "access", lambda p, mode: False)  # as a user without read permission
    assert f"{path}: permission denied" in bad_input(capsys, "validate", str(path))


def test_an_include_that_is_a_directory_names_the_including_file(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "s.yaml"
    path.write_text("include: sub\nname: x\n")
    err = bad_input(capsys, "validate", str(path))
    assert f"{path}: include: a directory, not a regular file: {tmp_path / 'sub'}" in err


def test_a_config_json_that_is_a_directory_is_named(tmp_path, capsys):
    err = bad_input(capsys, "model", "from-hf", str(tmp_path))
    assert f"{tmp_path}: a directory, not a regular file (expected a Hugging Face config.json)" in err


# ------------------------------------------------------------------ config.json: the field named


def _hf(tmp_path, **changes) -> str:
    config = json.loads(LLAMA_8B.read_text())
    config.update(changes)
    path = tmp_path / "m" / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.parametrize("kv_heads, why", [(64, "is fewer"), (5, "is not a multiple of it")])
def test_more_kv_heads_than_heads_names_num_key_value_heads(tmp_path, capsys, kv_heads, why):
    path = _hf(tmp_path, num_key_value_heads=kv_heads)
    err = bad_input(capsys, "model", "from-hf", path)
    assert f"{path}: num_key_value_heads: {kv_heads} KV heads, but num_attention_heads (32) {why}" in err
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"include: {RDMA}\nmodel: {{hf_config: {path}}}\n")
    assert f"{path}: num_key_value_heads: {kv_heads} KV heads" in bad_input(capsys, "validate", str(scenario))


def test_1e30_layers_is_blamed_on_num_hidden_layers_not_on_the_gpu(tmp_path, capsys):
    path = _hf(tmp_path, num_hidden_layers=10**30)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"include: {RDMA}\nmodel: {{hf_config: {path}}}\n")
    err = bad_input(capsys, "validate", str(scenario))
    assert f"{path}: num_hidden_layers: 1,000,000,000,000,000,000,000,000,000,000 is not a plausible value " \
           "(at most 10,000)" in err and "hbm_capacity" not in err
    assert "num_hidden_layers: " in bad_input(capsys, "model", "from-hf", path)


def test_the_bundled_config_jsons_still_import(capsys):
    for path in sorted((ROOT / "configs/models/hf").glob("*/config.json")):
        assert main(["model", "from-hf", str(path)]) == 0, path
    capsys.readouterr()


def test_a_deeply_nested_config_json_is_bad_input(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert f"{path}: invalid JSON: nested too deep" in bad_input(capsys, "model", "from-hf", str(path))


# ------------------------------------------------------------------ --timeline-max-events


def test_timeline_max_events_alone_implies_timeline(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", RDMA, "--set", "workload.num_requests=20", "-o", str(out), "--timeline-max-events",
                 "50"]) == 0
    timeline = json.loads((out / "timeline.json").read_text())
    events = [e for e in timeline["traceEvents"] if e.get("ph") != "M"]
    assert 0 < len(events) <= 50
    assert "timeline: cut at 50 events" in capsys.readouterr().out
    plain = tmp_path / "plain"
    assert main(["run", RDMA, "--set", "workload.num_requests=20", "-o", str(plain), "-q"]) == 0
    assert not (plain / "timeline.json").exists()


# ------------------------------------------------------------------ goodput and plan searches (#39)


@pytest.mark.parametrize("tolerance", ["0", "1e-6", "nan", "inf", "-0.1"])
def test_a_tolerance_below_the_load_names_precision_exits_2_at_once(tmp_path, capsys, tolerance):
    start = time.perf_counter()
    err = bad_input(capsys, "goodput", RDMA, "--slo", "ttft_p99=0.5s", "--tolerance", tolerance,
                    "-o", str(tmp_path / "gp"))
    assert "expected a relative bracket width >= 0.0001" in err and f"--tolerance {float(tolerance)!r}" in err
    assert time.perf_counter() - start < 10 and not (tmp_path / "gp" / "points").exists()


def test_a_plan_tolerance_of_0_is_refused_naming_the_key(tmp_path, capsys):
    spec = tmp_path / "plan.yaml"
    spec.write_text(json.dumps({"base": RDMA, "grid": {"workload.num_requests": [100]},
                                "slo": {"ttft_p99": "0.5s"}, "target": 5, "tolerance": 0}))
    err = bad_input(capsys, "plan", str(spec), "-o", str(tmp_path / "out"))
    assert "plan.yaml" in err and "tolerance" in err and "0.0001" in err


def test_a_plan_point_that_cannot_run_is_a_failed_point_never_the_cheapest(tmp_path, capsys):
    """1 GB of HBM cannot hold Llama-3.1-8B: that point fails with its error, goodput null (standard JSON, no
    Infinity), not counted as meeting the target; the point that runs is the answer."""
    spec = tmp_path / "plan.yaml"
    spec.write_text(json.dumps({"base": RDMA, "grid": {"gpu.hbm_capacity": ["80GB", "1GB"],
                                                        "workload.num_requests": [200]},
                                "slo": {"ttft_p99": "0.5s", "tbt_p99": "50ms"}, "target": 5, "tolerance": 0.3}))
    out = tmp_path / "out"
    assert main(["plan", str(spec), "-o", str(out), "-j", "2"]) == 0
    captured = capsys.readouterr()
    text = (out / "plan.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    result = json.loads(text)
    ok, failed = result["points"]
    assert failed["goodput"] is None and failed["meets_target"] is False and failed["pareto"] is False
    assert "do not fit in the usable HBM" in failed["note"] and result["failed_points"] == [failed["point"]]
    assert ok["goodput"] > 5 and result["cheapest_meeting_target"]["point"] == ok["point"]
    assert f"point {failed['point']} could not run and is not counted" in captured.err


def test_plan_json_never_holds_infinity_when_the_slos_do_not_bind(tmp_path, capsys):
    """An SLO no load misses: steady state still bounds the search (a load counts only where the run keeps up
    with it, judged with up to 8x the requests when 20 are too few to tell), so the goodput is finite, and
    plan.json is standard JSON. (The lower-bound path, SLOs and steady state holding at every load tried, is in
    tests/test_steady_state.py.)"""
    spec = tmp_path / "plan.yaml"
    spec.write_text(json.dumps({"base": RDMA, "grid": {"workload.num_requests": [20]},
                                "slo": {"ttft_p99": "1000s"}, "target": 5, "tolerance": 0.5}))
    out = tmp_path / "out"
    assert main(["plan", str(spec), "-o", str(out), "-j", "4"]) == 0
    capsys.readouterr()
    text = (out / "plan.json").read_text()
    assert "Infinity" not in text
    (point,) = json.loads(text)["points"]
    assert 5 < point["goodput"] < 2**20 and point["meets_target"] and point["goodput_bound"] != "lower"


def test_a_symlink_loop_without_a_yaml_suffix_is_named_not_looked_up_as_a_bundled_name(tmp_path, capsys):
    (tmp_path / "x").symlink_to(tmp_path / "y")
    (tmp_path / "y").symlink_to(tmp_path / "x")
    assert f"{tmp_path / 'x'}: a symlink loop" in bad_input(capsys, "validate", str(tmp_path / "x"))


def test_sigterm_stops_a_goodput_search_as_ctrl_c_does(tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "gp"
    proc = subprocess.Popen([sys.executable, "-m", "simcxl.cli", "goodput", RDMA, "--slo", "ttft_p99=0.5s", "--set",
                             "workload.num_requests=20000", "-o", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "simcxl: interrupted; finished results were kept" in err
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_a_huge_wrong_value_is_named_not_reprinted(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(f"include: {RDMA}\nmodel: [" + ", ".join(map(str, range(50_000))) + "]\n")
    err = bad_input(capsys, "validate", str(path))
    assert f"{path}: model: input should be a valid dictionary" in err and "characters)" in err and len(err) < 400


def test_a_trace_path_that_is_a_directory_or_a_fifo_is_named_as_what_it_is(tmp_path, capsys):
    beluga = str(ROOT / "configs/beluga.yaml")
    err = bad_input(capsys, "validate", beluga, "--set", f"workload.path={tmp_path}")
    assert f"{tmp_path}: trace file: a directory, not a regular file" in err
    err = bad_input(capsys, "validate", beluga, "--set", f"workload.path={tmp_path / 'nope.jsonl'}")
    assert f"{tmp_path / 'nope.jsonl'}: trace file not found" in err
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.jsonl")
        err = bad_input(capsys, "validate", beluga, "--set", f"workload.path={tmp_path / 'pipe.jsonl'}")
        assert f"{tmp_path / 'pipe.jsonl'}: trace file: a FIFO (named pipe), not a regular file" in err
