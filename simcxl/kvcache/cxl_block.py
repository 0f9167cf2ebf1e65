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

from simcxl.kvcache.pool import PooledKV

INDEX_ENTRY_BYTES = 64  # one cache line per block: hash, location, reference count


class CXLBlock(PooledKV):
    name = "cxl_block"
    medium = "cxl"
    fabric_section = ("cxl", "a CXL pool", "hardware/cxl_xc50256_pool.yaml")
    reads = PooledKV.reads | {"intra_node_lock"}

    def __init__(self, env, scenario, llm, fabric, block_tokens: int):
        self.pool = fabric.cxl
        super().__init__(env, scenario, llm, fabric, block_tokens)
        self.rack_lock = simpy.Resource(self.env, capacity=1)
        self.node_locks = [simpy.Resource(self.env, capacity=1) for _ in fabric.topology.nodes]
        self.intra_node_lock = scenario.kv_manager.intra_node_lock

    @property
    def pool_capacity(self) -> float:
        return self.pool.capacity

    def pool_io(self, gpu, nbytes: float, write: bool) -> simpy.Event:
        return self.pool.dma(gpu, nbytes, write=write)

    def sync(self, request, instance) -> Generator:
        """Two-tier synchronization: node lock, then rack lock; write and flush the new index entries."""
        with self.node_locks[instance.node].request() as node_lock:
            yield node_lock
            yield self.env.timeout(self.intra_node_lock)
            with self.rack_lock.request() as rack_lock:
                yield rack_lock
                entries = max(1, len(request.block_hashes)) * INDEX_ENTRY_BYTES
                yield self.env.timeout(self.pool.lock_time() + self.pool.flush_time(entries))
                self.insert_blocks(request)
