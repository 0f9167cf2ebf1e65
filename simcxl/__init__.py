"""simcxl: a discrete-event simulator of disaggregated LLM serving over RDMA and CXL fabrics.

The Python API (docs/api.md): ``simcxl.run``, ``simcxl.compare``, ``simcxl.sweep``, ``simcxl.goodput``,
``simcxl.plan``, ``simcxl.Scenario``; defined in :mod:`simcxl.api`.
"""

import importlib

from simcxl.version import __version__

# The subpackage simcxl.sweep is imported now and its name taken off this package, so that `simcxl.sweep` is the
# function (below); `from simcxl.sweep.runner import ...` still works, as it finds the subpackage in sys.modules.
importlib.import_module("simcxl.sweep")
del globals()["sweep"]

API = ("Scenario", "Result", "SweepResult", "GoodputResult", "PlanResult", "scenario", "run", "compare", "sweep",
       "goodput", "plan")
__all__ = ["__version__", *API]


def __getattr__(name: str):
    """The API, imported on first use (PEP 562): importing any module of the package imports this one, and
    ``simcxl --help`` should not wait for pandas."""
    if name not in API:
        raise AttributeError(f"module 'simcxl' has no attribute {name!r}")
    api = importlib.import_module("simcxl.api")
    globals().update({public: getattr(api, public) for public in API})
    return globals()[name]
