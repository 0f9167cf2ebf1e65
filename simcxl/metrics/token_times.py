"""Token times from iteration end times: each request's first token, mean and largest gap, and the TBT
distribution of the run, without a per-token array.

A token worker records one end time per iteration, and a request emits one token per iteration from its
join to its finish (``stints`` hold the earlier runs of a request that was preempted). So the gap between
iterations i and i+1 of an instance is one token interval for every sequence that emitted at both, and
the run's TBT distribution is those gaps, each counted as often as sequences saw it (a difference array
over the requests' [first, last) ranges), plus the gaps preemptions cut into a request's tokens. A request
can be added as soon as its last token's iteration has ended, and requests in any grouping: the difference
arrays add up.
"""

from __future__ import annotations

import numpy as np


class TokenTimes:
    """Per-request first token, TBT mean and max (NaN where none), and the weighted gaps of every instance."""

    def __init__(self, requests: int, instances: int):
        self.first_token = np.full(requests, np.nan)
        self.tbt_mean = np.full(requests, np.nan)
        self.tbt_max = np.full(requests, np.nan)
        self._starts = [np.zeros(1, dtype=np.int64) for _ in range(instances)]  # +1 where a token run starts, -1 after
        self._preemption_gaps: list[float] = []

    def add(self, instance: int, ends: np.ndarray, ids: np.ndarray, join: np.ndarray, finish: np.ndarray,
            earlier_runs: dict[int, tuple[tuple[int, int], ...]], offset: int = 0) -> None:
        """The requests ``ids`` of ``instance``: their join and finish iterations, and the earlier token runs of
        those that were preempted (a superset will do). ``ends``: the end times of the instance's iterations
        from ``offset`` (none of the requests emitted before it) to the last that has ended. A request still
        running is counted up to that last one, so add it once the run is over."""
        if offset:  # iterations counted from the offset on
            join, finish = (np.where(i >= 0, i - offset, -1) for i in (join, finish))
            earlier_runs = {i: tuple((a - offset, b - offset) for a, b in runs) for i, runs in earlier_runs.items()}
        iterations = len(ends)
        padded = np.zeros(max(iterations, 1))  # the gaps, then a 0 for reduceat's last bound: one array, not two
        gap = padded[:max(iterations - 1, 0)]
        np.subtract(ends[1:], ends[:-1], out=gap)  # np.diff's floats
        last = np.where((0 <= finish) & (finish < iterations), finish, iterations - 1)  # still running at the end
        cut = np.isin(ids, np.fromiter(earlier_runs, dtype=np.int64, count=len(earlier_runs)))
        first, last_whole = self._whole(ends, padded, ids[~cut], join[~cut], last[~cut])
        firsts, lasts = [first], [last_whole]
        for request, joined, ended in zip(ids[cut], join[cut], last[cut]):  # cut by preemptions: few, one by one
            runs = list(earlier_runs[int(request)]) + ([(int(joined), int(ended))] if 0 <= joined < iterations else [])
            if runs:
                self._cut(ends, gap, int(request), runs)
                firsts.append(np.array([a for a, _ in runs], dtype=np.int64))
                lasts.append(np.array([b for _, b in runs], dtype=np.int64))
        first, last = np.concatenate(firsts), np.concatenate(lasts)
        starts, end = self._starts[instance], offset + iterations + 1
        if len(starts) < end:
            starts = self._starts[instance] = np.concatenate([starts, np.zeros(end - len(starts), np.int64)])
        starts[offset:end] += np.bincount(first, minlength=iterations + 1)
        starts[offset:end] -= np.bincount(last, minlength=iterations + 1)

    def _whole(self, ends: np.ndarray, padded: np.ndarray, ids: np.ndarray, first: np.ndarray, last: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Requests that emitted in one run: all at once (``padded``: the gaps and a 0). Returns the [first, last)
        ranges that hold gaps."""
        running = (0 <= first) & (first < len(ends))
        ids, first, last = ids[running], first[running], last[running]
        self.first_token[ids] = ends[first]
        emitted = last > first
        ids, first, last = ids[emitted], first[emitted], last[emitted]
        self.tbt_mean[ids] = (ends[last] - ends[first]) / (last - first)
        if len(ids):  # the largest gap of each [first, last) range: pairs of bounds in one reduceat
            self.tbt_max[ids] = np.maximum.reduceat(padded, np.column_stack((first, last)).ravel())[::2]
        return first, last

    def _cut(self, ends: np.ndarray, gap: np.ndarray, request: int, runs: list[tuple[int, int]]) -> None:
        """A request whose tokens came in several runs: the gaps inside them and the ones between."""
        between = [ends[b[0]] - ends[a[1]] for a, b in zip(runs, runs[1:])]
        intervals = np.concatenate([gap[a:b] for a, b in runs] + [np.array(between)])
        self.first_token[request] = ends[runs[0][0]]
        if len(intervals):
            self.tbt_mean[request] = (ends[runs[-1][1]] - ends[runs[0][0]]) / len(intervals)
            self.tbt_max[request] = intervals.max()
        self._preemption_gaps += between

    def distribution(self, ends: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The run's token intervals and how many sequences saw each, given every instance's iteration ends, in
        parts (an instance's each, then the gaps preemptions cut): joined, a million-request run's would be
        hundreds of MB more. Once: it sums the difference arrays up in place."""
        gaps, counts = [], []
        for starts, instance_ends in zip(self._starts, ends):
            gap = np.subtract(instance_ends[1:], instance_ends[:-1])  # np.diff's floats
            if len(starts) < len(gap):  # past the last range's end, nobody
                starts = np.concatenate([starts, np.zeros(len(gap) - len(starts), np.int64)])
            seen = np.cumsum(starts, out=starts)[:len(gap)]  # in place: the differences are not needed again
            saw = seen > 0  # an iteration nobody saw both ends of is no token interval
            if saw.all():  # as in a busy run: no copies
                gaps.append(gap)
                counts.append(seen)
            else:
                gaps.append(gap[saw])
                counts.append(seen[saw])
        gaps.append(np.array(self._preemption_gaps))
        counts.append(np.ones(len(self._preemption_gaps), dtype=np.int64))
        return gaps, counts
