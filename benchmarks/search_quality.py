"""Search quality at equal search cost: every method's pick retrained from scratch with one recipe and seeds.

    python benchmarks/search_quality.py SPEC.yaml --out DIR [--only a,b] [--parallel N] [--check]
        [--summary-only] [--markdown] [--results FILE]

Each entry of the spec yields one architecture (its *pick*), which is then retrained once per seed with
``distilnas retrain PICK --config RETRAIN --out DIR/<label>/retrain_seed<s> seed=<s> threads=1``; the
table gives the test accuracy (mean and sample standard deviation over the seeds), params, FLOPs and what
the search cost. A spec::

    retrain: configs/retrain/mobilenet_fmnist16.yaml   # one recipe for every pick
    retrain_overrides: []                              # key=value, after the script's seed= and threads=1
    seeds: [0, 1, 2]                                   # retraining seeds
    search_seed: 0                                     # seed= of the search and random_search entries
    results: benchmarks/results/search_quality.json    # the committed results (default: DIR/summary.json only)
    flops_range: [4.0e6, 6.0e6]                        # picks outside are marked (in_range: false)
    space: {name: mobilenet, preset: fmnist16}         # the space of the arch and hand entries
    baseline: random                                   # every other entry is compared with it
    compare: [[cream, spos]]                           # more pairs [entry, reference]
    figure: docs/img/benchmark/search_quality.png     # accuracy against FLOPs, per seed and mean +- sd
    entries:
      - {label: cream, search: CONFIG, overrides: [...]}        # distilnas search; pick: result.json's arch
      - {label: random, random_search: CONFIG}                  # distilnas random-search; likewise
      - {label: dna, steps: [[train, ...], [search, ...], ...], pick: "{out}/search/result.json"}
      - {label: fixed, arch: "k3e6-k3e6_..."}                   # a given architecture
      - {label: hand, hand: {flops_max: 6.0e6}}                 # MobileNetV2-like, see below

``steps`` are distilnas commands only (the name of a ``distilnas`` subcommand, then its arguments; run as
``python -m distilnas.cli ...``, never through a shell); ``{out}`` in an argument is the entry's
directory ``DIR/<label>``; ``pick`` is a JSON file with an ``arch`` key (e.g. what ``dna-search``
writes, next to the ``config.yaml`` of ``dna-merge``), retrained like a search's result.json. ``hand`` is
``MobileNetSpace.uniform_within(3, E, flops_max)`` in ``space``: k3 and the largest expansion E <= 6 in
every layer, depths as equal across stages as the budget allows, filled from the first stage.

Search cost (``search_seconds``): a search's ``train_seconds + score_seconds`` (result.json; resumed runs
included), a random search's ``train_seconds`` (the candidates' one-thread training, summed), a steps
entry's wall seconds of its steps, summed; nothing for arch and hand entries.

Resume: finished work is never redone. A search whose result.json exists is skipped and a killed one
continues with ``--resume`` (from its checkpoint.pt); a random search continues from its runs.jsonl; a
finished step is recorded in ``DIR/<label>/steps.jsonl`` (a ``search``, ``train``, ``retrain`` or
``random-search`` step whose ``--out`` holds result.json counts as finished too, and a killed ``search``
step resumes); a retraining whose result.json exists is skipped, a killed one starts again. Everything in
the spec (keys, entries, configs, overrides, steps, fixed architectures) is checked before anything runs;
bad input is one line ``search_quality: error: ...`` and exit status 2. A failed command ends its entry
(the others go on) and the script with status 1. Paths are relative to the working directory (run it from
the repository root). ``--only`` limits what runs; the table and results always cover every entry.

Comparisons (``baseline``, ``compare``): the difference of mean test accuracy, entry minus reference, in
points, with a 95% Welch t interval over the retraining seeds (unpaired: two picks retrained with one seed
share the data order, not their initial weights) and a verdict: better / worse / no evidence (the interval
holds 0) / too few seeds (fewer than 2 on a side) / no spread (identical runs on both sides). With 3 seeds
the interval is wide: a difference has to be several seed spreads large to count. It covers the retraining
noise of one pick per entry (one search seed), so a verdict compares two picks, not two methods over
their search seeds; and nothing corrects for making several comparisons.

Writes ``DIR/summary.json``, ``DIR/summary.csv`` (one row per entry) and the ``--results`` JSON (default:
the spec's ``results``), all atomically, the ``figure`` when one is set (``--figure`` wins; needs
matplotlib), and prints the tables (``--markdown``: Markdown). Logs: ``DIR/<label>/<step>.log``. The step machinery (checking, running,
resuming) lives in ``steps.py``, shared with ``run_suite.py``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import signal
import statistics
import subprocess  # noqa: F401  (the module steps.py runs commands with; tests replace its Popen here)
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_suite import render_table  # noqa: E402
from steps import (  # noqa: E402  (the step machinery, shared with run_suite.py)
    EXE,
    JobError,
    SpecError,
    allow_commands,
    check_config,
    interrupted,
    on_sigterm,
    parse_step,
    read_json,
    read_records,
    run_command,
    run_steps,
    stop_all,
    strings,
)
from steps import as_spec_error as _as_spec_error  # noqa: E402
from steps import make_space as _space  # noqa: E402

from distilnas.config import apply_overrides, from_dict, load_yaml  # noqa: E402
from distilnas.evaluate.metrics import verdict  # noqa: E402
from distilnas.fileio import LockedError, OutputError, prepare_out_dir, run_lock, write_atomic  # noqa: E402
from distilnas.report import ReportError  # noqa: E402

SPEC_KEYS = ("retrain", "retrain_overrides", "seeds", "search_seed", "results", "flops_range", "space", "baseline",
             "compare", "figure", "entries")
WAYS = ("search", "random_search", "steps", "arch", "hand")  # exactly one per entry
EXTRA_KEYS = {"search": ("overrides",), "random_search": ("overrides",), "steps": ("pick",), "arch": (), "hand": ()}
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
@dataclass
class Entry:
    """One row of the table: how its architecture is found (``how`` is one of :data:`WAYS`)."""

    label: str
    how: str
    source: Any  # config path (search, random_search), list of argv (steps), arch string (arch), dict (hand)
    overrides: list[str] = field(default_factory=list)
    pick: str = ""  # steps: the JSON file whose arch is retrained ({out} replaced)
    arch: str = ""  # arch and hand: the canonical architecture


@dataclass
class Spec:
    retrain: str
    retrain_overrides: list[str]
    seeds: list[int]
    search_seed: int
    results: str | None
    flops_range: tuple[float, float] | None
    space: dict[str, Any]  # the space of arch and hand entries ({} when there are none)
    entries: list[Entry]
    comparisons: list[tuple[str, str]] = field(default_factory=list)  # (entry, reference): entry - reference
    figure: str | None = None


# ---------------------------------------------------------------------------------------------------
# The spec, checked in full before anything runs
def _number(value: Any, where: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{where}: expected a number, got {value!r}") from None
    if not x >= 0:
        raise SpecError(f"{where}: expected a number >= 0, got {value!r}")
    return x


def _config_file(path: Any, where: str) -> str:
    if not isinstance(path, str) or not Path(path).is_file():
        raise SpecError(f"{where}: config file {path!r} not found (a spec's paths are relative to the directory "
                        f"you run from: run from the repository root)")
    return path


def step_argv(entry: Entry, entry_dir: Path) -> list[list[str]]:
    """The entry's steps with ``{out}`` replaced by its directory (plain replacement, no formatting)."""
    return [[a.replace("{out}", str(entry_dir)) for a in step] for step in entry.source]


