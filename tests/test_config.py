"""Tests of distilnas.config (typed configs, overrides, YAML) and the search config resolution."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pytest

from distilnas.config import ConfigError, apply_overrides, dump_yaml, from_dict, load_yaml, to_dict
from distilnas.registry import RegistryError
from distilnas.spaces import NB201Config
from distilnas.train.loop import SearchConfig, TrainConfig, resolve_config


@dataclass
class Inner:
    a: int = 1
    b: float = 0.5


@dataclass
class Outer:
    n: int = 0
    x: float = 1.0
    flag: bool = False
    name: str = "s"
    items: list[int] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)
    maybe: int | None = None
    opt: Optional[float] = None


# -- from_dict --------------------------------------------------------------------------------------
def test_from_dict_builds_and_coerces():
    o = from_dict(Outer, {"n": 3.0, "x": 2, "flag": True, "name": "abc", "items": [1, 2],
                          "inner": {"b": 1}, "maybe": 4, "opt": 3})
    assert o == Outer(n=3, x=2.0, flag=True, name="abc", items=[1, 2], inner=Inner(a=1, b=1.0), maybe=4, opt=3.0)
    assert type(o.n) is int and type(o.x) is float and type(o.inner.b) is float and type(o.opt) is float
    assert from_dict(Outer, {}) == Outer()
    assert from_dict(Outer, None) == Outer()
    assert from_dict(Outer, {"maybe": None, "opt": None}) == Outer()


def test_to_dict_round_trip():
    o = Outer(n=2, items=[3], inner=Inner(a=5), maybe=1)
    d = to_dict(o)
    assert d == {"n": 2, "x": 1.0, "flag": False, "name": "s", "items": [3], "inner": {"a": 5, "b": 0.5},
                 "maybe": 1, "opt": None}
    assert from_dict(Outer, d) == o


def test_unknown_key_names_it_and_lists_known_keys():
    with pytest.raises(ConfigError) as e:
        from_dict(Outer, {"bogus": 1})
    msg = str(e.value)
    assert "'bogus'" in msg
    assert "flag, inner, items, maybe, n, name, opt, x" in msg
    assert "\n" not in msg


def test_unknown_nested_key_gives_its_full_path():
    with pytest.raises(ConfigError) as e:
        from_dict(Outer, {"inner": {"zz": 1}})
    assert "'inner.zz'" in str(e.value)
    assert "known keys of inner: a, b" in str(e.value)


@pytest.mark.parametrize("data, where, expected", [
    ({"n": "three"}, "n", "integer"),
    ({"n": True}, "n", "integer"),
    ({"n": 1.5}, "n", "integer"),
    ({"x": "fast"}, "x", "number"),
    ({"x": False}, "x", "number"),
    ({"flag": "yes"}, "flag", "true/false"),
    ({"flag": 1}, "flag", "true/false"),
    ({"name": [1]}, "name", "string"),
    ({"name": True}, "name", "string"),
    ({"items": 5}, "items", "list"),
    ({"items": [1, "a"]}, "items[1]", "integer"),
    ({"inner": 3}, "inner", "mapping"),
    ({"inner": {"a": "x"}}, "inner.a", "integer"),
    ({"maybe": "x"}, "maybe", "int"),
    ({"opt": [1.0]}, "opt", "float"),
])
def test_wrong_types_are_rejected(data, where, expected):
    with pytest.raises(ConfigError) as e:
        from_dict(Outer, data)
    msg = str(e.value)
    assert msg.startswith(f"{where}: expected")
    assert expected in msg
    assert "\n" not in msg


def test_float_fields_accept_exponent_notation():
    # YAML 1.1 (PyYAML) reads 1e-3 and 5e-4 as strings; float fields must still accept them
    assert from_dict(Outer, {"x": "1e-3", "opt": "5E-4"}) == Outer(x=1e-3, opt=5e-4)
    t = from_dict(TrainConfig, apply_overrides({}, ["lr=1e-3", "weight_decay=2.5e+1"]))
    assert t.lr == 1e-3 and t.weight_decay == 25.0
    assert from_dict(Outer, {"x": "-2.5e+1"}).x == -25.0  # signed exponents too
    with pytest.raises(ConfigError, match="x: expected a number"):
        from_dict(Outer, {"x": "1e-3x"})


# -- overrides --------------------------------------------------------------------------------------
def test_apply_overrides_parses_yaml_values_and_dotted_keys():
    base = {"train": {"epochs": 3}, "seed": 0}
    out = apply_overrides(base, ["train.epochs=5", "train.lr=0.1", "train.nesterov=false", "seed=2",
                                 "space.ops=[none, skip_connect]", "data.name=fmnist16", "data.root=",
                                 "a.b.c=x=y", "note=[1, 2"])
    assert out == {"train": {"epochs": 5, "lr": 0.1, "nesterov": False}, "seed": 2,
                   "space": {"ops": ["none", "skip_connect"]}, "data": {"name": "fmnist16", "root": ""},
                   "a": {"b": {"c": "x=y"}}, "note": "[1, 2"}  # invalid YAML stays text
    assert base == {"train": {"epochs": 3}, "seed": 0}  # the input is not changed


@pytest.mark.parametrize("item, fragment", [
    ("train.epochs", "not key=value"),
    ("=3", "not key=value"),
    ("  =3", "not key=value"),
    ("seed.x=1", "'seed' is not a section"),
])
def test_apply_overrides_errors(item, fragment):
    with pytest.raises(ConfigError, match=fragment):
        apply_overrides({"seed": 0}, [item])


# -- YAML files -------------------------------------------------------------------------------------
def test_load_yaml_round_trip(tmp_path):
    p = tmp_path / "c.yaml"
    dump_yaml({"seed": 1, "train": {"lr": 0.5, "epochs": 2}}, p)
    assert load_yaml(p) == {"seed": 1, "train": {"lr": 0.5, "epochs": 2}}
    (tmp_path / "empty.yaml").write_text("# only a comment\n")
    assert load_yaml(tmp_path / "empty.yaml") == {}


def test_load_yaml_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "nope.yaml")


def test_load_yaml_invalid_yaml_names_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("seed: 1\ntrain:\n  epochs: 2\n  lr: [0.1, 0.2\ndata: {}\n")
    with pytest.raises(ConfigError) as e:
        load_yaml(p)
    msg = str(e.value)
    assert "not valid YAML at line" in msg and str(p) in msg and "\n" not in msg
    line = int(msg.split("at line ")[1].split(":")[0])
    assert 4 <= line <= 5  # the unclosed list opens on line 4; the parser notices it by line 5


@pytest.mark.parametrize("text", ["- a\n- b\n", "[]\n", "42\n", "false\n", "just text\n"])
def test_load_yaml_rejects_non_mappings(tmp_path, text):
    p = tmp_path / "list.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_yaml(p)


# -- resolve_config ---------------------------------------------------------------------------------
def test_resolve_config_fills_defaults():
    cfg = resolve_config({})
    assert cfg.space == {"name": "nb201", **to_dict(NB201Config())}
    assert cfg.algorithm == {"name": "spos"}
    assert cfg.train == TrainConfig()
    assert resolve_config(to_dict(cfg)) == cfg  # the saved config reproduces itself


def test_resolve_config_checks_space_options():
    cfg = resolve_config({"space": {"name": "nb201", "C": 4.0, "ops": ["skip_connect", "none"]}})
    assert cfg.space["C"] == 4 and cfg.space["N"] == NB201Config().N
    assert cfg.space["ops"] == ["skip_connect", "none"]
    with pytest.raises(ConfigError, match="'space.foo'"):
        resolve_config({"space": {"name": "nb201", "foo": 1}})
    with pytest.raises(ConfigError, match="space.C: expected an integer"):
        resolve_config({"space": {"C": "wide"}})
    with pytest.raises(RegistryError, match="unknown space 'nb999'"):
        resolve_config({"space": {"name": "nb999"}})


def test_resolve_config_checks_algorithm_options():
    assert resolve_config({"algorithm": {"name": "fairnas"}}).algorithm == {"name": "fairnas"}
    with pytest.raises(ConfigError, match="'algorithm.bar'"):
        resolve_config({"algorithm": {"name": "spos", "bar": 1}})
    with pytest.raises(RegistryError, match="unknown algorithm"):
        resolve_config({"algorithm": {"name": "nope"}})


def test_resolve_config_checks_sections():
    with pytest.raises(ConfigError, match="'train.epoch'"):
        resolve_config({"train": {"epoch": 3}})
    with pytest.raises(ConfigError, match="data.val_size: expected an integer"):
        resolve_config({"data": {"val_size": "many"}})
    with pytest.raises(ConfigError, match="known keys: .*algorithm.*train"):
        resolve_config({"trian": {}})
    assert isinstance(resolve_config({"seed": 3}), SearchConfig)
