"""An LLM's architecture reduced to what the simulator needs: FLOPs, weight bytes and KV bytes.

Counts follow the HuggingFace configs. A multiply-accumulate is 2 FLOPs. Linear layers cost
2 x (active parameters) FLOPs per token; attention adds a term per (query, key) pair, which is what
makes prefill quadratic and decode linear in the context. Mixture-of-experts models count only the
experts a token activates for FLOPs, but a decode step reads the weights of every expert that any
token in the batch routes to.

Sliding-window layers (gpt-oss alternates them with full ones) attend to and keep only the last
``sliding_window`` tokens: a query at position p sees min(p, W) keys, as a top-k query sees min(p, k), so one
rule (:meth:`LLM.attention_pairs`, :meth:`LLM.kv_bytes`) counts every layer's reach. Attention sinks
(gpt-oss's learned per-head logit, ``self_attn.sinks``) add one term to each softmax denominator: no KV,
one exp per (query, head), nothing next to the 4 x head_dim FLOPs of every (query, key) pair; not priced.
"""

from __future__ import annotations

from functools import cached_property

from simcxl.config.schema import ModelSpec

# Bytes per parameter (or KV element). int4: AWQ's and GPTQ's packed 4-bit weights plus, per group of 128 input
# channels and output column, a 16-bit scale and a 4-bit zero point: 0.5 + (2 + 0.5) / 128 (the AWQ GEMM layout of
# qweight, qzeros and scales; arXiv 2306.00978, group size 128). mxfp4: OCP microscaling FP4, 4-bit E2M1 values with
# one 8-bit E8M0 scale per block of 32 (vLLM mxfp4.py Mxfp4MoEMethod.create_weights: uint8 w13/w2 of in/2 bytes
# per row and uint8 scales of in/32), 0.5 + 1/32; a checkpoint applies it to the MoE experts only
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1, "int4": 0.5 + 2.5 / 128, "mxfp4": 0.5 + 1 / 32}
EXPERTS_ONLY = {"mxfp4"}
"""Weight dtypes that quantize only the MoE experts; the other weights stay bf16 (gpt-oss's quantization_config
modules_to_not_convert: self_attn, router, embed_tokens, lm_head; vLLM's Mxfp4Config gives those layers
UnquantizedLinearMethod)."""


