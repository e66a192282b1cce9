"""Evolutionary architecture search over a trained supernet (SPOS, Guo et al., ECCV 2020, sec. 3.4).

SPOS searches its trained supernet with an evolutionary algorithm under a FLOPs constraint: a population
of random architectures inside the constraint is scored with the supernet's weights; every generation
keeps the ``parents`` best seen so far and makes new candidates from them, half by *mutation* (each
choice re-drawn with probability ``mutation_prob``) and half by *crossover* (each choice taken from one
of two random parents), dropping those that break the constraint or were seen before. SPOS: population
50, 10 parents, mutation probability 0.1, 20 generations (1,000 candidates at ImageNet scale); here the
total number of candidates is the budget (``select.num_archs``) and the population defaults to 10 so
that small budgets still run several generations.

Differences from SPOS's code: a generation short of fresh crossovers is filled by more mutations before
random samples (SPOS: 25 mutations and 25 crossovers with 10x attempts each, then random samples), and the
budget counts every scored candidate (SPOS scores a 21st generation that never enters the top-k). Each
candidate is scored as ``score:`` says (the presets: BatchNorm recalibrated on 10 x 256 training images,
accuracy on 5,000-10,000 validation images; SPOS's code recalibrates on 200 x 128 and scores 8,000).

Every algorithm's final selection uses it (``select.method: evolution``) unless the algorithm keeps its
own candidates (Cream's board); ``select.method: random`` scores ``num_archs`` distinct uniform samples
inside the constraint instead.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterable

from ..algorithms.base import distinct_samples
from ..spaces import SearchSpace

__all__ = ["evolution_search", "in_flops_range", "samples_in_range"]

Score = Callable[[list[Any]], Iterable[dict[str, Any]]]


def in_flops_range(space: SearchSpace[Any], arch: Any, flops_min: float, flops_max: float) -> bool:
    """Whether ``arch`` satisfies the constraint (``flops_max`` 0 = no upper bound)."""
    if not flops_min and not flops_max:
        return True
    f = space.cost(arch)["flops"]
    return f >= flops_min and (not flops_max or f <= flops_max)


def samples_in_range(space: SearchSpace[Any], n: int, rng: random.Random, flops_min: float = 0.0,
                     flops_max: float = 0.0, max_tries: int = 1000) -> list[Any]:
    """Up to ``n`` distinct uniform samples inside the FLOPs constraint (rejection sampling, at most
    ``max_tries * n`` draws), in the order drawn: random selection's candidates."""
    return distinct_samples(n, lambda: space.sample(rng), lambda a: in_flops_range(space, a, flops_min, flops_max),
                            max_tries)


def _fitness(row: dict[str, Any]) -> tuple[float, float]:
    return (-row["accuracy"], row.get("loss", 0.0))  # higher accuracy first, lower loss breaks ties


def evolution_search(space: SearchSpace[Any], score: Score, budget: int, rng: random.Random,
                     population: int = 10, parents: int = 5, mutation_prob: float = 0.1,
                     flops_min: float = 0.0, flops_max: float = 0.0, max_tries: int = 1000) -> list[dict[str, Any]]:
    """Score up to ``budget`` distinct architectures, generation by generation; returns every scored row
    (``{"arch", "accuracy", "loss", ...}`` from ``score``), in the order they were scored, each with its
    ``generation``.

    Args:
        space: the search space (``sample``, ``to_choices`` / ``from_choices``, ``cost``).
        score: scores a list of architectures with the supernet, one row each.
        budget: total number of architectures to score.
        rng: the search's random generator.
        population: candidates per generation (the first is uniform inside the constraint).
        parents: the best architectures seen so far that the next generation is bred from.
        mutation_prob: probability of re-drawing each choice in a mutation.
        flops_min, flops_max: the FLOPs constraint (0 = none).
        max_tries: attempts per wanted candidate before a generation is cut short.
    """
    seen: set[str] = set()
    history: list[dict[str, Any]] = []
    labels = space.choices

    def fresh(make: Callable[[], Any], n: int) -> list[Any]:
        out: list[Any] = []
        for _ in range(max_tries * max(1, n)):
            if len(out) == n:
                break
            a = make()
            key = str(a)
            if key in seen or not in_flops_range(space, a, flops_min, flops_max):
                continue
            seen.add(key)
            out.append(a)
        return out

    def mutate(parent: Any) -> Any:
        c = space.to_choices(parent)
        return space.from_choices({k: rng.choice(labels[k]) if rng.random() < mutation_prob else v
                                   for k, v in c.items()})

    def crossover(a: Any, b: Any) -> Any:
        ca, cb = space.to_choices(a), space.to_choices(b)
        return space.from_choices({k: ca[k] if rng.random() < 0.5 else cb[k] for k in ca})

    generation = 0
    todo = fresh(lambda: space.sample(rng), min(population, budget))
    while todo:
        for row in score(todo):
            history.append({**row, "generation": generation})
        generation += 1
        left = budget - len(history)
        if left <= 0:
            break
        top = [space.parse(r["arch"]) for r in sorted(history, key=_fitness)[:parents]]
        n = min(population, left)
        todo = fresh(lambda: mutate(rng.choice(top)), n // 2)
        todo += fresh(lambda: crossover(rng.choice(top), rng.choice(top)), n - len(todo))
        todo += fresh(lambda: mutate(rng.choice(top)), n - len(todo))  # when crossover finds nothing new
        todo += fresh(lambda: space.sample(rng), n - len(todo))  # a converged population: explore
    return history
