"""Physical quantities written with units in YAML ("250 ns", "64 GB/s", "400 Gb/s", "80 GiB").

Values are parsed strictly, once, at load: a dimensioned quantity must carry a unit of the right kind,
so that "64" (which unit?) and "64 GB" where a bandwidth is expected are both rejected. Inside the
simulator every quantity is a float in SI base units: seconds, bytes, bytes/s, FLOP/s.
"""

from __future__ import annotations

import re

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([A-Za-zµ/]+)\s*$")

_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}

DURATION_UNITS = {"ps": 1e-12, "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0,
                  "min": 60.0, "h": 3600.0}


def _size_units() -> dict[str, float]:
    units = {"B": 1.0}
    for prefix, scale in {**_SI, **_BINARY}.items():
        if prefix:
            units[f"{prefix}B"] = scale
    return units


SIZE_UNITS = _size_units()
BANDWIDTH_UNITS = {f"{unit}/s": scale for unit, scale in SIZE_UNITS.items()}
BANDWIDTH_UNITS.update({f"{p}b/s": scale / 8 for p, scale in _SI.items() if p not in ("K",)})
BANDWIDTH_UNITS.update({f"{p}bps": scale / 8 for p, scale in _SI.items() if p not in ("", "K")})
FLOP_RATE_UNITS = {f"{p}FLOP/s": scale for p, scale in _SI.items() if p not in ("K",)}
FLOP_RATE_UNITS.update({f"{p}FLOPS": scale for p, scale in _SI.items() if p not in ("", "K")})
MESSAGE_RATE_UNITS = {f"{p}msg/s": scale for p, scale in _SI.items() if p not in ("K",)}


def _parse(value: object, units: dict[str, float], kind: str, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a {kind} with a unit, e.g. '{example}', got {value!r}")
    if isinstance(value, (int, float)):
        if value == 0:
            return 0.0
        raise ValueError(f"expected a {kind} with a unit, e.g. '{example}', got the bare number {value!r}")
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"expected a {kind} like '{example}', got {value!r}")
    number, unit = match.groups()
    if unit not in units:
        raise ValueError(
            f"unknown {kind} unit {unit!r} in {value!r}; use one of {', '.join(sorted(units, key=units.get))}")
    return float(number) * units[unit]


def parse_duration(value: object) -> float:
    """'250 ns' -> 2.5e-7 seconds."""
    return _parse(value, DURATION_UNITS, "duration", "250 ns")


def parse_size(value: object) -> float:
    """'80 GiB' -> bytes (binary prefixes Ki/Mi/Gi/Ti, decimal k/M/G/T)."""
    return _parse(value, SIZE_UNITS, "size", "80 GiB")


def parse_bandwidth(value: object) -> float:
    """'64 GB/s' -> bytes/s; '400 Gb/s' (bits) -> 5e10 bytes/s."""
    return _parse(value, BANDWIDTH_UNITS, "bandwidth", "64 GB/s")


def parse_flop_rate(value: object) -> float:
    """'989 TFLOP/s' -> FLOP/s."""
    return _parse(value, FLOP_RATE_UNITS, "compute rate", "989 TFLOP/s")


def parse_message_rate(value: object) -> float:
    """'200 Mmsg/s' -> messages per second."""
    return _parse(value, MESSAGE_RATE_UNITS, "message rate", "200 Mmsg/s")
