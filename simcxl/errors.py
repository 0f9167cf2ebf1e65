"""Errors a user can fix, and reading a file a user named (each way it can be wrong named as what it is).

Everything the simulator rejects because of its input (a config key, a unit, a trace row, a model that
does not fit) raises a :class:`SimcxlError`. The CLI prints its message, never a traceback, and exits 2.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class SimcxlError(Exception):
    """Bad input: the message names the file, the key path (or line) and what was expected."""


class ConfigError(SimcxlError):
    """A scenario or profile YAML is malformed, has an unknown key, a bad value or a bad unit."""


class WorkloadError(SimcxlError):
    """A trace file is missing or has a malformed row."""


def describe_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a regular file, named as what it is (``a directory, not a file``,
    ``a symlink loop``, ``permission denied``...), or None if it can."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"file not found (a broken symlink to {os.readlink(path)})"
        return "file not found"
    except PermissionError:
        return "permission denied (a folder on the path cannot be searched by this user)"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop (the link leads back to itself), not a file"
        if exc.errno == errno.ENOTDIR:
            return "file not found (a part of the path before the file name is a file, not a folder)"
        return f"cannot read: {exc.strerror or exc}"
    mode = info.st_mode
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return f"{what}, not a regular file"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "permission denied (this user may not read the file)"
    return None


def read_text_checked(path: Path, expected: str = "a YAML file", max_bytes: int = 4 * 1024 * 1024) -> str:
    """The text of a regular file of at most ``max_bytes``; a ConfigError naming the file and what it is
    (missing, a directory, a FIFO, a symlink loop, unreadable, too large, not UTF-8) otherwise."""
    problem = describe_file(path)
    if problem is not None:
        raise ConfigError(f"{path}: {problem} (expected {expected})")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
    except PermissionError:
        raise ConfigError(f"{path}: permission denied (this user may not read the file; expected "
                          f"{expected})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        size = os.stat(path).st_size
        raise ConfigError(f"{path}: too large ({size / 2**20:,.1f} MiB; at most {max_bytes / 2**20:g} MiB is read "
                          f"as {expected}): is this the right file? (a request trace goes in workload.path)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): expected {expected}") from None
