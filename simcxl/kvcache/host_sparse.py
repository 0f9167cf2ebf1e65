"""``host_sparse``: HiSparse with its own host tier, KV in the server's local DRAM (SAC's ``local_dram``).

SAC's upper bound keeps the whole KV in the serving host's own DRAM, HiSparse's native far tier (SGLang's
hisparse guide: the full KV of a decoding request in pinned host memory, a hot buffer in HBM). Nothing crosses
a NIC: prefill copies each prompt's new KV from HBM to host DRAM over its GPUs' PCIe links (cudaMemcpy,
``fabric.pcie``), decode reserves room for the whole prefix in its host pool (``kv_manager.host_pool``, the
node's DRAM by default: a bounded resource, as in ``rdma_sparse``) and then swaps in each step's top-k misses
with the measured zero-copy gather over each GPU's PCIe link (``rdma_sparse``'s per-step fetch, unchanged).

Served disaggregated (two nodes) the prompt's KV is treated as already in the decode node's DRAM once prefill
has copied it out, so no node-to-node move is billed; served aggregated (SAC's one server) that is exact.
"""

from __future__ import annotations

from typing import Generator

import simpy

from simcxl.kvcache.pool import PooledKV
from simcxl.kvcache.rdma_sparse import RDMASparse


class HostSparse(RDMASparse):
    name = "host_sparse"
    medium = "host_dram"

    @property
    def pool_capacity(self) -> float:
        return self.scenario.fabric.host_dram.capacity

    def pool_io(self, gpu, nbytes: float, write: bool) -> simpy.Event:
        """The pool is the host's DRAM: a PCIe copy between the GPU and it."""
        return self.fabric.pcie.copy(gpu, nbytes, to_device=not write)

    # prefix hits load from this host's DRAM over PCIe (pool_io), on one server too: no NIC prefetch
    _load_blocks = PooledKV._load_blocks

    def sync(self, request, instance) -> Generator:
        """Publishing is a local radix-cache insert: no RPC."""
        self.insert_blocks(request)
        return
        yield

    def _deliver(self, request, decode) -> Generator:
        """Room in the host pool; the KV is already there."""
        yield from self._hold_host_room(request, decode)
