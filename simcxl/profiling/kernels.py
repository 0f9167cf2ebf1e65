"""Microbenchmarks of the kernels an LLM forward pass is made of, timed with CUDA events.

Run on a CUDA GPU by ``simcxl profile-gpu`` (or ``python -m simcxl.profiling.kernels``). Every row
is (kind, m, n, k, batch, context, bytes, flops, seconds): GEMMs of the shapes prefill and decode
produce, causal prefill attention, decode attention over a KV cache, the per-layer elementwise ops,
HBM copies, pinned host<->device copies, and kernel launch overhead. Only PyTorch is needed here.
"""

from __future__ import annotations

import statistics
from typing import Callable

from simcxl.profiling import record

COLUMNS = ("kind", "m", "n", "k", "batch", "context", "bytes", "flops", "seconds")

# Llama-3.1-8B's linear layers as (out_features, in_features): fused QKV, O, fused gate+up, down, LM head.
LINEAR_SHAPES = ((6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336), (128256, 4096))
GEMM_TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 8192)
PREFILL_LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)
DECODE_BATCHES = (1, 8, 32, 128)
DECODE_CONTEXTS = (1024, 4096, 16384)
HEADS, KV_HEADS, HEAD_DIM, HIDDEN, INTERMEDIATE = 32, 8, 128, 4096, 14336


def require_cuda():
    """The torch module, or a clear error when PyTorch or a CUDA GPU is missing."""
    try:
        import torch
    except ImportError:
        raise SystemExit("simcxl profile-gpu needs PyTorch: pip install 'simcxl[profile]' (and a CUDA GPU)") from None
    if not torch.cuda.is_available():
        raise SystemExit("simcxl profile-gpu needs a CUDA GPU; torch.cuda.is_available() is False on this machine")
    return torch


def cuda_time(fn: Callable[[], object], reps: int = 20, rounds: int = 5, warmup: int = 3) -> float:
    """Median over ``rounds`` of the mean time of ``reps`` back-to-back calls, in seconds."""
    import torch

    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) / 1e3 / reps)
    return statistics.median(samples)


