"""A decode worker: continuous batching with one SimPy event per iteration, not per token.

Each iteration generates one token for every sequence in the batch. A sequence that joins at
iteration j and must generate k tokens leaves after iteration j + k - 1, so the worker keeps the batch
in a heap keyed by that iteration and does O(1) work per iteration plus O(log n) per join or leave.
Token timestamps are the iteration end times, recorded once per iteration; per-request TBT is derived
from them when the run ends.

KV admission reserves a request's whole footprint (prompt + output tokens) up front, FCFS: a request
that does not fit waits, and its wait is reported. Reserving up front means no preemption is needed.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import TYPE_CHECKING, Callable

import simpy

from simcxl.config.schema import DecodeSpec
from simcxl.fabric.topology import GPUPort
from simcxl.hardware.gpu import GPUCompute
from simcxl.serving.request import Request

if TYPE_CHECKING:
    from simcxl.kvcache.base import KVManager


class DecodeWorker:
    """One decode instance (``tensor_parallel`` GPUs)."""

    def __init__(self, env: simpy.Environment, index: int, compute: GPUCompute, spec: DecodeSpec,
                 gpus: list[GPUPort], on_finished: Callable[[Request], None], kv_manager: "KVManager",
                 iteration_overhead: float = 0.0):
        self.env = env
        self.iteration_overhead = iteration_overhead
        self.on_finished = on_finished
        self.kv_manager = kv_manager
        self.topk = compute.llm.topk
        self.attended_tokens = 0  # sum over the batch of min(context, top-k): what sparse attention reads
        self.joined_attended = 0  # the part of it belonging to sequences that joined this iteration
        self._saturating: list[tuple[int, int]] = []  # (iteration its context reaches top-k, request id)
        self._unsaturated: set[int] = set()
        self.index = index
        self.compute = compute
        self.spec = spec
        self.gpus = gpus
        self.kv_capacity_tokens = compute.kv_capacity_tokens
        self.kv_reserved_tokens = 0
        self._reservations: deque[tuple[Request, simpy.Event]] = deque()
        self._waiting_tokens = 0  # KV tokens the queued reservations will take
        self._ready: deque[Request] = deque()
        self._receiving: list[tuple[Request, Callable[[], simpy.Event], simpy.Event]] = []
        self.receive_time = 0.0  # the batch stalled while this worker received KV itself
        self._batch: list[tuple[int, int, Request]] = []  # heap of (finish iteration, id, request)
        self.context_tokens = 0
        self.iteration = 0
        self.iteration_ends: list[float] = []
        self.busy_time = 0.0
        self.preemptions = 0
        self.recomputed_tokens = 0
        self._wakeup: simpy.Event | None = None
        env.process(self.run())

    @property
    def batch_size(self) -> int:
        return len(self._batch)

    @property
    def free_kv_tokens(self) -> int:
        """KV tokens not yet promised, less what queued reservations will take (the router's measure)."""
        return self.kv_capacity_tokens - self.kv_reserved_tokens - self._waiting_tokens

    @staticmethod
    def _footprint(request: Request) -> int:
        return request.decode_kv_tokens or request.total_tokens

    def reserve(self, request: Request) -> simpy.Event:
        """An event that fires once the request's whole KV footprint is reserved here (FCFS)."""
        event = self.env.event()
        self._reservations.append((request, event))
        self._waiting_tokens += self._footprint(request)
        self._grant()
        return event

    def enqueue(self, request: Request) -> None:
        """The request's KV has landed: it joins the batch at the next iteration boundary."""
        self._ready.append(request)
        self._wake()

    def receive(self, request: Request, transfer: Callable[[], simpy.Event]) -> simpy.Event:
        """Receive the request's KV on this worker's own loop, as a synchronous connector does (vLLM v0 runs
        the receive inside the model runner): at the next iteration boundary the batch waits for it, then
        the request joins. The returned event fires when the KV has landed."""
        landed = self.env.event()
        self._receiving.append((request, transfer, landed))
        self._wake()
        return landed

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.triggered:
            self._wakeup.succeed()

    def _receive_pending(self):
        """Every receive queued since the last iteration, together; the batch makes no progress meanwhile."""
        pending, self._receiving = self._receiving, []
        start = self.env.now
        yield self.env.all_of([transfer() for _, transfer, _ in pending])
        self.receive_time += self.env.now - start
        for request, _, landed in pending:
            self._ready.append(request)
            landed.succeed()

    def _grant(self) -> None:
        while self._reservations:
            request, event = self._reservations[0]
            if self.kv_reserved_tokens + self._footprint(request) > self.kv_capacity_tokens:
                return
            self._reservations.popleft()
            self._waiting_tokens -= self._footprint(request)
            self.kv_reserved_tokens += self._footprint(request)
            event.succeed()

    def _join(self) -> None:
        self.joined_attended = 0
        while self._ready and len(self._batch) < self.spec.max_batch_size:
            request = self._ready.popleft()
            request.join_iteration = self.iteration
            request.finish_iteration = self.iteration + request.output_tokens - 1
            heapq.heappush(self._batch, (request.finish_iteration, request.id, request))
            self.context_tokens += request.input_tokens
            attended = request.input_tokens if self.topk is None else min(request.input_tokens, self.topk)
            self.attended_tokens += attended
            self.joined_attended += attended
            if self.topk is not None and request.input_tokens < self.topk:
                self._unsaturated.add(request.id)
                heapq.heappush(self._saturating, (self.iteration + self.topk - request.input_tokens, request.id))

    def _grow(self) -> None:
        """Every sequence is one token longer; with top-k attention, only those still under k attend to more."""
        self.context_tokens += len(self._batch)
        if self.topk is None:
            self.attended_tokens += len(self._batch)
            return
        self.attended_tokens += len(self._unsaturated)
        while self._saturating and self._saturating[0][0] <= self.iteration:
            self._unsaturated.discard(heapq.heappop(self._saturating)[1])

    def _leave(self) -> None:
        now = self.env.now
        while self._batch and self._batch[0][0] < self.iteration:
            request = heapq.heappop(self._batch)[2]
            request.finish = now
            self.context_tokens -= request.input_tokens + request.output_tokens
            self.attended_tokens -= request.total_tokens if self.topk is None else min(request.total_tokens, self.topk)
            self._unsaturated.discard(request.id)
            self.kv_reserved_tokens -= self._footprint(request)
            self.on_finished(request)
        self._grant()

    def run(self):
        """SimPy process: one timeout per iteration of the whole batch."""
        env = self.env
        while True:
            if self._receiving:
                yield from self._receive_pending()
            self._join()
            if not self._batch:
                self._wakeup = env.event()
                yield self._wakeup
                self._wakeup = None
                continue
            start = env.now
            duration = self.compute.decode_step_time(len(self._batch), self.context_tokens, self.attended_tokens) \
                + self.iteration_overhead
            fetch = self.kv_manager.step_fetch(self)
            if fetch is None:
                yield env.timeout(duration)
            else:  # missing KV entries are fetched during the step; prefetch overlaps layer by layer
                yield from self.kv_manager.fetch_and_compute(self, fetch, duration)
            self.busy_time += env.now - start
            self.iteration_ends.append(env.now)
            self.iteration += 1
            self._grow()
            self._leave()
