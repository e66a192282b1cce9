"""Final selection of architectures: DNA's exact constrained search over block potentials (a
multiple-choice knapsack) and DONNA's linear accuracy model over block scores."""

import importlib
from typing import Any

_EXPORTS = {
    "Choice": "knapsack", "InfeasibleError": "knapsack", "Solution": "knapsack", "exhaustive_search": "knapsack",
    "pareto_front": "knapsack", "search": "knapsack",
    "LinearModel": "linear", "fit_linear": "linear", "load_linear": "linear", "save_linear": "linear",
    "DEFAULT_SEP": "potentials", "Candidate": "potentials", "Potentials": "potentials",
    "PotentialsError": "potentials", "load_potentials": "potentials", "save_potentials": "potentials",
}


def __getattr__(name: str) -> Any:
    """Import on first use (PEP 562): the command line builds its parser without scipy."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = [
    "DEFAULT_SEP",
    "Candidate",
    "Choice",
    "InfeasibleError",
    "LinearModel",
    "Potentials",
    "PotentialsError",
    "Solution",
    "exhaustive_search",
    "fit_linear",
    "load_linear",
    "load_potentials",
    "pareto_front",
    "save_linear",
    "save_potentials",
    "search",
]
