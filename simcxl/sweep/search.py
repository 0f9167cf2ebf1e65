"""Deployment search: for a GPU budget and a model, which way of serving it gives the most goodput per GPU.

A plan spec with a ``search:`` section (``simcxl plan SPEC --search``) explores, for each GPU count in
``gpus``, each tensor-parallel degree and each scenario it starts from (``base`` and ``search.also``; a
scenario's ``serving.mode`` says whether it is aggregated or disaggregated):

- aggregated: all ``gpus / gpus_per_node`` nodes colocated;
- disaggregated: every split of those nodes into ``p`` prefill and ``d`` decode nodes (``p, d >= 1``).

```yaml
base: llama70b_fp8_h100_disagg.yaml    # a disaggregated scenario (relative to this file)
search:
  gpus: 16                             # or a list, e.g. [8, 16]: the Pareto plot is then goodput against GPUs
  tensor_parallel: [1, 2, 4]           # default: every degree dividing the node's GPUs
  also: [llama70b_fp8_h100_agg.yaml]   # more scenarios to start from (here: the aggregated one)
  min_kv_tokens: 16384                 # KV room an instance needs beyond its weights (default: the workload's
                                       # longest request)
slo: {ttft: 2s, tpot: 50ms}
attainment: 0.9
```
The search keeps the node (a server: ``cluster.gpus_per_node`` GPUs and its NICs and CXL ports, as
:mod:`simcxl.fabric.topology` builds it and :func:`simcxl.metrics.cost.bill` prices it) and splits whole
nodes, so the P:D ratio moves in steps of one node. One TP degree serves both phases (the simulator's
``cluster.tensor_parallel``). A candidate whose weights do not fit, or whose KV room after the weights is
below ``min_kv_tokens`` (:class:`simcxl.hardware.gpu.GPUCompute`'s ``kv_capacity_tokens``), is pruned
unrun; every other one gets a goodput search (:class:`simcxl.sweep.goodput.GoodputSearch`, with its
steady-state rule) and the results are ranked by goodput per GPU, then per dollar.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from simcxl.config.loader import load_scenario
from simcxl.errors import ConfigError, describe_file
from simcxl.hardware.gpu import GPUCompute
from simcxl.hardware.model import LLM
from simcxl.sweep.spec import Point
from simcxl.workload import length_bounds


class SearchSpec(BaseModel):
    """A plan spec's ``search:`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus: list[PositiveInt] = Field(min_length=1)
    tensor_parallel: list[PositiveInt] | None = Field(None, min_length=1)
    also: list[str] = Field(default_factory=list)
    min_kv_tokens: PositiveInt | None = None

    @field_validator("gpus", "tensor_parallel", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("gpus", "tensor_parallel", "also")
    @classmethod
    def _distinct(cls, value):
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"expected distinct values, got {value}")
        return value


@dataclass(frozen=True)
class Candidate:
    """One deployment: the scenario it starts from, its overrides, and what they describe."""

    base: Path
    mode: str
    gpus: int
    tensor_parallel: int
    prefill_nodes: int | None
    decode_nodes: int | None
    nodes: int
    gpus_per_node: int

    @property
    def overrides(self) -> dict[str, Any]:
        if self.mode == "aggregated":
            return {"cluster.nodes": self.nodes, "cluster.tensor_parallel": self.tensor_parallel}
        return {"cluster.prefill_nodes": self.prefill_nodes, "cluster.decode_nodes": self.decode_nodes,
                "cluster.tensor_parallel": self.tensor_parallel}

    @property
    def label(self) -> str:
        """``agg`` or ``3P:1D`` in instances (nodes x gpus_per_node / TP each), with the TP."""
        per_node = self.gpus_per_node // self.tensor_parallel
        if self.mode == "aggregated":
            return f"agg {self.nodes * per_node}x TP{self.tensor_parallel}"
        return f"{self.prefill_nodes * per_node}P:{self.decode_nodes * per_node}D TP{self.tensor_parallel}"

    def describe(self) -> dict[str, Any]:
        per_node = self.gpus_per_node // self.tensor_parallel
        return {"deployment": self.label, "mode": self.mode, "gpus": self.gpus, "tensor_parallel": self.tensor_parallel,
                "prefill_instances": None if self.prefill_nodes is None else self.prefill_nodes * per_node,
                "decode_instances": None if self.decode_nodes is None else self.decode_nodes * per_node,
                "base": self.base.name}


