"""Ground truth: train sampled architectures standalone with one fixed recipe and several seeds.

Runs in parallel worker processes (one thread each: on small CPUs that beats one process with several
threads), appends every finished (arch, seed) to ``runs.jsonl`` at once (so an interrupted build resumes
and keeps finished work), and aggregates to ``table.json``::

    {"recipe_hash": ..., "config": {...}, "archs": {arch: {"accuracy": [per seed], "loss": [...],
     "seeds": [...], "params": P, "flops": F}}}

Seed ``s`` initialises the network and orders the batches; every architecture sees the same batch order
for the same seed (common random numbers, which lowers the variance of comparisons between archs).
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

from ..config import MAX_SEED, ConfigError, opt
from ..data import DataConfig
from ..fileio import dumps, prepare_out_dir, run_lock
from ..train.parallel import append_record, open_records, read_records, run_jobs
from ..train.standalone import Recipe, TrainingDiverged, recipe_hash

__all__ = ["BenchConfig", "build_ground_truth", "sample_archs", "load_truth", "load_truth_dir", "load_table",
           "aggregate_runs"]


@dataclass
class BenchConfig:
    """What a ground-truth table is built from."""

    space: str = "nb201"
    space_cfg: dict[str, Any] = field(default_factory=dict)  # overrides of the space's config
    data: DataConfig = field(default_factory=DataConfig)
    recipe: Recipe = field(default_factory=Recipe)
    num_archs: int = opt(64, ge=1)
    sample_seed: int = opt(2026, ge=0, le=MAX_SEED)  # which architectures are sampled
    # uniform: uniform over the space's choices (FLOPs then concentrate: on the MobileNet space 90% of the
    # samples lie within 1.6x of each other while the space spans 8.6x); flops_spread: one architecture per
    # FLOPs target, the targets evenly spaced in log-FLOPs over the space's range (capacity then differs)
    sample: str = opt("uniform", choices=("uniform", "flops_spread"))
    connected_only: bool = True  # NB201: skip cells whose output is cut off from their input
    unique: bool = True  # NB201: at most one architecture per isomorphism class
    seeds: list[int] = opt(default_factory=lambda: [0, 1], ge=0, le=MAX_SEED)
    workers: int = opt(2, ge=1)
    threads_per_worker: int = opt(1, ge=1)
    # ground truth = top-1 accuracy on this split; holdout: the test images plus the training-file images
    # that train_size leaves unused (data.load_holdout: 4x the test set on fmnist at train_size 20000, so
    # less sampling noise); a holdout run also records test_accuracy, on the test images alone
    eval_split: str = opt("test", choices=("test", "val", "train", "holdout"))
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("seeds=[]: list at least one training seed, e.g. seeds=[0, 1]")


def _space(cfg: BenchConfig):
    from ..spaces import build_space_config
    from ..spaces import create_space

    return create_space(cfg.space, build_space_config(cfg.space, cfg.space_cfg))


def sample_archs(cfg: BenchConfig) -> list[str]:
    """The benchmark's architectures (``cfg.sample``), optionally connected and unique."""
    space = _space(cfg)
    rng = random.Random(cfg.sample_seed)
    keys: set[str] = set()

    def admit(a: Any) -> bool:
        if cfg.connected_only and hasattr(a, "is_connected") and not a.is_connected():
            return False
        key = a.isomorphism_key() if cfg.unique and hasattr(a, "isomorphism_key") else str(a)
        if key in keys:
            return False
        keys.add(key)
        return True

    if cfg.sample == "flops_spread":
        return _flops_spread(space, cfg.num_archs, rng, admit)
    out: list[str] = []
    for _ in range(1000 * cfg.num_archs):
        if len(out) == cfg.num_archs:
            break
        a = space.sample(rng)
        if admit(a):
            out.append(str(a))
    if len(out) < cfg.num_archs:
        raise ConfigError(f"num_archs={cfg.num_archs}, but {1000 * cfg.num_archs:,} samples of the space held only "
                          f"{len(out)} distinct{' connected' if cfg.connected_only else ''} architectures; lower "
                          f"num_archs or widen the space")
    return out


