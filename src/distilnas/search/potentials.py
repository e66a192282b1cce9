"""Block potentials: the per-candidate ratings that DNA's search combines (Li et al., CVPR 2020, Sec. 3).

DNA trains each block of the supernet separately and rates every candidate of every block on its own
(lower = better, e.g. the relative L1 distance to the teacher's feature map). An architecture picks one
candidate per block; its score is the sum of the block scores and its cost the sum of the block costs plus
a fixed part (stem, head). The potentials file holds exactly that::

    {"fixed": {"flops": F, "params": P},
     "blocks": [[{"arch": "k3e6_k5e3", "score": 0.41, "flops": 1200000, "params": 5400}, ...],  # block 0
                ...]}

Other keys (per candidate, e.g. ``"mse"``, ``"nsr"``; at the top level, e.g. ``"meta"``) are kept when a
file is read and written back, and ignored by the search. An architecture is named by joining its block
candidates' ``arch`` strings with a separator (:data:`DEFAULT_SEP`, ``"_"``); :meth:`Potentials.split`
reads such a string back even when the block strings contain the separator themselves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_SEP",
    "Candidate",
    "Potentials",
    "PotentialsError",
    "load_potentials",
    "save_potentials",
]

#: Joins the per-block ``arch`` strings into one architecture string.
DEFAULT_SEP = "_"

_CANDIDATE_KEYS = ("arch", "score", "flops", "params")
Number = int | float


class PotentialsError(ValueError):
    """A malformed potentials file or value; the message names the file and the place in it."""


@dataclass(frozen=True)
class Candidate:
    """One candidate of one block.

    Attributes:
        arch: the block's own architecture string (unique within its block).
        score: its rating, lower is better (finite).
        flops: its FLOPs (>= 0, 2 per multiply-add as everywhere in distilnas).
        params: its parameter count (>= 0).
        extra: other keys of the file's entry (kept on write, ignored by the search).
    """

    arch: str
    score: float
    flops: Number
    params: Number
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "score": self.score, "flops": self.flops, "params": self.params,
                **self.extra}


@dataclass(frozen=True)
class Potentials:
    """Per-block candidate ratings and costs, plus the fixed cost every architecture pays.

    Attributes:
        blocks: ``blocks[i][j]`` is candidate ``j`` of block ``i`` (every block non-empty).
        fixed_flops: FLOPs outside the searched blocks (stem, head).
        fixed_params: parameters outside the searched blocks.
        extra: other top-level keys of the file (kept on write).
    """

    blocks: tuple[tuple[Candidate, ...], ...]
    fixed_flops: Number = 0
    fixed_params: Number = 0
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def num_archs(self) -> int:
        """How many architectures the blocks span (the product of the block sizes)."""
        return math.prod(len(b) for b in self.blocks)

    @cached_property
    def _index(self) -> tuple[dict[str, int], ...]:
        return tuple({c.arch: j for j, c in enumerate(b)} for b in self.blocks)

    @cached_property
    def table(self) -> tuple[list[np.ndarray], np.ndarray]:
        """The numbers as arrays: per block (n_i, 3) float64 columns flops, params, score; and the fixed
        (flops, params). Computed once per object."""
        blocks = [np.array([(c.flops, c.params, c.score) for c in b], dtype=float) for b in self.blocks]
        return blocks, np.array([self.fixed_flops, self.fixed_params], dtype=float)

    def join(self, indices: Sequence[int], sep: str = DEFAULT_SEP) -> str:
        """The architecture string of one candidate index per block."""
        return sep.join(self.blocks[i][j].arch for i, j in enumerate(indices))

    def split(self, arch: str, sep: str = DEFAULT_SEP) -> tuple[int, ...]:
        """The per-block candidate indices of a joined architecture string.

        Block strings may contain ``sep`` themselves: every way of cutting the string at separators into
        one known candidate per block is tried, and exactly one must exist.

        Raises:
            PotentialsError: no cut (or more than one) matches the blocks' candidates.
        """
        tokens = arch.strip().split(sep) if sep else list(arch.strip())
        nb = len(self.blocks)
        found: list[tuple[int, ...]] = []

        def walk(block: int, start: int, picked: tuple[int, ...]) -> None:
            if block == nb:
                if start == len(tokens):
                    found.append(picked)
                return
            for end in range(start + 1, len(tokens) - (nb - block - 1) + 1):
                j = self._index[block].get(sep.join(tokens[start:end]))
                if j is not None:
                    walk(block + 1, end, picked + (j,))

        walk(0, 0, ())
        if len(found) != 1:
            why = "matches no" if not found else f"matches {len(found)} different"
            raise PotentialsError(f"architecture {arch!r} {why} choice of one candidate per block "
                                  f"({nb} blocks joined by {sep!r}); check the separator and the potentials file")
        return found[0]

    def to_dict(self) -> dict[str, Any]:
        """The file's JSON object (extra keys included)."""
        return {**self.extra, "fixed": {"flops": self.fixed_flops, "params": self.fixed_params},
                "blocks": [[c.to_dict() for c in b] for b in self.blocks]}

    @classmethod
    def from_dict(cls, obj: Any, source: str = "potentials") -> Potentials:
        """Validate and load a potentials JSON object.

        Args:
            obj: the parsed JSON.
            source: how errors name the data (usually the file path).

        Raises:
            PotentialsError: a missing key, a wrong type, an empty block, a negative or non-finite cost, a
                non-finite score or a repeated arch within a block, with its location.
        """
        if not isinstance(obj, dict):
            raise PotentialsError(f"{source}: expected a JSON object with 'fixed' and 'blocks', "
                                  f"got {type(obj).__name__}")
        for key in ("fixed", "blocks"):
            if key not in obj:
                raise PotentialsError(f"{source}: missing key {key!r} (expected 'fixed' and 'blocks')")
        fixed = obj["fixed"]
        if not isinstance(fixed, dict):
            raise PotentialsError(f"{source}: fixed: expected an object with 'flops' and 'params'")
        fixed_flops = _cost(fixed, "flops", source, "fixed")
        fixed_params = _cost(fixed, "params", source, "fixed")
        raw = obj["blocks"]
        if not isinstance(raw, list) or not raw:
            raise PotentialsError(f"{source}: blocks: expected a non-empty list of blocks")
        blocks = []
        for i, block in enumerate(raw):
            where = f"blocks[{i}]"
            if not isinstance(block, list) or not block:
                raise PotentialsError(f"{source}: {where}: expected a non-empty list of candidates")
            cands: list[Candidate] = []
            seen: dict[str, int] = {}
            for j, c in enumerate(block):
                cands.append(_candidate(c, source, f"{where}[{j}]"))
                if cands[-1].arch in seen:
                    raise PotentialsError(f"{source}: {where}[{j}]: arch {cands[-1].arch!r} repeats "
                                          f"{where}[{seen[cands[-1].arch]}]")
                seen[cands[-1].arch] = j
            blocks.append(tuple(cands))
        extra = {k: v for k, v in obj.items() if k not in ("fixed", "blocks")}
        return cls(tuple(blocks), fixed_flops, fixed_params, extra)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _cost(obj: dict[str, Any], key: str, source: str, where: str) -> Number:
    if key not in obj:
        raise PotentialsError(f"{source}: {where}: missing key {key!r}")
    v = obj[key]
    if not _is_number(v) or not math.isfinite(v):
        raise PotentialsError(f"{source}: {where}.{key}: expected a finite number, got {v!r}")
    if v < 0:
        raise PotentialsError(f"{source}: {where}.{key}: negative cost {v!r}")
    return v


