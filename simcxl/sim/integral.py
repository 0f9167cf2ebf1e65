"""The integral over simulated time of a quantity that changes in steps, such as a queue's length: what Little's
law divides by the run's length. Updated only when the quantity changes, so it costs nothing per iteration."""

from __future__ import annotations

import simpy


class StepIntegral:
    """``area`` is the integral up to ``since``; ``step(value)`` is called just before the quantity leaves
    ``value``, and ``at(value)`` gives the integral up to now while it holds ``value``."""

    __slots__ = ("env", "area", "since")

    def __init__(self, env: simpy.Environment):
        self.env = env
        self.area = 0.0
        self.since = 0.0

    def step(self, value: float) -> None:
        now = self.env.now
        if value:  # a zero value adds no area: only the time it starts counting from moves
            self.area += value * (now - self.since)
        self.since = now

    def at(self, value: float) -> float:
        return self.area + value * (self.env.now - self.since)