def _hand_arch(options: dict[str, Any], hand: Any, where: str) -> str:
    from distilnas.spaces.mobilenet import MobileNetSpace

    if not isinstance(hand, dict) or set(hand) != {"flops_max"}:
        raise SpecError(f"{where}: hand takes exactly {{flops_max: N}}, got {hand!r}")
    flops_max = _number(hand["flops_max"], f"{where}: hand.flops_max")
    with _as_spec_error(where):
        space = _space(options)
        if not isinstance(space, MobileNetSpace):
            raise SpecError(f"{where}: hand needs the mobilenet space, got {space.name!r}")
        under6 = [e for e in space.cfg.expansions if e <= 6]
        if 3 not in space.cfg.kernels or not under6:
            raise SpecError(f"{where}: hand needs kernel 3 and an expansion <= 6 (space: kernels "
                            f"{space.cfg.kernels}, expansions {space.cfg.expansions})")
        return str(space.uniform_within(3, max(under6), flops_max))


def _entry(raw: Any, i: int, spec_space: dict[str, Any], search_seed: int) -> Entry:
    if not isinstance(raw, dict):
        raise SpecError(f"entries[{i}]: expected a mapping with label and one of {', '.join(WAYS)}")
    label = raw.get("label")
    if not isinstance(label, str) or not LABEL.fullmatch(label):
        raise SpecError(f"entries[{i}]: label {label!r} must be a name of letters, digits, '_', '.' or '-'")
    where = f"entry {label}"
    ways = [w for w in WAYS if w in raw]
    if len(ways) != 1:
        raise SpecError(f"{where}: needs exactly one of {', '.join(WAYS)}, got "
                        f"{', '.join(ways) if ways else 'none'}")
    how = ways[0]
    unknown = sorted(set(raw) - {"label", how, *EXTRA_KEYS[how]})
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]!r} for a {how} entry (allowed: label, {how}"
                        f"{''.join(', ' + k for k in EXTRA_KEYS[how])})")
    e = Entry(label, how, raw[how])
    if how in ("search", "random_search"):
        e.source = _config_file(raw[how], where)
        e.overrides = strings(raw.get("overrides", []), f"{where}: overrides", key_value=True)
        check_config(how, e.source, [f"seed={search_seed}", *e.overrides], where)
    elif how == "steps":
        steps = raw["steps"]
        if not isinstance(steps, list) or not steps:
            raise SpecError(f"{where}: steps must be a non-empty list of [subcommand, arg, ...]")
        e.source = [strings(s, f"{where}: steps[{j}]") for j, s in enumerate(steps)]
        if not isinstance(raw.get("pick"), str) or not raw["pick"]:
            raise SpecError(f"{where}: a steps entry needs pick: the JSON file (with an 'arch') to retrain")
        e.pick = raw["pick"]
    elif how == "arch":
        if not isinstance(raw["arch"], str):
            raise SpecError(f"{where}: arch must be a string")
        if not spec_space:
            raise SpecError(f"{where}: an arch entry needs the spec's space (e.g. {{name: mobilenet, preset: "
                            f"fmnist16}}) or a space section in the retrain config")
        with _as_spec_error(f"{where}: arch"):
            e.arch = str(_space(spec_space).parse(raw["arch"]))
    else:
        if not spec_space:
            raise SpecError(f"{where}: a hand entry needs the spec's space (e.g. {{name: mobilenet, preset: "
                            f"fmnist16}})")
        e.arch = _hand_arch(spec_space, raw["hand"], where)
    return e


