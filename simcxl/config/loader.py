"""Loading a scenario: YAML files with ``include:``, command-line ``--set`` overrides, validation.

A scenario file may list profiles to include (paths relative to the including file); they are merged
in order, then the file's own keys, then ``--set key.path=value`` overrides. Mappings merge key by key,
except that one naming a different ``type`` or ``dist`` replaces the old mapping whole. We remember which file set
each key, so that an error names the file the user must edit, not just the key.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from simcxl.config.applicability import models_in, unread_keys
from simcxl.config.schema import Scenario
from simcxl.errors import ConfigError, describe_file, read_text_checked

KeyPath = tuple[str, ...]


MAX_YAML_BYTES = 4 * 1024 * 1024
"""A scenario or profile is a few kB; anything this large is not one (a trace goes in its own CSV/JSONL file)."""

MAX_YAML_DEPTH = 64
"""The deepest nesting of mappings and lists a scenario may have (the schema itself needs fewer than 10)."""
MAX_YAML_NODES = 200_000
"""The most values (scalars, mappings, lists) one YAML document may hold."""


class _Strict:
    """Rejects duplicate keys, which PyYAML would otherwise silently overwrite."""

    def construct_mapping(self, node, deep=False):  # noqa: D102 - PyYAML hook
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _StrictPyLoader(_Strict, yaml.SafeLoader):
    """The pure-Python loader (kept for comparison, and where libyaml is not installed)."""


if getattr(yaml, "__with_libyaml__", False):
    class _StrictLoader(_Strict, yaml.CSafeLoader):
        """The same loader over libyaml's C parser: the same results, tens of times faster."""

    _EventLoader = yaml.CSafeLoader
else:  # pragma: no cover - libyaml is a dependency of every PyYAML wheel
    _StrictLoader = _StrictPyLoader  # type: ignore[misc]
    _EventLoader = yaml.SafeLoader


class YAMLTooLarge(yaml.YAMLError):
    """A document nested too deep or holding too many values."""


def _check_shape(text: str) -> None:
    """Refuse nesting deeper than MAX_YAML_DEPTH or more than MAX_YAML_NODES values before building anything
    (PyYAML builds nested values recursively: 100,000 ``[`` would exhaust the stack)."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_EventLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise YAMLTooLarge(f"nested more than {MAX_YAML_DEPTH} levels deep (mappings and lists inside "
                                     f"each other), at line {event.start_mark.line + 1}; a scenario needs fewer "
                                     "than 10")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_YAML_NODES:
                raise YAMLTooLarge(f"more than {MAX_YAML_NODES:,} values (at line {event.start_mark.line + 1}); "
                                     "a scenario has a few hundred")


def parse_yaml(text: str, loader: type = None) -> Any:
    """One YAML document, bounded in depth and size; yaml.YAMLError on any problem."""
    _check_shape(text)
    return yaml.load(text, Loader=loader or _StrictLoader)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML mapping, turning every failure into a ConfigError naming the file."""
    text = read_text_checked(Path(path), max_bytes=MAX_YAML_BYTES)
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if "nesting depth" in problem:  # libyaml's own bound (1,000 levels) came before ours
            problem += f" (a scenario may nest mappings and lists at most {MAX_YAML_DEPTH} levels deep)"
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from None
    except RecursionError:  # a last guard: _check_shape should have refused it
        raise ConfigError(f"{path}: invalid YAML: nested too deep") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def _merge(base: dict, update: dict, provenance: dict[KeyPath, str], sources: dict[KeyPath, str],
           prefix: KeyPath = ()) -> None:
    """Deep-merge ``update`` into ``base`` in place; ``sources`` says which file set each key of ``update``."""
    for key, value in update.items():
        path = prefix + (str(key),)
        if isinstance(value, dict) and isinstance(base.get(key), dict) and not _changes_kind(base[key], value):
            provenance.setdefault(path, sources[path])
            _merge(base[key], value, provenance, sources, path)
        else:
            base[key] = copy.deepcopy(value)
            for stale in [p for p in provenance if p[: len(path)] == path]:
                del provenance[stale]
            provenance.update((p, src) for p, src in sources.items() if p[: len(path)] == path)


def _changes_kind(old: dict, new: dict) -> bool:
    """A mapping that names another ``type`` or ``dist`` replaces the old one instead of merging into it, and
    so does a model read from a Hugging Face config (``hf_config``): it is a whole model."""
    if "hf_config" in new and new.get("hf_config") != old.get("hf_config"):
        return True
    return any(tag in new and tag in old and new[tag] != old[tag] for tag in ("type", "dist"))


def _all_from(value: dict, source: str, prefix: KeyPath = ()) -> dict[KeyPath, str]:
    """Every key path in ``value``, attributed to ``source``."""
    sources: dict[KeyPath, str] = {}
    for key, child in value.items():
        path = prefix + (str(key),)
        sources[path] = source
        if isinstance(child, dict):
            sources.update(_all_from(child, source, path))
    return sources


