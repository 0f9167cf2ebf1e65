"""Flow-level network: routes share links under max-min fairness; transfers on a route share it equally.

A transfer is a *flow* of B bytes over a *route* (a path of links). It first waits out the route's
latency (and any per-operation overhead), then moves its bytes. Bandwidth is shared in two levels,
the way fabric hardware arbitrates:
- between routes, max-min fairness by progressive filling (PCIe/CXL switches and NICs arbitrate
  between ports and queue pairs, which a route stands for);
- within a route, equally among its active flows (processor sharing).
So a route's rate changes only when a route starts or stops carrying flows somewhere in its
connected component; a flow joining or leaving a busy route costs a heap operation, no re-solve.
Every change at one instant is folded into one recomputation, and the scheduler sleeps until the
earliest completion. A route arriving fills its component afresh; routes leaving replay the kept filling
from the level they froze at, since nothing below it can change (:mod:`simcxl.fabric.maxmin`). This is the SimGrid
approach: orders of magnitude cheaper than packets, and exact for bulk transfers.
"""

from __future__ import annotations

import heapq
import math
from itertools import count
from typing import Iterable, Sequence

import simpy
from simpy.events import Event, Timeout  # made directly: env.timeout binds a new callable per use

from simcxl.fabric.maxmin import Filling, fill_component, solo_rate

# A flow is done when it is short of its target by no more than float rounding of rate x time: a relative
# share of its bytes, or what its route serves in a time too small to add to the clock (else the clock
# could not advance past its finish and the scheduler would spin at one instant).
_RELATIVE_TOLERANCE = 1e-9
_TIME_RESOLUTION = 1e-12


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


class Flow:
    """Bytes in flight on a route: done once the route has served ``target`` bytes in total."""

    __slots__ = ("size", "target", "done")

    def __init__(self, size: float, done: simpy.Event):
        self.size = size
        self.target = 0.0
        self.done = done


class Route:
    """A path of links with per-byte weights and a rate cap; its active flows share its rate equally."""

    __slots__ = ("links", "weights", "max_rate", "rate", "served", "updated", "flows", "version", "seq", "filling")

    def __init__(self, links: tuple[Link, ...], weights: tuple[float, ...], max_rate: float, seq: int):
        self.links = links
        self.weights = weights
        self.max_rate = max_rate
        self.rate = 0.0
        self.served = 0.0  # bytes each flow active since the start has received (processor-sharing clock)
        self.updated = 0.0
        self.flows: list[tuple[float, int, Flow]] = []  # heap by target
        self.version = 0
        self.seq = seq
        self.filling: Filling | None = None  # the progressive filling that set its rate (None: alone on its links)

    def settle(self, now: float) -> None:
        if self.flows:
            self.served += self.rate / len(self.flows) * (now - self.updated)
        self.updated = now

    def rerate(self, now: float, rate: float) -> float:
        """Settle the bytes served so far at the old rate, take ``rate``, and return the next finish; earlier
        finish entries go stale. (A re-solve moves hundreds of routes at once: one call each.)"""
        self.version += 1
        flows = self.flows
        if flows:
            self.served += self.rate / len(flows) * (now - self.updated)
        self.updated = now
        self.rate = rate
        if not flows or rate <= 0:
            return math.inf
        return now + (flows[0][0] - self.served) * len(flows) / rate

    def next_finish(self) -> float:
        if not self.flows or self.rate <= 0:
            return math.inf
        return self.updated + (self.flows[0][0] - self.served) * len(self.flows) / self.rate


def path_latency(links: Iterable[Link]) -> float:
    return sum(link.latency for link in links)


