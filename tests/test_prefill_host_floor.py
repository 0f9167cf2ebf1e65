"""An eagerly run prefill pass lasts at least its CPU dispatch (serving.prefill_host_floor); decode steps do not."""

from __future__ import annotations

from simcxl.hardware.gpu import GPUCompute

from .test_model_and_gpu import gpu, llm


def test_short_prefills_take_the_floor_and_long_ones_their_gpu_time():
    model, profile = llm("llama-3.1-8b"), gpu()
    plain, floored = GPUCompute(profile, model), GPUCompute(profile, model, prefill_host_floor=0.08)
    short, long = plain.prefill_time([16]), plain.prefill_time([32768])
    assert short < 0.08 < long
    assert floored.prefill_time([16]) == 0.08 and floored.prefill_time([32768]) == long
    assert floored.forward_time(0, 0, [(16, 0, True)]) == 0.08
    assert floored.forward_time(4, 4000, []) == plain.forward_time(4, 4000, []) < 0.08
    assert floored.decode_step_time(4, 4000) == plain.decode_step_time(4, 4000)
