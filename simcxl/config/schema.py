"""Typed scenario configuration: what a scenario YAML may say, validated once at load.

Every section is a pydantic model that forbids unknown keys, so a typo is an error rather than a
silently ignored setting. Quantities with units are parsed into SI floats here (see ``units``); the rest
of the simulator receives these objects, never raw dicts.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from simcxl.config.units import parse_bandwidth, parse_duration, parse_flop_rate, parse_message_rate, parse_size
from simcxl.kvcache import CONNECTORS

Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
Bytes = Annotated[float, BeforeValidator(parse_size), Field(gt=0)]
BytesPerSecond = Annotated[float, BeforeValidator(parse_bandwidth), Field(gt=0)]
FlopsPerSecond = Annotated[float, BeforeValidator(parse_flop_rate), Field(gt=0)]
MessagesPerSecond = Annotated[float, BeforeValidator(parse_message_rate), Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
TraceFormat = Literal["mooncake", "azure", "burstgpt"]


class Section(BaseModel):
    """Base of every config section: unknown keys and silent type coercion are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- hardware


class AllReducePoint(Section):
    """One measured or published all-reduce over NVLink: ``bytes`` per GPU take ``time`` at a tensor-parallel
    degree. Between points time is interpolated linearly in bytes; beyond the last, it grows at the last
    segment's rate (bandwidth-bound); below the first, it is the first point's (latency-bound)."""

    tensor_parallel: Annotated[int, Field(ge=2)]
    bytes: Bytes
    time: Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class MoEGemmPoint(Section):
    """One measured efficiency of the grouped expert GEMMs (w13 then w2) of a forward over ``tokens`` tokens:
    their roofline time (weight bytes at HBM bandwidth or FLOPs at the FP8/bf16 peak, whichever bounds) over
    the measured time. Between points it is interpolated linearly in tokens; outside, the nearest point's."""

    tokens: Annotated[int, Field(ge=1)]
    efficiency: Annotated[float, Field(gt=0, le=1)]


class GPUSpec(Section):
    """One GPU: roofline peaks, memory, intra-node interconnect and calibrated efficiencies.

    ``fp8_peak_flops`` / ``fp8_compute_efficiency`` price the GEMMs of a model whose ``dtype`` is fp8
    (FP8 weights and activations); ``allreduce`` lists measured or published all-reduce costs by
    tensor-parallel degree (a degree not listed uses ``nvlink_latency`` and ``nvlink_bandwidth``).
    ``moe_gemm`` prices a mixture-of-experts model's routed and shared expert GEMMs as their own roofline
    group at a measured efficiency by tokens per forward (none: the experts join the other GEMMs' roofline).
    ``elementwise_efficiency`` and ``layer_overhead`` describe unfused ops launched one by one (an eager
    engine); ``fused_*`` the same ops fused and replayed from CUDA graphs (``serving.execution: fused``).
    The fused efficiency is the nominal unfused traffic over the time taken, so it may exceed 1: fusion
    skips the round trips that traffic counts.
    """

    name: str
    peak_flops: FlopsPerSecond
    hbm_bandwidth: BytesPerSecond
    hbm_capacity: Bytes
    memory_utilization: Fraction = 0.9
    compute_efficiency: Fraction
    attention_efficiency: Fraction
    memory_efficiency: Fraction
    attention_memory_efficiency: Fraction | None = None
    elementwise_efficiency: Fraction = 1.0
    layer_overhead: Seconds
    nvlink_bandwidth: BytesPerSecond
    nvlink_latency: Seconds
    fp8_peak_flops: FlopsPerSecond | None = None
    fp8_compute_efficiency: Fraction | None = None
    fused_elementwise_efficiency: PositiveFloat | None = None
    fused_layer_overhead: Seconds | None = None
    graph_kernel_floor: Seconds | None = None  # one trivial kernel replayed from a CUDA graph (LayerKernels)
    host_gather_bandwidth: BytesPerSecond | None = None
    host_gather_latency: Seconds = 0.0
    allreduce: list[AllReducePoint] = []
    moe_gemm: list[MoEGemmPoint] = []
    calibrated: bool = False

    @model_validator(mode="after")
    def _fp8_pair(self) -> "GPUSpec":
        if (self.fp8_peak_flops is None) != (self.fp8_compute_efficiency is None):
            raise ValueError("fp8_peak_flops and fp8_compute_efficiency go together: give both or neither")
        if (self.fused_elementwise_efficiency is None) != (self.fused_layer_overhead is None):
            raise ValueError("fused_elementwise_efficiency and fused_layer_overhead go together: give both or neither")
        return self


