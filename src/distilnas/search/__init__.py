"""Final selection of architectures: SPOS's evolutionary search under a FLOPs range (``evolution``), DNA's
exact constrained search over block potentials (a multiple-choice knapsack), DONNA's linear accuracy model
over block scores, and DNA's block runs joined into potentials (``blocks``)."""

import importlib
from typing import Any

_EXPORTS = {
    "Choice": "knapsack", "InfeasibleError": "knapsack", "Solution": "knapsack", "exhaustive_search": "knapsack",
    "pareto_front": "knapsack", "search": "knapsack",
    "LinearModel": "linear", "fit_linear": "linear", "load_linear": "linear", "save_linear": "linear",
    "DEFAULT_SEP": "potentials", "Candidate": "potentials", "Potentials": "potentials",
    "PotentialsError": "potentials", "load_potentials": "potentials", "save_potentials": "potentials",
    "BlockRun": "blocks", "read_block_run": "blocks", "merge_blocks": "blocks", "dna_scores": "blocks",
    "evolution_search": "evolution",
}


def __getattr__(name: str) -> Any:
    """Import on first use (PEP 562): the command line builds its parser without scipy."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = [
    "BlockRun",
    "DEFAULT_SEP",
    "Candidate",
    "Choice",
    "InfeasibleError",
    "LinearModel",
    "Potentials",
    "PotentialsError",
    "Solution",
    "dna_scores",
    "evolution_search",
    "exhaustive_search",
    "fit_linear",
    "load_linear",
    "load_potentials",
    "merge_blocks",
    "pareto_front",
    "read_block_run",
    "save_linear",
    "save_potentials",
    "search",
]
