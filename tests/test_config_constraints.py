"""Values that make no sense are one-line ConfigErrors when the config is resolved, for every config class."""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from typing import Any, Iterator

import pytest
import yaml

from distilnas.algorithms import ALGORITHMS
from distilnas.cli import main
from distilnas.config import ConfigError, check_value, from_dict
from distilnas.evaluate.groundtruth import BenchConfig
from distilnas.commands.proxy import ProxyRunConfig
from distilnas.spaces import SPACES
from distilnas.spaces.mobilenet import PRESETS, MobileNetConfig
from distilnas.spaces.resnet import ResNetConfig
from distilnas.train.loop import SearchConfig, resolve_config
from distilnas.train.random_search import RandomSearchConfig
from distilnas.train.retrain import RetrainConfig

from conftest import SEARCH_DICT, one_error_line

# (class, prefix of its keys): the top-level configs, every space's and every algorithm's options
ROOTS: list[tuple[type, str]] = (
    [(SearchConfig, ""), (BenchConfig, ""), (RetrainConfig, ""), (RandomSearchConfig, ""), (ProxyRunConfig, "")]
    + [(SPACES.get(n).Config, "space") for n in SPACES.list()]
    + [(ALGORITHMS.get(n).Config, "algorithm") for n in ALGORITHMS.list()])
BAD = (0, -1, 10**12, 1e12, -1e12)


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _wrap(tp: Any) -> Any:
    """How to wrap a number into a value of type ``tp`` (a function), or None when ``tp`` holds no numbers."""
    tp = _strip_optional(tp)
    if tp in (int, float):
        return lambda v: v
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list and args:
        inner = _wrap(args[0])
        return (lambda v: [inner(v)]) if inner else None
    if origin is dict and len(args) == 2 and args[1] in (int, float):
        return lambda v: {"x": v}
    return None