def bases(path: Path, base: Path, spec: SearchSpec) -> list[Path]:
    """The scenarios the search starts from: ``base`` and each of ``search.also`` (relative to the spec)."""
    found = [base]
    for i, name in enumerate(spec.also):
        other = Path(name) if Path(name).is_absolute() else path.parent / name
        problem = describe_file(other)
        if problem is not None:
            raise ConfigError(f"{path}: search.also[{i}]: {problem}: {other} (expected a scenario YAML)")
        found.append(other)
    return found


def candidates(path: Path, base: Path, spec: SearchSpec) -> list[Candidate]:
    """Every deployment the search section describes, in a stable order (bases, GPUs, TP, prefill nodes)."""
    out = []
    for where, scenario_path in zip(["base"] + [f"search.also[{i}]" for i in range(len(spec.also))],
                                    bases(path, base, spec)):
        scenario = load_scenario(scenario_path).scenario
        mode, per_node = scenario.serving.mode, scenario.cluster.gpus_per_node
        degrees = spec.tensor_parallel or [t for t in (1, 2, 4, 8, 16) if per_node % t == 0]
        for t in degrees:
            if per_node % t:
                raise ConfigError(f"{path}: search.tensor_parallel: {t} does not divide {where}'s cluster.gpus_per_node "
                                  f"({per_node}): an instance's GPUs share one node")
        for gpus in spec.gpus:
            if gpus % per_node:
                raise ConfigError(f"{path}: search.gpus: {gpus} is not a whole number of {where}'s {per_node}-GPU "
                                  f"nodes (cluster.gpus_per_node)")
            nodes = gpus // per_node
            if mode != "aggregated" and nodes < 2:
                raise ConfigError(f"{path}: search.gpus: {gpus} GPUs are one {per_node}-GPU node, but {where} is "
                                  f"disaggregated (a prefill and a decode node at least)")
            for t in degrees:
                if mode == "aggregated":
                    out.append(Candidate(scenario_path, mode, gpus, t, None, None, nodes, per_node))
                else:
                    out += [Candidate(scenario_path, mode, gpus, t, p, nodes - p, nodes, per_node)
                            for p in range(1, nodes)]
    return out


def prune(candidate: Candidate, overrides: list[str], min_kv_tokens: int | None) -> str | None:
    """Why ``candidate`` cannot serve its workload (its weights, or too little KV room after them), or None.
    The sizes are GPUCompute's: the same numbers the simulation checks before it runs."""
    scenario = load_scenario(candidate.base, overrides).scenario
    compute = GPUCompute(scenario.gpu, LLM(scenario.model), candidate.tensor_parallel)
    gb = 1e9
    if compute.kv_capacity_bytes <= 0:
        return (f"pruned: {scenario.model.name} weights ({compute.llm.weight_bytes / gb:.1f} GB) exceed the usable "
                f"HBM of TP {candidate.tensor_parallel} ({compute.kv_capacity_bytes / gb + compute.llm.weight_bytes / gb:.1f} GB)")
    need = min_kv_tokens or sum(length_bounds(scenario.workload).values())
    if compute.kv_capacity_tokens < need:
        return (f"pruned: KV room {compute.kv_capacity_tokens:,} tokens per instance after the weights, below the "
                f"{need:,} needed ({'search.min_kv_tokens' if min_kv_tokens else 'the workload longest request'})")
    return None


def points_of(candidate: Candidate, extra: list[Point]) -> list[tuple[str, dict[str, Any]]]:
    """The candidate crossed with the spec's grid/points: (point id, overrides) pairs. The id names the
    deployment so that a rerun finds its folder."""
    import hashlib
    import json

    out = []
    for point in extra:
        overrides = {**point.overrides, **candidate.overrides}
        key = json.dumps({"base": candidate.base.name, **overrides}, sort_keys=True, default=str)
        label = candidate.label.replace(":", "").replace(" ", "-")
        out.append((f"{label}-{hashlib.sha1(key.encode()).hexdigest()[:6]}", overrides))
    return out