def graph_time(fn: Callable[[], object], reps: int = 50) -> float:
    """Time of ``fn`` replayed from a captured CUDA graph (no launch gaps), in seconds."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return cuda_time(graph.replay, reps=reps)


def _row(kind, m=0, n=0, k=0, batch=0, context=0, nbytes=0.0, flops=0.0, seconds=0.0) -> dict:
    return dict(kind=kind, m=m, n=n, k=k, batch=batch, context=context, bytes=nbytes, flops=flops, seconds=seconds)


def gemms(torch) -> list[dict]:
    """x[m, k] @ W[n, k]^T in bf16; enough weight copies are cycled that no run hits in L2."""
    rows = []
    for n, k in LINEAR_SHAPES:
        copies = max(2, int(512e6 // (n * k * 2)))
        weights = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
        for m in GEMM_TOKENS:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            state = {"i": 0}

            def run():
                state["i"] = (state["i"] + 1) % copies
                return torch.nn.functional.linear(x, weights[state["i"]])

            seconds = cuda_time(run, reps=copies * 4)
            rows.append(_row("gemm", m, n, k, nbytes=2.0 * (m * k + n * k + m * n), flops=2.0 * m * n * k,
                             seconds=seconds))
        del weights
    return rows


def prefill_attention(torch) -> list[dict]:
    """Causal SDPA of one prompt, GQA 32 query heads over 8 KV heads (FlashAttention kernel)."""
    rows = []
    for n in PREFILL_LENGTHS:
        q = torch.randn(1, HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
        kv = [torch.randn(1, KV_HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16) for _ in range(2)]
        seconds = cuda_time(lambda: torch.nn.functional.scaled_dot_product_attention(
            q, kv[0], kv[1], is_causal=True, enable_gqa=True), reps=5)
        pairs = n * (n + 1) / 2
        rows.append(_row("attention_prefill", batch=1, context=n, flops=4.0 * HEADS * HEAD_DIM * pairs,
                         nbytes=2.0 * (q.numel() + 2 * kv[0].numel()) * 2, seconds=seconds))
    return rows


def decode_attention(torch) -> list[dict]:
    """One query token per sequence over a KV cache of ``context`` tokens (memory-bound)."""
    rows = []
    for batch in DECODE_BATCHES:
        for context in DECODE_CONTEXTS:
            kv_bytes = 2 * batch * KV_HEADS * context * HEAD_DIM * 2
            if kv_bytes > 8e9:
                continue
            q = torch.randn(batch, HEADS, 1, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
            k = torch.randn(batch, KV_HEADS, context, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
            v = torch.randn_like(k)
            seconds = graph_time(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True))
            rows.append(_row("attention_decode", batch=batch, context=context, nbytes=float(kv_bytes),
                             flops=4.0 * HEADS * HEAD_DIM * batch * context, seconds=seconds))
            del k, v
    return rows


def rope(torch, x, cos, sin):
    """Rotary embedding of interleaved pairs, as unfused PyTorch ops."""
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.cat([even * cos - odd * sin, even * sin + odd * cos], dim=-1)


def elementwise_layer(torch) -> list[dict]:
    """The non-GEMM, non-attention work of one Llama layer, as the validation model does it: 2 RMSNorms,
    RoPE on q and k, SiLU(gate) x up, 2 residual adds."""
    rows = []
    for tokens in GEMM_TOKENS:
        x = torch.randn(1, tokens, HIDDEN, device="cuda", dtype=torch.bfloat16)
        q = torch.randn(1, HEADS, tokens, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(1, KV_HEADS, tokens, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
        gate_up = torch.randn(1, tokens, 2 * INTERMEDIATE, device="cuda", dtype=torch.bfloat16)
        cos = torch.randn(tokens, HEAD_DIM // 2, device="cuda", dtype=torch.bfloat16)
        sin = torch.randn_like(cos)
        weight = torch.randn(HIDDEN, device="cuda", dtype=torch.bfloat16)

        def layer():
            F = torch.nn.functional
            h = F.rms_norm(x, (HIDDEN,), weight)
            rotated = rope(torch, q, cos, sin), rope(torch, k, cos, sin)
            gate, up = gate_up.chunk(2, dim=-1)
            act = F.silu(gate) * up
            r = x + h
            return r + F.rms_norm(r, (HIDDEN,), weight), rotated, act

        rows.append(_row("elementwise_layer", m=tokens, seconds=graph_time(layer),
                         nbytes=2.0 * tokens * activation_elements(HIDDEN, (HEADS + KV_HEADS) * HEAD_DIM, INTERMEDIATE)))
    return rows


def activation_elements(hidden: int, qk_dim: int, intermediate: int) -> int:
    """Elements one token's unfused elementwise ops read and write in a layer: 2 RMSNorms and 2 residual
    adds (10 x hidden), RoPE on q and k (2 x (q + k)), SiLU(gate) x up (3 x intermediate)."""
    return 10 * hidden + 2 * qk_dim + 3 * intermediate


def copies(torch) -> list[dict]:
    rows = []
    src = torch.empty(int(2e9), dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    rows.append(_row("hbm_copy", nbytes=2.0 * src.numel(), seconds=cuda_time(lambda: dst.copy_(src), reps=5)))
    del src, dst
    for size in (4096, 65536, 1 << 20, 16 << 20, 256 << 20, 1 << 30):
        host = torch.empty(size, dtype=torch.uint8, pin_memory=True)
        device = torch.empty(size, dtype=torch.uint8, device="cuda")
        for kind, fn in (("h2d", lambda: device.copy_(host)), ("d2h", lambda: host.copy_(device))):
            rows.append(_row(f"pcie_{kind}", nbytes=float(size), seconds=cuda_time(fn, reps=5 if size > 1e8 else 20)))
    return rows


def launch_overhead(torch) -> list[dict]:
    """Per-kernel cost of a tiny kernel launched eagerly, and inside a CUDA graph."""
    x = torch.zeros(1, device="cuda")
    eager = cuda_time(lambda: x.add_(1), reps=200)
    graphed = graph_time(lambda: [x.add_(1) for _ in range(100)]) / 100
    return [_row("launch_eager", seconds=eager), _row("launch_graph", seconds=graphed)]


def measure_all() -> tuple[list[dict], dict]:
    torch = require_cuda()
    torch.backends.cuda.matmul.allow_tf32 = False
    info = {**record.machine(), "multiprocessors": torch.cuda.get_device_properties(0).multi_processor_count}
    rows = []
    for bench in (gemms, prefill_attention, decode_attention, elementwise_layer, copies, launch_overhead):
        rows += bench(torch)
        torch.cuda.empty_cache()
    return rows, info


def to_csv(rows: list[dict]) -> str:
    lines = [",".join(COLUMNS)]
    lines += [",".join(str(row[c]) for c in COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"
