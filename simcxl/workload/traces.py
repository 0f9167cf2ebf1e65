"""Real request traces: Mooncake jsonl (with prefix-block hashes) and Azure LLM inference CSV.

Every row is checked; a malformed one stops the load with its file and line number, unless
``skip_bad_rows`` is set, in which case bad rows are counted and reported, never silently dropped.
Options take a slice (the first N requests, or a time window), compress time (``time_scale`` > 1
replays faster) and cap lengths.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from simcxl.errors import WorkloadError
from simcxl.serving.request import Request

MOONCAKE_BLOCK_TOKENS = 512  # tokens per hash_id in the Mooncake traces (FAST'25 release README)


@dataclass(frozen=True)
class TraceRow:
    line: int
    arrival: float
    input_tokens: int
    output_tokens: int
    block_hashes: tuple[int, ...] = ()


@dataclass
class TraceLoad:
    rows: list[TraceRow]
    bad_rows: list[str]


def _length(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def _mooncake_row(text: str, line: int) -> TraceRow:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    missing = [k for k in ("timestamp", "input_length", "output_length", "hash_ids") if k not in record]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    timestamp = record["timestamp"]
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)) or timestamp < 0:
        raise ValueError(f"timestamp must be a number of ms >= 0, got {timestamp!r}")
    n_in = _length(record["input_length"], "input_length")
    n_out = _length(record["output_length"], "output_length")
    hashes = record["hash_ids"]
    if not isinstance(hashes, list) or not all(isinstance(h, int) and not isinstance(h, bool) for h in hashes):
        raise ValueError("hash_ids must be a list of integers")
    if len(hashes) != math.ceil(n_in / MOONCAKE_BLOCK_TOKENS):
        raise ValueError(f"hash_ids has {len(hashes)} blocks, but input_length {n_in} needs "
                         f"{math.ceil(n_in / MOONCAKE_BLOCK_TOKENS)} of {MOONCAKE_BLOCK_TOKENS} tokens")
    return TraceRow(line, timestamp / 1e3, n_in, n_out, tuple(hashes))


def _azure_timestamp(text: str) -> datetime:
    """'2023-11-16 18:15:46.6805900' (100 ns digits) -> datetime (microseconds kept)."""
    whole, _, fraction = text.strip().partition(".")
    stamp = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S")
    if fraction:
        if not fraction.isdigit():
            raise ValueError(f"bad TIMESTAMP {text!r}")
        stamp = stamp.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return stamp


def _read_mooncake(path: Path, skip_bad_rows: bool) -> TraceLoad:
    rows, bad = [], []
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                rows.append(_mooncake_row(text, line))
            except ValueError as exc:
                _reject(path, line, str(exc), skip_bad_rows, bad)
    return TraceLoad(rows, bad)


def _read_azure(path: Path, skip_bad_rows: bool) -> TraceLoad:
    rows, bad = [], []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        expected = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]
        if header is None or [h.strip() for h in header] != expected:
            raise WorkloadError(f"{path}:1: expected the header {','.join(expected)}, got {header!r}")
        start = None
        for line, fields in enumerate(reader, start=2):
            try:
                if len(fields) != 3:
                    raise ValueError(f"expected 3 columns (TIMESTAMP,ContextTokens,GeneratedTokens), got {len(fields)}")
                stamp = _azure_timestamp(fields[0])
                n_in = _length(_int(fields[1], "ContextTokens"), "ContextTokens")
                n_out = _length(_int(fields[2], "GeneratedTokens"), "GeneratedTokens")
            except ValueError as exc:
                _reject(path, line, str(exc), skip_bad_rows, bad)
                continue
            start = stamp if start is None else start
            rows.append(TraceRow(line, (stamp - start).total_seconds(), n_in, n_out))
    return TraceLoad(rows, bad)


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None


def _reject(path: Path, line: int, message: str, skip: bool, bad: list[str]) -> None:
    if not skip:
        raise WorkloadError(f"{path}:{line}: {message} (set workload.skip_bad_rows: true to skip and count such rows)")
    bad.append(f"{path}:{line}: {message}")


READERS = {"mooncake": _read_mooncake, "azure": _read_azure}


def load_trace(path: Path, fmt: str, *, skip_bad_rows: bool = False, first: int | None = None,
               start: float = 0.0, end: float | None = None, time_scale: float = 1.0,
               max_input_tokens: int | None = None, max_output_tokens: int | None = None
               ) -> tuple[list[Request], list[str]]:
    """Requests of a trace (arrivals relative to the window start, divided by ``time_scale``) and bad rows."""
    if not path.is_file():
        raise WorkloadError(f"{path}: trace file not found")
    loaded = READERS[fmt](path, skip_bad_rows)
    previous = -math.inf
    for row in loaded.rows:
        if row.arrival < previous:
            raise WorkloadError(f"{path}:{row.line}: timestamps must not decrease "
                                f"({row.arrival:.3f} s after {previous:.3f} s)")
        previous = row.arrival
    window = [r for r in loaded.rows if r.arrival >= start and (end is None or r.arrival < end)]
    if first is not None:
        window = window[:first]
    if not window:
        raise WorkloadError(f"{path}: no requests in the selected slice (first={first}, start={start}, end={end})")
    origin = window[0].arrival
    requests = []
    for i, row in enumerate(window):
        n_in = min(row.input_tokens, max_input_tokens) if max_input_tokens else row.input_tokens
        n_out = min(row.output_tokens, max_output_tokens) if max_output_tokens else row.output_tokens
        blocks = row.block_hashes[:math.ceil(n_in / MOONCAKE_BLOCK_TOKENS)]
        requests.append(Request(i, (row.arrival - origin) / time_scale, n_in, n_out, blocks))
    return requests, loaded.bad_rows
