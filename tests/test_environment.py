"""The run's SimPy environment: counted events, timeouts at an absolute time, processes that start at once."""

from __future__ import annotations

import pytest
import simpy

from simcxl.serving.environment import CountingEnvironment, EagerProcess, TimeoutAt


def test_events_processed_counts_what_simpy_popped():
    env = CountingEnvironment()

    def ticker():
        for _ in range(5):
            yield env.timeout(1.0)

    env.process(ticker())  # an Initialize event, five timeouts and the process's own end
    env.run()
    assert env.events_processed == 7


def test_timeout_at_fires_at_the_very_float_and_rejects_the_past():
    env = simpy.Environment()
    when = 0.1 + 0.2  # 0.30000000000000004: now + (when - now) need not give it back
    fired = []
    TimeoutAt(env, when).callbacks.append(lambda _: fired.append(env.now))
    env.run()
    assert fired == [when]
    with pytest.raises(ValueError, match="before now"):
        TimeoutAt(env, 0.0)


def test_an_eager_process_runs_its_first_step_inside_its_caller_and_saves_one_event():
    """Started from another process at t = 1, the eager one has run to its first yield before the starter's
    next line; it then behaves as any process: others wait on it and get its value."""
    env = CountingEnvironment()
    log = []

    def child():
        log.append(("child starts", env.now))
        yield env.timeout(2.0)
        return "done"

    def parent():
        yield env.timeout(1.0)
        started = EagerProcess(env, child())
        log.append(("parent goes on", env.now))
        assert env.active_process is not started  # the caller is the active process again
        value = yield started
        log.append((value, env.now))

    env.process(parent())
    env.run()
    assert log == [("child starts", 1.0), ("parent goes on", 1.0), ("done", 3.0)]
    # parent: Initialize, its timeout, its end; child: its timeout and its end (no Initialize)
    assert env.events_processed == 5


def test_an_eager_process_that_fails_at_once_fails_its_waiters():
    env = simpy.Environment()

    def broken():
        raise RuntimeError("no KV")
        yield  # a generator

    def waiter():
        with pytest.raises(RuntimeError, match="no KV"):
            yield EagerProcess(env, broken())

    env.process(waiter())
    env.run()
    with pytest.raises(ValueError, match="not a generator"):
        EagerProcess(env, lambda: None)
