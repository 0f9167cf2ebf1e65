"""The bundled scenarios and profiles: ``configs/`` of a source checkout, or the same files shipped as package
data in an installed wheel (``simcxl/bundled/configs``), so that ``simcxl run rdma`` works either way."""

from __future__ import annotations

import os
from pathlib import Path

from simcxl.errors import ConfigError

PACKAGE = Path(__file__).resolve().parents[1]  # simcxl/


def configs_root() -> Path:
    """The folder holding the bundled scenarios (``rdma.yaml``...) and ``hardware/``, ``models/``, ``engine/``."""
    installed = PACKAGE / "bundled" / "configs"
    return installed if installed.is_dir() else PACKAGE.parent / "configs"


def bundled_scenarios() -> list[str]:
    """Names of the scenarios ``simcxl run NAME`` finds: configs/*.yaml and configs/engine/*.yaml."""
    root = configs_root()
    return sorted(p.stem for p in root.glob("*.yaml")) + sorted(f"engine/{p.stem}" for p in root.glob("engine/*.yaml"))


def find_config(value: str | Path, folder: str = "") -> Path:
    """``value`` if it is a file (or names one by its suffix); else the bundled ``[folder/]value.yaml``, looked
    up in ./configs first, then in the bundled configs."""
    path = Path(value)
    if os.path.lexists(path) or path.suffix in (".yaml", ".yml"):  # lexists: a broken link or a loop is named
        return path                                                 # by the reader, not taken for a name
    for root in (Path("configs"), configs_root()):
        candidate = root / folder / f"{value}.yaml"
        if candidate.is_file():
            return candidate
    known = bundled_scenarios() if not folder else sorted(p.stem for p in (configs_root() / folder).glob("*.yaml"))
    raise ConfigError(f"{value}: no such file, and no bundled {folder.rstrip('/') or 'scenario'} of that name "
                      f"(bundled: {', '.join(known)})")
