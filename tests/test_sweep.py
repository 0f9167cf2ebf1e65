"""Sweeps: grid expansion, resumability after an interrupt, failures reported, executors agree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simcxl.cli import main
from simcxl.sweep.executors import LocalExecutor
from simcxl.sweep.runner import run_sweep
from simcxl.sweep.spec import load_sweep

from .conftest import ROOT

SPEC = """base: {base}
grid:
  workload.rate: [8, 16, 24, 32]
  kv_manager.type: [rdma, rdma_pull]
points:
  - {{workload.num_requests: {n}}}
"""


def write_spec(tmp_path: Path, n: int = 300) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(base=ROOT / "configs/rdma.yaml", n=n))
    return path


def test_grid_expands_in_a_stable_order_with_stable_ids(tmp_path):
    sweep = load_sweep(write_spec(tmp_path))
    assert len(sweep.points) == 8
    assert [p.overrides["workload.rate"] for p in sweep.points[:3]] == [8, 8, 16]
    assert sweep.points[1].set_args() == ["workload.num_requests=300", "workload.rate=8", "kv_manager.type=rdma_pull"]
    assert [p.id for p in load_sweep(write_spec(tmp_path)).points] == [p.id for p in sweep.points]
    assert sweep.keys == ["workload.num_requests", "workload.rate", "kv_manager.type"]


def test_interrupted_sweep_resumes_to_the_same_csv(tmp_path):
    # 16 short points: an interrupt after the first two leaves most of them unrun however fast the machine
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(base=ROOT / "configs/rdma.yaml", n=800).replace("grid:\n", "grid:\n  seed: [1, 2]\n"))
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    command = [sys.executable, "-m", "simcxl.cli", "sweep", str(spec), "-j", "2", "-o"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command + [str(broken)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 120
    while len(list(broken.glob("points/*/summary.json"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C does: the whole process group, workers included
    _, err = proc.communicate(timeout=120)
    finished = len(list(broken.glob("points/*/summary.json")))
    assert proc.returncode == 130, err.decode()
    assert 2 <= finished < 16
    assert b"Traceback" not in err
    assert (broken / "sweep.csv").read_text().count("\n") == 1 + finished  # what finished is in the table
    assert subprocess.run(command + [str(broken)], env=env, capture_output=True).returncode == 0
    assert subprocess.run(command + [str(whole)], env=env, capture_output=True).returncode == 0
    assert (broken / "sweep.csv").read_bytes() == (whole / "sweep.csv").read_bytes()
    assert (whole / "sweep.csv").read_text().count("\n") == 17


def test_failed_points_are_listed_and_the_rest_kept(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"base: {ROOT / 'configs/rdma.yaml'}\ngrid:\n  workload.num_requests: [50, 0, 60]\n")
    assert main(["sweep", str(spec), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "point 0001-" in err and "greater than 0" in err
    rows = (tmp_path / "out/sweep.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith("0000-") and rows[2].startswith("0002-")
    assert list((tmp_path / "out/points").glob("0001-*/error.txt"))


def test_bad_sweep_spec_gives_a_clear_error(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("base: nope.yaml\n")
    assert main(["sweep", str(spec), "-o", str(tmp_path / "out")]) == 2
    assert "spec.yaml: base: file not found" in capsys.readouterr().err
    spec.write_text(f"base: {ROOT / 'configs/rdma.yaml'}\ngrid: {{workload.rate: []}}\n")
    assert main(["sweep", str(spec), "-o", str(tmp_path / "out")]) == 2
    assert "grid.workload.rate: expected a non-empty list" in capsys.readouterr().err


def test_ray_executor_gives_the_identical_csv(tmp_path):
    pytest.importorskip("ray")
    from simcxl.sweep.executors import RayExecutor

    sweep = load_sweep(write_spec(tmp_path, n=200))
    assert run_sweep(sweep, tmp_path / "local", LocalExecutor(2)) == {}
    ray = RayExecutor()
    try:
        assert run_sweep(sweep, tmp_path / "ray", ray) == {}
    finally:
        ray.ray.shutdown()
    assert (tmp_path / "ray/sweep.csv").read_bytes() == (tmp_path / "local/sweep.csv").read_bytes()