def load_spec(path: str | Path, entry_root: Path) -> Spec:
    """The spec at ``path``, checked in full (steps are checked with ``{out}`` = ``entry_root/<label>``)."""
    with _as_spec_error(str(path)):
        raw = load_yaml(path)
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise SpecError(f"{path}: unknown key {unknown[0]!r}; known keys: {', '.join(SPEC_KEYS)}")
    for key in ("retrain", "seeds", "entries"):
        if key not in raw:
            raise SpecError(f"{path}: missing key {key!r}")
    retrain = _config_file(raw["retrain"], "retrain")
    retrain_overrides = strings(raw.get("retrain_overrides", []), "retrain_overrides", key_value=True)
    seeds = raw["seeds"]
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise SpecError(f"seeds: expected a non-empty list of distinct integers >= 0, got {seeds!r}")
    search_seed = raw.get("search_seed", 0)
    if not isinstance(search_seed, int) or isinstance(search_seed, bool) or search_seed < 0:
        raise SpecError(f"search_seed: expected an integer >= 0, got {search_seed!r}")
    if not isinstance(raw.get("results", ""), str):
        raise SpecError(f"results: expected a file path, got {raw['results']!r}")
    rng = raw.get("flops_range")
    if rng is not None:
        if not isinstance(rng, list) or len(rng) != 2:
            raise SpecError(f"flops_range: expected [lo, hi], got {rng!r}")
        rng = (_number(rng[0], "flops_range"), _number(rng[1], "flops_range"))
        if rng[0] > rng[1]:
            raise SpecError(f"flops_range: lo {rng[0]:,.0f} is above hi {rng[1]:,.0f}")
    with _as_spec_error(f"retrain {retrain}"):
        from distilnas.train.retrain import RetrainConfig

        retrain_cfg = apply_overrides(load_yaml(retrain), retrain_overrides)
        from_dict(RetrainConfig, retrain_cfg)
    spec_space = raw.get("space") or {}
    if not isinstance(spec_space, dict):
        raise SpecError(f"space: expected a mapping such as {{name: mobilenet, preset: fmnist16}}, got {spec_space!r}")
    spec_space = {**(retrain_cfg.get("space") or {}), **spec_space}
    if not isinstance(raw["entries"], list) or not raw["entries"]:
        raise SpecError("entries: expected a non-empty list")
    entries = [_entry(r, i, spec_space, search_seed) for i, r in enumerate(raw["entries"])]
    labels = [e.label for e in entries]
    dup = next((lab for lab in labels if labels.count(lab) > 1), None)
    if dup:
        raise SpecError(f"entries: label {dup!r} appears twice")
    for e in entries:
        if e.how == "steps":
            for j, argv in enumerate(step_argv(e, entry_root / e.label)):
                parse_step(argv, f"entry {e.label}: steps[{j}]")
    figure = raw.get("figure")
    if figure is not None and (not isinstance(figure, str) or not figure.endswith(".png")):
        raise SpecError(f"figure: expected a .png path, got {figure!r}")
    return Spec(retrain, retrain_overrides, list(seeds), search_seed, raw.get("results"), rng, spec_space, entries,
                _comparisons(raw, labels), figure)


