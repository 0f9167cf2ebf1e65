"""Shared fixtures: scenarios built from the bundled configs with small, hand-checkable workloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from simcxl.config.loader import LoadedScenario, load_scenario

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def scenario(name: str = "rdma.yaml", *overrides: str) -> LoadedScenario:
    """A bundled scenario with ``--set``-style overrides applied."""
    return load_scenario(CONFIGS / name, list(overrides))


@pytest.fixture
def write_yaml(tmp_path: Path):
    """Write a YAML text under tmp_path and return its path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write
