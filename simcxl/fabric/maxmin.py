"""Max-min fair rates by progressive filling, and its replay when routes leave.

Raise every route's rate together; a link that fills freezes its routes, and a route with its own ``max_rate``
freezes when it reaches it. A filling keeps the links' state before each freeze, because when routes leave,
nothing frozen before the first of them froze can change (their links were not full yet, and with them gone
they fill later still): the filling is replayed from there, re-solving only the routes frozen since.

Two representations of one algorithm, chosen by the component's size: dicts for the few routes of a server's
paths (a numpy call costs more than such a filling's whole loop), arrays for the thousands of an all-to-all
(a departure there re-solves hundreds of routes, and a loop over them would be most of the simulator's
time). They freeze in the same order (lowest share first, or lowest cap: all routes at it at once; ties: the
first link, as listed) and agree to float rounding (tested).
"""

from __future__ import annotations

import heapq
import math
from typing import NamedTuple, Sequence

import numpy as np

from simcxl.fabric.links import Link, Route

# From this many routes a component is filled with arrays (measured: benchmarks/RESULTS.md, "Fabric").
ARRAY_ROUTES = 256


class Moves(NamedTuple):
    """The routes whose rate a filling moved, by the network's keys (slot, and seq for ties), and their new
    rates: lists from the small solvers, arrays from the array one."""

    slots: Sequence[int]
    seqs: Sequence[int]
    rates: Sequence[float]


def fill_component(routes: list[Route], links: list[Link], rates: list[float]) -> Filling | Solo:
    """The solver for a connected component: ``links`` hold every link of ``routes``, ``routes`` every
    active route of ``links``, and ``rates`` their current rates."""
    if len(routes) == 1:
        return Solo(routes[0], rates[0])
    return (ArrayFilling if len(routes) >= ARRAY_ROUTES else DictFilling)(routes, links, rates)


class Solo:
    """A route that has its links to itself: its rate is its tightest link or cap, and a filling it was in can
    no longer be replayed."""

    def __init__(self, route: Route, rate: float):
        if route.filling is not None:
            route.filling.valid = False
            route.filling = None
        self.route, self.rate = route, rate

    def fill(self) -> Moves:
        rate = solo_rate(self.route)
        return Moves([self.route.slot], [self.route.seq], [rate]) if rate != self.rate else Moves([], [], [])


def solo_rate(route: Route) -> float:
    """The rate of a route that has its links to itself: its tightest link, or its own cap."""
    rate = route.max_rate
    for link, weight in zip(route.links, route.weights):  # a loop, not min() over a generator: every flow asks
        if weight > 0 and link.capacity / weight < rate:
            rate = link.capacity / weight
    return rate


class Filling:
    """One component's progressive filling, kept for replay. Each route belongs to the latest filling that set
    its rate; a filling a route left without a re-solve, or whose routes another re-solved, is ``valid`` no
    more and is never replayed.

    :meth:`fill` freezes every unfrozen route and returns the routes whose rate moved, with their new rates
    (the caller settles each at its old rate first: ``rates`` at construction, then what the filling set);
    :meth:`remove` takes departed routes out, back to the links' state before the first of them froze, so
    that the next :meth:`fill` re-solves only the routes frozen since.
    """

    def __init__(self, routes: list[Route], links: list[Link], rates: list[float]):
        for route in routes:
            if route.filling is not None:
                route.filling.valid = False
            route.filling = self
        self.valid = True

    def remove(self, departed: list[Route]) -> None:
        raise NotImplementedError

    def fill(self) -> Moves:
        raise NotImplementedError


