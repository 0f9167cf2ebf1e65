"""Utilization over time: a sampler that records, every ``interval`` of simulated time, how busy the
GPUs of each role and the links of each kind were during the last window.

One SimPy event per sample, whatever the load. GPU busy time is credited when an iteration or batch
ends and link bytes when a flow ends, so windows much shorter than an iteration or a transfer are noisy.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simcxl.serving.cluster import Cluster


class UtilizationSampler:
    """Samples kept as one flat array of floats (8 bytes a value), so a day of simulated time stays small."""

    def __init__(self, cluster: "Cluster", interval: float):
        if not interval > 0:
            raise ValueError(f"sample interval must be > 0 s, got {interval!r}")
        self.cluster = cluster
        self.interval = interval
        self.columns: list[str] = []  # time_s, then the measures in sorted order, fixed by the first sample
        self.values = array("d")
        self._last = self._totals()

    def _totals(self) -> dict[str, float]:
        c = self.cluster
        totals: dict[str, float] = defaultdict(float)
        for role, workers in (("prefill", c.prefill), ("decode", c.decode), ("aggregated", c.aggregated)):
            if workers:
                totals[f"gpu.{role}"] = sum(w.busy_time for w in workers) / len(workers)
        capacity: dict[str, float] = defaultdict(float)
        for link in c.fabric.topology.links:
            totals[f"link.{link.kind}"] += link.carried
            capacity[link.kind] += link.capacity
        for kind, cap in capacity.items():
            totals[f"link.{kind}"] /= cap
        return totals

    def run(self):
        """SimPy process: sample until the simulation stops."""
        env = self.cluster.env
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
