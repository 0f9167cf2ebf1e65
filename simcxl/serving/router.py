"""The router: which prefill worker takes a new request, and which decode worker takes it after prefill.

Policies are registered by name so a scenario selects one with ``serving.router``.
"""

from __future__ import annotations

from simcxl.kvcache.prefix import PrefixCache
from simcxl.serving.decode import DecodeWorker
from simcxl.serving.prefill import PrefillWorker
from simcxl.serving.request import Request

class Router:
    """Chooses workers; ties always break towards the lowest index, so runs are deterministic."""

    POLICIES = ("round_robin", "least_loaded", "cache_aware")

    def __init__(self, policy: str, prefill: list[PrefillWorker], decode: list[DecodeWorker],
                 prefix_cache: PrefixCache | None = None):
        if policy not in self.POLICIES:
            raise ValueError(f"unknown router policy {policy!r}; expected one of {', '.join(self.POLICIES)}")
        if policy == "cache_aware" and prefix_cache is None and not all(getattr(w, "caching", False) for w in prefill):
            raise ValueError("router policy 'cache_aware' needs kv_manager.prefix_cache (disaggregated serving) or "
                             "serving.aggregated.prefix_caching (aggregated)")
        self.prefix_cache = prefix_cache
        self.policy = policy
        self.prefill = prefill
        self.decode = decode
        self._next_prefill = 0
        self._next_decode = 0

    def pick_prefill(self, request: Request) -> PrefillWorker:
        if self.policy == "round_robin":
            worker = self.prefill[self._next_prefill]
            self._next_prefill = (self._next_prefill + 1) % len(self.prefill)
            return worker
        if self.policy == "cache_aware":
            return self._cache_aware(request)
        return min(self.prefill, key=lambda w: (w.load_tokens, w.index))

    def _cache_aware(self, request: Request) -> PrefillWorker:
        """Mooncake's conductor in short: the instance whose node already holds most of the request's cached
        prefix, less the prompt tokens queued there (a hit on another node still costs an RDMA load). Colocated
        instances each cache prefixes in their own HBM, so there it is the instance that holds most of it (as
        SGLang's cache-aware router balances)."""
        if self.prefix_cache is None:
            return min(self.prefill, key=lambda w: (
                w.load_tokens - len(w.kv.cached_prefix(request)) * w.kv.hash_tokens, w.index))
        cache, hashes = self.prefix_cache, request.block_hashes
        nodes = cache.matched_nodes(hashes) if cache.rack_wide else []

        def local_hits(worker: PrefillWorker) -> int:
            node = worker.gpus[0].node
            return nodes.count(node) if cache.rack_wide else len(cache.matched_nodes(hashes, node))

        return min(self.prefill, key=lambda w: (w.load_tokens - cache.block_tokens * local_hits(w), w.index))

    def pick_decode(self, request: Request) -> DecodeWorker:
        if self.policy == "round_robin":
            worker = self.decode[self._next_decode]
            self._next_decode = (self._next_decode + 1) % len(self.decode)
            return worker
        return min(self.decode, key=lambda w: (-w.free_kv_tokens, w.index))
