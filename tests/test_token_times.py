"""Token times from iteration ends: per-request first token and gaps, and the run's TBT distribution."""

from __future__ import annotations

import numpy as np
import pytest

from simcxl.metrics import report
from simcxl.metrics.report import _weighted_stats
from simcxl.metrics.token_times import TokenTimes


def test_gaps_are_counted_once_per_sequence_that_saw_both_ends_and_preemption_gaps_join_them():
    ends = np.array([1.0, 2.0, 4.0, 7.0])  # gaps 1, 2, 3
    times = TokenTimes(3, 1)
    # request 0 emits at iterations 0..2, request 1 at 1..3, request 2 at 0..1 and again at 3 after a preemption
    times.add(0, ends, np.array([0, 1, 2]), np.array([0, 1, 3]), np.array([2, 3, 3]), {2: ((0, 1),)})
    assert list(times.first_token) == [1.0, 2.0, 1.0]
    assert list(times.tbt_mean) == [1.5, 2.5, 3.0]  # request 2: (7 - 1) / 2 intervals (1, then 5 across the cut)
    assert list(times.tbt_max) == [2.0, 3.0, 5.0]
    gaps, counts = times.distribution([ends])
    assert dict(zip(np.concatenate(gaps).tolist(), np.concatenate(counts).tolist())) == {1.0: 2, 2.0: 2, 3.0: 1,
                                                                                           5.0: 1}


def test_a_request_still_running_at_the_end_counts_the_iterations_that_ran():
    times = TokenTimes(1, 1)
    times.add(0, np.array([1.0, 3.0, 6.0]), np.array([0]), np.array([1]), np.array([10]), {})
    assert times.tbt_mean[0] == 3.0 and times.first_token[0] == 3.0


def test_requests_added_as_they_finish_give_what_adding_them_at_the_end_gives():
    """A block of requests is added once its last token's iteration has ended, while the run goes on, with the
    iteration ends from the first its requests emitted at: its token times and the run's gap counts are those
    of adding every request, with every end, once the run is over."""
    rng = np.random.default_rng(1)
    ends = np.cumsum(rng.uniform(0.01, 0.03, size=400))
    join = rng.integers(0, 350, size=300)
    finish = np.minimum(join + rng.integers(0, 60, size=300), 420)  # past the last iteration: still running
    finish[::7] = -1  # preempted, not back by the end
    earlier = {int(i): ((int(join[i]) - 30, int(join[i]) - 20),) for i in np.flatnonzero(join > 40)[::5]}
    ids = np.arange(300)
    whole = TokenTimes(300, 1)
    whole.add(0, ends, ids, join, finish, earlier)
    done = (0 <= finish) & (finish < 400)
    order = np.argsort(np.where(done, finish, 400), kind="stable")  # in the order they finish
    streamed, offsets = TokenTimes(300, 1), []
    for part in np.array_split(order, 7):
        running = ~done[part]
        seen = 400 if running.any() else int(finish[part].max()) + 1  # the ends there were when the last finished
        offset = min([int(join[part].min())] + [a for i in part if int(i) in earlier for a, _ in earlier[int(i)]])
        offsets.append(offset)
        streamed.add(0, ends[offset:seen], part, join[part], finish[part], earlier, offset)
    assert max(offsets) > 100
    for name in ("first_token", "tbt_mean", "tbt_max"):
        assert np.array_equal(getattr(streamed, name), getattr(whole, name), equal_nan=True)
    (gaps, counts), (whole_gaps, whole_counts) = streamed.distribution([ends]), whole.distribution([ends])
    assert all(np.array_equal(a, b) for a, b in zip(gaps[:1] + counts[:1], whole_gaps[:1] + whole_counts[:1]))
    assert sorted(gaps[1]) == sorted(whole_gaps[1])  # the gaps across preemptions, in the order added


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
