"""A run's timeline in Chrome trace event format: what Perfetto (ui.perfetto.dev) and chrome://tracing open.

Each GPU instance is a track (prefill batches, decode and aggregated iterations with their batch, receive
stalls, preemptions); each KV manager's data paths are asynchronous slices (transfers overlap); a request's
life is a flow arrow from the prefill batch that computed its prompt to the iteration that emitted its first
token; sampled values (per instance: KV blocks in use, waiting and running requests, tokens per iteration,
preemptions, MFU, MBU; per link kind: utilization) are counter tracks. Times are simulated microseconds. Only what overlaps a window is kept, and at most ``max_events``
events, so a long run gives a file a browser can open; the file says when it was cut.
"""

from __future__ import annotations

import json
import math

MICROSECONDS = 1e6


class Timeline:
    """Collects trace events as the simulation runs; ``json()`` is the file."""

    def __init__(self, start: float = 0.0, end: float = math.inf, max_events: int = 1_000_000):
        if not 0 <= start < end:
            raise ValueError(f"timeline window must satisfy 0 <= start < end, got {start!r}..{end!r}")
        if max_events < 1:
            raise ValueError(f"timeline max_events must be >= 1, got {max_events!r}")
        self.start, self.end, self.max_events = start, end, max_events
        self.events: list[dict] = []
        self.dropped = 0
        self._pids: dict[str, int] = {}
        self._tids: dict[tuple[int, str], int] = {}
        self._async_ids = 0

    def _track(self, process: str, track: str) -> tuple[int, int]:
        pid = self._pids.setdefault(process, len(self._pids) + 1)
        tid = self._tids.setdefault((pid, track), len(self._tids) + 1)
        return pid, tid

    def _keep(self, start: float, end: float) -> bool:
        if not start <= end or end < self.start or start > self.end:  # also drops a time not set (NaN)
            return False
        if len(self.events) >= self.max_events:
            self.dropped += 1
            return False
        return True

    def slice(self, process: str, track: str, name: str, start: float, end: float, **args) -> None:
        """A span of work on one track (a GPU instance): slices of a track never overlap."""
        if self._keep(start, end):
            pid, tid = self._track(process, track)
            self.events.append({"ph": "X", "name": name, "pid": pid, "tid": tid, "ts": start * MICROSECONDS,
                                "dur": (end - start) * MICROSECONDS, "args": args})

    def instant(self, process: str, track: str, name: str, at: float, **args) -> None:
        """A moment on a track (a preemption)."""
        if self._keep(at, at):
            pid, tid = self._track(process, track)
            self.events.append({"ph": "i", "s": "t", "name": name, "pid": pid, "tid": tid,
                                "ts": at * MICROSECONDS, "args": args})

    def counter(self, process: str, name: str, at: float, value: float) -> None:
        """A sampled value (KV blocks in use, MFU, a link's utilization): a Perfetto counter track per name."""
        if self._keep(at, at):
            pid, _ = self._track(process, name)
            self.events.append({"ph": "C", "name": name, "pid": pid, "ts": at * MICROSECONDS, "args": {"value": value}})

    def transfer(self, process: str, name: str, start: float, end: float, **args) -> None:
        """Data in flight (a KV transfer, a prefix load, a fetch): transfers overlap, so each is an async slice."""
        if self._keep(start, end):
            pid, _ = self._track(process, name)
            self._async_ids += 1
            common = {"cat": "kv", "name": name, "pid": pid, "id": self._async_ids}
            self.events.append({**common, "ph": "b", "ts": start * MICROSECONDS, "args": args})
            self.events.append({**common, "ph": "e", "ts": end * MICROSECONDS})

    def flow(self, request_id: int, source: tuple[str, str], start: float, target: tuple[str, str],
             end: float) -> None:
        """An arrow from the slice enclosing ``start`` on ``source`` to the one enclosing ``end`` on ``target``."""
        if self._keep(start, end):
            (pid, tid), (to_pid, to_tid) = self._track(*source), self._track(*target)
            common = {"cat": "request", "name": f"request {request_id}", "id": request_id}
            self.events.append({**common, "ph": "s", "pid": pid, "tid": tid, "ts": start * MICROSECONDS})
            self.events.append({**common, "ph": "f", "bp": "e", "pid": to_pid, "tid": to_tid,
                                "ts": end * MICROSECONDS})

    def json(self) -> str:
        """The trace file: names of processes and tracks first, then events in time order."""
        names = [{"ph": "M", "name": "process_name", "pid": pid, "args": {"name": process}}
                 for process, pid in self._pids.items()]
        names += [{"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": track}}
                  for (pid, track), tid in self._tids.items()]
        events = sorted(self.events, key=lambda e: e["ts"])  # stable: same-time events keep their order
        window = {"start_s": self.start, "end_s": None if math.isinf(self.end) else self.end}
        other = {"simulated_time_unit": "us", "window": window, "events_dropped": self.dropped}
        return json.dumps({"displayTimeUnit": "ms", "otherData": other, "traceEvents": names + events},
                          separators=(",", ":")) + "\n"
