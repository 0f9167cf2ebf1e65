"""`pip install .` (a wheel, not an editable install) carries every package and the bundled configs."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

from .conftest import ROOT


def test_pyproject_lists_every_package():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "simcxl").rglob("__init__.py")}
    assert listed == on_disk | {"simcxl.bundled.configs", "simcxl.bundled.workloads"}


def test_an_installed_wheel_runs_a_bundled_scenario_by_name(tmp_path):
    wheel, target = tmp_path / "wheel", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "-w", str(wheel), str(ROOT)],
                   check=True, capture_output=True, cwd=tmp_path)
    subprocess.run(pip + ["install", "--no-deps", "--target", str(target), *map(str, wheel.glob("*.whl"))],
                   check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-m", "simcxl.cli", "run", "beluga", "-q", "-o", "out",
                          "--set", "workload.first=50"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out/summary.json").is_file()  # beluga reads ../workloads/: the traces are shipped too
    assert (target / "simcxl/bundled/configs/models/hf/Llama-3.1-8B/config.json").is_file()