class Network:
    """Owns every route and flow and shares link bandwidth among routes by max-min fairness."""

    def __init__(self, env: simpy.Environment):
        self.env = env
        self._routes: dict[tuple, Route] = {}
        self._finish_heap: list[tuple[float, int, int, Route]] = []
        self._dirty: dict[Link, None] = {}
        self._departed: list[Route] = []  # routes gone idle since the last re-solve, leaving others on their links
        self._activated = False  # a route became active on busy links since the last re-solve
        self._recompute_pending = False
        self._timer_at = math.inf
        self._seq = count()
        self.active_flows = 0
        self.completed_flows = 0
        self.recomputations = 0
        self.replays = 0  # re-solves that replayed a kept filling instead of filling the component afresh

    def transfer(self, links: Sequence[Link], nbytes: float, overhead: float = 0.0,
                 max_rate: float = math.inf, latency: float | None = None,
                 weights: Sequence[float] | None = None) -> simpy.Event:
        """Move ``nbytes`` over ``links``; the returned event fires when the last byte has arrived.

        The flow waits ``latency`` (default: the sum of its links' latencies) plus ``overhead`` before
        its bytes start to move. ``max_rate`` caps the route (a limit of the requester, e.g. its
        outstanding loads); ``weights[i]`` is how much of link i one byte consumes (default 1).
        """
        if not nbytes >= 0:
            raise ValueError(f"transfer size must be >= 0 bytes, got {nbytes!r}")
        if not overhead >= 0:
            raise ValueError(f"transfer overhead must be >= 0 s, got {overhead!r}")
        if not max_rate > 0:
            raise ValueError(f"transfer max_rate must be > 0 bytes/s, got {max_rate!r}")
        links = tuple(links)
        weights = tuple(weights) if weights is not None else (1.0,) * len(links)
        done = Event(self.env)
        flow = Flow(float(nbytes), done)
        delay = (path_latency(links) if latency is None else latency) + overhead
        if nbytes == 0 or (not links and max_rate == math.inf):
            Timeout(self.env, delay).callbacks.append(lambda _: self._finish(flow, links, weights))
            return done
        key = (links, weights, max_rate)
        if delay > 0:
            Timeout(self.env, delay).callbacks.append(lambda _: self._join(flow, key))
        else:
            self._join(flow, key)
        return done

    # ------------------------------------------------------------------ scheduler internals

    def _join(self, flow: Flow, key: tuple) -> None:
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = Route(*key, next(self._seq))
        now = self.env.now
        route.settle(now)
        flow.target = route.served + flow.size
        heapq.heappush(route.flows, (flow.target, next(self._seq), flow))  # ties finish in arrival order
        self.active_flows += 1
        if len(route.flows) == 1:  # the route becomes active: rates in its component change
            alone = True
            for link in route.links:
                alone = alone and not link.routes
                link.routes[route] = None
            if alone:  # its links carry nothing else: its bottleneck is its rate, nobody else's moves
                route.rate = solo_rate(route)
                self._push(route)
                return
            for link in route.links:
                self._dirty[link] = None
            self._activated = True
            self._request_recompute()
        else:
            self._push(route)

    def _finish(self, flow: Flow, links: tuple[Link, ...], weights: tuple[float, ...]) -> None:
        for link, weight in zip(links, weights):
            link.carried += flow.size * weight
        self.completed_flows += 1
        flow.done.succeed(flow.size)

    def _request_recompute(self) -> None:
        """Fold every change at this instant into one recomputation, run after the current events."""
        if not self._recompute_pending:
            self._recompute_pending = True
            Timeout(self.env, 0).callbacks.append(self._recompute)

    def _recompute(self, _event: simpy.Event) -> None:
        self._recompute_pending = False
        self.recomputations += 1
        departed, self._departed = self._departed, []
        activated, self._activated = self._activated, False
        filling = departed[0].filling if departed else None
        if (not activated and filling is not None and filling.valid
                and all(route.filling is filling for route in departed)):
            self._dirty.clear()  # only routes leaving: replay their filling from the first level they froze at
            self.replays += 1
            filling.remove(departed)
        else:
            for route in departed:
                if route.filling is not None:
                    route.filling.valid = False
            routes, links = self._affected_component()
            filling = fill_component(routes, links)
        now, heap, push = self.env.now, self._finish_heap, heapq.heappush
        for route, rate in zip(*filling.fill()):
            finish = route.rerate(now, rate)
            if finish < math.inf:
                push(heap, (finish, route.seq, route.version, route))
        self._arm_timer()

    def _affected_component(self) -> tuple[list[Route], list[Link]]:
        """Routes and links reachable from the links that changed: only their rates can move."""
        seen_links = dict(self._dirty)
        self._dirty.clear()
        stack = list(seen_links)
        seen_routes: dict[Route, None] = {}
        while stack:
            for route in stack.pop().routes:
                if route not in seen_routes:
                    seen_routes[route] = None
                    for link in route.links:
                        if link not in seen_links:
                            seen_links[link] = None
                            stack.append(link)
        return list(seen_routes), list(seen_links)

    def _push(self, route: Route, arm: bool = True) -> None:
        """Queue ``route``'s next finish; its earlier entries go stale (their version is behind). A re-solve
        that moves many routes queues them all, then arms the timer once."""
        route.version += 1
        finish = route.next_finish()
        if finish < math.inf:
            heapq.heappush(self._finish_heap, (finish, route.seq, route.version, route))
            if arm:
                self._arm_timer()

    def _arm_timer(self) -> None:
        """Time out at the earliest live finish (every push is followed by a call). Stale entries leave from
        the top as they surface, and all at once when they outnumber the live ones (one per route) four to one."""
        heap = self._finish_heap
        if len(heap) > 5 * len(self._routes) + 1024:
            heap[:] = [entry for entry in heap if entry[2] == entry[3].version]
            heapq.heapify(heap)
        while heap and heap[0][2] != heap[0][3].version:
            heapq.heappop(heap)
        if heap and heap[0][0] < self._timer_at:
            delay = max(0.0, heap[0][0] - self.env.now)
            self._timer_at = self.env.now + delay  # when the timeout fires: the finish time, to float rounding
            Timeout(self.env, delay).callbacks.append(self._on_timer)

    def _on_timer(self, _event: simpy.Event) -> None:
        now = self.env.now
        if now < self._timer_at:  # superseded by an earlier timer that already ran
            return
        self._timer_at = math.inf
        heap = self._finish_heap
        due = now + _TIME_RESOLUTION * max(1.0, now)  # a finish the clock cannot tell from now is due now
        while heap and heap[0][0] <= due:
            _, _, version, route = heapq.heappop(heap)
            if version == route.version:
                self._complete_due(route, now)
        self._arm_timer()

    def _complete_due(self, route: Route, now: float) -> None:
        route.settle(now)
        flows = route.flows
        clock_slack = route.rate * _TIME_RESOLUTION * max(1.0, now)  # bytes served in one unrepresentable tick
        while flows and flows[0][0] - route.served <= max(_RELATIVE_TOLERANCE * max(1.0, flows[0][0]),
                                                          clock_slack / len(flows)):
            flow = heapq.heappop(flows)[2]
            self.active_flows -= 1
            self._finish(flow, route.links, route.weights)
        if flows:
            self._push(route, arm=False)  # _on_timer arms once its due routes are done
            return
        route.version += 1
        del self._routes[route.links, route.weights, route.max_rate]  # idle routes are forgotten: most never recur
        others = False
        for link in route.links:
            del link.routes[route]
            if link.routes:  # routes still on it may speed up
                self._dirty[link] = None
                others = True
        if others:
            self._departed.append(route)
        elif route.filling is not None:  # it left its filling without a re-solve: that filling can't be replayed
            route.filling.valid = False
        if self._dirty:
            self._request_recompute()