def _comparisons(raw: dict[str, Any], labels: list[str]) -> list[tuple[str, str]]:
    """(entry, reference) pairs: every entry against ``baseline``, then the ``compare`` pairs, each once."""
    known = f"the spec has {', '.join(labels)}"
    baseline = raw.get("baseline")
    if baseline is not None and baseline not in labels:
        raise SpecError(f"baseline: no entry {baseline!r}; {known}")
    pairs = [(lab, baseline) for lab in labels if baseline is not None and lab != baseline]
    compare = raw.get("compare", [])
    if not isinstance(compare, list):
        raise SpecError(f"compare: expected a list of [entry, reference] pairs, got {compare!r}")
    for j, pair in enumerate(compare):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise SpecError(f"compare[{j}]: expected [entry, reference], got {pair!r}")
        bad = next((x for x in pair if x not in labels), None)
        if bad is not None:
            raise SpecError(f"compare[{j}]: no entry {bad!r}; {known}")
        if pair[0] == pair[1]:
            raise SpecError(f"compare[{j}]: {pair[0]!r} against itself")
        pairs.append((pair[0], pair[1]))
    return list(dict.fromkeys(pairs))


def _run_steps(e: Entry, spec: Spec, out: Path) -> None:
    """Run the steps not yet finished, in order, recording each finished one in steps.jsonl."""
    d = out / e.label
    run_steps(step_argv(e, d), d, e.label, f"entry {e.label}", log=d / "steps.log", record=d / "steps.jsonl")


def pick_target(e: Entry, out: Path) -> Path | None:
    """Where the entry's pick is read from (None: arch and hand, which need no file)."""
    d = out / e.label
    if e.how == "search":
        return d / "search" / "result.json"
    if e.how == "random_search":
        return d / "random_search" / "result.json"
    if e.how == "steps":
        return Path(e.pick.replace("{out}", str(d)))
    return None


