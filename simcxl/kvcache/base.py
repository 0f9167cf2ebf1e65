"""The KV manager every design builds on, with its prefix cache in host DRAM, and the registry of designs.

A KV manager is a :class:`~simcxl.kvcache.protocol.KVConnector`: it takes part in a request's life when it
arrives (the prefix cache learns its blocks), when its prefill starts (cached prefix blocks are looked up and
loaded into the prefill GPU) and when its prefill ends (new blocks are published to the cache, and it says how
the prompt's KV is handed to a decode instance). Managers differ only in where blocks live and which fabric
flows move them, so every one of them runs over the same workers, router and hand-off runner.

This base keeps the prefix cache in host DRAM, the Mooncake-store / Dynamo style: blocks stay on the node
whose prefill produced them; a prefill instance loads a hit from its own node's DRAM over PCIe, or from
another node's DRAM over RDMA. Refinements every manager shares: an optional HBM tier on each prefill
instance (hits there load nothing); an optional per-descriptor posting cost for block-based transfers (a
paged KV cache moves one descriptor per page, layer and K/V tensor); and connectors that stage the KV
through host memory on both ends (``host_staging``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Generator

import simpy

from simcxl.kvcache.prefix import PrefixCache
from simcxl.kvcache.protocol import DIRECT, Handoff, InstanceView, KVConnector

if TYPE_CHECKING:
    from simcxl.config.schema import PrefixCacheSpec, Scenario
    from simcxl.fabric.fabric import Fabric
    from simcxl.hardware.model import LLM
    from simcxl.sim.request import Request


class KVManager(KVConnector):
    """Moves a request's KV from the prefill instance that produced it to a decode instance."""

    # the fabric section this manager moves KV through, what it is, and a profile that provides it
    fabric_section: tuple[str, str, str] | None = None
    # the kv_manager keys this design reads; setting one it does not read is refused at load
    # (simcxl.config.applicability). Here: the host-DRAM prefix tier, the hand-off's blocking, host staging and
    # the per-descriptor posting cost with its page size.
    reads: frozenset[str] = frozenset({"type", "prefix_cache", "blocking_send", "blocking_receive", "host_staging",
                                       "descriptor_time", "page_tokens"})

    @classmethod
    def missing(cls, scenario: "Scenario") -> str | None:
        """What the scenario lacks for this manager to run (None: nothing); reported at ``kv_manager.type``."""
        if cls.fabric_section is None or getattr(scenario.fabric, cls.fabric_section[0]) is not None:
            return None
        section, what, profile = cls.fabric_section
        return f"'{cls.name}' needs {what}: add a fabric.{section} section (e.g. include {profile})"

    def __init__(self, env: simpy.Environment, scenario: "Scenario", llm: "LLM", fabric: "Fabric",
                 block_tokens: int):
        self.env = env
        self.scenario = scenario
        self.llm = llm
        self.fabric = fabric
        self.bytes_moved: dict[str, float] = defaultdict(float)
        self.block_tokens = block_tokens
        spec = scenario.kv_manager
        self.descriptor_time = spec.descriptor_time
        self.page_tokens = spec.page_tokens
        self.host_staging = spec.host_staging
        self._threads: dict[tuple[str, object], simpy.Resource] = {}  # CPU threads that serialize work, by role
        block_bytes = llm.kv_bytes(block_tokens)
        cache = spec.prefix_cache
        self.in_hbm = cache is not None and cache.scope == "instance"  # the cache is the prefill instances' HBM
        self.prefix_cache = None if cache is None else self.make_prefix_cache(cache, block_tokens, block_bytes)
        self.gpu_cache = None  # the prefill instances' HBM tier: one LRU store per instance
        if cache is not None and cache.gpu_capacity is not None:
            layout = scenario.cluster
            instances = layout.prefill_nodes * layout.gpus_per_node // layout.tensor_parallel
            self.gpu_cache = PrefixCache(instances, block_tokens, block_bytes, cache.gpu_capacity, rack_wide=False)

    @property
    def gpu_cache_tokens(self) -> int:
        """HBM tokens of each prefill instance set aside for the prefix cache's GPU tier (or the whole cache)."""
        tier = self.prefix_cache if self.in_hbm else self.gpu_cache
        return 0 if tier is None else tier.capacity_blocks * tier.block_tokens

    def make_prefix_cache(self, spec: "PrefixCacheSpec", block_tokens: int, block_bytes: float) -> PrefixCache:
        """Host DRAM: one store per node; or, with ``scope: instance``, one per prefill instance, in its HBM."""
        if self.in_hbm:
            layout = self.scenario.cluster
            instances = layout.prefill_nodes * layout.gpus_per_node // layout.tensor_parallel
            return PrefixCache(instances, block_tokens, block_bytes, spec.capacity, rack_wide=False)
        return PrefixCache(len(self.fabric.topology.nodes), block_tokens, block_bytes, spec.capacity,
                           rack_wide=spec.scope == "rack")

    def store_of(self, instance: InstanceView) -> int:
        """The store an instance writes to (and, without a rack-wide index, the only one it reads)."""
        return instance.index if self.in_hbm else instance.node

    # ------------------------------------------------------------------ prefix cache

    def arrival(self, request: "Request") -> None:
        if self.prefix_cache is not None:
            request.ideal_hit_blocks = self.prefix_cache.announce(request.block_hashes)

    def cached_prefix_tokens(self, request: "Request", instance: InstanceView) -> int:
        cache = self.prefix_cache
        if cache is None or not request.block_hashes:
            return 0
        hits = len(cache.matched_nodes(request.block_hashes, self.store_of(instance)))
        return cache.cached_tokens(hits, request.input_tokens)

    def affinity_tokens(self, request: "Request", instance: InstanceView) -> int:
        """Hits in the instance's own node's DRAM: a hit on another node still costs an RDMA load."""
        cache = self.prefix_cache
        if cache is None or not request.block_hashes:
            return 0
        if not cache.rack_wide:
            return self.cached_prefix_tokens(request, instance)
        return cache.cached_tokens(cache.matched_nodes(request.block_hashes).count(instance.node),
                                   request.input_tokens)

    def load_prefix(self, request: "Request", instance: InstanceView) -> simpy.Event | None:
        cache = self.prefix_cache
        if cache is None or not request.block_hashes:
            return None
        nodes = cache.lookup(request.block_hashes, request.input_tokens, request.ideal_hit_blocks,
                             self.store_of(instance))
        request.cached_tokens = cache.cached_tokens(len(nodes), request.input_tokens)
        if self.gpu_cache is not None:  # the leading blocks still in this instance's HBM need no load
            nodes = nodes[len(self.gpu_cache.lookup(request.block_hashes, request.input_tokens, 0, instance.index)):]
        if not nodes or self.in_hbm:
            return None
        return self.env.all_of([self._load_blocks(instance, node, count) for node, count in _runs(nodes).items()])

    def descriptors(self, tokens: int) -> int:
        """Descriptors one tensor-parallel rank posts to move ``tokens``: one per KV page, layer and KV tensor."""
        llm = self.llm
        return -(-tokens // self.page_tokens) * llm.layers * llm.kv_tensors_per_layer

    def all_of(self, events: list[simpy.Event]) -> simpy.Event:
        """An event that fires once all ``events`` have: the event itself when there is one (a transfer of a
        single tensor-parallel rank), which saves the condition's own events on every request."""
        return events[0] if len(events) == 1 else self.env.all_of(events)

    def posted(self, tokens: int, poster: InstanceView, move: simpy.Event) -> simpy.Event:
        """``move``, finished only once ``poster`` has also posted its descriptors. Posting overlaps with
        the data movement, but each instance (prefill or decode, whichever drives the transfer) posts from one
        thread (per rank), so its postings queue."""
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

    def _post(self, poster: InstanceView, posting: float) -> Generator:
        with self._thread("posting", poster).request() as turn:
            yield turn
            yield self.env.timeout(posting)

    def _load_blocks(self, instance: InstanceView, node: int, blocks: int) -> simpy.Event:
        """Cached blocks from a node's DRAM into the prefill GPUs: PCIe if local, else RDMA."""
        fabric = self.fabric
        nbytes = blocks * self.prefix_cache.block_bytes
        home = fabric.topology.nodes[node][0]
        local = instance.node == node
        self.bytes_moved["dram_local" if local else "dram_remote"] += nbytes
        shard = nbytes / len(instance.gpus)
        return self.posted(blocks * self.block_tokens, instance, self.env.all_of([
            fabric.pcie.copy(gpu, shard, to_device=True) if local
            else fabric.rdma.write(home, gpu, shard, src_gpu=False) for gpu in instance.gpus]))

    def keep_in_gpu(self, request: "Request", instance: InstanceView) -> None:
        """The prompt's blocks stay in the prefill instance's HBM tier (LRU) after its prefill."""
        if self.gpu_cache is not None and request.block_hashes:
            self.gpu_cache.insert(request.block_hashes, instance.index)

    def publish(self, request: "Request", instance: InstanceView) -> None:
        """Store the prompt's new blocks in the prefill node's DRAM (off the critical path)."""
        cache = self.prefix_cache
        if cache is None or not request.block_hashes:
            return
        new = cache.insert(request.block_hashes, self.store_of(instance))
        if new and not self.in_hbm:  # an HBM cache keeps the blocks where prefill computed them
            nbytes = new * cache.block_bytes
            self.bytes_moved["dram_write"] += nbytes
            for gpu in instance.gpus:
                self.fabric.pcie.copy(gpu, nbytes / len(instance.gpus), to_device=False)

    def after_prefill(self, request: "Request", instance: InstanceView) -> Handoff:
        """Keep the prompt's blocks in the HBM tier and publish them to DRAM; the KV then goes straight to a
        decode instance."""
        self.keep_in_gpu(request, instance)
        self.publish(request, instance)
        return Handoff(DIRECT)

    # ------------------------------------------------------------------ host staging

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


def _runs(nodes: list[int]) -> dict[int, int]:
    """How many blocks each node serves, in first-seen order (deterministic)."""
    counts: dict[int, int] = {}
    for node in nodes:
        counts[node] = counts.get(node, 0) + 1
    return counts
