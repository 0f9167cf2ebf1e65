"""``rdma``: push the whole prompt's KV from the prefill GPU to the decode GPU over RDMA.

The Mooncake / Dynamo-NIXL baseline: after prefill, the decode worker reserves HBM for the request,
then each prefill GPU writes its tensor-parallel shard of the KV with GPUDirect RDMA
(GPU -> PCIe -> NIC -> ToR -> NIC -> PCIe -> GPU); decoding starts once every shard has landed. The
prefill GPU holds the KV until then.
"""

from __future__ import annotations

from typing import Generator

from simcxl.kvcache.base import KVManager, register


@register("rdma")
class RDMAPush(KVManager):

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
        yield env.all_of([cluster.fabric.rdma.write(src, dst, shard) for src, dst in zip(prefill.gpus, decode.gpus)])
        self.bytes_moved["rdma"] += request.kv_bytes
        request.kv_transfer_end = env.now
        prefill.release(request)
        decode.enqueue(request)