def find_pick(e: Entry, spec: Spec, out: Path) -> Path | None:
    """Run (or resume) what the entry needs to have its pick; the pick file (None for arch and hand)."""
    target = pick_target(e, out)
    if target is None:
        return None
    d = out / e.label
    if e.how == "steps":
        _run_steps(e, spec, out)
    elif not target.exists():
        run_dir = target.parent
        if e.how == "search":
            resume = ["--resume"] if (run_dir / "checkpoint.pt").exists() else []
            cmd = [*EXE, "search", e.source, "--out", str(run_dir), *resume, f"seed={spec.search_seed}",
                   "train.threads=1", *e.overrides]
        else:  # random-search resumes from its runs.jsonl by itself
            cmd = [*EXE, "random-search", e.source, "--out", str(run_dir), f"seed={spec.search_seed}", *e.overrides]
        run_command(cmd, d / f"{e.how}.log", e.label)
    pick = read_json(target)
    if pick is None or not pick.get("arch"):
        raise JobError(f"entry {e.label}: {target} is {'missing' if pick is None else 'without an arch'}; "
                       f"it should hold the architecture to retrain")
    return target


def retrain_one(e: Entry, pick: Path | None, seed: int, spec: Spec, out: Path) -> None:
    """``distilnas retrain`` of the entry's pick with one seed, unless its result.json exists."""
    run_dir = out / e.label / f"retrain_seed{seed}"
    if (run_dir / "result.json").exists():
        return
    if pick is None:  # a literal arch: its space comes from the spec
        target, space = e.arch, [f"space.{k}={json.dumps(v)}" for k, v in spec.space.items()]
    else:
        target, space = str(pick), []
    run_command([*EXE, "retrain", target, "--config", spec.retrain, "--out", str(run_dir), f"seed={seed}",
                 "threads=1", *space, *spec.retrain_overrides], out / e.label / f"retrain_seed{seed}.log", e.label)


def run_all(entries: list[Entry], spec: Spec, out: Path, parallel: int) -> list[str]:
    """Every entry's pick, then its retrainings, ``parallel`` commands at a time; the failures."""
    failures: list[str] = []
    allow_commands()
    pool = ThreadPoolExecutor(max(1, parallel))
    try:
        pending: dict[Future[Any], tuple[Entry, int | None]] = {
            pool.submit(find_pick, e, spec, out): (e, None) for e in entries}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                e, seed = pending.pop(f)
                try:
                    pick = f.result()
                except (JobError, SpecError) as err:  # SpecError: a step's config changed since the check
                    failures.append(str(err))
                    continue
                if seed is None:
                    for s in spec.seeds:
                        pending[pool.submit(retrain_one, e, pick, s, spec, out)] = (e, s)
    except KeyboardInterrupt:  # Ctrl-C or kill: queued commands never start, running ones stop cleanly
        stop_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return failures


# ---------------------------------------------------------------------------------------------------
# Summary: everything is read back from the run directories
def _search_cost(e: Entry, out: Path) -> tuple[float | None, str | None]:
    """(seconds, where they come from) of the entry's search, when it has finished."""
    target = pick_target(e, out)
    if target is None:
        return None, None
    if e.how == "steps":
        recs = {r["step"]: r for r in read_records(out / e.label / "steps.jsonl") if isinstance(r.get("step"), int)}
        if len(recs) < len(e.source) or not target.exists():
            return None, None
        return round(sum(float(r.get("seconds") or 0) for r in recs.values()), 1), "wall seconds of the steps, summed"
    r = read_json(target)
    if r is None:
        return None, None
    if e.how == "search":
        return round(float(r.get("train_seconds", 0)) + float(r.get("score_seconds", 0)), 1), \
            "result.json train_seconds + score_seconds"
    return float(r.get("train_seconds", 0)), "result.json train_seconds (candidates' training, one thread each)"


def retrained(e: Entry, spec: Spec, out: Path) -> dict[int, dict[str, Any]]:
    """seed -> the result.json of the entry's finished retrainings."""
    runs = {s: read_json(out / e.label / f"retrain_seed{s}" / "result.json") for s in spec.seeds}
    return {s: r for s, r in runs.items() if r is not None and r.get("test_accuracy") is not None}


