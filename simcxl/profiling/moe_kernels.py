"""DeepSeek-V3's kernels at tensor parallelism 8, one GPU's shard: ``python -m simcxl.profiling.moe_kernels -o DIR``.

Part of issue #37 (why simcxl prices DeepSeek-V3 FP8 on SGLang H200 TP 8 65% short on TTFT, 17-34% on TPOT);
the reading is in docs/notes/sglang_deepseek.md. Self-contained (torch only, no SGLang on the device). Writes:

- ``launch.csv``: an empty-ish kernel (1-element add) launched eagerly back to back vs replayed from a CUDA
  graph: the per-kernel price of an eager forward (SGLang's prefill runs eager: no CUDA graph above
  --cuda-graph-max-bs).
- ``experts.csv``: one MoE layer's routed experts at TP 8 (SGLang's default for DeepSeek without
  --enable-ep-moe: every expert sharded 8 ways, w13 = [512, 7168], w2 = [7168, 256] per GPU) for ``m``
  tokens per expert, FP8 per-tensor ``torch._scaled_mm``: a loop over the 256 experts (eager and
  CUDA-graph replayed), one expert alone (weights L2-cold, cycling), and the same bytes as one big GEMM
  (the HBM roofline a grouped kernel could reach); plus BF16 ``torch.bmm`` over all experts as a grouped proxy.
- ``projections.csv``: the other GEMMs of a layer (MLA projections, dense MLP, LM head) at m = 1..8192 tokens,
  FP8, weights cycling through more copies than L2 holds.
- ``attention.csv``: MLA prefill attention in the non-absorbed form (16 heads per GPU, q/k 192, v 128 padded
  to 192), causal SDPA at 1..8k tokens.
Each row: seconds (median of rounds of mean-of-reps, CUDA events), bytes and FLOPs of the operation.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
from pathlib import Path

HIDDEN, TP, EXPERTS, TOP_K, EXPERT_INTER = 7168, 8, 256, 8, 2048
HEADS, Q_LORA, KV_LORA, NOPE, ROPE, V_DIM, INTER, VOCAB = 128, 1536, 512, 128, 64, 128, 18432, 129280
H = HEADS // TP  # 16 heads per GPU
# (name, out_features, in_features) of one GPU's shard; q_a and kv_a are replicated in SGLang (ReplicatedLinear)
PROJECTIONS = (
    ("q_a_replicated", Q_LORA, HIDDEN),
    ("kv_a_replicated", KV_LORA + ROPE, HIDDEN),
    ("q_b", H * (NOPE + ROPE), Q_LORA),
    ("kv_b", H * (NOPE + V_DIM), KV_LORA),
    ("o", HIDDEN, H * V_DIM),
    ("dense_gate_up", 2 * INTER // TP, HIDDEN),
    ("dense_down", HIDDEN, INTER // TP),
    ("shared_gate_up", 2 * EXPERT_INTER // TP, HIDDEN),
    ("shared_down", HIDDEN, EXPERT_INTER // TP),
    ("router_gate_bf16", EXPERTS, HIDDEN),
    ("lm_head_bf16", VOCAB // TP, HIDDEN),
)
PROJ_TOKENS = (1, 4, 16, 64, 256, 1024, 2048, 4096, 8192)
EXPERT_TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
ATTN_TOKENS = (128, 512, 1024, 2048, 4096, 8192)


def timed(torch, fn, reps=10, rounds=5, warmup=2):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(rounds):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(reps):
            fn()
        b.record()
        torch.cuda.synchronize()
        samples.append(a.elapsed_time(b) / 1e3 / reps)
    return statistics.median(samples)


def graphed(torch, fn, reps=10):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return timed(torch, g.replay, reps=reps)


def launch_rows(torch):
    rows = ["mode,kernels,seconds_per_kernel"]
    x = torch.zeros(1, device="cuda")
    for n in (100, 1000):
        def loop():
            for _ in range(n):
                x.add_(1.0)
        rows.append(f"eager,{n},{timed(torch, loop, reps=3) / n!r}")
        rows.append(f"cuda_graph,{n},{graphed(torch, loop, reps=3) / n!r}")
    # a typical eager small op with Python dispatch on a [1024, 7168] bf16 tensor (RMSNorm-like pair)
    y = torch.randn(1024, HIDDEN, device="cuda", dtype=torch.bfloat16)
    rows.append(f"eager_rmsnorm_1024x7168,1,{timed(torch, lambda: torch.nn.functional.rms_norm(y, (HIDDEN,))) !r}")
    return rows


def fp8_mm(torch, one):
    def mm(x, w):
        return torch._scaled_mm(x, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16, use_fast_accum=True)
    return mm


def expert_rows(torch):
    fp8 = torch.float8_e4m3fn
    one = torch.ones((), device="cuda", dtype=torch.float32)
    mm = fp8_mm(torch, one)
    n13, k2 = 2 * EXPERT_INTER // TP, EXPERT_INTER // TP  # 512, 256
    w13 = [torch.randn(n13, HIDDEN, device="cuda").to(fp8) for _ in range(EXPERTS)]
    w2 = [torch.randn(HIDDEN, k2, device="cuda").to(fp8) for _ in range(EXPERTS)]
    layer_bytes = EXPERTS * (n13 * HIDDEN + HIDDEN * k2)
    big13 = torch.cat(w13)  # [256*512, 7168]: the same bytes as one GEMM
    big2 = torch.randn(HIDDEN, k2 * EXPERTS, device="cuda").to(fp8)  # [7168, 65536]
    rows = ["variant,m_per_expert,experts,bytes,flops,seconds"]
    for m in EXPERT_TOKENS:
        x = torch.randn(m, HIDDEN, device="cuda").to(fp8)
        h = torch.randn(m, k2, device="cuda").to(fp8)
        flops = 2 * m * EXPERTS * (n13 * HIDDEN + HIDDEN * k2)

        def loop():
            for e in range(EXPERTS):
                mm(x, w13[e])
                mm(h, w2[e])
        try:
            rows.append(f"loop_eager,{m},{EXPERTS},{layer_bytes},{flops},{timed(torch, loop, reps=3)!r}")
            rows.append(f"loop_graph,{m},{EXPERTS},{layer_bytes},{flops},{graphed(torch, loop, reps=3)!r}")
        except RuntimeError as exc:  # a shape _scaled_mm refuses
            rows.append(f"loop_error_{type(exc).__name__},{m},{EXPERTS},0,0,nan")
            continue
        # one big GEMM with the layer's w13 bytes, and one with its w2 bytes: m tokens against all of them
        try:
            xb = torch.randn(m, k2 * EXPERTS, device="cuda").to(fp8)
            t = timed(torch, lambda: (mm(x, big13), mm(xb, big2)))
            rows.append(f"one_big_gemm,{m},{EXPERTS},{layer_bytes},{flops},{t!r}")
        except RuntimeError:
            pass
        xg = torch.randn(EXPERTS, m, HIDDEN, device="cuda", dtype=torch.bfloat16)
        if m <= 64:
            wg13 = torch.randn(EXPERTS, HIDDEN, n13, device="cuda", dtype=torch.bfloat16)
            wg2 = torch.randn(EXPERTS, k2, HIDDEN, device="cuda", dtype=torch.bfloat16)
            hg = torch.randn(EXPERTS, m, k2, device="cuda", dtype=torch.bfloat16)
            t = timed(torch, lambda: (torch.bmm(xg, wg13), torch.bmm(hg, wg2)))
            rows.append(f"bmm_bf16,{m},{EXPERTS},{2 * layer_bytes},{flops},{t!r}")
            del wg13, wg2, hg
        del xg
    # active experts only (decode: a batch of B tokens touches E(1-(1-k/E)^B) experts, 1 token each)
    for active in (8, 16, 32, 64, 128):
        x = torch.randn(1, HIDDEN, device="cuda").to(fp8)
        h = torch.randn(1, k2, device="cuda").to(fp8)

        def loop_active(active=active):
            for e in range(active):
                mm(x, w13[e])
                mm(h, w2[e])
        b = active * (n13 * HIDDEN + HIDDEN * k2)
        rows.append(f"active_loop_graph,1,{active},{b},{2 * b},{graphed(torch, loop_active, reps=5)!r}")
    return rows


def projection_rows(torch):
    fp8 = torch.float8_e4m3fn
    one = torch.ones((), device="cuda", dtype=torch.float32)
    mm = fp8_mm(torch, one)
    rows = ["layer,dtype,m,n,k,bytes,flops,seconds"]
    for name, n, k in PROJECTIONS:
        bf16 = name.endswith("_bf16")
        wbytes = n * k * (2 if bf16 else 1)
        copies = max(1, min(64, int(4e8 // wbytes)))  # > L2 (50 MB) of cycling weights
        ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
        if not bf16:
            ws = [w.to(fp8) for w in ws]
        for m in PROJ_TOKENS:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            xq = x if bf16 else x.to(fp8)
            i = [0]

            def one_call():
                w = ws[i[0] % copies]
                i[0] += 1
                return torch.matmul(xq, w.t()) if bf16 else mm(xq, w)
            t = timed(torch, one_call, reps=copies if copies > 4 else 20)
            rows.append(f"{name},{'bf16' if bf16 else 'fp8'},{m},{n},{k},{wbytes + m * k + 2 * m * n},{2 * m * n * k},{t!r}")
        del ws
    return rows


def attention_rows(torch):
    import torch.nn.functional as F
    rows = ["variant,tokens,heads,qk_dim,v_dim,flops,seconds"]
    for s in ATTN_TOKENS:
        q = torch.randn(1, H, s, NOPE + ROPE, device="cuda", dtype=torch.bfloat16)
        k = torch.randn_like(q)
        v = torch.randn_like(q)  # v 128 padded to 192 (torch's flash path wants equal dims)
        flops = 2 * H * s * (s + 1) / 2 * ((NOPE + ROPE) + V_DIM)  # as simcxl counts it (v 128)
        t = timed(torch, lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
        rows.append(f"sdpa_causal_padded192,{s},{H},{NOPE + ROPE},{NOPE + ROPE},{flops},{t!r}")
    return rows


def triton_moe_rows(torch):
    """A grouped block-FP8 expert GEMM in Triton written for this study after the structure of SGLang's
    ``fused_moe_kernel`` (not its code): (token, expert) pairs sorted by expert and padded to BLOCK_M per
    expert, one program per (M block, N block), K stepped by 128 with the activation's per-(row, 128) scale
    and the weight's per-(128, 128) scale applied to the fp32 accumulator at every step. Routing: top-8 of
    256 uniform + the fused shared expert (257 experts, top-9), TP-8 slices w13 [512, 7168], w2 [7168, 256]."""
    import triton
    import triton.language as tl

    @triton.jit
    def grouped(a, a_s, b, b_s, c, sorted_ids, expert_ids, pairs, top_div, N, K,
                BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        offs = pid_m * BM + tl.arange(0, BM)
        ids = tl.load(sorted_ids + offs)
        valid = ids < pairs
        rows = ids // top_div
        e = tl.load(expert_ids + pid_m)
        on = pid_n * BN + tl.arange(0, BN)
        ok = tl.arange(0, BK)
        ks = K // BK
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for kb in range(0, ks):
            ap = a + rows[:, None] * K + kb * BK + ok[None, :]
            av = tl.load(ap, mask=valid[:, None], other=0.0)
            bp = b + e * N * K + on[None, :] * K + kb * BK + ok[:, None]
            bv = tl.load(bp)
            asc = tl.load(a_s + rows * ks + kb, mask=valid, other=0.0)
            bsc = tl.load(b_s + e * (N // BN) * ks + pid_n * ks + kb)
            acc += tl.dot(av, bv) * asc[:, None] * bsc
        cp = c + ids[:, None] * N + on[None, :]
        tl.store(cp, acc.to(tl.bfloat16), mask=valid[:, None])

    fp8 = torch.float8_e4m3fn
    E, k_top = EXPERTS + 1, TOP_K + 1
    n13, k2 = 2 * EXPERT_INTER // TP, EXPERT_INTER // TP
    w13 = torch.randn(E, n13, HIDDEN, device="cuda").to(fp8)
    w2 = torch.randn(E, HIDDEN, k2, device="cuda").to(fp8)
    s13 = torch.rand(E, n13 // 128, HIDDEN // 128, device="cuda")
    s2 = torch.rand(E, HIDDEN // 128, k2 // 128, device="cuda")
    rows = ["gemm,tokens,block_m,pairs,active_experts,weight_bytes,flops,seconds"]
    for tokens in (1, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192):
        bm = 64 if tokens >= 1024 else 16  # SGLang's tuned H200 E=257,N=256 config (triton_3_3_1)
        routed = torch.stack([torch.randperm(EXPERTS, device="cuda")[:TOP_K] for _ in range(tokens)])
        topk = torch.cat([routed, torch.full((tokens, 1), EXPERTS, device="cuda")], 1).flatten()
        pairs = topk.numel()
        order = torch.argsort(topk, stable=True)
        counts = torch.bincount(topk, minlength=E).tolist()
        ids, experts, start = [], [], 0
        for ex, cnt in enumerate(counts):
            if cnt == 0:
                continue
            seg = order[start:start + cnt].tolist()
            start += cnt
            pad = (-cnt) % bm
            ids += seg + [pairs] * pad
            experts += [ex] * ((cnt + pad) // bm)
        sorted_ids = torch.tensor(ids, device="cuda", dtype=torch.int32)
        expert_ids = torch.tensor(experts, device="cuda", dtype=torch.int32)
        active = sum(1 for c_ in counts if c_)
        x = torch.randn(tokens, HIDDEN, device="cuda").to(fp8)
        xs = torch.rand(tokens, HIDDEN // 128, device="cuda")
        h = torch.randn(pairs, k2, device="cuda").to(fp8)
        hs = torch.rand(pairs, k2 // 128, device="cuda")
        c13 = torch.empty(pairs, n13, device="cuda", dtype=torch.bfloat16)
        c2 = torch.empty(pairs, HIDDEN, device="cuda", dtype=torch.bfloat16)
        mblocks = len(experts)
        for name, args, n, k, wb in (
                ("w13", (x, xs, w13, s13, c13, sorted_ids, expert_ids, pairs, k_top, n13, HIDDEN), n13, HIDDEN,
                 active * n13 * HIDDEN),
                ("w2", (h, hs, w2, s2, c2, sorted_ids, expert_ids, pairs, 1, HIDDEN, k2), HIDDEN, k2,
                 active * HIDDEN * k2)):
            grid = (mblocks, n // 128)
            fn = lambda args=args, grid=grid: grouped[grid](*args, BM=bm, BN=128, BK=128, num_warps=4, num_stages=3)
            t = timed(torch, fn)
            rows.append(f"{name},{tokens},{bm},{pairs},{active},{wb},{2 * pairs * n * k},{t!r}")
        # the rest of SGLang's MoE around the two GEMMs: silu_and_mul, the re-quantization, the top-k sum
        g = torch.randn(pairs, n13, device="cuda", dtype=torch.bfloat16)
        t = timed(torch, lambda: (torch.nn.functional.silu(g[:, :k2]) * g[:, k2:]).to(fp8))
        rows.append(f"silu_mul_quant,{tokens},0,{pairs},{active},0,0,{t!r}")
        t = timed(torch, lambda: c2.view(tokens, k_top, HIDDEN).sum(1))
        rows.append(f"topk_sum,{tokens},0,{pairs},{active},0,0,{t!r}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--tables", default="triton_moe,launch,attention,experts,projections",
                        help="comma-separated subset of the tables to measure, in this order")
    args = parser.parse_args()
    out, wanted = args.output, args.tables.split(",")
    out.mkdir(parents=True, exist_ok=True)
    import torch
    info = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
        import triton
        info["triton"] = triton.__version__
    except ImportError:
        pass
    (out / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    for name, fn in (("triton_moe", triton_moe_rows), ("launch", launch_rows), ("attention", attention_rows),
                     ("experts", expert_rows),
                     ("projections", projection_rows)):
        if name not in wanted:
            continue
        try:
            rows = fn(torch)
        except Exception as exc:  # keep the other tables
            rows = [f"error,{type(exc).__name__}: {str(exc)[:200]!r}"]
        (out / f"{name}.csv").write_text("\n".join(rows) + "\n")
        print(name, "done", flush=True)
        torch.cuda.empty_cache()
    (out / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))


if __name__ == "__main__":
    main()
