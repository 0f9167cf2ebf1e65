"""Real request traces: Mooncake jsonl (with prefix-block hashes), Azure LLM inference CSV (the 2023 and
2024 releases) and BurstGPT CSV; any of them may be gzip-compressed (``.gz``).

Every row is checked, bytes included (a line that is not UTF-8 is a bad row, not a crash); a malformed
one stops the load with its file and line number, unless ``skip_bad_rows`` is set, in which case bad
rows are counted and reported, never silently dropped. Options take a slice (the first N requests, or
a time window), compress time (``time_scale`` > 1 replays faster) and cap lengths.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

import numpy as np

from simcxl.errors import WorkloadError, describe_file
from simcxl.workload.workload import Workload

MOONCAKE_BLOCK_TOKENS = 512  # tokens per hash_id in the Mooncake traces (FAST'25 release README)
AZURE_HEADER = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]
BURSTGPT_COLUMNS = ("Timestamp", "Request tokens", "Response tokens")  # release v1.1 on; more columns may follow


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


def _seconds(value: float, name: str, unit: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of {unit} >= 0, got {value!r}")
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
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        raise ValueError(f"timestamp must be a number of ms, got {timestamp!r}")
    _seconds(timestamp, "timestamp", "ms")
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
    """'2023-11-16 18:15:46.6805900' (2023: 100 ns digits, no zone) or '2024-05-10 00:00:00.009930+00:00'
    (2024: a UTC offset) -> naive UTC datetime (microseconds kept)."""
    text = text.strip()
    offset = timedelta(0)
    if text.endswith("Z"):
        text = text[:-1]
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        sign = 1 if text[-6] == "+" else -1
        offset = sign * timedelta(hours=int(_digits(text[-5:-3], text)), minutes=int(_digits(text[-2:], text)))
        text = text[:-6]
    whole, _, fraction = text.partition(".")
    try:
        stamp = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ValueError(f"TIMESTAMP must look like 2023-11-16 18:15:46.6805900, got {text!r}") from None
    if fraction:
        stamp = stamp.replace(microsecond=int(_digits(fraction, text)[:6].ljust(6, "0")))
    return stamp - offset


def _digits(part: str, text: str) -> str:
    if not part.isdigit():
        raise ValueError(f"bad TIMESTAMP {text!r}")
    return part


def _lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) of a trace file, gzip or plain; text is None for a line that is not UTF-8."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            for line, raw in enumerate(handle, start=1):
                try:
                    yield line, raw.decode("utf-8")
                except UnicodeDecodeError:
                    yield line, None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise WorkloadError(f"{path}: not a readable gzip file ({exc})") from None
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read: {exc.strerror or exc}") from None


NOT_UTF8 = "not UTF-8 text (a trace is a text file; is this the right file?)"


def _read_mooncake(path: Path, skip_bad_rows: bool) -> TraceLoad:
    rows, bad = [], []
    for line, text in _lines(path):
        if text is not None and not text.strip():
            continue
        try:
            if text is None:
                raise ValueError(NOT_UTF8)
            rows.append(_mooncake_row(text, line))
        except ValueError as exc:
            _reject(path, line, str(exc), skip_bad_rows, bad)
    return TraceLoad(rows, bad)


def _csv_rows(path: Path, skip_bad_rows: bool, bad: list[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a CSV trace, the header first; undecodable lines are rejected here."""
    for line, text in _lines(path):
        if text is None:
            if line == 1:
                raise WorkloadError(f"{path}:1: {NOT_UTF8}")
            _reject(path, line, NOT_UTF8, skip_bad_rows, bad)
            continue
        if text.strip():
            yield line, next(csv.reader([text]))


def _read_azure(path: Path, skip_bad_rows: bool) -> TraceLoad:
    rows, bad = [], []
    start = None
    lines = _csv_rows(path, skip_bad_rows, bad)
    header = next(lines, (1, None))[1]
    if header is None or [h.strip() for h in header] != AZURE_HEADER:
        raise WorkloadError(f"{path}:1: expected the header {','.join(AZURE_HEADER)}, got {header!r}")
    for line, fields in lines:
        try:
            if len(fields) != 3:
                raise ValueError(f"expected 3 columns ({','.join(AZURE_HEADER)}), got {len(fields)}")
            stamp = _azure_timestamp(fields[0])
            n_in = _length(_int(fields[1], "ContextTokens"), "ContextTokens")
            n_out = _length(_int(fields[2], "GeneratedTokens"), "GeneratedTokens")
        except ValueError as exc:
            _reject(path, line, str(exc), skip_bad_rows, bad)
            continue
        start = stamp if start is None else start
        rows.append(TraceRow(line, (stamp - start).total_seconds(), n_in, n_out))
    return TraceLoad(rows, bad)