def entry_summary(e: Entry, spec: Spec, out: Path) -> dict[str, Any]:
    """The entry's row: pick, costs, and per-seed retrained accuracies (what exists so far)."""
    target = pick_target(e, out)
    pick = read_json(target) if target is not None else None
    arch = e.arch or (pick or {}).get("arch")
    runs = retrained(e, spec, out)
    if runs:  # the network that was trained
        first = runs[min(runs)]
        arch, params, flops = first["arch"], first.get("params"), first.get("flops")
    elif e.arch:
        cost = _space(spec.space).cost(_space(spec.space).parse(e.arch))
        params, flops = int(cost["params"]), int(cost["flops"])
    else:
        best = (pick or {}).get("best") or {}
        params, flops = (pick or {}).get("params", best.get("params")), (pick or {}).get("flops", best.get("flops"))
    seconds, seconds_from = _search_cost(e, out)
    test = [float(runs[s]["test_accuracy"]) for s in sorted(runs)]
    row: dict[str, Any] = {
        "label": e.label, "how": e.how,
        "source": e.source if e.how in ("search", "random_search") else (e.pick or None),
        "overrides": e.overrides or None, "arch": arch, "params": params, "flops": flops,
        "in_range": (None if spec.flops_range is None or flops is None
                     else spec.flops_range[0] <= float(flops) <= spec.flops_range[1]),
        "search_seconds": seconds, "search_seconds_from": seconds_from,
        "seeds": sorted(runs), "test_acc": test,
        "val_acc": [runs[s].get("val_accuracy") for s in sorted(runs)],
        "mean": round(statistics.mean(test), 4) if test else None,
        "std": round(statistics.stdev(test), 4) if len(test) >= 2 else None,
        "retrain_seconds": [runs[s].get("seconds") for s in sorted(runs)],
    }
    if e.how == "hand":
        row["hand"] = e.source
    return row


def summarize(spec: Spec, spec_path: str, out: Path) -> dict[str, Any]:
    """The results: one row per entry of the spec, from what is on disk."""
    rows = [entry_summary(e, spec, out) for e in spec.entries]
    setups = {(json.dumps(r.get("config", {}).get("data"), sort_keys=True), r.get("recipe_hash"))
              for e in spec.entries for r in retrained(e, spec, out).values()}
    warnings = []
    if len(setups) > 1:
        warnings.append("the retrainings differ in data config or recipe (see each retrain_seed*/result.json)")
    for r in rows:
        if r["in_range"] is False:
            warnings.append(f"{r['label']}: {r['flops']:,} FLOPs is outside flops_range")
    missing = [r["label"] for r in rows if r["seeds"] != spec.seeds]
    status = "complete" if not missing else f"partial: not every seed retrained for {', '.join(missing)}"
    acc = {r["label"]: r["test_acc"] for r in rows}
    comparisons = [{"entry": a, "ref": b, **accuracy_difference(acc[a], acc[b])} for a, b in spec.comparisons]
    return {"about": "test accuracy (%) of each entry's pick retrained from scratch with one recipe, one run per "
                     "seed; mean and sample standard deviation over seeds (benchmarks/search_quality.py)",
            "status": status, "spec": spec_path, "out": str(out.resolve()), "retrain": spec.retrain,
            "retrain_overrides": spec.retrain_overrides,
            "seeds": spec.seeds, "search_seed": spec.search_seed,
            "flops_range": list(spec.flops_range) if spec.flops_range else None,
            "warnings": warnings, "entries": rows,
            "comparisons_about": "entry - ref: difference of mean test accuracy (points), 95% Welch t interval "
                                 "over the retraining seeds (unpaired), verdict better / worse / no evidence "
                                 "(the interval holds 0) / too few seeds (fewer than 2 on a side) / no spread "
                                 "(identical runs on both sides). The interval covers retraining noise of one "
                                 "pick per entry (one search seed): a verdict compares two picks, not two "
                                 "methods over search seeds; no correction for making several comparisons",
            "comparisons": comparisons}


