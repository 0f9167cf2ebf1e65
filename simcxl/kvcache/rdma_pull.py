"""``rdma_pull``: the decode worker pulls the KV from the prefill GPU when it is ready (KVDirect).

Prefill ends by handing a descriptor (where the request's KV lies in its HBM) to the chosen decode
worker and goes straight on to its next batch. When the decode worker has room, it reads each
tensor-parallel shard with one-sided RDMA READs of the contiguous KV region (tensor-centric: one
synchronization per request, not one per layer), then tells the prefill worker to free the memory.
The prefill GPU never waits for the decode side; only its HBM holds the KV until it is pulled.
"""

from __future__ import annotations

import simpy

from simcxl.kvcache.rdma import RDMAPush


class RDMAPull(RDMAPush):
    """The hand-off of ``rdma``, but the decode GPU reads the shard; prefill never blocks on it."""

    name = path = "rdma_pull"
    sender_waits = False  # the decode GPU reads: nothing for the prefill worker to wait for
    reads = RDMAPush.reads - {"messages", "blocking_send", "descriptor_time", "page_tokens"}  # one READ per shard

    def descriptors(self, tokens: int) -> int:
        """Tensor-centric: a shard is one registered region, read in large chunks, not per block."""
        return 0

    def move_shard(self, src, dst, nbytes: float) -> simpy.Event:
        return self.fabric.rdma.bulk_read(dst, src, nbytes)
