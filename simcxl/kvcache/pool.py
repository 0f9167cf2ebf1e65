"""KV managers whose KV lives in a rack-wide memory pool that is also the prefix cache.

TraCT and Beluga put the pool behind a CXL switch; Mooncake-store-style systems (and SAC's RDMA
baseline) put it in the DRAM of memory servers reached over RDMA. The life of a request is the same
in both: the prefill GPU writes the prompt's new KV into the pool and publishes it (the pool now
serves it to every prefill worker as a cached prefix), frees its own copy, and the decode GPU reads
the whole prompt's KV from the pool once it has reserved room for it: the ``store`` shape of a hand-off.
Subclasses say how bytes move (``pool_io``) and what publishing costs (``sync``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Generator

import simpy

from simcxl.kvcache.base import KVManager
from simcxl.kvcache.prefix import PrefixCache
from simcxl.kvcache.protocol import STORE, Handoff


class PooledKV(KVManager):
    """A rack-wide pool: one prefix-cache store, written by prefill and read by decode."""

    medium = "pool"  # prefix of this manager's bytes_moved keys
    reads = KVManager.reads - {"descriptor_time", "page_tokens"}  # whole-shard DMA or bulk READs, no descriptors

    @property
    @abstractmethod
    def pool_capacity(self) -> float:
        """Bytes the pool can hold (the prefix cache's default capacity)."""

    @abstractmethod
    def pool_io(self, gpu, nbytes: float, write: bool) -> simpy.Event:
        """Move ``nbytes`` between one GPU's memory and the pool."""

    @abstractmethod
    def sync(self, request, instance) -> Generator:
        """Make the request's new blocks visible to other readers of the pool (and to the prefix cache)."""

    @classmethod
    def missing(cls, scenario) -> str | None:
        cache = scenario.kv_manager.prefix_cache
        if cache is not None and cache.scope == "instance":
            return (f"'{cls.name}' keeps its prefix cache in the pool; scope 'instance' (a cache in each prefill "
                    f"instance's HBM only) is for connectors that send KV directly (rdma, nixl, ...): use gpu_capacity "
                    f"for an HBM tier above the pool")
        return super().missing(scenario)

    def make_prefix_cache(self, spec, block_tokens: int, block_bytes: float) -> PrefixCache:
        """One store: the pool, shared by the whole rack."""
        return PrefixCache(1, block_tokens, block_bytes, spec.capacity or self.pool_capacity, rack_wide=True)

    def store_of(self, instance) -> int:
        return 0

    def affinity_tokens(self, request, instance) -> int:
        """Every instance reads the pool at the same cost: all its hits count."""
        return self.cached_prefix_tokens(request, instance)

    def _gpus_io(self, gpus, nbytes: float, write: bool) -> simpy.Event:
        """``nbytes`` split evenly over the tensor-parallel GPUs of one instance."""
        return self.all_of([self.pool_io(gpu, nbytes / len(gpus), write) for gpu in gpus])

    def _staged_io(self, gpus, nbytes: float, write: bool) -> Generator:
        """``_gpus_io``, after the sender's host copies (write) or before the receiver's (read), for a
        connector that stages KV through host memory; each rank stages its own shard, one request at a time."""
        if self.host_staging is None:
            yield self._gpus_io(gpus, nbytes, write)
        else:
            yield self.env.all_of([self.env.process(self._staged_rank(gpu, nbytes / len(gpus), write))
                                   for gpu in gpus])

    def _staged_rank(self, gpu, shard: float, write: bool) -> Generator:
        with self.host_thread(gpu).request() as turn:
            yield turn
            if write:
                yield self.env.timeout(self.send_staging(shard))
            yield self.pool_io(gpu, shard, write)
            if not write:
                yield self.env.timeout(self.receive_staging(shard))

    def _load_blocks(self, instance, node: int, blocks: int) -> simpy.Event:
        nbytes = blocks * self.prefix_cache.block_bytes
        self.bytes_moved[f"{self.medium}_prefix_read"] += nbytes
        return self._gpus_io(instance.gpus, nbytes, write=False)

    def after_prefill(self, request, instance) -> Handoff:
        """The KV goes into the pool; publishing it there is what caches it."""
        self.keep_in_gpu(request, instance)
        return Handoff(STORE)

    def insert_blocks(self, request) -> None:
        if self.prefix_cache is not None and request.block_hashes:
            self.prefix_cache.insert(request.block_hashes, 0)

    def write(self, request, instance) -> Generator:
        """The prompt's new KV (its cached prefix is in the pool already) from the prefill GPUs into the pool."""
        new_bytes = self.llm.kv_bytes(request.input_tokens - request.cached_tokens)
        yield from self._staged_io(instance.gpus, new_bytes, write=True)
        self.bytes_moved[f"{self.medium}_write"] += new_bytes

    def transfer(self, request, prefill, decode) -> simpy.Event:
        return self.env.process(self._deliver(request, decode))

    def _deliver(self, request, decode) -> Generator:
        """The decode GPUs read the whole prompt's KV from the pool."""
        yield from self._staged_io(decode.gpus, request.kv_bytes, write=False)
        self.bytes_moved[f"{self.medium}_read"] += request.kv_bytes
