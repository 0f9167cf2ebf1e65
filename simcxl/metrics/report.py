"""From a finished run to numbers: the summary, from the per-request table (:mod:`request_table`) and the
entities' counters.

Everything here is derived from timestamps the entities recorded, so the hot path never pays for
statistics. The summary holds only simulated quantities (no wall time, no versions), so the same scenario
and seed give a byte-identical summary.json.
"""

from __future__ import annotations

import math
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Iterable, Iterator, Sequence

import numpy as np

from simcxl.metrics.request_table import RequestTable
from simcxl.metrics.steady_state import steady_state
from simcxl.serving.cluster import Cluster
from simcxl.workload import Workload

SORTED_WHOLE = 1 << 19  # token gaps sorted at once for the TBT percentiles; more are bracketed from a sample
SAMPLE = 1 << 16  # values drawn to bracket a percentile of the token gaps
PRODUCTS = 1 << 16  # gaps x counts multiplied at a time for the exact weighted mean


def _stats(values: np.ndarray, keys: tuple[str, ...] = ("mean", "p50", "p90", "p99")) -> dict[str, float | None]:
    values = values[~np.isnan(values)]
    out: dict[str, float | None] = {}
    for key in keys:
        if not len(values):
            out[key] = None
        elif key == "mean":
            out[key] = _mean(values)
        elif key == "max":
            out[key] = float(values.max())
        else:
            out[key] = float(np.percentile(values, float(key[1:])))
    return out


def _mean(values: np.ndarray) -> float | None:
    """The mean of the non-NaN values, summed exactly (``math.fsum``): a BLAS or SIMD sum's order changes
    with threads and alignment, so a Ray worker would print other last digits than the local process."""
    values = values[~np.isnan(values)]
    return _exact_sum([values]) / len(values) if len(values) else None


def _exact_sum(parts: Iterable[np.ndarray]) -> float:
    """The exact sum of the arrays' values, rounded once. ``fsum`` reads them through memoryviews, which hand
    it Python floats ~3x faster than iterating the arrays (numpy scalars) does."""
    return math.fsum(chain.from_iterable(memoryview(np.ascontiguousarray(part, dtype=float)) for part in parts))


def _products(values: Sequence[np.ndarray], counts: Sequence[np.ndarray]) -> Iterator[np.ndarray]:
    """Each value times its count, a chunk at a time into one buffer, for :func:`_exact_sum` (which reads each
    chunk whole before asking for the next): no array of tens of millions of products, nor pages faulted in
    afresh for every chunk."""
    buffer = np.empty(PRODUCTS)
    for v, c in zip(values, counts):
        for i in range(0, len(v), PRODUCTS):
            j = min(i + PRODUCTS, len(v))
            yield np.multiply(v[i:j], c[i:j], out=buffer[:j - i])


def _weighted_stats(values: Sequence[np.ndarray], counts: Sequence[np.ndarray]) -> dict[str, float | None]:
    """:func:`_stats` of the multiset holding ``counts[k][i]`` copies of ``values[k][i]``, without making it
    (nor joining the parts: a million-request run has tens of millions of token gaps): the same order
    statistics and linear interpolation as ``np.percentile``."""
    parts = [(v, c) for v, c in zip(values, counts) if len(v)]
    values, counts = [v for v, _ in parts], [c for _, c in parts]
    total = sum(int(part.sum()) for part in counts)
    if not total:
        return dict.fromkeys(("mean", "p50", "p90", "p99"))
    out: dict[str, float | None] = {"mean": _exact_sum(_products(values, counts)) / total}
    quantiles = {}  # as np.percentile's 'linear' method: between the copies at ranks below and below + 1
    for q in (50, 90, 99):
        virtual = (total - 1) * (q / 100)
        quantiles[q] = virtual, int(np.floor(virtual))
    ranks = [rank for _, below in quantiles.values() for rank in (below, min(below + 1, total - 1))]
    few = sum(len(v) for v in values) <= SORTED_WHOLE
    value = {}
    for group in [ranks] if few else [ranks[i:i + 2] for i in range(0, len(ranks), 2)]:  # sorted once, or bracketed
        value.update(zip(group, _order_statistics(values, counts, total, group, bracket=not few)))
    for q, (virtual, below) in quantiles.items():
        a, b, t = value[below], value[min(below + 1, total - 1)], virtual - below
        out[f"p{q}"] = float(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)
    return out


def _order_statistics(values: Sequence[np.ndarray], counts: Sequence[np.ndarray], total: int, ranks: list[int],
                      bracket: bool) -> list[float]:
    """The values at 0-based ``ranks`` (ascending) of the sorted multiset of ``total`` copies. With ``bracket``,
    only the values inside a bracket of the ranks are sorted: sorting tens of millions of token gaps (or
    selecting among copies of them) took seconds, mostly in faulting in the copies' memory."""
    first, last = ranks[0], ranks[-1]
    for lo, hi in _brackets(values, counts, first / total, last / total) if bracket else [(-math.inf, math.inf)]:
        under = sum(int(c.sum(where=v < lo)) for v, c in zip(values, counts)) if lo > -math.inf else 0
        inside = [(v >= lo) & (v <= hi) for v in values]
        held_counts = np.concatenate([c[i] for c, i in zip(counts, inside)])
        if under <= first and last < under + int(held_counts.sum()):
            held = np.concatenate([v[i] for v, i in zip(values, inside)])
            order = np.argsort(held)
            cumulative = np.cumsum(held_counts[order])
            held = held[order]
            return [float(held[np.searchsorted(cumulative, rank - under, side="right")]) for rank in ranks]
    raise AssertionError("the last bracket holds every value")