def striped(paths: Sequence[Sequence[Link]]) -> tuple[tuple[Link, ...], tuple[float, ...]]:
    """One route for bytes spread evenly over parallel paths: each link weighs the share of paths through it.

    A transfer striped over n identical devices then costs one flow, not n, and still loads every device
    with 1/n of its bytes (exact when the paths' fair shares are equal, as for interleaved devices).
    """
    weights: dict[Link, float] = {}
    for path in paths:
        for link in path:
            weights[link] = weights.get(link, 0.0) + 1.0 / len(paths)
    return tuple(weights), tuple(weights.values())


def fetch(network: Network, links: Sequence[Link], requests: float, request_bytes: float, round_trip: float,
          outstanding: int, overhead: float = 0.0, weights: Sequence[float] | None = None) -> simpy.Event:
    """Request-response reads: ``requests`` reads of ``request_bytes``, at most ``outstanding`` in flight.

    The first wave of up to ``outstanding`` requests (at most a bandwidth-delay product of bytes)
    returns after one ``round_trip``; after that the requester completes ``outstanding`` requests per
    round trip unless the links' fair share is lower: time ~ round_trip + max(0, requests -
    outstanding) x request_bytes / min(fair rate, outstanding x request_bytes / round_trip). This is
    both a CXL cache-line load stream (requests are lines, outstanding is memory-level parallelism) and
    an RDMA READ stream (requests are messages, outstanding is the queue pairs' read credits). The cap
    belongs to the route, so concurrent streams of one requester on one route share its credits.
    """
    weights = tuple(weights) if weights is not None else (1.0,) * len(links)
    bandwidth_delay = round_trip * min((link.capacity / w for link, w in zip(links, weights)), default=math.inf)
    first_wave = min(min(requests, outstanding) * request_bytes, bandwidth_delay)
    for link, weight in zip(links, weights):
        link.carried += first_wave * weight
    return network.transfer(links, requests * request_bytes - first_wave, overhead=overhead,
                            max_rate=outstanding * request_bytes / round_trip, latency=round_trip, weights=weights)
