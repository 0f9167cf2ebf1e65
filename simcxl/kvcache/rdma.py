"""``rdma``: push the whole prompt's KV from the prefill GPU to the decode GPU over RDMA.

The Mooncake / Dynamo-NIXL baseline: after prefill, the decode worker reserves HBM for the request,
then each prefill GPU writes its tensor-parallel shard of the KV with GPUDirect RDMA
(GPU -> PCIe -> NIC -> ToR -> NIC -> PCIe -> GPU); decoding starts once every shard has landed. The
prefill GPU holds the KV until then.

Two options describe older, message-based connectors (vLLM's first disaggregated prefill, the
baseline KVDirect compares against): ``messages: layer`` sends each layer's K and V as its own
message, one after another, each paying a rendezvous round trip and the per-transfer overhead; and
``blocking_send`` makes the prefill worker wait until its batch's KV has been received before it
starts the next batch, and ``blocking_receive`` makes the decode worker receive the KV on its own loop
(vLLM v0's decode instance runs ``drop_select`` and the receive inside its model runner), so every
incoming transfer stalls the whole decode batch (both are the hand-off's, :mod:`simcxl.serving.handoff`).
``host_staging`` puts each end's host copies around the write.
"""

from __future__ import annotations

from typing import Generator

import simpy

from simcxl.kvcache.base import KVManager


class RDMAPush(KVManager):
    name = path = "rdma"
    reads = KVManager.reads | {"messages"}
    own_messages = False  # True: a subclass moves GPU memory in messages of its own (no staging, no per-layer sends)

    @classmethod
    def missing(cls, scenario) -> str | None:
        spec = scenario.kv_manager
        if cls.own_messages and (spec.host_staging is not None or spec.messages != "tensor"):
            return (f"'{cls.name}' moves GPU memory directly in messages of its own (page_tokens sizes them); it "
                    f"takes no kv_manager.host_staging and no messages: layer (those describe vLLM v0's connectors)")
        return super().missing(scenario)

    def __init__(self, env, scenario, llm, fabric, block_tokens: int):
        super().__init__(env, scenario, llm, fabric, block_tokens)
        self.tensor_messages = scenario.kv_manager.messages == "tensor"  # else a message per layer and K/V

    def move_shard(self, src, dst, nbytes: float) -> simpy.Event:
        """Move one tensor-parallel shard of the KV from prefill GPU ``src`` to decode GPU ``dst``: a single
        tensor-centric write, or 2 x layers messages, each after a rendezvous."""
        if self.tensor_messages:
            return self.fabric.rdma.write(src, dst, nbytes)
        return self.env.process(self._send_layers(src, dst, nbytes))

    def _send_layers(self, src, dst, nbytes: float) -> Generator:
        rdma = self.fabric.rdma
        messages = 2 * self.llm.layers
        for _ in range(messages):
            yield self.env.timeout(2 * rdma.one_way_latency())  # receiver posts, sender learns it may send
            yield rdma.write(src, dst, nbytes / messages)

    def _move(self, src, dst, nbytes: float) -> simpy.Event:
        """One shard's move, between the host copies of both ends when the connector stages through host memory."""
        if self.host_staging is None:
            return self.move_shard(src, dst, nbytes)
        return self.env.process(self._staged(src, dst, nbytes))

    def _staged(self, src, dst, nbytes: float) -> Generator:
        with self.host_thread(src).request() as turn:
            yield turn
            yield self.env.timeout(self.send_staging(nbytes))
            yield self.move_shard(src, dst, nbytes)
        with self.host_thread(dst).request() as turn:
            yield turn
            yield self.env.timeout(self.receive_staging(nbytes))

    def transfer(self, request, prefill, decode) -> simpy.Event:
        """Each prefill GPU writes its tensor-parallel shard to the decode GPU of the same rank."""
        shard = request.kv_bytes / len(prefill.gpus)
        return self.posted(request.input_tokens, prefill, self.all_of(
            [self._move(src, dst, shard) for src, dst in zip(prefill.gpus, decode.gpus)]))

    def landed(self, request) -> None:
        self.bytes_moved[self.path] += request.kv_bytes
