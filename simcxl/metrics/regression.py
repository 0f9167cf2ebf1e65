"""Guarding simulated results: compare a summary with its golden copy under a tolerance policy.

Policy: counts and names must match exactly; floating-point metrics (latencies, rates, bytes)
must agree to a relative tolerance (default 1e-6), tight enough that any change to a model or a
hardware number shows, loose enough for last-bit differences between platforms.
"""

from __future__ import annotations

import math

from simcxl.metrics.results import flatten

RELATIVE_TOLERANCE = 1e-6


def _same(old: object, new: object, rel: float) -> bool:
    if isinstance(old, float) or isinstance(new, float):
        if not isinstance(old, (int, float)) or not isinstance(new, (int, float)):
            return False
        return math.isclose(old, new, rel_tol=rel, abs_tol=1e-12)
    return old == new


def _describe(old: object, new: object) -> str:
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) and old:
        return f"golden {old!r} -> now {new!r} ({(new - old) / abs(old):+.2%})"
    return f"golden {old!r} -> now {new!r}"


def diff_summaries(scenario: str, golden: dict, current: dict, rel: float = RELATIVE_TOLERANCE) -> list[str]:
    """One line per metric that moved: '<scenario>: <metric>: golden X -> now Y (+Z%)'."""
    old, new = flatten(golden), flatten(current)
    lines = []
    for key in list(dict.fromkeys([*old, *new])):
        if key not in new:
            lines.append(f"{scenario}: {key}: golden {old[key]!r} -> now missing")
        elif key not in old:
            lines.append(f"{scenario}: {key}: not in the golden (now {new[key]!r})")
        elif not _same(old[key], new[key], rel):
            lines.append(f"{scenario}: {key}: {_describe(old[key], new[key])}")
    return lines
