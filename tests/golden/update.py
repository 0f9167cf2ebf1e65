"""Regenerate the golden summaries of every bundled scenario: ``.venv/bin/python -m tests.golden.update``."""

from __future__ import annotations

from simcxl.metrics.results import dump_json, write_atomic

from .scenarios import GOLDEN, SCENARIOS, summary_of

if __name__ == "__main__":
    for name in SCENARIOS:
        (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(GOLDEN / f"{name}.json", dump_json(summary_of(name)))
        print(f"wrote {GOLDEN / name}.json")
