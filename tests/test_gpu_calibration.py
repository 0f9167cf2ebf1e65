"""The committed GPU calibration: fitting its raw CSVs reproduces the profile and the validation bound."""

from __future__ import annotations

import shutil
import statistics

import pytest

from simcxl.cli import main
from simcxl.config.loader import load_profile, read_yaml
from simcxl.config.schema import GPUSpec, ModelSpec
from simcxl.profiling import fit
from simcxl.profiling.kernels import require_cuda

from .conftest import CONFIGS

CALIBRATED = [("h100_sxm", "h100"), ("h200", "h200")]


@pytest.mark.parametrize("profile, raw", CALIBRATED)
def test_profile_is_the_fit_of_its_committed_measurements(profile, raw):
    gpu = load_profile(CONFIGS / f"hardware/{profile}.yaml", "gpu", GPUSpec)
    fitted = fit.fit_efficiencies(fit.read_rows(CONFIGS / f"hardware/calibration/{raw}/kernels.csv"),
                                  gpu.peak_flops, gpu.hbm_bandwidth)
    assert gpu.calibrated
    for key in ("compute_efficiency", "attention_efficiency", "memory_efficiency", "attention_memory_efficiency",
                "elementwise_efficiency"):
        assert getattr(gpu, key) == pytest.approx(fitted[key], abs=6e-4), key
    assert gpu.layer_overhead == pytest.approx(fitted["layer_overhead"], abs=1e-7)
    calibration = CONFIGS / f"hardware/calibration/{raw}"
    assert gpu.fp8_compute_efficiency == pytest.approx(
        fit.fit_fp8(fit.read_rows(calibration / "fp8_gemms.csv"), gpu.fp8_peak_flops), abs=6e-3)
    fused = fit.fit_fused(fit.read_rows(calibration / "compiled_layer.csv"), gpu)
    assert gpu.fused_elementwise_efficiency == pytest.approx(fused["fused_elementwise_efficiency"], abs=6e-4)
    assert gpu.fused_layer_overhead == pytest.approx(fused["fused_layer_overhead"], abs=1e-7)


@pytest.mark.parametrize("profile, raw", CALIBRATED)
def test_full_model_predictions_meet_the_error_bounds(profile, raw):
    gpu = load_profile(CONFIGS / f"hardware/{profile}.yaml", "gpu", GPUSpec)
    model = ModelSpec.model_validate(read_yaml(CONFIGS / "models/llama-3.1-8b.yaml")["model"])
    rows = fit.validation_rows(gpu, model, fit.read_rows(CONFIGS / f"hardware/calibration/{raw}/validation.csv"))
    errors = [abs(r["error"]) for r in rows]
    assert len(rows) == 19
    assert statistics.median(errors) <= 0.10
    assert max(errors) <= 0.25


def test_datasheet_only_profile_is_marked_uncalibrated():
    assert not load_profile(CONFIGS / "hardware/a100_80gb.yaml", "gpu", GPUSpec).calibrated


def test_profiling_without_a_gpu_fails_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit, match="needs (PyTorch|a CUDA GPU)"):
        require_cuda()
    base = tmp_path / "gpu.yaml"
    base.write_text((CONFIGS / "hardware/a100_80gb.yaml").read_text())
    assert main(["profile-gpu", "-o", str(base)]) == 2
    assert "simcxl profile-gpu needs" in capsys.readouterr().err


def test_refit_from_csv_writes_a_valid_profile(tmp_path, capsys):
    out = tmp_path / "h100.yaml"
    raw = tmp_path / "raw"
    shutil.copytree(CONFIGS / "hardware/calibration/h100", raw)
    assert main(["profile-gpu", "-o", str(out), "--base", str(CONFIGS / "hardware/h100_sxm.yaml"),
                 "--from-csv", str(raw)]) == 0
    assert "Median absolute error" in capsys.readouterr().out
    assert load_profile(out, "gpu", GPUSpec) == load_profile(CONFIGS / "hardware/h100_sxm.yaml", "gpu", GPUSpec)
    assert "| decode | 128 | 1024 |" in (raw / "validation.md").read_text()


def test_bench_gpu_writes_the_latency_table(tmp_path):
    assert main(["bench", "gpu", "--hardware", "h100_sxm", "--model", "llama-3.1-8b", "-o", str(tmp_path)]) == 0
    lines = (tmp_path / "gpu.csv").read_text().splitlines()
    assert lines[0] == "phase,batch,context,seconds"
    assert len(lines) == 1 + 2 * 7 + 4 * 3
    prefill = {tuple(line.split(",")[:3]): float(line.split(",")[3]) for line in lines[1:]}
    assert prefill[("prefill", "1", "32768")] > 2 * prefill[("prefill", "1", "16384")]  # quadratic attention
    assert prefill[("decode", "128", "16384")] > prefill[("decode", "1", "16384")]


@pytest.mark.parametrize("profile, raw", CALIBRATED)
def test_fused_figures_describe_the_compiled_layers_they_were_fitted_from(profile, raw):
    gpu = load_profile(CONFIGS / f"hardware/{profile}.yaml", "gpu", GPUSpec)
    rows = fit.layer_check_rows(gpu, fit.read_rows(CONFIGS / f"hardware/calibration/{raw}/compiled_layer.csv"))
    fused = [abs(r["error"]) for r in rows if r["mode"] == "compiled"]
    assert len(fused) == 7 and max(fused) <= 0.08
    # the compiled layer is what the fusion saves: every measured layer runs faster than its eager twin
    eager = {(r["phase"], r["batch"], r["context"]): r["measured_s"] for r in rows if r["mode"] == "eager"}
    assert all(r["measured_s"] < eager[(r["phase"], r["batch"], r["context"])] for r in rows if r["mode"] == "compiled")
