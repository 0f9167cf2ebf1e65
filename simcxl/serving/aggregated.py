"""An aggregated (colocated) instance: one engine prefills and decodes, vLLM v1's scheduler in short.

Each iteration is one forward pass, one SimPy event. The scheduler fills a token budget
(``max_num_batched_tokens``): running decodes first (one token each), then the next chunk of running
sequences still in their prompt, then waiting prompts while the budget and ``max_num_seqs`` allow,
the last one possibly as a partial chunk (chunked prefill). With ``mixed_prefill: false`` (SGLang's
default, no ``--enable-mixed-chunk``) prompt chunks run in prefill-only iterations that pause the decodes. KV blocks are allocated on demand for
exactly the tokens scheduled; when a decoding sequence needs a block and none is free, the newest
running sequence is preempted by recompute: its blocks are freed and it returns to the front of the
queue, to prefill its prompt and the tokens it already generated again. No new prompt is admitted in
an iteration that preempted (as vLLM v1).

With a connector whose KV lives in a tier outside HBM (``KVConnector.tiered``: the sparse designs, SGLang
HiSparse's host or pool tier) the instance asks it what a disaggregated pair would: a new prompt's cached
prefix (the prefix cache is the connector's, not this HBM's) is loaded into HBM before it prefills; once the
prompt is computed the hand-off runs with this instance at both ends (:meth:`Handoffs.colocate`: the KV is
written to the tier and HBM keeps only what decode holds, the hot buffer and the generated tokens, as SGLang
HiSparse frees a request's device KV after prefill), the request decoding again once it is delivered; each
decode iteration asks ``step_fetch`` for its top-k misses. A sparse-attention model's iterations are priced as
the disaggregated workers price theirs (``decode_step_time`` with top-k, ``prefill_time``), which needs
prefill-only iterations (``mixed_prefill: false``, SGLang's default).

Work per iteration is linear in the running sequences, as an engine's own scheduler is.
"""

from __future__ import annotations

from array import array
from collections import deque
from typing import TYPE_CHECKING, Callable

import simpy
from simpy.events import Timeout  # made directly: env.timeout binds a new callable per use

from simcxl.config.schema import AggregatedSpec
from simcxl.fabric.topology import GPUPort
from simcxl.hardware.gpu import GPUCompute
from simcxl.kvcache.protocol import InstanceView, KVConnector, StepView
from simcxl.sim.environment import Wakeup
from simcxl.sim.integral import StepIntegral
from simcxl.serving.kv_blocks import KVBlocks, PrefixCachingBlocks
from simcxl.sim.request import Request

if TYPE_CHECKING:
    from simcxl.metrics.timeline import Timeline


