"""A decode worker: continuous batching with one SimPy event per iteration, not per token.

Each iteration generates one token for every sequence in the batch. A sequence that joins at
iteration j and must generate k tokens leaves after iteration j + k - 1, so the worker keeps the batch
in a heap keyed by that iteration and does O(1) work per iteration plus O(log n) per join or leave.
Token timestamps are the iteration end times, recorded once per iteration; per-request TBT is derived
from them when the run ends.

KV is paged in blocks (:class:`KVBlocks`). Admission (``decode.admission``) is FCFS and decides what a
request must be granted before its KV moves here:
- ``on_demand``, as vLLM and SGLang do: blocks for its prompt and first token. A sequence takes another
  block each time it crosses into one. Every sequence grows by a token per iteration, so the ones that
  cross at iteration i are those whose (join iteration - tokens held at join) is i modulo the block size:
  a count per residue prices each iteration's new blocks in O(1), and holdings are worked out when a
  sequence leaves.
  When no block is free, the newest sequence is preempted by recompute: its blocks are freed, and it
  waits here (its prompt came from a prefill instance, but the decode engine recomputes locally, as a
  vLLM v1 decode instance re-runs a preempted request's prefill) to prefill prompt + generated tokens
  again in a pass of its own before the step it rejoins, stalling the batch for that pass.
- ``reserve``: the whole footprint, prompt + output, which needs an output length no engine knows;
  no sequence ever needs a block later, so nothing is preempted.

Most iterations are quiet: nobody joins, leaves or is preempted, and nothing reaches the worker. The
worker plans such a run of iterations ahead (a :class:`Stretch`, up to the next leave) and waits on one
event for all of them, with every end time summed exactly as one event per iteration would sum it. What
reaches the worker meanwhile (a reservation, a landed request, a receive, a reader of its state) first
applies the iterations that have ended by then; an arrival cuts the stretch short at the end of the
iteration in progress, where the request joins. Results are those of one event per iteration, bit for bit.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_right
from collections import deque
from itertools import accumulate
from typing import TYPE_CHECKING, Callable

import simpy
from simpy.events import Timeout

from simcxl.config.schema import DecodeSpec
from simcxl.fabric.topology import GPUPort
from simcxl.hardware.gpu import GPUCompute
from simcxl.kvcache.protocol import InstanceView, KVConnector, StepView
from simcxl.serving.kv_blocks import KVBlocks
from simcxl.sim.environment import TimeoutAt, Wakeup
from simcxl.sim.request import Request

if TYPE_CHECKING:
    from simcxl.metrics.timeline import Timeline


# The most iterations planned at once: a stretch an arrival cuts short wasted the rest. 20-32 cost alike on
# configs/rdma.yaml, 2.7% fewer instructions than 16 (benchmarks/RESULTS.md, session 15).
STRETCH_ITERATIONS = 24


def _no_work(*_) -> tuple[float, float]:
    return 0.0, 0.0


class Stretch:
    """Quiet iterations planned ahead, from ``start``: each one's end time, and the blocks taken at the starts
    of the ones after the first (cumulative, with the last value repeated: none are taken after the last).
    ``done`` of them have been applied to the worker; ``timer`` fires when the last ends."""

    __slots__ = ("start", "ends", "taken", "done", "timer")

    def __init__(self, start: float, ends: list[float], taken: list[int], timer: simpy.Event):
        self.start, self.ends, self.taken, self.done, self.timer = start, ends, taken, 0, timer


class DecodeWorker:
    """One decode instance (``tensor_parallel`` GPUs)."""

    stretches = True  # plan quiet iterations ahead (False: one event per iteration, with identical results)

    def __init__(self, env: simpy.Environment, index: int, compute: GPUCompute, spec: DecodeSpec,
                 gpus: list[GPUPort], on_finished: Callable[[Request], None], connector: KVConnector,
                 iteration_overhead: float = 0.0):
        self.env = env
        self.iteration_overhead = iteration_overhead
        self.on_finished = on_finished
        self.connector = connector
        self.topk = compute.llm.topk
        self.attended = compute.llm.attended  # one top-k rule, the model's
        self.attended_tokens = 0  # sum over the batch of min(context, top-k): what sparse attention reads
        self.joined_attended = 0  # the part of it belonging to sequences that joined this iteration
        self._saturating: list[tuple[int, int]] = []  # (iteration its context reaches top-k, request id)
        self._unsaturated: dict[int, int] = {}  # request id -> that iteration, for sequences still under top-k
        self.index = index
        self.compute = compute
        self.spec = spec
        self.gpus = gpus
        self.view = InstanceView(index, tuple(gpus), gpus[0].node if gpus else -1)  # what the connector sees
        self.on_demand = spec.admission == "on_demand"
        self.kv = KVBlocks(compute.kv_capacity_tokens, spec.block_tokens)
        self._reservations: deque[tuple[Request, simpy.Event]] = deque()
        self._waiting_tokens = 0  # KV tokens the queued reservations will take
        self._ready: deque[Request] = deque()
        self._receiving: list[tuple[Request, Callable[[], simpy.Event], simpy.Event]] = []
        self.receive_time = 0.0  # the batch stalled while this worker received KV itself
        self._running: dict[int, Request] = {}  # the batch, in admission order: the newest is preempted first
        self._batch: list[tuple[int, int, Request]] = []  # heap of (finish iteration, id, request); stale kept
        self._crossing_counts = [0] * spec.block_tokens  # sequences needing a block at iterations of each residue
        self._recompute: deque[Request] = deque()  # preempted, waiting for blocks to prefill again here
        self.context_tokens = 0
        self.iteration = 0
        self.iteration_ends = array("d")  # end time of every iteration: its tokens' timestamps (8 bytes each)
        self._busy_time = 0.0
        self._stretch: Stretch | None = None
        self.preemptions = 0
        self.recomputed_tokens = 0  # prompt + generated tokens prefilled again after preemptions
        self.recompute_time = 0.0  # the batch stalled while preempted sequences prefilled again
        # the work of the iterations that have ended, as counts (priced by work_done when read, not per iteration):
        self._iterations_of = [0] * (spec.max_batch_size + 1)  # iterations by batch size
        self._largest_batch = 0  # the largest batch so far: the counts above it are all 0
        self._attended_sum = 0  # cached tokens attended to, summed over iterations
        self._context_sum = 0  # cached tokens (what an indexer scores), summed over iterations
        self._recompute_work = [0.0, 0.0]  # FLOPs and bytes of preempted sequences' prefill again
        self.tokens_computed = 0  # tokens those iterations processed: one a sequence, and recomputed prompts
        self._prefill_work = getattr(compute, "prefill_work", _no_work)  # a test's stand-in may not count work
        self.timeline: "Timeline | None" = None  # set by the cluster when a run records one
        self._wakeup = Wakeup(env)
        env.process(self.run())

    @property
    def batch_size(self) -> int:
        return len(self._running)

    @property
    def free_kv_tokens(self) -> int:
        """KV tokens in free blocks, less what queued reservations will take (the router's measure)."""
        self.settle()
        return self.kv.free * self.kv.block_tokens - self._waiting_tokens

    @property
    def busy_time(self) -> float:
        """Seconds of iterations that have ended."""
        self.settle()
        return self._busy_time

    @staticmethod
    def _footprint(request: Request) -> int:
        """KV tokens the request holds here when it finishes."""
        return request.decode_kv_tokens or request.total_tokens

    def _held_at_join(self, request: Request) -> int:
        """KV tokens the request holds as it joins: its prompt's (what the KV manager lands, e.g. a hot buffer
        for sparse attention) plus any tokens generated before a preemption."""
        landed = request.decode_kv_tokens - request.output_tokens if request.decode_kv_tokens else request.input_tokens
        return landed + request.generated  # the footprint less the output, without two calls per join and leave

    def _grant_tokens(self, request: Request) -> int:
        return self._held_at_join(request) + 1 if self.on_demand else self._footprint(request)

    def reserve(self, request: Request) -> simpy.Event | None:
        """Grant the request's admission blocks here (FCFS): None if they are granted now, else an event that
        fires once they are (most requests find room, and a granted event would cost an event each)."""
        self.settle()
        tokens = self._grant_tokens(request)
        if self._reservations or self._recompute or not self.kv.grow(request, tokens):
            event = self.env.event()
            self._reservations.append((request, event))
            self._waiting_tokens += tokens
            return event
        stretch = self._stretch
        if stretch is not None and self.kv.free < stretch.taken[-1] - stretch.taken[stretch.done]:
            self._cut()  # the blocks granted leave too few for the stretch's sequences to grow into
        return None

    def enqueue(self, request: Request) -> None:
        """The request's KV has landed: it joins the batch at the next iteration boundary."""
        self._ready.append(request)
        self._wakeup.wake()
        if self._stretch is not None and len(self._running) < self.spec.max_batch_size:
            self._cut()

    def receive(self, request: Request, transfer: Callable[[], simpy.Event]) -> simpy.Event:
        """Receive the request's KV on this worker's own loop, as a synchronous connector does (vLLM v0 runs
        the receive inside the model runner): at the next iteration boundary the batch waits for it, then
        the request joins. The returned event fires when the KV has landed."""
        landed = self.env.event()
        self._receiving.append((request, transfer, landed))
        self._wakeup.wake()
        if self._stretch is not None:
            self._cut()
        return landed

    def _receive_pending(self):
        """Every receive queued since the last iteration, together; the batch makes no progress meanwhile."""
        pending, self._receiving = self._receiving, []
        start = self.env.now
        yield self.env.all_of([transfer() for _, transfer, _ in pending])
        self.receive_time += self.env.now - start
        if self.timeline is not None:
            self.timeline.slice("decode", f"instance {self.index}", "receive KV (batch stalled)", start, self.env.now,
                                requests=len(pending))
        for request, _, landed in pending:
            self._ready.append(request)
            landed.succeed()

    def _grant(self) -> None:
        """Grant queued reservations in order while blocks are free; preempted sequences come first."""
        while self._reservations and not self._recompute:
            request, event = self._reservations[0]
            tokens = self._grant_tokens(request)
            if not self.kv.grow(request, tokens):
                return
            self._reservations.popleft()
            self._waiting_tokens -= tokens
            event.succeed()

    # ------------------------------------------------------------------ stretches of quiet iterations

    def _plan(self, start: float, duration: float) -> Stretch:
        """This iteration (from ``start``, lasting ``duration``, its blocks taken) and the quiet ones after it,
        priced and timed as the loop would: up to the first after which a sequence leaves, before the first
        that would preempt, at most ``STRETCH_ITERATIONS``."""
        first, kv = self.iteration + 1, self.kv  # the first iteration after this one
        last = min(self._batch[0][0], self.iteration + STRETCH_ITERATIONS - 1)
        taken = [0]
        if self.on_demand:  # the blocks each iteration takes at its start, while they last
            crossing, block_tokens, count = self._crossing_counts, kv.block_tokens, last - first + 1
            residue = first % block_tokens  # the counts repeated, from the first's residue on
            taken += accumulate((crossing * ((residue + count) // block_tokens + 1))[residue:residue + count])
            del taken[bisect_right(taken, kv.free):]
        else:
            taken *= last - first + 2
        taken.append(taken[-1])
        ends = [start + duration]
        self.compute.decode_stretch(len(self._running), self.context_tokens, self.attended_tokens, len(taken) - 2,
                                    self.iteration_overhead, ends)
        return Stretch(start, ends, taken, TimeoutAt(self.env, ends[-1]))

    def _apply(self, stretch: Stretch, ended: int) -> None:
        """The stretch's iterations before ``ended`` have ended (and the next has taken its blocks)."""
        done = stretch.done
        self._ended(stretch.ends[done - 1] if done else stretch.start, stretch.ends[done:ended])
        self.kv.free -= stretch.taken[ended] - stretch.taken[done]
        stretch.done = ended

    def _ended(self, begin: float, ends: list[float], recomputed: int = 0) -> None:
        """Iterations of the unchanged batch, run back to back from ``begin``, ended at ``ends``: their tokens'
        times, the busy time (summed iteration by iteration, as one event per iteration would), and the
        batch's growth by a token a sequence each. The one place an iteration's end is accounted."""
        n, count = len(self._running), len(ends)
        grown = n * count * (count - 1) // 2  # each iteration's context is n tokens longer than the last's
        self._iterations_of[n] += count
        self._attended_sum += count * self.attended_tokens + grown
        self._context_sum += count * self.context_tokens + grown
        self.tokens_computed += n * count
        if self.timeline is not None:
            start = begin
            for i, end in enumerate(ends):
                self.timeline.slice("decode", f"instance {self.index}", "decode", start, end, batch=n,
                                    context_tokens=self.context_tokens + n * i, recomputed_requests=recomputed)
                start = end
        self.iteration_ends.fromlist(ends)  # fromlist: one resize, not one per item
        busy = self._busy_time
        for end in ends:
            busy += end - begin
            begin = end
        self._busy_time = busy
        self.context_tokens += n * count
        if self.topk is None:
            self.iteration += count
            self.attended_tokens += n * count
        else:  # sparse attention: only sequences still under top-k attend to one more token
            for _ in range(count):
                self.iteration += 1
                self._grow_sparse()

    def settle(self) -> None:
        """Apply the iterations of a running stretch that have ended by now: before anything reads or changes
        the worker's state (its last iteration is applied by the worker itself, when it ends)."""
        stretch = self._stretch
        if stretch is not None:
            ended = bisect_right(stretch.ends, self.env.now, stretch.done, len(stretch.ends) - 1)
            if ended > stretch.done:
                self._apply(stretch, ended)

    def _cut(self) -> None:
        """Something reached the worker mid-stretch that changes its batch at the end of the iteration in
        progress: the stretch ends there, and the worker's wait moves to that end."""
        self.settle()
        stretch = self._stretch
        length = stretch.done + 1
        if length == len(stretch.ends):
            return
        del stretch.ends[length:], stretch.taken[length + 1:]
        stretch.taken[length] = stretch.taken[length - 1]
        timer = TimeoutAt(self.env, stretch.ends[-1])
        timer.callbacks, stretch.timer.callbacks = stretch.timer.callbacks, []  # the old timer fires for no one
        stretch.timer = timer

    # ------------------------------------------------------------------ the batch

    def _add(self, request: Request) -> None:
        """``request`` joins the batch this iteration with the KV of its prompt and generated tokens."""
        context = request.input_tokens + request.generated
        request.join_iteration = self.iteration
        request.finish_iteration = self.iteration + request.output_tokens - request.generated - 1
        self._running[request.id] = request
        if len(self._running) > self._largest_batch:
            self._largest_batch = len(self._running)
        heapq.heappush(self._batch, (request.finish_iteration, request.id, request))
        self.context_tokens += context
        attended = self.attended(context)
        self.attended_tokens += attended
        self.joined_attended += attended
        if self.topk is not None and context < self.topk:
            self._unsaturated[request.id] = saturated = self.iteration + self.topk - context
            heapq.heappush(self._saturating, (saturated, request.id))
        if self.on_demand:
            self._crossing_counts[self._crossing_residue(request)] += 1

    def _crossing_residue(self, request: Request) -> int:
        """The iterations (mod block size) at which the sequence needs a new block: its token at iteration i
        is its (held at join + i - join + 1)-th, which starts a block when that count is 1 mod the size."""
        return (request.join_iteration - self._held_at_join(request)) % self.kv.block_tokens

    def _remove(self, request: Request, allocated_through: int) -> None:
        """``request`` leaves the batch at this iteration boundary (finished or preempted); its blocks, which
        cover its tokens through iteration ``allocated_through``, free."""
        del self._running[request.id]
        context = request.input_tokens + request.generated + self.iteration - request.join_iteration
        self.context_tokens -= context
        self.attended_tokens -= self.attended(context)
        self._unsaturated.pop(request.id, None)
        if self.on_demand:
            self._crossing_counts[self._crossing_residue(request)] -= 1
            request.blocks = self.kv.blocks_for(
                self._held_at_join(request) + allocated_through - request.join_iteration + 1)
        self.kv.release(request)

    def _preempt(self, victim: Request) -> None:
        """Drop ``victim``'s KV before this iteration's blocks are taken; it waits to prefill its prompt and
        generated tokens again on this worker."""
        self._remove(victim, self.iteration - 1)
        victim.generated += self.iteration - victim.join_iteration
        victim.end_stint(self.iteration - 1)
        victim.finish_iteration = -1
        self.recomputed_tokens += victim.input_tokens + victim.generated
        self._recompute.append(victim)
        self.preemptions += 1
        self.connector.preempted(victim)
        if self.timeline is not None:
            self.timeline.instant("decode", f"instance {self.index}", "preempt", self.env.now, request=victim.id)

    def _allocate_step(self) -> bool:
        """A block for every sequence whose next token crosses into one, preempting the newest sequences
        while too few are free; True if any sequence was preempted."""
        residue, preempted = self.iteration % self.kv.block_tokens, False
        needed = self._crossing_counts[residue]
        while needed > self.kv.free:
            victim = next(reversed(self._running.values()))
            needed -= self._crossing_residue(victim) == residue
            self._preempt(victim)
            preempted = True
        self.kv.take(needed)
        return preempted

    def _join(self) -> list[Request]:
        """Preempted sequences whose blocks are free, then landed requests, join; returns the former."""
        self.joined_attended = 0
        rejoined = []
        if self._recompute:
            while self._recompute and len(self._running) < self.spec.max_batch_size:
                request = self._recompute[0]
                if not self.kv.grow(request, self._held_at_join(request) + 1):
                    break
                self._recompute.popleft()
                self._add(request)
                rejoined.append(request)
            self._grant()  # reservations queue behind preempted sequences
        while self._ready and len(self._running) < self.spec.max_batch_size:
            self._add(self._ready.popleft())
        return rejoined

    def _grow_sparse(self) -> None:
        """With top-k attention, only sequences still under k attend to one more token each iteration."""
        self.attended_tokens += len(self._unsaturated)
        while self._saturating and self._saturating[0][0] <= self.iteration:
            saturated, request_id = heapq.heappop(self._saturating)
            if self._unsaturated.get(request_id) == saturated:
                del self._unsaturated[request_id]

    def _leave(self) -> None:
        now = self.env.now
        while self._batch and self._batch[0][0] < self.iteration:
            finish, _, request = heapq.heappop(self._batch)
            if self._running.get(request.id) is not request or request.finish_iteration != finish:
                continue  # preempted since: it left by another door
            self._remove(request, self.iteration - 1)
            request.finish = now
            self.on_finished(request)
        self._grant()

    def _trace_fetch(self, fetch: simpy.Event, moved_before: float) -> None:
        """The KV entries this step fetches, as a transfer on the timeline ending when the last one lands."""
        start, connector = self.env.now, self.connector
        moved = sum(connector.bytes_moved.values()) - moved_before
        fetch.callbacks.append(lambda _: self.timeline.transfer(
            f"KV {connector.name}", "step fetch", start, self.env.now, instance=self.index, bytes=moved))

    def run(self):
        """SimPy process: one timeout per iteration of the whole batch, or per stretch of quiet ones.

        Every simulated run spends most of its time here, so the common iteration (no receive, no
        preemption, no arrivals, nobody leaving) takes the short path: each step's rare branch is a method,
        and timeouts are made directly (``env.timeout`` binds a new callable at every use)."""
        env, kv, running, batch, crossing = self.env, self.kv, self._running, self._batch, self._crossing_counts
        step_time, fetches = self.compute.decode_step_time, self.connector.fetches_each_step
        on_demand, block_tokens, overhead = self.on_demand, kv.block_tokens, self.iteration_overhead
        sparse, full = self.topk is not None, self.spec.max_batch_size
        plan_ahead = self.stretches and not sparse and not fetches
        no_rejoins: list[Request] = []
        while True:
            if self._receiving:
                yield from self._receive_pending()
            preempted = False
            if on_demand:
                needed = crossing[self.iteration % block_tokens]
                if needed > kv.free:  # rare: most iterations take their blocks and go
                    preempted = self._allocate_step()
                else:
                    kv.free -= needed
            if preempted:  # no admissions in a preempting iteration (vLLM v1)
                rejoined = no_rejoins
            elif self._recompute or self._ready:
                rejoined = self._join()
            else:
                self.joined_attended = 0
                rejoined = no_rejoins
            if not running:
                if preempted:  # the batch preempted itself empty: its sequences may rejoin next time round
                    continue
                yield self._wakeup.wait()
                continue
            start = env.now
            duration = overhead + step_time(len(running), self.context_tokens, self.attended_tokens)
            if rejoined:
                recompute = self.compute.prefill_time([r.input_tokens + r.generated for r in rejoined])
                self._recomputed(rejoined)
                self.recompute_time += recompute
                duration += recompute
            if (plan_ahead and batch[0][0] > self.iteration and not rejoined and not self._recompute
                    and not self._receiving and (not self._ready or len(running) >= full)):
                stretch = self._stretch = self._plan(start, duration)  # this iteration and the quiet ones after it
                yield stretch.timer
                self._stretch = None
                self._apply(stretch, len(stretch.ends))
            else:
                step = self._step() if fetches else None
                fetch = None if step is None else self._step_fetch(step)
                if fetch is None:
                    yield Timeout(env, duration)
                    now = start + duration  # the timeout's time, as SimPy adds it: env.now, without the property call
                else:  # missing KV entries are fetched during the step; prefetch overlaps layer by layer
                    yield from self.connector.fetch_and_compute(step, fetch, duration)
                    now = env.now
                self._ended(start, [now], len(rejoined))
            if batch and batch[0][0] < self.iteration:
                self._leave()

    def _recomputed(self, rejoined: list[Request]) -> None:
        """The work of preempted sequences' prefill again, a pass before the step they rejoin."""
        tokens = [r.input_tokens + r.generated for r in rejoined]
        flops, nbytes = self._prefill_work(tokens)
        self._recompute_work[0] += flops
        self._recompute_work[1] += nbytes
        self.tokens_computed += sum(tokens)

    @property
    def work_done(self) -> tuple[float, float]:
        """FLOPs and HBM bytes of the iterations that have ended, summed over the instance's GPUs (read-only)."""
        self.settle()
        totals = getattr(self.compute, "decode_work_totals", None)
        flops, nbytes = self._recompute_work
        if totals is not None:
            decode = totals(self._iterations_of[:self._largest_batch + 1], self._attended_sum, self._context_sum)
            flops, nbytes = flops + decode[0], nbytes + decode[1]
        return flops, nbytes

    @property
    def kv_blocks_used(self) -> int:
        """KV blocks granted now (read-only, for the sampler)."""
        self.settle()
        return self.kv.total - self.kv.free

    @property
    def waiting(self) -> int:
        """Requests here not in the batch: waiting for HBM, landed but not joined, or preempted to recompute."""
        return len(self._reservations) + len(self._ready) + len(self._recompute) + len(self._receiving)

    def _step(self) -> StepView:
        """The coming step as the connector sees it."""
        return StepView(self.view, len(self._running), self.context_tokens, self.attended_tokens,
                        self.joined_attended)

    def _step_fetch(self, step: StepView) -> simpy.Event | None:
        """The connector's fetch for the coming step, on the timeline when one is recorded."""
        moved = sum(self.connector.bytes_moved.values()) if self.timeline is not None else 0.0
        fetch = self.connector.step_fetch(step)
        if fetch is not None and self.timeline is not None:
            self._trace_fetch(fetch, moved)
        return fetch