def _load_with_includes(path: Path, stack: tuple[Path, ...]) -> tuple[dict, dict[KeyPath, str]]:
    """A file merged over its includes, and which file set each key."""
    problem = describe_file(path)
    if problem is not None:
        raise (ConfigError(f"{stack[-1]}: include: {problem}: {path}") if stack
               else ConfigError(f"{path}: {problem} (expected a YAML file)"))
    if path.resolve() in {p.resolve() for p in stack}:
        chain = " -> ".join(str(p) for p in stack + (path,))
        raise ConfigError(f"{path}: include cycle: {chain}")
    data = read_yaml(path)
    includes = data.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(f"{path}: include: expected a file path or a list of file paths")
    merged: dict[str, Any] = {}
    provenance: dict[KeyPath, str] = {}
    for include in includes:
        target = path.parent / include
        included, sources = _load_with_includes(target, stack + (path,))
        _merge(merged, included, provenance, sources)
    _merge(merged, data, provenance, _all_from(data, str(path)))
    return merged, provenance


def parse_override(text: str) -> tuple[KeyPath, Any]:
    """``workload.rate=8`` -> (('workload', 'rate'), 8); the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise ConfigError(f"--set {text}: expected KEY.PATH=VALUE, e.g. --set workload.rate=8")
    try:
        parsed = parse_yaml(value) if value.strip() else ""
    except YAMLTooLarge as exc:
        raise ConfigError(f"--set {key.strip()}: {exc}") from None
    except yaml.YAMLError as exc:
        if "nesting depth" in str(getattr(exc, "problem", "")):
            raise ConfigError(f"--set {key.strip()}: nested more than {MAX_YAML_DEPTH} levels deep") from None
        parsed = value
    return tuple(key.strip().split(".")), parsed


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario plus what is needed to explain it: the merged YAML and who set each key."""

    scenario: Scenario
    resolved: dict[str, Any]
    path: Path
    provenance: dict[KeyPath, str]
    warnings: tuple[str, ...] = ()  # keys the scenario's choices do not read, set before the choice (ignored)

    def source_of(self, key_path: KeyPath) -> str:
        """The file (or --set) that set ``key_path``, or its nearest ancestor, or the scenario file."""
        return _source_of(self.provenance, self.path, key_path)

    def resolve_path(self, key_path: KeyPath, written: str) -> Path:
        """The file path set at ``key_path``: relative to the file that set it (or to the working
        directory for a --set override)."""
        path = Path(written)
        source = self.source_of(key_path)
        if path.is_absolute() or source.startswith("--set"):
            return path
        return Path(source).parent / path

    def error(self, key_path: str, message: str) -> ConfigError:
        """A ConfigError about a semantic problem (one no schema can see), naming file and key."""
        return ConfigError(f"{self.source_of(tuple(key_path.split('.')))}: {key_path}: {message}")


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedScenario:
    """Read, merge and validate a scenario (a path, or the name of a bundled one: ``rdma``); raise ConfigError
    with file and key path on any problem."""
    from simcxl.config.bundled import find_config

    path = find_config(path)
    merged, provenance = _load_with_includes(path, ())
    for text in overrides:
        key_path, value = parse_override(text)
        patch: dict[str, Any] = value
        for key in reversed(key_path):
            patch = {key: patch}
        _merge(merged, patch, provenance, _all_from(patch, f"--set {text}"))
    _import_hf_model(merged, provenance, path)
    warnings = _unread_keys(merged, provenance, path)
    try:
        scenario = Scenario.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, merged, provenance, path)) from None
    return LoadedScenario(scenario, merged, path, provenance, tuple(warnings))


def _source_of(provenance: dict[KeyPath, str], path: Path, key_path: KeyPath) -> str:
    for end in range(len(key_path), 0, -1):
        if key_path[:end] in provenance:
            return provenance[key_path[:end]]
    return str(path)


def _unread_keys(merged: dict, provenance: dict[KeyPath, str], path: Path) -> list[str]:
    """Keys that the scenario's own choices (serving.mode, kv_manager.type, workload.type, a length's dist) do
    not read (``simcxl.config.applicability``), decided by who set them. Where the key was set as late as the
    choice or later (by the same file, or the same --set), it is an error: the knob would silently do nothing.
    Where it comes from a file the scenario builds on and the choice was made later (``--set
    serving.mode=aggregated`` over a disaggregated scenario, a shared profile under another manager), a
    warning line each."""
    warnings = []
    for unread in unread_keys(merged):
        key, chooser = ".".join(unread.key), ".".join(unread.chooser)
        message = (f"{_source_of(provenance, path, unread.key)}: {key}: not read in {chooser}: {unread.chosen}: "
                   f"{unread.why}")
        if _rank(provenance, path, unread.key) >= _rank(provenance, path, unread.chooser):
            raise ConfigError(f"{message}; remove it or change {chooser}")
        warnings.append(f"{message}; ignored ({chooser} was chosen after it)")
    return warnings