def _read_burstgpt(path: Path, skip_bad_rows: bool) -> TraceLoad:
    """BurstGPT (HPMLL/BurstGPT): ``Timestamp`` in seconds from the trace start, ``Request tokens``,
    ``Response tokens``; other columns (Model, Total tokens, Log Type, Session ID, ...) are ignored. A
    failed request has 0 response tokens: a bad row (``BurstGPT_without_fails_*.csv`` leaves them out)."""
    rows, bad = [], []
    lines = _csv_rows(path, skip_bad_rows, bad)
    header = [h.strip() for h in (next(lines, (1, None))[1] or [])]
    if not all(column in header for column in BURSTGPT_COLUMNS):
        raise WorkloadError(f"{path}:1: expected a header with the columns {', '.join(BURSTGPT_COLUMNS)}, "
                            f"got {header!r}")
    at = [header.index(column) for column in BURSTGPT_COLUMNS]
    for line, fields in lines:
        try:
            if len(fields) != len(header):
                raise ValueError(f"expected {len(header)} columns, got {len(fields)}")
            arrival = _seconds(_float(fields[at[0]], "Timestamp"), "Timestamp", "s")
            n_in = _length(_int(fields[at[1]], "Request tokens"), "Request tokens")
            n_out = _length(_int(fields[at[2]], "Response tokens"), "Response tokens")
        except ValueError as exc:
            _reject(path, line, str(exc), skip_bad_rows, bad)
            continue
        rows.append(TraceRow(line, arrival, n_in, n_out))
    return TraceLoad(rows, bad)


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None


def _float(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None


def _reject(path: Path, line: int, message: str, skip: bool, bad: list[str]) -> None:
    if not skip:
        raise WorkloadError(f"{path}:{line}: {message} (set workload.skip_bad_rows: true to skip and count such rows)")
    bad.append(f"{path}:{line}: {message}")


READERS = {"mooncake": _read_mooncake, "azure": _read_azure, "burstgpt": _read_burstgpt}
FORMATS = tuple(READERS)


def load_trace(path: Path, fmt: str, *, skip_bad_rows: bool = False, first: int | None = None,
               start: float = 0.0, end: float | None = None, time_scale: float = 1.0,
               max_input_tokens: int | None = None, max_output_tokens: int | None = None,
               context_window: int | None = None) -> Workload:
    """The requests of a trace as a workload (arrivals relative to the window start, divided by
    ``time_scale``), with the bad rows it skipped; columns, no request objects. A request whose prompt and
    output (after the ``max_*`` clips) exceed the model's ``context_window`` is an error at its line."""
    problem = describe_file(path)
    if problem is not None:  # named as what it is: missing, a directory, a FIFO, unreadable...
        raise WorkloadError(f"{path}: trace {problem}" if problem.startswith("file not found")
                            else f"{path}: trace file: {problem}")
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
    origin, count = window[0].arrival, len(window)
    arrival = np.fromiter(((row.arrival - origin) / time_scale for row in window), np.float64, count)
    inputs = np.fromiter((row.input_tokens for row in window), np.int64, count)
    outputs = np.fromiter((row.output_tokens for row in window), np.int64, count)
    if max_input_tokens:
        inputs = np.minimum(inputs, max_input_tokens)
    if max_output_tokens:
        outputs = np.minimum(outputs, max_output_tokens)
    if context_window is not None:
        over = np.flatnonzero(inputs + outputs > context_window)
        if len(over):
            i = int(over[0])
            raise WorkloadError(f"{path}:{window[i].line}: {int(inputs[i]):,} prompt + {int(outputs[i]):,} output tokens "
                                f"exceed the model's context window of {context_window:,} tokens (model.context_window, "
                                f"its max_position_embeddings); clip them with workload.max_input_tokens / "
                                f"max_output_tokens or pick a model with a longer window")
    hashes = [row.block_hashes[:math.ceil(n / MOONCAKE_BLOCK_TOKENS)] for row, n in zip(window, inputs.tolist())]
    return Workload(arrival, inputs, outputs, hashes.__getitem__, MOONCAKE_BLOCK_TOKENS, loaded.bad_rows)
