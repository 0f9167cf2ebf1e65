"""simcxl's price of DeepSeek-V3 FP8 on H200 TP 8 term by term (docs/notes/sglang_deepseek.md, issue #37):
``python -m experiments.sglang_deepseek_breakdown``. Prints the linear (compute / weight bytes), attention, fixed,
elementwise and all-reduce terms of a 1024-token prefill and a batch-4 decode step, fused and eager, and the fit
gap = a + b x tokens of the measured InferenceX TTFTs (1k1k and 8k1k at concurrency 4, minus a 20 ms frontend)."""

from __future__ import annotations

from pathlib import Path

from simcxl.config.loader import load_profile, read_yaml
from simcxl.config.schema import GPUSpec, ModelSpec
from simcxl.hardware.gpu import GPUCompute
from simcxl.hardware.model import LLM

ROOT = Path(__file__).resolve().parents[1]
TP = 8
MEASURED_TTFT_MS = {922: 157.8, 7373: 373.3}  # InferenceX config 81, concurrency 4; mean prompt 0.9 x {1k, 8k}
FRONTEND_MS = 20.0  # the fixed per-request path studied apart (issue #37 item 1)


def main() -> None:
    gpu = load_profile(ROOT / "configs/hardware/h200.yaml", "gpu", GPUSpec)
    llm = LLM(ModelSpec.model_validate(read_yaml(ROOT / "configs/models/deepseek-v3.yaml")["model"]))
    for fused in (True, False):
        c = GPUCompute(gpu, llm, TP, fused=fused)
        r = c.roofline
        print(f"fused={fused}: layer overhead {c.layer_overhead * 1e6:.1f} us")
        for tokens, ctx, sampled in ((1024, 0, 1), (4, 4 * 1400, 4)):
            if ctx == 0:
                aflops = tokens * (tokens + 1) / 2 * llm.attention_flops_per_pair(decode=False) * llm.layers / TP
                kvb = tokens * llm.kv_bytes_per_token / TP
                total = c.prefill_time([tokens])
            else:
                aflops = ctx * llm.attention_flops_per_pair(decode=True) * llm.layers / TP
                kvb = ctx * llm.kv_bytes_per_token / TP
                total = c.decode_step_time(tokens, ctx)
            flops = tokens * (llm.linear_flops_per_token - llm.lm_head_flops_per_token) + sampled * llm.lm_head_flops_per_token
            wbytes = llm.decode_weight_bytes(tokens) / TP
            per_gpu = llm.replicated_activation_bytes + llm.sharded_activation_bytes / TP
            print(f"  {tokens} tokens: linear compute {flops / TP / r.flops * 1e3:.2f} ms, weights {wbytes / 1e9:.2f} GB "
                  f"-> {wbytes / r.bandwidth * 1e3:.2f} ms; attention {max(aflops / r.attention_flops, kvb / r.kv_bandwidth) * 1e3:.3f} ms; "
                  f"fixed {llm.layers * c.layer_overhead * 1e3:.2f} ms; elementwise "
                  f"{llm.layers * tokens * per_gpu / r.elementwise_bandwidth * 1e3:.2f} ms; all-reduce "
                  f"{c.allreduce_time(tokens) * 1e3:.2f} ms; total {total * 1e3:.2f} ms")
        (t1, m1), (t8, m8) = sorted(MEASURED_TTFT_MS.items())
        g1 = m1 - FRONTEND_MS - c.prefill_time([t1]) * 1e3
        g8 = m8 - FRONTEND_MS - c.prefill_time([t8]) * 1e3
        b = (g8 - g1) / (t8 - t1)
        print(f"  gap: {g1:.1f} ms at {t1}, {g8:.1f} ms at {t8} tokens -> {g1 - b * t1:.1f} ms + {b * 1e3:.2f} us/token")


if __name__ == "__main__":
    main()
