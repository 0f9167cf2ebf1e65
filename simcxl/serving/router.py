"""The router: which prefill worker takes a new request, and which decode worker takes it after prefill.

Policies are registered by name so a scenario selects one with ``serving.router``.
"""

from __future__ import annotations

from simcxl.serving.decode import DecodeWorker
from simcxl.serving.prefill import PrefillWorker
from simcxl.serving.request import Request

class Router:
    """Chooses workers; ties always break towards the lowest index, so runs are deterministic."""

    POLICIES = ("round_robin", "least_loaded")

    def __init__(self, policy: str, prefill: list[PrefillWorker], decode: list[DecodeWorker]):
        if policy not in self.POLICIES:
            raise ValueError(f"unknown router policy {policy!r}; expected one of {', '.join(self.POLICIES)}")
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
        return min(self.prefill, key=lambda w: (w.load_tokens, w.index))

    def pick_decode(self, request: Request) -> DecodeWorker:
        if self.policy == "round_robin":
            worker = self.decode[self._next_decode]
            self._next_decode = (self._next_decode + 1) % len(self.decode)
            return worker
        return min(self.decode, key=lambda w: (-w.free_kv_tokens, w.index))
