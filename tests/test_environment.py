"""The run's SimPy environment: counted events, timeouts at an absolute time, processes that start at once
and processes without an end event."""

from __future__ import annotations

import pytest
import simpy

from simcxl.sim.environment import CountingEnvironment, DetachedProcess, EagerProcess, TimeoutAt, Wakeup


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


def test_a_detached_process_runs_as_a_process_would_without_its_start_and_end_events():
    """The same generator, started at t = 1 by a parent, as a SimPy process and detached: the same steps at the
    same times, with the values and failures of the events it waits on; the detached one costs its own
    timeouts and nothing else (SimPy's adds an Initialize event and an end event)."""
    def run(detached: bool):
        env, log = CountingEnvironment(), []

        def child():
            log.append(("starts", env.now))
            value = yield env.timeout(2.0, value="slept")
            log.append((value, env.now))
            failing = env.event()
            failing.fail(RuntimeError("lost"))
            try:
                yield failing
            except RuntimeError as error:
                log.append((str(error), env.now))
            yield env.timeout(0.5)
            log.append(("ends", env.now))

        def parent():
            yield env.timeout(1.0)
            if detached:
                DetachedProcess(child())
            else:
                env.process(child())
            log.append(("parent goes on", env.now))

        env.process(parent())
        env.run()
        return log, env.events_processed

    (as_process, simpy_events), (detached, detached_events) = run(False), run(True)
    assert detached == [("starts", 1.0), ("parent goes on", 1.0), ("slept", 3.0), ("lost", 3.0), ("ends", 3.5)]
    assert sorted(as_process) == sorted(detached)
    assert simpy_events - detached_events == 2


def test_a_detached_process_that_fails_stops_the_run():
    env = simpy.Environment()

    def broken():
        yield env.timeout(1.0)
        raise RuntimeError("no decode worker")

    DetachedProcess(broken())
    with pytest.raises(RuntimeError, match="no decode worker"):
        env.run()
    assert env.now == 1.0
    with pytest.raises(ValueError, match="not a generator"):
        DetachedProcess(lambda: None)


def test_running_until_an_event_steps_as_simpy_steps():
    """The run loop with SimPy's step written into it: the same order, clock and value at the end, the same
    failure for an event nobody handled, and the same error when events run out before the one awaited."""

    def script(env: simpy.Environment) -> tuple[list, object]:
        seen = []

        def worker(name, delays):
            for delay in delays:
                yield env.timeout(delay)
                seen.append((name, env.now))
            return name

        a, b = env.process(worker("a", [1.0, 0.5, 0.0])), env.process(worker("b", [0.5, 1.0, 2.0]))
        value = env.run(until=env.any_of([a, b]))
        seen.append(("after", env.now))
        env.run(until=b)  # resumes where the first run stopped
        return seen + [("end", env.now)], [event.value for event in value.events]

    assert script(CountingEnvironment()) == script(simpy.Environment())

    def fails(env: simpy.Environment):
        def broken():
            yield env.timeout(2.0)
            raise KeyError("block 7")
        env.process(broken())
        with pytest.raises(KeyError, match="block 7"):
            env.run(until=env.timeout(5.0))
        return env.now

    assert fails(CountingEnvironment()) == fails(simpy.Environment()) == 2.0
    for env in (CountingEnvironment(), simpy.Environment()):
        with pytest.raises(RuntimeError, match="No scheduled events left"):
            env.run(until=env.event())


def test_now_is_the_clock_however_the_run_goes():
    """``now`` is a plain attribute moved with SimPy's clock: processes read the same times whether the run goes
    until a time, step by step, until an event or until no event is left."""

    def script(env: simpy.Environment) -> list:
        seen = []

        def worker():
            for delay in (0.25, 0.5, 1.0, 2.0, 4.0):
                yield env.timeout(delay)
                seen.append(env.now)

        env.process(worker())
        env.run(until=0.6)
        seen.append(("until 0.6", env.now))
        env.step()
        env.step()
        seen.append(("stepped", env.now))
        env.run(until=env.timeout(1.0))
        seen.append(("until an event", env.now))
        env.run()
        return seen + [("end", env.now)]

    assert script(CountingEnvironment()) == script(simpy.Environment())
    assert script(CountingEnvironment())[-1] == ("end", 7.75)


def test_a_wakeup_fires_once_and_only_for_a_sleeper():
    env, woken = simpy.Environment(), []
    wakeup = Wakeup(env)
    wakeup.wake()  # nobody asleep: nothing happens

    def sleeper():
        for _ in range(2):
            yield wakeup.wait()
            woken.append(env.now)

    def waker():
        yield env.timeout(1.0)
        wakeup.wake()
        wakeup.wake()  # already woken: nothing happens
        yield env.timeout(1.0)
        wakeup.wake()

    env.process(sleeper())
    env.process(waker())
    env.run()
    assert woken == [1.0, 2.0]
