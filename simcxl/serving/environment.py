"""The SimPy environment of a run, and timeouts at an absolute time.

SimPy schedules a timeout at ``now + delay``. A worker that plans several iterations ahead knows the
time its last one ends as a float summed iteration by iteration; ``now + (end - now)`` can miss that
float by its last bit, so such a worker waits on :class:`TimeoutAt`, which fires at the float itself.
"""

from __future__ import annotations

from heapq import heappush
from itertools import count

import simpy
from simpy.core import NORMAL
from simpy.events import Event


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
