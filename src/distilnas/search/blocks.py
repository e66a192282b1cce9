"""``distilnas dna-merge`` and ``distilnas dna-score``: DNA's block runs joined into a potentials file, and
the block-score sum of given architectures (see docs/dna.md).

    distilnas dna-merge DIR [DIR ...] --out POTENTIALS.json
    distilnas dna-score POTENTIALS --archs FILE --out OUT.jsonl [--metric score] [--skip-missing]

A DNA block run is a ``distilnas search`` run with ``algorithm.name=dna algorithm.block=i``: its
``scores.jsonl`` rates every candidate of block ``i``, its ``result.json`` has a ``dna`` section and its
``config.yaml`` the space. ``dna-merge`` checks that the runs are blocks ``0..n-1`` of one search (each
block exactly once, the same space, teacher and metric) and writes, in block order, the potentials file
of :mod:`distilnas.search.potentials` with ``meta`` = the space config, data, teacher and metric. Next to
it goes a ``config.yaml`` holding the space and data sections, so that ``distilnas retrain RESULT.json``
works for a ``dna-search`` result written in the same directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

__all__ = ["BlockRun", "read_block_run", "merge_blocks", "write_run_config", "dna_scores",
           "POTENTIALS_FORMAT", "CANDIDATE_KEYS"]

POTENTIALS_FORMAT = "distilnas-dna-potentials"
CANDIDATE_KEYS = ("arch", "score", "flops", "params", "mse", "rel_l1", "nsr", "depth")
"""The fields of a rated candidate that go into the potentials file."""


@dataclass
class BlockRun:
    """One finished DNA block run, read from its directory."""

    dir: Path
    block: int
    num_blocks: int
    space: dict[str, Any]  # the resolved space section of its config.yaml
    data: dict[str, Any]
    dna: dict[str, Any]  # result.json's "dna" section (block, metric, depths, teacher, teacher_maps)
    rows: list[dict[str, Any]]  # scores.jsonl: one rated candidate per row


def read_block_run(path: str | Path) -> BlockRun:
    """Read a finished block run; :class:`~distilnas.config.ConfigError` (one line) when it is not one."""
    from ..config import ConfigError, load_yaml

    d = Path(path)
    res_path = d / "result.json"
    if not res_path.is_file():
        raise ConfigError(f"{d} has no result.json; pass the directory of a finished dna block run "
                          f"(distilnas search CONFIG algorithm.block=i --out DIR)")
    try:
        result = json.loads(res_path.read_text())
    except json.JSONDecodeError:
        raise ConfigError(f"{res_path} is not JSON") from None
    if not isinstance(result, dict) or result.get("algorithm") != "dna" or not isinstance(result.get("dna"), dict):
        raise ConfigError(f"{res_path} is not the result of a dna block run "
                          f"(algorithm {result.get('algorithm') if isinstance(result, dict) else None!r})")
    cfg = load_yaml(d / "config.yaml")
    scores = d / "scores.jsonl"
    rows = [json.loads(ln) for ln in scores.read_text().splitlines() if ln.strip()] if scores.is_file() else []
    if len(rows) != result.get("num_scored"):
        raise ConfigError(f"{scores} has {len(rows)} rated candidates but {res_path} says "
                          f"{result.get('num_scored')}; rerun the block")
    dna = result["dna"]
    return BlockRun(d, int(dna["block"]), int(dna["num_blocks"]), dict(cfg.get("space") or {}),
                    dict(cfg.get("data") or {}), dna, rows)


def _first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    key = next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
    return f"{key}: {a.get(key)!r} vs {b.get(key)!r}"


def merge_blocks(dirs: Sequence[str | Path]) -> Any:
    """The :class:`~distilnas.search.Potentials` of block runs ``dirs`` (any order), in block order.

    Raises:
        ConfigError: no runs, a run that is not a finished dna block run, a block missing or given twice,
            or runs with different space configs, teachers or metrics.
    """
    from ..config import ConfigError
    from ..spaces import build_space_config
    from .potentials import Potentials
    from ..spaces import create_space

    if not dirs:
        raise ConfigError("dna-merge needs the run directories of the blocks")
    runs = [read_block_run(d) for d in dirs]
    first = runs[0]
    by_block: dict[int, BlockRun] = {}
    for r in runs:
        if r.space != first.space:
            raise ConfigError(f"{r.dir} and {first.dir} have different space configs "
                              f"({_first_difference(r.space, first.space)}); merge the blocks of one search")
        for key in ("teacher", "metric"):
            if r.dna.get(key) != first.dna.get(key):
                raise ConfigError(f"{r.dir} and {first.dir} have different {key}s; merge the blocks of one search")
        if r.block in by_block:
            raise ConfigError(f"block {r.block} appears twice ({by_block[r.block].dir} and {r.dir}); "
                              f"pass one run per block")
        by_block[r.block] = r
    n = first.num_blocks
    missing = [b for b in range(n) if b not in by_block]
    if missing:
        raise ConfigError(f"block(s) {', '.join(map(str, missing))} missing; pass the run directory of every "
                          f"block 0..{n - 1}")
    space = create_space("mobilenet", build_space_config("mobilenet", first.space))
    ordered = [by_block[b] for b in range(n)]
    obj = {
        "fixed": space.fixed_cost(),
        "blocks": [[{k: row[k] for k in CANDIDATE_KEYS if k in row} for row in r.rows] for r in ordered],
        "meta": {"format": POTENTIALS_FORMAT, "space": first.space, "data": ordered[0].data,
                 "teacher": first.dna.get("teacher"), "metric": first.dna.get("metric"),
                 "depths": [r.dna.get("depths") for r in ordered], "runs": [str(r.dir) for r in ordered]},
    }
    return Potentials.from_dict(obj, "merged block runs")


def write_run_config(potentials_path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``config.yaml`` (the space and data sections of ``meta``) next to ``potentials_path``, which is
    where ``distilnas retrain`` looks for the space of a result in that directory. An existing different
    ``config.yaml`` is an error (never overwritten)."""
    from ..config import ConfigError, dump_yaml, load_yaml

    p = Path(potentials_path).parent / "config.yaml"
    content = {"space": meta["space"], "data": meta["data"]}
    if p.exists() and load_yaml(p) != content:
        raise ConfigError(f"{p} exists with another config; write the potentials to another directory")
    p.parent.mkdir(parents=True, exist_ok=True)
    dump_yaml(content, p)
    return p


