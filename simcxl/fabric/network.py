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
from the level they froze at, since nothing below it can change (:mod:`simcxl.fabric.maxmin`). This is
the SimGrid approach: orders of magnitude cheaper than packets, and exact for bulk transfers.
Routes' changing state lives in columns (:class:`RouteColumns`), so that a re-solve moving hundreds of
routes (an all-to-all) settles and re-times them as vectors; a few are handled one by one on a heap.
"""

from __future__ import annotations

import heapq
import math
from array import array
from itertools import count
from typing import Iterable, Sequence

import numpy as np
import simpy
from simpy.events import Event, Timeout  # made directly: env.timeout binds a new callable per use

from simcxl.fabric.links import Link, Route
from simcxl.fabric.maxmin import Moves, fill_component, solo_rate

# A flow is done when it is short of its target by no more than float rounding of rate x time: a relative
# share of its bytes, or what its route serves in a time too small to add to the clock (else the clock
# could not advance past its finish and the scheduler would spin at one instant).
_RELATIVE_TOLERANCE = 1e-9
_TIME_RESOLUTION = 1e-12
# From this many routes moved by one re-solve, they are settled and re-timed as vectors (benchmarks/RESULTS.md,
# "Fabric").
_VECTOR_RERATE = 64


class Flow(Event):
    """Bytes in flight on a route, done once the route has served ``target`` bytes in total: the event a
    transfer returns, which fires with its size when its last byte has arrived."""

    def __init__(self, env: simpy.Environment, size: float):
        Event.__init__(self, env)
        self.size = size
        self.target = 0.0


class RouteColumns:
    """Every route's changing state, a column each (struct of arrays), indexed by the route's slot.

    A scalar read or write costs about an attribute's (``array`` items), and a re-solve that moves hundreds
    of routes settles and re-times them with a few vector operations on numpy views of the columns instead
    of a Python call each. Their next finishes then stay in the ``finish`` column, *unqueued*: the network
    finds the earliest by a scan instead of a heap entry each (an all-to-all departure moves hundreds of
    routes, and the heap would hold every finish they ever had). A slot freed by an idle route is reused;
    its version counts on, so the heap entries of the route that had it stay stale.
    """

    def __init__(self):
        self.rate = array("d")  # bytes/s, shared equally by the route's flows
        self.served = array("d")  # bytes each flow active since the start has received (processor-sharing clock)
        self.updated = array("d")  # when ``served`` was last brought up to date
        self.flows = array("d")  # active flows
        self.head = array("d")  # the ``served`` at which the first of them finishes
        self.version = array("d")  # bumped at every re-time: heap entries with an older one are stale
        self.finish = array("d")  # next finish of an unqueued route
        self.unqueued = array("b")  # 1: its finish is found by scanning ``finish``, not in the heap
        self.unqueued_count = 0
        self._earliest: float | None = math.inf  # earliest unqueued finish (None: to scan again)
        self._free: list[int] = []

    def allocate(self) -> int:
        if self._free:  # ``updated`` and ``head`` are set as the first flow joins
            slot = self._free.pop()
            self.rate[slot] = self.served[slot] = self.flows[slot] = 0.0
            return slot
        for column in (self.rate, self.served, self.updated, self.flows, self.head, self.version, self.finish):
            column.append(0.0)
        self.unqueued.append(0)
        return len(self.rate) - 1

    def release(self, slot: int) -> None:
        self.version[slot] += 1
        if self.unqueued_count and self.unqueued[slot]:
            self._dequeue(slot)
        self._free.append(slot)

    def settle(self, slot: int, now: float) -> None:
        """Bring ``served`` up to ``now`` at the current rate."""
        flows = self.flows[slot]
        if flows:
            self.served[slot] += self.rate[slot] / flows * (now - self.updated[slot])
        self.updated[slot] = now

    def retime(self, slot: int, now: float) -> float:
        """The route's next finish, as of a settle at ``now``, for the heap; earlier entries go stale."""
        self.version[slot] += 1
        if self.unqueued_count and self.unqueued[slot]:
            self._dequeue(slot)
        rate, flows = self.rate[slot], self.flows[slot]
        if not flows or rate <= 0:
            return math.inf
        return now + (self.head[slot] - self.served[slot]) * flows / rate

    def rerate(self, slots: np.ndarray, rates: np.ndarray, now: float) -> None:
        """Settle ``slots`` at their old rates, give them ``rates`` and keep their next finishes unqueued:
        :meth:`settle`, a rate change and :meth:`retime` for many routes at once, to the same floats."""
        rate, served, updated, flows, head, version, finish = self._views()
        n = flows[slots]
        with np.errstate(divide="ignore", invalid="ignore"):
            now_served = np.where(n > 0, served[slots] + rate[slots] / n * (now - updated[slots]), served[slots])
            finish[slots] = np.where((n > 0) & (rates > 0), now + (head[slots] - now_served) * n / rates, math.inf)
        served[slots] = now_served
        updated[slots] = now
        rate[slots] = rates
        version[slots] += 1
        unqueued = np.frombuffer(self.unqueued, dtype=np.int8)
        self.unqueued_count += len(slots) - int(unqueued[slots].sum())
        unqueued[slots] = 1
        self._earliest = None

    def earliest(self) -> float:
        """The earliest unqueued finish (inf: none)."""
        if self._earliest is None:
            unqueued = np.frombuffer(self.unqueued, dtype=np.int8).astype(bool)
            self._earliest = float(np.frombuffer(self.finish)[unqueued].min()) if unqueued.any() else math.inf
        return self._earliest

    def take_due(self, time: float) -> list[int]:
        """The unqueued slots whose finish is at or before ``time``, taken off the scan."""
        unqueued = np.frombuffer(self.unqueued, dtype=np.int8)
        due = np.flatnonzero((unqueued == 1) & (np.frombuffer(self.finish) <= time))
        unqueued[due] = 0
        self.unqueued_count -= len(due)
        self._earliest = None
        return due.tolist()

    def _dequeue(self, slot: int) -> None:
        self.unqueued[slot] = 0
        self.unqueued_count -= 1
        self._earliest = None

    def _views(self) -> tuple[np.ndarray, ...]:
        return tuple(np.frombuffer(column) for column in (self.rate, self.served, self.updated, self.flows, self.head,
                                                          self.version, self.finish))


