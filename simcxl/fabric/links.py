"""The fabric's two structures: a link (one direction of a physical link, or another finite resource flows
consume) and a route (a path of links that flows share). :mod:`simcxl.fabric.network` moves flows over them;
:mod:`simcxl.fabric.maxmin` shares link capacity between routes."""

from __future__ import annotations


class Link:
    """One direction of a physical link: a capacity and a propagation + forwarding latency.

    Capacity is in bytes/s for data links. A link may also stand for another finite resource that flows
    consume in proportion to their bytes, such as a NIC's message rate (capacity in messages/s, each
    route weighing 1/message size per byte): ``carried`` counts in the link's own unit.
    """

    __slots__ = ("name", "kind", "capacity", "latency", "routes", "carried")

    def __init__(self, name: str, kind: str, capacity: float, latency: float = 0.0):
        if not capacity > 0:
            raise ValueError(f"link {name!r}: capacity must be > 0, got {capacity!r}")
        if not latency >= 0:
            raise ValueError(f"link {name!r}: latency must be >= 0 s, got {latency!r}")
        self.name = name
        self.kind = kind
        self.capacity = float(capacity)
        self.latency = float(latency)
        self.routes: dict[Route, None] = {}  # active routes; insertion-ordered, so iteration is deterministic
        self.carried = 0.0

    def __repr__(self) -> str:
        return f"Link({self.name!r}, {self.capacity:.4g}/s)"


class Route:
    """A path of links with per-byte weights and a rate cap; its active flows share its rate equally. What
    changes as it carries flows (rate, bytes served, ...) is the network's :class:`RouteColumns` at ``slot``."""

    __slots__ = ("links", "weights", "max_rate", "flows", "seq", "slot", "filling")

    def __init__(self, links: tuple[Link, ...], weights: tuple[float, ...], max_rate: float, seq: int,
                 slot: int = -1):
        self.links = links
        self.weights = weights
        self.max_rate = max_rate
        self.flows: list[tuple] = []  # heap of (target, seq, Flow) by target
        self.seq = seq
        self.slot = slot
        self.filling = None  # the progressive filling (maxmin.Filling) that set its rate (None: alone on its links)