def _flops_spread(space: Any, n: int, rng: random.Random, admit: Any, steps: int = 400) -> list[str]:
    """``n`` architectures whose FLOPs span the space: target ``i`` sits at (i + 0.5) / n of the way from
    the smallest to the largest FLOPs in log scale (the space's exact range where it knows it, else the
    range of 2,000 uniform samples); each is reached from a uniform sample by a greedy walk of mutations
    that never moves away from its target, so apart from FLOPs the choices stay random."""
    def flops(a: Any) -> float:
        return float(space.cost(a)["flops"])

    if hasattr(space, "flops_range"):
        lo, hi = map(float, space.flops_range())
    else:
        seen = [flops(space.sample(rng)) for _ in range(2000)]
        lo, hi = min(seen), max(seen)
    targets = [math.exp(math.log(lo) + (i + 0.5) / n * (math.log(hi) - math.log(lo))) for i in range(n)]
    out: list[str] = []
    for t in targets:
        for _ in range(100):  # a walk that ends on a duplicate (or a cut-off cell) starts again
            a = space.sample(rng)
            gap = abs(math.log(flops(a) / t))
            for _ in range(steps):
                try:
                    b = space.mutate(a, rng)
                except IndexError:  # nothing left to change: the space has a single architecture
                    break
                g = abs(math.log(flops(b) / t))
                if g <= gap:
                    a, gap = b, g
            if admit(a):
                out.append(str(a))
                break
        else:
            raise ConfigError(f"sample=flops_spread found no new architecture near {t:,.0f} FLOPs in 100 walks; "
                              f"lower num_archs (this space may have too few distinct architectures)")
    return out


def _hash(cfg: BenchConfig) -> str:
    return recipe_hash(cfg.recipe, {"space": cfg.space, "space_cfg": cfg.space_cfg, "data": cfg.data.identity(),
                                    "eval_split": cfg.eval_split})


_WORKER: dict[str, Any] = {}


def _train_one(cfg_dict: dict[str, Any], arch_str: str, seed: int) -> dict[str, Any]:
    from ..config import from_dict
    from ..data import load_dataset, load_holdout
    from ..spaces import count_flops, count_params
    from ..train.standalone import train_standalone

    cfg = from_dict(BenchConfig, cfg_dict)
    if _WORKER.get("data_cfg") != (cfg_dict["data"], cfg.eval_split):  # a worker process loads the dataset once
        data = load_dataset(cfg.data)
        if cfg.eval_split == "holdout":  # kept as the images beyond the test set, which is evaluated anyway
            hx, hy = load_holdout(cfg.data)
            data = dataclasses.replace(data, holdout_x=hx[len(data.test_y):], holdout_y=hy[len(data.test_y):])
        _WORKER["data"], _WORKER["data_cfg"] = data, (cfg_dict["data"], cfg.eval_split)
    space = _space(cfg)
    arch = space.parse(arch_str)
    model = space.build(arch, seed=seed)
    params, flops = count_params(model), count_flops(model, space.input_shape())
    t0 = time.time()
    try:
        sets = ("test", "holdout") if cfg.eval_split == "holdout" else (cfg.eval_split,)
        res = train_standalone(model, _WORKER["data"], cfg.recipe, seed=seed, device=cfg.device,
                               augment=cfg.data.augment, eval_sets=sets)
    except TrainingDiverged as e:
        raise TrainingDiverged(f"{arch_str} seed {seed}: {e}") from None
    if cfg.eval_split == "holdout":  # holdout = the test images + the rest: correct counts and losses summed
        n_test, n_rest = len(_WORKER["data"].test_y), len(_WORKER["data"].holdout_y)
        n = max(1, n_test + n_rest)
        correct = round(res["test_accuracy"] * n_test / 100) + round(res["holdout_accuracy"] * n_rest / 100)
        res["holdout_accuracy"] = 100.0 * correct / n  # exactly what evaluating the concatenation gives
        res["holdout_loss"] = (res["test_loss"] * n_test + res["holdout_loss"] * n_rest) / n
    out = {"arch": arch_str, "seed": seed, "accuracy": res[f"{cfg.eval_split}_accuracy"],
           "loss": res[f"{cfg.eval_split}_loss"], "params": params, "flops": flops,
           "seconds": round(time.time() - t0, 2)}
    if cfg.eval_split == "holdout":
        out["test_accuracy"] = res["test_accuracy"]  # the test images alone, for comparison
    return out


