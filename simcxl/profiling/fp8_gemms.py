"""FP8 GEMMs against BF16 ones on the GEMM shapes of a tensor-parallel Llama-3.1-70B forward pass:
``python -m simcxl.profiling.fp8_gemms -o DIR`` (a CUDA GPU with FP8 tensor cores: H100, H200).

FP8 serving (vLLM with ModelOpt FP8 checkpoints, SGLang with DeepSeek's FP8 weights) multiplies FP8
activations by FP8 weights with per-tensor scales and a BF16 output: ``torch._scaled_mm``, the same
cuBLASLt kernels vLLM's fallback path calls. Each row times one GEMM of ``m`` tokens through one
linear layer's shard (``n`` outputs, ``k`` inputs) at TP 4, in FP8 and in BF16, plus the activation
quantization that precedes each FP8 GEMM. From the FP8 rows, ``simcxl.profiling.fit`` takes the FP8
compute efficiency (large ``m``: FLOP-bound) and weight-streaming efficiency (small ``m``: bytes-bound).
Writes DIR/fp8_gemms.csv and DIR/fp8_gemms_info.json.
"""

from __future__ import annotations

from pathlib import Path

from simcxl.profiling import record
from simcxl.profiling.kernels import cuda_time, require_cuda

HIDDEN, INTERMEDIATE, HEADS, KV_HEADS, HEAD_DIM, TP = 8192, 28672, 64, 8, 128, 4
# Llama-3.1-70B's linear layers, one TP-4 shard each, as (name, out_features, in_features)
SHAPES = (("qkv", (HEADS + 2 * KV_HEADS) * HEAD_DIM // TP, HIDDEN), ("o", HIDDEN, HEADS * HEAD_DIM // TP),
          ("gate_up", 2 * INTERMEDIATE // TP, HIDDEN), ("down", HIDDEN, INTERMEDIATE // TP))
TOKENS = (1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
COLUMNS = "kind,layer,m,n,k,bytes,flops,seconds"


def measure_rows() -> list[str]:
    torch = require_cuda()
    fp8 = torch.float8_e4m3fn
    one = torch.ones((), device="cuda", dtype=torch.float32)
    rows = [COLUMNS]
    for layer, n, k in SHAPES:
        weight = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        weight_fp8 = weight.to(fp8)
        for m in TOKENS:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            x_fp8 = x.to(fp8)
            flops = 2 * m * n * k
            fp8_bytes = n * k + m * k + 2 * m * n
            bf16_bytes = 2 * (n * k + m * k + m * n)
            timings = {
                ("fp8", fp8_bytes): lambda: torch._scaled_mm(x_fp8, weight_fp8.t(), scale_a=one, scale_b=one,
                                                              out_dtype=torch.bfloat16, use_fast_accum=True),
                ("bf16", bf16_bytes): lambda: torch.matmul(x, weight.t()),
                ("quantize", 3 * m * k): lambda: (x * one).to(fp8),
            }
            for (kind, nbytes), fn in timings.items():
                seconds = cuda_time(fn)
                rows.append(f"{kind},{layer},{m},{n},{k},{nbytes},{flops if kind != 'quantize' else 0},{seconds!r}")
            del x, x_fp8
        del weight, weight_fp8
    return rows


def measure(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    return record.write(out_dir, "fp8_gemms", measure_rows(), model="Llama-3.1-70B linear layers, TP 4 shards",
                        tokens=list(TOKENS), scales="per-tensor, use_fast_accum=True")


if __name__ == "__main__":
    record.command_line(__doc__, measure)
