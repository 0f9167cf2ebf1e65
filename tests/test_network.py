"""Max-min fair flows against closed forms."""

from __future__ import annotations

import math
import signal

import numpy as np
import pytest
import simpy

from simcxl.fabric.network import Link, Network

GB = 1e9


def finish_times(env: simpy.Environment, events: list[simpy.Event]) -> list[float]:
    times = [math.nan] * len(events)
    for i, event in enumerate(events):
        event.callbacks.append(lambda _e, i=i: times.__setitem__(i, env.now))
    env.run()
    return times


@pytest.mark.parametrize("n", [1, 2, 3, 8, 100])
def test_n_equal_flows_share_a_link_equally(n):
    env = simpy.Environment()
    net = Network(env)
    link = Link("l", "test", 10 * GB)
    times = finish_times(env, [net.transfer([link], 1 * GB) for _ in range(n)])
    assert times == pytest.approx([n * 0.1] * n)  # each gets 1/n of 10 GB/s
    assert link.carried == pytest.approx(n * GB)  # bytes conserved
    assert net.active_flows == 0 and net.completed_flows == n


def test_short_flow_leaves_its_share_to_the_long_one():
    env = simpy.Environment()
    net = Network(env)
    link = Link("l", "test", 10 * GB)
    small, big = net.transfer([link], 1 * GB), net.transfer([link], 3 * GB)
    # both at 5 GB/s until the small one ends at 0.2 s; the big one then has 2 GB left at 10 GB/s
    assert finish_times(env, [small, big]) == pytest.approx([0.2, 0.4])


def test_flow_bottlenecked_elsewhere_leaves_unused_share_to_the_others():
    env = simpy.Environment()
    net = Network(env)
    shared = Link("shared", "test", 10 * GB)
    narrow = Link("narrow", "test", 2 * GB)
    slow = net.transfer([narrow, shared], 2 * GB)      # limited to 2 GB/s by its own narrow link
    fast = net.transfer([shared], 8 * GB)               # gets the remaining 8 GB/s, not 5
    assert finish_times(env, [slow, fast]) == pytest.approx([1.0, 1.0])


def test_max_min_on_a_parking_lot():
    """Classic parking lot: flow A crosses links 1 and 2, B uses 1, C uses 2 (all 1 GB/s): everyone 0.5 GB/s."""
    env = simpy.Environment()
    net = Network(env)
    l1, l2 = Link("1", "t", 1 * GB), Link("2", "t", 1 * GB)
    a, b, c = net.transfer([l1, l2], 1 * GB), net.transfer([l1], 1 * GB), net.transfer([l2], 1 * GB)
    assert finish_times(env, [a, b, c]) == pytest.approx([2.0, 2.0, 2.0])


def test_latency_and_overhead_precede_the_bytes():
    env = simpy.Environment()
    net = Network(env)
    path = [Link("a", "t", 10 * GB, latency=1e-6), Link("b", "t", 5 * GB, latency=2e-6)]
    done = net.transfer(path, 5 * GB, overhead=4e-6)
    assert finish_times(env, [done]) == pytest.approx([7e-6 + 1.0])


def test_requester_rate_cap_and_zero_byte_transfer():
    env = simpy.Environment()
    net = Network(env)
    link = Link("l", "t", 10 * GB)
    capped = net.transfer([link], 1 * GB, max_rate=1 * GB)   # e.g. limited outstanding loads
    other = net.transfer([link], 9 * GB)                     # takes the 9 GB/s left over
    empty = net.transfer([link], 0, overhead=3e-6)
    assert finish_times(env, [capped, other, empty]) == pytest.approx([1.0, 1.0, 3e-6])


@pytest.mark.parametrize("own_route", [False, True])
def test_flow_arriving_midway_slows_the_first(own_route):
    """The first flow opens alone, its finish on a timer of its own (no shared heap); a second flow, on the
    first's route or on a route of its own over the same bottleneck, re-times it (its own timer goes stale)
    and they share the link from then on."""
    env = simpy.Environment()
    net = Network(env)
    shared, a_only, b_only = Link("s", "t", 10 * GB), Link("a", "t", 100 * GB), Link("b", "t", 100 * GB)
    first = net.transfer([a_only, shared], 10 * GB)
    env.run(until=0.1)
    assert net._finish_heap == [] and net._timer_at == math.inf
    events = {}

    def later():
        yield env.timeout(0.4)
        events["second"] = net.transfer([b_only if own_route else a_only, shared], 2.5 * GB)

    env.process(later())
    times = {}
    first.callbacks.append(lambda _e: times.__setitem__("first", env.now))
    env.run(until=0.6)
    events["second"].callbacks.append(lambda _e: times.__setitem__("second", env.now))
    env.run()
    # 5 GB by 0.5 s; then 5 GB/s each: the second ends at 1.0 s, the first has 2.5 GB left -> 1.25 s
    assert times == pytest.approx({"second": 1.0, "first": 1.25})
    assert shared.carried == pytest.approx(12.5 * GB) and net.active_flows == 0