def aggregate_runs(runs: list[dict[str, Any]], archs: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """{arch: {accuracy: [..], loss: [..], seeds: [..], params, flops}} in seed order."""
    table: dict[str, dict[str, Any]] = {}
    order = archs or list(dict.fromkeys(r["arch"] for r in runs))
    by = {(r["arch"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    for a in order:
        rs = [by[(a, s)] for s in seeds if (a, s) in by]
        if not rs:
            continue
        table[a] = {"accuracy": [r["accuracy"] for r in rs], "loss": [r["loss"] for r in rs],
                    "seeds": [r["seed"] for r in rs], "params": rs[0]["params"], "flops": rs[0]["flops"]}
    return table


def build_ground_truth(cfg: BenchConfig, out_dir: str | Path, archs: list[str] | None = None,
                       progress: bool | None = True) -> dict[str, Any]:
    """Train every (arch, seed) not yet in ``out_dir/runs.jsonl``; write and return the table
    (``progress=None``: a progress bar only when stderr is a terminal). One build at a time holds
    ``out_dir`` (a second one stops with the holder's PID)."""
    out = prepare_out_dir(out_dir, "ground-truth directory (--out)")
    with run_lock(out, "ground-truth directory"):
        return _build(cfg, out, archs, progress)


def _build(cfg: BenchConfig, out: Path, archs: list[str] | None, progress: bool | None) -> dict[str, Any]:
    from ..config import to_dict

    h = _hash(cfg)
    archs = archs if archs is not None else sample_archs(cfg)
    (out / "archs.txt").write_text("\n".join(archs) + "\n")
    (out / "bench_config.json").write_text(json.dumps({"recipe_hash": h, **to_dict(cfg)}, indent=2) + "\n")
    runs_path = out / "runs.jsonl"
    runs = read_records(runs_path, "recipe_hash", h)
    done = {(r["arch"], r["seed"]) for r in runs}
    todo = [(to_dict(cfg), a, s) for a in archs for s in cfg.seeds if (a, s) not in done]
    if todo:
        with open_records(runs_path) as f:
            for r in run_jobs(_train_one, todo, cfg.workers, cfg.threads_per_worker, progress, "ground truth",
                              lambda r: f"{r['accuracy']:.2f}% {r['seconds']:.0f}s"):
                r = {**r, "recipe_hash": h}
                append_record(f, r)
                runs.append(r)
    table = {"recipe_hash": h, "config": to_dict(cfg), "archs": aggregate_runs(runs, archs)}
    (out / "table.json").write_text(dumps(table, indent=1) + "\n")
    return table


def _value(v: Any) -> float:
    """A ground-truth number; null (a NaN written as valid JSON) is NaN. Booleans are not numbers."""
    if v is None:
        return math.nan
    if isinstance(v, bool):
        raise TypeError("a boolean is not a ground-truth value")
    return float(v)


def load_truth(path: str | Path, key: str = "accuracy") -> dict[str, list[float]]:
    """Read ground truth: a builder ``table.json``, or a JSON object {arch: value or [values per seed]},
    or a JSON-lines file of {"arch": ..., key: ...} (several lines per arch are seeds)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"ground-truth file {p} not found")
    text = p.read_text()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = None
    out: dict[str, list[float]] = {}
    if isinstance(obj, dict):
        items = obj["archs"] if isinstance(obj.get("archs"), dict) else obj
        for a, v in items.items():
            if isinstance(v, dict):
                if key not in v:
                    raise ValueError(f"ground truth {p}: entry {a!r} has no {key!r} (has {sorted(v)})")
                v = v[key]
            try:
                out[a] = [_value(x) for x in v] if isinstance(v, list) else [_value(v)]
            except (TypeError, ValueError):
                raise ValueError(f"ground truth {p}: entry {a!r} holds {v!r}, not numbers") from None
        return out
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                r = json.loads(line)
                out.setdefault(r["arch"], []).append(_value(r[key]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise ValueError(f"ground truth {p} line {n}: expected a JSON object with 'arch' and {key!r}") from None
    return out


def load_table(path: str | Path) -> dict[str, dict[str, Any]]:
    """A ``bench build`` folder's rows, arch -> {"accuracy": [per seed], "seeds": [...], "flops", "params"}
    (costs None where unknown): its ``table.json``, or, while the build is still running, the runs finished
    so far in ``runs.jsonl`` (a half-written last line is skipped), seeds in order."""
    d = Path(path)
    if (d / "table.json").is_file():
        archs = json.loads((d / "table.json").read_text()).get("archs", {})
        return {a: {"accuracy": row["accuracy"], "seeds": row.get("seeds", list(range(len(row["accuracy"])))),
                    "flops": row.get("flops"), "params": row.get("params")} for a, row in archs.items()}
    if not (d / "runs.jsonl").is_file():
        raise FileNotFoundError(f"{d} holds no ground truth (table.json or runs.jsonl): build it with "
                                f"`distilnas bench build CONFIG --out {d}`")
    runs: dict[str, dict[int, Any]] = {}
    costs: dict[str, dict[str, Any]] = {}
    for line in (d / "runs.jsonl").read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(r, dict) and {"arch", "seed", "accuracy"} <= r.keys():
            runs.setdefault(r["arch"], {})[r["seed"]] = r["accuracy"]
            costs[r["arch"]] = {"flops": r.get("flops"), "params": r.get("params")}
    return {a: {"accuracy": [by[s] for s in sorted(by)], "seeds": sorted(by), **costs[a]} for a, by in runs.items()}


def load_truth_dir(path: str | Path, seed: int | None = None) -> dict[str, list[float]]:
    """A ``bench build`` folder's accuracies, arch -> [per training seed, in seed order] (:func:`load_table`:
    its ``table.json``, or the runs finished so far). ``seed=s`` keeps training seed ``s`` only (archs
    without it are left out)."""
    table = load_table(path)
    out: dict[str, list[float]] = {}
    for a, row in table.items():
        accs = [_value(x) for x, s in zip(row["accuracy"], row["seeds"]) if seed is None or s == seed]
        if accs:
            out[a] = accs
    return out