def dna_scores(potentials: Any, archs: Sequence[str], metric: str = "score",
               skip_missing: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """DNA's rating of full architectures: the sum over blocks of their candidates' ``metric``.

    Architectures are canonicalised in the potentials' space (``meta.space``) when it is recorded.
    Returns ``(rows, skipped)``: a row ``{"arch", "score" (= -sum, higher is better), "block_sum",
    "metric", "flops", "params"}`` per architecture, and the architectures whose candidates are not all
    in the potentials (an error unless ``skip_missing``).
    """
    from ..config import ConfigError
    from ..spaces import build_space_config
    from .potentials import PotentialsError
    from ..spaces import create_space

    meta = potentials.extra.get("meta") or {}
    space = None
    if isinstance(meta.get("space"), dict):
        name = str(meta["space"].get("name", "mobilenet"))
        space = create_space(name, build_space_config(name, meta["space"]))
    rows, skipped = [], []
    for text in archs:
        arch = str(space.parse(text)) if space is not None else text.strip()
        try:
            idx = potentials.split(arch)
        except PotentialsError:
            if skip_missing:
                skipped.append(arch)
                continue
            raise PotentialsError(f"architecture {arch} has a block candidate that is not in the potentials "
                                  f"(e.g. a depth that was not trained); pass --skip-missing to leave it out") from None
        chosen = [potentials.blocks[b][j] for b, j in enumerate(idx)]
        if metric != "score" and any(metric not in c.extra for c in chosen):
            raise ConfigError(f"the potentials' candidates have no {metric!r}; use score, mse, rel_l1 or nsr")
        total = 0.0
        flops, params = potentials.fixed_flops, potentials.fixed_params
        for c in chosen:
            total += float(c.score if metric == "score" else c.extra[metric])
            flops += c.flops
            params += c.params
        rows.append({"arch": arch, "score": -total, "block_sum": total, "metric": metric, "flops": flops,
                     "params": params})
    return rows, skipped