def test_rejects_bad_links_and_transfers():
    with pytest.raises(ValueError, match="capacity must be > 0"):
        Link("x", "t", 0)
    with pytest.raises(ValueError, match="latency must be >= 0"):
        Link("x", "t", 1, latency=-1)
    net = Network(simpy.Environment())
    with pytest.raises(ValueError, match="transfer size"):
        net.transfer([], -1)


def test_routes_share_links_fairly_and_flows_share_their_route():
    """Two transfers on route A and one on route B over one link: A and B get half each (as switch
    arbitration between ports and queue pairs gives), and A's two transfers split A's half."""
    env = simpy.Environment()
    net = Network(env)
    shared, a_only, b_only = Link("s", "t", 10 * GB), Link("a", "t", 100 * GB), Link("b", "t", 100 * GB)
    a1, a2 = net.transfer([a_only, shared], 1 * GB), net.transfer([a_only, shared], 1 * GB)
    b = net.transfer([b_only, shared], 2 * GB)
    # A: 5 GB/s split 2.5 + 2.5 -> both done at 0.4 s; B: 5 GB/s -> 2 GB at 0.4 s
    assert finish_times(env, [a1, a2, b]) == pytest.approx([0.4, 0.4, 0.4])


def test_weighted_link_caps_small_messages():
    """A message engine of 1 M msg/s carries 64 B messages at 64 MB/s, whatever the byte links allow."""
    env = simpy.Environment()
    net = Network(env)
    wire, engine = Link("wire", "t", 10 * GB), Link("engine", "msg", 1e6)
    done = net.transfer([wire, engine], 64e6, weights=[1.0, 1 / 64])
    assert finish_times(env, [done]) == pytest.approx([1.0])
    assert engine.carried == pytest.approx(1e6)


def test_a_flow_a_rounding_error_short_of_done_completes_instead_of_spinning():
    """Late in a run (large clock), a flow left with a sliver of bytes whose remaining time cannot be added to
    the clock must complete, not reschedule itself at the same instant forever."""
    env = simpy.Environment(initial_time=1e6)
    net = Network(env)
    link = Link("l", "t", 60 * GB)
    done = net.transfer([link], 1e-5)  # 1e-5 B at 60 GB/s: 1.7e-16 s, below the clock's resolution at 1e6 s

    def spinning(*_):
        raise TimeoutError("the flow scheduler is spinning at one instant")

    previous = signal.signal(signal.SIGALRM, spinning)
    signal.alarm(5)  # a regression fails here instead of hanging the suite
    try:
        env.run(until=done)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert env.now == pytest.approx(1e6)


def test_routes_leaving_one_by_one_match_processor_sharing_and_keep_the_finish_heap_small():
    """150 routes, each with a private link of its own, share one link: every departure re-solves and speeds
    up all the others. Finish times follow processor sharing (t_k = t_k-1 + (n - k + 1)(s_k - s_k-1) / C),
    and the finish heap, which gains an entry per rate change (~11,000 here), is kept to its live entries."""
    env = simpy.Environment()
    net = Network(env)
    shared, n = Link("shared", "test", 10 * GB), 150
    sizes = [(k + 1) * 0.01 * GB for k in range(n)]
    events = [net.transfer([Link(f"own{k}", "test", 1000 * GB), shared], size) for k, size in enumerate(sizes)]
    heap_sizes, recompute = [], net._recompute

    def recompute_and_measure(event):
        recompute(event)
        heap_sizes.append(len(net._finish_heap))

    net._recompute = recompute_and_measure
    times = finish_times(env, events)
    expected, t, previous = [], 0.0, 0.0
    for k, size in enumerate(sizes):
        t += (n - k) * (size - previous) / shared.capacity
        expected.append(t)
        previous = size
    assert times == pytest.approx(expected, rel=1e-9)
    assert net.recomputations == n  # the start, then every departure but the last
    assert max(heap_sizes) <= 5 * n + 1024 < sum(range(n))  # bounded; without the clean-up it holds them all


