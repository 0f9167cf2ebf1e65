"""The KV-manager interface and its registry.

A KV manager takes over a request when its prefill ends and delivers it to a decode worker once its
KV has landed there. Managers differ only in where blocks live and which fabric flows move them, so
every one of them runs over the same workers, router and network.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from typing import TYPE_CHECKING, Callable, Generator

import simpy

if TYPE_CHECKING:
    from simcxl.serving.cluster import Cluster
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

    def __init__(self, cluster: "Cluster"):
        self.cluster = cluster
        self.env: simpy.Environment = cluster.env
        self.bytes_moved: dict[str, float] = defaultdict(float)

    def on_prefilled(self, request: "Request", prefill: "PrefillWorker") -> None:
        self.env.process(self.handoff(request, prefill))

    @abstractmethod
    def handoff(self, request: "Request", prefill: "PrefillWorker") -> Generator:
        """SimPy process from prefill end to ``decode.enqueue(request)``; fills the request's timestamps."""
