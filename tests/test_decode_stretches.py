"""Quiet decode iterations run as one event (a stretch), with the results of one event per iteration.

Worked by hand on a worker whose steps take one second, then end to end: every bundled behaviour that
touches a decode worker mid-stretch (arrivals, reservations, blocking receives, preemption, the router,
the sampler, a run cut off by its time limit) gives the same requests, summary and time series, bit for
bit, with stretches on and off."""

from __future__ import annotations

import pandas as pd
import pytest
import simpy

from simcxl.config.schema import DecodeSpec
from simcxl.serving import decode
from simcxl.serving.decode import DecodeWorker
from simcxl.sim.environment import CountingEnvironment
from simcxl.sim.request import Request
from simcxl.simulate import simulate

from .conftest import scenario
from .test_decode_admission import FixedCompute, NoFetch


class RoomyCompute(FixedCompute):
    """One second per step, KV room for 1,024 blocks of 4 tokens."""

    kv_capacity_tokens = 4096


def one_long_request(env: simpy.Environment) -> tuple[DecodeWorker, Request]:
    """Request A (4 prompt tokens, 40 output tokens) lands at t = 0 on an idle worker."""
    worker = DecodeWorker(env, 0, RoomyCompute(), DecodeSpec(admission="on_demand", block_tokens=4), [],
                          lambda _: None, NoFetch())
    a = Request(0, 0.0, 4, 40)

    def land():
        if (granted := worker.reserve(a)) is not None:  # None: granted now
            yield granted
        worker.enqueue(a)

    env.process(land())
    return worker, a


def test_a_reader_mid_stretch_sees_exactly_the_iterations_that_have_ended():
    env = simpy.Environment()
    worker, a = one_long_request(env)
    env.run(until=10.5)
    free_before = worker.kv.free  # not yet settled: the stretch still holds iterations 1..10 unapplied
    assert worker.busy_time == 10.0  # iterations 0..9 ended at t = 1..10
    assert (worker.iteration, list(worker.iteration_ends)) == (10, [float(t) for t in range(1, 11)])
    # A was granted 2 blocks (prompt + first token) and took one more at each of iterations 4 and 8 (its
    # tokens 9 and 13 start blocks; iteration 10's token 15 does not)
    assert worker.kv.free == worker.kv.total - 4 and free_before >= worker.kv.free
    assert worker.context_tokens == 4 + 10
    env.run()
    assert a.finish == 40.0 and list(worker.iteration_ends) == [float(t) for t in range(1, 41)]
    assert worker.kv.free == worker.kv.total


def test_a_request_landing_mid_stretch_joins_at_the_end_of_the_iteration_in_progress():
    env = simpy.Environment()
    worker, a = one_long_request(env)
    b = Request(1, 0.0, 4, 5)

    def land_b():
        yield env.timeout(10.5)
        if (granted := worker.reserve(b)) is not None:  # None: granted now
            yield granted
        worker.enqueue(b)

    env.process(land_b())
    env.run()
    # B lands during iteration 10 (t = 10..11), joins at iteration 11 and emits its 5 tokens at t = 12..16
    assert (b.join_iteration, b.finish_iteration, b.finish) == (11, 15, 16.0)
    assert a.finish == 40.0 and list(worker.iteration_ends) == [float(t) for t in range(1, 41)]


def test_a_stretch_is_one_event_for_up_to_stretch_iterations_quiet_iterations():
    counted = {}
    for stretches in (False, True):
        env = CountingEnvironment()
        worker, _ = one_long_request(env)
        worker.stretches = stretches
        env.run()
        counted[stretches] = env.events_processed
    # 40 iterations: 40 timeouts one by one; in stretches of at most 16 (and one to the finish), 3
    assert counted[False] - counted[True] == 40 - -(-40 // decode.STRETCH_ITERATIONS)


def run_both(name: str, *overrides: str):
    outcomes = {}
    for stretches in (False, True):
        DecodeWorker.stretches = stretches
        try:
            outcomes[stretches] = simulate(scenario(name, *overrides))
        finally:
            DecodeWorker.stretches = True
    return outcomes[False], outcomes[True]


@pytest.mark.parametrize("name, overrides", [
    ("rdma.yaml", ("workload.num_requests=400",)),
    ("rdma.yaml", ("workload.num_requests=400", "serving.router=least_loaded", "workload.rate=40")),
    ("rdma.yaml", ("workload.num_requests=300", "serving.decode.admission=reserve", "workload.rate=60")),
    ("rdma.yaml", ("workload.num_requests=150", "gpu.memory_utilization=0.25", "workload.rate=40",
                   "workload.output_tokens={dist: fixed, value: 1200}")),  # preempts
    ("rdma.yaml", ("workload.num_requests=3000", "run.max_simulated_time=20 s")),  # stops mid-stretch
    ("rdma.yaml", ("workload.num_requests=300", "serving.decode.max_batch_size=8", "workload.rate=30")),  # full
    ("kvdirect_push.yaml", ("workload.num_requests=150",)),  # blocking sends and receives, layer messages
])
def test_stretches_change_no_result(name, overrides):
    plain, stretched = run_both(name, *overrides)
    pd.testing.assert_frame_equal(stretched.report.requests, plain.report.requests, check_exact=True)
    assert stretched.report.cluster.sampler.csv() == plain.report.cluster.sampler.csv()
    events = plain.summary["sim"].pop("events"), stretched.summary["sim"].pop("events")
    assert stretched.summary == plain.summary
    assert events[1] < events[0]
    if "gpu.memory_utilization=0.25" in overrides:
        assert plain.summary["preemptions"]["count"] > 0