class DictFilling(Filling):
    """Link state in dicts; shares only grow as routes freeze, so the bottleneck is found with a lazy heap."""

    def __init__(self, routes: list[Route], links: list[Link], rates: list[float]):
        super().__init__(routes, links, rates)
        self.order = {link: i for i, link in enumerate(links)}
        self.capacity = {link: link.capacity for link in links}
        self.weight = dict.fromkeys(links, 0.0)  # weight of the unfrozen routes on each link
        for route in routes:
            for link, weight in zip(route.links, route.weights):
                self.weight[link] += weight
        self.rate = dict(zip(routes, rates))
        self.step: dict[Route, int] = {}  # the freeze each route was fixed in
        self.unfrozen = dict.fromkeys(routes)
        self.steps: list[tuple[dict[Link, float], dict[Link, float]]] = []  # (capacity, weight) before each freeze

    def remove(self, departed: list[Route]) -> None:
        start = min(self.step[route] for route in departed)
        capacity, weight = self.steps[start]
        self.capacity, self.weight = dict(capacity), dict(weight)
        del self.steps[start:]
        for route in departed:  # unfrozen before every freeze kept: its weight leaves the links in all of them
            del self.rate[route], self.step[route]
            for weights in [self.weight] + [kept for _, kept in self.steps]:
                for link, w in zip(route.links, route.weights):
                    weights[link] -= w
                    if weights[link] <= 1e-12:
                        weights[link] = 0.0
        self.unfrozen = {route: None for route, step in self.step.items() if step >= start}

    def fill(self) -> Moves:
        capacity, weight, order, unfrozen, rates = self.capacity, self.weight, self.order, self.unfrozen, self.rate
        refilled = list(unfrozen)
        old = [rates[route] for route in refilled]
        shares = [(capacity[link] / w, order[link], link) for link, w in weight.items() if w > 0]
        heapq.heapify(shares)
        caps = sorted((route.max_rate, i) for i, route in enumerate(refilled) if route.max_rate < math.inf)
        next_cap = 0

        def freeze(batch: list[Route], rate: float) -> None:
            """Fix ``batch`` at ``rate`` and take its load off its links."""
            self.steps.append((dict(capacity), dict(weight)))
            touched: dict[Link, None] = {}
            for route in batch:
                rates[route] = rate
                self.step[route] = len(self.steps) - 1
                del unfrozen[route]
                for link, w in zip(route.links, route.weights):
                    capacity[link] -= rate * w
                    weight[link] -= w
                    touched[link] = None
            for link in touched:
                if weight[link] > 1e-12:
                    capacity[link] = max(0.0, capacity[link])
                    heapq.heappush(shares, (capacity[link] / weight[link], order[link], link))
                else:
                    weight[link] = 0.0

        while unfrozen:
            while shares:  # drop stale entries: a link's share is current only if it matches its state
                share, _, link = shares[0]
                w = weight[link]
                if w > 0 and share == capacity[link] / w:
                    break
                heapq.heappop(shares)
            share = shares[0][0] if shares else math.inf
            while next_cap < len(caps) and refilled[caps[next_cap][1]] not in unfrozen:
                next_cap += 1
            if next_cap < len(caps) and caps[next_cap][0] <= share:  # every unfrozen route at this lowest cap
                cap, batch = caps[next_cap][0], []
                while next_cap < len(caps) and caps[next_cap][0] == cap:
                    if refilled[caps[next_cap][1]] in unfrozen:
                        batch.append(refilled[caps[next_cap][1]])
                    next_cap += 1
                freeze(batch, cap)
                continue
            batch = [route for route in shares[0][2].routes if route in unfrozen]
            if not batch:  # its weight counts routes no longer on it: a bookkeeping bug, not a load to wait out
                raise RuntimeError(f"max-min filling: {shares[0][2]!r} is weighted but carries no unfrozen route")
            freeze(batch, share)
        moved = [route for route, rate in zip(refilled, old) if rates[route] != rate]
        return Moves([route.slot for route in moved], [route.seq for route in moved], [rates[route] for route in moved])


