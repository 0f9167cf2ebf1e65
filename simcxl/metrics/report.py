"""From a finished run to numbers: the per-request table and the summary.

Everything here is derived after the simulation from timestamps the entities recorded, so the hot
path never pays for statistics. The summary holds only simulated quantities (no wall time, no
versions), so the same scenario and seed give a byte-identical summary.json.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd

from simcxl.serving.cluster import Cluster
from simcxl.workload import Workload

REQUEST_COLUMNS = (
    "id", "arrival_s", "input_tokens", "output_tokens", "prefill_instance", "decode_instance",
    "cached_tokens", "prefill_start_s", "prefix_load_end_s", "prefill_end_s", "decode_admit_s",
    "kv_transfer_start_s", "kv_transfer_end_s", "decode_wait_s", "kv_sync_s",
    "first_token_s", "finish_s", "ttft_s", "tbt_mean_s", "tbt_max_s", "e2e_s", "kv_bytes")


def _stats(values: np.ndarray, keys: tuple[str, ...] = ("mean", "p50", "p90", "p99")) -> dict[str, float | None]:
    values = values[~np.isnan(values)]
    out: dict[str, float | None] = {}
    for key in keys:
        if not len(values):
            out[key] = None
        elif key == "mean":
            out[key] = float(values.mean())
        elif key == "max":
            out[key] = float(values.max())
        else:
            out[key] = float(np.percentile(values, float(key[1:])))
    return out


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else None


class RunReport:
    """Tables and summary of one finished :class:`Cluster` run."""

    def __init__(self, cluster: Cluster, workload: Workload):
        self.cluster = cluster
        self.workload = workload
        self.simulated_s = cluster.env.now
        self.requests = pd.DataFrame(self._request_rows(), columns=list(REQUEST_COLUMNS))
        self._tbt_intervals = np.concatenate(self._token_intervals) if self._token_intervals else np.empty(0)

    def _request_rows(self) -> list[tuple]:
        """One row per request; token times come from the decode workers' iteration end times, and TTFT and
        E2E are what the client sees: from sending the request to receiving the token, through the frontend."""
        out = self.cluster.frontend_latency
        ends = {w.index: np.asarray(w.iteration_ends) for w in self.cluster.token_workers}
        gaps = {index: np.diff(e) for index, e in ends.items()}
        self._token_intervals: list[np.ndarray] = []
        rows = []
        for r in self.cluster.requests:
            first_token = tbt_mean = tbt_max = math.nan
            stints = self._stints(r, len(ends[r.decode_instance]) if r.decode_instance >= 0 else 0)
            if stints:
                e, g = ends[r.decode_instance], gaps[r.decode_instance]
                first_token = float(e[stints[0][0]])
                parts = [g[first:last] for first, last in stints]
                parts += [np.array([e[b[0]] - e[a[1]]]) for a, b in zip(stints, stints[1:])]  # preemption gaps
                intervals = parts[0] if len(parts) == 1 else np.concatenate(parts)
                if len(intervals):
                    self._token_intervals.append(intervals)
                    tbt_mean = float((e[stints[-1][1]] - e[stints[0][0]]) / len(intervals))
                    tbt_max = float(intervals.max())
            r.first_token = first_token
            rows.append((r.id, r.arrival, r.input_tokens, r.output_tokens, r.prefill_instance, r.decode_instance,
                         r.cached_tokens, r.prefill_start, r.prefix_load_end, r.prefill_end, r.decode_admit,
                         r.kv_transfer_start, r.kv_transfer_end, r.decode_wait, r.kv_sync,
                         first_token, r.finish, first_token + out - r.arrival, tbt_mean, tbt_max,
                         r.finish + out - r.arrival,
                         r.kv_bytes))
        return rows

    @staticmethod
    def _stints(r, iterations: int) -> list[tuple[int, int]]:
        """(first, last) iteration of each run of tokens the request emitted, within the ``iterations`` run."""
        stints = list(r.stints)
        if 0 <= r.join_iteration < iterations:
            last = r.finish_iteration if 0 <= r.finish_iteration < iterations else iterations - 1
            stints.append((r.join_iteration, last))
        return stints

    def summary(self) -> dict:
        c, df, t = self.cluster, self.requests, self.simulated_s
        done = df[~df.finish_s.isna()]
        reached_decode = df[~df.kv_transfer_end_s.isna()]
        arrival = df.arrival_s.to_numpy()
        return {
            "scenario": c.scenario.name,
            "requests": {"arrived": int((arrival <= t).sum()), "completed": len(done),
                         "unfinished": int(len(df) - len(done))},
            "ttft_s": _stats(df.ttft_s.to_numpy()),
            "tbt_s": _stats(self._tbt_intervals),
            "e2e_s": _stats(done.e2e_s.to_numpy(), ("mean", "p50", "p90", "p99")),
            "tpot_s": _stats(((done.e2e_s - done.ttft_s) / (done.output_tokens - 1))[done.output_tokens > 1].to_numpy()),
            "throughput": {
                "output_tokens_per_s": float(done.output_tokens.sum() / t) if t > 0 else 0.0,
                "requests_per_s": float(len(done) / t) if t > 0 else 0.0,
            },
            "ttft_breakdown_s": {
                "queue": _mean((df.prefill_start_s - df.arrival_s).to_numpy()),
                "prefix_load": _mean((df.prefix_load_end_s - df.prefill_start_s).to_numpy()),
                "prefill": _mean((df.prefill_end_s - df.prefix_load_end_s).to_numpy()),
                "decode_wait": _mean(reached_decode.decode_wait_s.to_numpy()),
                "kv_sync": _mean(reached_decode.kv_sync_s.to_numpy()),
                "kv_transfer": _mean((reached_decode.kv_transfer_end_s - reached_decode.prefill_end_s
                                      - reached_decode.decode_wait_s - reached_decode.kv_sync_s).to_numpy()),
                "first_decode": _mean((df.first_token_s - df.kv_transfer_end_s).to_numpy()),
            },
            "decode_wait_s": _stats(reached_decode.decode_wait_s.to_numpy(), ("mean", "p99", "max")),
            "preemptions": {"count": sum(w.preemptions for w in c.token_workers),
                            "recomputed_tokens": sum(w.recomputed_tokens for w in c.token_workers)},
            "kv": {
                "manager": c.kv_manager.name if c.decode else "none (aggregated serving)",
                "bytes_moved": {kind: float(v) for kind, v in sorted(c.kv_manager.bytes_moved.items())},
                "bytes_per_token": c.llm.kv_bytes_per_token,
                **(c.kv_manager.prefix_cache.summary() if c.kv_manager.prefix_cache else {}),
                **({"gpu_prefix_hit_rate": c.kv_manager.gpu_cache.summary()["prefix_hit_rate"]}
                   if c.kv_manager.gpu_cache else {}),
                **c.kv_manager.summary(),
            },
            "workload": {"requests": len(df), "skipped_rows": len(self.workload.bad_rows),
                         "input_tokens_mean": float(df.input_tokens.mean()) if len(df) else 0.0,
                         "output_tokens_mean": float(df.output_tokens.mean()) if len(df) else 0.0},
            "utilization": self._utilization(),
            "sim": {"simulated_s": float(t), "events": c.env.events_processed},
        }

    def _utilization(self) -> dict:
        c, t = self.cluster, self.simulated_s
        if t <= 0:
            return {"gpu": {}, "link": {}}
        gpu = {role: float(np.mean([w.busy_time for w in workers]) / t)
               for role, workers in (("prefill", c.prefill), ("decode", c.decode), ("aggregated", c.aggregated))
               if workers}
        for key, workers, idle in (("prefill_blocked", c.prefill, "blocked_time"),
                                   ("prefill_loading", c.prefill, "loading_time"),
                                   ("decode_receiving", c.decode, "receive_time")):
            if workers:
                gpu[key] = float(np.mean([getattr(w, idle) for w in workers]) / t)
        by_kind: dict[str, list[float]] = defaultdict(list)
        for link in c.fabric.topology.links:
            by_kind[link.kind].append(link.carried / (link.capacity * t))
        link = {kind: {"mean": float(np.mean(v)), "max": float(np.max(v))} for kind, v in sorted(by_kind.items())}
        return {"gpu": gpu, "link": link}
