"""Replications: the same scenario run with N seeds, and a 95% confidence interval for each headline metric.

The seed rule: replication ``i`` (0-based) of a scenario whose ``seed`` is ``S`` runs with ``seed = S + i``, so
replication 0 is the scenario itself and ``--seeds 1`` is today's single run. The interval is Student's t over
the N replications (each replication's metric is one observation; the runs are independent because each seed
draws its own arrivals and request lengths): ``mean ± t(0.975, N-1) · s / sqrt(N)`` with ``s`` the sample
standard deviation. With N = 1 there is no spread to measure, so the interval is the single value.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Iterable, Sequence

MAX_SEEDS = 256
"""The most replications one command runs: a bound so that a typo (``--seeds 10000``) fails at once."""

HEADLINE = tuple(f"{metric}.{stat}" for metric in ("ttft_s", "tbt_s", "e2e_s")
                 for stat in ("mean", "p50", "p90", "p99")) + (
    "throughput.requests_per_s", "throughput.output_tokens_per_s")
"""The summary metrics given an interval (flattened key paths of summary.json)."""


def check_seeds(value: object, where: str = "--seeds") -> int:
    """``value`` as a replication count: a whole number in [1, MAX_SEEDS]; else a one-line message."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SEEDS:
        raise ValueError(f"{where} {value!r}: expected a whole number of replications from 1 to {MAX_SEEDS}")
    return value


def replica_seeds(seed: int, n: int) -> list[int]:
    """The seeds of ``n`` replications of a scenario with ``seed``: ``seed, seed + 1, ...``."""
    return [seed + i for i in range(check_seeds(n))]


def _t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3 and 26.7.4, closed forms)."""
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:  # odd: (2/pi) [theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)]
        term, total = math.cos(theta), 0.0
        if df > 1:
            total = term
            for k in range(1, (df - 3) // 2 + 1):
                term *= c2 * (2 * k) / (2 * k + 1)
                total += term
        return 2 / math.pi * (theta + s * total)
    term, total = 1.0, 1.0  # even: sin [1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...]
    for k in range(1, (df - 2) // 2 + 1):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return s * total


def t_quantile_975(df: int) -> float:
    """t(0.975, df): the half-width multiplier of a two-sided 95% interval (12.706 at df 1, 2.262 at df 9)."""
    low, high = 0.0, 1000.0  # t(0.975, 1) = 12.7; bisection to machine precision
    for _ in range(200):
        mid = (low + high) / 2
        if _t_two_sided_mass(mid, df) < 0.95:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def interval(values: Sequence[float]) -> dict[str, float | None]:
    """Mean and Student-t 95% interval of ``values`` (one per replication); None where a value is missing."""
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return {"mean": None, "ci95_low": None, "ci95_high": None}
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1 or min(values) == max(values):  # no spread (exactly: the rounding of fsum / n would invent one)
        return {"mean": values[0], "ci95_low": values[0], "ci95_high": values[0]}
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "ci95_low": mean - half, "ci95_high": mean + half}


def half_width(stats: dict) -> float | None:
    return None if stats["mean"] is None else (stats["ci95_high"] - stats["ci95_low"]) / 2


def replications(flat_summaries: Sequence[dict], seeds: Sequence[int], keys: Iterable[str] = HEADLINE) -> dict:
    """summary.json's ``replications`` block: ``{n, seeds, interval, metrics: {key: {mean, ci95_low,
    ci95_high}}}`` over flattened summaries (one per seed, in seed order)."""
    return {"n": len(seeds), "seeds": list(seeds),
            "interval": "Student t, 95%, over the replications (mean ± t(0.975, n-1) s/sqrt(n))",
            "metrics": {key: interval([flat.get(key) for flat in flat_summaries]) for key in keys}}


def per_seed_csv(flat_summaries: Sequence[dict], seeds: Sequence[int], keys: Iterable[str] = HEADLINE) -> str:
    """replications.csv: one row per seed with its headline metrics."""
    keys = list(keys)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["seed", *keys])
    for seed, flat in zip(seeds, flat_summaries):
        writer.writerow([seed, *("" if flat.get(key) is None else repr(flat[key]) for key in keys)])
    return text.getvalue()


def plus_minus(stats: dict, scale: float = 1.0, digits: int = 2) -> str:
    """``12.34 ± 0.56`` (mean ± 95% half-width, times ``scale``), or ``-`` for a missing metric."""
    if stats["mean"] is None:
        return "-"
    return f"{stats['mean'] * scale:,.{digits}f} ± {half_width(stats) * scale:,.{digits}f}"


def interval_table(summary: dict):
    """The table ``simcxl run --seeds N`` prints: one row per headline metric, its mean ± 95% half-width and
    the interval's ends."""
    from rich.table import Table

    block = summary["replications"]
    table = Table(title=f"simcxl: {summary['scenario']}, {block['n']} seeds ({block['seeds'][0]}.."
                        f"{block['seeds'][-1]}), 95% intervals (Student t)", header_style="bold")
    for column in ("metric", "mean ± half-width", "95% interval"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key in HEADLINE:
        metric, stat = key.rsplit(".", 1)
        label, scale, digits = _LABELS[metric]
        stats = block["metrics"][key]
        ends = "-" if stats["mean"] is None else (f"[{stats['ci95_low'] * scale:,.{digits}f}, "
                                                  f"{stats['ci95_high'] * scale:,.{digits}f}]")
        table.add_row(label.format(stat=stat), plus_minus(stats, scale, digits), ends)
    return table


_LABELS = {"ttft_s": ("TTFT {stat} (ms)", 1e3, 1), "tbt_s": ("TBT {stat} (ms)", 1e3, 2),
           "e2e_s": ("E2E {stat} (s)", 1.0, 2), "throughput": ("throughput ({stat})", 1.0, 2)}


def draw_interval(ax, x: Sequence[float], stats: Sequence[dict], scale: float = 1.0, **style) -> None:
    """Means as points joined by a line, with each 95% interval as an error bar (plots of replicated runs)."""
    xs = [xi for xi, s in zip(x, stats) if s["mean"] is not None]
    kept = [s for s in stats if s["mean"] is not None]
    means = [s["mean"] * scale for s in kept]
    below = [(s["mean"] - s["ci95_low"]) * scale for s in kept]
    above = [(s["ci95_high"] - s["mean"]) * scale for s in kept]
    ax.errorbar(xs, means, yerr=[below, above], fmt=style.pop("fmt", "o-"), capsize=style.pop("capsize", 3), **style)