class PCIeSpec(Section):
    """The PCIe link between a GPU and its host, NIC and CXL root port (per direction)."""

    bandwidth: BytesPerSecond
    latency: Seconds
    dma_setup: Seconds
    min_copy_time: Seconds = 0.0


class NICSpec(Section):
    """An RDMA NIC and its port on the top-of-rack switch."""

    line_rate: BytesPerSecond
    efficiency: Fraction
    latency: Seconds
    per_transfer_overhead: Seconds
    message_rate: MessagesPerSecond
    outstanding_reads: PositiveInt = 64
    gpudirect: bool = True


class SwitchSpec(Section):
    """The top-of-rack Ethernet/InfiniBand switch: non-blocking, a fixed forwarding latency."""

    latency: Seconds


class HostDRAMSpec(Section):
    """Host DRAM of one node, reached by GPUs over PCIe (a KV-cache tier)."""

    bandwidth: BytesPerSecond
    capacity: Bytes
    load_latency: Seconds


class CXLSpec(Section):
    """A CXL 2.0 switch with Type-3 memory devices behind it, shared by every node of the rack.

    Loads from a host pay ``device_latency`` (load-to-use of a directly attached device) plus
    ``switch_latency`` each way per switch hop; loads from a GPU also cross its PCIe link both ways.
    ``switch_lanes`` is what one switch chip offers; a rack whose devices and host ports need more lanes is
    billed for more switches (the fabric model still joins them as one).
    """

    device_latency: Seconds
    switch_latency: Seconds
    switch_hops: Annotated[int, Field(ge=0)] = 1
    host_port_bandwidth: BytesPerSecond
    host_ports_per_node: PositiveInt = 1
    devices: PositiveInt
    device_capacity: Bytes
    device_link_bandwidth: BytesPerSecond
    link_efficiency: Fraction
    device_media_bandwidth: BytesPerSecond
    interleave: bool = True
    gpu_outstanding_loads: PositiveInt
    cpu_outstanding_loads: PositiveInt
    line_bytes: PositiveInt = 64
    lock_round_trips: PositiveInt = 2
    switch_lanes: PositiveInt = 256


class MemoryPoolSpec(Section):
    """Dedicated memory servers whose DRAM is reached only through their RDMA NICs: the disaggregated
    KV pool of Mooncake-store-style systems (and of SAC's RDMA baselines). Their NICs are ``fabric.nic``."""

    nodes: PositiveInt
    nics_per_node: PositiveInt
    capacity_per_node: Bytes
    dram_bandwidth: BytesPerSecond


class FabricSpec(Section):
    pcie: PCIeSpec
    nic: NICSpec
    tor: SwitchSpec
    host_dram: HostDRAMSpec | None = None
    cxl: CXLSpec | None = None
    memory_pool: MemoryPoolSpec | None = None


# --------------------------------------------------------------------------- model


class MLASpec(Section):
    """Multi-head latent attention (DeepSeek-V2/V3): a compressed KV latent plus a shared rope key."""

    q_lora_rank: PositiveInt
    kv_lora_rank: PositiveInt
    qk_nope_head_dim: PositiveInt
    qk_rope_head_dim: PositiveInt
    v_head_dim: PositiveInt


