"""Where sweep points run: local processes (the default) or a Ray cluster. One small interface.

An executor takes a function and its argument tuples and yields results as they complete; the sweep
logic never knows which one runs it.
"""

from __future__ import annotations

import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable, Iterator, Protocol


class Executor(Protocol):
    def run(self, fn: Callable[..., Any], tasks: Iterable[tuple]) -> Iterator[Any]:
        """Yield ``fn(*task)`` for every task, in completion order."""


def _ignore_interrupts() -> None:
    """Workers leave Ctrl-C to the parent, which stops handing out points and lets running ones finish."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalExecutor:
    """``jobs`` worker processes on this machine; with one job, runs in this process."""

    def __init__(self, jobs: int = 1):
        if jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        self.jobs = jobs

    def run(self, fn, tasks):
        tasks = list(tasks)
        if self.jobs == 1:
            for task in tasks:
                yield fn(*task)
            return
        with ProcessPoolExecutor(max_workers=self.jobs, initializer=_ignore_interrupts) as pool:
            pending = {pool.submit(fn, *task) for task in tasks}
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            finally:
                for future in pending:
                    future.cancel()


class RayExecutor:
    """Points as Ray tasks: on the cluster at ``address``, or on a local Ray instance when none is given."""

    def __init__(self, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise RuntimeError("--executor ray needs Ray: pip install 'simcxl[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)

    def run(self, fn, tasks):
        remote = self.ray.remote(fn)
        pending = [remote.remote(*task) for task in tasks]
        try:
            while pending:
                done, pending = self.ray.wait(pending, num_returns=1)
                yield self.ray.get(done[0])
        finally:
            for ref in pending:
                self.ray.cancel(ref)


def make_executor(name: str, jobs: int = 1, address: str | None = None) -> Executor:
    if name == "local":
        return LocalExecutor(jobs)
    if name == "ray":
        return RayExecutor(address)
    raise ValueError(f"unknown executor {name!r}; expected local or ray")
