"""One generic registry per extension point (spaces, algorithms, proxies, datasets).

Mirrors timm's ``register_model`` / ``list_models``: names are unique, listing supports wildcard filters,
and looking up an unknown name is a one-line error that lists what exists.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path
from typing import Callable, Generic, Iterator, TypeVar

__all__ = ["Registry", "RegistryError", "declared_names"]

T = TypeVar("T")


class RegistryError(KeyError):
    """An unknown or duplicate registry name."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """A named collection of factories.

    Example:
        >>> SPACES = Registry("space")
        >>> @SPACES.register("nb201")
        ... def build(): ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise RegistryError(f"duplicate {self.kind} name {name!r}")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def list(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._items)


def declared_names(package_dir: str | Path, registrar: str) -> list[str]:
    """The names registered in the modules of ``package_dir`` by decorators ``@REGISTRY.register("name")``
    or ``@register_fn("name", ...)`` (``registrar`` is ``REGISTRY`` or ``register_fn``), read from the
    source without importing it: ``distilnas list`` answers without loading torch. A test checks that
    they are the names the imported registry holds."""
    names = set()
    for path in sorted(Path(package_dir).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                continue
            for deco in node.decorator_list:
                if not (isinstance(deco, ast.Call) and deco.args and isinstance(deco.args[0], ast.Constant)):
                    continue
                f = deco.func
                if (isinstance(f, ast.Attribute) and f.attr == "register" and isinstance(f.value, ast.Name)
                        and f.value.id == registrar) or (isinstance(f, ast.Name) and f.id == registrar):
                    names.add(str(deco.args[0].value))
    return sorted(names)