class MoESpec(Section):
    """Mixture of experts: only ``experts_per_token`` routed experts (plus shared ones) run per token."""

    routed_experts: PositiveInt
    experts_per_token: PositiveInt
    shared_experts: Annotated[int, Field(ge=0)] = 0
    expert_intermediate: PositiveInt
    dense_layers: Annotated[int, Field(ge=0)] = 0

    @field_validator("experts_per_token")
    @classmethod
    def _topk_within_experts(cls, value: int, info: ValidationInfo) -> int:
        if value > info.data.get("routed_experts", value):
            raise ValueError(f"experts_per_token ({value}) exceeds routed_experts ({info.data['routed_experts']})")
        return value


class SparseAttentionSpec(Section):
    """DeepSeek Sparse Attention: a lightning indexer scores every cached token, attention reads the top-k."""

    index_heads: PositiveInt
    index_head_dim: PositiveInt
    index_bytes_per_token_per_layer: PositiveInt
    topk: PositiveInt


class LayerKernels(Section):
    """The kernels one decoder layer launches as engines implement this architecture (counted from their source),
    in two kinds: ``heavy`` (GEMMs, batched matmuls and attention, each with its ramp-up and tail) and ``light``
    (norms, quantization, RoPE, cache stores, routing: small kernels near the launch floor). The grouped expert
    GEMMs are not counted: ``GPUSpec.moe_gemm`` prices them whole. Unset: a Llama layer's, which is what the
    GPU profile's ``fused_layer_overhead`` was measured on (``simcxl.hardware.gpu.CALIBRATION_LAYER``)."""

    heavy: Annotated[int, Field(ge=1)]
    light: Annotated[int, Field(ge=0)]


class ModelSpec(Section):
    """An LLM's architecture, as in its HuggingFace config.json."""

    name: str
    layers: PositiveInt
    hidden: PositiveInt
    heads: PositiveInt
    kv_heads: PositiveInt
    head_dim: PositiveInt
    intermediate: PositiveInt
    vocab: PositiveInt
    dtype: Literal["bf16", "fp16", "fp8", "int4", "mxfp4"] = "bf16"  # int4: 4-bit weights, 16-bit activations (AWQ,
    # GPTQ); mxfp4: MoE expert weights in MXFP4, every other weight bf16, bf16 activations (gpt-oss)
    kv_dtype: Literal["bf16", "fp16", "fp8"] | None = None
    attention: Literal["gqa", "mla"] = "gqa"
    mla: MLASpec | None = None
    moe: MoESpec | None = None
    sparse: SparseAttentionSpec | None = None
    kv_bytes_per_token_per_layer: PositiveInt | None = None  # as the engine stores it, when not dtype x dims
    context_window: PositiveInt | None = None  # tokens one sequence may hold, prompt + output (max_position_embeddings)
    sliding_window: PositiveInt | None = None  # tokens a sliding-window layer attends to and keeps (HF sliding_window)
    sliding_layers: Annotated[int, Field(ge=0)] | None = None  # layers that slide (HF layer_types); None: all
    layer_kernels: LayerKernels | None = None  # the fixed cost of a graph-replayed layer scales with its kernels

    @model_validator(mode="after")
    def _consistent(self) -> "ModelSpec":
        if self.dtype in ("int4", "mxfp4") and self.kv_dtype is None:
            raise ValueError(f"dtype '{self.dtype}' quantizes the weights only: give kv_dtype, the dtype the engine "
                             "keeps the KV cache in (bf16 unless the engine is told otherwise)")
        if self.dtype == "mxfp4" and self.moe is None:
            raise ValueError("dtype 'mxfp4' quantizes the MoE experts' weights (the rest stay bf16): it needs 'moe'")
        if self.sliding_layers is not None and (self.sliding_window is None or self.sliding_layers > self.layers):
            raise ValueError(f"sliding_layers ({self.sliding_layers}) needs sliding_window and at most layers "
                             f"({self.layers})")
        if self.sliding_window is not None and (self.attention != "gqa" or self.sparse is not None):
            raise ValueError("sliding_window is modelled for grouped-query attention without sparse attention")
        if self.attention == "mla" and self.mla is None:
            raise ValueError("attention 'mla' needs an 'mla' section")
        if self.attention == "gqa" and self.heads % self.kv_heads:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")
        return self


