"""Sparse-attention decode with a per-request hot buffer in HBM (SGLang's HiSparse), whatever the far tier.

For DSA models (DeepSeek-V3.2) a decode step reads only the top-k KV entries the indexer selects. HiSparse
gives each request a small hot buffer in HBM (``hot_buffer_tokens``, LRU) and keeps the full KV in a far
tier; every step a swap-in kernel finds the selected entries that miss in the buffer, evicts, and
copies the misses in before attention. SAC's far tier is a CXL pool (``cxl_sparse``); HiSparse's own,
and SAC's RDMA baseline's, is the decode node's host memory (``rdma_sparse``). This module owns what
they share: how much HBM a request holds, how many entries each step misses, and how the fetch overlaps
the step; a manager says only where misses come from (:meth:`SparseDecode.fetch_misses`).

Hit rates come from the selection model of ``sparse_access`` (consecutive steps overlap by
``topk_overlap``); a request's first step finds its buffer empty and fetches its whole top-k. A layer's
top-k is known only once its indexer has run on that layer's input, so HiSparse swaps a layer's misses in
between its indexer and its attention: the step pays every layer's fetch, latency included, on top of
its compute (``fetch_overlap: false``; HiSparse's authors name better overlap as future work). With
``fetch_overlap: true`` the misses of layer l+1 are fetched while layer l computes (a selection predicted
one layer ahead), so a step costs max(compute, fetch) plus one layer's fetch. Entries are fetched by the ranks that serve the requests
(DP attention, as HiSparse deployments run: each rank decodes its own requests), so a step's misses
split evenly over the instance's GPUs.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Generator

import simpy

from simcxl.kvcache.protocol import Handoff
from simcxl.kvcache.sparse_access import hot_buffer_hit_rate


class SparseDecode:
    """Mixin for a :class:`KVManager` whose decode steps fetch their top-k misses into a hot buffer."""

    fetches_each_step = True
    sparse_keys = frozenset({"hot_buffer_tokens", "topk_overlap", "fetch_overlap"})  # added to a design's ``reads``
    tiered = True  # the full KV is in the far tier, only the hot buffer in HBM: aggregated instances ask too

    @classmethod
    def missing(cls, scenario) -> str | None:
        if scenario.model.sparse is None:
            return (f"'{cls.name}' needs a sparse-attention model (a model.sparse section, e.g. "
                    f"models/deepseek-v3.2.yaml); {scenario.model.name} attends to every token")
        return super().missing(scenario)

    def __init__(self, env, scenario, llm, fabric, block_tokens: int):
        super().__init__(env, scenario, llm, fabric, block_tokens)
        spec = scenario.kv_manager
        self.buffer_tokens = spec.hot_buffer_tokens
        self.overlap = spec.topk_overlap
        self.fetch_overlap = spec.fetch_overlap
        self.entry_bytes = llm.kv_bytes_per_token_per_layer
        self.selected_entries = 0.0
        self.missed_entries = 0.0
        self.request_steps = 0
        self.fetch_step_tokens = 0  # tokens emitted by decode steps that fetched; their compute, fetch, whole times
        self.step_compute_s = self.step_fetch_s = self.step_s = 0.0

    def after_prefill(self, request, instance) -> Handoff:
        """The decode instance holds the hot buffer and the generated tokens' KV, not the prompt's."""
        handoff = super().after_prefill(request, instance)
        handoff.decode_kv_tokens = min(request.total_tokens, self.buffer_tokens + request.output_tokens)
        return handoff

    @abstractmethod
    def fetch_misses(self, step, entries: float) -> simpy.Event:
        """Copy ``entries`` KV entries (one token of one layer each) that this step misses into HBM."""

    @abstractmethod
    def layer_fetch_latency(self) -> float:
        """The fixed cost of one layer's fetch (a load round trip, a kernel launch), paid once per layer
        when layers fetch one after another."""

    def step_fetch(self, step) -> simpy.Event | None:
        batch = step.batch_size
        if batch == 0:
            return None
        llm = self.llm
        context = step.context_tokens / batch
        carried = step.attended_tokens - step.joined_attended
        misses = step.joined_attended + carried * (1 - hot_buffer_hit_rate(
            int(context), llm.topk, self.buffer_tokens, self.overlap))
        self.selected_entries += step.attended_tokens * llm.layers
        self.missed_entries += misses * llm.layers
        self.request_steps += batch
        entries = misses * llm.layers
        return self.fetch_misses(step, entries) if entries > 0 else None

    def fetch_and_compute(self, step, fetch: simpy.Event, compute: float) -> Generator:
        start = self.env.now
        landed = []
        fetch.callbacks.append(lambda _event: landed.append(self.env.now))
        if not self.fetch_overlap:  # each layer's fetch waits for its indexer and holds up its attention
            yield fetch
            yield self.env.timeout((self.llm.layers - 1) * self.layer_fetch_latency() + compute)
        else:
            yield self.env.all_of([self.env.timeout(compute), fetch])
            yield self.env.timeout((landed[0] - start) / self.llm.layers)
        tokens = step.batch_size  # weighed by the tokens each step emits, as TBT is
        self.fetch_step_tokens += tokens
        self.step_compute_s += compute * tokens
        self.step_fetch_s += (landed[0] - start) * tokens
        self.step_s += (self.env.now - start) * tokens

    def summary(self) -> dict:
        return {
            **super().summary(),
            "hot_buffer_tokens": self.buffer_tokens,
            "hot_buffer_hit_rate": 1 - self.missed_entries / self.selected_entries if self.selected_entries else 0.0,
            "fetched_bytes_per_decode_step": (self.missed_entries * self.entry_bytes / self.request_steps
                                              if self.request_steps else 0.0),
            "fetching_step_s": {  # where a decode step's time goes: over steps that fetched, per token emitted
                part: total / self.fetch_step_tokens if self.fetch_step_tokens else 0.0
                for part, total in (("compute", self.step_compute_s), ("fetch", self.step_fetch_s),
                                    ("step", self.step_s))},
        }
