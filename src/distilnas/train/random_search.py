"""Random-search baseline (``distilnas random-search``): the best of N random architectures.

The reviewers of Cream (Peng et al., NeurIPS 2020) asked for a random-architecture baseline: sample N distinct
architectures uniformly inside the FLOPs range ``[flops_min, flops_max]``, train each standalone with a
short ``search_recipe``, and select the one with the best validation accuracy. The winner goes to
``DIR/result.json`` in the shape of ``distilnas search``'s result (``arch``, ``best``, ``top``) next to
``DIR/config.yaml``, so ``distilnas retrain DIR/result.json`` retrains it exactly like a searched one.

Candidates train in ``workers`` spawned processes with one torch thread each (``workers=1``: in this
process, also with one thread) and every finished one is appended to ``DIR/runs.jsonl``: a rerun with the same config skips
them. Every candidate is initialised and fed batches from ``seed`` (common random numbers).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import MAX_SEED, ConfigError, dump_yaml, from_dict, opt, to_dict
from ..data import DataConfig, Splits, load_dataset
from ..devices import resolve_device
from ..fileio import dumps, prepare_out_dir, run_lock
from ..spaces import SearchSpace, build_space_config, check_data, create_space
from .parallel import append_record, open_records, read_records, run_jobs
from .standalone import Recipe, recipe_hash, train_standalone

__all__ = ["RandomSearchConfig", "sample_in_flops_range", "random_search"]

TRIES_PER_ARCH = 1000  # rejection-sampling budget: this many samples per wanted architecture


@dataclass
class RandomSearchConfig:
    """What a random-search baseline run needs; ``distilnas random-search CONFIG key=value ...`` fills it."""

    seed: int = opt(0, ge=0, le=MAX_SEED)  # samples the candidates, initialises each one and orders its batches
    space: dict[str, Any] = field(default_factory=lambda: {"name": "nb201"})  # name + the space's options
    data: DataConfig = field(default_factory=DataConfig)
    num_archs: int = opt(20, ge=1)  # N distinct candidates
    flops_min: float = opt(0.0, ge=0)  # FLOPs range of the candidates (2 FLOPs per multiply-add)
    flops_max: float = opt(0.0, ge=0)  # 0 = unbounded
    search_recipe: Recipe = field(default_factory=lambda: Recipe(epochs=3))  # short training per candidate
    top: int = opt(10, ge=1)  # how many of the best to list in result.json
    workers: int = opt(1, ge=1)  # parallel processes, one torch thread each (1 = in this process, one thread)
    device: str = "auto"  # auto = cuda when available, else cpu


def _space(cfg: RandomSearchConfig) -> SearchSpace[Any]:
    name = str(cfg.space.get("name", "nb201"))
    return create_space(name, build_space_config(name, cfg.space))


def _check(cfg: RandomSearchConfig) -> None:
    if cfg.num_archs < 1:
        raise ConfigError(f"num_archs={cfg.num_archs}; need at least 1 candidate")
    if cfg.workers < 1:
        raise ConfigError(f"workers={cfg.workers}; need at least 1")
    if cfg.flops_min < 0 or cfg.flops_max < 0:
        raise ConfigError("flops_min and flops_max must be >= 0 (flops_max=0 means unbounded)")
    if cfg.flops_max and cfg.flops_max < cfg.flops_min:
        raise ConfigError(f"flops_max={cfg.flops_max:g} is below flops_min={cfg.flops_min:g}")


def sample_in_flops_range(space: SearchSpace[Any], n: int, rng: random.Random, flops_min: float = 0.0,
                          flops_max: float = 0.0) -> list[Any]:
    """``n`` distinct architectures drawn uniformly from the part of ``space`` whose FLOPs lie in
    ``[flops_min, flops_max]`` (``flops_max=0``: no upper bound).

    Uses the space's ``sample_in_range(rng, lo, hi)`` when it has one, else rejection sampling with
    ``space.cost(arch)["flops"]``. Architectures count as the same when their ``isomorphism_key()`` (if
    the arch has one, e.g. NB201 cells) or their strings are equal.

    Raises:
        ConfigError: fewer than ``n`` such architectures in ``TRIES_PER_ARCH * n`` samples.
    """
    hi = flops_max if flops_max > 0 else math.inf
    bounded = flops_min > 0 or flops_max > 0
    ranged = getattr(space, "sample_in_range", None)
    out: list[Any] = []
    seen: set[str] = set()
    tries = TRIES_PER_ARCH * n
    for _ in range(tries):
        if len(out) == n:
            break
        if ranged is not None and bounded:
            arch = ranged(rng, flops_min, hi)
        else:
            arch = space.sample(rng)
            if bounded and not flops_min <= space.cost(arch)["flops"] <= hi:
                continue
        key = arch.isomorphism_key() if hasattr(arch, "isomorphism_key") else str(arch)
        if key not in seen:
            seen.add(key)
            out.append(arch)
    if len(out) < n:
        raise ConfigError(f"found only {len(out)} of {n} distinct {space.name} architectures with FLOPs in "
                          f"[{flops_min:,.0f}, {hi:,.0f}] in {tries:,} samples; widen the range or lower num_archs")
    return out


# Data of the current process, loaded once per data config (worker processes keep theirs for all jobs).
_DATA: dict[str, Splits] = {}


def _data_key(cfg: DataConfig) -> str:
    return json.dumps(to_dict(cfg), sort_keys=True)


def _train_candidate(cfg_dict: dict[str, Any], arch_str: str, h: str) -> dict[str, Any]:
    """Train one candidate with the search recipe; its validation accuracy, loss, params and FLOPs."""
    cfg = from_dict(RandomSearchConfig, cfg_dict)
    key = _data_key(cfg.data)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = load_dataset(cfg.data)
    space = _space(cfg)
    arch = space.parse(arch_str)
    model = space.build(arch, seed=cfg.seed)
    cost = space.cost(arch)
    t0 = time.time()
    res = train_standalone(model, _DATA[key], cfg.search_recipe, seed=cfg.seed, device=resolve_device(cfg.device),
                           augment=cfg.data.augment, eval_sets=("val",))
    return {"arch": arch_str, "accuracy": res["val_accuracy"], "loss": res["val_loss"],
            "params": int(cost["params"]), "flops": int(cost["flops"]), "seconds": round(time.time() - t0, 2),
            "hash": h}


def random_search(cfg: RandomSearchConfig, out_dir: str | Path, progress: bool | None = None) -> dict[str, Any]:
    """Run (or resume) the random-search baseline in ``out_dir``; returns and writes ``result.json``.

    Steps:
    1. check the config, write ``DIR/config.yaml`` (space fully resolved) and sample the candidates;
    2. train the candidates not yet in ``DIR/runs.jsonl`` (same config hash), appending each one;
    3. rank all candidates by validation accuracy (fewer FLOPs breaks ties) into ``DIR/result.json``.
    """
    _check(cfg)
    space = _space(cfg)
    cfg = dataclasses.replace(cfg, space={"name": space.name, **to_dict(space.cfg)})  # saved in full
    resolve_device(cfg.device)
    out = prepare_out_dir(out_dir)
    with run_lock(out, "random-search directory"):
        return _search(cfg, space, out, progress)


def _search(cfg: RandomSearchConfig, space: SearchSpace[Any], out: Path, progress: bool | None) -> dict[str, Any]:
    t0 = time.time()
    data = load_dataset(cfg.data)
    check_data(space, data, cfg.data.name)
    if cfg.search_recipe.batch_size > len(data.train_y):
        raise ConfigError(f"search_recipe.batch_size={cfg.search_recipe.batch_size} is larger than the "
                          f"training split ({len(data.train_y)} images)")
    archs = [str(a) for a in sample_in_flops_range(space, cfg.num_archs, random.Random(cfg.seed),
                                                   cfg.flops_min, cfg.flops_max)]
    cfg_dict = to_dict(cfg)
    dump_yaml(cfg_dict, out / "config.yaml")
    h = recipe_hash(cfg.search_recipe, {"space": cfg.space, "data": cfg.data.identity(), "seed": cfg.seed,
                                        "device": cfg.device})
    runs_path = out / "runs.jsonl"
    done = {r["arch"]: r for r in read_records(runs_path, "hash", h)}
    todo = [(cfg_dict, a, h) for a in archs if a not in done]
    if cfg.workers <= 1:
        _DATA.clear()
        _DATA[_data_key(cfg.data)] = data  # already loaded: reuse it in this process
    del data
    try:
        with open_records(runs_path) as f:
            for r in run_jobs(_train_candidate, todo, cfg.workers, threads=1, progress=progress,
                              desc="random search", postfix=lambda r: f"{r['accuracy']:.2f}% {r['seconds']:.0f}s"):
                append_record(f, r)
                done[r["arch"]] = r
    finally:
        _DATA.clear()
    rows = [{k: v for k, v in done[a].items() if k != "hash"} for a in archs]
    ranked = sorted(rows, key=lambda r: (-r["accuracy"], r["flops"], r["arch"]))
    result = {"algorithm": "random", "space": space.name, "seed": cfg.seed, "arch": ranked[0]["arch"],
              "best": ranked[0], "top": ranked[:max(1, cfg.top)], "num_scored": len(rows),
              "trained_now": len(todo), "flops_min": cfg.flops_min, "flops_max": cfg.flops_max,
              "recipe_hash": recipe_hash(cfg.search_recipe),
              "train_seconds": round(sum(r["seconds"] for r in rows), 2), "seconds": round(time.time() - t0, 2)}
    (out / "result.json").write_text(dumps(result, indent=2) + "\n")
    return result