# --------------------------------------------------------------------------- cluster and serving


class ClusterSpec(Section):
    """The rack: prefill and decode nodes (disaggregated serving) or ``nodes`` of colocated instances
    (aggregated), GPUs per node, tensor parallelism, NICs per node."""

    prefill_nodes: PositiveInt | None = None
    decode_nodes: PositiveInt | None = None
    nodes: PositiveInt | None = None
    gpus_per_node: PositiveInt = 1
    tensor_parallel: PositiveInt = 1
    nics_per_node: PositiveInt = 1

    @field_validator("tensor_parallel")
    @classmethod
    def _tp_divides_node(cls, value: int, info: ValidationInfo) -> int:
        gpus = info.data.get("gpus_per_node", value)
        if gpus % value:
            raise ValueError(f"tensor_parallel ({value}) must divide gpus_per_node ({gpus})")
        return value


class PrefillSpec(Section):
    max_batch_tokens: PositiveInt = 8192
    max_batch_size: PositiveInt = 64


class DecodeSpec(Section):
    """A decode instance's batch and KV admission. ``on_demand`` (vLLM, SGLang): a request lands with blocks
    for its prompt, sequences take a block of ``block_tokens`` as they cross into it, and when none is free
    the newest sequence is preempted and later recomputed here. ``reserve``: the whole footprint (prompt +
    output) is reserved before the KV moves, which needs the output length no engine knows; no preemption."""

    max_batch_size: PositiveInt = 256
    admission: Literal["on_demand", "reserve"] = "on_demand"
    block_tokens: PositiveInt = 16


class AggregatedSpec(Section):
    """A colocated instance's scheduler, vLLM v1's: per iteration at most ``max_num_batched_tokens`` tokens
    (running sequences first, then new prompts, long prompts in chunks) and ``max_num_seqs`` sequences;
    KV in blocks of ``block_tokens`` allocated as sequences grow (preemption by recompute). ``mixed_prefill``
    false: prompt chunks run in prefill-only iterations, decodes paused (SGLang without mixed chunks).
    ``prefix_caching``: cached prompt prefixes are reused from HBM (vLLM v1's automatic prefix caching and
    SGLang's radix cache, both on by default). ``async_scheduling``: the next iteration's batch is formed when this
    one is launched (vLLM v1's --async-scheduling, SGLang's overlap scheduler), so a prompt that arrives while an
    iteration runs waits for the one after next."""

    max_num_batched_tokens: PositiveInt = 8192
    max_num_seqs: PositiveInt = 256
    block_tokens: PositiveInt = 16
    mixed_prefill: bool = True
    prefix_caching: bool = True
    async_scheduling: bool = False

    @model_validator(mode="after")
    def _decodes_fit_the_budget(self) -> "AggregatedSpec":
        if self.max_num_seqs > self.max_num_batched_tokens:
            raise ValueError(f"max_num_seqs ({self.max_num_seqs}) exceeds max_num_batched_tokens "
                             f"({self.max_num_batched_tokens}): every running sequence must fit one iteration")
        return self


