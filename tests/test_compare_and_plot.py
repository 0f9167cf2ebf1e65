"""simcxl compare and simcxl plot produce the tables and non-empty figures they promise."""

from __future__ import annotations

from pathlib import Path

from simcxl.cli import main
from simcxl.sweep.executors import LocalExecutor
from simcxl.sweep.runner import run_sweep
from simcxl.sweep.spec import load_sweep

from .conftest import ROOT


def test_compare_shows_ratios_and_writes_csv(tmp_path, capsys):
    assert main(["compare", "configs/tract_rdma.yaml", "configs/tract.yaml", "--set", "workload.num_requests=200",
                 "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ratios vs tract_rdma" in out and "x)" in out
    lines = (tmp_path / "compare.csv").read_text().splitlines()
    assert lines[0] == "metric,tract_rdma,tract"
    assert lines[1].startswith("TTFT mean (ms),")
    assert (tmp_path / "tract/summary.json").is_file() and (tmp_path / "tract_rdma/requests.csv").is_file()


def test_plot_from_a_sweep_and_from_runs(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"base: {ROOT / 'configs/rdma.yaml'}\n"
                    "grid: {workload.rate: [8, 16], kv_manager.type: [rdma, rdma_pull]}\n"
                    "points: [{workload.num_requests: 150}]\n")
    run_sweep(load_sweep(spec), tmp_path / "sweep", LocalExecutor(1))
    runs = [tmp_path / "sweep/points" / p for p in sorted(p.name for p in (tmp_path / "sweep/points").iterdir())[:2]]
    assert main(["plot", str(tmp_path / "sweep"), *map(str, runs), "-o", str(tmp_path / "fig")]) == 0
    for name in ("sweep", "ttft_cdf", "ttft_breakdown", "utilization", "utilization_over_time"):
        for suffix in (".png", ".pdf"):
            assert (tmp_path / "fig" / f"{name}{suffix}").stat().st_size > 5_000, name
    assert main(["plot", str(tmp_path), "-o", str(tmp_path / "fig")]) == 2
    assert "neither a sweep folder" in capsys.readouterr().err


def test_plot_of_a_sweep_needs_a_numeric_key(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"base: {ROOT / 'configs/rdma.yaml'}\ngrid: {{kv_manager.type: [rdma, rdma_pull]}}\n"
                    "points: [{workload.num_requests: 50}]\n")
    run_sweep(load_sweep(spec), tmp_path / "sweep", LocalExecutor(1))
    assert main(["plot", str(tmp_path / "sweep"), "-o", str(tmp_path / "fig")]) == 2
    assert "no numeric swept key" in capsys.readouterr().err
    assert not Path(tmp_path / "fig/sweep.png").exists()
