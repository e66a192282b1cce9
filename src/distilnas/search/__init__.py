"""Final selection of architectures: DNA's exact constrained search over block potentials (a
multiple-choice knapsack) and DONNA's linear accuracy model over block scores."""

from .knapsack import Choice, InfeasibleError, Solution, exhaustive_search, pareto_front, search
from .linear import LinearModel, fit_linear, load_linear, save_linear
from .potentials import DEFAULT_SEP, Candidate, Potentials, PotentialsError, load_potentials, save_potentials

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