class ArrayFilling(Filling):
    """Link and route state in arrays, so that a freeze costs a few vector operations whatever the number of
    routes it fixes; the links' state before each freeze is a row of a table, so that a departure updates
    every kept state at once."""

    def __init__(self, routes: list[Route], links: list[Link], rates: list[float]):
        super().__init__(routes, links, rates)
        self.index = {route: i for i, route in enumerate(routes)}
        self.slots = np.array([route.slot for route in routes], dtype=np.intp)
        self.seqs = np.array([route.seq for route in routes], dtype=np.int64)
        column = {link: i for i, link in enumerate(links)}
        n_links, width = len(links), max((len(route.links) for route in routes), default=1)
        # Each route's links and per-byte weights, one row per route; short rows point at a spare link n_links
        # that weighs nothing.
        self.link_of = np.full((len(routes), width), n_links, dtype=np.intp)
        self.weight_of = np.zeros((len(routes), width))
        for i, route in enumerate(routes):
            for k, (link, weight) in enumerate(zip(route.links, route.weights)):
                self.link_of[i, k], self.weight_of[i, k] = column[link], weight
        self.size = n_links + 1
        self.capacity = np.array([link.capacity for link in links] + [math.inf])
        self.weight = np.bincount(self.link_of.ravel(), self.weight_of.ravel(), self.size)
        _retire_empty(self.capacity, self.weight)
        by_link = np.argsort(self.link_of.ravel(), kind="stable")  # each link's routes, in route order
        self.routes_of = np.split(by_link // width, np.searchsorted(self.link_of.ravel()[by_link],
                                                                    np.arange(1, n_links + 1)))
        self.max_rate = np.array([route.max_rate for route in routes])
        capped = np.flatnonzero(np.isfinite(self.max_rate))
        self.caps = capped[np.argsort(self.max_rate[capped], kind="stable")]  # capped routes, lowest cap first
        self.rate = np.array(rates, dtype=float)
        self.step = np.zeros(len(routes), dtype=np.intp)  # the freeze each route was fixed in
        self.unfrozen = np.ones(len(routes), dtype=bool)
        # (capacity, weight) before each freeze; a freeze fixes one route or more, so there are at most as many.
        self.kept_capacity = np.empty((len(routes), self.size))
        self.kept_weight = np.empty((len(routes), self.size))
        self.steps = 0

    def remove(self, departed: list[Route]) -> None:
        rows = [self.index[route] for route in departed]
        start = self.steps = int(self.step[rows].min())
        self.capacity, self.weight = self.kept_capacity[start].copy(), self.kept_weight[start].copy()
        self.step[rows] = -1  # gone: never unfrozen again
        self.unfrozen = self.step >= start
        leaving = np.bincount(self.link_of[rows].ravel(), self.weight_of[rows].ravel(), self.size)
        self.weight -= leaving
        _retire_empty(self.capacity, self.weight)
        links = np.flatnonzero(leaving)  # unfrozen before every kept freeze: they leave all of them
        capacity, weight = self.kept_capacity[:start, links], self.kept_weight[:start, links] - leaving[links]
        _retire_empty(capacity, weight)
        self.kept_capacity[:start, links], self.kept_weight[:start, links] = capacity, weight

    def fill(self) -> Moves:
        capacity, weight, unfrozen, link_of, weight_of = (self.capacity, self.weight, self.unfrozen, self.link_of,
                                                          self.weight_of)
        left = int(np.count_nonzero(unfrozen))
        first, batches, rates = self.steps, [], []
        caps, next_cap = self.caps, 0
        with np.errstate(divide="ignore"):  # a link no unfrozen route weighs has infinite capacity: share inf
            while left:
                shares = capacity / weight
                bottleneck = int(shares.argmin())  # ties: the first link, as listed
                rate = float(shares[bottleneck])
                while next_cap < len(caps) and not unfrozen[caps[next_cap]]:
                    next_cap += 1
                if next_cap < len(caps) and self.max_rate[caps[next_cap]] <= rate:
                    rate = float(self.max_rate[caps[next_cap]])  # every unfrozen route at this lowest cap
                    batch = np.flatnonzero(unfrozen & (self.max_rate == rate))
                else:
                    members = self.routes_of[bottleneck]
                    batch = members[unfrozen[members]]
                    if not len(batch):  # its weight counts routes no longer on it: a bookkeeping bug, not a load
                        raise RuntimeError(f"max-min filling: link {bottleneck} is weighted but carries no "
                                           f"unfrozen route")
                self.kept_capacity[self.steps] = capacity
                self.kept_weight[self.steps] = weight
                self.steps += 1
                batches.append(batch)
                rates.append(rate)
                unfrozen[batch] = False
                left -= len(batch)
                taken = np.bincount(link_of[batch].ravel(), weight_of[batch].ravel(), self.size)
                weight -= taken
                capacity -= taken * rate
                _retire_empty(capacity, weight)
        if not batches:
            return Moves([], [], [])
        frozen = np.concatenate(batches)
        lengths = [len(batch) for batch in batches]
        new = np.repeat(rates, lengths)
        moved = new != self.rate[frozen]
        self.rate[frozen] = new
        self.step[frozen] = np.repeat(np.arange(first, self.steps), lengths)
        rows = frozen[moved]
        return Moves(self.slots[rows], self.seqs[rows], new[moved])


def _retire_empty(capacity: np.ndarray, weight: np.ndarray) -> None:
    """Links that no unfrozen route weighs (to float rounding) get infinite capacity, so that their share
    ``capacity / weight`` is infinite and never the bottleneck; a full link keeps no negative capacity."""
    empty = weight <= 1e-12
    weight[empty] = 0.0
    capacity[empty] = math.inf
    np.maximum(capacity, 0.0, out=capacity)