def _brackets(values: Sequence[np.ndarray], counts: Sequence[np.ndarray], low: float, high: float
              ) -> Iterator[tuple[float, float]]:
    """Value ranges likely to hold the quantiles ``low`` <= ``high`` (fractions of the copies), from a weighted
    sample, each wider than the last, up to (-inf, inf). The sample changes only the time, never the
    values: a bracket is used only once the copies under and inside it show it holds both ranks."""
    size = sum(len(v) for v in values)
    rng = np.random.default_rng(0)
    picks = [rng.integers(len(v), size=-(-len(v) * SAMPLE // size)) for v in values]
    sampled = np.concatenate([v[i] for v, i in zip(values, picks)])
    order = np.argsort(sampled)
    sampled, weight = sampled[order], np.cumsum(np.concatenate([c[i] for c, i in zip(counts, picks)])[order])
    margin = 0.01 * weight[-1]  # ~5 standard errors of a sampled median
    while True:
        first = np.searchsorted(weight, low * weight[-1] - margin, side="left")
        last = np.searchsorted(weight, high * weight[-1] + margin, side="right")
        lo, hi = (sampled[first] if first > 0 else -math.inf), (sampled[last] if last < len(sampled) else math.inf)
        yield lo, hi
        if lo == -math.inf and hi == math.inf:
            return
        margin *= 8


class RunReport:
    """Tables and summary of one finished :class:`Cluster` run."""

    def __init__(self, cluster: Cluster, workload: Workload, table: RequestTable):
        self.cluster = cluster
        self.workload = workload
        self.simulated_s = cluster.env.now
        self.table = table
        self.requests = table.finish()  # one row per request
        helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simcxl-tbt")
        self._token_statistics = helper.submit(self._tbt_distribution)  # numpy, mostly without the GIL: meanwhile
        helper.shutdown(wait=False)  # the rest of the summary and the results are worked out

    @property
    def token_intervals(self) -> int:
        """How many token intervals (gaps between a sequence's consecutive tokens) the run had."""
        return self._token_statistics.result()[0]

    @property
    def tbt(self) -> dict[str, float | None]:
        """The TBT statistics of every token interval of the run."""
        return self._token_statistics.result()[1]

    def _tbt_distribution(self) -> tuple[int, dict[str, float | None]]:
        gaps, counts = self.table.distribution()
        return sum(int(part.sum()) for part in counts), _weighted_stats(gaps, counts)

    def summary(self) -> dict:
        c, df, t = self.cluster, self.requests, self.simulated_s
        col = {name: df[name].to_numpy() for name in df.columns}  # views: masks below copy single columns only
        span, rows = t, len(df)  # throughput's time, and the requests summarized
        rounds = self.workload.rounds
        if rounds is not None:  # the measured (last) round's rows, over its span
            rounds_section = self._rounds(col)
            lo = (len(rounds) - 1) * self.workload.round_requests
            col = {name: values[lo:] for name, values in col.items()}
            rows = len(df) - lo
            span = t - c.round_starts[-1] if len(c.round_starts) == len(rounds) else 0.0
        done = ~np.isnan(col["finish_s"])
        decoded = ~np.isnan(col["kv_transfer_end_s"])
        outputs = col["output_tokens"][done]
        several = outputs > 1
        summary = {
            "scenario": c.scenario.name,
            "requests": {"arrived": int((col["arrival_s"] <= t).sum()), "completed": int(done.sum()),
                         "unfinished": int(rows - done.sum())},
            "ttft_s": _stats(col["ttft_s"]),
            "tbt_s": None,  # last: worked out on another thread meanwhile
            "e2e_s": _stats(col["e2e_s"][done], ("mean", "p50", "p90", "p99")),
            "tpot_s": _stats((col["e2e_s"][done][several] - col["ttft_s"][done][several]) / (outputs[several] - 1)),
            "throughput": {
                "output_tokens_per_s": float(outputs.sum() / span) if span > 0 else 0.0,
                "requests_per_s": float(done.sum() / span) if span > 0 else 0.0,
            },
            "steady_state": steady_state(col["arrival_s"], col["ttft_s"], col["finish_s"], col["e2e_s"],
                                         (rounds[-1] if rounds is not None else self.workload.concurrency) is not None),
            "ttft_breakdown_s": {
                "queue": _mean(col["prefill_start_s"] - col["arrival_s"]),
                "prefix_load": _mean(col["prefix_load_end_s"] - col["prefill_start_s"]),
                "prefill": _mean(col["prefill_end_s"] - col["prefix_load_end_s"]),
                "decode_wait": _mean(col["decode_wait_s"][decoded]),
                "kv_sync": _mean(col["kv_sync_s"][decoded]),
                "kv_transfer": _mean((col["kv_transfer_end_s"] - col["prefill_end_s"] - col["decode_wait_s"]
                                      - col["kv_sync_s"])[decoded]),
                "first_decode": _mean(col["first_token_s"] - col["kv_transfer_end_s"]),
            },
            "decode_wait_s": _stats(col["decode_wait_s"][decoded], ("mean", "p99", "max")),
            "preemptions": {"count": sum(w.preemptions for w in c.token_workers),
                            "recomputed_tokens": sum(w.recomputed_tokens for w in c.token_workers)},
            "kv": {
                "manager": c.kv_manager.name if c.decode else "none (aggregated serving)",
                **self._aggregated_prefix_cache(),
                "bytes_moved": {kind: float(v) for kind, v in sorted(c.kv_manager.bytes_moved.items())},
                "bytes_per_token": c.llm.kv_bytes_per_token,
                **(self._prefix_summary() if c.kv_manager.prefix_cache else {}),
                **({"gpu_prefix_hit_rate": c.kv_manager.gpu_cache.summary()["prefix_hit_rate"]}
                   if c.kv_manager.gpu_cache else {}),
                **c.kv_manager.summary(),
            },
            "workload": {"requests": rows, "skipped_rows": len(self.workload.bad_rows),
                         "input_tokens_mean": float(col["input_tokens"].mean()) if rows else 0.0,
                         "output_tokens_mean": float(col["output_tokens"].mean()) if rows else 0.0},
            "utilization": self._utilization(),
            "instances": c.sampler.instance_summary(),
            "sim": {"simulated_s": float(t), "events": c.env.events_processed},
        }
        if rounds is not None:
            summary["rounds"] = rounds_section
        summary["tbt_s"] = self.tbt
        return summary

    def _rounds(self, col: dict[str, np.ndarray]) -> dict[str, dict]:
        """Each round's basic numbers by its index ("0", "1", ...: a sweep flattens them to ``rounds.1.ttft_mean_s``):
        clients, requests, completed, start, span (start to its last finish), mean TTFT and the share of its prompt
        tokens found cached."""
        n, starts, out = self.workload.round_requests, self.cluster.round_starts, {}
        for r, clients in enumerate(self.workload.rounds):
            rows = slice(r * n, (r + 1) * n)
            finish = col["finish_s"][rows]
            done = ~np.isnan(finish)
            started = r < len(starts)
            tokens = int(col["input_tokens"][rows].sum())
            out[str(r)] = {
                "concurrency": clients, "requests": n, "completed": int(done.sum()),
                "start_s": float(starts[r]) if started else None,
                "span_s": float(finish.max() - starts[r]) if started and done.all() and n else None,
                "ttft_mean_s": _mean(col["ttft_s"][rows]),
                "prefix_hit_rate_tokens": int(col["cached_tokens"][rows].sum()) / tokens if tokens else 0.0}
        return out

    def _prefix_summary(self) -> dict:
        """The prefix cache's counters and rates; with rounds, those counted during the measured round."""
        cache, before = self.cluster.kv_manager.prefix_cache, self.cluster.measured_prefix_stats
        if before is None:
            return cache.summary()
        after = cache.stats
        cache.stats = type(after)(**{k: getattr(after, k) - getattr(before, k) for k in vars(after)})
        try:
            return cache.summary()
        finally:
            cache.stats = after

    def _aggregated_prefix_cache(self) -> dict:
        """Share of prompt tokens colocated instances found in their own prefix cache (none without one)."""
        workers = [w for w in self.cluster.aggregated if w.caching]
        looked_up = sum(w.prefix_looked_up_tokens for w in workers)
        return {"prefix_hit_rate_tokens": sum(w.prefix_hit_tokens for w in workers) / looked_up} if looked_up else {}

    def _utilization(self) -> dict:
        c, t = self.cluster, self.simulated_s
        if t <= 0:
            return {"gpu": {}, "link": {}}
        gpu = {role: _mean(np.array([w.busy_time for w in workers])) / t
               for role, workers in (("prefill", c.prefill), ("decode", c.decode), ("aggregated", c.aggregated))
               if workers}
        for key, workers, idle in (("prefill_blocked", c.prefill, "blocked_time"),
                                   ("prefill_loading", c.prefill, "loading_time"),
                                   ("decode_receiving", c.decode, "receive_time")):
            if workers:
                gpu[key] = _mean(np.array([getattr(w, idle) for w in workers])) / t
        by_kind: dict[str, list[float]] = defaultdict(list)
        for link in c.fabric.topology.links:
            by_kind[link.kind].append(link.carried / (link.capacity * t))
        link = {kind: {"mean": _mean(np.array(v)), "max": max(v)} for kind, v in sorted(by_kind.items())}
        return {"gpu": gpu, "link": link}
