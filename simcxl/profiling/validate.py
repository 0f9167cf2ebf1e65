"""End-to-end check of the compute model: a plain-PyTorch Llama-3.1-8B with random weights.

Prefill (batch x prompt length) and a decode step (one token per sequence over a KV cache of
``context`` tokens) are both captured in CUDA graphs, as serving engines run them (vLLM captures
decode whole and prefill piecewise), so the times are GPU time, not Python launch time. The measured times
go to a CSV that ``simcxl.profiling.fit.validation_table`` compares with the simulator's prediction.
"""

from __future__ import annotations

from simcxl.profiling.kernels import graph_time, require_cuda, rope

LAYERS, HIDDEN, HEADS, KV_HEADS, HEAD_DIM, INTERMEDIATE, VOCAB = 32, 4096, 32, 8, 128, 14336, 128256
PREFILL = ((1, 512), (1, 1024), (1, 2048), (1, 4096), (1, 8192), (1, 16384),
           (8, 512), (8, 1024), (8, 2048), (8, 4096))
DECODE = tuple((b, c) for b in (1, 8, 32, 128) for c in (1024, 4096, 16384))
KV_BUDGET = 40e9  # bytes of KV cache the check may allocate next to 16 GB of weights
COLUMNS = ("phase", "batch", "context", "seconds")


class Llama:
    """Llama-3.1-8B shapes: fused QKV and gate-up projections, RMSNorm, RoPE, GQA attention via SDPA."""

    def __init__(self, torch):
        self.torch = torch
        w = lambda *shape: torch.randn(*shape, device="cuda", dtype=torch.bfloat16) * 0.02  # noqa: E731
        self.layers = [dict(qkv=w((HEADS + 2 * KV_HEADS) * HEAD_DIM, HIDDEN), o=w(HIDDEN, HEADS * HEAD_DIM),
                            gate_up=w(2 * INTERMEDIATE, HIDDEN), down=w(HIDDEN, INTERMEDIATE),
                            norm1=w(HIDDEN) + 1, norm2=w(HIDDEN) + 1) for _ in range(LAYERS)]
        self.final_norm = w(HIDDEN) + 1
        self.lm_head = w(VOCAB, HIDDEN)

    def rope_tables(self, positions):
        """cos/sin of every position, computed once per forward (engines cache them)."""
        torch = self.torch
        freqs = 1.0 / (500000.0 ** (torch.arange(0, HEAD_DIM, 2, device="cuda", dtype=torch.float32) / HEAD_DIM))
        angles = positions.float()[:, None] * freqs[None, :]
        return angles.cos().to(torch.bfloat16), angles.sin().to(torch.bfloat16)

    def _block(self, x, layer, attend):
        F = self.torch.nn.functional
        batch, seq, _ = x.shape
        h = F.rms_norm(x, (HIDDEN,), layer["norm1"])
        q, k, v = F.linear(h, layer["qkv"]).split([HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM], -1)
        q = q.view(batch, seq, HEADS, HEAD_DIM).transpose(1, 2)
        k = k.view(batch, seq, KV_HEADS, HEAD_DIM).transpose(1, 2)
        v = v.view(batch, seq, KV_HEADS, HEAD_DIM).transpose(1, 2)
        out = attend(q, k, v).transpose(1, 2).reshape(batch, seq, HEADS * HEAD_DIM)
        x = x + F.linear(out, layer["o"])
        gate, up = F.linear(F.rms_norm(x, (HIDDEN,), layer["norm2"]), layer["gate_up"]).chunk(2, dim=-1)
        return x + F.linear(F.silu(gate) * up, layer["down"])

    def prefill(self, x):
        """Forward of embedded prompts ``x`` [batch, n, hidden]; logits only for each last position."""
        torch, F = self.torch, self.torch.nn.functional
        n = x.shape[1]
        cos, sin = self.rope_tables(torch.arange(n, device="cuda"))
        for layer in self.layers:
            def attend(q, k, v):
                q, k = rope(torch, q, cos, sin), rope(torch, k, cos, sin)
                return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            x = self._block(x, layer, attend)
        return F.linear(F.rms_norm(x[:, -1], (HIDDEN,), self.final_norm), self.lm_head)

    def decode_step(self, x, caches, position):
        """One new token per sequence; writes its K/V at ``position`` and attends to the whole cache."""
        torch, F = self.torch, self.torch.nn.functional
        cos, sin = self.rope_tables(position)
        for layer, (k_cache, v_cache) in zip(self.layers, caches):
            def attend(q, k, v, k_cache=k_cache, v_cache=v_cache):
                q, k = rope(torch, q, cos, sin), rope(torch, k, cos, sin)
                k_cache[:, :, -1:].copy_(k)
                v_cache[:, :, -1:].copy_(v)
                return F.scaled_dot_product_attention(q, k_cache, v_cache, enable_gqa=True)
            x = self._block(x, layer, attend)
        return F.linear(F.rms_norm(x[:, -1], (HIDDEN,), self.final_norm), self.lm_head)


def measure_all() -> list[dict]:
    torch = require_cuda()
    torch.backends.cuda.matmul.allow_tf32 = False
    model = Llama(torch)
    rows = []
    with torch.inference_mode():
        for batch, n in PREFILL:
            x = torch.randn(batch, n, HIDDEN, device="cuda", dtype=torch.bfloat16)
            rows.append(dict(phase="prefill", batch=batch, context=n,
                             seconds=graph_time(lambda: model.prefill(x), reps=3)))
            torch.cuda.empty_cache()
        for batch, context in DECODE:
            if 2 * LAYERS * batch * context * KV_HEADS * HEAD_DIM * 2 > KV_BUDGET:
                continue
            caches = [tuple(torch.randn(batch, KV_HEADS, context, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
                            for _ in range(2)) for _ in range(LAYERS)]
            x = torch.randn(batch, 1, HIDDEN, device="cuda", dtype=torch.bfloat16)
            position = torch.full((1,), context - 1, device="cuda")
            rows.append(dict(phase="decode", batch=batch, context=context,
                             seconds=graph_time(lambda: model.decode_step(x, caches, position), reps=10)))
            del caches
            torch.cuda.empty_cache()
    return rows


def to_csv(rows: list[dict]) -> str:
    return "\n".join([",".join(COLUMNS)] + [",".join(str(r[c]) for c in COLUMNS) for r in rows]) + "\n"
