"""The GPU compute model: a roofline per operator group, per layer, with tensor parallelism.

time(group) = max(FLOPs / (peak x efficiency), bytes / (HBM bandwidth x memory efficiency)).
A forward pass sums two groups per layer, the linear layers (GEMMs over the weights) and attention
(over the KV cache), plus the elementwise ops (norms, RoPE, SwiGLU, residuals: activation bytes at
their own achieved bandwidth) and a fixed per-layer cost (kernel ramp-up of the layer's GEMMs,
attention and small ops, as measured at one token). Both of the last two come in two measured kinds:
unfused ops launched one by one (an eager engine) or fused kernels replayed from CUDA graphs (vLLM,
SGLang; ``fused=True``). With tensor parallelism over T GPUs, GEMM and attention FLOPs and bytes split
T ways, the norms and residuals run on the whole hidden state on every GPU, and every layer pays two
all-reduces of the activations over NVLink. The efficiencies come from measurements on a real GPU
(``simcxl profile-gpu``); the peaks come from datasheets. A model with FP8 weights and activations runs
its GEMMs at the FP8 tensor peak and efficiency (``simcxl.profiling.fp8_gemms``); attention stays BF16.

One forward pass may mix work, as an aggregated engine's iteration does (chunked prefill beside decodes):
:meth:`GPUCompute.forward_time` prices decodes and prompt chunks together, the weights read once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from operator import mul
from typing import Callable

from simcxl.config.schema import GPUSpec, LayerKernels
from simcxl.hardware.model import LLM

# The layer GPUSpec.fused_layer_overhead is measured on (simcxl.profiling.compiled_layer: a Llama-3.1-70B TP-4
# layer through torch.compile, replayed from a CUDA graph): 4 FP8 GEMMs and the attention kernel (heavy); the
# fused norm + quantization, RoPE, KV-cache store, attention-output quantization, residual + norm + quantization
# and SiLU x up + quantization kernels (light).
CALIBRATION_LAYER = LayerKernels(heavy=5, light=6)
ALLREDUCES_PER_LAYER = 2  # after attention and after the MLP (Megatron-style tensor parallelism)
ACTIVATION_BYTES = 2  # activations travel in bf16, also in FP8-weight models
PREFILL_MEMO = 1 << 16  # prefill batches whose price is kept (~150 bytes each)


@dataclass(frozen=True)
class Roofline:
    """Achievable rates of one GPU: GEMM and attention FLOP/s; bytes/s for weights, KV and activations."""

    flops: float
    attention_flops: float
    bandwidth: float
    kv_bandwidth: float
    elementwise_bandwidth: float

    def linear(self, flops: float, nbytes: float) -> float:
        return max(flops / self.flops, nbytes / self.bandwidth)

    def attention(self, flops: float, nbytes: float) -> float:
        return max(flops / self.attention_flops, nbytes / self.kv_bandwidth)


class GPUCompute:
    """Prefill and decode-step latency of one model instance (``tensor_parallel`` GPUs)."""

    def __init__(self, gpu: GPUSpec, llm: LLM, tensor_parallel: int = 1, fused: bool = False,
                 prefill_host_floor: float = 0.0, dp_attention: bool = False):
        if tensor_parallel < 1:
            raise ValueError(f"tensor_parallel must be >= 1, got {tensor_parallel}")
        if fused and gpu.fused_layer_overhead is None:
            raise ValueError(f"fused execution needs {gpu.name}'s fused_layer_overhead and fused_elementwise_efficiency")
        self.gpu = gpu
        self.llm = llm
        self.tp = tensor_parallel
        fp8 = llm.spec.dtype == "fp8" and gpu.fp8_peak_flops is not None
        self.roofline = Roofline(
            flops=gpu.fp8_peak_flops * gpu.fp8_compute_efficiency if fp8 else gpu.peak_flops * gpu.compute_efficiency,
            attention_flops=gpu.peak_flops * gpu.attention_efficiency,
            bandwidth=gpu.hbm_bandwidth * gpu.memory_efficiency,
            kv_bandwidth=gpu.hbm_bandwidth * (gpu.attention_memory_efficiency or gpu.memory_efficiency),
            elementwise_bandwidth=gpu.hbm_bandwidth * (gpu.fused_elementwise_efficiency if fused
                                                        else gpu.elementwise_efficiency),
        )
        self.prefill_host_floor = prefill_host_floor  # a pass with prompt chunks lasts at least this (serving spec)
        # Where the KV lives. Grouped-query attention splits its KV heads over the GPUs; MLA's latent has no head
        # dimension, so under tensor-parallel attention every GPU keeps and reads every token's latent (SGLang's
        # MLATokenToKVPool per rank). DP attention (SGLang --enable-dp-attention) gives each GPU its own requests:
        # their KV is on that GPU only, and each GPU holds the attention weights whole (replicated_weights).
        self.kv_shards = tensor_parallel if (llm.spec.attention != "mla" or dp_attention) else 1
        self._kv_copies = tensor_parallel // self.kv_shards  # GPUs that read each token's KV (work counted on each)
        # GEMM parameters every GPU reads whole (MLA's q_a + kv_a; with DP attention all of attention's) and those
        # it also computes for every token (not with DP attention: each GPU computes its own requests' tokens)
        self._rep_read = llm.layers * llm.attention_params_per_layer if dp_attention else llm.replicated_linear_params
        self._rep_computed = 0 if dp_attention else llm.replicated_linear_params
        self.layer_overhead = fused_layer_overhead(gpu, llm.spec.layer_kernels) if fused else gpu.layer_overhead
        self._activation_bytes_per_token = llm.spec.hidden * ACTIVATION_BYTES
        self._prefill_flops_per_pair = llm.attention_flops_per_pair(decode=False)
        self._indexer_flops_per_pair = llm.indexer_flops_per_pair()
        self._decode_flops_per_pair = llm.attention_flops_per_pair(decode=True)
        self._decode_linear_work: list[tuple[float, float]] = []  # linear_work(b, b) by batch size b
        self._linear_flops_of: list[float] = []  # the same, as two lists
        # linear_work's constants: FLOPs per token (and per sampled token), weight bytes read by every pass (None:
        # an MoE's depend on the tokens), elementwise bytes per token; work every GPU repeats counted on each
        replicated = self._rep_computed * (tensor_parallel - 1)
        self._replicated_weight_bytes = self._rep_read * (tensor_parallel - 1) * llm.weight_dtype_bytes
        self._linear_work_terms = (
            llm.linear_flops_per_token - llm.lm_head_flops_per_token + 2.0 * replicated, llm.lm_head_flops_per_token,
            replicated, None if llm.spec.moe else self._replicated_weight_bytes + llm.decode_weight_bytes(1),
            llm.layers * (llm.replicated_activation_bytes * tensor_parallel + llm.sharded_activation_bytes))
        self._linear_bytes_of: list[float] = []
        points = sorted((p.bytes, p.time) for p in gpu.allreduce if p.tensor_parallel == tensor_parallel)
        self._allreduce_points = points
        # A mixture-of-experts model's expert GEMMs as their own roofline group (GPUSpec.moe_gemm): the grouped
        # kernel's measured efficiency by tokens per forward over the datasheet roofline; and MLA's replicated
        # down-projection, computed whole on every GPU. Without either, one roofline over all the GEMMs.
        self._moe_points = sorted((p.tokens, p.efficiency) for p in gpu.moe_gemm) if llm.spec.moe else []
        self._expert_flops_rate = gpu.fp8_peak_flops if fp8 else gpu.peak_flops
        self._grouped = bool(self._moe_points or self._rep_read)
        self.decode_step_time, self.decode_stretch = self._decode_step_pricers()
        # Most prefill batches are one prompt, and a long run sees each prompt length many times over: priced
        # once each (a pure function of the batch), as the decode pricers keep their batch-size terms.
        self._priced_prefills = lru_cache(maxsize=PREFILL_MEMO)(self._price_prefill)
        self._prefill_works = lru_cache(maxsize=PREFILL_MEMO)(self._count_prefill)

    # ------------------------------------------------------------------ capacity

    @property
    def kv_capacity_bytes(self) -> float:
        """HBM left for KV cache across the instance after the weights (may be negative: does not fit)."""
        usable = self.gpu.hbm_capacity * self.gpu.memory_utilization * self.tp
        return usable - self.llm.weight_bytes

    @property
    def kv_capacity_tokens(self) -> int:
        """Tokens whose KV fits the instance: each is kept on tp / kv_shards GPUs (MLA under TP attention: all)."""
        return max(0, int(self.kv_capacity_bytes // (self.llm.kv_bytes_per_token * self._kv_copies)))

    # ------------------------------------------------------------------ latency

    def allreduce_time(self, tokens: int) -> float:
        """Per-forward time of the tensor-parallel all-reduces for ``tokens`` activations: from the profile's
        all-reduce table at this degree, or else a ring over NVLink (2 (T-1)/T of the message per GPU)."""
        if self.tp == 1:
            return 0.0
        nbytes = tokens * self._activation_bytes_per_token
        return self.llm.layers * ALLREDUCES_PER_LAYER * self.one_allreduce(nbytes)

    def one_allreduce(self, nbytes: float) -> float:
        """Seconds of one all-reduce of ``nbytes`` per GPU across the instance's GPUs."""
        points = self._allreduce_points
        if not points:
            return 2.0 * (self.tp - 1) / self.tp * nbytes / self.gpu.nvlink_bandwidth + self.gpu.nvlink_latency
        if nbytes <= points[0][0]:
            return points[0][1]
        if len(points) == 1:
            return points[0][1] * nbytes / points[0][0]
        for (b0, t0), (b1, t1) in zip(points, points[1:]):
            if nbytes <= b1:
                return t0 + (t1 - t0) * (nbytes - b0) / (b1 - b0)
        return t1 + (t1 - t0) * (nbytes - b1) / (b1 - b0)

    def _fixed_and_elementwise(self, tokens: int) -> float:
        """Per-layer fixed costs (kernel ramp-up, small ops) and the elementwise traffic of one GPU."""
        llm = self.llm
        per_gpu = llm.replicated_activation_bytes + llm.sharded_activation_bytes / self.tp
        return llm.layers * (self.layer_overhead + tokens * per_gpu / self.roofline.elementwise_bandwidth)

    def _linear(self, tokens: int, sampled: int) -> float:
        """The GEMMs of one forward pass over ``tokens``, of which ``sampled`` go through the LM head; the
        weights are read once (for MoE, the experts these tokens route to)."""
        llm, tp = self.llm, self.tp
        flops = tokens * (llm.linear_flops_per_token - llm.lm_head_flops_per_token) + sampled * llm.lm_head_flops_per_token
        nbytes = llm.decode_weight_bytes(tokens)
        if not self._grouped:
            return self.roofline.linear(flops / tp, nbytes / tp)
        experts = 0.0
        if self._moe_points:
            expert_flops, expert_bytes = tokens * llm.expert_flops_per_token, llm.expert_weight_bytes(tokens)
            flops, nbytes = flops - expert_flops, nbytes - expert_bytes
            experts = self.expert_gemm_time(tokens, expert_flops / tp, expert_bytes / tp)
        rep_flops, rep_bytes = 2.0 * tokens * self._rep_computed, self._rep_read * llm.weight_dtype_bytes
        rest = self.roofline.linear((flops - rep_flops) / tp + rep_flops, (nbytes - rep_bytes) / tp + rep_bytes)
        return rest + experts

    def expert_gemm_time(self, tokens: int, flops: float, nbytes: float) -> float:
        """One GPU's grouped expert GEMMs of a forward over ``tokens`` tokens (``flops`` and weight ``nbytes`` on
        this GPU): the datasheet roofline over the profile's measured efficiency at that many tokens
        (GPUSpec.moe_gemm, interpolated linearly in tokens, the nearest point's outside them)."""
        roof = max(flops / self._expert_flops_rate, nbytes / self.gpu.hbm_bandwidth)
        points = self._moe_points
        if tokens <= points[0][0]:
            efficiency = points[0][1]
        elif tokens >= points[-1][0]:
            efficiency = points[-1][1]
        else:
            for (t0, e0), (t1, e1) in zip(points, points[1:]):
                if tokens <= t1:
                    efficiency = e0 + (e1 - e0) * (tokens - t0) / (t1 - t0)
                    break
        return roof / efficiency

    def prefill_time(self, new_tokens: list[int] | tuple[int, ...], cached_tokens: list[int] | tuple[int, ...] = ()
                     ) -> float:
        """One prefill forward over a batch of prompts.

        ``new_tokens[i]`` are computed; ``cached_tokens[i]`` precede them (a prefix-cache hit) and are only
        attended to. Causal attention of n new tokens after c cached ones covers n*c + n*(n+1)/2 pairs.
        The LM head runs only for each prompt's last token (the one whose logits are sampled).
        """
        return self._priced_prefills(tuple(new_tokens), tuple(cached_tokens))[0]

    def prefill_priced(self, new_tokens: list[int] | tuple[int, ...], cached_tokens: list[int] | tuple[int, ...] = ()
                       ) -> tuple[float, float, float]:
        """:meth:`prefill_time`, and the pass's FLOPs and HBM bytes (:meth:`prefill_work`), from one memo."""
        return self._priced_prefills(tuple(new_tokens), tuple(cached_tokens))

    def _price_prefill(self, new_tokens: tuple[int, ...], cached_tokens: tuple[int, ...]) -> float:
        llm, tp = self.llm, self.tp
        cached = cached_tokens or (0,) * len(new_tokens)
        tokens = sum(new_tokens)
        if tokens == 0:
            return 0.0, 0.0, 0.0
        all_pairs = sum(n * c + n * (n + 1) / 2 for n, c in zip(new_tokens, cached))
        pairs = sum(map(llm.attention_pairs, new_tokens, cached))  # top-k and sliding windows: each layer's reach
        linear = self._linear(tokens, sampled=len(new_tokens))
        kv_bytes = (tokens + sum(cached)) * llm.kv_bytes_per_token / self.kv_shards
        attention = self.roofline.attention((pairs * self._prefill_flops_per_pair
                                             + all_pairs * self._indexer_flops_per_pair) * llm.layers / tp, kv_bytes)
        flops, nbytes = self.linear_work(tokens, len(new_tokens))
        flops += (pairs * self._prefill_flops_per_pair + all_pairs * self._indexer_flops_per_pair) * llm.layers
        nbytes += (tokens + sum(cached)) * llm.kv_bytes_per_token * self._kv_copies
        gpu_time = linear + attention + self._fixed_and_elementwise(tokens) + self.allreduce_time(tokens)
        return max(gpu_time, self.prefill_host_floor), flops, nbytes

    def _decode_step_pricers(self) -> tuple[Callable[..., float], Callable[..., None]]:
        """``decode_step_time(batch_size, total_context, attended_context=None)``: one decode iteration, one new
        token for each of ``batch_size`` sequences; and ``decode_stretch(batch_size, total_context,
        attended_context, count, overhead, ends)``: the next ``count`` iterations of a batch that does
        not change, each sequence a token longer at each (dense attention: both contexts grow by
        ``batch_size``), run back to back, each lasting ``overhead`` + its step: it appends to ``ends`` when
        each ends, summed as a worker waiting out one iteration at a time sums them (a decode stretch).

        ``total_context`` is the sum over the batch of the cached tokens; with sparse attention each new
        token attends to only ``attended_context`` of them (the top-k), but the indexer scores them all.
        The KV of the attended tokens and the indexer keys of all tokens are read from HBM once per step.
        Every decode worker prices every iteration with these, so they are closures over their constants
        (and keep the batch-size terms per size): the same arithmetic as the other passes, without attribute
        lookups, and one call for a stretch of iterations. Both give the same float for the same iteration.
        """
        # as floats: every product and quotient below is then the same float as with the integer counts (they
        # are exact below 2**53), without multi-digit integer arithmetic
        llm, tp, roofline = self.llm, float(self.tp), self.roofline
        shards = float(self.kv_shards)  # the GPUs the batch's KV is spread over (tp, or 1: MLA's latent on each)
        flop_per_pair, indexer_flop_per_pair = llm.attention_flops_per_pair(decode=True), llm.indexer_flops_per_pair()
        layers, kv_bytes = float(llm.layers), float(llm.kv_bytes_per_token)
        indexer_bytes = float(llm.indexer_bytes_per_token)
        flops, bandwidth = roofline.attention_flops, roofline.kv_bandwidth
        costs: list[tuple[float, float, float]] = []  # (linear, fixed + elementwise, all-reduce) by batch size
        indexed = bool(indexer_flop_per_pair or indexer_bytes)
        windowed = bool(llm.sliding_layers)  # sliding-window layers: decode_attended per step

        def batch_terms(batch_size: int) -> tuple[float, float, float]:
            while len(costs) <= batch_size:
                b = len(costs)
                costs.append((self._linear(b, sampled=b), self._fixed_and_elementwise(b), self.allreduce_time(b)))
            return costs[batch_size]

        def decode_attention(attended: int, total_context: int) -> float:
            """Decode attention over a batch: each new token reads ``attended`` cached tokens' KV in all (and, with
            an indexer, scores all ``total_context``); bytes or FLOPs, whichever bounds (Roofline.attention)."""
            if indexed:
                compute = (attended * flop_per_pair + total_context * indexer_flop_per_pair) * layers / tp / flops
                memory = (attended * kv_bytes + total_context * indexer_bytes) / shards / bandwidth
            else:  # the indexer's terms would add exactly +0.0
                compute = attended * flop_per_pair * layers / tp / flops
                memory = attended * kv_bytes / shards / bandwidth
            return compute if compute >= memory else memory

        def decode_step_time(batch_size: int, total_context: int, attended_context: int | None = None) -> float:
            if batch_size == 0:
                return 0.0
            attended = total_context if attended_context is None else attended_context
            if windowed:
                attended = llm.decode_attended(batch_size, attended)
            linear, fixed, allreduce = costs[batch_size] if batch_size < len(costs) else batch_terms(batch_size)
            return linear + decode_attention(attended, total_context) + fixed + allreduce

        # Without an indexer, attention's FLOPs and bytes are both proportional to the context, so the roofline
        # term that wins does not depend on it unless the two rates are within float rounding of each other
        # (each side is rounded four times at most: a margin of 1e-9 leaves that far behind).
        compute_rate, memory_rate = flop_per_pair * layers / tp / flops, kv_bytes / shards / bandwidth
        bound = ("memory" if compute_rate < memory_rate * (1 - 1e-9) else
                 "compute" if memory_rate < compute_rate * (1 - 1e-9) else "either")

        # decode_attention's winning term as (per, scale, split, rate): attended x per x scale / split / rate, the
        # same float (x 1.0 is exact); the loops below sum it in place of a call per iteration
        per, scale, split, rate = ((kv_bytes, 1.0, shards, bandwidth) if bound == "memory"
                                   else (flop_per_pair, layers, tp, flops))
        plain = scale == 1.0 and split == 1.0  # bound by bytes on one GPU: the term is attended x per / rate

        def decode_stretch(batch_size: int, total_context: int, attended_context: int, count: int, overhead: float,
                           ends: list[float]) -> None:
            end = ends[-1]
            if indexed or windowed or bound == "either":  # every step priced whole: indexer, window, or a near tie
                for i in range(1, count + 1):
                    end += overhead + decode_step_time(batch_size, total_context + i * batch_size,
                                                       attended_context + i * batch_size)
                    ends.append(end)
                return
            linear, fixed, allreduce = costs[batch_size] if batch_size < len(costs) else batch_terms(batch_size)
            # the attended tokens as a float: exact (integers below 2**53), and float x float is the interpreter's
            # fast path where int x float is not
            attended, grow = float(attended_context), float(batch_size)
            if plain and overhead == 0.0 and allreduce == 0.0:  # x 1.0, / 1.0 and + 0.0 would leave every float as is
                for _ in range(count):
                    attended += grow
                    end += linear + attended * per / rate + fixed
                    ends.append(end)
                return
            for _ in range(count):  # decode_step_time's terms without the one that loses, summed in place
                attended += grow
                end += overhead + (linear + attended * per * scale / split / rate + fixed + allreduce)
                ends.append(end)

        self.decode_attention = decode_attention
        return decode_step_time, decode_stretch

    # ------------------------------------------------------------------ work done (MFU, MBU)
    # What a pass executes, summed over the instance's GPUs: FLOPs (GEMMs, attention, the indexer; work every
    # GPU repeats counted on each) and HBM bytes (weights, KV and indexer keys, elementwise activations). The
    # workers add these up where they price a pass; the sampler divides by time and by the peaks below.

    @property
    def peak_flops(self) -> float:
        """The instance's datasheet FLOP/s at its GEMMs' precision (FP8 for an FP8 model), all its GPUs: MFU's
        denominator."""
        gpu = self.gpu
        fp8 = self.llm.spec.dtype == "fp8" and gpu.fp8_peak_flops is not None
        return (gpu.fp8_peak_flops if fp8 else gpu.peak_flops) * self.tp

    @property
    def peak_bandwidth(self) -> float:
        """The instance's datasheet HBM bytes/s, all its GPUs: MBU's denominator."""
        return self.gpu.hbm_bandwidth * self.tp

    def linear_work(self, tokens: int, sampled: int) -> tuple[float, float]:
        """FLOPs and HBM bytes of a pass's GEMMs and elementwise ops over ``tokens`` (``sampled`` through the
        LM head), as :meth:`_linear` and :meth:`_fixed_and_elementwise` price them."""
        per_token, head, replicated, weights, activations = self._linear_work_terms
        weight_bytes = weights if weights is not None else self._replicated_weight_bytes + self.llm.decode_weight_bytes(tokens)
        return tokens * per_token + sampled * head, weight_bytes + tokens * activations

    def decode_work(self, batch_size: int, attended: float, context: float, count: int = 1) -> tuple[float, float]:
        """FLOPs and HBM bytes of ``count`` decode iterations of ``batch_size`` sequences whose new tokens attend to
        ``attended`` cached tokens and (with an indexer) score ``context`` ones, each summed over the iterations."""
        llm = self.llm
        work = self._decode_linear_work
        while len(work) <= batch_size:
            work.append(self.linear_work(len(work), len(work)))
        flops, nbytes = work[batch_size]
        layers, copies = llm.layers, self._kv_copies
        return (count * flops + (attended * self._decode_flops_per_pair + context * self._indexer_flops_per_pair) * layers,
                count * nbytes + attended * llm.kv_bytes_per_token * copies
                + context * llm.indexer_bytes_per_token * copies)

    def decode_work_totals(self, iterations_of: list[int], attended: int, context: int) -> tuple[float, float]:
        """FLOPs and HBM bytes of decode iterations given as counts: ``iterations_of[b]`` iterations of batch size b,
        whose new tokens attended to ``attended`` cached tokens and scored ``context`` ones in all."""
        flops_of, bytes_of = self._linear_flops_of, self._linear_bytes_of
        while len(flops_of) < len(iterations_of):
            f, b = self.linear_work(len(flops_of), len(flops_of))
            flops_of.append(f)
            bytes_of.append(b)
        llm = self.llm
        copies = self._kv_copies
        return (sum(map(mul, iterations_of, flops_of))
                + (attended * self._decode_flops_per_pair + context * self._indexer_flops_per_pair) * llm.layers,
                sum(map(mul, iterations_of, bytes_of)) + attended * llm.kv_bytes_per_token * copies
                + context * llm.indexer_bytes_per_token * copies)

    def prefill_work(self, new_tokens: list[int] | tuple[int, ...], cached_tokens: list[int] | tuple[int, ...] = ()
                     ) -> tuple[float, float]:
        """FLOPs and HBM bytes of the prefill pass :meth:`prefill_time` prices (kept per batch, as its price is)."""
        return self._prefill_works(tuple(new_tokens), tuple(cached_tokens))

    def _count_prefill(self, new_tokens: tuple[int, ...], cached_tokens: tuple[int, ...]) -> tuple[float, float]:
        llm = self.llm
        cached = cached_tokens or (0,) * len(new_tokens)
        tokens = sum(new_tokens)
        if tokens == 0:
            return 0.0, 0.0
        all_pairs = sum(n * c + n * (n + 1) / 2 for n, c in zip(new_tokens, cached))
        pairs = sum(map(llm.attention_pairs, new_tokens, cached))  # top-k and sliding windows: each layer's reach
        flops, nbytes = self.linear_work(tokens, len(new_tokens))
        flops += (pairs * self._prefill_flops_per_pair + all_pairs * self._indexer_flops_per_pair) * llm.layers
        return flops, nbytes + (tokens + sum(cached)) * llm.kv_bytes_per_token * self._kv_copies

    def forward_work(self, decode_seqs: int, decode_context: int, chunks: list[tuple[int, int, bool]]
                     ) -> tuple[float, float]:
        """FLOPs and HBM bytes of the aggregated pass :meth:`forward_time` prices."""
        llm = self.llm
        tokens = decode_seqs + sum(new for new, _, _ in chunks)
        if tokens == 0:
            return 0.0, 0.0
        flops, nbytes = self.linear_work(tokens, decode_seqs + sum(1 for _, _, last in chunks if last))
        attended = llm.decode_attended(decode_seqs, decode_context)
        flops += attended * self._decode_flops_per_pair * llm.layers
        nbytes += attended * llm.kv_bytes_per_token * self._kv_copies
        for new, cached, _ in chunks:
            flops += llm.attention_pairs(new, cached) * self._prefill_flops_per_pair * llm.layers
            nbytes += (new + cached) * llm.kv_bytes_per_token * self._kv_copies
        return flops, nbytes

    def forward_time(self, decode_seqs: int, decode_context: int, chunks: list[tuple[int, int, bool]]) -> float:
        """One forward pass of an aggregated engine's iteration: ``decode_seqs`` sequences decoding one token
        each over ``decode_context`` cached tokens in all, plus prompt chunks ``(new, cached, last)``: ``new``
        tokens computed after ``cached`` ones of the same prompt, ``last`` when the chunk ends the prompt (its
        last token's logits are sampled). Weights are read once for all the pass's tokens; decode attention
        (bytes-bound) and chunk attention (FLOP-bound) are priced as the separate kernels they are."""
        llm, tp = self.llm, self.tp
        chunk_tokens = sum(new for new, _, _ in chunks)
        tokens = decode_seqs + chunk_tokens
        if tokens == 0:
            return 0.0
        sampled = decode_seqs + sum(1 for _, _, last in chunks if last)
        linear = self._linear(tokens, sampled)
        attention = 0.0
        if decode_seqs:
            attention += self.decode_attention(llm.decode_attended(decode_seqs, decode_context), decode_context)
        if chunks:
            pairs = sum(llm.attention_pairs(n, c) for n, c, _ in chunks)
            kv_tokens = sum(n + c for n, c, _ in chunks)
            attention += self.roofline.attention(pairs * llm.attention_flops_per_pair(decode=False) * llm.layers / tp,
                                                 kv_tokens * llm.kv_bytes_per_token / self.kv_shards)
        gpu_time = linear + attention + self._fixed_and_elementwise(tokens) + self.allreduce_time(tokens)
        return max(gpu_time, self.prefill_host_floor) if chunks else gpu_time


def fused_layer_overhead(gpu: GPUSpec, kernels: LayerKernels | None) -> float:
    """The fixed cost of one graph-replayed layer launching ``kernels``: the profile's measured one (a Llama
    layer's, CALIBRATION_LAYER) split into its light kernels at the measured graph launch floor and its heavy
    ones sharing the rest; an architecture with more kernels per layer (MLA, MoE routing) pays for each."""
    if kernels is None or kernels == CALIBRATION_LAYER:
        return gpu.fused_layer_overhead
    light = gpu.graph_kernel_floor
    if light is None:
        raise ValueError(f"model.layer_kernels needs {gpu.name}'s graph_kernel_floor")
    heavy = (gpu.fused_layer_overhead - CALIBRATION_LAYER.light * light) / CALIBRATION_LAYER.heavy
    return kernels.heavy * heavy + kernels.light * light
