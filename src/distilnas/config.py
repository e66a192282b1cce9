"""Typed dataclass configs from YAML plus ``key=value`` overrides.

Unknown keys, wrong types and values out of range are :class:`ConfigError` with a one-line message naming
the key and the fix. A field declared with :func:`opt` carries its allowed values (bounds, choices), which
:func:`from_dict` checks for every value it is given.
A space's or algorithm's own options live in a free-form section (``space:``, ``algorithm:``) whose
``name`` picks the registered class; the rest is checked against that class's ``Config`` dataclass.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = ["ConfigError", "opt", "MAX_SEED", "check_value", "from_dict", "to_dict", "load_yaml", "apply_overrides",
           "dump_yaml"]

T = TypeVar("T")
_EXP_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(ValueError):
    """A config key that does not exist, a value of the wrong type or out of range, or an unreadable file."""


MAX_SEED = 2**32 - 1  # seeds are integers in [0, MAX_SEED] (larger ones overflow torch's and numpy's seeding)
_BOUNDS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}


def opt(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, ge: float | None = None,
        gt: float | None = None, le: float | None = None, lt: float | None = None,
        choices: tuple[Any, ...] | None = None) -> Any:
    """A dataclass field whose values :func:`from_dict` checks: ``>= ge``, ``> gt``, ``<= le``, ``< lt``, one
    of ``choices``; each element of a list (each value of a mapping); ``None`` passes (Optional fields)."""
    rules = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt), ("choices", choices)) if v is not None}
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"check": rules})


def _allowed(rules: dict[str, Any], value: Any) -> str:
    """What ``rules`` allow, e.g. "a positive integer (>= 1)", "a number in [0, 1)", "one of sgd, adam"."""
    if "choices" in rules:
        return "one of " + ", ".join(str(c) for c in rules["choices"])
    kind = "integer" if isinstance(value, int) else "number"
    lo = f"[{rules['ge']}" if "ge" in rules else f"({rules['gt']}" if "gt" in rules else ""
    hi = f"{rules['le']}]" if "le" in rules else f"{rules['lt']})" if "lt" in rules else ""
    if lo and hi:
        return f"{'an' if kind == 'integer' else 'a'} {kind} in {lo}, {hi}"
    if hi:
        return f"a {kind} {'<=' if 'le' in rules else '<'} {hi[:-1]}"
    bound = f">= {rules['ge']}" if "ge" in rules else f"> {rules['gt']}"
    sign = ("positive" if rules.get("gt") == 0 or (rules.get("ge") == 1 and kind == "integer")
            else "non-negative" if rules.get("ge") == 0 else "")
    return f"a {sign} {kind} ({bound})" if sign else f"{'an' if kind == 'integer' else 'a'} {kind} {bound}"


def check_value(value: Any, rules: dict[str, Any] | None, where: str) -> None:
    """One-line :class:`ConfigError` naming ``where`` when ``value`` breaks ``rules`` (see :func:`opt`)."""
    if not rules or value is None:
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_value(v, rules, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            check_value(v, rules, f"{where}.{k}")
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}={value!r}: must be a finite number")
    if "choices" in rules:
        ok = value in rules["choices"]
    else:
        ok = all(op(value, rules[k]) for k, op in _BOUNDS.items() if k in rules)
    if not ok:
        raise ConfigError(f"{where}={value!r}: must be {_allowed(rules, value)}")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # Optional[float] -> "float | None"
        return " | ".join("None" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} options, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r} (write [a, b] in YAML or on the command line)")
        (arg,) = typing.get_args(tp)[:1] or (Any,)
        return [_coerce(v, arg, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _EXP_FLOAT.fullmatch(value.strip()):  # YAML 1.1 reads 1e-3 as text
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys, wrong types and values out of range."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        full = f"{where}.{key}" if where else str(key)
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key {full!r}; known keys{' of ' + where if where else ''}: {known}")
        kwargs[key] = _coerce(value, hints[key], full)
        check_value(kwargs[key], fields[key].metadata.get("check"), full)
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """A plain-data copy of a (nested) dataclass."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found; pass a YAML file such as configs/bench/spos_nb201_fmnist16.yaml")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {p} is not valid YAML{at}: {getattr(e, 'problem', e)}") from None
    if data is None:  # an empty file (or only comments)
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of keys, not {type(data).__name__}")
    return data


def dump_yaml(data: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML: 3, 0.1, true, [1, 2], text)."""
    out = _deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not key=value (e.g. train.epochs=5)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deepcopy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deepcopy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deepcopy(v) for v in d]
    return d
