"""The bundled scenarios the regression test guards, and how their goldens are made.

Regenerate every golden after an intended change: ``.venv/bin/python -m tests.golden.update``
"""

from __future__ import annotations

import json
from pathlib import Path

from simcxl.config.loader import load_scenario
from simcxl.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent
SCENARIOS = sorted(str(p.relative_to(ROOT / "configs").with_suffix(""))
                   for pattern in ("*.yaml", "engine/*.yaml") for p in (ROOT / "configs").glob(pattern))


def summary_of(name: str, overrides: tuple[str, ...] = ()) -> dict:
    return simulate(load_scenario(ROOT / "configs" / f"{name}.yaml", list(overrides))).summary


def golden_of(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())