def path_latency(links: Iterable[Link]) -> float:
    latency = 0.0
    for link in links:  # a loop, not sum() over a generator: every transfer asks
        latency += link.latency
    return latency


class Network:
    """Owns every route and flow and shares link bandwidth among routes by max-min fairness."""

    def __init__(self, env: simpy.Environment):
        self.env = env
        self._routes: dict[tuple, Route] = {}
        self.columns = RouteColumns()
        self._route_at: list[Route | None] = []  # by slot
        # (finish, route seq, version, slot): numbers only, so the garbage collector leaves the entries alone
        self._finish_heap: list[tuple[float, int, float, int]] = []
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
        flow = Flow(self.env, float(nbytes))
        delay = (path_latency(links) if latency is None else latency) + overhead
        if nbytes == 0 or (not links and max_rate == math.inf):
            Timeout(self.env, delay).callbacks.append(lambda _: self._finish(flow, links, weights))
            return flow
        key = (links, weights, max_rate)
        if delay > 0:
            Timeout(self.env, delay).callbacks.append(lambda _: self._join(flow, key))
        else:
            self._join(flow, key)
        return flow

    # ------------------------------------------------------------------ scheduler internals

    def _join(self, flow: Flow, key: tuple) -> None:
        route = self._routes.get(key)
        if route is None:
            self._open(flow, key)
            return
        now, columns, slot, flows = self.env.now, self.columns, route.slot, route.flows
        columns.settle(slot, now)
        flow.target = columns.served[slot] + flow.size
        heapq.heappush(flows, (flow.target, next(self._seq), flow))  # ties finish in arrival order
        columns.flows[slot], columns.head[slot] = len(flows), flows[0][0]
        self.active_flows += 1
        self._queue(slot, route.seq)
        self._arm_timer()

    def _open(self, flow: Flow, key: tuple) -> None:
        """The first flow of a route: the route becomes active, and rates in its component change. Alone on its
        links (the common case) it runs at its own bottleneck rate and nobody else's moves: no re-solve."""
        columns = self.columns
        route = self._routes[key] = Route(*key, next(self._seq), columns.allocate())
        slot = route.slot
        if slot == len(self._route_at):
            self._route_at.append(route)
        else:
            self._route_at[slot] = route
        columns.updated[slot] = self.env.now  # a settle: a new route has no flows and has served nothing
        flow.target = target = columns.served[slot] + flow.size
        route.flows.append((target, next(self._seq), flow))
        columns.flows[slot], columns.head[slot] = 1, target
        self.active_flows += 1
        alone = True
        for link in route.links:
            alone = alone and not link.routes
            link.routes[route] = None
        if alone:
            columns.rate[slot] = solo_rate(route)
            now = self.env.now
            finish = columns.retime(slot, now)
            version = columns.version[slot]
            Timeout(self.env, finish - now if finish > now else 0.0).callbacks.append(
                lambda _: self._finish_alone(route, version))
            return
        for link in route.links:
            self._dirty[link] = None
        self._activated = True
        self._request_recompute()

    def _finish_alone(self, route: Route, version: float) -> None:
        """The finish of a route that opened alone on its links, on a timeout of its own instead of the shared
        timer's heap (most flows never meet another). A re-time since (a flow joining it, or a re-solve
        moving it when another route arrived) queued its finish on the heap and made this one stale."""
        if self.columns.version[route.slot] != version:
            return
        self._complete_due(route, self.env.now)
        if route.flows:  # short of its target by more than rounding: re-queued, so the timer must know
            self._arm_timer()

    def _finish(self, flow: Flow, links: tuple[Link, ...], weights: tuple[float, ...]) -> None:
        for link, weight in zip(links, weights):
            link.carried += flow.size * weight
        self.completed_flows += 1
        flow.succeed(flow.size)

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
            filling = fill_component(routes, links, [self.columns.rate[route.slot] for route in routes])
        self._rerate(filling.fill())
        self._arm_timer()

    def _rerate(self, moves: Moves) -> None:
        """Settle the moved routes at their old rates, give them their new ones and queue their next finishes;
        many at once as vectors, their finishes left unqueued in the columns (an all-to-all departure moves
        hundreds), a few one by one into the heap (cheaper below a few dozen)."""
        now, columns = self.env.now, self.columns
        if len(moves.slots) >= _VECTOR_RERATE:
            columns.rerate(np.asarray(moves.slots, dtype=np.intp), np.asarray(moves.rates, dtype=float), now)
            return
        for slot, seq, rate in zip(*moves):
            columns.settle(slot, now)
            columns.rate[slot] = rate
            self._queue(slot, seq)

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

    def _queue(self, slot: int, seq: int) -> None:
        """Queue the next finish of the route at ``slot`` (settled now); its earlier entries go stale (their
        version is behind). Every call is followed by :meth:`_arm_timer`, once for all a re-solve moved."""
        finish = self.columns.retime(slot, self.env.now)
        if finish < math.inf:
            heapq.heappush(self._finish_heap, (finish, seq, self.columns.version[slot], slot))

    def _arm_timer(self) -> None:
        """Time out at the earliest live finish, queued or not (every re-time is followed by a call). Stale heap
        entries leave from the top as they surface, and all at once when they outnumber the live ones (one
        per route) four to one."""
        heap, version = self._finish_heap, self.columns.version
        if len(heap) > 5 * len(self._routes) + 1024:
            heap[:] = [entry for entry in heap if entry[2] == version[entry[3]]]
            heapq.heapify(heap)
        while heap and heap[0][2] != version[heap[0][3]]:
            heapq.heappop(heap)
        earliest = heap[0][0] if heap else math.inf
        if self.columns.unqueued_count:
            earliest = min(earliest, self.columns.earliest())
        if earliest < self._timer_at:
            now = self.env.now
            delay = earliest - now if earliest > now else 0.0
            self._timer_at = now + delay  # when the timeout fires: the finish time, to float rounding
            Timeout(self.env, delay).callbacks.append(self._on_timer)

    def _on_timer(self, _event: simpy.Event) -> None:
        now = self.env.now
        if now < self._timer_at:  # superseded by an earlier timer that already ran
            return
        self._timer_at = math.inf
        heap, columns, version = self._finish_heap, self.columns, self.columns.version
        due = now + _TIME_RESOLUTION * (now if now > 1.0 else 1.0)  # a finish the clock cannot tell from now is due
        while True:  # completions may re-queue finishes that are due too
            ready = []
            while heap and heap[0][0] <= due:
                finish, seq, entry_version, slot = heapq.heappop(heap)
                if entry_version == version[slot]:
                    ready.append((finish, seq, slot))
            if columns.unqueued_count and columns.earliest() <= due:
                ready += [(columns.finish[slot], self._route_at[slot].seq, slot) for slot in columns.take_due(due)]
            if not ready:
                break
            if len(ready) > 1:
                ready.sort()  # as one heap would give them: by finish, then age
            for _, _, slot in ready:
                self._complete_due(self._route_at[slot], now)
        self._arm_timer()

    def _complete_due(self, route: Route, now: float) -> None:
        columns, slot, flows = self.columns, route.slot, route.flows
        columns.settle(slot, now)
        served = columns.served[slot]
        clock_slack = columns.rate[slot] * _TIME_RESOLUTION * (now if now > 1.0 else 1.0)  # bytes in an unseen tick
        while flows:  # done: short of its target by a relative rounding, or by its share of a tick's bytes
            target, slack = flows[0][0], clock_slack / len(flows)
            relative = _RELATIVE_TOLERANCE * (target if target > 1.0 else 1.0)
            if target - served > (relative if relative >= slack else slack):
                break
            flow = heapq.heappop(flows)[2]
            self.active_flows -= 1
            self._finish(flow, route.links, route.weights)
        if flows:
            columns.flows[slot], columns.head[slot] = len(flows), flows[0][0]
            self._queue(slot, route.seq)  # _on_timer arms once its due routes are done
            return
        columns.release(slot)
        self._route_at[slot] = None
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
