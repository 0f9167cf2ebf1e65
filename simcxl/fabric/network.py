"""Flow-level network: links shared by flows under max-min fairness (progressive filling).

A transfer is a *flow* of B bytes over a path of links. It first waits out the path's latency (and any
per-operation overhead), then moves its bytes at the rate max-min fairness gives it; rates are
recomputed whenever a flow starts or ends, but only for the flows whose links it shares (the
connected component), and all flows that start or end at one instant are folded into one
recomputation. Between changes nothing happens: the scheduler sleeps until the earliest completion.
This is the SimGrid approach: orders of magnitude cheaper than packets, and exact for bulk transfers.
"""

from __future__ import annotations

import heapq
import math
from itertools import count
from typing import Iterable, Sequence

import simpy

# Two completion times closer than this are the same instant (float rounding of remaining / rate).
_SAME_INSTANT = 1e-12


class Link:
    """One direction of a physical link: a capacity and a propagation + forwarding latency.

    Capacity is in bytes/s for data links. A link may also stand for another finite resource that flows
    consume in proportion to their bytes, such as a NIC's message rate (capacity in messages/s, each
    flow weighing 1/message size per byte): ``carried`` counts in the link's own unit.
    """

    __slots__ = ("name", "kind", "capacity", "latency", "flows", "carried")

    def __init__(self, name: str, kind: str, capacity: float, latency: float = 0.0):
        if not capacity > 0:
            raise ValueError(f"link {name!r}: capacity must be > 0 bytes/s, got {capacity!r}")
        if not latency >= 0:
            raise ValueError(f"link {name!r}: latency must be >= 0 s, got {latency!r}")
        self.name = name
        self.kind = kind
        self.capacity = float(capacity)
        self.latency = float(latency)
        self.flows: dict[Flow, None] = {}  # insertion-ordered set: iteration order is deterministic
        self.carried = 0.0

    def __repr__(self) -> str:
        return f"Link({self.name!r}, {self.capacity / 1e9:.3g} GB/s)"


class Flow:
    """Bytes in flight over a path; ``rate`` is its current max-min fair share."""

    __slots__ = ("links", "weights", "size", "remaining", "rate", "max_rate", "updated", "version", "seq", "done")

    def __init__(self, links: tuple[Link, ...], weights: tuple[float, ...], size: float, max_rate: float, seq: int,
                 done: simpy.Event):
        self.links = links
        self.weights = weights
        self.size = size
        self.remaining = size
        self.rate = 0.0
        self.max_rate = max_rate
        self.updated = 0.0
        self.version = 0
        self.seq = seq
        self.done = done


def path_latency(links: Iterable[Link]) -> float:
    return sum(link.latency for link in links)


