"""The SimPy environment of a run, timeouts at an absolute time, and processes that start at once.

SimPy schedules a timeout at ``now + delay``. A worker that plans several iterations ahead knows the
time its last one ends as a float summed iteration by iteration; ``now + (end - now)`` can miss that
float by its last bit, so such a worker waits on :class:`TimeoutAt`, which fires at the float itself.

SimPy starts a new process with an event of its own and ends it with another, which its waiters wait on;
two per request add up over a million requests. So the hand-off of each request's KV runs its first step
at once, as an :class:`EagerProcess`, and, where nobody waits for its end, as a :class:`DetachedProcess`,
which has no end event either. The environment counts the events it processes, runs its loop with
SimPy's ``step`` written in, and keeps ``now`` as a plain attribute. An idle worker sleeps on a
:class:`Wakeup`. These use SimPy's queue (``_queue``, ``_eid``, ``_now``) and process internals as simpy 4.1
defines them.
"""

from __future__ import annotations

from heapq import heappop, heappush
from itertools import count

import simpy
from simpy.core import NORMAL, StopSimulation
from simpy.events import Event, EventPriority, Process, ProcessGenerator


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes: the simulator's unit of cost.

    SimPy numbers every event it schedules (``_eid``, which also breaks ties in its queue) and pops each
    one it processes, so the processed count is the numbers handed out less the events still queued;
    counting in an overridden ``step`` would add a Python call to every event.

    ``now`` is a plain attribute, set with SimPy's ``_now`` whenever the clock moves: a run reads it ~20 times
    a request, and SimPy's property costs a Python call at each read."""

    now: float = 0.0  # not a descriptor: the instance's value is read directly

    def __init__(self) -> None:
        super().__init__()
        self.now = self._now
        self._eid = self._numbers = count()

    def step(self) -> None:
        """SimPy's ``step``, with ``now`` moved to the event's time before its callbacks run."""
        if self._queue:
            self.now = self._queue[0][0]
        super().step()

    @property
    def events_processed(self) -> int:
        handed_out = int(repr(self._numbers)[len("count("):-1])
        return handed_out - len(self._queue)

    def run(self, until: simpy.Event | float | None = None) -> object:
        """SimPy's ``run`` until an event, with its ``step`` written into the loop: one call fewer for each of
        a run's tens of millions of events, which otherwise step as SimPy steps them."""
        if not isinstance(until, Event) or until.callbacks is None:
            return super().run(until)
        until.callbacks.append(StopSimulation.callback)
        queue = self._queue
        try:
            while True:
                try:
                    now, _, _, event = heappop(queue)
                    self._now = self.now = now
                except IndexError:
                    raise RuntimeError(f'No scheduled events left but "until" event was not triggered: {until}'
                                       ) from None
                callbacks, event.callbacks = event.callbacks, None
                try:
                    for callback in callbacks:
                        callback(event)
                except StopSimulation:  # the rest of the callbacks run when the simulation resumes
                    event.callbacks = callbacks[callbacks.index(callback) + 1:]
                    self.schedule(event, EventPriority(-1))
                    raise
                if not event._ok and not hasattr(event, "_defused"):  # a failure nobody handled ends the run
                    exc = type(event._value)(*event._value.args)
                    exc.__cause__ = event._value
                    raise exc
        except StopSimulation as stop:
            return stop.args[0]


class TimeoutAt(Event):
    """An event that fires at simulated time ``when`` (>= now), scheduled as SimPy schedules a timeout."""

    def __init__(self, env: simpy.Environment, when: float):
        if when < env.now:
            raise ValueError(f"TimeoutAt {when} is before now ({env.now})")
        self.env = env
        self.callbacks = []
        self._value = None
        self._ok = True
        heappush(env._queue, (when, NORMAL, next(env._eid), self))


class Wakeup:
    """An idle process's sleep until work reaches it: it yields :meth:`wait`'s event, and :meth:`wake` fires
    that event once (waking a process that is not asleep, or already woken, does nothing)."""

    __slots__ = ("env", "_event")

    def __init__(self, env: simpy.Environment):
        self.env = env
        self._event: Event | None = None

    def wait(self) -> Event:
        self._event = Event(self.env)
        return self._event

    def wake(self) -> None:
        event = self._event
        if event is not None:
            self._event = None
            event.succeed()


class _Started:
    """What an eager process's generator is sent first: the value of an event that succeeded with None."""

    _ok = True
    _value = None


class EagerProcess(Process):
    """A SimPy process whose generator runs to its first ``yield`` now, inside the caller's step, instead of
    after an initialization event: the same process, one event fewer. The caller must not depend on running
    before it (SimPy would run the caller's remaining step first)."""

    def __init__(self, env: simpy.Environment, generator: ProcessGenerator):
        if not hasattr(generator, "throw"):
            raise ValueError(f"{generator} is not a generator")
        self.env = env
        self.callbacks = []
        self._generator = generator
        caller = env.active_process
        self._resume(_Started)  # type: ignore[arg-type]
        env._active_proc = caller


class DetachedProcess:
    """A generator run as a SimPy process that nobody waits for: it starts as an :class:`EagerProcess` does and
    ends without an event (SimPy would schedule one even with no waiter). It is no :class:`Process`: it cannot
    be waited on or interrupted, and it is not ``env.active_process`` while it runs. An exception it does not
    handle propagates out of the step that resumed it, stopping the run as SimPy stops it for a failed process
    that nobody waits for."""

    __slots__ = ("_generator",)

    def __init__(self, generator: ProcessGenerator):
        if not hasattr(generator, "throw"):
            raise ValueError(f"{generator} is not a generator")
        self._generator = generator
        self._resume(_Started)  # type: ignore[arg-type]

    def _resume(self, event: Event) -> None:
        """Run the generator until it waits on an event not yet processed, or ends (as ``Process._resume``)."""
        while True:
            try:
                if event._ok:
                    event = self._generator.send(event._value)
                else:  # the generator handles the failure or fails with it
                    event._defused = True
                    event = self._generator.throw(event._value)
            except StopIteration:
                return
            if event.callbacks is not None:
                event.callbacks.append(self._resume)
                return