def accuracy_difference(a: list[float], b: list[float]) -> dict[str, Any]:
    """mean(a) - mean(b) with a 95% Welch t interval (``scipy.stats.ttest_ind(equal_var=False)``) and its
    verdict; fewer than 2 values on a side: no interval, ``too few seeds``."""
    diff = round(statistics.mean(a) - statistics.mean(b), 4) if a and b else None
    out: dict[str, Any] = {"mean": diff, "ci95": None, "verdict": "too few seeds", "n": [len(a), len(b)]}
    if len(a) < 2 or len(b) < 2:
        return out
    if statistics.variance(a) == statistics.variance(b) == 0:  # identical runs on both sides: no interval
        return {**out, "verdict": "no spread"}
    from scipy import stats

    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    lo, hi = float(ci.low), float(ci.high)
    return {**out, "ci95": [round(lo, 4), round(hi, 4)], "verdict": verdict(lo, hi)}


CSV_COLUMNS = ("label", "how", "arch", "params", "flops", "in_range", "search_seconds", "seeds", "test_acc", "mean",
               "std")


def write_outputs(summary: dict[str, Any], out: Path, results: str | None, figure: str | None) -> None:
    """summary.json and summary.csv in ``out``, the results JSON, and the figure (atomic writes). A partial
    summary of another --out never replaces complete results (a look at a scratch folder must not undo the
    committed table): then the results and the figure are kept, and a line on stderr says so."""
    text = json.dumps(summary, indent=1, allow_nan=False) + "\n"
    previous = read_json(Path(results)) if results else None
    if (previous is not None and previous.get("status") == "complete" and summary["status"] != "complete"
            and previous.get("out") != summary["out"]):
        print(f"search_quality: kept {results} and the figure: they hold complete results and this summary is "
              f"{summary['status'].split(':')[0]} (pass --results FILE to write it elsewhere)", file=sys.stderr)
        results = figure = None
    rows = [[" ".join(f"{x:g}" for x in r[k]) if k in ("seeds", "test_acc") else "" if r[k] is None else r[k]
             for k in CSV_COLUMNS] for r in summary["entries"]]
    table = io.StringIO(newline="")
    csv.writer(table).writerows([CSV_COLUMNS, *rows])
    for path, content in ((out / "summary.json", text), (out / "summary.csv", table.getvalue()),
                          *([(Path(results), text)] if results else [])):
        write_atomic(path, content, newline="")
    if figure and any(r["test_acc"] for r in summary["entries"]):
        from distilnas.report import plot_search_quality

        try:
            plot_search_quality(summary, figure)
        except OSError as e:
            raise OutputError(f"cannot write the figure {figure} ({e.strerror or type(e).__name__}); choose a "
                              f"writable .png path") from None


def _flops(x: Any) -> str:
    return "" if x is None else f"{float(x) / 1e6:.2f}M"


def print_table(summary: dict[str, Any], markdown: bool) -> None:
    head = ["entry", "architecture", "test acc (mean ± sd, n seeds)", "params", "FLOPs", "search cost"]
    rows = []
    for r in summary["entries"]:
        n = len(r["test_acc"])
        acc = ("not run" if n == 0 else f"{r['mean']:.2f} ({n})" if n == 1
               else f"{r['mean']:.2f} ± {r['std']:.2f} ({n})")
        flops = _flops(r["flops"]) + (" (out of range)" if r["in_range"] is False else "")
        cost = ("-" if r["how"] in ("arch", "hand") else "not run" if r["search_seconds"] is None
                else f"{r['search_seconds']:,.0f} s")
        arch = f"`{r['arch']}`" if markdown and r["arch"] else (r["arch"] or "")
        rows.append([r["label"], arch, acc, "" if r["params"] is None else f"{r['params']:,}", flops, cost])
    print(summary["status"])
    print(render_table(head, rows, markdown))
    rng = summary["flops_range"]
    print(f"retrained with {summary['retrain']} {' '.join(summary['retrain_overrides'])}".rstrip()
          + f", seeds {summary['seeds']}" + (f"; FLOPs range {_flops(rng[0])} - {_flops(rng[1])}" if rng else ""))
    if summary["comparisons"]:
        rows = [[f"{c['entry']} - {c['ref']}", "" if c["mean"] is None else f"{c['mean']:+.2f}",
                 "" if c["ci95"] is None else f"[{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]", c["verdict"],
                 f"{c['n'][0]} vs {c['n'][1]}"] for c in summary["comparisons"]]
        print()
        print(render_table(["comparison", "difference (points)", "95% CI (Welch)", "verdict", "seeds"], rows,
                           markdown))
    for w in summary["warnings"]:
        print(f"warning: {w}")


