"""``lmcache``: LMCache's disaggregated-prefill path, with its prefix cache in the prefill host's DRAM.

What LMCache does (LMCache/LMCache, ``lmcache/v1/storage_backend/pd_backend.py``, ``PDBackendAsync``): the
prefill worker's LMCache engine stores the request's KV chunk by chunk (``chunk_size`` tokens, 256 by default;
a chunk is one ``KV_2LTD`` memory object holding every layer's K and V); with PD on, the sender allocates each
chunk in its PD buffer (``pd_buffer_device``, GPU memory in LMCache's PD examples), gathers it from vLLM's
paged KV and NIXL-WRITEs it into the receiver's PD buffer, which the decode worker's connector then loads into
its paged KV. The sender never keeps those chunks (``At the sender side, it will never save anything but
directly write the data to the receiver side``), so every chunk of the prompt goes, cached or not: TraCT's
"sends all blocks, hits and misses, to the decode worker". Prefix hits come from the local CPU backend (the
base manager's DRAM tier, loaded over PCIe).

So this is ``rdma`` with the prompt sent as ``ceil(tokens / page_tokens)`` WRITEs of one chunk each
(``kv_manager.page_tokens`` is LMCache's ``chunk_size``), each a message in both NICs' engines. The on-GPU
gather/scatter between paged KV and the chunk buffer is an HBM copy not modelled here (KV of a 6000-token prompt
is 0.8 GB: ~1 ms each way at the A6000's 768 GB/s).
"""

from __future__ import annotations

import simpy

from simcxl.kvcache.rdma import RDMAPush


class LMCachePD(RDMAPush):
    """The prefill GPUs WRITE the whole prompt's KV to the decode GPUs, one chunk per message."""

    name = path = "lmcache"
    own_messages = True
    reads = RDMAPush.reads - {"messages", "host_staging"}

    def transfer(self, request, prefill, decode) -> simpy.Event:
        chunks = -(-request.input_tokens // self.page_tokens)
        shard = request.kv_bytes / len(prefill.gpus)
        rdma = self.fabric.rdma
        return self.all_of([rdma.write(src, dst, shard, message_bytes=shard / chunks)
                            for src, dst in zip(prefill.gpus, decode.gpus)])