def numeric_fields(cls: type, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(key path, wrap) of every number, list of numbers or mapping to numbers in ``cls``, nested sections too."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from numeric_fields(tp, (*path, f.name))
        elif (wrap := _wrap(tp)) is not None:
            yield (*path, f.name), wrap


def all_fields(cls: type) -> Iterator[tuple[type, dataclasses.Field]]:
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            yield from all_fields(tp)
        yield cls, f


def nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: Any = value
    for key in reversed(path):
        out = {key: out}
    return out


CASES = [(cls, prefix, path, wrap) for cls, prefix in ROOTS for path, wrap in numeric_fields(cls)]


def test_the_walk_finds_the_sections():
    keys = {".".join(filter(None, (p, *path))) for _, p, path, _ in CASES}
    for key in ("train.batch_size", "score.val_size", "select.num_archs", "data.val_size", "recipe.lr",
                "search_recipe.epochs", "seeds", "space.C", "space.widths", "space.depth_choices",
                "algorithm.temperature", "algorithm.board_size", "algorithm.depths", "algorithm.prior"):
        assert key in keys, key


def _accepted_or_one_line(build, key: str) -> None:
    try:
        build()
    except ConfigError as e:
        msg = str(e)
        assert "\n" not in msg and key in msg, msg


@pytest.mark.parametrize("cls, prefix, path, wrap", CASES,
                         ids=[f"{c.__qualname__}:{'.'.join(filter(None, (p, *k)))}" for c, p, k, _ in CASES])
@pytest.mark.parametrize("value", BAD)
def test_any_number_is_accepted_or_a_one_line_error(cls, prefix, path, wrap, value):
    key = ".".join(filter(None, (prefix, *path)))
    _accepted_or_one_line(lambda: from_dict(cls, nested(path, wrap(value)), prefix), key)
    if prefix:  # the same option inside a search config
        name = next(n for n in (SPACES if prefix == "space" else ALGORITHMS).list()
                    if (SPACES if prefix == "space" else ALGORITHMS).get(n).Config is cls)
        data = {prefix: {"name": name, **nested(path, wrap(value))}}
        _accepted_or_one_line(lambda: resolve_config(data), key)


@pytest.mark.parametrize("cls", sorted({c for r, _ in ROOTS for c, _ in all_fields(r)}, key=lambda c: c.__qualname__),
                         ids=lambda c: c.__qualname__)
def test_defaults_satisfy_the_constraints(cls):
    default = cls()
    for f in dataclasses.fields(cls):
        check_value(getattr(default, f.name), f.metadata.get("check"), f.name)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_mobilenet_presets_satisfy_the_constraints(preset):
    cfg = MobileNetConfig(preset=preset)
    for f in dataclasses.fields(cfg):
        check_value(getattr(cfg, f.name), f.metadata.get("check"), f.name)
    assert ResNetConfig.fmnist16().num_classes == 10


# -- the reported cases -------------------------------------------------------------------------------
@pytest.mark.parametrize("section, key, value, message", [
    ("train", "epochs", 0, "train.epochs=0: must be a positive integer (>= 1)"),
    ("train", "epochs", -1, "train.epochs=-1: must be a positive integer (>= 1)"),
    ("train", "batch_size", 0, "train.batch_size=0: must be a positive integer (>= 1)"),
    ("train", "batch_size", -5, "train.batch_size=-5: must be a positive integer (>= 1)"),
    ("train", "steps_per_epoch", -5, "train.steps_per_epoch=-5: must be a non-negative integer (>= 0)"),
    ("score", "val_size", -1, "score.val_size=-1: must be a non-negative integer (>= 0)"),
    ("select", "num_archs", 0, "select.num_archs=0: must be a positive integer (>= 1)"),
    ("space", "C", 0, "space.C=0: must be a positive integer (>= 1)"),
    ("train", "threads", -2, "train.threads=-2: must be a non-negative integer (>= 0)"),
    ("train", "lr", 0.0, "train.lr=0.0: must be a positive number (> 0)"),
    ("train", "momentum", 1.0, "train.momentum=1.0: must be a number in [0, 1)"),
    ("train", "lr", float("nan"), "train.lr=nan: must be a finite number"),
    ("train", "optimizer", "sgdm", "train.optimizer='sgdm': must be one of sgd, adam, rmsprop"),
    ("space", "ops", ["none", "conv_5x5"], "space.ops[1]='conv_5x5': must be one of none, skip_connect"),
    ("space", "ops", [], "space.ops=[]: list one or more distinct ops"),
    ("data", "val_size", -1, "data.val_size=-1: must be a non-negative integer (>= 0)"),
])
def test_reported_values_are_rejected_when_resolved(section, key, value, message):
    data = copy.deepcopy(SEARCH_DICT)
    data[section][key] = value
    with pytest.raises(ConfigError) as e:
        resolve_config(data)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize("algorithm, message", [
    ({"name": "sandwich", "temperature": 0}, "algorithm.temperature=0.0: must be a positive number (> 0)"),
    ({"name": "rdnas", "schedule": "exp"}, "algorithm.schedule='exp': must be one of constant, linear, sin, step"),
    ({"name": "cream", "flops_min": 5, "flops_max": 2}, "algorithm.flops_min=5 exceeds algorithm.flops_max=2"),
    ({"name": "dna", "depths": [0, 2]}, "algorithm.depths[0]=0: must be a positive integer (>= 1)"),
])
def test_algorithm_options_are_checked_when_resolved(algorithm, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        resolve_config({**copy.deepcopy(SEARCH_DICT), "algorithm": algorithm})


def test_space_lists_are_checked_when_resolved():
    with pytest.raises(ConfigError, match=r"space.depth_choices\[0\]\[0\]=0"):
        resolve_config({"space": {"name": "resnet", "depth_choices": [[0]] * 4}})
    with pytest.raises(ConfigError, match="space.depth_choices needs one list per stage of space.base_widths"):
        resolve_config({"space": {"name": "resnet", "base_widths": [8]}})
    with pytest.raises(ConfigError, match=r"space.strides\[0\]=3: must be one of 1, 2"):
        resolve_config({"space": {"name": "mobilenet", "strides": [3, 1, 2, 2, 1, 2]}})


@pytest.mark.parametrize("cls, data, message", [
    (BenchConfig, {"seeds": [0, -1]}, "seeds[1]=-1"),
    (BenchConfig, {"seeds": []}, "seeds=[]"),
    (BenchConfig, {"eval_split": "dev"}, "eval_split='dev': must be one of test, val, train"),
    (RetrainConfig, {"recipe": {"epochs": 0}}, "recipe.epochs=0"),
    (RetrainConfig, {"recipe": {"schedule": "cos"}}, "recipe.schedule='cos'"),
    (RetrainConfig, {"recipe": {"ema_decay": 1.5}}, "recipe.ema_decay=1.5"),
    (RandomSearchConfig, {"search_recipe": {"batch_size": 0}}, "search_recipe.batch_size=0"),
    (RandomSearchConfig, {"num_archs": 0}, "num_archs=0"),
    (ProxyRunConfig, {"threads": -1}, "threads=-1"),
    (SearchConfig, {"seed": -1}, "seed=-1: must be an integer in [0, 4294967295]"),
])
def test_other_commands_configs(cls, data, message):
    with pytest.raises(ConfigError) as e:
        from_dict(cls, data)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize("override, fragment", [
    ("train.batch_size=0", "train.batch_size=0: must be a positive integer (>= 1)"),
    ("train.epochs=0", "train.epochs=0: must be a positive integer (>= 1)"),
    ("space.C=0", "space.C=0: must be a positive integer (>= 1)"),
])
def test_cli_reports_one_line(tmp_path, capsys, override, fragment):
    cfg = tmp_path / "search.yaml"
    cfg.write_text(yaml.safe_dump(SEARCH_DICT, sort_keys=False))
    rc = main(["search", str(cfg), "--out", str(tmp_path / "run"), override])
    assert one_error_line(capsys, rc) == f"distilnas: error: {fragment}"
    assert not (tmp_path / "run").exists()  # rejected before any work