@pytest.mark.parametrize("vectors", [True, False])  # fillings and re-rates of 2+ routes in arrays, or none
def test_replayed_fillings_equal_a_fresh_max_min_solve_after_every_change(monkeypatch, vectors):
    """Routes come and go at random over shared NICs, some with a rate cap: after every re-solve, replayed
    from a kept filling or not, each active route's rate equals a fresh progressive filling of all of them,
    in dicts and in arrays."""
    import random

    from simcxl.fabric import maxmin, network
    from simcxl.fabric.network import Route

    monkeypatch.setattr(maxmin, "ARRAY_ROUTES", 2 if vectors else 10**9)
    monkeypatch.setattr(network, "_VECTOR_RERATE", 1 if vectors else 10**9)
    rng = random.Random(7)
    env = simpy.Environment()
    net = Network(env)
    nics = [Link(f"nic{i}", "nic", rng.choice([10, 25, 50]) * GB) for i in range(6)]
    pcie = [Link(f"pcie{i}", "pcie", 30 * GB) for i in range(12)]
    events = []
    for _ in range(300):
        a, b = rng.sample(range(6), 2)
        events.append(net.transfer([pcie[rng.randrange(12)], nics[a], nics[b]], rng.uniform(0.1, 2) * GB,
                                   latency=rng.uniform(0, 0.2), max_rate=rng.choice([math.inf, math.inf, 4 * GB])))
    worst, recompute = [0.0], net._recompute

    def fresh_rates(filling_class, active):
        copies = {link: Link(link.name, link.kind, link.capacity) for route in active for link in route.links}
        fresh = [Route(tuple(copies[link] for link in r.links), r.weights, r.max_rate, r.seq, slot)
                 for slot, r in enumerate(active)]
        for route in fresh:
            for link in route.links:
                link.routes[route] = None
        moves = filling_class(fresh, list(copies.values()), [0.0] * len(fresh)).fill()
        rates = dict(zip(np.asarray(moves.slots).tolist(), np.asarray(moves.rates).tolist()))
        return [rates[slot] for slot in range(len(fresh))]

    def recompute_and_compare(event):
        recompute(event)
        active = list(net._routes.values())
        if len(active) > 1:
            for filling_class in (maxmin.DictFilling, maxmin.ArrayFilling):
                rates = fresh_rates(filling_class, active)
                worst[0] = max([worst[0]] + [abs(net.columns.rate[r.slot] - f) / f for r, f in zip(active, rates)])

    net._recompute = recompute_and_compare
    env.run(env.all_of(events))
    assert net.replays > 100 and net.recomputations - net.replays > 50  # both paths taken
    assert worst[0] < 1e-9, worst


def test_vector_re_times_give_the_scalar_path_s_floats_and_reuse_slots_safely(monkeypatch):
    """800 RDMA writes between random GPU pairs of a 64-GPU rack, some joining later: every flow finishes at
    the same float time whether moved routes are re-timed one by one (onto the heap) or as vectors (into the
    scanned finish column); filled in arrays or in dicts, to float rounding; and routes that go idle hand their
    slots to new ones."""
    import random

    from simcxl.config.loader import load_profile
    from simcxl.config.schema import FabricSpec
    from simcxl.fabric import maxmin, network
    from simcxl.fabric.fabric import Fabric

    spec = load_profile("configs/hardware/rack_cxl_pool.yaml", "fabric", FabricSpec)

    def finish_times_with(arrays: bool, vectors: bool) -> tuple[list[float], int]:
        monkeypatch.setattr(maxmin, "ARRAY_ROUTES", 2 if arrays else 10**9)
        monkeypatch.setattr(network, "_VECTOR_RERATE", 1 if vectors else 10**9)
        rng, env = random.Random(3), simpy.Environment()
        fabric = Fabric(env, spec, nodes=8, gpus_per_node=8)
        gpus, events = fabric.topology.gpus, []

        def write_later(src, dst, size, delay):
            yield env.timeout(delay)
            yield fabric.rdma.write(src, dst, size)

        for i in range(800):
            src = gpus[i % 64]
            dst = rng.choice([gpu for gpu in gpus if gpu.node != src.node])
            size, delay = rng.lognormvariate(math.log(8e6), 1.0), rng.choice([0.0, 0.0, rng.uniform(0, 0.01)])
            events.append(env.process(write_later(src, dst, size, delay)))
        times = finish_times(env, events)
        return times, len(fabric.network.columns.rate)

    vector_times, slots = finish_times_with(arrays=True, vectors=True)
    scalar_times, _ = finish_times_with(arrays=True, vectors=False)
    dict_times, _ = finish_times_with(arrays=False, vectors=False)
    assert vector_times == scalar_times
    assert dict_times == pytest.approx(vector_times, rel=1e-12) and dict_times != vector_times  # sums' order
    assert slots < 800  # idle routes' slots were reused