class LLM:
    """Derived sizes of a model; every method returns totals over all layers unless it says 'per layer'.
    The sizes are worked out once (a model does not change, and every batch asks for them)."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.layers = spec.layers
        experts_only = spec.dtype in EXPERTS_ONLY
        self.weight_dtype_bytes = DTYPE_BYTES["bf16" if experts_only else spec.dtype]
        self.expert_dtype_bytes = DTYPE_BYTES[spec.dtype]  # routed and shared experts' weights
        self.kv_dtype_bytes = DTYPE_BYTES[spec.kv_dtype or spec.dtype]
        self.window = spec.sliding_window
        self.sliding_layers = 0 if self.window is None else (
            spec.layers if spec.sliding_layers is None else spec.sliding_layers)
        self.full_layers = spec.layers - self.sliding_layers

    # ------------------------------------------------------------------ parameters

    @cached_property
    def attention_params_per_layer(self) -> int:
        s = self.spec
        if s.attention == "mla":
            m = s.mla
            q = s.hidden * m.q_lora_rank + m.q_lora_rank * s.heads * (m.qk_nope_head_dim + m.qk_rope_head_dim)
            kv = s.hidden * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank * s.heads * (
                m.qk_nope_head_dim + m.v_head_dim)
            return q + kv + s.heads * m.v_head_dim * s.hidden
        q_and_o = 2 * s.hidden * s.heads * s.head_dim
        k_and_v = 2 * s.hidden * s.kv_heads * s.head_dim
        return q_and_o + k_and_v

    @cached_property
    def dense_mlp_params(self) -> int:
        """A gated (SwiGLU) MLP: gate, up and down projections."""
        return 3 * self.spec.hidden * self.spec.intermediate

    @cached_property
    def expert_params(self) -> int:
        return 3 * self.spec.hidden * self.spec.moe.expert_intermediate if self.spec.moe else 0

    @cached_property
    def moe_layers(self) -> int:
        return self.layers - self.spec.moe.dense_layers if self.spec.moe else 0

    @cached_property
    def lm_head_params(self) -> int:
        return self.spec.hidden * self.spec.vocab

    @cached_property
    def total_params(self) -> int:
        """Every parameter stored, embeddings and LM head included (they are untied in these models)."""
        s = self.spec
        mlp = (self.layers - self.moe_layers) * self.dense_mlp_params
        if s.moe:
            experts = s.moe.routed_experts + s.moe.shared_experts
            mlp += self.moe_layers * (experts * self.expert_params + s.hidden * s.moe.routed_experts)
        return self.layers * self.attention_params_per_layer + mlp + 2 * self.lm_head_params

    @cached_property
    def active_params(self) -> int:
        """Parameters one token's forward pass multiplies by (embedding lookup excluded)."""
        s = self.spec
        mlp = (self.layers - self.moe_layers) * self.dense_mlp_params
        if s.moe:
            experts = s.moe.experts_per_token + s.moe.shared_experts
            mlp += self.moe_layers * (experts * self.expert_params + s.hidden * s.moe.routed_experts)
        return self.layers * self.attention_params_per_layer + mlp + self.lm_head_params

    @cached_property
    def stored_expert_params(self) -> int:
        """Routed and shared experts' weights, all MoE layers (the part a dtype like mxfp4 quantizes)."""
        moe = self.spec.moe
        return self.moe_layers * (moe.routed_experts + moe.shared_experts) * self.expert_params if moe else 0

    @cached_property
    def weight_bytes(self) -> float:
        return (self.total_params * self.weight_dtype_bytes
                + self.stored_expert_params * (self.expert_dtype_bytes - self.weight_dtype_bytes))

    # ------------------------------------------------------------------ per-token costs

    @cached_property
    def linear_flops_per_token(self) -> float:
        """GEMM FLOPs of one token through every layer and the LM head."""
        return 2.0 * self.active_params

    @cached_property
    def lm_head_flops_per_token(self) -> float:
        return 2.0 * self.lm_head_params

    @cached_property
    def expert_flops_per_token(self) -> float:
        """GEMM FLOPs of one token through the routed experts it chooses and the shared experts, all MoE layers."""
        moe = self.spec.moe
        return 2.0 * self.moe_layers * (moe.experts_per_token + moe.shared_experts) * self.expert_params if moe else 0.0

    def experts_touched(self, tokens: int) -> float:
        """Distinct routed experts ``tokens`` tokens route to in one MoE layer, with uniform routing: B tokens
        choosing k of E experts touch E * (1 - (1 - k/E)^B) on average."""
        moe = self.spec.moe
        return moe.routed_experts * (1.0 - (1.0 - moe.experts_per_token / moe.routed_experts) ** tokens)

    def expert_weight_bytes(self, tokens: int) -> float:
        """Expert weight bytes (routed experts touched + shared experts, all MoE layers) a forward over ``tokens``
        tokens streams from HBM; part of :meth:`decode_weight_bytes`."""
        moe = self.spec.moe
        if not moe:
            return 0.0
        experts = self.experts_touched(tokens) + moe.shared_experts
        return self.moe_layers * experts * self.expert_params * self.expert_dtype_bytes

    @cached_property
    def replicated_linear_params(self) -> int:
        """GEMM parameters (all layers) every tensor-parallel GPU holds and multiplies whole: MLA's fused
        q_a + kv_a down-projection (hidden -> q_lora_rank + kv_lora_rank + rope dim) is a ReplicatedLinear in
        SGLang's and vLLM's deepseek_v2.py (``fused_qkv_a_proj_with_mqa``)."""
        s = self.spec
        if s.attention != "mla":
            return 0
        m = s.mla
        return self.layers * s.hidden * (m.q_lora_rank + m.kv_lora_rank + m.qk_rope_head_dim)

    @cached_property
    def replicated_activation_bytes(self) -> float:
        """HBM traffic per token and layer of the ops every tensor-parallel GPU runs on the whole hidden state:
        two RMSNorms and two residual adds touch it 10 times (bf16). A tensor-parallel MoE layer adds the sum
        of the token's expert outputs, each a whole hidden state on every GPU (the grouped w2 GEMM writes one per
        routed + shared expert; ``moe_sum_reduce`` in SGLang's fused_moe.py reads them and writes one): averaged
        over the layers, as the sharded traffic is."""
        s = self.spec
        per_layer = 2.0 * 10 * s.hidden
        if s.moe:
            outputs = s.moe.experts_per_token + s.moe.shared_experts + 1
            per_layer += 2.0 * outputs * s.hidden * self.moe_layers / self.layers
        return per_layer

    @cached_property
    def sharded_activation_bytes(self) -> float:
        """HBM traffic per token and layer of the ops split across tensor-parallel GPUs with the heads and
        the MLP (averaged over layers): RoPE reads and writes q and k; SwiGLU reads gate and up and writes
        their product (bf16)."""
        s = self.spec
        if s.attention == "mla":
            qk = s.heads * (s.mla.qk_nope_head_dim + s.mla.qk_rope_head_dim) + s.mla.qk_rope_head_dim
        else:
            qk = (s.heads + s.kv_heads) * s.head_dim
        mlp = s.intermediate
        if s.moe:
            routed = (s.moe.experts_per_token + s.moe.shared_experts) * s.moe.expert_intermediate
            mlp = (self.moe_layers * routed + (self.layers - self.moe_layers) * s.intermediate) / self.layers
        return 2.0 * (2 * qk + 3 * mlp)

    @cached_property
    def kv_bytes_per_token_per_layer(self) -> int:
        s = self.spec
        if s.kv_bytes_per_token_per_layer:
            return s.kv_bytes_per_token_per_layer
        if s.attention == "mla":
            return (s.mla.kv_lora_rank + s.mla.qk_rope_head_dim) * self.kv_dtype_bytes
        return 2 * s.kv_heads * s.head_dim * self.kv_dtype_bytes

    @cached_property
    def kv_tensors_per_layer(self) -> int:
        """Separate KV tensors per layer in a paged cache: K and V, or one latent for MLA."""
        return 1 if self.spec.attention == "mla" else 2

    @cached_property
    def kv_bytes_per_token(self) -> int:
        """KV cache bytes one token occupies, all layers (Llama-3.1-8B bf16: 131,072)."""
        return self.layers * self.kv_bytes_per_token_per_layer

    def kv_bytes(self, tokens: int) -> int:
        """KV cache bytes of a sequence of ``tokens`` tokens, all layers: the one rule every manager sizes KV by.
        A sliding-window layer keeps only the last ``sliding_window`` tokens (vLLM v1's SlidingWindowManager frees
        the blocks before computed - W + 1, get_num_skipped_tokens, vllm/v1/core/single_type_kv_cache_manager.py;
        the partly-out block it still holds is not counted)."""
        if not self.sliding_layers:
            return tokens * self.kv_bytes_per_token
        kept = self.full_layers * tokens + self.sliding_layers * min(tokens, self.window)
        return kept * self.kv_bytes_per_token_per_layer

    @cached_property
    def topk(self) -> int | None:
        """Tokens each query attends to with sparse attention (None: all of them)."""
        return self.spec.sparse.topk if self.spec.sparse else None

    def attended(self, context: int) -> int:
        """Cached tokens a query over ``context`` of them attends to: all, or the top-k of sparse attention."""
        return context if self.topk is None else min(context, self.topk)

    def decode_attended(self, sequences: int, attended: float) -> float:
        """Keys per layer, averaged over the layers, that one decode step of ``sequences`` sequences reads when
        they attend to ``attended`` cached tokens in all (:meth:`attended`, summed): a sliding-window layer reads
        at most ``sliding_window`` per sequence. min(attended, sequences x W) is exact once every sequence is
        past the window and an upper bound before (sum of min(c_i, W) <= min(sum c_i, n W))."""
        if not self.sliding_layers:
            return attended
        windowed = min(attended, sequences * self.window)
        return (self.full_layers * attended + self.sliding_layers * windowed) / self.layers

    def attention_pairs(self, new: int, cached: int) -> float:
        """(query, key) pairs per layer, averaged over the layers, of causal attention of ``new`` tokens after
        ``cached`` ones: the query at position p sees p keys, min(p, k) with top-k sparse attention, min(p, W)
        in a sliding-window layer (W keys including itself, HF's and vLLM's window)."""
        if self.topk:
            return _reach_pairs(new, cached, self.topk)
        dense = new * cached + new * (new + 1) / 2
        if not self.sliding_layers:
            return dense
        return (self.full_layers * dense + self.sliding_layers * _reach_pairs(new, cached, self.window)) / self.layers

    def indexer_flops_per_pair(self) -> float:
        """The lightning indexer's score of one (query, cached token) pair in one layer (0 without DSA)."""
        sparse = self.spec.sparse
        return 2.0 * sparse.index_heads * sparse.index_head_dim if sparse else 0.0

    @cached_property
    def indexer_bytes_per_token(self) -> int:
        """The indexer's key cache, all layers (read in full by every decode step)."""
        return self.layers * self.spec.sparse.index_bytes_per_token_per_layer if self.spec.sparse else 0

    def attention_flops_per_pair(self, decode: bool) -> float:
        """FLOPs of one (query, key) pair in one layer: the QK^T dot product and the PV accumulation.

        MLA prefill expands the latent into per-head keys and values; MLA decode uses the absorbed form
        (queries projected into the 512-dim latent), which costs more per pair but reads only the latent.
        """
        s = self.spec
        if s.attention == "mla":
            m = s.mla
            if decode:
                return 2.0 * s.heads * (m.kv_lora_rank + m.qk_rope_head_dim) + 2.0 * s.heads * m.kv_lora_rank
            return 2.0 * s.heads * (m.qk_nope_head_dim + m.qk_rope_head_dim) + 2.0 * s.heads * m.v_head_dim
        return 4.0 * s.heads * s.head_dim

    def decode_weight_bytes(self, batch_size: int) -> float:
        """Weight bytes one decode step streams from HBM for ``batch_size`` sequences.

        Every layer and the LM head are read once per step (the embedding table is only indexed). An MoE
        layer reads only the experts the batch routes to: with uniform routing, B tokens choosing k of E
        experts touch E * (1 - (1 - k/E)^B) distinct experts on average.
        """
        read = self.total_params - self.lm_head_params
        if not self.spec.moe:
            return read * self.weight_dtype_bytes
        moe, touched = self.spec.moe, self.experts_touched(batch_size)
        read -= self.moe_layers * (moe.routed_experts - touched) * self.expert_params
        experts = self.moe_layers * (touched + moe.shared_experts) * self.expert_params  # at the experts' dtype
        return read * self.weight_dtype_bytes + experts * (self.expert_dtype_bytes - self.weight_dtype_bytes)


def _reach_pairs(new: int, cached: int, reach: int) -> float:
    """(query, key) pairs of causal attention of ``new`` queries after ``cached`` keys when the query at position
    p attends to min(p, reach) keys (top-k sparse attention; a sliding window of ``reach``)."""
    first, last = cached + 1, cached + new  # positions of the new queries, 1-based
    dense_end = min(last, reach)
    dense = 0 if dense_end < first else (first + dense_end) * (dense_end - first + 1) / 2
    return dense + max(0, last - max(first, reach + 1) + 1) * reach