def _rank(provenance: dict[KeyPath, str], path: Path, key_path: KeyPath) -> int:
    """How late a key (or the latest key inside a section) was set: -1 never (a default), 0 by an included
    file, 1 by the scenario file, 2 by --set."""
    sources = [source for p, source in provenance.items() if p[:len(key_path)] == key_path]
    return max((2 if source.startswith("--set") else 1 if source == str(path) else 0 for source in sources),
               default=-1)


def _import_hf_model(merged: dict, provenance: dict[KeyPath, str], path: Path) -> None:
    """``model: {hf_config: PATH, ...}``: the model section read from a Hugging Face config.json, the keys
    written beside ``hf_config`` overriding what it implies. The merged scenario then holds the imported
    fields, so ``config.resolved.yaml`` runs without the JSON file."""
    model = merged.get("model")
    if not isinstance(model, dict) or "hf_config" not in model:
        return
    from simcxl.config.hf_import import model_from_hf, read_hf_config

    written = model.pop("hf_config")
    source = provenance.pop(("model", "hf_config"), str(path))
    if not isinstance(written, str):
        raise ConfigError(f"{source}: model.hf_config: expected a path to a config.json, got {written!r}")
    json_path = Path(written)
    if not json_path.is_absolute() and not source.startswith("--set"):
        json_path = Path(source).parent / json_path
    imported = model_from_hf(read_hf_config(json_path), json_path).fields
    written_beside = {key: value for key, value in provenance.items() if key[:1] == ("model",)}
    provenance.update(_all_from({"model": imported}, str(json_path)))
    provenance.update(written_beside)
    _merge(imported, model, {}, _all_from(model, source))
    merged["model"] = imported


def unknown_key(key_path: str) -> str | None:
    """Why ``key_path`` (``workload.rate``) names no setting of a scenario, or None if some scenario has it.
    Lets a sweep reject a misspelt key at load instead of failing each of its points."""
    sections: list[type[BaseModel]] = [Scenario]
    keys = key_path.split(".")
    for depth, key in enumerate(keys):
        fields = [section.model_fields[key] for section in sections if key in section.model_fields]
        if not fields:
            where = ".".join(keys[:depth]) or "a scenario"
            return f"unknown key {key!r} in {where} (check the spelling; see the config reference in README.md)"
        sections = [model for field in fields for model in models_in(field.annotation)]
        if not sections and depth < len(keys) - 1:
            return f"{'.'.join(keys[:depth + 1])} is a value, not a section: it has no key {keys[depth + 1]!r}"
    return None


def load_profile(path: str | Path, section: str, model: type[BaseModel]) -> BaseModel:
    """Read one section (e.g. ``fabric``) of a hardware profile, with its includes, validated."""
    path = Path(path)
    merged, provenance = _load_with_includes(path, ())
    if section not in merged:
        raise ConfigError(f"{path}: {section}: missing (expected a '{section}:' section in this profile)")
    try:
        return model.model_validate(merged[section])
    except ValidationError as exc:
        raise ConfigError(_describe(exc, merged, provenance, path, prefix=(section,))) from None


def _describe(exc: ValidationError, merged: dict, provenance: dict[KeyPath, str], path: Path,
              prefix: KeyPath = ()) -> str:
    lines = []
    for error in exc.errors():
        key_path = _key_path(prefix + tuple(error["loc"]), merged)
        source = str(path)
        for end in range(len(key_path), 0, -1):
            if key_path[:end] in provenance:
                source = provenance[key_path[:end]]
                break
        where = ".".join(key_path) or "(top level)"
        lines.append(f"{source}: {where}: {_explain(error)}")
    return "\n".join(dict.fromkeys(lines))


def _key_path(loc: tuple, merged: dict) -> KeyPath:
    """Pydantic's error location without the union tags it inserts (the 'poisson' in workload.poisson.rate)."""
    keys: list[str] = []
    node: Any = merged
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif isinstance(node, dict) and part in (node.get("type"), node.get("dist")):
            continue
        else:
            node = None
        keys.append(str(part))
    return tuple(keys)


def _short(value: Any, limit: int = 120) -> str:
    """``repr(value)``, cut to ``limit`` characters: a message names the value, it does not reprint a file."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _explain(error: dict) -> str:
    kind, message = error["type"], error["msg"]
    value = error.get("input")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see the config reference in README.md)"
    if kind == "missing":
        return "missing (required)"
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind in ("union_tag_invalid", "literal_error") or kind.endswith("_type") or kind.startswith(
            ("greater_than", "less_than")):
        return f"{message[:1].lower()}{message[1:]}, got {_short(value)}"
    return message[:1].lower() + message[1:]