class Network:
    """Owns every active flow and shares link bandwidth among them by max-min fairness."""

    def __init__(self, env: simpy.Environment):
        self.env = env
        self._finish_heap: list[tuple[float, int, int, Flow]] = []
        self._dirty: dict[Link, None] = {}
        self._recompute_pending = False
        self._timer_at = math.inf
        self._seq = count()
        self.active_flows = 0
        self.completed_flows = 0

    def transfer(self, links: Sequence[Link], nbytes: float, overhead: float = 0.0,
                 max_rate: float = math.inf, latency: float | None = None,
                 weights: Sequence[float] | None = None) -> simpy.Event:
        """Move ``nbytes`` over ``links``; the returned event fires when the last byte has arrived.

        The flow waits ``latency`` (default: the sum of its links' latencies) plus ``overhead`` before
        its bytes start to move, then moves at most ``max_rate`` bytes/s (a limit of the requester
        itself, e.g. its outstanding loads). ``weights[i]`` is how much of link i one byte consumes
        (default 1).
        """
        if not nbytes >= 0:
            raise ValueError(f"transfer size must be >= 0 bytes, got {nbytes!r}")
        if not overhead >= 0:
            raise ValueError(f"transfer overhead must be >= 0 s, got {overhead!r}")
        if not max_rate > 0:
            raise ValueError(f"transfer max_rate must be > 0 bytes/s, got {max_rate!r}")
        done = self.env.event()
        links = tuple(links)
        flow = Flow(links, tuple(weights) if weights is not None else (1.0,) * len(links), float(nbytes), max_rate,
                    next(self._seq), done)
        delay = (path_latency(links) if latency is None else latency) + overhead
        if nbytes == 0 or (not flow.links and max_rate == math.inf):
            self.env.timeout(delay).callbacks.append(lambda _: self._finish(flow))
        elif delay > 0:
            self.env.timeout(delay).callbacks.append(lambda _: self._start(flow))
        else:
            self._start(flow)
        return done

    # ------------------------------------------------------------------ scheduler internals

    def _start(self, flow: Flow) -> None:
        flow.updated = self.env.now
        self.active_flows += 1
        if not flow.links:
            flow.rate = flow.max_rate
            self._push(flow)
            self._arm_timer()
            return
        for link in flow.links:
            link.flows[flow] = None
            self._dirty[link] = None
        self._request_recompute()

    def _finish(self, flow: Flow) -> None:
        for link, weight in zip(flow.links, flow.weights):
            link.carried += flow.size * weight
        self.completed_flows += 1
        flow.done.succeed(flow.size)

    def _request_recompute(self) -> None:
        """Fold every change at this instant into one recomputation, run after the current events."""
        if not self._recompute_pending:
            self._recompute_pending = True
            self.env.timeout(0).callbacks.append(self._recompute)

    def _recompute(self, _event: simpy.Event) -> None:
        self._recompute_pending = False
        flows, links = self._affected_component()
        now = self.env.now
        for flow in flows:
            flow.remaining = max(0.0, flow.remaining - flow.rate * (now - flow.updated))
            flow.updated = now
        allocate_max_min(flows, links)
        for flow in flows:
            self._push(flow)
        self._arm_timer()

    def _affected_component(self) -> tuple[list[Flow], list[Link]]:
        """Flows and links reachable from the links that changed: only their rates can move."""
        seen_links = dict(self._dirty)
        self._dirty.clear()
        stack = list(seen_links)
        seen_flows: dict[Flow, None] = {}
        while stack:
            for flow in stack.pop().flows:
                if flow not in seen_flows:
                    seen_flows[flow] = None
                    for link in flow.links:
                        if link not in seen_links:
                            seen_links[link] = None
                            stack.append(link)
        return list(seen_flows), list(seen_links)

    def _push(self, flow: Flow) -> None:
        flow.version += 1
        finish = flow.updated + flow.remaining / flow.rate if flow.rate > 0 else math.inf
        heapq.heappush(self._finish_heap, (finish, flow.seq, flow.version, flow))

    def _arm_timer(self) -> None:
        heap = self._finish_heap
        while heap and heap[0][2] != heap[0][3].version:
            heapq.heappop(heap)
        if heap and heap[0][0] < self._timer_at:
            self._timer_at = heap[0][0]
            self.env.timeout(max(0.0, heap[0][0] - self.env.now)).callbacks.append(self._on_timer)

    def _on_timer(self, _event: simpy.Event) -> None:
        now = self.env.now
        if now < self._timer_at:  # superseded by an earlier timer that already ran
            return
        self._timer_at = math.inf
        heap = self._finish_heap
        horizon = now + _SAME_INSTANT * max(1.0, now)
        while heap and heap[0][0] <= horizon:
            _, _, version, flow = heapq.heappop(heap)
            if version != flow.version:
                continue
            flow.version += 1
            flow.remaining = 0.0
            self.active_flows -= 1
            for link in flow.links:
                del link.flows[flow]
                self._dirty[link] = None
            self._finish(flow)
        if self._dirty:
            self._request_recompute()
        self._arm_timer()


def allocate_max_min(flows: list[Flow], links: list[Link]) -> None:
    """Progressive filling: raise every rate together; a link that fills freezes its flows at that share.

    Flows with their own ``max_rate`` freeze when they reach it. ``links`` must hold every link of
    ``flows`` and ``flows`` every flow of ``links`` (a connected component).
    """
    capacity = {link: link.capacity for link in links}
    unfrozen_weight = dict.fromkeys(links, 0.0)
    for flow in flows:
        for link, weight in zip(flow.links, flow.weights):
            unfrozen_weight[link] += weight
    unfrozen = dict.fromkeys(flows)
    while unfrozen:
        share, bottleneck = math.inf, None
        for link, weight in unfrozen_weight.items():
            if weight > 0 and capacity[link] / weight < share:
                share, bottleneck = capacity[link] / weight, link
        capped = [flow for flow in unfrozen if flow.max_rate <= share]
        frozen = capped or [flow for flow in bottleneck.flows if flow in unfrozen]
        for flow in frozen:
            flow.rate = flow.max_rate if capped else share
            del unfrozen[flow]
            for link, weight in zip(flow.links, flow.weights):
                capacity[link] = max(0.0, capacity[link] - flow.rate * weight)
                unfrozen_weight[link] -= weight


def fetch(network: Network, links: Sequence[Link], requests: int, request_bytes: float, round_trip: float,
          outstanding: int, overhead: float = 0.0, weights: Sequence[float] | None = None) -> simpy.Event:
    """Request-response reads: ``requests`` reads of ``request_bytes``, at most ``outstanding`` in flight.

    The first wave of up to ``outstanding`` requests (at most a bandwidth-delay product of bytes)
    returns after one ``round_trip``; after that the
    requester completes ``outstanding`` requests per round trip unless the links' fair share is lower:
    time ~ round_trip + max(0, requests - outstanding) x request_bytes / min(fair rate,
    outstanding x request_bytes / round_trip). This is both a CXL cache-line load stream (requests are
    lines, outstanding is memory-level parallelism) and an RDMA READ stream (requests are messages,
    outstanding is the queue pairs' read credits).
    """
    weights = tuple(weights) if weights is not None else (1.0,) * len(links)
    bandwidth_delay = round_trip * min((link.capacity / w for link, w in zip(links, weights)), default=math.inf)
    first_wave = min(min(requests, outstanding) * request_bytes, bandwidth_delay)
    for link, weight in zip(links, weights):
        link.carried += first_wave * weight
    return network.transfer(links, (requests * request_bytes) - first_wave, overhead=overhead,
                            max_rate=outstanding * request_bytes / round_trip, latency=round_trip, weights=weights)
