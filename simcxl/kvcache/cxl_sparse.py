"""``cxl_sparse``: the whole KV stays in the CXL pool; decode fetches only the top-k entries it misses (SAC).

SAC keeps the full KV cache in a CXL pool and runs SGLang's HiSparse on the decode side with the pool as
its far tier (:mod:`simcxl.kvcache.sparse_decode`): nothing moves before the first step, each request
holds only a hot buffer in HBM, and every step's misses are read from the pool by cache-line loads,
limited by memory-level parallelism and the node's CXL port(s).

``sparse_fetch: rdma_page`` is the on-demand RDMA alternative SAC argues against: the same misses,
fetched from a remote DRAM pool (here the prefill node's host memory) as one-sided RDMA READs of
whole ``page_tokens`` pages, each a message through both NICs' message engines and limited by the read
credits per round trip: per-message cost and page amplification instead of cache lines.
"""

from __future__ import annotations

from typing import Generator

import simpy

from simcxl.kvcache.cxl_block import CXLBlock
from simcxl.kvcache.sparse_decode import SparseDecode


class CXLSparse(SparseDecode, CXLBlock):
    name = "cxl_sparse"
    reads = CXLBlock.reads | SparseDecode.sparse_keys | {"sparse_fetch", "page_tokens"}

    def __init__(self, env, scenario, llm, fabric, block_tokens: int):
        super().__init__(env, scenario, llm, fabric, block_tokens)
        spec = scenario.kv_manager
        self.fetch_path = spec.sparse_fetch
        self.page_tokens = spec.page_tokens
        self.remote_pool = fabric.topology.nodes[0][0]  # the memory the RDMA variant reads from

    def _deliver(self, request, decode) -> Generator:
        """Nothing moves up front: the decode worker fetches what each step selects."""
        return
        yield

    def layer_fetch_latency(self) -> float:
        if self.fetch_path == "rdma_page":
            return 2 * self.fabric.rdma.one_way_latency(gpu_memory=False)
        return self.pool.load_latency(from_gpu=True)

    def fetch_misses(self, step, entries: float) -> simpy.Event:
        gpus = step.instance.gpus
        if self.fetch_path == "rdma_page":  # every missed entry costs a READ of its whole page
            page = self.page_tokens * self.entry_bytes
            self.bytes_moved["rdma_page_fetch"] += entries * page
            share = entries / len(gpus)
            return self.env.all_of([self.fabric.rdma.read(gpu, self.remote_pool, share, page, target_gpu=False)
                                    for gpu in gpus])
        self.bytes_moved["cxl_topk_fetch"] += entries * self.entry_bytes
        return self.pool.load(list(gpus), entries, self.entry_bytes)
