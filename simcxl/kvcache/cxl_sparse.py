"""``cxl_sparse``: the whole KV stays in the CXL pool; decode fetches only the top-k entries it misses (SAC).

For sparse-attention models (DeepSeek-V3.2's DSA), a decode step reads only the top-k KV entries the
indexer selects. SAC keeps the full KV cache in a CXL pool and gives each request a small hot buffer in
HBM (LRU, integrated with SGLang's HiSparse); every step it identifies the selected entries that miss
in the buffer, evicts, and fetches the misses from the pool at cache-line granularity. So decode never
waits for the whole prefix to arrive, and holds only a buffer, not the whole prefix, in HBM.

Hit rates come from the selection model of ``sparse_access`` (consecutive steps overlap by
``topk_overlap``); a request's first step finds its buffer empty. With ``fetch_overlap`` the misses of
layer l+1 are fetched while layer l computes, so a step costs max(compute, fetch) plus one layer's fetch.
``sparse_fetch: rdma_page`` is the on-demand RDMA alternative SAC argues against: the same misses,
fetched from a remote DRAM pool (here the prefill node's host memory) as one-sided RDMA READs of
whole ``page_tokens`` pages, each a message through both NICs' message engines and limited by the read
credits per round trip: per-message cost and page amplification instead of cache lines.
"""

from __future__ import annotations

from typing import Generator

import simpy

from simcxl.kvcache.base import register
from simcxl.kvcache.cxl_block import CXLBlock
from simcxl.kvcache.sparse_access import hot_buffer_hit_rate


@register("cxl_sparse")
class CXLSparse(CXLBlock):
    fetches_each_step = True

    @classmethod
    def missing(cls, scenario) -> str | None:
        if scenario.model.sparse is None:
            return (f"'cxl_sparse' needs a sparse-attention model (a model.sparse section, e.g. "
                    f"models/deepseek-v3.2.yaml); {scenario.model.name} attends to every token")
        return super().missing(scenario)

    def __init__(self, cluster, block_tokens: int):
        super().__init__(cluster, block_tokens)
        spec = cluster.scenario.kv_manager
        self.buffer_tokens = spec.hot_buffer_tokens
        self.overlap = spec.topk_overlap
        self.fetch_overlap = spec.fetch_overlap
        self.entry_bytes = cluster.llm.kv_bytes_per_token_per_layer
        self.fetch_path = spec.sparse_fetch
        self.page_tokens = spec.page_tokens
        self.remote_pool = cluster.fabric.topology.nodes[0][0]  # the memory the RDMA variant reads from
        self.selected_entries = 0.0
        self.missed_entries = 0.0
        self.request_steps = 0

    def _deliver(self, request, decode) -> Generator:
        """Nothing moves up front: the decode worker fetches what each step selects."""
        return
        yield

    def handoff(self, request, written) -> Generator:
        request.decode_kv_tokens = min(request.total_tokens, self.buffer_tokens + request.output_tokens)
        yield from super().handoff(request, written)

    def step_fetch(self, decode) -> simpy.Event | None:
        batch = decode.batch_size
        if batch == 0:
            return None
        llm = self.cluster.llm
        context = decode.context_tokens / batch
        carried = decode.attended_tokens - decode.joined_attended
        misses = decode.joined_attended + carried * (1 - hot_buffer_hit_rate(
            int(context), llm.topk, self.buffer_tokens, self.overlap))
        self.selected_entries += decode.attended_tokens * llm.layers
        self.missed_entries += misses * llm.layers
        self.request_steps += batch
        items = misses * llm.layers
        if items <= 0:
            return None
        if self.fetch_path == "rdma_page":  # every missed entry costs a READ of its whole page
            page = self.page_tokens * self.entry_bytes
            self.bytes_moved["rdma_page_fetch"] += items * page
            share = items / len(decode.gpus)
            return self.env.all_of([self.cluster.fabric.rdma.read(gpu, self.remote_pool, share, page, target_gpu=False)
                                    for gpu in decode.gpus])
        self.bytes_moved["cxl_topk_fetch"] += items * self.entry_bytes
        return self.pool.load(list(decode.gpus), items, self.entry_bytes)

    def fetch_and_compute(self, decode, fetch: simpy.Event, compute: float) -> Generator:
        if not self.fetch_overlap:
            yield from super().fetch_and_compute(decode, fetch, compute)
            return
        start = self.env.now
        landed = []
        fetch.callbacks.append(lambda _event: landed.append(self.env.now))
        yield self.env.all_of([self.env.timeout(compute), fetch])
        yield self.env.timeout((landed[0] - start) / self.cluster.llm.layers)

    def summary(self) -> dict:
        return {
            "hot_buffer_tokens": self.buffer_tokens,
            "hot_buffer_hit_rate": 1 - self.missed_entries / self.selected_entries if self.selected_entries else 0.0,
            "fetched_bytes_per_decode_step": (self.missed_entries * self.entry_bytes / self.request_steps
                                              if self.request_steps else 0.0),
        }
