"""The request's fixed path (issue #37 part 1): ``serving.frontend`` stages in and out, ``serving.step_cpu`` per
iteration; closed forms at light load, the bundled engine values, bad input."""

from __future__ import annotations

import pytest

from simcxl.cli import main
from simcxl.simulate import simulate

from .conftest import ROOT, scenario

ENGINE = "engine/vllm_llama-3.1-70b-fp8_h100.yaml"
STAGES = ("http_in", "tokenize", "tokenize_per_token", "ipc", "ipc_per_token", "detokenize", "stream_out")
NO_PATH = tuple(f"serving.frontend.{k}=0 s" for k in STAGES) + tuple(
    f"serving.step_cpu.{k}=0 s" for k in ("schedule", "prepare_inputs", "sample")) + ("serving.frontend_latency=0 s",)
PATH = ("serving.frontend.http_in=0.5 ms", "serving.frontend.tokenize=0.25 ms",
        "serving.frontend.tokenize_per_token=3 us", "serving.frontend.ipc=0.1 ms",
        "serving.frontend.ipc_per_token=0.05 us", "serving.frontend.detokenize=20 us",
        "serving.frontend.stream_out=0.3 ms")


def alone(n_in: int, *extra: str) -> list[str]:
    """Three requests of ``n_in`` prompt tokens, one client: each finds the engine idle."""
    return [f"workload={{type: closed_loop, concurrency: 1, num_requests: 3, input_tokens: {{dist: fixed, value: "
            f"{n_in}}}, output_tokens: {{dist: fixed, value: 20}}}}", *NO_PATH, *extra]


@pytest.mark.parametrize("n_in", [500, 2000, 8000])
def test_light_load_ttft_is_the_old_ttft_plus_every_stage_of_the_path(n_in):
    old = simulate(scenario(ENGINE, *alone(n_in))).report.requests.ttft_s.to_numpy()
    new = simulate(scenario(ENGINE, *alone(n_in, *PATH))).report.requests.ttft_s.to_numpy()
    path = 0.5e-3 + (0.25e-3 + 3e-6 * n_in) + (0.1e-3 + 0.05e-6 * n_in) + (0.1e-3 + 20e-6 + 0.3e-3)
    assert new - old == pytest.approx([path] * 3, rel=1e-9)
    # 8000 tokens: 0.5 + 24.25 + 0.5 + 0.42 = 25.67 ms
    if n_in == 8000:
        assert path == pytest.approx(25.67e-3, rel=1e-12)


def test_the_scalar_frontend_latency_adds_to_the_stages():
    both = simulate(scenario(ENGINE, *alone(1000, *PATH, "serving.frontend_latency=1 ms"))).report.requests
    stages = simulate(scenario(ENGINE, *alone(1000, *PATH))).report.requests
    assert (both.ttft_s - stages.ttft_s).to_numpy() == pytest.approx([2e-3] * 3, rel=1e-9)


def test_step_cpu_adds_to_every_iteration_like_iteration_overhead():
    cpu = ("serving.step_cpu.schedule=0.2 ms", "serving.step_cpu.prepare_inputs=0.3 ms", "serving.step_cpu.sample=0.5 ms")
    staged = simulate(scenario(ENGINE, *alone(2000, *cpu))).report.requests
    scalar = simulate(scenario(ENGINE, *alone(2000, "serving.iteration_overhead=1 ms"))).report.requests
    assert staged.ttft_s.to_numpy() == pytest.approx(scalar.ttft_s.to_numpy(), rel=1e-12)
    assert staged.e2e_s.to_numpy() == pytest.approx(scalar.e2e_s.to_numpy(), rel=1e-12)
    base = simulate(scenario(ENGINE, *alone(2000))).report.requests
    # 20 tokens: one prefill iteration and 19 decode iterations, 1 ms each
    assert (staged.e2e_s - base.e2e_s).to_numpy() == pytest.approx([20e-3] * 3, rel=1e-9)


def test_the_bundled_vllm_path_at_1k_tokens():
    """The H100-host values of configs/engine/vllm_*.yaml (validation/engine_path/h100_host): in, 0.11 ms HTTP +
    3.3 us x 1024 tokenizing + 0.07 ms + 0.075 us x 1024 IPC = 3.636 ms; out 0.07 + 0.006 + 0.11 = 0.186 ms;
    no step CPU between iterations: the recipe's async scheduling overlaps it with the GPU. A lone request finds the
    engine idle, so async scheduling adds no iteration to its wait."""
    loaded = scenario(ENGINE)
    serving = loaded.scenario.serving
    assert serving.frontend.entry(1024) == pytest.approx(3.636e-3, rel=1e-9)
    assert serving.frontend.exit == pytest.approx(0.186e-3, rel=1e-9)
    assert serving.step_cpu.total == 0 and serving.aggregated.async_scheduling
    without = simulate(scenario(ENGINE, *alone(1024))).report.requests.ttft_s.to_numpy()
    bundled = simulate(scenario(ENGINE, *alone(1024)[:1])).report.requests.ttft_s.to_numpy()
    assert bundled - without == pytest.approx([3.636e-3 + 0.186e-3] * 3, rel=1e-9)


@pytest.mark.parametrize("key", [f"frontend.{k}" for k in STAGES] + ["step_cpu.schedule", "step_cpu.prepare_inputs",
                                                                       "step_cpu.sample"])
def test_a_negative_stage_exits_2_naming_it(capsys, key):
    assert main(["validate", str(ROOT / "configs" / ENGINE), "--set", f"serving.{key}=-1 us"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("simcxl: error: ")
    assert f"serving.{key}" in err


def test_an_unknown_stage_exits_2(capsys):
    assert main(["validate", str(ROOT / "configs" / ENGINE), "--set", "serving.frontend.tokenise=1 us"]) == 2
    assert "serving.frontend.tokenise" in capsys.readouterr().err
