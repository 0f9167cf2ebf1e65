"""Whether a run reached steady state, over a measurement window that leaves out warm-up and drain
(docs/notes/steady_state.md gives the rule and why).

Window: the requests arriving from the ``WARMUP`` quantile of the arrival times (the first 10% of arrivals
are warm-up) up to the last arrival (what follows it is drain). Over it:

- open loop (requests arrive at their times): ``offered_rate`` = the window's arrivals / its span;
  ``completed_rate`` = the requests (of any arrival) finishing in the window shifted by ``lag_s``, the median
  E2E of the window's finished requests, / the same span. A stable system completes what arrives, one
  latency later; an overloaded one completes at its capacity, whatever the offer.
- closed loop (clients send when served): no offered rate (null); ``completed_rate`` is the completions in
  the window / its span, and ``completed_rate_halves`` those of its first and second halves, which must
  agree within ``TOLERANCE``.
- both: ``queue_growth`` = (mean TTFT of the window's last third of arrivals - that of its first third) /
  (the difference of their mean arrival times): a queue fed faster than it is served makes each request
  wait longer, by (offered / capacity - 1) seconds per second.

Verdict true when ``completed_rate >= (1 - TOLERANCE) x offered_rate`` (closed loop: halves within
``TOLERANCE``), ``queue_growth <= TOLERANCE`` and no request is unfinished. A run too short to tell
(fewer than ``MIN_REQUESTS`` requests in the window, or a lag over half the window's span; or, for a
marginal rate shortfall with TTFT not growing, a window under ``LAGS`` lags) has verdict false,
``conclusive`` false and a reason that says so.
"""

from __future__ import annotations

import math

import numpy as np

WARMUP = 0.1
"""The share of the first arrivals left out of the window as warm-up."""
TOLERANCE = 0.05
"""Relative: completed rate vs offered (or halves vs each other), and TTFT growth in seconds per second."""
MIN_REQUESTS = 100
"""Fewer requests in the window than this is too short to tell."""
LAGS = 10
"""A window shorter than this many lags (median E2E) cannot tell a marginal rate shortfall (completed rate
under (1 - TOLERANCE) x offered but over GROSS x offered, TTFT not growing) from a system still filling up."""
GROSS = 0.8
"""Completing less than this share of the offer is an overload however short the run."""


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return math.fsum(values.tolist()) / len(values) if len(values) else None


def steady_state(arrival: np.ndarray, ttft: np.ndarray, finish: np.ndarray, e2e: np.ndarray,
                 closed_loop: bool) -> dict:
    """The measurement window and verdict of one run, from its requests' columns (seconds; NaN: not reached)."""
    out: dict = {"window_start_s": None, "window_end_s": None, "requests": 0, "offered_rate": None,
                 "completed_rate": None, "lag_s": None, "queue_growth": None, "verdict": False, "conclusive": False}
    if closed_loop:
        out["completed_rate_halves"] = None
    n = len(arrival)
    order = np.argsort(arrival, kind="stable")
    arrival, ttft, finish, e2e = arrival[order], ttft[order], finish[order], e2e[order]
    first = int(math.floor(WARMUP * n))
    if n - first < 2:
        out["reason"] = f"too short to tell: {n} requests (need >= {MIN_REQUESTS} in the window)"
        return out
    start, end = float(arrival[first]), float(arrival[-1])
    span = end - start
    inside = slice(first, n)
    count = n - first
    out.update(window_start_s=start, window_end_s=end, requests=count)
    if span <= 0:
        out["reason"] = "too short to tell: the window's requests all arrive at once"
        return out
    finished = finish[~np.isnan(finish)]
    lag = float(np.median(e2e[inside][~np.isnan(e2e[inside])])) if (~np.isnan(e2e[inside])).any() else math.inf
    if closed_loop:
        completed = int(((finished >= start) & (finished <= end)).sum())
        middle = start + span / 2
        halves = [int(((finished >= start) & (finished < middle)).sum()) / (span / 2),
                  int(((finished >= middle) & (finished <= end)).sum()) / (span / 2)]
        out["completed_rate_halves"] = halves
    else:
        out["offered_rate"] = count / span
        completed = int(((finished >= start + lag) & (finished <= end + lag)).sum()) if math.isfinite(lag) else 0
        out["lag_s"] = lag if math.isfinite(lag) else None
    out["completed_rate"] = completed / span
    third = count // 3
    if third:
        a, b = slice(first, first + third), slice(n - third, n)
        ttft_a, ttft_b = _mean(ttft[a]), _mean(ttft[b])
        dt = float(arrival[b].mean() - arrival[a].mean())
        if ttft_a is not None and ttft_b is not None and dt > 0:
            out["queue_growth"] = (ttft_b - ttft_a) / dt
    unfinished = int(np.isnan(finish).sum())
    short = (f"{count} requests in the window (need >= {MIN_REQUESTS})" if count < MIN_REQUESTS else
             f"lag {lag:.3g} s (median E2E) over half the window's {span:.3g} s" if not closed_loop and lag > span / 2
             else "")
    problems = []
    if unfinished:
        problems.append(f"{unfinished} requests unfinished")
    if closed_loop:
        low, high = sorted(halves)
        if high > 0 and low < (1 - TOLERANCE) * high:
            problems.append(f"completed rate moved from {halves[0]:.4g} to {halves[1]:.4g}/s across the window's "
                            f"halves (more than {TOLERANCE:.0%})")
    elif out["completed_rate"] < (1 - TOLERANCE) * out["offered_rate"]:
        problems.append(f"completed {out['completed_rate']:.4g}/s of {out['offered_rate']:.4g}/s offered "
                        f"(short by more than {TOLERANCE:.0%})")
    growth = out["queue_growth"]
    if growth is not None and growth > TOLERANCE:
        problems.append(f"TTFT grows {growth:.3g} s per s across the window (queue growing)")
    if problems:  # a clear overload over enough requests shows however short the run: a verdict, not a request
        # for more; below MIN_REQUESTS a shortfall or a TTFT trend is sampling noise (20 requests at a fifth of
        # capacity "complete" 72% of the offered rate), and only unfinished requests are conclusive
        enough = count >= MIN_REQUESTS
        gross = enough and not closed_loop and out["completed_rate"] < GROSS * out["offered_rate"]
        growing = enough and growth is not None and growth > TOLERANCE
        if not short and not closed_loop and span < LAGS * lag and not growing:
            short = f"a rate shortfall without TTFT growth over {span / lag:.3g} lags (need {LAGS})"
        out["conclusive"] = not short or bool(unfinished) or gross or growing
        out["reason"] = "; ".join(problems) + (f" (too short to tell: {short})" if short and not out["conclusive"]
                                               else "")
    elif short:
        out["reason"] = f"too short to tell: {short}"
    else:
        out.update(verdict=True, conclusive=True, reason="steady: completed rate within "
                   f"{TOLERANCE:.0%} of {'offered' if not closed_loop else 'itself across halves'}, TTFT not growing")
    return out
