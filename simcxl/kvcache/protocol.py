"""The KV hand-off protocol: what a KV connector answers, which bytes it moves, and what workers lend it.

A KV manager is a connector, as vLLM's KV connectors and Dynamo's NIXL agents are: it answers questions
(which prefix tokens an instance finds cached, what a request's hand-off looks like, what a decode step must
fetch) and moves bytes (prefix loads, the hand-off's transfer, per-step fetches) over the fabric. It never
drives a worker: :mod:`simcxl.serving.handoff` runs each lifecycle step (reserve a decode instance, move,
land, release the prefill instance's memory) in one place, and the workers call the connector at their own
points. A connector sees workers only through the frozen views below, so this package imports nothing from
:mod:`simcxl.serving`.

A hand-off has one of two shapes, which the connector names in the :class:`Handoff` it returns after prefill:
- ``direct`` (``rdma``, ``rdma_pull``): a decode instance is chosen and reserved, the KV moves from the prefill
  GPUs to it, and the prefill instance frees its copy once the KV has landed;
- ``store`` (``cxl_block``, ``rdma_pool``, the sparse designs): the prefill GPUs write the KV into a shared
  store and free their copy, the connector makes it visible (:meth:`KVConnector.sync`: locks, index
  updates), and only then is a decode instance chosen, which reads it from the store.

Time stamps of a hand-off are the request's ``decode_admit``, ``kv_transfer_start``/``_end``, ``decode_wait``
and ``kv_sync``; the hand-off runner writes them. A connector whose transfer itself queues for room (a host
pool) adds that wait to ``decode_wait``, so that TTFT's ``kv_transfer`` share is the movement alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generator

import simpy

if TYPE_CHECKING:
    from simcxl.fabric.topology import GPUPort
    from simcxl.sim.request import Request

DIRECT, STORE = "direct", "store"


@dataclass(frozen=True, slots=True)
class InstanceView:
    """What a connector may know of a serving instance: its index, its GPUs (in rank order), its node, and
    whether it also decodes what it prefills (``colocated``: an aggregated instance, one engine at both ends of
    the hand-off, so a connector may stage a prefix once for both prefill and decode)."""

    index: int
    gpus: tuple["GPUPort", ...]
    node: int
    colocated: bool = False


@dataclass(frozen=True, slots=True)
class StepView:
    """A decode step about to run on ``instance``: the batch a per-step fetch is sized by. ``attended_tokens``
    is what attention reads (top-k capped), ``joined_attended`` the part of it of sequences joining now."""

    instance: InstanceView
    batch_size: int
    context_tokens: int
    attended_tokens: int
    joined_attended: int


class Handoff:
    """A connector's description of one request's hand-off: its shape (``direct`` or ``store``) and the KV
    tokens the decode instance must hold for it (0: the whole prompt and output, as dense attention needs)."""

    __slots__ = ("shape", "decode_kv_tokens")

    def __init__(self, shape: str, decode_kv_tokens: int = 0):
        self.shape = shape
        self.decode_kv_tokens = decode_kv_tokens


class KVConnector(ABC):
    """The protocol every KV manager implements; defaults are those of a connector with no prefix cache
    whose decode steps fetch nothing."""

    name = "abstract"
    fetches_each_step = False  # True where step_fetch moves KV (decode workers skip the call otherwise)
    sender_waits = True  # False where the decode side pulls: a blocking send has nothing to wait for
    gpu_cache_tokens = 0  # HBM tokens each prefill instance sets aside for the connector (a prefix-cache tier)
    # True where a request's KV lives in the connector's tier outside HBM (the sparse designs' pool or host
    # memory), so an aggregated instance asks it as a disaggregated pair would: prefix hits at admission, the
    # hand-off after prefill (write, sync, transfer to itself), each decode step's fetch, release. False: an
    # aggregated instance keeps all KV in its own HBM and never calls the connector.
    tiered = False

    bytes_moved: dict[str, float]

    # ------------------------------------------------------------------ arrival and prefill

    def arrival(self, request: "Request") -> None:
        """The request reached the engine (a prefix cache learns which of its blocks are reusable)."""

    def cached_prefix_tokens(self, request: "Request", instance: InstanceView) -> int:
        """Prompt tokens ``instance`` would find cached now and need not compute (read-only: batch budgets)."""
        return 0

    def affinity_tokens(self, request: "Request", instance: InstanceView) -> int:
        """Cached prompt tokens that ``instance`` reads at its cheapest (the cache-aware router's measure)."""
        return 0

    def load_prefix(self, request: "Request", instance: InstanceView) -> simpy.Event | None:
        """Look up the request's cached prefix and start loading it into ``instance``; sets
        ``request.cached_tokens``. None: nothing to load."""
        return None

    @abstractmethod
    def after_prefill(self, request: "Request", instance: InstanceView) -> Handoff:
        """The request's prompt is computed on ``instance``: keep or publish what the cache keeps, and say how
        its KV is handed off."""

    # ------------------------------------------------------------------ the hand-off's movements

    def write(self, request: "Request", instance: InstanceView) -> Generator:
        """``store`` shape: move the prompt's KV from ``instance``'s GPUs into the store."""
        raise NotImplementedError(f"{self.name} hands off directly; it has no store to write")

    def sync(self, request: "Request", instance: InstanceView) -> Generator:
        """``store`` shape: make the written KV visible to its readers (locks, flushes, index RPCs)."""
        return
        yield

    @abstractmethod
    def transfer(self, request: "Request", prefill: InstanceView, decode: InstanceView) -> simpy.Event:
        """Move the request's KV into ``decode``'s GPUs (from ``prefill``'s, or from the store); the event
        fires once it has landed."""

    def landed(self, request: "Request") -> None:
        """The transfer has landed (a ``direct`` connector counts its bytes here)."""

    # ------------------------------------------------------------------ decode

    def step_fetch(self, step: StepView) -> simpy.Event | None:
        """KV the coming decode step must fetch before attention can use it (None: all of it is in HBM)."""
        return None

    def fetch_and_compute(self, step: StepView, fetch: simpy.Event, compute: float) -> Generator:
        """One decode step with a fetch: by default the fetch must land before the step computes."""
        yield fetch
        yield simpy.Timeout(fetch.env, compute)

    def preempted(self, request: "Request") -> None:
        """The decode instance dropped the request's KV to recompute it later (a pool-backed design could
        reload it instead)."""

    def finished(self, request: "Request") -> None:
        """The request's last token was emitted: whatever the connector held for it may go."""

    # ------------------------------------------------------------------ limits and results

    def too_large(self, input_tokens: int) -> str | None:
        """Why a prompt of ``input_tokens`` could never be served by this connector (None: it can be)."""
        return None

    def summary(self) -> dict:
        """Connector-specific metrics for summary.json's ``kv`` section."""
        return {}
