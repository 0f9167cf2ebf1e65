"""Decode admission on a disaggregated decode worker: on-demand KV blocks with preemption by recompute
against reserving the whole footprint up front. Worked by hand on a four-block instance, then end to end."""

from __future__ import annotations

import pytest
import simpy

from simcxl.config.schema import DecodeSpec
from simcxl.kvcache.protocol import KVConnector
from simcxl.serving.decode import DecodeWorker
from simcxl.sim.request import Request
from simcxl.simulate import simulate

from .conftest import scenario

STEP, PREFILL_PER_TOKEN = 1.0, 0.1


class FixedCompute:
    """One second per decode step, 0.1 s per prefilled token, KV room for 16 tokens (4 blocks of 4)."""

    kv_capacity_tokens = 16

    class llm:
        topk = None

        @staticmethod
        def attended(context):
            return context

    @staticmethod
    def decode_step_time(batch_size, context, attended):
        return STEP

    @staticmethod
    def decode_stretch(batch_size, context, attended, count, overhead, ends):
        for _ in range(count):
            ends.append(ends[-1] + (overhead + STEP))

    @staticmethod
    def prefill_time(tokens):
        return PREFILL_PER_TOKEN * sum(tokens)


class NoFetch(KVConnector):
    """A connector whose decode steps never fetch; the tests land requests on the worker themselves."""

    def after_prefill(self, request, instance):
        raise AssertionError("no prefill here")

    def transfer(self, request, prefill, decode):
        raise AssertionError("no hand-off here")


def run_two_requests(admission: str):
    """Requests A and B (4 prompt tokens, 8 output tokens each) arrive together at one decode worker."""
    env = simpy.Environment()
    finished = []
    worker = DecodeWorker(env, 0, FixedCompute(), DecodeSpec(admission=admission, block_tokens=4), [],
                          finished.append, NoFetch())
    requests = [Request(0, 0.0, 4, 8), Request(1, 0.0, 4, 8)]

    def admit(request):
        if (granted := worker.reserve(request)) is not None:  # None: granted now
            yield granted
        worker.enqueue(request)

    for request in requests:
        env.process(admit(request))
    env.run()
    return worker, requests, finished


def test_on_demand_preempts_the_newest_sequence_and_recomputes_it_when_blocks_free():
    worker, (a, b), finished = run_two_requests("on_demand")
    # Both land with 2 blocks (prompt + first token); at iteration 4 A needs a third block: none is free,
    # so B (the newest) is preempted after emitting 4 tokens. A finishes after iteration 7 (t = 8 s); B
    # rejoins at iteration 8, prefilling its 4 + 4 tokens again (0.8 s) before that step.
    assert (worker.preemptions, worker.recomputed_tokens) == (1, 8)
    assert a.finish == pytest.approx(8.0)
    assert b.stints == ((0, 3),)
    assert (b.join_iteration, b.finish_iteration) == (8, 11)
    assert worker.iteration_ends[8] == pytest.approx(9.8)
    assert b.finish == pytest.approx(12.8)
    assert worker.recompute_time == pytest.approx(0.8)
    # tokens conserved: A's 8 in one stint, B's 4 + 4 in two; every block back
    assert sum(last - first + 1 for first, last in b.stints + ((b.join_iteration, b.finish_iteration),)) == 8
    assert [r.id for r in finished] == [0, 1]
    assert worker.kv.free == worker.kv.total == 4


def test_reserve_holds_the_whole_footprint_so_the_second_request_waits_instead():
    worker, (a, b), finished = run_two_requests("reserve")
    # A reserves 12 tokens (3 blocks); B needs 3 more and waits until A finishes at t = 8 s.
    assert worker.preemptions == 0
    assert a.finish == pytest.approx(8.0)
    assert (b.join_iteration, b.finish_iteration) == (8, 15)
    assert b.finish == pytest.approx(16.0)
    assert worker.kv.free == worker.kv.total


def test_a_reservation_granted_now_returns_no_event_and_one_that_must_wait_its_grant():
    """Granting at once needs no event (the hand-off goes straight on); a request that finds too few blocks,
    or others already waiting, gets an event that fires once its blocks are its own, FCFS."""
    env = simpy.Environment()
    worker = DecodeWorker(env, 0, FixedCompute(), DecodeSpec(admission="reserve", block_tokens=4), [],
                          lambda _: None, NoFetch())
    a, b, c = Request(0, 0.0, 4, 8), Request(1, 0.0, 4, 8), Request(2, 0.0, 1, 1)
    assert worker.reserve(a) is None and worker.kv.free == 1  # 12 tokens: 3 of the 4 blocks
    waiting = worker.reserve(b)  # 3 more blocks: it waits
    assert waiting is not None and not waiting.triggered
    assert worker.reserve(c) is not None  # one block would do, but it queues behind b (FCFS)
    assert worker.free_kv_tokens == 4 - 12 - 2  # the free block, less what b and c wait for


def test_tight_decode_memory_preempts_end_to_end_and_conserves_requests_and_tokens():
    """The 8B model on an 80 GB GPU whose HBM is mostly taken (memory_utilization), long outputs."""
    args = ("gpu.memory_utilization=0.25", "workload.num_requests=120", "workload.rate=40",
            "workload.input_tokens={dist: fixed, value: 1500}", "workload.output_tokens={dist: fixed, value: 1200}")
    on_demand = simulate(scenario("rdma.yaml", *args))
    reserve = simulate(scenario("rdma.yaml", *args, "serving.decode.admission=reserve"))
    for outcome in (on_demand, reserve):
        assert outcome.summary["requests"] == {"arrived": 120, "completed": 120, "unfinished": 0}
        expected = outcome.summary["throughput"]["output_tokens_per_s"] * outcome.summary["sim"]["simulated_s"]
        assert expected == pytest.approx(120 * 1200)
        for worker in outcome.report.cluster.decode:
            assert worker.kv.free == worker.kv.total and worker.batch_size == 0
    preempted = on_demand.summary["preemptions"]
    assert preempted["count"] > 0 and preempted["recomputed_tokens"] >= preempted["count"] * 1500
    assert reserve.summary["preemptions"] == {"count": 0, "recomputed_tokens": 0}
    # reserving the output up front admits fewer sequences: requests wait longer for decode room
    assert on_demand.report.requests.decode_wait_s.mean() < reserve.report.requests.decode_wait_s.mean()
