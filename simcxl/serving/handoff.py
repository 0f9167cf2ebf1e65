"""The hand-off: the one place a request's KV goes from its prefill instance to a decode instance.

Every design runs the same steps, in this order, here and nowhere else: prefill done -> (``store`` shape:
write the KV into the store, free the prefill copy, sync) -> choose a decode instance and reserve its KV
blocks -> transfer -> land in the batch -> (``direct`` shape: free the prefill copy). The connector
(:mod:`simcxl.kvcache.protocol`) says which shape a request takes and moves the bytes; this module decides
when each step happens, stamps the request's hand-off times, and frees the prefill instance's memory at
the step the shape names, so no connector can forget to.

Two properties of the engine's connector are decided here once (vLLM v0's interface has both):
- a *blocking send*: the prefill instance waits, before its next batch, until its batch's KV has left it
  (``direct``: landed on decode; ``store``: written and synced). A pulling connector has nothing to wait for;
- a *blocking receive*: the decode instance receives the KV on its own loop, stalling its batch.

An aggregated instance whose connector keeps KV in a tier outside HBM (``KVConnector.tiered``) runs the same
steps with itself at both ends (:meth:`Handoffs.colocate`): no decode instance is chosen, the ``store`` shape's
write and sync are this module's, and the transfer is the connector's delivery into the same instance (host
room, a whole-prefix prefetch), after which the request decodes.

Each hand-off runs as an :class:`EagerProcess` (its first step at once) where somebody waits for it, else as
a :class:`DetachedProcess` (no end event): over a million requests, those events add up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generator

import simpy

from simcxl.kvcache.protocol import STORE, KVConnector
from simcxl.sim.environment import DetachedProcess, EagerProcess
from simcxl.sim.request import Request

if TYPE_CHECKING:
    from simcxl.config.schema import KVManagerSpec
    from simcxl.serving.aggregated import AggregatedWorker
    from simcxl.hardware.model import LLM
    from simcxl.serving.decode import DecodeWorker
    from simcxl.serving.prefill import PrefillWorker
    from simcxl.serving.router import Router


class Handoffs:
    """Runs every request's hand-off through ``connector``; ``router`` (set once the cluster has built it)
    chooses the decode instance."""

    def __init__(self, env: simpy.Environment, connector: KVConnector, llm: "LLM", spec: "KVManagerSpec"):
        self.env = env
        self.connector = connector
        self.llm = llm
        self.router: "Router | None" = None
        self.blocks_prefill = spec.blocking_send and connector.sender_waits
        self.blocking_receive = spec.blocking_receive

    def start(self, request: Request, prefill: "PrefillWorker") -> simpy.Event | None:
        """``request``'s prompt is computed on ``prefill``: start its hand-off. Returns the event the prefill
        instance waits for with a blocking send, else None."""
        handoff = self.connector.after_prefill(request, prefill.view)
        request.decode_kv_tokens = handoff.decode_kv_tokens
        if handoff.shape == STORE:
            written = EagerProcess(self.env, self._write(request, prefill))
            DetachedProcess(self._read(request, prefill, written))
            return written if self.blocks_prefill else None
        if self.blocks_prefill:
            return EagerProcess(self.env, self._direct(request, prefill))
        DetachedProcess(self._direct(request, prefill))
        return None

    def colocate(self, request: Request, worker: "AggregatedWorker") -> simpy.Event:
        """``request``'s prompt is computed on aggregated ``worker``, which decodes it too: the hand-off's steps
        with ``worker`` at both ends. The event fires once the request may decode there."""
        handoff = self.connector.after_prefill(request, worker.view)
        request.decode_kv_tokens = handoff.decode_kv_tokens
        return EagerProcess(self.env, self._colocated(request, worker, handoff.shape))

    def _colocated(self, request: Request, worker: "AggregatedWorker", shape: str) -> Generator:
        """(``store``: write, HBM down to what decode holds, sync), then the connector's delivery to ``worker``."""
        env, connector = self.env, self.connector
        if shape == STORE:
            yield from self._write(request, worker)
        else:
            request.kv_transfer_start = env.now
            request.kv_bytes = self.llm.kv_bytes(request.input_tokens)
            worker.release(request)
        request.decode_wait = 0.0  # no instance to wait for; a host pool adds its wait for room
        yield connector.transfer(request, worker.view, worker.view)
        connector.landed(request)
        # decode_admit and kv_transfer_end stay unset: the first token came out of the prefill pass, so none of
        # this is TTFT's (the summary's breakdown is queue, prefix load, prefill); it delays the second token

    def _direct(self, request: Request, prefill: "PrefillWorker") -> Generator:
        """Reserve decode, move the KV there; the prefill copy frees once it has landed."""
        env = self.env
        decode = yield from self._reserve(request)
        request.kv_transfer_start = env.now
        request.kv_bytes = self.llm.kv_bytes(request.input_tokens)
        yield from self._land(request, prefill, decode)
        request.kv_transfer_end = env.now
        prefill.release(request)

    def _write(self, request: Request, prefill: "PrefillWorker") -> Generator:
        """The KV into the store (the prefill copy frees then), then made visible to its readers."""
        env, connector = self.env, self.connector
        request.kv_transfer_start = env.now
        request.kv_bytes = self.llm.kv_bytes(request.input_tokens)
        yield from connector.write(request, prefill.view)
        prefill.release(request)
        synced = env.now
        yield from connector.sync(request, prefill.view)
        request.kv_sync = env.now - synced

    def _read(self, request: Request, prefill: "PrefillWorker", written: simpy.Event) -> Generator:
        """Once the store has the KV, reserve decode and move it there."""
        yield written
        decode = yield from self._reserve(request)
        yield from self._land(request, prefill, decode)
        request.kv_transfer_end = self.env.now

    def _reserve(self, request: Request) -> Generator:
        """Pick a decode instance and wait until it has granted the request's KV blocks; returns it."""
        decode = self.router.pick_decode(request)
        request.decode_instance = decode.index
        waiting = self.env.now
        granted = decode.reserve(request)
        if granted is not None:
            yield granted
        request.decode_admit = admitted = self.env.now
        request.decode_wait = admitted - waiting
        return decode

    def _land(self, request: Request, prefill: "PrefillWorker", decode: "DecodeWorker") -> Generator:
        """The transfer into ``decode``, and the request queued there once it has landed: on the decode
        instance's own loop with a blocking receive, beside it otherwise."""
        connector = self.connector
        if self.blocking_receive:
            yield decode.receive(request, lambda: connector.transfer(request, prefill.view, decode.view))
        else:
            yield connector.transfer(request, prefill.view, decode.view)
            decode.enqueue(request)
        connector.landed(request)
