"""One Llama-3.1-70B layer (a TP-4 shard, FP8 GEMMs) executed eagerly and as vLLM v1 executes it:
``python -m simcxl.profiling.compiled_layer -o DIR`` (a CUDA GPU with FP8 tensor cores: H100, H200).

vLLM v1 and SGLang compile the model with ``torch.compile``: Inductor fuses each run of elementwise ops
(residual add + RMSNorm + FP8 quantization, RoPE, SiLU(gate) x up + quantization) into one kernel, and
decode batches replay from CUDA graphs. The kernel calibration (``simcxl.profiling.kernels``) times the
same ops unfused, as an eager engine runs them. Every row here is replayed from a CUDA graph, in mode
``eager`` (unfused PyTorch ops) or ``compiled`` (the same function through ``torch.compile``):

- ``elementwise`` rows: a layer's norms, residual adds, RoPE, SwiGLU and the FP8 quantization before each
  GEMM, on ``m`` tokens. ``simcxl.profiling.fit`` takes the ``compiled_*`` profile figures from them.
- ``layer`` rows: the whole layer (FP8 GEMMs, attention, the elementwise ops; no all-reduce, which the
  all-reduce table prices) for a prefill of one ``m``-token prompt or a decode step of ``batch``
  sequences over ``context`` cached tokens each: a check of the per-layer prediction
  (``docs/gpu_validation.md``), not a fit. ``LAYERS`` copies of the weights run in sequence so that
  no layer's weights sit in L2 from the previous replay.

Writes DIR/compiled_layer.csv and DIR/compiled_layer_info.json.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

from simcxl.profiling import record
from simcxl.profiling.kernels import graph_time, require_cuda
from simcxl.profiling.validate import rope

HIDDEN, INTERMEDIATE, HEADS, KV_HEADS, HEAD_DIM, TP = 8192, 28672, 64, 8, 128, 4
Q_HEADS, KV_SHARD, INTER_SHARD = HEADS // TP, KV_HEADS // TP, INTERMEDIATE // TP
QKV_OUT = (Q_HEADS + 2 * KV_SHARD) * HEAD_DIM
LAYERS = 4
ELEMENTWISE_TOKENS = (1, 16, 256, 1024, 4096, 8192)
PREFILL_TOKENS = (1024, 2048, 8192)
DECODE_POINTS = ((1, 1024), (8, 1024), (32, 2048), (64, 2048))
COLUMNS = "kind,mode,phase,m,batch,context,nominal_bytes,seconds"
FP8_MAX = 448.0


def nominal_elementwise_bytes(tokens: int) -> int:
    """The unfused traffic the simulator counts for these ops on one TP shard (``LLM``'s activation bytes):
    2 RMSNorms and 2 residual adds over the full hidden state on every GPU, RoPE and SwiGLU on the shard."""
    return 2 * tokens * (10 * HIDDEN + 2 * (Q_HEADS + KV_SHARD) * HEAD_DIM + 3 * INTER_SHARD)


class Shard:
    """The weights and ops of one TP-4 shard of a Llama-3.1-70B layer, FP8 weights with per-tensor scales."""

    def __init__(self, torch):
        self.torch = torch
        fp8 = torch.float8_e4m3fn

        def weight(n, k):
            return (torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02).to(fp8)

        self.layers = [dict(qkv=weight(QKV_OUT, HIDDEN), o=weight(HIDDEN, Q_HEADS * HEAD_DIM),
                            gate_up=weight(2 * INTER_SHARD, HIDDEN), down=weight(HIDDEN, INTER_SHARD))
                       for _ in range(LAYERS)]
        self.norm = torch.ones(HIDDEN, device="cuda", dtype=torch.bfloat16)
        self.scale = torch.ones((), device="cuda", dtype=torch.float32)

    def quantize(self, t):
        return (t.float() / self.scale).clamp(-FP8_MAX, FP8_MAX).to(self.torch.float8_e4m3fn)

    def matmul(self, t, w):
        return self.torch._scaled_mm(self.quantize(t), w.t(), scale_a=self.scale, scale_b=self.scale,
                                     out_dtype=self.torch.bfloat16)

    def elementwise(self, x, residual, qkv, attn, o_out, gate_up, cos, sin):
        """The ops between a layer's GEMMs, in the order a layer runs them: ``x`` is the previous layer's
        output, ``attn`` the attention output, ``o_out`` the O projection's, ``gate_up`` the MLP's first."""
        F = self.torch.nn.functional
        residual = x + residual
        h = self.quantize(F.rms_norm(residual, (HIDDEN,), self.norm))
        q, k, _ = qkv.split([Q_HEADS * HEAD_DIM, KV_SHARD * HEAD_DIM, KV_SHARD * HEAD_DIM], -1)
        q = rope(self.torch, q.view(-1, Q_HEADS, HEAD_DIM), cos, sin)
        k = rope(self.torch, k.view(-1, KV_SHARD, HEAD_DIM), cos, sin)
        a = self.quantize(attn)
        residual = o_out + residual
        h2 = self.quantize(F.rms_norm(residual, (HIDDEN,), self.norm))
        gate, up = gate_up.chunk(2, dim=-1)
        act = self.quantize(F.silu(gate) * up)
        return h, q, k, a, h2, act, residual

    def layer(self, x, residual, cos, sin, attend):
        """Every layer of the stack on ``x`` [tokens, hidden]; ``attend(layer_index, q, k, v)`` attends."""
        F = self.torch.nn.functional
        for index, w in enumerate(self.layers):
            residual = x + residual
            qkv = self.matmul(F.rms_norm(residual, (HIDDEN,), self.norm), w["qkv"])
            q, k, v = qkv.split([Q_HEADS * HEAD_DIM, KV_SHARD * HEAD_DIM, KV_SHARD * HEAD_DIM], -1)
            q = rope(self.torch, q.view(-1, Q_HEADS, HEAD_DIM), cos, sin)
            k = rope(self.torch, k.view(-1, KV_SHARD, HEAD_DIM), cos, sin)
            out = attend(index, q, k, v.view(-1, KV_SHARD, HEAD_DIM))
            residual = self.matmul(out, w["o"]) + residual
            gate, up = self.matmul(F.rms_norm(residual, (HIDDEN,), self.norm), w["gate_up"]).chunk(2, dim=-1)
            x = self.matmul(F.silu(gate) * up, w["down"])
        return x, residual


def _tables(torch, tokens):
    cos = torch.randn(tokens, 1, HEAD_DIM // 2, device="cuda", dtype=torch.bfloat16)
    return cos, torch.randn_like(cos)


def _modes(torch, fn):
    return (("eager", fn), ("compiled", torch.compile(fn, dynamic=False, fullgraph=True)))


def elementwise_rows(torch, shard, emit) -> None:
    for m in ELEMENTWISE_TOKENS:
        bf16 = lambda *shape: torch.randn(*shape, device="cuda", dtype=torch.bfloat16)  # noqa: E731
        args = (bf16(m, HIDDEN), bf16(m, HIDDEN), bf16(m, QKV_OUT), bf16(m, Q_HEADS * HEAD_DIM), bf16(m, HIDDEN),
                bf16(m, 2 * INTER_SHARD), *_tables(torch, m))
        for mode, fn in _modes(torch, shard.elementwise):
            seconds = _timed(lambda: graph_time(lambda: fn(*args)), f"elementwise {mode} m={m}")
            emit(f"elementwise,{mode},,{m},,,{nominal_elementwise_bytes(m)},{seconds!r}")


def layer_rows(torch, shard, emit) -> None:
    F = torch.nn.functional
    for m in PREFILL_TOKENS:
        def causal(index, q, k, v):
            out = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None],
                                                 v.transpose(0, 1)[None], is_causal=True, enable_gqa=True)
            return out[0].transpose(0, 1).reshape(-1, Q_HEADS * HEAD_DIM)

        x, residual = (torch.randn(m, HIDDEN, device="cuda", dtype=torch.bfloat16) for _ in range(2))
        cos, sin = _tables(torch, m)
        for mode, fn in _modes(torch, lambda x, residual, cos, sin: shard.layer(x, residual, cos, sin, causal)):
            seconds = _timed(lambda: graph_time(lambda: fn(x, residual, cos, sin), reps=5), f"prefill {mode} m={m}")
            emit(f"layer,{mode},prefill,{m},1,0,0,{seconds / LAYERS!r}")
        torch.cuda.empty_cache()
    for batch, context in DECODE_POINTS:
        caches = [tuple(torch.randn(batch, KV_SHARD, context, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
                        for _ in range(2)) for _ in range(LAYERS)]

        def cached(index, q, k, v, caches=caches):
            k_cache, v_cache = caches[index]
            k_cache[:, :, -1:].copy_(k.view(batch, KV_SHARD, 1, HEAD_DIM))
            v_cache[:, :, -1:].copy_(v.view(batch, KV_SHARD, 1, HEAD_DIM))
            out = F.scaled_dot_product_attention(q.view(batch, Q_HEADS, 1, HEAD_DIM), k_cache, v_cache,
                                                 enable_gqa=True)
            return out.reshape(batch, Q_HEADS * HEAD_DIM)

        x, residual = (torch.randn(batch, HIDDEN, device="cuda", dtype=torch.bfloat16) for _ in range(2))
        cos, sin = _tables(torch, batch)
        for mode, fn in _modes(torch, lambda x, residual, cos, sin: shard.layer(x, residual, cos, sin, cached)):
            seconds = _timed(lambda: graph_time(lambda: fn(x, residual, cos, sin), reps=20),
                             f"decode {mode} b={batch} c={context}")
            emit(f"layer,{mode},decode,{batch},{batch},{context},0,{seconds / LAYERS!r}")
        del caches
        torch.cuda.empty_cache()


def _timed(measure, what: str) -> float:
    """One measurement; a failure is reported on stderr and recorded as NaN so the others still run."""
    start = time.perf_counter()
    try:
        seconds = measure()
    except Exception:  # a kernel or compiler failure on one shape must not lose the rest of the run
        print(f"{what}: failed\n{traceback.format_exc()}", file=sys.stderr)
        return float("nan")
    print(f"{what}: {seconds * 1e6:.1f} us ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return seconds


def measure(out_dir: Path) -> dict:
    torch = require_cuda()
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = 64
    out_dir.mkdir(parents=True, exist_ok=True)
    shard = Shard(torch)
    rows = [COLUMNS]

    def emit(row: str) -> None:
        """Keep every finished row on disk, so a run cut short by a time limit still leaves them."""
        rows.append(row)
        (out_dir / "compiled_layer.csv").write_text("\n".join(rows) + "\n")

    with torch.inference_mode():
        elementwise_rows(torch, shard, emit)
        layer_rows(torch, shard, emit)
    return record.write(out_dir, "compiled_layer", rows, model="Llama-3.1-70B layer, TP 4 shard, FP8 GEMMs",
                        layers_per_graph=LAYERS, kv_dtype="bf16", compiler="torch.compile(dynamic=False)")


if __name__ == "__main__":
    record.command_line(__doc__, measure)