def print_plan(spec: Spec, out: Path) -> None:
    for e in spec.entries:
        if e.how in ("search", "random_search"):
            what = f"{e.how.replace('_', '-')} {e.source} seed={spec.search_seed} {' '.join(e.overrides)}".rstrip()
        elif e.how == "steps":
            what = (f"{len(e.source)} steps ({', '.join(s[0] for s in e.source)}), pick "
                    f"{pick_target(e, out)}")
        else:
            cost = _space(spec.space).cost(_space(spec.space).parse(e.arch))
            what = f"{e.how} {e.arch} ({cost['flops'] / 1e6:.2f}M FLOPs, {int(cost['params']):,} params)"
        print(f"{e.label}: {what}")
    print(f"then {len(spec.entries) * len(spec.seeds)} retrainings ({len(spec.entries)} entries x seeds "
          f"{spec.seeds}) with {spec.retrain} {' '.join(spec.retrain_overrides)}".rstrip())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="search_quality", description=__doc__.splitlines()[0])
    ap.add_argument("spec")
    ap.add_argument("--out", default=None, help="run directories and logs (required unless --check)")
    ap.add_argument("--only", default="", help="comma-separated labels to run (the table still shows every entry)")
    ap.add_argument("--parallel", type=int, default=1, help="commands at a time (one torch thread each)")
    ap.add_argument("--check", action="store_true", help="check the spec, print the plan and exit")
    ap.add_argument("--summary-only", action="store_true", help="run nothing: summarise what is on disk")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--results", default=None, help="results JSON (default: the spec's 'results')")
    ap.add_argument("--figure", default=None, help="PNG: accuracy against FLOPs (default: the spec's 'figure')")
    args = ap.parse_args(argv)
    try:
        if args.out is None and not args.check:
            raise SpecError("--out DIR is required (unless --check)")
        out = Path(args.out or "OUT")
        spec = load_spec(args.spec, out)
        only = [s for s in args.only.split(",") if s]
        labels = [e.label for e in spec.entries]
        bad = [s for s in only if s not in labels]
        if bad:
            raise SpecError(f"--only: no entry {bad[0]!r}; the spec has {', '.join(labels)}")
        if args.parallel < 1:
            raise SpecError(f"--parallel {args.parallel}: need at least 1")
        if args.figure is not None and not args.figure.endswith(".png"):
            raise SpecError(f"--figure {args.figure}: expected a .png path")
    except SpecError as e:
        print(f"search_quality: error: {e}", file=sys.stderr)
        return 2
    if args.check:
        print_plan(spec, out)
        print(f"{args.spec}: OK")
        return 0
    try:
        prepare_out_dir(out, "search-quality directory (--out)")
        if args.figure or spec.figure:  # before hours of work, not after them
            from distilnas.report import _plt

            _plt()
    except (OutputError, ReportError) as e:
        print(f"search_quality: error: {e}", file=sys.stderr)
        return 2
    failures: list[str] = []
    if not args.summary_only:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
        try:
            with run_lock(out, "search-quality directory"):  # a second run into OUT stops at once
                failures = run_all([e for e in spec.entries if not only or e.label in only], spec, out,
                                   args.parallel)
        except LockedError as e:
            print(f"search_quality: error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as e:
            return interrupted("search_quality", e)
        finally:
            signal.signal(signal.SIGTERM, previous)
    summary = summarize(spec, args.spec, out)
    try:
        write_outputs(summary, out, args.results or spec.results, args.figure or spec.figure)
    except (OutputError, ReportError) as e:  # e.g. a read-only results path
        print_table(summary, args.markdown)
        for f in failures:
            print(f"search_quality: failed: {f}", file=sys.stderr)
        print(f"search_quality: error: {e}", file=sys.stderr)
        return 2
    print_table(summary, args.markdown)
    for f in failures:
        print(f"search_quality: failed: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
