"""Which keys a scenario sets that its own choices leave unread (issue #40 item 1): one rule for all of them.

Three settings choose what else is read. ``serving.mode`` chooses between the disaggregated and aggregated
sections; ``kv_manager.type`` chooses a design, and each design's connector class declares the ``kv_manager``
keys it reads (``reads``, next to the code that reads them, in ``simcxl.kvcache``); and a tagged section of the
schema (``workload.type``, a length's ``dist``) chooses one of its variants, whose fields are what it reads.
A key set in the scenario that its chooser's value does not read would be a knob that silently does nothing;
the loader (``simcxl.config.loader``) turns each into an error or, where the key was set before the choice
was made, a warning line.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from simcxl.config.schema import KVManagerSpec, Scenario, ServingSpec
from simcxl.kvcache import CONNECTORS, connector_class

KeyPath = tuple[str, ...]

MODE_UNREAD: dict[str, tuple[tuple[KeyPath, str], ...]] = {  # serving.mode -> sections it never reads, and why
    "aggregated": (
        (("serving", "prefill"), "aggregated serving has no prefill workers (serving.aggregated applies)"),
        (("serving", "decode"), "aggregated serving has no decode workers (serving.aggregated applies)"),
        (("kv_manager",), "aggregated serving hands no KV between instances (each instance's own prefix cache is "
                          "serving.aggregated.prefix_caching)")),
    "disaggregated": (
        (("serving", "aggregated"), "disaggregated serving runs prefill and decode workers (serving.prefill, "
                                    "serving.decode apply)"),),
}

TAGS = ("type", "dist")  # the key that picks a variant of a tagged section of the schema


@dataclass(frozen=True)
class Unread:
    """``key`` is set, but ``chooser`` = ``chosen`` does not read it, for the reason ``why``."""

    key: KeyPath
    chooser: KeyPath
    chosen: str
    why: str


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config sections a field's type can hold (through Optional, unions and Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in models_in(arg)]


def unread_keys(merged: dict) -> list[Unread]:
    """Every key of the merged (not yet validated) scenario that the scenario's choices leave unread. A choice
    that is itself invalid (an unknown mode or type) decides nothing here: validation reports it."""
    mode = _value(merged, ("serving", "mode"), ServingSpec.model_fields["mode"].default)
    found = [Unread(key, ("serving", "mode"), mode, why) for key, why in MODE_UNREAD.get(mode, ())
             if _present(merged, key) and not (key == ("kv_manager",) and _tiered(merged))]
    if not any(u.key == ("kv_manager",) for u in found):
        found += _manager_keys(merged)
    return found + _variant_keys(merged, Scenario, ())


def _tiered(merged: dict) -> bool:
    """The chosen design keeps KV in a tier outside HBM, which an aggregated instance asks too
    (``KVConnector.tiered``; issue #38, docs/notes/sac_aggregated.md): then aggregated serving reads kv_manager."""
    chosen = _value(merged, ("kv_manager", "type"), KVManagerSpec.model_fields["type"].default)
    return chosen in CONNECTORS and connector_class(chosen).tiered


def manager_readers(key: str) -> list[str]:
    """The ``kv_manager.type`` names whose design reads ``kv_manager.KEY``."""
    return [name for name in CONNECTORS if key in connector_class(name).reads]


def _manager_keys(merged: dict) -> list[Unread]:
    """``kv_manager`` keys that the chosen design's connector class does not declare in ``reads``."""
    section = merged.get("kv_manager")
    chosen = _value(merged, ("kv_manager", "type"), KVManagerSpec.model_fields["type"].default)
    if not isinstance(section, dict) or chosen not in CONNECTORS:
        return []
    reads = connector_class(chosen).reads
    return [Unread(("kv_manager", key), ("kv_manager", "type"), chosen,
                   f"read only by the {_names(manager_readers(key))} KV managers")
            for key, value in section.items()
            if key in KVManagerSpec.model_fields and key not in reads and value is not None]


def _variant_keys(node: dict, model: type[BaseModel], prefix: KeyPath) -> list[Unread]:
    """Keys of a tagged section that another variant reads but the chosen one does not, at any depth."""
    found: list[Unread] = []
    for name, field in model.model_fields.items():
        value = node.get(name)
        variants = models_in(field.annotation)
        if not isinstance(value, dict) or not variants:
            continue
        path = prefix + (name,)
        tag = next((t for t in TAGS if len(variants) > 1 and all(t in v.model_fields for v in variants)), None)
        if tag is None:
            found += _variant_keys(value, variants[0], path) if len(variants) == 1 else []
            continue
        by_value = {choice: v for v in variants for choice in typing.get_args(v.model_fields[tag].annotation)}
        chosen = by_value.get(value[tag]) if isinstance(value.get(tag), str) else None
        if chosen is None:
            continue
        for key, child in value.items():
            readers = [choice for choice, v in by_value.items() if key in v.model_fields]
            if key not in chosen.model_fields and readers and child is not None:
                found.append(Unread(path + (key,), path + (tag,), value[tag],
                                    f"read only by {'.'.join(path)}.{tag}: {_names(readers)}"))
        found += _variant_keys(value, chosen, path)
    return found


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _value(merged: dict, key_path: KeyPath, default: Any) -> Any:
    node: Any = merged
    for key in key_path:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def _present(merged: dict, key_path: KeyPath) -> bool:
    return _value(merged, key_path, None) is not None
