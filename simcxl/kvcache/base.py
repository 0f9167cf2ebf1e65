"""The KV-manager interface and its registry.

A KV manager takes over a request at three points: when it arrives (the prefix cache learns its
blocks), when its prefill starts (cached prefix blocks are looked up and loaded into the prefill GPU)
and when its prefill ends (new blocks are published to the cache, and the prompt's KV is handed to a
decode worker). Managers differ only in where blocks live and which fabric flows move them, so every
one of them runs over the same workers, router and network.

The base class keeps the prefix cache in host DRAM, the Mooncake-store / Dynamo style: blocks stay
on the node whose prefill produced them; a prefill worker loads a hit from its own node's DRAM over
PCIe, or from another node's DRAM over RDMA. Refinements every manager shares: an optional HBM
tier on each prefill instance (hits there load nothing); an optional per-descriptor posting cost
for block-based transfers (a paged KV cache moves one descriptor per page, layer and K/V tensor);
connectors that run on the workers' own loops (``blocking_send`` / ``blocking_receive``); and
connectors that stage the KV through host memory on both ends (``host_staging``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from typing import TYPE_CHECKING, Callable, Generator

import simpy

from simcxl.kvcache.prefix import PrefixCache
from simcxl.serving.environment import DetachedProcess, EagerProcess

if TYPE_CHECKING:
    from simcxl.config.schema import PrefixCacheSpec
    from simcxl.serving.cluster import Cluster
    from simcxl.serving.decode import DecodeWorker
    from simcxl.serving.prefill import PrefillWorker
    from simcxl.serving.request import Request

KV_MANAGERS: dict[str, type["KVManager"]] = {}


def register(name: str) -> Callable[[type["KVManager"]], type["KVManager"]]:
    """Class decorator: make a KV manager selectable as ``kv_manager.type: NAME``."""

    def decorate(cls: type[KVManager]) -> type[KVManager]:
        cls.name = name
        KV_MANAGERS[name] = cls
        return cls

    return decorate


class KVManager(ABC):
    """Moves a request's KV from the prefill worker that produced it to a decode worker."""

    name = "abstract"
    # the fabric section this manager moves KV through, what it is, and a profile that provides it
    fabric_section: tuple[str, str, str] | None = None
    fetches_each_step = False  # True where step_fetch moves KV (decode workers skip the call otherwise)

    @classmethod
    def missing(cls, scenario) -> str | None:
        """What the scenario lacks for this manager to run (None: nothing); reported at ``kv_manager.type``."""
        if cls.fabric_section is None or getattr(scenario.fabric, cls.fabric_section[0]) is not None:
            return None
        section, what, profile = cls.fabric_section
        return f"'{cls.name}' needs {what}: add a fabric.{section} section (e.g. include {profile})"

    def __init__(self, cluster: "Cluster", block_tokens: int):
        self.cluster = cluster
        self.env: simpy.Environment = cluster.env
        self.bytes_moved: dict[str, float] = defaultdict(float)
        self.block_tokens = block_tokens
        self.descriptor_time = cluster.scenario.kv_manager.descriptor_time
        self.page_tokens = cluster.scenario.kv_manager.page_tokens
        self.host_staging = cluster.scenario.kv_manager.host_staging
        # read at every hand-off: looked up once. blocks_prefill: a prefill worker waits for its batch's
        # hand-offs before its next batch (a synchronous send)
        self.blocks_prefill = cluster.scenario.kv_manager.blocking_send
        self.blocking_receive = cluster.scenario.kv_manager.blocking_receive
        self._threads: dict[tuple[str, object], simpy.Resource] = {}  # CPU threads that serialize work, by role
        spec = cluster.scenario.kv_manager.prefix_cache
        block_bytes = block_tokens * cluster.llm.kv_bytes_per_token
        self.prefix_cache = None if spec is None else self.make_prefix_cache(spec, block_tokens, block_bytes)
        self.gpu_cache = None  # the prefill instances' HBM tier: one LRU store per instance
        if spec is not None and spec.gpu_capacity is not None:
            layout = cluster.scenario.cluster
            instances = layout.prefill_nodes * layout.gpus_per_node // layout.tensor_parallel
            self.gpu_cache = PrefixCache(instances, block_tokens, block_bytes, spec.gpu_capacity, rack_wide=False)

    @property
    def gpu_cache_tokens(self) -> int:
        """HBM tokens of each prefill instance set aside for the prefix cache's GPU tier."""
        return 0 if self.gpu_cache is None else self.gpu_cache.capacity_blocks * self.gpu_cache.block_tokens

    def make_prefix_cache(self, spec: "PrefixCacheSpec", block_tokens: int, block_bytes: float) -> PrefixCache:
        """Host DRAM: one store per node."""
        return PrefixCache(len(self.cluster.fabric.topology.nodes), block_tokens, block_bytes, spec.capacity,
                           rack_wide=spec.scope == "rack")

    def store_of(self, prefill: "PrefillWorker") -> int:
        """The store a prefill worker writes to (and, without a rack-wide index, the only one it reads)."""
        return prefill.gpus[0].node

    # ------------------------------------------------------------------ prefix cache

    def on_arrival(self, request: "Request") -> None:
        if self.prefix_cache is not None:
            request.ideal_hit_blocks = self.prefix_cache.announce(request.block_hashes)

    def cached_prefix_tokens(self, request: "Request", prefill: "PrefillWorker") -> int:
        """Prompt tokens the cache would serve ``prefill`` now, without touching it (for batch budgets)."""
        cache = self.prefix_cache
        if cache is None or not request.block_hashes:
            return 0
        hits = len(cache.matched_nodes(request.block_hashes, self.store_of(prefill)))
        return cache.cached_tokens(hits, request.input_tokens)

    def load_prefix(self, request: "Request", prefill: "PrefillWorker") -> simpy.Event | None:
        """Look up the request's cached prefix and start loading it into ``prefill``'s GPUs."""
        cache = self.prefix_cache
        if cache is None or not request.block_hashes:
            return None
        nodes = cache.lookup(request.block_hashes, request.input_tokens, request.ideal_hit_blocks,
                             self.store_of(prefill))
        request.cached_tokens = cache.cached_tokens(len(nodes), request.input_tokens)
        if self.gpu_cache is not None:  # the leading blocks still in this instance's HBM need no load
            nodes = nodes[len(self.gpu_cache.lookup(request.block_hashes, request.input_tokens, 0, prefill.index)):]
        if not nodes:
            return None
        return self.env.all_of([self._load_blocks(prefill, node, count) for node, count in _runs(nodes).items()])

    def descriptors(self, tokens: int) -> int:
        """Descriptors one tensor-parallel rank posts to move ``tokens``: one per KV page, layer and KV tensor."""
        llm = self.cluster.llm
        return -(-tokens // self.page_tokens) * llm.layers * llm.kv_tensors_per_layer

    def all_of(self, events: list[simpy.Event]) -> simpy.Event:
        """An event that fires once all ``events`` have: the event itself when there is one (a transfer of a
        single tensor-parallel rank), which saves the condition's own events on every request."""
        return events[0] if len(events) == 1 else self.env.all_of(events)

    def posted(self, tokens: int, poster: "PrefillWorker", move: simpy.Event) -> simpy.Event:
        """``move``, finished only once ``poster`` has also posted its descriptors. Posting overlaps with
        the data movement, but each instance posts from one thread (per rank), so its postings queue."""
        if not self.descriptor_time:
            return move
        posting = self.descriptors(tokens) * self.descriptor_time
        if posting == 0:  # a tensor-centric path posts no per-page descriptors
            return move
        return self.env.all_of([self.env.process(self._post(poster, posting)), move])

    def _thread(self, role: str, owner: object) -> simpy.Resource:
        """The one CPU thread that does ``role`` for ``owner`` (made on first use): its work queues."""
        thread = self._threads.get((role, owner))
        if thread is None:
            thread = self._threads[(role, owner)] = simpy.Resource(self.env, capacity=1)
        return thread

    def _post(self, poster: "PrefillWorker", posting: float) -> Generator:
        with self._thread("posting", poster.index).request() as turn:
            yield turn
            yield self.env.timeout(posting)

    def _load_blocks(self, prefill: "PrefillWorker", node: int, blocks: int) -> simpy.Event:
        """Cached blocks from a node's DRAM into the prefill GPUs: PCIe if local, else RDMA."""
        fabric = self.cluster.fabric
        nbytes = blocks * self.prefix_cache.block_bytes
        home = fabric.topology.nodes[node][0]
        local = prefill.gpus[0].node == node
        self.bytes_moved["dram_local" if local else "dram_remote"] += nbytes
        shard = nbytes / len(prefill.gpus)
        return self.posted(blocks * self.block_tokens, prefill, self.env.all_of([
            fabric.pcie.copy(gpu, shard, to_device=True) if local
            else fabric.rdma.write(home, gpu, shard, src_gpu=False) for gpu in prefill.gpus]))

    def publish(self, request: "Request", prefill: "PrefillWorker") -> None:
        """Store the prompt's new blocks in the prefill node's DRAM (off the critical path)."""
        cache = self.prefix_cache
        if cache is None or not request.block_hashes:
            return
        new = cache.insert(request.block_hashes, self.store_of(prefill))
        if new:
            nbytes = new * cache.block_bytes
            self.bytes_moved["dram_write"] += nbytes
            for gpu in prefill.gpus:
                self.cluster.fabric.pcie.copy(gpu, nbytes / len(prefill.gpus), to_device=False)

    def keep_in_gpu(self, request: "Request", prefill: "PrefillWorker") -> None:
        """The prompt's blocks stay in the prefill instance's HBM tier (LRU) after its prefill."""
        if self.gpu_cache is not None and request.block_hashes:
            self.gpu_cache.insert(request.block_hashes, prefill.index)

    # ------------------------------------------------------------------ hand-off

    def on_prefilled(self, request: "Request", prefill: "PrefillWorker") -> simpy.Event | None:
        """Start the hand-off. If the prefill worker waits for it (:attr:`blocks_prefill`), returns the event
        that fires when the request's KV has left it; else None, and the hand-off runs detached."""
        self.publish(request, prefill)
        if self.blocks_prefill:
            return EagerProcess(self.env, self.handoff(request, prefill))
        DetachedProcess(self.handoff(request, prefill))
        return None

    def land(self, request: "Request", decode: "DecodeWorker", transfer: Callable[[], simpy.Event]) -> Generator:
        """Run ``transfer()`` into ``decode`` and queue the request there once it has landed: on the decode
        worker's own loop if the connector blocks the receiver (vLLM v0), beside it otherwise."""
        if self.blocking_receive:
            yield decode.receive(request, transfer)
        else:
            yield transfer()
            decode.enqueue(request)

    def host_thread(self, gpu) -> simpy.Resource:
        """The thread of ``gpu``'s rank that runs a host-staging connector: it handles one request at a time
        (vLLM v0's connector loops over the batch's requests, each put or get synchronous)."""
        return self._thread("staging", gpu.name)

    def send_staging(self, nbytes: float) -> float:
        """Seconds one rank's host-staging sender chain takes for ``nbytes`` of KV (0 without staging)."""
        return 0.0 if self.host_staging is None else nbytes / self.host_staging.send

    def receive_staging(self, nbytes: float) -> float:
        """Seconds one rank's host-staging receiver chain takes for ``nbytes`` of KV (0 without staging)."""
        return 0.0 if self.host_staging is None else nbytes / self.host_staging.receive

    def reserve_decode(self, request: "Request") -> Generator:
        """Pick a decode worker and wait until it has reserved the request's KV; returns the worker."""
        decode = self.cluster.router.pick_decode(request)
        request.decode_instance = decode.index
        waiting = self.env.now
        granted = decode.reserve(request)
        if granted is not None:
            yield granted
        request.decode_admit = admitted = self.env.now
        request.decode_wait = admitted - waiting
        return decode

    # ------------------------------------------------------------------ decode steps

    def step_fetch(self, decode: "DecodeWorker") -> simpy.Event | None:
        """KV the coming decode step must fetch before attention can use it (None: all of it is in HBM)."""
        return None

    def fetch_and_compute(self, decode: "DecodeWorker", fetch: simpy.Event, compute: float) -> Generator:
        """One decode step with a fetch: by default the fetch must land before the step computes."""
        yield fetch
        yield self.env.timeout(compute)

    def too_large(self, input_tokens: int) -> str | None:
        """Why a prompt of ``input_tokens`` could never be served by this manager (None: it can be)."""
        return None

    def on_finished(self, request: "Request") -> None:
        """The request's last token was emitted: whatever the manager held for it may go."""

    def summary(self) -> dict:
        """Manager-specific metrics for summary.json's ``kv`` section."""
        return {}

    @abstractmethod
    def handoff(self, request: "Request", prefill: "PrefillWorker") -> Generator:
        """SimPy process from prefill end to ``decode.enqueue(request)``; fills the request's timestamps."""


def _runs(nodes: list[int]) -> dict[int, int]:
    """How many blocks each node serves, in first-seen order (deterministic)."""
    counts: dict[int, int] = {}
    for node in nodes:
        counts[node] = counts.get(node, 0) + 1
    return counts