class FrontendSpec(Section):
    """The request's path between the client and the engine's scheduler, stage by stage (issue #37;
    docs/notes/engine_fixed_path.md). In: ``http_in`` (HTTP server, request parsing), ``tokenize`` +
    ``tokenize_per_token`` x prompt tokens (the API server's tokenizer), ``ipc`` + ``ipc_per_token`` x prompt
    tokens (serialize, the hop to the engine process, deserialize). Out, for every token the client sees:
    ``ipc`` (the hop back), ``detokenize`` (and, for engines with a detokenizer process, its hop) and
    ``stream_out`` (the streamed chunk). Added to ``frontend_latency`` each way; all 0 by default."""

    http_in: Seconds = 0.0
    tokenize: Seconds = 0.0
    tokenize_per_token: Seconds = 0.0
    ipc: Seconds = 0.0
    ipc_per_token: Seconds = 0.0
    detokenize: Seconds = 0.0
    stream_out: Seconds = 0.0

    def entry(self, prompt_tokens: int) -> float:
        """Seconds from the client sending a request of ``prompt_tokens`` to the engine receiving it."""
        return (self.http_in + self.tokenize + self.ipc
                + (self.tokenize_per_token + self.ipc_per_token) * prompt_tokens)

    @property
    def exit(self) -> float:
        """Seconds from a token being sampled to the client receiving it."""
        return self.ipc + self.detokenize + self.stream_out


class StepCPUSpec(Section):
    """The engine's CPU time per forward pass not overlapped with the GPU, by stage (issue #37): the
    scheduler's ``schedule``, ``prepare_inputs`` (input tensors and their host-to-device copies) and
    ``sample`` (sampling and the sampled ids back to the host). Added to ``iteration_overhead`` on every
    iteration of every instance; all 0 by default."""

    schedule: Seconds = 0.0
    prepare_inputs: Seconds = 0.0
    sample: Seconds = 0.0

    @property
    def total(self) -> float:
        return self.schedule + self.prepare_inputs + self.sample


class ServingSpec(Section):
    """``mode: disaggregated`` (prefill and decode instances, KV handed off by the KV manager) or
    ``aggregated`` (every instance prefills and decodes, chunked prefill mixed into decode iterations).
    ``execution: fused``: the engine runs fused elementwise kernels replayed from CUDA graphs, as vLLM
    (torch.compile) and SGLang (its own fused kernels) do by default; ``eager``: unfused ops launched one
    by one (vLLM ``--enforce-eager``, plain PyTorch). ``iteration_overhead`` is the engine's own time per
    forward pass beyond the GPU's (scheduling, input preparation, sampling, detokenization not overlapped
    with the GPU). ``frontend_latency`` is one way between a client and the engine (HTTP, tokenization and
    IPC in; detokenization and streaming out): a request reaches the engine that long after it is sent,
    and its tokens reach the client that long after they are sampled (TTFT and E2E are the client's).
    ``frontend`` prices that path stage by stage (its entry grows with the prompt), ``step_cpu`` the
    iteration's CPU stages; both add to the two scalars. ``prefill_host_floor``: a pass with prompt chunks lasts at
    least this long, the CPU's dispatch of an engine that runs prefill eagerly (SGLang: no CUDA graph for extend
    batches), overlapped with the GPU's work. ``dp_attention``: attention runs data-parallel over the instance's
    GPUs (SGLang --enable-dp-attention): each GPU attends for its own requests with the attention weights whole, so
    an MLA model's latent KV is kept once, not on every GPU."""

    mode: Literal["disaggregated", "aggregated"] = "disaggregated"
    router: Literal["round_robin", "least_loaded", "cache_aware"] = "round_robin"
    prefill: PrefillSpec = PrefillSpec()
    decode: DecodeSpec = DecodeSpec()
    aggregated: AggregatedSpec = AggregatedSpec()
    execution: Literal["fused", "eager"] = "fused"
    iteration_overhead: Seconds = 0.0
    frontend_latency: Seconds = 0.0
    frontend: FrontendSpec = FrontendSpec()
    step_cpu: StepCPUSpec = StepCPUSpec()
    prefill_host_floor: Seconds = 0.0
    dp_attention: bool = False