class AggregatedWorker:
    """One colocated instance (``tensor_parallel`` GPUs) with continuous batching and chunked prefill. ``handoffs``
    is the cluster's :class:`~simcxl.serving.handoff.Handoffs` when a tiered connector keeps KV outside HBM (not
    imported here: the hand-off runner refers to this class)."""

    def __init__(self, env: simpy.Environment, index: int, compute: GPUCompute, spec: AggregatedSpec,
                 iteration_overhead: float, gpus: list[GPUPort], on_finished: Callable[[Request], None],
                 hash_tokens: int | None = None, connector: KVConnector | None = None,
                 handoffs=None):
        self.env = env
        self.connector = connector  # a tiered connector (see the module docstring), or None: all KV in HBM
        self.handoffs = handoffs
        self.view = InstanceView(index, tuple(gpus), gpus[0].node if gpus else -1, colocated=True)
        self.topk = compute.llm.topk
        self.attended = compute.llm.attended  # one top-k rule, the model's
        self._offloaded: dict[int, int] = {}  # request id -> prompt tokens whose KV is in the tier, not in HBM
        self._fresh: set[int] = set()  # ids whose next decode step finds an empty hot buffer (StepView.joined_attended)
        self.loading = 0  # admitted prompts whose cached prefix is still loading into HBM
        self.handing_off = 0  # computed prompts whose KV is still being written to / delivered from the tier
        self.index = index
        self.compute = compute
        self.spec = spec
        self.iteration_overhead = iteration_overhead
        self.gpus = gpus
        self.on_finished = on_finished
        self.caching = (spec.prefix_caching and hash_tokens is not None  # prompts' block hashes cover hash_tokens
                        and connector is None)  # with a tier, the prefix cache is the connector's
        self.kv = (PrefixCachingBlocks(compute.kv_capacity_tokens, spec.block_tokens, hash_tokens) if self.caching
                   else KVBlocks(compute.kv_capacity_tokens, spec.block_tokens))
        self.waiting: deque[Request] = deque()
        self._unseen = 0  # the queue's newest prompts, submitted after the next batch was formed (async scheduling)
        self._admissible = 0  # prompts at the queue's head this iteration's batch may take
        self._busy = False  # the last iteration ran (its successor's batch was formed at its launch)
        self.running: list[Request] = []  # in admission order: the newest is last, and preempted first
        self.queued_tokens = 0
        self.iteration = 0
        self.iteration_ends = array("d")  # end time of every iteration: its tokens' timestamps (8 bytes each)
        self.busy_time = 0.0
        self.preemptions = 0
        self.recomputed_tokens = 0  # KV tokens computed again after preemptions
        self.prefix_hit_tokens = 0  # prompt tokens first scheduled with their KV already cached here
        self.prefix_looked_up_tokens = 0
        self.flops = 0.0  # work of the iterations that have ended, summed over the instance's GPUs (MFU)
        self.hbm_bytes = 0.0  # (MBU)
        self.tokens_computed = 0  # tokens those iterations processed (decodes and prompt chunks)
        self._queue_time = StepIntegral(env)  # integral of len(waiting) over time (Little's law)
        self._work = getattr(compute, "forward_work", lambda *_: (0.0, 0.0))  # a test's stand-in may not count work
        if self.topk is not None:  # sparse attention: the disaggregated workers' pricing (top-k pairs, indexer)
            self._price = self._price_sparse
        self._wakeup = Wakeup(env)
        self.timeline: "Timeline | None" = None  # set by the cluster when a run records one
        env.process(self.run())

    @property
    def load_tokens(self) -> int:
        """Prompt tokens waiting here (the least-loaded router's measure)."""
        return self.queued_tokens

    def affinity_tokens(self, request: Request) -> int:
        """Prompt tokens this instance holds cached in its own HBM (the cache-aware router's measure)."""
        return len(self.kv.cached_prefix(request)) * self.kv.hash_tokens

    def submit(self, request: Request) -> None:
        request.prefill_instance = request.decode_instance = self.index
        self._queue_time.step(len(self.waiting))
        self.waiting.append(request)
        self._unseen += 1
        self.queued_tokens += request.input_tokens
        self._wakeup.wake()

    @property
    def work_done(self) -> tuple[float, float]:
        """FLOPs and HBM bytes of the iterations that have ended, summed over the instance's GPUs (read-only)."""
        return self.flops, self.hbm_bytes

    @property
    def queue_area(self) -> float:
        """Integral of the waiting queue's length over simulated time up to now (request-seconds; read-only)."""
        return self._queue_time.at(len(self.waiting))

    @property
    def kv_blocks_used(self) -> int:
        """KV blocks held by running sequences now (cached free blocks excluded; read-only)."""
        return self.kv.total - self.kv.free

    def _preempt(self, victim: Request) -> None:
        """Drop ``victim``'s KV; it waits at the front of the queue to recompute prompt + generated tokens."""
        self.running.remove(victim)
        self.kv.release(victim)
        self._offloaded.pop(victim.id, None)  # it recomputes its whole KV in HBM
        if self.connector is not None:
            self.connector.preempted(victim)
        if victim.join_iteration >= 0:  # it was emitting tokens: that stint ends with the last iteration
            victim.end_stint(self.iteration - 1)
        self.recomputed_tokens += victim.computed
        victim.computed = 0
        victim.target = victim.input_tokens + victim.generated
        self._queue_time.step(len(self.waiting))
        self.waiting.appendleft(victim)
        self._admissible += 1  # the scheduler knows what it preempts
        self.queued_tokens += victim.target
        self.preemptions += 1
        if self.timeline is not None:
            self.timeline.instant("aggregated", f"instance {self.index}", "preempt", self.env.now, request=victim.id)

    def _allocate(self, request: Request, tokens: int) -> bool:
        """Blocks for ``tokens`` of ``request``'s KV, preempting the newest running sequences until they fit;
        False if ``request`` itself had to go."""
        while not self.kv.grow(request, tokens):
            victim = self.running[-1]
            self._preempt(victim)
            if victim is request:
                return False
        return True

    def _schedule(self) -> tuple[list[Request], list[tuple[Request, int]]]:
        """This iteration's decoding sequences and prompt chunks ``(request, tokens)``, blocks allocated.

        Mixed (vLLM v1): decoding sequences go first, one token each, so that every one of them emits a
        token every iteration, then prompt chunks fill the rest of the budget. Unmixed (SGLang's default):
        an iteration is a prefill batch whenever a prompt chunk can run, and a decode batch otherwise."""
        budget = self.spec.max_num_batched_tokens
        # with async scheduling this batch was formed when the last one was launched: prompts submitted since are
        # not in it (an engine that was idle forms its batch at once)
        self._admissible = len(self.waiting) - (self._unseen if self.spec.async_scheduling and self._busy else 0)
        self._unseen = 0
        if not self.spec.mixed_prefill:
            chunks = self._schedule_chunks(budget, self.preemptions)
            return ([], chunks) if chunks else (self._schedule_decodes(budget), [])
        preemptions = self.preemptions
        decodes = self._schedule_decodes(budget)
        return decodes, self._schedule_chunks(budget - len(decodes), preemptions)

    def _schedule_decodes(self, budget: int) -> list[Request]:
        """Decoding sequences, a block each when they cross into one; one with no free block preempts the
        newest running sequences."""
        scheduled: list[Request] = []
        for request in [r for r in self.running if r.computed >= r.target][:budget]:
            if request.computed < request.target:  # preempted for an older sequence's block
                continue
            if not self._allocate(request, request.computed + 1 - self._offloaded.get(request.id, 0)):
                break
            if request.join_iteration < 0:  # back from its hand-off: its second token's stint starts here
                request.join_iteration = self.iteration
            scheduled.append(request)
        return scheduled

    def _schedule_chunks(self, budget: int, preemptions: int) -> list[tuple[Request, int]]:
        """Prompt chunks of running sequences, then new prompts (none in an iteration that preempted); a
        chunk waits, preempting nothing, when its blocks are not free."""
        chunks: list[tuple[Request, int]] = []
        for request in [r for r in self.running if r.computed < r.target]:
            tokens = min(request.target - request.computed, budget)
            if tokens <= 0 or not self.kv.grow(request, request.computed + tokens):
                break
            chunks.append((request, tokens))
            budget -= tokens
        while (self.waiting and budget > 0 and self.preemptions == preemptions and self._admissible > 0
               and len(self.running) + self.loading + self.handing_off < self.spec.max_num_seqs):
            request = self.waiting[0]
            if self.connector is not None:
                tokens = self._admit_from_tier(request, budget)
                if tokens is None:
                    break
                if tokens:
                    chunks.append((request, tokens))
                    budget -= tokens
                continue
            if self.caching:  # a cached prefix of its prompt is referenced, not computed
                request.computed = self.kv.admit(request)
            tokens = min(request.target - request.computed, budget)
            if not self.kv.grow(request, request.computed + tokens):
                if self.caching:
                    self.kv.release(request)
                    request.computed = 0
                break
            if self.caching and request.generated == 0:
                request.cached_tokens = request.computed
                self.prefix_hit_tokens += request.computed
                self.prefix_looked_up_tokens += request.input_tokens
            self._queue_time.step(len(self.waiting))
            self.waiting.popleft()
            self._admissible -= 1
            self.queued_tokens -= request.target
            self.running.append(request)
            if request.prefill_start != request.prefill_start:  # NaN: its first schedule
                request.prefill_start = request.prefix_load_end = self.env.now
            chunks.append((request, tokens))
            budget -= tokens
        return chunks

    def _admit_from_tier(self, request: Request, budget: int) -> int | None:
        """The queue's head, admitted with a tiered connector: blocks for its cached prefix and first chunk (None:
        too few free, it waits), then its prefix loads from the tier into HBM; returns the tokens it computes in
        this pass (0 while its prefix loads: it joins the running sequences once loaded)."""
        connector, first = self.connector, request.generated == 0  # a preempted sequence recomputes it all here
        cached = connector.cached_prefix_tokens(request, self.view) if first else 0
        tokens = min(request.target - cached, budget)
        if not self.kv.grow(request, cached + tokens):
            return None
        self._queue_time.step(len(self.waiting))
        self.waiting.popleft()
        self._admissible -= 1
        self.queued_tokens -= request.target
        if request.prefill_start != request.prefill_start:  # NaN: its first schedule
            request.prefill_start = request.prefix_load_end = self.env.now
        load = connector.load_prefix(request, self.view) if first else None  # sets request.cached_tokens
        request.computed = request.cached_tokens if first else 0
        if first:
            self.prefix_hit_tokens += request.cached_tokens
            self.prefix_looked_up_tokens += request.input_tokens
        if load is None:
            self.running.append(request)
            return tokens
        self.loading += 1
        load.callbacks.append(lambda _event: self._loaded(request))
        return 0

    def _loaded(self, request: Request) -> None:
        """The cached prefix is in HBM: the prompt's remaining tokens can be scheduled."""
        self.loading -= 1
        request.prefix_load_end = self.env.now
        self.running.append(request)
        self._wakeup.wake()

    def release(self, request: Request) -> None:
        """The prompt's KV is in the connector's tier (the hand-off's write): HBM keeps only what decode holds,
        ``decode_kv_tokens`` (the hot buffer and the generated tokens; 0: all of it, dense attention)."""
        if not request.decode_kv_tokens:
            return
        offloaded = request.input_tokens - (request.decode_kv_tokens - request.output_tokens)
        self._offloaded[request.id] = offloaded
        keep = self.kv.blocks_for(request.computed - offloaded)
        self.kv.free += request.blocks - keep
        request.blocks = keep
        if self.waiting:
            self._wakeup.wake()

    def _delivered(self, request: Request) -> None:
        """The hand-off has delivered the request's KV back to this instance: it decodes from the next pass,
        its first step with an empty hot buffer."""
        self.handing_off -= 1
        self._fresh.add(request.id)
        self.running.append(request)
        self._wakeup.wake()

    def _advance(self, decodes: list[Request], chunks: list[tuple[Request, int]]) -> None:
        """The pass has ended: every scheduled sequence holds its new KV; each one that completed its prompt,
        and each decoding one, emitted a token."""
        now, handoffs = self.env.now, []
        for request in decodes:
            request.computed += 1
            request.generated += 1
        for request, tokens in chunks:
            request.computed += tokens
            if request.computed == request.target:
                if self.caching:
                    self.kv.publish(request)
                if request.generated == 0:
                    request.prefill_end = now
                    if self.connector is not None and request.output_tokens > 1:
                        handoffs.append(request)
                elif self.connector is not None:  # recomputed after a preemption: its KV is in the tier already
                    self.release(request)
                request.join_iteration = self.iteration
                request.generated += 1
        finished = [r for r in self.running if r.generated == r.output_tokens]
        for request in finished:
            request.finish_iteration = self.iteration
            request.finish = now
            self.running.remove(request)
            self.kv.release(request)
            self._offloaded.pop(request.id, None)
            self._fresh.discard(request.id)
            self.on_finished(request)
        for request in handoffs:  # the first token is out; the KV goes to the tier before the second
            request.end_stint(self.iteration)
            self.running.remove(request)
            self.handing_off += 1
            self.handoffs.colocate(request, self).callbacks.append(lambda _event, r=request: self._delivered(r))

    def _price(self, decodes: list[Request], chunks: list[tuple[Request, int]], context: int
               ) -> tuple[float, float, float]:
        """Seconds, FLOPs and HBM bytes of one forward pass of dense attention: decodes and chunks in one pass."""
        shape = [(tokens, r.computed, r.computed + tokens == r.target) for r, tokens in chunks]
        duration = self.compute.forward_time(len(decodes), context, shape)
        return (duration, *self._work(len(decodes), context, shape))

    def _price_sparse(self, decodes: list[Request], chunks: list[tuple[Request, int]], context: int
                      ) -> tuple[float, float, float]:
        """One pass of a sparse-attention model, priced as the disaggregated workers price theirs: a decode
        step over the top-k (``decode_step_time``), or a prefill pass of prompt chunks (``prefill_priced``);
        never both (the cluster requires mixed_prefill: false)."""
        compute = self.compute
        if decodes:
            attended = sum(self.attended(r.computed + 1) for r in decodes)
            return (compute.decode_step_time(len(decodes), context, attended),
                    *compute.decode_work(len(decodes), attended, context))
        return compute.prefill_priced([tokens for _, tokens in chunks], [r.computed for r, _ in chunks])

    def _step(self, decodes: list[Request], context: int) -> StepView:
        """The coming decode step as the connector sees it; sequences back from their hand-off find their hot
        buffer empty (``joined_attended``), as a sequence joining a disaggregated decode batch does."""
        attended = joined = 0
        fresh = self._fresh
        for request in decodes:
            tokens = self.attended(request.computed + 1)
            attended += tokens
            if request.id in fresh:
                joined += tokens
                fresh.discard(request.id)
        return StepView(self.view, len(decodes), context, attended, joined)

    def run(self):
        """SimPy process: one timeout per iteration (one forward pass of decodes and prompt chunks)."""
        env = self.env
        while True:
            decodes, chunks = self._schedule()
            if not decodes and not chunks:
                if self.spec.async_scheduling and self._busy and self.waiting:  # nothing formed ahead: an idle engine schedules what has arrived
                    self._busy = False
                    continue
                self._busy = False
                yield self._wakeup.wait()
                continue
            self._busy = True
            context = sum(r.computed + 1 for r in decodes)
            duration, flops, nbytes = self._price(decodes, chunks, context)
            duration += self.iteration_overhead
            fetch = None
            if decodes and self.connector is not None and self.connector.fetches_each_step:
                step = self._step(decodes, context)
                fetch = self.connector.step_fetch(step)
            if fetch is None:
                yield Timeout(env, duration)
            else:  # the top-k misses swapped in during the step, as the connector overlaps them
                start = env.now
                yield from self.connector.fetch_and_compute(step, fetch, duration)
                duration = env.now - start
            self.busy_time += duration
            self.flops += flops
            self.hbm_bytes += nbytes
            self.tokens_computed += len(decodes) + sum(tokens for _, tokens in chunks)
            if self.timeline is not None:
                self.timeline.slice("aggregated", f"instance {self.index}", "iteration", env.now - duration, env.now,
                                    decodes=len(decodes), prefill_chunks=len(chunks),
                                    prefill_tokens=sum(tokens for _, tokens in chunks))
            self.iteration_ends.append(env.now)
            self._advance(decodes, chunks)
            self.iteration += 1
