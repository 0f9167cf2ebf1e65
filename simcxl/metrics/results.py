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
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Protocol

import numpy as np
import pandas as pd
import yaml

from simcxl.version import __version__
from simcxl.errors import SimcxlError


class TableWriter(Protocol):
    """What results need of the run's request table (a :class:`~simcxl.metrics.request_table.RequestTable`)."""

    def write(self, out_dir: Path) -> Callable[[], None]:
        """Start writing requests.csv and .parquet under ``out_dir``; the callable waits for it to finish."""


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
    file = AtomicFile(path)
    try:
        with os.fdopen(file.fd, "wb") as handle:
            write(handle)
    except OSError as exc:
        file.abort()
        raise SimcxlError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        file.abort()
        raise
    file.commit()


class AtomicFile:
    """A temporary file beside ``path`` (its descriptor ``fd``, its name ``temporary``) that becomes ``path``
    on :meth:`commit`, or disappears on :meth:`abort`: a file is whole or not there."""

    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise SimcxlError(f"{path.parent}: cannot write results there: {exc.strerror or exc} "
                              f"(choose another output folder with -o)") from None
        self.temporary = Path(name)

    def commit(self) -> None:
        try:
            os.chmod(self.temporary, 0o666 & ~_UMASK)  # as open() would have made it; mkstemp makes it private
            os.replace(self.temporary, self.path)
        except OSError as exc:
            self.abort()
            raise SimcxlError(f"{self.path}: cannot write: {exc.strerror or exc}") from None

    def abort(self) -> None:
        self.temporary.unlink(missing_ok=True)


class TableFiles:
    """``name``.csv and ``name``.parquet in ``out_dir``, appended a block of rows at a time and renamed into
    place by :meth:`commit`: the CSV for any tool, the Parquet (one row group per block) for pandas to read a
    million rows in a second. Arrow (C++) writes both, ~20x faster than pandas' CSV writer and without the
    GIL, to files it opens itself; floats are written in their shortest round-trip form (0.0 as 0) and NaN
    as an empty field in the CSV, a null in the Parquet."""

    def __init__(self, out_dir: Path, name: str):
        import pyarrow  # here: a run that writes nothing needs no pyarrow

        self._csv, self._parquet = AtomicFile(out_dir / f"{name}.csv"), AtomicFile(out_dir / f"{name}.parquet")
        self._streams: list[pyarrow.NativeFile] = []
        self._parquet_writer = None
        with self._failing():
            for file in (self._csv, self._parquet):
                os.close(file.fd)
                self._streams.append(pyarrow.OSFile(str(file.temporary), "wb"))

    def append(self, columns: dict[str, np.ndarray]) -> None:
        """Add rows, given as equally long columns (NaN for a missing value)."""
        import pyarrow
        import pyarrow.csv
        import pyarrow.parquet

        table = pyarrow.Table.from_pandas(pd.DataFrame(columns, copy=False), preserve_index=False, nthreads=1)
        with self._failing():
            if self._parquet_writer is None:
                self._streams[0].write((",".join(columns) + "\n").encode())
                self._parquet_writer = pyarrow.parquet.ParquetWriter(self._streams[1], table.schema)
            pyarrow.csv.write_csv(table, self._streams[0],
                                  pyarrow.csv.WriteOptions(include_header=False, quoting_style="none"))
            self._parquet_writer.write_table(table)

    def commit(self) -> None:
        """Close both files and rename them into place (after at least one :meth:`append`)."""
        with self._failing():
            self._close()
        self._csv.commit()
        self._parquet.commit()

    def abort(self) -> None:
        """Close and remove both files; nothing of them is left beside the results."""
        try:
            self._close()
        except OSError:  # the disk that failed the writing fails the closing too: the files go anyway
            pass
        self._csv.abort()
        self._parquet.abort()

    def _close(self) -> None:
        writer, self._parquet_writer = self._parquet_writer, None
        if writer is not None:
            writer.close()
        for stream in self._streams:
            stream.close()

    @contextmanager
    def _failing(self) -> Iterator[None]:
        """An OS error while writing (a full disk) removes both files and is the user's to fix."""
        try:
            yield
        except OSError as exc:
            self.abort()
            raise SimcxlError(f"{self._csv.path}: cannot write: {exc.strerror or exc}") from None


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


def git_commit(source: Path | None = None) -> str | None:
    """The commit checked out where simcxl's source lies (``source``: a folder inside a checkout), read from
    .git without running git (a worktree's ``.git`` file, loose and packed refs); None when not a checkout
    (an installed wheel) or the files cannot be read. Local changes are not detected."""
    folder = (source or Path(__file__)).resolve()
    for parent in folder.parents if not folder.is_dir() else (folder, *folder.parents):
        dot_git = parent / ".git"
        if dot_git.exists():
            break
    else:
        return None
    try:
        if dot_git.is_file():  # a worktree or submodule: "gitdir: PATH"
            text = dot_git.read_text().strip()
            if not text.startswith("gitdir:"):
                return None
            git_dir = (parent / text[len("gitdir:"):].strip()).resolve()
        else:
            git_dir = dot_git
        common = git_dir / "commondir"
        common_dir = (git_dir / common.read_text().strip()).resolve() if common.is_file() else git_dir
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head if _is_sha(head) else None
        ref = head[len("ref:"):].strip()
        for base in (git_dir, common_dir):
            loose = base / ref
            if loose.is_file():
                sha = loose.read_text().strip()
                return sha if _is_sha(sha) else None
        packed = common_dir / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref and _is_sha(parts[0]):
                    return parts[0]
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


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


def write_results(out_dir: Path, summarize: Callable[[], dict], requests: TableWriter, resolved: dict,
                  wall_s: float, timeseries_csv: str, instances_csv: str | None = None) -> None:
    """summary.json (last), requests.csv and .parquet, timeseries.csv, instances.csv, config.resolved.yaml, run.json (the
    only file with wall-clock data). The rest of the request table is written while the others are, and
    ``summarize()`` runs."""
    import simpy

    written = requests.write(out_dir)
    write_atomic(out_dir / "timeseries.csv", timeseries_csv)
    if instances_csv is not None:
        write_atomic(out_dir / "instances.csv", instances_csv)
    write_atomic(out_dir / "config.resolved.yaml", yaml.safe_dump(resolved, sort_keys=False))
    summary = summarize()
    written()  # raises what the writing raised
    provenance = {"simcxl": __version__}
    commit = git_commit()
    if commit is not None:
        provenance["git_commit"] = commit
    write_atomic(out_dir / "run.json", dump_json({
        "wall_s": wall_s,
        "events_per_wall_s": summary["sim"]["events"] / wall_s if wall_s > 0 else None,
        **provenance, "interpreter": sys.executable,
        "python": platform.python_version(), "python_build": python_build(),
        "simpy": simpy.__version__,
        "numpy": np.__version__, "pandas": pd.__version__, "platform": platform.platform(),
    }))
    write_atomic(out_dir / "summary.json", dump_json(summary))
