"""The SimPy environment of a run, timeouts at an absolute time, and processes that start at once.

SimPy schedules a timeout at ``now + delay``. A worker that plans several iterations ahead knows the
time its last one ends as a float summed iteration by iteration; ``now + (end - now)`` can miss that
float by its last bit, so such a worker waits on :class:`TimeoutAt`, which fires at the float itself.

SimPy starts a new process with an event of its own; one per request adds up over a million requests,
so the hand-off of each request's KV runs its first step at once, as an :class:`EagerProcess`.
These use SimPy's queue (``_queue``, ``_eid``) and process internals as simpy 4.1 defines them.
"""

from __future__ import annotations

from heapq import heappush
from itertools import count

import simpy
from simpy.core import NORMAL
from simpy.events import Event, Process, ProcessGenerator


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes: the simulator's unit of cost.

    SimPy numbers every event it schedules (``_eid``, which also breaks ties in its queue) and pops each
    one it processes, so the processed count is the numbers handed out less the events still queued;
    counting in an overridden ``step`` would add a Python call to every event."""

    def __init__(self) -> None:
        super().__init__()
        self._eid = self._numbers = count()

    @property
    def events_processed(self) -> int:
        handed_out = int(repr(self._numbers)[len("count("):-1])
        return handed_out - len(self._queue)


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
