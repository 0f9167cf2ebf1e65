"""Utilization over time: a sampler that records, every ``interval`` of simulated time, how busy the
GPUs of each role and the links of each kind were during the last window.

One SimPy event per sample, whatever the load. GPU busy time is credited when an iteration or batch
ends and link bytes when a flow ends, so windows much shorter than an iteration or a transfer are noisy.
"""

from __future__ import annotations

from array import array
from collections import defaultdict

import simpy


class UtilizationSampler:
    """Samples kept as one flat array of floats (8 bytes a value), so a day of simulated time stays small.
    ``roles`` maps a GPU role to its workers (each with a ``busy_time``); ``links`` are the fabric's (each with
    ``kind``, ``capacity`` and the bytes it has ``carried``)."""

    def __init__(self, env: simpy.Environment, roles: dict[str, list], links: list, interval: float):
        if not interval > 0:
            raise ValueError(f"sample interval must be > 0 s, got {interval!r}")
        self.env = env
        self.interval = interval
        self.columns: list[str] = []  # time_s, then the measures in sorted order, fixed by the first sample
        self.values = array("d")
        self._roles = [(f"gpu.{role}", workers) for role, workers in roles.items() if workers]
        links_of: dict[str, list] = defaultdict(list)  # the topology does not change: links grouped once, in order
        for link in links:
            links_of[f"link.{link.kind}"].append(link)
        self._links = [(key, group, sum(link.capacity for link in group)) for key, group in links_of.items()]
        self._last = self._totals()

    def _totals(self) -> dict[str, float]:
        totals = {key: sum(w.busy_time for w in workers) / len(workers) for key, workers in self._roles}
        for key, group, capacity in self._links:
            totals[key] = sum(link.carried for link in group) / capacity
        return totals

    def run(self):
        """SimPy process: sample until the simulation stops."""
        env = self.env
        while True:
            yield env.timeout(self.interval)
            now = self._totals()
            if not self.columns:
                self.columns = ["time_s", *sorted(now)]
            self.values.append(env.now)
            self.values.extend((now[k] - self._last.get(k, 0.0)) / self.interval for k in self.columns[1:])
            self._last = now

    def csv(self) -> str:
        if not self.columns:
            return "time_s\n"
        width = len(self.columns)
        rows = (",".join(map(repr, self.values[i:i + width])) for i in range(0, len(self.values), width))
        return "\n".join([",".join(self.columns), *rows]) + "\n"
