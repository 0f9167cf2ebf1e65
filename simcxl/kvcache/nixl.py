"""``nixl``: vLLM v1's NixlConnector (Dynamo's default): the decode worker READs the prompt's KV pages.

What the connector does (vllm-project/vllm, ``vllm/distributed/kv_transfer/kv_connector/v1/nixl_connector.py``):
the prefill instance finishes the request with its blocks held (``request_finished`` delays their free) and
goes on with its next batch; the decode scheduler allocates blocks for the prompt, and its worker posts one
NIXL ``READ`` whose descriptor list names every (region, block) pair (``_get_block_descs_ids``: a region per
layer and K/V tensor, one for MLA's latent), so UCX issues one RDMA READ per page, layer and tensor; the
request joins the batch at the first step after the reads complete (``get_finished``), and a notification
lets the prefill instance free the blocks.

So this is ``rdma_pull`` with a paged layout: the same bytes, but as ``descriptors(tokens)`` READs of one page
of one layer each (``kv_manager.page_tokens`` per page, vLLM's block size), each paying a message in both
NICs' engines and a read credit per round trip, and posted by the decode instance (``descriptor_time``).
"""

from __future__ import annotations

import simpy

from simcxl.kvcache.rdma import RDMAPush


class NIXLRead(RDMAPush):
    """The decode GPUs read each tensor-parallel shard page by page; prefill never blocks on it."""

    name = path = "nixl"
    own_messages = True
    sender_waits = False  # the decode side reads: a blocking send has nothing to wait for
    reads = RDMAPush.reads - {"messages", "host_staging", "blocking_send"}

    def transfer(self, request, prefill, decode) -> simpy.Event:
        reads = self.descriptors(request.input_tokens)
        shard = request.kv_bytes / len(prefill.gpus)
        rdma = self.fabric.rdma
        return self.posted(request.input_tokens, decode, self.all_of(
            [rdma.read(dst, src, reads, shard / reads) for src, dst in zip(prefill.gpus, decode.gpus)]))
