"""The cluster: builds the rack from a validated scenario, replays a workload through it, and runs SimPy.

Prefill nodes come first, then decode nodes (aggregated serving: ``nodes`` of colocated instances);
each node holds ``gpus_per_node / tensor_parallel`` instances of ``tensor_parallel`` consecutive GPUs.
Requests arrive at their trace or drawn times (open loop), or, with a closed-loop workload, each of
``concurrency`` clients sends its next request when its last one finishes. A workload sent in rounds
(``workload.rounds``) starts each round once the previous one has drained: a closed-loop round with its own
clients, an open-loop one at its arrival times offset by the round's start. The cluster checks up front that the model and the
largest request fit, so that a run can never wait forever on memory that does not exist.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterator

import numpy as np

from simpy.events import Timeout  # made directly: env.timeout binds a new callable per use

from simcxl.config.loader import LoadedScenario
from simcxl.fabric.fabric import Fabric
from simcxl.hardware.gpu import GPUCompute
from simcxl.hardware.model import LLM
from simcxl.kvcache import connector_class
from simcxl.metrics.request_log import RequestLog
from simcxl.metrics.timeline import Timeline
from simcxl.metrics.timeseries import UtilizationSampler
from simcxl.serving.aggregated import AggregatedWorker
from simcxl.serving.decode import DecodeWorker
from simcxl.serving.handoff import Handoffs
from simcxl.serving.prefill import PrefillWorker
from simcxl.serving.router import Router
from simcxl.sim.environment import CountingEnvironment
from simcxl.sim.request import Request
from simcxl.workload import Workload, bytes_per_request, length_bounds, memory_bytes

GB = 1e9


class Cluster:
    """Every entity of one run, wired together."""

    def __init__(self, loaded: LoadedScenario, block_tokens: int = 16, timeline: Timeline | None = None):
        scenario = loaded.scenario
        self.scenario = scenario
        self.env = CountingEnvironment()
        self.llm = LLM(scenario.model)
        self.compute = GPUCompute(scenario.gpu, self.llm, scenario.cluster.tensor_parallel,
                                  fused=scenario.serving.execution == "fused",
                                  prefill_host_floor=scenario.serving.prefill_host_floor,
                                  dp_attention=scenario.serving.dp_attention)
        self._check_weights_fit(loaded)
        cluster = scenario.cluster
        aggregated = scenario.serving.mode == "aggregated"
        caching = scenario.serving.aggregated
        if aggregated and caching.prefix_caching and (block_tokens < caching.block_tokens
                                                      or block_tokens % caching.block_tokens):
            raise loaded.error("serving.aggregated.prefix_caching",
                               f"the workload hashes prompts every {block_tokens} tokens, which is not a whole number "
                               f"of the engine's {caching.block_tokens}-token KV blocks; set prefix_caching: false or "
                               f"a workload.block_tokens that is a multiple of serving.aggregated.block_tokens")
        if aggregated and self.llm.topk and caching.mixed_prefill:
            raise loaded.error("serving.aggregated.mixed_prefill",
                               f"a sparse-attention model ({self.llm.spec.name}) is served aggregated with prefill-only "
                               f"iterations (SGLang's default; its decode steps are priced over the top-k): set "
                               f"mixed_prefill: false")
        nodes = cluster.nodes if aggregated else cluster.prefill_nodes + cluster.decode_nodes
        self.fabric = Fabric(self.env, scenario.fabric, nodes, cluster.gpus_per_node, cluster.nics_per_node)
        manager = connector_class(scenario.kv_manager.type)
        missing = manager.missing(scenario)
        if missing:
            raise loaded.error("kv_manager.type", missing)
        self.kv_manager = manager(self.env, scenario, self.llm, self.fabric, block_tokens)
        self.handoffs = Handoffs(self.env, self.kv_manager, self.llm, scenario.kv_manager)
        tp = cluster.tensor_parallel
        instances = [node[i:i + tp] for node in self.fabric.topology.nodes for i in range(0, cluster.gpus_per_node, tp)]
        serving = scenario.serving
        overhead = serving.iteration_overhead + serving.step_cpu.total  # exact when step_cpu is all 0
        first_decode = 0 if aggregated else cluster.prefill_nodes * cluster.gpus_per_node // tp
        self.prefill = [PrefillWorker(self.env, i, self.compute, serving.prefill, gpus, self.kv_manager, self.handoffs,
                                      overhead) for i, gpus in enumerate(instances[:first_decode])]
        self.decode = [] if aggregated else [
            DecodeWorker(self.env, i, self.compute, serving.decode, gpus, self._on_finished, self.kv_manager, overhead)
            for i, gpus in enumerate(instances[first_decode:])]
        # an aggregated instance asks the connector only where the KV lives in its tier (KVConnector.tiered)
        tier = self.kv_manager if self.kv_manager.tiered else None
        self.aggregated = [AggregatedWorker(self.env, i, self.compute, serving.aggregated, overhead, gpus,
                                            self._on_finished, block_tokens, tier, self.handoffs)
                           for i, gpus in enumerate(instances)] if aggregated else []
        try:
            self.router = Router(serving.router, self.prefill or self.aggregated, self.decode, self._affinity())
        except ValueError as exc:
            raise loaded.error("serving.router", str(exc)) from None
        self.handoffs.router = self.router
        frontend = serving.frontend
        # one way out (a sampled token to the client; request_table adds it to TTFT and E2E, a closed-loop
        # client sends its next request that long after its last token), and the way in by prompt length
        self.frontend_latency = serving.frontend_latency + frontend.exit  # exact when frontend is all 0
        self._entry = frontend.entry
        self.workload: Workload | None = None
        self.log: RequestLog | None = None  # every request's record, set by run()
        self._in_flight: dict[int, Request] = {}  # sent, not finished: recorded when they finish or the run ends
        self._closed_loop: Iterator[Request] | None = None  # the requests closed-loop clients have yet to send
        self._unsent = 0
        self.completed = 0
        self._requests = 0  # in the workload being run
        self._all_done = self.env.event()
        self._drained = self._all_done.succeed  # when _requests have finished: the end, or the next round
        self.round_starts: list[float] = []  # with rounds: when each round began sending
        self.measured_prefix_stats = None  # with rounds: the prefix cache's counters as the last round began
        self._progress: Callable[[int], None] | None = None
        self.sampler = UtilizationSampler(self.env, {"prefill": self.prefill, "decode": self.decode,
                                                     "aggregated": self.aggregated},
                                          self.fabric.topology.links, scenario.run.sample_interval, timeline)
        self.timeline = timeline
        for worker in self.prefill + self.decode + self.aggregated:
            worker.timeline = timeline

    def _affinity(self):
        """The cache-aware router's measure of a request's cached prefix on an instance (None: no cache to
        route by): the connector's answer, or an aggregated instance's own HBM cache."""
        if self.aggregated and not self.kv_manager.tiered:
            if not all(worker.caching for worker in self.aggregated):
                return None
            return lambda request, worker: worker.affinity_tokens(request)
        if self.kv_manager.prefix_cache is None:
            return None
        affinity = self.kv_manager.affinity_tokens
        return lambda request, worker: affinity(request, worker.view)  # a prefill or a tiered aggregated instance

    # ------------------------------------------------------------------ feasibility

    def _check_weights_fit(self, loaded: LoadedScenario) -> None:
        compute = self.compute
        if compute.kv_capacity_bytes <= 0:
            usable = compute.gpu.hbm_capacity * compute.gpu.memory_utilization * compute.tp
            raise loaded.error(
                "gpu.hbm_capacity",
                f"{self.llm.spec.name} weights ({self.llm.weight_bytes / GB:.1f} GB) do not fit in the usable HBM of "
                f"one instance ({usable / GB:.1f} GB = {compute.tp} GPU(s) x {compute.gpu.hbm_capacity / GB:.0f} GB x "
                f"memory_utilization {compute.gpu.memory_utilization}); raise cluster.tensor_parallel or pick a "
                f"larger GPU")

    @property
    def kv_room_tokens(self) -> int:
        """KV tokens one token-generating instance can hold: its room after the weights, in whole blocks."""
        serving = self.scenario.serving
        block = serving.aggregated.block_tokens if serving.mode == "aggregated" else serving.decode.block_tokens
        return self.compute.kv_capacity_tokens // block * block

    def check_workload_fits(self, loaded: LoadedScenario) -> None:
        """Before any request is drawn: the number of requests fits in this machine's memory, and no
        synthetic length can exceed one instance's KV room (such a request could never run)."""
        spec = loaded.scenario.workload
        count = getattr(spec, "num_requests", None)
        rounds = getattr(spec, "rounds", None)
        if count is not None and rounds is not None:
            count *= len(rounds)
        memory, each = memory_bytes(), bytes_per_request(spec)
        if count is not None and memory and count * each > memory:
            raise loaded.error(
                "workload.num_requests",
                f"{count:,} requests need about {count * each / GB:,.0f} GB of memory (~{each / 1000:.1f} KB each); "
                f"this machine has {memory / GB:.0f} GB: at most {memory // each:,} requests per run")
        capacity = self.kv_room_tokens
        for key, tokens in length_bounds(spec).items():
            if tokens > capacity:
                raise loaded.error(key, f"up to {tokens:,} tokens, but one instance has KV room for {capacity:,} "
                                        f"tokens after {self.llm.spec.name} weights; shorten it, raise "
                                        f"cluster.tensor_parallel, or pick a larger GPU")
        self._check_context_window(loaded, sum(length_bounds(spec).values()), "up to ")

    def _check_context_window(self, loaded: LoadedScenario, tokens: int, qualifier: str = "") -> None:
        """A synthetic request's prompt and output must fit the model's context window (a trace's are checked
        line by line as it loads)."""
        window = self.llm.spec.context_window
        if window is not None and tokens > window:
            raise loaded.error("workload.input_tokens",
                               f"{qualifier}{tokens:,} tokens of prompt and output, but {self.llm.spec.name}'s context "
                               f"window is {window:,} tokens (model.context_window, its max_position_embeddings); "
                               f"shorten the lengths or pick a model with a longer window")

    def check_requests_fit(self, loaded: LoadedScenario, workload: Workload) -> None:
        """Every request's KV (prompt + output) must fit in one instance after the weights."""
        if not len(workload):
            return
        largest = workload.request(workload.largest)
        self._check_context_window(loaded, largest.total_tokens)
        capacity = self.kv_room_tokens
        if largest.total_tokens > capacity:
            raise loaded.error(
                "gpu.hbm_capacity",
                f"request {largest.id} needs KV for {largest.total_tokens} tokens "
                f"({largest.total_tokens * self.llm.kv_bytes_per_token / GB:.1f} GB), but one instance has room for "
                f"{capacity} tokens ({self.compute.kv_capacity_bytes / GB:.1f} GB after {self.llm.spec.name} weights); "
                f"shorten workload lengths, raise cluster.tensor_parallel, or pick a larger GPU")
        longest = int(workload.input_tokens.max())
        problem = self.kv_manager.too_large(longest)
        if problem:
            raise loaded.error("kv_manager.type", problem)
        tier = self.kv_manager.gpu_cache_tokens
        if tier and longest > capacity - tier:
            key = "capacity" if self.kv_manager.in_hbm else "gpu_capacity"
            raise loaded.error(
                f"kv_manager.prefix_cache.{key}",
                f"the prefix cache in HBM takes {tier} of the {capacity} KV tokens of a prefill instance, leaving too "
                f"little for the longest prompt ({longest} tokens); lower {key}")

    # ------------------------------------------------------------------ running

    @property
    def token_workers(self) -> list:
        """The instances whose iterations emit tokens (decode or aggregated), by instance index."""
        return self.decode or self.aggregated

    def _on_finished(self, request: Request) -> None:
        self.completed += 1
        del self._in_flight[request.id]
        self.kv_manager.finished(request)
        self.log.record(request)
        if self.timeline is not None:
            self._trace(request)
        if self._unsent:  # that closed-loop client sends its next request once it has seen this one's last token
            self._after(self.frontend_latency, self._send_next)
        if self._progress is not None:
            self._progress(self.completed)
        if self.completed == self._requests:
            self._drained()

    def _trace(self, request: Request) -> None:
        """A finished request on the timeline: its prefix load and KV transfer, and an arrow from the batch that
        computed its prompt to the iteration that emitted its first token."""
        timeline, path = self.timeline, f"KV {self.kv_manager.name}"
        if request.cached_tokens and request.prefix_load_end > request.prefill_start:
            timeline.transfer(path, "prefix load", request.prefill_start, request.prefix_load_end,
                              request=request.id, tokens=request.cached_tokens)
        if request.kv_transfer_end > request.kv_transfer_start:  # False when not set (NaN): none happened
            timeline.transfer(path, "KV transfer", request.kv_transfer_start, request.kv_transfer_end,
                              request=request.id, bytes=request.kv_bytes)
        prefill, decode = ("aggregated", "aggregated") if self.aggregated else ("prefill", "decode")
        first = request.stints[0][0] if request.stints else request.join_iteration
        first_token = self.token_workers[request.decode_instance].iteration_ends[first]
        instant = 1e-9  # inside the slices, not on their edges, so each end binds to its own slice
        timeline.flow(request.id, (prefill, f"instance {request.prefill_instance}"), request.prefill_start + instant,
                      (decode, f"instance {request.decode_instance}"), first_token - instant)

    def _after(self, delay: float, action: Callable[[], None]) -> None:
        """Run ``action`` ``delay`` seconds from now (now itself, in this event, when there is no delay)."""
        if delay > 0:
            Timeout(self.env, delay).callbacks.append(lambda _: action())
        else:
            action()

    def _submit(self, request: Request) -> None:
        """The request was sent now; it reaches the engine after the frontend (HTTP, tokenization, IPC)."""
        self._in_flight[request.id] = request

        def enter() -> None:
            self.kv_manager.arrival(request)
            self.router.pick_prefill(request).submit(request)
        self._after(self.entry_latency(request.input_tokens), enter)

    def entry_latency(self, prompt_tokens: int) -> float:
        """Seconds from a client sending a request of ``prompt_tokens`` to the engine receiving it: the
        scalar ``serving.frontend_latency`` plus ``serving.frontend``'s stages (HTTP, tokenization, IPC)."""
        return self.scenario.serving.frontend_latency + self._entry(prompt_tokens)

    def _send_next(self) -> None:
        """A closed-loop client sends the next request: it arrives now."""
        request = next(self._closed_loop)
        self._unsent -= 1
        request.arrival = self.env.now
        self._submit(request)

    def _arrivals(self):
        env = self.env
        for request in self.workload:
            now = env.now
            if request.arrival > now:
                yield Timeout(env, request.arrival - now)
            self._submit(request)

    def _start_round(self) -> None:
        """Start sending the next round (its requests' ids follow the last round's)."""
        workload, r = self.workload, len(self.round_starts)
        n, now = workload.round_requests, self.env.now
        self.round_starts.append(now)
        last = r == len(workload.rounds) - 1
        if last and self.kv_manager.prefix_cache is not None:
            self.measured_prefix_stats = replace(self.kv_manager.prefix_cache.stats)
        self._requests = (r + 1) * n
        self._drained = self._all_done.succeed if last else (lambda: self._after(self.frontend_latency,
                                                                                  self._start_round))
        requests = workload.requests(r * n, (r + 1) * n)
        clients = workload.rounds[r]
        if clients is None:
            self.env.process(self._round_arrivals(requests, now))
        else:
            self._closed_loop, self._unsent = requests, n
            for _ in range(min(clients, n)):
                self._send_next()

    def _round_arrivals(self, requests: Iterator[Request], offset: float):
        env = self.env
        for request in requests:
            request.arrival += offset
            now = env.now
            if request.arrival > now:
                yield Timeout(env, request.arrival - now)
            self._submit(request)

    def run(self, workload: Workload, progress: Callable[[int], None] | None = None,
            on_block: Callable[[int], None] | None = None) -> None:
        """Replay ``workload`` until all its requests finish or ``run.max_simulated_time`` passes: at their
        arrival times, or, with a closed loop, as that many clients (a request arrives when it is sent).
        Requests are made as they are sent and recorded in :attr:`log` as they finish (``on_block`` as in
        :class:`RequestLog`)."""
        self.workload = workload
        self._requests = len(workload)  # asked at every finish, where a numpy length would be a call
        arrival = workload.arrival
        if workload.rounds is not None:  # later rounds' arrivals are known once they start
            arrival = arrival.copy()
            arrival[workload.round_requests:] = np.nan
        self.log = RequestLog(arrival, workload.input_tokens, workload.output_tokens, on_block)
        self._progress = progress
        if not len(workload):
            return
        if workload.rounds is not None:
            self._start_round()
        elif workload.concurrency is None:
            self.env.process(self._arrivals())
        else:
            self._closed_loop, self._unsent = iter(workload), len(workload)
            for _ in range(min(workload.concurrency, len(workload))):
                self._send_next()
        self.env.process(self.sampler.run())
        limit = self.env.timeout(self.scenario.run.max_simulated_time)
        try:
            self.env.run(until=self.env.any_of([self._all_done, limit]))
        finally:  # also when interrupted: requests still in flight are recorded unfinished
            for worker in self.decode:  # iterations that ended inside a stretch of quiet ones
                worker.settle()
            for request in self._in_flight.values():
                self.log.record(request)
            self.sampler.finish()
