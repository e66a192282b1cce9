"""House order (issue 15): the package's imports form layers without loops, read bottom-up as in the
README's architecture section, and every command's handler lives in ``distilnas.commands``.

The import graph is grimp's (import-linter's engine): every ``import`` in every module, including those
inside functions and under ``if TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")

SRC = Path(__file__).resolve().parents[1] / "src" / "distilnas"

# Bottom to top; a module may import its own layer and the layers below it (README, "Architecture").
LAYERS: list[list[str]] = [
    ["distilnas", "distilnas.registry", "distilnas.config", "distilnas.errors", "distilnas.fileio",
     "distilnas.devices", "distilnas.environment", "distilnas.progress", "distilnas.arch"],
    ["distilnas.data", "distilnas.data.*", "distilnas.ops", "distilnas.ops.*"],
    ["distilnas.spaces", "distilnas.spaces.*"],
    ["distilnas.train", "distilnas.train.checkpoint", "distilnas.train.evaluation", "distilnas.train.standalone",
     "distilnas.train.optim", "distilnas.train.parallel", "distilnas.train.distributed"],
    ["distilnas.evaluate", "distilnas.evaluate.*"],
    ["distilnas.algorithms", "distilnas.algorithms.*", "distilnas.search", "distilnas.search.*",
     "distilnas.proxies", "distilnas.proxies.*"],
    ["distilnas.train.loop", "distilnas.train.retrain", "distilnas.train.random_search"],
    ["distilnas.report"],
    ["distilnas.commands", "distilnas.commands.*"],
    ["distilnas.cli"],
]


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("distilnas", exclude_type_checking_imports=False, cache_dir=None)


def _layer(module: str) -> int | None:
    for i, patterns in enumerate(LAYERS):
        if module in patterns or any("*" in p and fnmatch.fnmatchcase(module, p) for p in patterns):
            return i
    return None


def test_the_graph_sees_every_module(graph):
    on_disk = {".".join(("distilnas", *p.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")
               for p in SRC.rglob("*.py")}
    assert on_disk == set(graph.modules)


def test_no_import_loop(graph):
    loops = set()
    for m in graph.modules:
        for n in graph.find_modules_directly_imported_by(m):
            chain = graph.find_shortest_chain(importer=n, imported=m)
            if chain:
                loops.add(" -> ".join((m, *chain)))
    assert not loops, "import loops:\n" + "\n".join(sorted(loops))


def test_every_module_has_a_layer(graph):
    assert [m for m in sorted(graph.modules) if _layer(m) is None] == []


def test_layers_import_only_downwards(graph):
    upward = [f"{m} (layer {_layer(m)}) imports {n} (layer {_layer(n)})"
              for m in sorted(graph.modules) for n in sorted(graph.find_modules_directly_imported_by(m))
              if _layer(n) > _layer(m)]
    assert not upward, "\n".join(upward)


def test_the_loop_meets_algorithms_only_through_their_interface(graph):
    concrete = {n for n in graph.find_modules_directly_imported_by("distilnas.train.loop")
                if n.startswith("distilnas.algorithms")}
    assert concrete == {"distilnas.algorithms.base"}


def test_the_checker_would_see_a_loop(tmp_path, monkeypatch):
    """The loop test can fail: two modules importing each other (one inside a function) are found."""
    pkg = tmp_path / "looppkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    g = grimp.build_graph("looppkg", cache_dir=None)
    assert g.find_shortest_chain(importer="looppkg.b", imported="looppkg.a") == ("looppkg.b", "looppkg.a")
    assert g.find_shortest_chain(importer="looppkg.a", imported="looppkg.b") == ("looppkg.a", "looppkg.b")


def _defines_subparsers(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
               and node.func.attr in ("add_parser", "add_subparsers") for node in ast.walk(tree))


def test_command_handlers_live_in_the_commands_folder():
    outside = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
               if "commands" not in p.relative_to(SRC).parts and p.name != "cli.py" and _defines_subparsers(p)]
    assert outside == []
    from distilnas.commands import COMMANDS

    on_disk = sorted(p.stem for p in (SRC / "commands").glob("*.py") if not p.name.startswith("_"))
    assert sorted(COMMANDS) == on_disk  # every command module is on the command line
    cli = ast.parse((SRC / "cli.py").read_text())
    assert not [n.name for n in ast.walk(cli) if isinstance(n, ast.FunctionDef) and n.name.startswith("cmd_")]
