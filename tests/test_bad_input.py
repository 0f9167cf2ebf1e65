"""Hostile input: every case exits 2 with one line naming the file, the key path (or trace line) and what
was expected; nothing hangs, nothing already written is lost, and an internal error is not shown as bad
input."""

from __future__ import annotations

import gzip
import json
import os

import pytest

from simcxl.cli import main
from simcxl.sweep.executors import LocalExecutor
from simcxl.sweep.runner import point_dir, run_sweep
from simcxl.sweep.spec import load_sweep

from .conftest import ROOT

RDMA = str(ROOT / "configs/rdma.yaml")
SMALL = "workload.num_requests=20"


def bad_input(capsys, *argv: str) -> str:
    """Run the CLI, expect exit 2 with a one-line message and no traceback; return the message."""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("simcxl: error: ")
    return err


def trace_args(path, fmt: str, *extra: str) -> list[str]:
    options = "".join(f", {e}" for e in extra)
    return ["validate", RDMA, "--set", f"workload={{type: trace, format: {fmt}, path: {path}{options}}}"]


# ------------------------------------------------------------------ traces


@pytest.mark.parametrize("fmt, good", [
    ("mooncake", '{"timestamp": 0, "input_length": 10, "output_length": 5, "hash_ids": [1]}\n'),
    ("azure", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n"),
    ("burstgpt", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,ChatGPT,472,18,490,Conversation log\n"),
])
@pytest.mark.parametrize("compressed", [False, True])
def test_a_line_that_is_not_utf8_is_a_bad_row_with_its_line_number(tmp_path, capsys, fmt, good, compressed):
    data = good.encode() + b"\xff\xfe\x00 not text\n"
    path = tmp_path / ("t.gz" if compressed else "t.txt")
    path.write_bytes(gzip.compress(data) if compressed else data)
    err = bad_input(capsys, *trace_args(path, fmt))
    assert f"{path}:{good.count(chr(10)) + 1}: not UTF-8 text" in err
    assert main(trace_args(path, fmt, "skip_bad_rows: true")) == 0
    assert "1 bad trace rows skipped" in capsys.readouterr().out


def test_a_corrupt_gzip_trace_is_named(tmp_path, capsys):
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    assert f"{path}: not a readable gzip file" in bad_input(capsys, *trace_args(path, "mooncake"))


@pytest.mark.parametrize("stamp", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_mooncake_timestamp_is_rejected_and_counted(tmp_path, capsys, stamp):
    path = tmp_path / "t.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 10, "output_length": 5, "hash_ids": [1]}\n'
                    f'{{"timestamp": {stamp}, "input_length": 10, "output_length": 5, "hash_ids": [1]}}\n')
    assert f"{path}:2: timestamp must be a finite number of ms" in bad_input(capsys, *trace_args(path, "mooncake"))
    out_dir = tmp_path / "out"
    assert main(["run", RDMA, "-q", "-o", str(out_dir), "--set",
                 f"workload={{type: trace, format: mooncake, path: {path}, skip_bad_rows: true}}"]) == 0
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["workload"]["skipped_rows"] == 1 and summary["requests"]["completed"] == 1
    assert summary["sim"]["simulated_s"] < 60  # never runs on to the 24 h cap


def test_burstgpt_failed_requests_and_bad_timestamps_are_bad_rows(tmp_path, capsys):
    path = tmp_path / "b.csv"
    path.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                    "5,ChatGPT,472,18,490,Conversation log\n7,GPT-4,300,0,300,API log\n9,GPT-4,1,1,2\n"
                    "nan,GPT-4,10,10,20,API log\n")
    err = bad_input(capsys, *trace_args(path, "burstgpt"))
    assert f"{path}:3: Response tokens must be >= 1, got 0" in err
    assert main(trace_args(path, "burstgpt", "skip_bad_rows: true")) == 0
    assert "3 bad trace rows skipped" in capsys.readouterr().out
    path.write_text("Time,Request tokens\n1,2\n")
    assert f"{path}:1: expected a header with the columns Timestamp" in bad_input(capsys, *trace_args(path, "burstgpt"))


# ------------------------------------------------------------------ sizes a machine cannot hold


def test_more_requests_than_memory_holds_is_refused_before_allocating(capsys):
    err = bad_input(capsys, "validate", RDMA, "--set", "workload.num_requests=1000000000000")
    assert "workload.num_requests: 1,000,000,000,000 requests need about" in err and "at most" in err
    assert "valid integer" in bad_input(capsys, "validate", RDMA, "--set", "workload.num_requests=1e12")


@pytest.mark.parametrize("setting, key", [
    ("workload.input_tokens={dist: fixed, value: 1000000000000}", "workload.input_tokens"),
    ("workload.output_tokens={dist: uniform, min: 1, max: 1000000000000}", "workload.output_tokens"),
    ("workload.shared_prefix={groups: 2, tokens: 1000000000000}", "workload.shared_prefix.tokens"),
])
def test_an_impossible_length_fails_at_once_with_the_kv_room(capsys, setting, key):
    err = bad_input(capsys, "run", RDMA, "-q", "--set", setting)  # before: hung allocating block hashes
    assert f"{key}: up to 1,000,000,000,000 tokens, but one instance has KV room for" in err


def test_a_sample_interval_below_a_millisecond_is_refused(capsys):
    assert "run.sample_interval: " in bad_input(capsys, "validate", RDMA, "--set", "run.sample_interval=1 ps")


@pytest.mark.parametrize("setting, key", [("workload.rate=.inf", "workload.rate"),
                                          ("workload.rate=.nan", "workload.rate"),
                                          ("gpu.compute_efficiency=.nan", "gpu.compute_efficiency")])
def test_infinite_or_nan_numbers_are_refused(capsys, setting, key):
    assert f"{key}: input should be a finite number" in bad_input(capsys, "validate", RDMA, "--set", setting)


# ------------------------------------------------------------------ config structure


def test_a_scenario_name_cannot_escape_the_results_folder(capsys):
    for name in ("../..", "a/b", ".."):
        assert "name: expected a plain folder name" in bad_input(capsys, "validate", RDMA, "--set", f"name={name}")


def test_include_given_as_one_string_is_read(write_yaml, capsys):
    path = write_yaml("configs/s.yaml", f"include: {RDMA}\nname: one_include\n")
    assert main(["validate", str(path), "--set", SMALL]) == 0
    assert "one_include" in capsys.readouterr().out


def test_a_misspelt_sweep_key_fails_at_load_naming_it(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"base: {RDMA}\ngrid:\n  workload.rte: [1, 2]\n")
    err = bad_input(capsys, "sweep", str(spec), "-o", str(tmp_path / "out"))
    assert f"{spec}: grid.workload.rte: unknown key 'rte' in workload" in err
    assert not (tmp_path / "out").exists()
    spec.write_text(f"base: {RDMA}\npoints:\n  - {{cluster.prefill_nodes.x: 1}}\n")
    assert "points[0].cluster.prefill_nodes.x: cluster.prefill_nodes is a value" in bad_input(
        capsys, "sweep", str(spec), "-o", str(tmp_path / "out"))


# ------------------------------------------------------------------ output paths and result files


def test_an_output_path_that_is_a_file_or_under_one_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    for out in (blocker, blocker / "sub"):
        err = bad_input(capsys, "run", RDMA, "-q", "--set", SMALL, "-o", str(out))
        assert "cannot write results there" in err
    assert blocker.read_text() == "keep me"


def test_a_read_only_filesystem_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import errno
    import tempfile

    def read_only(*_args, **_kwargs):  # what the OS answers on a read-only mount (also as root)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    err = bad_input(capsys, "run", RDMA, "-q", "--set", SMALL, "-o", str(tmp_path / "run"))
    assert f"{tmp_path / 'run'}: cannot write results there: Read-only file system" in err


def test_plot_names_a_corrupt_summary(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", RDMA, "-q", "--set", SMALL, "-o", str(run)]) == 0
    (run / "summary.json").write_text("{not json")
    err = bad_input(capsys, "plot", str(run), "-o", str(tmp_path / "figs"))
    assert f"{run / 'summary.json'}: cannot read it as a simcxl result (JSONDecodeError" in err
    (run / "summary.json").write_text("[]")
    assert "expected a JSON object" in bad_input(capsys, "plot", str(run), "-o", str(tmp_path / "figs"))


def test_bench_gpu_rejects_a_tensor_parallel_of_zero(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "gpu", "--hardware", "h100_sxm", "--model", "llama-3.1-8b", "--tensor-parallel", "0",
              "-o", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--tensor-parallel: expected a whole number >= 1, got 0" in err and "Traceback" not in err


def test_an_internal_error_exits_1_and_says_where_the_traceback_is(monkeypatch, capsys):
    import simcxl.simulate

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(simcxl.simulate, "simulate", broken)
    assert main(["run", RDMA, "-q", "--set", SMALL]) == 1
    err = capsys.readouterr().err
    assert err.startswith("simcxl: internal error (a bug in simcxl, not in your input): ZeroDivisionError: a bug")
    report = err.split("the full traceback is in ")[1].split(" (or rerun")[0]
    assert "Traceback" not in err and "ZeroDivisionError: a bug" in open(report).read()
    os.unlink(report)
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "run", RDMA, "-q", "--set", SMALL])


# ------------------------------------------------------------------ a sweep cut off inside a point


def test_a_sweep_cut_off_inside_a_point_reruns_that_point_only(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"base: {RDMA}\ngrid:\n  workload.rate: [8, 16, 24]\npoints:\n  - {{workload.num_requests: 60}}\n")
    sweep = load_sweep(spec)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert run_sweep(sweep, whole, LocalExecutor(1)) == {}
    assert run_sweep(sweep, cut, LocalExecutor(1)) == {}
    middle = point_dir(cut, sweep.points[1])
    kept = point_dir(cut, sweep.points[0]) / "summary.json"
    before = kept.stat().st_mtime_ns
    (middle / "summary.json").unlink()                       # killed after requests.csv, before summary.json
    (middle / ".summary.json.x.tmp").write_text("{half")       # and mid-write of the next file
    (cut / "sweep.csv").unlink()
    done = []
    assert run_sweep(sweep, cut, LocalExecutor(1), lambda finished, total: done.append(finished)) == {}
    assert done == [3]                                          # only the cut point ran again
    assert kept.stat().st_mtime_ns == before
    assert (cut / "sweep.csv").read_bytes() == (whole / "sweep.csv").read_bytes()


def test_an_interrupted_run_keeps_the_requests_finished_so_far(tmp_path, monkeypatch, capsys):
    """Ctrl-C in the middle of ``simcxl run``: the requests finished by then are written, the summary says the
    run was interrupted, and a sweep does not take the folder for a finished run."""
    import pandas as pd

    from simcxl.metrics.request_log import RequestLog
    from simcxl.sweep.runner import finished

    record, recorded = RequestLog.record, []

    def record_then_interrupt(self, request):
        record(self, request)
        recorded.append(request.id)
        if len(recorded) == 50:
            raise KeyboardInterrupt

    monkeypatch.setattr(RequestLog, "record", record_then_interrupt)
    out, overrides = tmp_path / "run", ["workload.num_requests=200"]
    assert main(["run", RDMA, "-q", "--set", overrides[0], "-o", str(out)]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "the 50 requests finished by then are in" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sim"]["interrupted"] is True
    assert summary["requests"]["completed"] == 50
    assert summary["requests"]["unfinished"] == 200 - 50
    requests = pd.read_csv(out / "requests.csv")
    assert len(requests) == 200 and requests.finish_s.notna().sum() == 50
    assert not finished(out, RDMA, overrides)
