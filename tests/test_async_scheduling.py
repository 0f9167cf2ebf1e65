"""Async scheduling (serving.aggregated.async_scheduling): the next batch is formed when this one is launched, so a
prompt that arrives while the engine runs waits out one more iteration; an idle engine takes it at once."""

from __future__ import annotations

import numpy as np
import pytest

from simcxl.hardware.gpu import GPUCompute
from simcxl.hardware.model import LLM
from simcxl.metrics.results import dump_json
from simcxl.simulate import simulate

from .conftest import scenario
from .test_frontend_path import NO_PATH

ENGINE = "engine/vllm_llama-3.1-70b-fp8_h100.yaml"
TWO = ("workload={type: closed_loop, concurrency: 2, num_requests: 12, input_tokens: {dist: fixed, value: 1000}, "
       "output_tokens: {dist: uniform, min: 20, max: 60}}", *NO_PATH)


def run(*extra: str):
    return simulate(scenario(ENGINE, *TWO, *extra))


def test_a_prompt_arriving_while_a_decode_runs_waits_one_decode_step():
    sync = run("serving.aggregated.async_scheduling=false").report.requests
    lookahead = run().report.requests
    assert (sync.prefill_start_s == sync.arrival_s).all()  # scheduled at the iteration boundary it arrives at
    waited = (lookahead.prefill_start_s - lookahead.arrival_s).to_numpy()
    first = lookahead.arrival_s.to_numpy() == 0.0  # the first two find the engine idle
    assert (waited[first] == 0.0).all()
    loaded = scenario(ENGINE)
    compute = GPUCompute(loaded.scenario.gpu, LLM(loaded.scenario.model), 4, fused=True)
    one_decode = [compute.decode_step_time(1, context) for context in (1000, 1060)]  # the other client's step
    prefill = compute.forward_time(0, 0, [(1000, 0, True)])  # or the other client's new prompt was running
    later = waited[~first]
    decode_waits = (later >= one_decode[0] * (1 - 1e-9)) & (later <= one_decode[1] * (1 + 1e-9))
    assert (decode_waits | np.isclose(later, prefill, rtol=1e-9, atol=0)).all() and decode_waits.sum() >= len(later) / 2
    assert np.mean(lookahead.ttft_s[~first]) - np.mean(sync.ttft_s[~first]) == pytest.approx(np.mean(later), rel=0.5)


def test_one_client_alone_is_unchanged():
    alone = ("workload={type: closed_loop, concurrency: 1, num_requests: 4, input_tokens: {dist: fixed, value: 500}, "
             "output_tokens: {dist: fixed, value: 30}}",)
    on = simulate(scenario(ENGINE, *alone)).summary
    off = simulate(scenario(ENGINE, *alone, "serving.aggregated.async_scheduling=false")).summary
    assert dump_json(on["ttft_s"]) == dump_json(off["ttft_s"]) and dump_json(on["tbt_s"]) == dump_json(off["tbt_s"])