def _candidate(c: Any, source: str, where: str) -> Candidate:
    if not isinstance(c, dict):
        raise PotentialsError(f"{source}: {where}: expected an object with keys {', '.join(_CANDIDATE_KEYS)}")
    for key in _CANDIDATE_KEYS:
        if key not in c:
            raise PotentialsError(f"{source}: {where}: missing key {key!r}")
    arch, score = c["arch"], c["score"]
    if not isinstance(arch, str) or not arch.strip():
        raise PotentialsError(f"{source}: {where}.arch: expected a non-empty string, got {arch!r}")
    if not _is_number(score) or not math.isfinite(score):
        raise PotentialsError(f"{source}: {where}.score: expected a finite number, got {score!r}")
    extra = {k: v for k, v in c.items() if k not in _CANDIDATE_KEYS}
    return Candidate(arch.strip(), float(score), _cost(c, "flops", source, where),
                     _cost(c, "params", source, where), extra)


def load_potentials(path: str | Path) -> Potentials:
    """Read and validate a potentials JSON file.

    Raises:
        FileNotFoundError: no such file.
        PotentialsError: not JSON, or malformed (the message names the file and the location).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"potentials file {p} not found "
                                f"(JSON with 'fixed' and 'blocks', see docs/dna_search.md)")
    try:
        obj = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise PotentialsError(f"{p}: not valid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    return Potentials.from_dict(obj, str(p))


def save_potentials(potentials: Potentials, path: str | Path) -> None:
    """Write a potentials file (creating its directory); the extra keys go along."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(potentials.to_dict(), allow_nan=False) + "\n")
