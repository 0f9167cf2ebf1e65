"""``rdma_pull``: the decode worker pulls the KV from the prefill GPU when it is ready (KVDirect).

Prefill ends by handing a descriptor (where the request's KV lies in its HBM) to the chosen decode
worker and goes straight on to its next batch. When the decode worker has room, it reads each
tensor-parallel shard with one-sided RDMA READs of the contiguous KV region (tensor-centric: one
synchronization per request, not one per layer), then tells the prefill worker to free the memory.
The prefill GPU never waits for the decode side; only its HBM holds the KV until it is pulled.
"""

from __future__ import annotations

from typing import Generator

from simcxl.kvcache.base import KVManager, register

PULL_CHUNK_BYTES = 64 * 1024 * 1024  # one READ per contiguous 64 MiB of a shard (the library's chunking)


@register("rdma_pull")
class RDMAPull(KVManager):

    def handoff(self, request, prefill) -> Generator:
        env, cluster = self.env, self.cluster
        decode = cluster.router.pick_decode(request)
        request.decode_instance = decode.index
        yield decode.reserve(request)
        request.decode_admit = env.now
        request.decode_wait = env.now - request.prefill_end
        request.kv_transfer_start = env.now
        request.kv_bytes = request.input_tokens * cluster.llm.kv_bytes_per_token
        shard = request.kv_bytes / len(prefill.gpus)
        chunks = max(1, -(-int(shard) // PULL_CHUNK_BYTES))
        rdma = cluster.fabric.rdma
        yield env.all_of([rdma.read(dst, src, chunks, shard / chunks) for src, dst in zip(prefill.gpus, decode.gpus)])
        self.bytes_moved["rdma_pull"] += request.kv_bytes
        request.kv_transfer_end = env.now
        prefill.release(request)
        decode.enqueue(request)
