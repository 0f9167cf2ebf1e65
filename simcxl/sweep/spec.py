"""A sweep spec: a base scenario and the overrides to run it with.

```yaml
base: ../configs/rdma.yaml          # relative to this file, or absolute
grid:                               # cartesian product
  workload.rate: [1, 2, 4, 8]
  kv_manager.type: [rdma, rdma_pull]
points:                             # and/or an explicit list of override sets (each crossed with the grid)
  - {serving.router: round_robin}
  - {serving.router: least_loaded}
```
Every point has a stable id (its position and a hash of its overrides), so a rerun finds what finished.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, ValidationError
from pydantic import BaseModel

from simcxl.config.loader import read_yaml, unknown_key
from simcxl.errors import ConfigError, describe_file


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base: str
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    points: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class Point:
    id: str
    overrides: dict[str, Any]

    def set_args(self) -> list[str]:
        """The overrides as ``--set KEY=VALUE`` strings (values written as YAML flow)."""
        return [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
                for key, value in self.overrides.items()]


@dataclass(frozen=True)
class Sweep:
    path: Path
    base: Path
    points: list[Point]

    @property
    def keys(self) -> list[str]:
        return list(dict.fromkeys(key for point in self.points for key in point.overrides))


def invalid(path: Path, exc: ValidationError, section: str = "") -> ConfigError:
    """The first problem pydantic found in the file at ``path``, as a user error naming its key path."""
    first = exc.errors()[0]
    return ConfigError(f"{path}: {section}{'.'.join(str(p) for p in first['loc']) or '(top level)'}: {first['msg']}")


def read_spec(path: Path, model: type[BaseModel]) -> BaseModel:
    """The YAML file at ``path`` validated as ``model``."""
    try:
        return model.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise invalid(path, exc) from None


def load_sweep(path: str | Path) -> Sweep:
    path = Path(path)
    return sweep_of(path, read_spec(path, SweepSpec))


def sweep_of(path: Path, spec: SweepSpec) -> Sweep:
    """The points of a validated spec read from ``path`` (whose folder relative paths start from)."""
    for key, values in spec.grid.items():
        if not values:
            raise ConfigError(f"{path}: grid.{key}: expected a non-empty list of values")
    base = Path(spec.base) if Path(spec.base).is_absolute() else path.parent / spec.base
    problem = describe_file(base)  # a directory, a FIFO, unreadable... named as what it is
    if problem is not None:
        raise ConfigError(f"{path}: base: {problem}: {base} (expected a scenario YAML)")
    for where, key in [(f"grid.{key}", key) for key in spec.grid] + [
            (f"points[{i}].{key}", key) for i, extra in enumerate(spec.points) for key in extra]:
        problem = unknown_key(key)
        if problem:
            raise ConfigError(f"{path}: {where}: {problem}")
    keys = list(spec.grid)
    combos = [dict(zip(keys, values)) for values in itertools.product(*spec.grid.values())] or [{}]
    sets = [{**extra, **combo} for extra in (spec.points or [{}]) for combo in combos]
    points = []
    for i, overrides in enumerate(sets):
        digest = hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:8]
        points.append(Point(f"{i:04d}-{digest}", overrides))
    return Sweep(path, base, points)