class PrefixCacheSpec(Section):
    """A prefix-aware KV cache: blocks indexed by chained hash, LRU per store.

    ``capacity`` is per store: per node for the host-DRAM tier of ``rdma``, the whole pool for
    ``cxl_block`` (default: the pool's capacity); None is unbounded. ``scope: rack`` lets every prefill
    worker reuse any node's blocks (a Mooncake store, remote hits over RDMA); ``node`` only its own
    node's (Dynamo's host-memory tier); ``instance``: the only cache is ``capacity`` of each prefill
    instance's own HBM (vLLM's automatic prefix caching on a disaggregated prefill worker), hits load
    nothing. ``gpu_capacity`` keeps that much of each prefill instance's HBM as a first tier above the
    host or pool one (vLLM's automatic prefix caching, SGLang's radix cache): hits there load nothing.
    """

    capacity: Bytes | None = None
    scope: Literal["rack", "node", "instance"] = "rack"
    gpu_capacity: Bytes | None = None

    @model_validator(mode="after")
    def _one_hbm_tier(self) -> "PrefixCacheSpec":
        if self.scope == "instance" and (self.capacity is None or self.gpu_capacity is not None):
            raise ValueError("scope 'instance' keeps the cache in each prefill instance's HBM: give its size as "
                             "capacity, and no gpu_capacity (that is the first tier above a host or pool one)")
        return self


class HostStagingSpec(Section):
    """A connector that stages each request's KV through host memory as one serialized object.

    vLLM v0's Mooncake-store connector gathers the KV from the paged cache, serializes it with
    safetensors (a pageable device-to-host copy) and copies it into the store client's registered
    buffer before the NIC moves it (``send``); the receiver copies it out, parses it and copies it to
    the GPU from pageable memory (``receive``). Each rate is one rank's whole chain, bytes of KV per
    second, measured by ``simcxl.profiling.store_staging``.
    """

    send: BytesPerSecond
    receive: BytesPerSecond


class KVManagerSpec(Section):
    """How KV cache moves from prefill to decode (see ``simcxl.kvcache``).

    ``descriptor_time`` is the CPU time to post one transfer descriptor on the block-based paths (the
    ``rdma`` push and host-DRAM tier loads): a paged, layer-separate KV cache moves one descriptor per
    page of ``page_tokens``, layer and K/V tensor (vLLM's NIXL connector, Dynamo KVBM). Posting overlaps
    with data movement.
    0 leaves it out; experiments sweep it because published per-descriptor costs span 1000x.
    ``blocking_send`` / ``blocking_receive``: the connector runs on the workers' own loops (vLLM v0).
    ``host_staging``: the connector copies the KV through host memory on both ends (see HostStagingSpec).
    ``hot_buffer_tokens``, ``topk_overlap``, ``fetch_overlap``: sparse decode (``cxl_sparse``, ``rdma_sparse``);
    ``host_pool``: the host memory of one decode instance that ``rdma_sparse`` keeps whole prefixes in
    (default: the node's ``host_dram.capacity`` over its instances).
    """

    type: str = "rdma"  # a name in simcxl.kvcache.CONNECTORS
    prefix_cache: PrefixCacheSpec | None = None
    intra_node_lock: Seconds = 0.2e-6
    blocking_send: bool = False
    blocking_receive: bool = False
    host_staging: HostStagingSpec | None = None
    descriptor_time: Seconds = 0.0
    messages: Literal["tensor", "layer"] = "tensor"
    hot_buffer_tokens: PositiveInt = 4096
    sparse_fetch: Literal["cxl_load", "rdma_page"] = "cxl_load"
    page_tokens: PositiveInt = 16
    topk_overlap: Fraction = 0.9
    fetch_overlap: bool = True
    host_pool: Bytes | None = None

    @field_validator("type")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in CONNECTORS:
            raise ValueError(f"unknown KV manager {value!r}; expected one of {', '.join(CONNECTORS)}")
        return value


# --------------------------------------------------------------------------- workload


class FixedLength(Section):
    dist: Literal["fixed"]
    value: PositiveInt



class UniformLength(Section):
    dist: Literal["uniform"]
    min: PositiveInt
    max: PositiveInt

    @field_validator("max")
    @classmethod
    def _ordered(cls, value: int, info: ValidationInfo) -> int:
        if value < info.data.get("min", value):
            raise ValueError(f"min ({info.data['min']}) exceeds max ({value})")
        return value



