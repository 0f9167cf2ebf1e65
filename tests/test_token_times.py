"""Token times from iteration ends: per-request first token and gaps, and the run's TBT distribution."""

from __future__ import annotations

import numpy as np
import pytest

from simcxl.metrics import report
from simcxl.metrics.report import _weighted_stats
from simcxl.metrics.token_times import TokenTimes


def test_gaps_are_counted_once_per_sequence_that_saw_both_ends_and_preemption_gaps_join_them():
    ends = np.array([1.0, 2.0, 4.0, 7.0])  # gaps 1, 2, 3
    times = TokenTimes(3)
    # request 0 emits at iterations 0..2, request 1 at 1..3, request 2 at 0..1 and again at 3 after a preemption
    times.add_instance(ends, np.array([0, 1, 2]), np.array([0, 1, 3]), np.array([2, 3, 3]), {2: ((0, 1),)})
    assert list(times.first_token) == [1.0, 2.0, 1.0]
    assert list(times.tbt_mean) == [1.5, 2.5, 3.0]  # request 2: (7 - 1) / 2 intervals (1, then 5 across the cut)
    assert list(times.tbt_max) == [2.0, 3.0, 5.0]
    gaps, counts = times.distribution()
    assert dict(zip(np.concatenate(gaps).tolist(), np.concatenate(counts).tolist())) == {1.0: 2, 2.0: 2, 3.0: 1,
                                                                                           5.0: 1}


def test_a_request_still_running_at_the_end_counts_the_iterations_that_ran():
    times = TokenTimes(1)
    times.add_instance(np.array([1.0, 3.0, 6.0]), np.array([0]), np.array([1]), np.array([10]), {})
    assert times.tbt_mean[0] == 3.0 and times.first_token[0] == 3.0


@pytest.mark.parametrize("sample", [report.SAMPLE, 8])
@pytest.mark.parametrize("decimals, most", [(None, 40), (1, 40), (None, 2), (2, 2)])
def test_weighted_statistics_equal_numpy_on_the_expanded_multiset(decimals, most, sample, monkeypatch):
    """Values rounded to ``decimals`` tie (as the gaps of equal iterations do); counts of at most 2 put a
    percentile's two neighbours in different values, so interpolation between them is checked. A sample of 8
    brackets the percentiles as a long run's tens of millions of gaps are (some brackets miss and widen)."""
    monkeypatch.setattr(report, "SAMPLE", sample)
    monkeypatch.setattr(report, "SORTED_WHOLE", 16 if sample == 8 else report.SORTED_WHOLE)
    rng = np.random.default_rng(0)
    for size in (1, 2, 7, 500, 501):
        values, counts = rng.exponential(size=size), rng.integers(0, most + 1, size=size)
        counts[0] = max(counts[0], 1)
        if decimals is not None:
            values = np.round(values, decimals)
        expanded = np.repeat(values, counts)
        stats = _weighted_stats([values], [counts])
        assert stats["mean"] == pytest.approx(expanded.mean(), rel=1e-12)
        for q in (50, 90, 99):
            assert stats[f"p{q}"] == np.percentile(expanded, q), (size, q)
        cuts = sorted(rng.integers(0, size + 1, size=2))  # in parts, one of them perhaps empty: the same numbers
        assert _weighted_stats(np.split(values, cuts), np.split(counts, cuts)) == stats


def test_no_token_interval_gives_no_statistics():
    assert _weighted_stats([], []) == _weighted_stats([np.array([])], [np.array([], dtype=np.int64)]) == {
        "mean": None, "p50": None, "p90": None, "p99": None}


@pytest.mark.parametrize("chunk", [1 << 16, 256])
def test_the_weighted_mean_does_not_depend_on_summation_order(chunk, monkeypatch):
    """The products are summed exactly (fsum), so no BLAS thread count or order of the terms can change a
    digit: shuffled terms give the identical mean, within one ulp of the exact rational mean; so do parts,
    multiplied a chunk at a time through one buffer."""
    from fractions import Fraction

    monkeypatch.setattr(report, "PRODUCTS", chunk)
    rng = np.random.default_rng(0)  # a draw whose shuffle moves np.dot's and np.sum's last digit
    values, counts = rng.lognormal(-4, 2, size=3000), rng.integers(1, 1000, size=3000)
    mean = _weighted_stats([values], [counts])["mean"]
    order = rng.permutation(len(values))
    assert _weighted_stats([values[order]], [counts[order]])["mean"] == mean
    assert _weighted_stats(np.split(values, [1000, 1100]), np.split(counts, [1000, 1100]))["mean"] == mean
    exact = sum(Fraction(v) * int(c) for v, c in zip(values.tolist(), counts)) / int(counts.sum())
    assert abs(mean - float(exact)) <= np.spacing(mean)
