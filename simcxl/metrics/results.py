"""The results folder of one run, written atomically.

Each file is written to a temporary name in the same folder and renamed into place, so an interrupted
run never leaves a half-written file, and files of an earlier run stay whole until replaced.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

import pandas as pd
import yaml

from simcxl import __version__
from simcxl.errors import SimcxlError

if TYPE_CHECKING:
    from concurrent.futures import Executor, Future


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all; a path that cannot be written is the user's to fix."""
    write_atomic_with(path, lambda handle: handle.write(text.encode("utf-8")))


def write_atomic_with(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Let ``write`` fill a temporary file beside ``path``, then rename it into place (large files stream to
    disk instead of being built in memory first)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise SimcxlError(f"{path.parent}: cannot write results there: {exc.strerror or exc} "
                          f"(choose another output folder with -o)") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~_UMASK)  # as open() would have made it; mkstemp makes it private
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise SimcxlError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table(pool: Executor, out_dir: Path, name: str, table: pd.DataFrame) -> list[Future]:
    """Start writing ``name``.csv and ``name``.parquet in ``pool``, both at once (Arrow writes without the
    GIL, so the caller's thread can work meanwhile): the CSV for any tool, the Parquet for pandas to read a
    million rows in a second. Both written by Arrow (C++), ~20x faster than pandas' CSV writer; floats are
    written in their shortest round-trip form (0.0 as 0) and NaN as an empty field."""
    import pyarrow  # here: a run that writes nothing needs no pyarrow
    import pyarrow.csv
    import pyarrow.parquet

    arrow = pool.submit(pyarrow.Table.from_pandas, table, preserve_index=False)  # NaN -> null; once, for both

    def csv(handle: BinaryIO) -> None:
        handle.write((",".join(table.columns) + "\n").encode())
        pyarrow.csv.write_csv(arrow.result(), handle,
                              pyarrow.csv.WriteOptions(include_header=False, quoting_style="none"))

    return [pool.submit(write_atomic_with, out_dir / f"{name}.csv", csv),
            pool.submit(write_atomic_with, out_dir / f"{name}.parquet",
                        lambda handle: pyarrow.parquet.write_table(arrow.result(), handle))]


def python_build() -> str:
    """The interpreter and how its core is linked. A CPython built with ``--enable-shared`` and without
    PGO/LTO (pyenv's default) ran simcxl ~1.2x slower than Debian's statically linked, optimized build on
    the same machine (benchmarks/RESULTS.md), so a wall time means little without it."""
    linked = "libpython linked in"
    try:
        with open("/proc/self/maps") as maps:  # Linux: a shared libpython is mapped into the process
            shared = next((line.split()[-1] for line in maps if "/libpython" in line), None)
        if shared is not None:
            linked = f"libpython shared: {shared}"
    except OSError:
        linked = "libpython linking unknown"
    return f"{platform.python_implementation()} {platform.python_version()} ({sys.executable}; {linked})"


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """{'ttft_s': {'mean': 1.0}} -> {'ttft_s.mean': 1.0}: the key paths of a summary, as table columns."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def dump_json(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def write_results(out_dir: Path, summarize: Callable[[], dict], requests: pd.DataFrame, resolved: dict,
                  wall_s: float, timeseries_csv: str) -> None:
    """summary.json (last), requests.csv and .parquet, timeseries.csv, config.resolved.yaml, run.json (the
    only file with wall-clock data). ``summarize()`` runs while the request table is being written."""
    from concurrent.futures import ThreadPoolExecutor  # here: importing it pulls in logging, 17 ms at every start

    import numpy
    import simpy

    with ThreadPoolExecutor(max_workers=2) as pool:
        table = write_table(pool, out_dir, "requests", requests)
        summary = summarize()
        for file in table:
            file.result()  # raises what the writing raised
    write_atomic(out_dir / "timeseries.csv", timeseries_csv)
    write_atomic(out_dir / "config.resolved.yaml", yaml.safe_dump(resolved, sort_keys=False))
    write_atomic(out_dir / "run.json", dump_json({
        "wall_s": wall_s,
        "events_per_wall_s": summary["sim"]["events"] / wall_s if wall_s > 0 else None,
        "simcxl": __version__, "python": platform.python_version(), "python_build": python_build(),
        "simpy": simpy.__version__,
        "numpy": numpy.__version__, "pandas": pd.__version__, "platform": platform.platform(),
    }))
    write_atomic(out_dir / "summary.json", dump_json(summary))