class LognormalLength(Section):
    """Lognormal with the given mean and log-space sigma, truncated to [1, max]."""

    dist: Literal["lognormal"]
    mean: Annotated[float, Field(gt=0)]
    sigma: Annotated[float, Field(gt=0)]
    max: PositiveInt



class EmpiricalLength(Section):
    """Lengths drawn from a real trace's column (``input`` or ``output``); ``trace`` is relative to its file."""

    dist: Literal["empirical"]
    trace: str
    format: TraceFormat
    column: Literal["input", "output"]
    max: PositiveInt | None = None


LengthSpec = Annotated[Union[FixedLength, UniformLength, LognormalLength, EmpiricalLength],
                       Field(discriminator="dist")]


class SharedPrefixSpec(Section):
    """Requests drawn into ``groups`` that each share a prefix of ``tokens`` (system prompts, few-shot)."""

    groups: PositiveInt
    tokens: PositiveInt


class ConversationSpec(Section):
    """Multi-turn chats: each conversation sends ``turns`` requests ``think_time`` apart, every prompt
    re-sending the whole history (previous prompts and answers) plus a new user message."""

    turns: PositiveInt
    think_time: Seconds


class RoundSpec(Section):
    """One round of a workload sent again: its clients (closed loops only; default the workload's)."""

    concurrency: PositiveInt | None = None


def _rounds_as_list(value):
    """``rounds: R`` is R identical rounds (``[{}] * R``); a list is one mapping per round."""
    if isinstance(value, bool) or value is None or isinstance(value, list):
        return value
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"expected a number of rounds >= 1 or a non-empty list of rounds, got {value}")
        return [{}] * value
    raise ValueError(f"expected a number of rounds (e.g. 2) or a list with one mapping per round "
                     f"(e.g. [{{concurrency: 8}}, {{concurrency: 64}}]), got {value!r}")


# ``rounds: R`` (R identical rounds) or one mapping per round; the last round is the measured one
RoundsSpec = Annotated[Annotated[list[RoundSpec], Field(min_length=1)] | None, BeforeValidator(_rounds_as_list)]


def round_concurrency(spec) -> list[int | None] | None:
    """Each round's clients (None: open loop) of a workload spec, or None when it has no rounds."""
    if spec.rounds is None:
        return None
    base = getattr(spec, "concurrency", None)
    return [base if r.concurrency is None else r.concurrency for r in spec.rounds]


def _open_loop_rounds(spec) -> None:
    """An open-loop workload's rounds replay its arrival times: no round may name clients."""
    if spec.rounds is not None and getattr(spec, "concurrency", None) is None:
        for i, r in enumerate(spec.rounds):
            if r.concurrency is not None:
                raise ValueError(f"rounds[{i}].concurrency: only a closed-loop workload (type: closed_loop, or a "
                                 f"trace with concurrency) has clients; an open-loop round replays the arrival times")


class PoissonWorkload(Section):
    """Open-loop arrivals at ``rate`` requests per second: Poisson, or gamma with ``burstiness`` = CV > 1."""

    type: Literal["poisson"]
    rate: Annotated[float, Field(gt=0)]
    num_requests: PositiveInt
    input_tokens: LengthSpec
    output_tokens: LengthSpec
    burstiness: Annotated[float, Field(gt=0)] = 1.0
    block_tokens: PositiveInt = 16
    shared_prefix: SharedPrefixSpec | None = None
    conversation: ConversationSpec | None = None
    rounds: RoundsSpec = None

    @model_validator(mode="after")
    def _rounds(self) -> "PoissonWorkload":
        _open_loop_rounds(self)
        return self


