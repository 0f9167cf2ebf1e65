"""Utilization over time: a sampler that records, every ``interval`` of simulated time, how busy the
GPUs of each role and the links of each kind were during the last window (timeseries.csv), and what each
instance held and did (instances.csv, one row per sample and instance; a last row at the run's end).

One SimPy event per sample, whatever the load. GPU busy time is credited when an iteration or batch
ends and link bytes when a flow ends, so windows much shorter than an iteration or a transfer are noisy.
"""

from __future__ import annotations

from array import array
import math
from collections import defaultdict

import simpy

INSTANCE_COLUMNS = ("time_s", "role", "instance", "kv_blocks_used", "kv_blocks_total", "block_tokens", "waiting",
                    "running", "waiting_mean", "iterations", "tokens", "tokens_per_iteration", "preemptions", "busy",
                    "mfu", "mbu")
COUNTER_TRACKS = {"kv_blocks_used": "KV blocks in use", "waiting": "waiting", "running": "running",
                  "tokens_per_iteration": "tokens per iteration", "preemptions": "preemptions",
                  "mfu": "MFU", "mbu": "MBU"}


class UtilizationSampler:
    """Samples kept as one flat array of floats (8 bytes a value), so a day of simulated time stays small.
    ``roles`` maps a GPU role to its workers (each with a ``busy_time``); ``links`` are the fabric's (each with
    ``kind``, ``capacity`` and the bytes it has ``carried``)."""

    def __init__(self, env: simpy.Environment, roles: dict[str, list], links: list, interval: float,
                 timeline=None):
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
        self.timeline = timeline
        self._instances = [(role, worker) for role, workers in roles.items() for worker in workers]
        self.instance_rows: list[tuple] = []  # INSTANCE_COLUMNS, in order
        self._instance_last = [self._instance_totals(w) for _, w in self._instances]
        self._sampled_at = 0.0

    def _instance_totals(self, worker) -> tuple:
        """Cumulative counters of one instance: busy s, iterations, tokens, preemptions, FLOPs, bytes, queue area."""
        busy = worker.busy_time  # first: a decode worker applies its ended iterations
        iterations = worker.batches if hasattr(worker, "batches") else worker.iteration
        return (busy, iterations, worker.tokens_computed, getattr(worker, "preemptions", 0), *worker.work_done,
                getattr(worker, "queue_area", math.nan))

    def _gauges(self, role: str, worker) -> tuple:
        """kv_blocks_used, kv_blocks_total, block_tokens, waiting, running at this instant."""
        if role == "prefill":  # whole prompts held until the hand-off: counted in tokens (1-token blocks)
            return (worker.kv_held_tokens, worker.kv_capacity_tokens, 1, len(worker.queue), worker.running_requests)
        if role == "decode":
            return (worker.kv_blocks_used, worker.kv.total, worker.kv.block_tokens, worker.waiting, worker.batch_size)
        return (worker.kv_blocks_used, worker.kv.total, worker.kv.block_tokens, len(worker.waiting),
                len(worker.running))

    def sample_instances(self) -> None:
        """One row per instance for the window since the last sample."""
        now, window = self.env.now, self.env.now - self._sampled_at
        if window <= 0:
            return
        rows, timeline = self.instance_rows, self.timeline
        for k, (role, worker) in enumerate(self._instances):
            totals, last = self._instance_totals(worker), self._instance_last[k]
            busy, iterations, tokens, preemptions, flops, nbytes, area = (a - b for a, b in zip(totals, last))
            compute = worker.compute
            row = (now, role, worker.index, *self._gauges(role, worker), area / window, iterations, tokens,
                   tokens / iterations if iterations else 0.0, preemptions, busy / window,
                   flops / window / compute.peak_flops, nbytes / window / compute.peak_bandwidth)
            rows.append(row)
            self._instance_last[k] = totals
            if timeline is not None:
                process, track = role, f"instance {worker.index}"
                for column, value in zip(INSTANCE_COLUMNS[3:], row[3:]):
                    if column in COUNTER_TRACKS:
                        timeline.counter(process, f"{track}: {COUNTER_TRACKS[column]}", now, value)
        self._sampled_at = now

    def finish(self) -> None:
        """The run has ended: the instances' last, partial window (their KV and queues as the run leaves them)."""
        self.sample_instances()

    def instance_summary(self) -> dict:
        """Means and peaks of instances.csv per role, for summary.json: gauges (``kv_used_fraction`` = blocks in
        use / total, ``waiting``, ``running``) averaged over samples; window measures (``busy``, ``mfu``, ``mbu``)
        weighted by window length, and ``tokens_per_iteration`` as all tokens over all passes; ``max`` the
        largest sample or window of any instance of the role."""
        columns = {name: i for i, name in enumerate(INSTANCE_COLUMNS)}
        by_role: dict[str, list[tuple]] = {}
        for row in self.instance_rows:
            by_role.setdefault(row[1], []).append(row)
        previous: dict[tuple[str, int], float] = {}
        summary = {}
        for role, rows in by_role.items():
            windows = []
            for row in rows:
                key = (role, row[2])
                windows.append(row[0] - previous.get(key, 0.0))
                previous[key] = row[0]
            duration = sum(windows)

            def pick(name: str) -> list[float]:
                return [row[columns[name]] for row in rows]

            kv = [used / total if total else 0.0 for used, total in zip(pick("kv_blocks_used"), pick("kv_blocks_total"))]
            iterations, tokens = sum(pick("iterations")), sum(pick("tokens"))
            entry = {"kv_used_fraction": {"mean": sum(kv) / len(kv), "max": max(kv)}}
            for name in ("waiting", "running"):
                values = pick(name)
                entry[name] = {"mean": sum(values) / len(values), "max": max(values)}
            entry["tokens_per_iteration"] = {"mean": tokens / iterations if iterations else 0.0,
                                             "max": max(pick("tokens_per_iteration"))}
            for name in ("busy", "mfu", "mbu"):
                values = pick(name)
                entry[name] = {"mean": sum(v * w for v, w in zip(values, windows)) / duration if duration else 0.0,
                               "max": max(values)}
            summary[role] = entry
        return summary

    def instances_csv(self) -> str:
        lines = [",".join(INSTANCE_COLUMNS)]
        lines += [",".join(_field(value) for value in row) for row in self.instance_rows]
        return "\n".join(lines) + "\n"



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
            if self.timeline is not None:
                for k in self.columns[1:]:
                    if k.startswith("link."):
                        self.timeline.counter("links", f"{k} utilization", env.now,
                                              (now[k] - self._last.get(k, 0.0)) / self.interval)
            self._last = now
            self.sample_instances()

    def csv(self) -> str:
        if not self.columns:
            return "time_s\n"
        width = len(self.columns)
        rows = (",".join(map(repr, self.values[i:i + width])) for i in range(0, len(self.values), width))
        return "\n".join([",".join(self.columns), *rows]) + "\n"


def _field(value) -> str:
    """A CSV field: a name as is, a number in shortest round-trip form, NaN (not measured) empty."""
    if isinstance(value, str):
        return value
    return "" if value != value else repr(value)
