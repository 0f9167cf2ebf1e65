"""KV managers whose KV lives in a rack-wide memory pool that is also the prefix cache.

TraCT and Beluga put the pool behind a CXL switch; Mooncake-store-style systems (and SAC's RDMA
baseline) put it in the DRAM of memory servers reached over RDMA. The life of a request is the same
in both: the prefill GPU writes the prompt's new KV into the pool and publishes it (the pool now
serves it to every prefill worker as a cached prefix), frees its own copy, and the decode GPU reads
the whole prompt's KV from the pool once it has reserved room for it. Subclasses say how bytes move
(``pool_io``) and what publishing costs (``publish_blocks``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Generator

import simpy

from simcxl.kvcache.base import KVManager
from simcxl.kvcache.prefix import PrefixCache
from simcxl.serving.environment import DetachedProcess, EagerProcess


class PooledKV(KVManager):
    """A rack-wide pool: one prefix-cache store, written by prefill and read by decode."""

    medium = "pool"  # prefix of this manager's bytes_moved keys

    @property
    @abstractmethod
    def pool_capacity(self) -> float:
        """Bytes the pool can hold (the prefix cache's default capacity)."""

    @abstractmethod
    def pool_io(self, gpu, nbytes: float, write: bool) -> simpy.Event:
        """Move ``nbytes`` between one GPU's memory and the pool."""

    @abstractmethod
    def publish_blocks(self, request, prefill) -> Generator:
        """Make the request's new blocks visible to other readers of the pool (and to the prefix cache)."""

    def make_prefix_cache(self, spec, block_tokens: int, block_bytes: float) -> PrefixCache:
        """One store: the pool, shared by the whole rack."""
        return PrefixCache(1, block_tokens, block_bytes, spec.capacity or self.pool_capacity, rack_wide=True)

    def store_of(self, prefill) -> int:
        return 0

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

    def _load_blocks(self, prefill, node: int, blocks: int) -> simpy.Event:
        nbytes = blocks * self.prefix_cache.block_bytes
        self.bytes_moved[f"{self.medium}_prefix_read"] += nbytes
        return self._gpus_io(prefill.gpus, nbytes, write=False)

    def on_prefilled(self, request, prefill) -> simpy.Event:
        """Write and publish (the returned event: the KV has left the prefill GPU), then hand to decode."""
        written = EagerProcess(self.env, self._write_and_publish(request, prefill))
        DetachedProcess(self.handoff(request, written))
        return written

    def insert_blocks(self, request) -> None:
        if self.prefix_cache is not None and request.block_hashes:
            self.prefix_cache.insert(request.block_hashes, 0)

    def handoff(self, request, written: simpy.Event) -> Generator:
        """Once the pool has the KV (``written``), a decode worker reserves room and reads it, on its own
        loop if the connector blocks the receiver."""
        yield written
        decode = yield from self.reserve_decode(request)
        yield from self.land(request, decode, lambda: self.env.process(self._deliver(request, decode)))
        request.kv_transfer_end = self.env.now

    def _deliver(self, request, decode) -> Generator:
        """The decode GPUs read the whole prompt's KV from the pool."""
        yield from self._staged_io(decode.gpus, request.kv_bytes, write=False)
        self.bytes_moved[f"{self.medium}_read"] += request.kv_bytes

    def _write_and_publish(self, request, prefill) -> Generator:
        env, cluster = self.env, self.cluster
        request.kv_transfer_start = env.now
        request.kv_bytes = request.input_tokens * cluster.llm.kv_bytes_per_token
        new_bytes = (request.input_tokens - request.cached_tokens) * cluster.llm.kv_bytes_per_token
        yield from self._staged_io(prefill.gpus, new_bytes, write=True)
        self.bytes_moved[f"{self.medium}_write"] += new_bytes
        prefill.release(request)
        synced = env.now
        yield from self.publish_blocks(request, prefill)
        request.kv_sync = env.now - synced