class TraceWorkload(Section):
    """Replay of a real trace; ``path`` is relative to the file that sets it. With ``concurrency``, a closed
    loop over the trace's prompts (lengths and shared-prefix hashes; its arrival times are ignored): a
    benchmark client with ``--max-concurrency`` replaying a dataset."""

    type: Literal["trace"]
    format: TraceFormat
    path: str
    first: PositiveInt | None = None
    start: Seconds = 0.0
    end: Seconds | None = None
    time_scale: Annotated[float, Field(gt=0)] = 1.0
    max_input_tokens: PositiveInt | None = None
    max_output_tokens: PositiveInt | None = None
    skip_bad_rows: bool = False
    concurrency: PositiveInt | None = None
    rounds: RoundsSpec = None

    @model_validator(mode="after")
    def _rounds(self) -> "TraceWorkload":
        _open_loop_rounds(self)
        return self


class ClosedLoopWorkload(Section):
    """``concurrency`` clients, each sending its next request when its last one finishes (all start at
    once): a serving benchmark's ``--max-concurrency C --request-rate inf``. Every request generates its
    full ``output_tokens`` (``--ignore-eos``)."""

    type: Literal["closed_loop"]
    concurrency: PositiveInt
    num_requests: PositiveInt
    input_tokens: LengthSpec
    output_tokens: LengthSpec
    block_tokens: PositiveInt = 16
    rounds: RoundsSpec = None


WorkloadSpec = Annotated[Union[PoissonWorkload, TraceWorkload, ClosedLoopWorkload], Field(discriminator="type")]


MIN_SAMPLE_INTERVAL = 1e-3  # one SimPy event per sample: finer windows than a decode iteration say nothing


class RunSpec(Section):
    """Limits of one run: requests still unfinished at ``max_simulated_time`` are reported, not lost."""

    max_simulated_time: Seconds = 24 * 3600.0
    sample_interval: Annotated[float, BeforeValidator(parse_duration), Field(ge=MIN_SAMPLE_INTERVAL)] = 1.0


class Scenario(Section):
    """A whole scenario: the root of a scenario YAML after includes and overrides are applied."""

    name: str
    seed: Annotated[int, Field(ge=0)] = 0
    gpu: GPUSpec
    model: ModelSpec
    cluster: ClusterSpec
    fabric: FabricSpec
    serving: ServingSpec = ServingSpec()
    kv_manager: KVManagerSpec = KVManagerSpec()
    workload: WorkloadSpec
    run: RunSpec = RunSpec()

    @model_validator(mode="after")
    def _layout_fits_mode(self) -> "Scenario":
        c = self.cluster
        if self.serving.mode == "aggregated":
            if c.nodes is None or c.prefill_nodes is not None or c.decode_nodes is not None:
                raise ValueError("cluster: aggregated serving takes 'nodes' (every instance prefills and decodes), "
                                 "not prefill_nodes/decode_nodes")
        elif c.prefill_nodes is None or c.decode_nodes is None or c.nodes is not None:
            raise ValueError("cluster: disaggregated serving takes 'prefill_nodes' and 'decode_nodes' (not 'nodes'); "
                             "set serving.mode: aggregated for colocated instances")
        if self.serving.execution == "fused" and self.gpu.fused_layer_overhead is None:
            raise ValueError(f"serving.execution: fused needs the GPU profile's fused_layer_overhead and "
                             f"fused_elementwise_efficiency, which {self.gpu.name}'s lacks; measure them with "
                             f"`python -m simcxl.profiling.compiled_layer` or set serving.execution: eager")
        if (self.serving.execution == "fused" and self.model.layer_kernels is not None
                and self.gpu.graph_kernel_floor is None):
            raise ValueError(f"model.layer_kernels prices a fused layer by its kernels, which needs the GPU profile's "
                             f"graph_kernel_floor; {self.gpu.name}'s lacks it (measure it with "
                             f"`python -m simcxl.profiling.moe_kernels`, table launch.csv)")
        return self

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        """The name is the default results folder (results/NAME): it must stay one plain folder name."""
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", value) or value in (".", ".."):
            raise ValueError(f"expected a plain folder name of letters, digits, '.', '_' or '-' (it names the "
                             f"results folder results/NAME), got {value!r}")
        return value
