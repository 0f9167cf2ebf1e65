"""The router: which prefill worker takes a new request, and which decode worker takes it after prefill.

Policies are registered by name so a scenario selects one with ``serving.router``. The cache-aware policy
asks how many of a request's cached prompt tokens each instance reads at its cheapest (``affinity``: the
connector's answer in disaggregated serving, the instance's own HBM cache in aggregated serving); it never
walks a cache itself.
"""

from __future__ import annotations

from typing import Callable

from simcxl.serving.decode import DecodeWorker
from simcxl.serving.prefill import PrefillWorker
from simcxl.sim.request import Request


class Router:
    """Chooses workers; ties always break towards the lowest index, so runs are deterministic."""

    POLICIES = ("round_robin", "least_loaded", "cache_aware")

    def __init__(self, policy: str, prefill: list, decode: list[DecodeWorker],
                 affinity: Callable[[Request, object], int] | None = None):
        if policy not in self.POLICIES:
            raise ValueError(f"unknown router policy {policy!r}; expected one of {', '.join(self.POLICIES)}")
        if policy == "cache_aware" and affinity is None:
            raise ValueError("router policy 'cache_aware' needs kv_manager.prefix_cache (disaggregated serving) or "
                             "serving.aggregated.prefix_caching (aggregated)")
        self.affinity = affinity
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
        """Mooncake's conductor in short (and SGLang's cache-aware router for colocated instances): the
        instance with most of the request's prefix cached where it reads it cheapest, less the prompt
        tokens queued there."""
        affinity = self.affinity
        return min(self.prefill, key=lambda w: (w.load_tokens - affinity(request, w), w.index))

    def pick_decode(self, request: Request) -> DecodeWorker:
        if self.policy == "round_robin":
            worker = self.decode[self._next_decode]
            self._next_decode = (self._next_decode + 1) % len(self.decode)
            return worker
        return min(self.decode, key=lambda w: (-w.free_kv_tokens, w.index))
