"""``cxl_block``: KV blocks move through a CXL shared memory pool that is also a rack-wide prefix cache.

TraCT and Beluga replace the NIC hop with a CXL switch: the prefill GPU writes the prompt's new KV
blocks into the pool by DMA (GPU -> PCIe -> host CXL port -> switch -> devices), publishes them, and
the decode GPU reads them from the pool by DMA. Blocks stay in the pool, so every prefill worker of
the rack reuses every cached prefix without a NIC.

The pool is not coherent across hosts, so publishing is a protocol (TraCT's two-tier
synchronization): take the node's lock, then the rack-wide lock (CXL atomics), write and flush the
index entries of the new blocks, release. Both locks are real resources here, so publishers queue on
them and the sync cost grows with contention. The prefill GPU frees its copy of the KV as soon as the
pool has it, without waiting for a decode worker to have room.
"""

from __future__ import annotations

from typing import Generator

import simpy

from simcxl.kvcache.base import KVManager, register
from simcxl.kvcache.prefix import PrefixCache

INDEX_ENTRY_BYTES = 64  # one cache line per block: hash, location, reference count


@register("cxl_block")
class CXLBlock(KVManager):

    def __init__(self, cluster, block_tokens: int):
        self.pool = cluster.fabric.cxl
        super().__init__(cluster, block_tokens)
        self.rack_lock = simpy.Resource(self.env, capacity=1)
        self.node_locks = [simpy.Resource(self.env, capacity=1) for _ in cluster.fabric.topology.nodes]
        self.intra_node_lock = cluster.scenario.kv_manager.intra_node_lock

    def make_prefix_cache(self, spec, block_tokens: int, block_bytes: float) -> PrefixCache:
        """One store: the pool, shared by the whole rack."""
        return PrefixCache(1, block_tokens, block_bytes, spec.capacity or self.pool.capacity, rack_wide=True)

    def store_of(self, prefill) -> int:
        return 0

    def _load_blocks(self, prefill, node: int, blocks: int) -> simpy.Event:
        nbytes = blocks * self.prefix_cache.block_bytes
        self.bytes_moved["cxl_prefix_read"] += nbytes
        return self.env.all_of([self.pool.dma(gpu, nbytes / len(prefill.gpus), write=False) for gpu in prefill.gpus])

    def on_prefilled(self, request, prefill) -> simpy.Event:
        return self.env.process(self.handoff(request, prefill))

    def _publish(self, request, prefill) -> Generator:
        """Two-tier synchronization: node lock, then rack lock; write and flush the new index entries."""
        node = prefill.gpus[0].node
        with self.node_locks[node].request() as node_lock:
            yield node_lock
            yield self.env.timeout(self.intra_node_lock)
            with self.rack_lock.request() as rack_lock:
                yield rack_lock
                entries = max(1, len(request.block_hashes)) * INDEX_ENTRY_BYTES
                yield self.env.timeout(self.pool.lock_time() + self.pool.flush_time(entries))
                if self.prefix_cache is not None and request.block_hashes:
                    self.prefix_cache.insert(request.block_hashes, 0)

    def handoff(self, request, prefill) -> Generator:
        yield from self._write_and_publish(request, prefill)
        decode = yield from self.reserve_decode(request)
        yield from self._deliver(request, decode)
        request.kv_transfer_end = self.env.now
        decode.enqueue(request)

    def _deliver(self, request, decode) -> Generator:
        """The decode GPUs read the whole prompt's KV from the pool."""
        yield self.env.all_of([self.pool.dma(gpu, request.kv_bytes / len(decode.gpus), write=False)
                               for gpu in decode.gpus])
        self.bytes_moved["cxl_read"] += request.kv_bytes

    def _write_and_publish(self, request, prefill) -> Generator:
        env, cluster = self.env, self.cluster
        request.kv_transfer_start = env.now
        request.kv_bytes = request.input_tokens * cluster.llm.kv_bytes_per_token
        new_bytes = (request.input_tokens - request.cached_tokens) * cluster.llm.kv_bytes_per_token
        yield env.all_of([self.pool.dma(gpu, new_bytes / len(prefill.gpus), write=True) for gpu in prefill.gpus])
        self.bytes_moved["cxl_write"] += new_bytes
        prefill.release(request)
        synced = env.now
        yield env.process(self._publish(request, prefill))
        request.kv_sync = env.now - synced
