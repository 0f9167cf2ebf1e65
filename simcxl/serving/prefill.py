"""A prefill worker: batches queued prompts by a token budget and runs one forward pass per batch.

A batch first loads the cached part of each prompt (if the KV manager has a prefix cache), then
computes the rest in one forward pass. The prompt's KV stays in this worker's HBM until the hand-off
(:mod:`simcxl.serving.handoff`) releases it, so a slow hand-off throttles prefill admission: that
back-pressure is real in Mooncake- and Dynamo-style deployments and is what pull-based transfer (KVDirect)
removes.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import simpy
from simpy.events import Timeout  # made directly: env.timeout binds a new callable per use

from simcxl.config.schema import PrefillSpec
from simcxl.fabric.topology import GPUPort
from simcxl.hardware.gpu import GPUCompute
from simcxl.kvcache.protocol import InstanceView, KVConnector
from simcxl.sim.environment import Wakeup
from simcxl.sim.integral import StepIntegral
from simcxl.sim.request import Request

if TYPE_CHECKING:
    from simcxl.metrics.timeline import Timeline


class PrefillWorker:
    """One prefill instance (``tensor_parallel`` GPUs) with an FCFS queue. ``handoffs`` is the cluster's
    :class:`~simcxl.serving.handoff.Handoffs`, which takes each computed prompt's KV to decode."""

    def __init__(self, env: simpy.Environment, index: int, compute: GPUCompute, spec: PrefillSpec,
                 gpus: list[GPUPort], connector: KVConnector, handoffs, iteration_overhead: float = 0.0):
        self.env = env
        self.iteration_overhead = iteration_overhead
        self.index = index
        self.compute = compute
        self.spec = spec
        self.gpus = gpus
        self.view = InstanceView(index, tuple(gpus), gpus[0].node)  # what the connector sees of this instance
        self.connector = connector
        self.handoffs = handoffs
        self.kv_capacity_tokens = compute.kv_capacity_tokens - connector.gpu_cache_tokens
        self.kv_held_tokens = 0
        self.queue: deque[Request] = deque()
        self.queued_tokens = 0
        self.running_tokens = 0
        self.running_requests = 0  # in the batch being prefilled
        self.busy_time = 0.0
        self.blocked_time = 0.0  # GPU idle, waiting for a synchronous KV send to finish
        self.loading_time = 0.0  # GPU idle, waiting for its batch's cached prefixes to load
        self.flops = 0.0  # work of the batches that have ended, summed over the instance's GPUs (MFU)
        self.hbm_bytes = 0.0  # (MBU)
        self.tokens_computed = 0  # prompt tokens those batches computed (cached ones excluded)
        self.batches = 0
        self._queue_time = StepIntegral(env)  # integral of len(queue) over time (Little's law)
        self._priced = getattr(compute, "prefill_priced", None) or (  # a test's stand-in may not count work
            lambda new, cached: (compute.prefill_time(new, cached), 0.0, 0.0))
        self._wakeup = Wakeup(env)
        self.timeline: "Timeline | None" = None  # set by the cluster when a run records one
        env.process(self.run())

    @property
    def load_tokens(self) -> int:
        """Prompt tokens waiting or being prefilled here (the least-loaded router's measure)."""
        return self.queued_tokens + self.running_tokens

    def submit(self, request: Request) -> None:
        request.prefill_instance = self.index
        self._queue_time.step(len(self.queue))
        self.queue.append(request)
        self.queued_tokens += request.input_tokens
        self._wakeup.wake()

    def release(self, request: Request) -> None:
        """The KV of ``request`` has left this GPU: its HBM is free again, which matters to a queued prompt
        waiting for room (waking an idle worker for nothing would cost an event per request)."""
        self.kv_held_tokens -= request.input_tokens
        if self.queue:
            self._wakeup.wake()

    @property
    def work_done(self) -> tuple[float, float]:
        """FLOPs and HBM bytes of the batches that have ended, summed over the instance's GPUs (read-only)."""
        return self.flops, self.hbm_bytes

    @property
    def queue_area(self) -> float:
        """Integral of the queue's length over simulated time up to now (request-seconds; read-only)."""
        return self._queue_time.at(len(self.queue))

    def _next_batch(self) -> list[Request]:
        """FCFS up to the budgets: tokens to compute (a cached prefix costs none, as in vLLM and SGLang),
        batch size, and free HBM for whole prompts. A prompt over the token budget runs alone."""
        if self.queue:
            self._queue_time.step(len(self.queue))
        batch: list[Request] = []
        computed = held = 0
        free = self.kv_capacity_tokens - self.kv_held_tokens
        while self.queue and len(batch) < self.spec.max_batch_size:
            head = self.queue[0]
            if held + head.input_tokens > free:
                break
            compute = head.input_tokens - self.connector.cached_prefix_tokens(head, self.view)
            if batch and computed + compute > self.spec.max_batch_tokens:
                break
            batch.append(self.queue.popleft())
            computed += compute
            held += head.input_tokens
        return batch

    def run(self):
        """SimPy process: one timeout per batch."""
        env = self.env
        while True:
            batch = self._next_batch()
            if not batch:
                yield self._wakeup.wait()
                continue
            tokens = sum(r.input_tokens for r in batch)
            self.queued_tokens -= tokens
            self.running_tokens, self.running_requests = tokens, len(batch)
            self.kv_held_tokens += tokens
            loads, batch_start = [], env.now
            for request in batch:
                request.prefill_start = batch_start
                load = self.connector.load_prefix(request, self.view)
                if load is not None:
                    loads.append(load)
            if loads:
                loading = env.now
                yield env.all_of(loads)
                self.loading_time += env.now - loading
            loaded = env.now
            for request in batch:
                request.prefix_load_end = loaded
            new, cached = [r.input_tokens - r.cached_tokens for r in batch], [r.cached_tokens for r in batch]
            duration, flops, nbytes = self._priced(new, cached)
            duration += self.iteration_overhead
            yield Timeout(env, duration)
            self.busy_time += duration
            self.flops += flops
            self.hbm_bytes += nbytes
            self.tokens_computed += sum(new)
            self.batches += 1
            if self.timeline is not None:
                self.timeline.slice("prefill", f"instance {self.index}", "prefill", batch_start, env.now,
                                    requests=len(batch), tokens=tokens,
                                    cached_tokens=sum(r.cached_tokens for r in batch))
            self.running_tokens = self.running_requests = 0
            handoffs = []  # the events of hand-offs this worker waits for (a blocking send); None otherwise
            prefilled = env.now
            for request in batch:
                request.prefill_end = prefilled
                handoffs.append(self.handoffs.start(request, self))
            if self.handoffs.blocks_prefill:
                blocked = env.now
                yield env.all_of(handoffs)
                self.blocked_time += env.now - blocked
                if self.timeline is not None:
                    self.timeline.slice("prefill", f"instance {self.index}", "KV send (blocking)", blocked, env.now)
