"""Run a suite of searches over paired seeds and compare each supernet's ranking with intervals.

    python benchmarks/run_suite.py benchmarks/suites/nb201_fmnist16.yaml --out runs/suite [--parallel 2]
        [--only spos,cream] [--seeds 0,1,2] [--summary-only] [--markdown] [--results FILE]

For every (seed, entry) of the suite, seed by seed so that a cut-off suite still holds paired seeds:
``distilnas search CONFIG --out OUT/<label>/seed<s> seed=<s> train.threads=1`` (resumed when
interrupted, skipped when finished), then ``distilnas score`` of every ground-truth architecture with
the trained supernet (resumable too). The scores are copied to the suite's ``predictions`` folder (small
JSON lines, meant to be committed), from which every figure is computed:

* per entry and seed, Kendall tau of the supernet's validation accuracy against the ground truth (mean
  over its training seeds), on the **report** half of the architectures (and, separately, the tuning
  half): presets may be tuned on the tuning half only;
* per entry, the mean over seeds with a 95% interval from a bootstrap that resamples seeds and
  architectures together; against the baseline (and each ablation against its method), the paired
  difference with its interval and a verdict: better / worse / no evidence (the interval holds 0).

Writes OUT/<suite>.truth_archs.txt (the architectures every search scores), OUT/<suite>.summary.csv (one
row per run), OUT/<suite>.summary.json (several suites may share one OUT), the ``--results`` JSON (default: the suite's
``results`` key) and prints a table. A suite file::

    truth: [benchmarks/groundtruth/nb201_fmnist16, benchmarks/groundtruth/nb201_fmnist16_more]
    split: benchmarks/groundtruth/nb201_fmnist16_split.json     # {"tuning": [...], "report": [...]}
    predictions: benchmarks/results/nb201_fmnist16               # <label>/seed<s>.jsonl
    results: benchmarks/results/nb201_fmnist16.json
    baseline: spos
    seeds: [0, 1, 2, 3, 4, 5, 6, 7]
    runs:
      - {label: spos, config: configs/bench/spos_nb201_fmnist16.yaml}
      - {label: cream-random, config: configs/bench/cream_nb201_fmnist16.yaml,
         overrides: [algorithm.pick=random], compare_to: cream, seeds: [0, 1, 2]}   # its own seeds
      - label: dna                                                # a steps entry, see below
        steps:
          - [train, ARCH, --space, mobilenet, --config, configs/dna/teacher_fmnist16.yaml,
             --out, "{suite_out}/dna-teacher", threads=1]
          - [search, configs/dna/dna_mobilenet_fmnist16.yaml, --out, "{out}/block0", algorithm.block=0,
             "algorithm.teacher={suite_out}/dna-teacher", "seed={seed}"]
          - ...
          - [dna-merge, "{out}/block0", ..., --out, "{out}/potentials.json"]
        scores: [dna-score, "{out}/potentials.json", --archs, "{archs}", --out, "{scores}"]
    proxies: [jacob_cov]                          # zero-cost proxies scored once, entries proxy:NAME
    compare: [[rdnas, proxy:flops]]               # more pairs (either side: an entry or proxy:NAME)
    ensembles: [[spos, proxy:jacob_cov]]          # entry avg:spos+proxy:jacob_cov: per seed, the mean
                                                  # of each part's rank (over the archs all parts scored)

**Steps entries** rank with a pipeline of commands instead of one supernet: ``steps`` are distilnas commands
only (a ``distilnas`` subcommand, then its arguments; run as ``python -m distilnas.cli ...``, never through
a shell), run in order per seed, then ``scores``, the command that writes the run's predictions (JSON
lines with ``arch`` and ``accuracy`` or ``score``, higher = better). In an argument, ``{out}`` is the run
directory OUT/<label>/seed<s>, ``{seed}`` the suite seed, ``{suite_out}`` the suite's --out (work shared by
every seed, such as one teacher), ``{archs}`` the ground-truth architecture file and ``{scores}`` the run's
gt_scores.jsonl. A step whose ``--out`` lies outside ``{out}`` is shared: it must be a ``search``,
``train``, ``retrain`` or ``random-search`` (finished when its result.json exists); it runs under a lock
beside its --out, so a seed that needs it while another trains it waits, and it is trained once. Finished
steps are recorded in ``{out}/steps.jsonl`` and skipped when rerun (a search or train whose result.json
exists counts as finished, a killed ``search`` resumes with ``--resume``); the predictions are complete
once ``scores`` has finished. Their metadata (``seed<s>.result.json``) holds ``train_seconds``, the
steps' wall seconds summed (a step found finished: its result.json's seconds), ``score_seconds`` and the
suite's ``scoring`` (the ``scoring`` overrides apply to the ``distilnas score`` of config entries; a
``scores`` command runs as written). The machinery is ``steps.py``, shared with ``search_quality.py``.

Every entry is checked before anything runs (one of ``config`` or ``steps``, known keys, the config file;
every step and ``scores`` parsed as ``distilnas`` would, for every seed, placeholders known, ``scores``
present and writing ``{scores}``): bad input is one line ``run_suite: error: ...`` and exit status 2. A
failed command ends its run only: the others go on, the summary covers what finished, and each failure is
one line ``run_suite: failed: ...`` after the table, with status 1 (rerun to continue). ``--only`` and
``--seeds`` limit what runs; the table, the results JSON and the figures always cover the whole suite
(its entries and seeds). Ctrl-C or ``kill``
stops the running commands too (each keeps what it finished; status 130 or 143).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from steps import (  # noqa: E402  (the step machinery, shared with search_quality.py)
    JobError,
    SpecError,
    allow_commands,
    check_shared,
    interrupted,
    on_sigterm,
    parse_step,
    run_command,
    run_steps,
    stop_all,
    strings,
    substitute,
)

from distilnas.evaluate.groundtruth import load_truth_dir  # noqa: E402
from distilnas.fileio import OutputError, atomic_open, prepare_out_dir, write_atomic  # noqa: E402
from distilnas.report import ReportError  # noqa: E402
from distilnas.evaluate.metrics import noise_ceiling, seed_arch_bootstrap  # noqa: E402

RESAMPLES = 2000
RUN_KEYS = {"config": ("label", "config", "overrides", "compare_to", "seeds"),  # an entry has one of config, steps
            "steps": ("label", "steps", "scores", "compare_to", "seeds")}


SUITE_KEYS = ("truth", "split", "predictions", "results", "scoring", "baseline", "seeds", "proxies", "proxy_space",
              "proxy_overrides", "runs", "compare", "ensembles", "figure", "budget", "budget_figure")


def load_suite(path: str, seeds_arg: str = "") -> tuple[dict[str, Any], list[int]]:
    """The suite file and its seeds (``--seeds`` wins), checked at the top level; SpecError names the problem."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"suite file {path} not found (the suites are in benchmarks/suites/)")
    try:
        suite = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(suite, dict):
        raise SpecError(f"{path}: expected a mapping of suite keys ({', '.join(SUITE_KEYS)})")
    unknown = sorted(set(suite) - set(SUITE_KEYS))
    if unknown:
        raise SpecError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(SUITE_KEYS)})")
    for key in ("truth", "runs"):
        if key not in suite:
            raise SpecError(f"{path}: missing key {key!r}")
    for d in truth_dirs(suite):
        if not d.is_dir():
            raise SpecError(f"{path}: ground-truth folder {d} not found (build it with distilnas bench build; "
                            f"a suite's paths are relative to the directory you run from: the repository root)")
    ens = suite.get("ensembles", [])
    runs = suite["runs"] if isinstance(suite["runs"], list) else []
    names = {str(r.get("label")) for r in runs if isinstance(r, dict)} | {
        f"proxy:{x}" for x in suite.get("proxies", [])}
    if not isinstance(ens, list) or not all(isinstance(e, list) and len(e) >= 2 for e in ens):
        raise SpecError(f"{path}: ensembles must be a list of lists of two or more entries, e.g. "
                        f"[[spos, proxy:jacob_cov]]")
    for e in ens:
        bad = [str(x) for x in e if str(x) not in names]
        if bad:
            raise SpecError(f"{path}: ensembles: {bad[0]!r} is neither an entry's label nor proxy:NAME of a proxy "
                            f"in 'proxies'")
    try:
        seeds = [int(s) for s in seeds_arg.split(",")] if seeds_arg else [int(s) for s in suite.get("seeds", [])]
    except (TypeError, ValueError):
        raise SpecError(f"seeds must be whole numbers, got {seeds_arg or suite.get('seeds')!r}") from None
    if not seeds or min(seeds) < 0:
        raise SpecError(f"seeds: expected non-negative whole numbers, got {seeds}")
    return suite, seeds


def truth_dirs(suite: dict[str, Any]) -> list[Path]:
    t = suite["truth"]
    return [Path(p) for p in ([t] if isinstance(t, str) else t)]


def all_archs(suite: dict[str, Any]) -> list[str]:
    """Every architecture of the suite's ground-truth folders (their archs.txt), in order."""
    out: list[str] = []
    for d in truth_dirs(suite):
        out += [ln.strip() for ln in (d / "archs.txt").read_text().splitlines() if ln.strip()]
    return list(dict.fromkeys(out))


def load_truths(suite: dict[str, Any]) -> dict[str, list[float]]:
    """arch -> per-seed accuracies, merged over the suite's tables (built so far)."""
    out: dict[str, list[float]] = {}
    for d in truth_dirs(suite):
        if (d / "table.json").exists() or (d / "runs.jsonl").exists():
            out.update(load_truth_dir(d))
    return out


def _run(cmd: list[str], log: Path, label: str) -> None:
    """``cmd`` with its output appended to ``log``, stopped with the script (JobError when it fails)."""
    run_command(cmd, log, label)


def _committed(predictions: Path | None, label: str, seed: int, scoring: list[str]) -> dict[str, Any] | None:
    """The metadata of committed predictions made with today's scoring, or None (not there, or scored
    another way: then they are redone, rescoring the run's checkpoint when it is still on disk)."""
    if predictions is None or not (predictions / label / f"seed{seed}.jsonl").exists():
        return None
    meta_path = predictions / label / f"seed{seed}.result.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return meta if list(meta.get("scoring", [])) == list(scoring) else None


def _claim(owner: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Write the entry record ``owner`` unless one exists (created exclusively, so of two suites that reach
    one new run folder at once exactly one claims it); the record on disk afterwards."""
    owner.parent.mkdir(parents=True, exist_ok=True)
    tmp = owner.with_name(f"{owner.name}.{os.getpid()}.{threading.get_ident()}.partial")
    tmp.write_text(json.dumps(entry) + "\n")
    try:
        os.link(tmp, owner)  # complete when it appears; fails when the record exists
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return json.loads(owner.read_text())


def config_difference(run_config: Path, config: str, overrides: list[str]) -> str:
    """Why a run's ``config.yaml`` is not ``config`` with ``overrides`` resolved as ``distilnas search``
    resolves them ('' when it is): the first setting that differs, compared as resuming the run would
    (``distilnas.train.loop.config_changes``: today's defaults for settings added since, runtime-only
    settings such as threads and logging left out; names first, at most three), or that the file cannot be
    read."""
    from distilnas.config import apply_overrides, load_yaml, to_dict
    from distilnas.train.loop import config_changes, resolve_config

    want = to_dict(resolve_config(apply_overrides(load_yaml(config), overrides)))  # checked before anything ran
    try:
        ran = yaml.safe_load(run_config.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        return f"its {run_config.name} cannot be read: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    if not isinstance(ran, dict) or not ran:
        return f"its {run_config.name} is empty or not a mapping"
    changes = sorted(config_changes(want, ran), key=lambda d: not d.key.endswith(".name"))  # kinds first
    words = [f"{d.key}: {d.saved!r} there, {d.new!r} for this entry" for d in changes[:3]]
    return "; ".join(words) + (f"; {len(changes) - 3} more" if len(changes) > 3 else "")


def run_one(label: str, config: str, overrides: list[str], seed: int, out: Path, archs_file: Path,
            predictions: Path | None, scoring: list[str] = ()) -> dict[str, Any]:
    """Search, score every ground-truth architecture (``distilnas score`` with the suite's ``scoring``
    overrides), copy the scores to ``predictions``. A (label, seed) whose predictions are already there
    (committed by an earlier session) with the same scoring is not run again: delete its files to redo it
    (e.g. after changing the preset)."""
    scoring = list(scoring)
    meta = _committed(predictions, label, seed, scoring)
    if meta is not None:
        return {"label": label, "seed": seed, "selected": meta.get("arch"), "train_seconds": meta.get("train_seconds"),
                "wall_seconds": None}
    run_dir = out / label / f"seed{seed}"
    # which entry trained this run directory: a label shared by two suites run into one --out must not
    # reuse the other suite's search (a folder from before this record is adopted only when the config it
    # was trained with is the entry's)
    entry, owner = {"config": config, "overrides": list(overrides)}, out / label / f"seed{seed}.entry.json"
    recorded = json.loads(owner.read_text()) if owner.exists() else None
    if recorded is None and (run_dir / "config.yaml").exists():
        differs = config_difference(run_dir / "config.yaml", config, [f"seed={seed}", "train.threads=1", *overrides])
        if differs:
            raise SpecError(f"{run_dir} holds a search trained with another config than entry {label!r} "
                            f"({differs}); use another --out, or delete the folder to redo it")
    if recorded is None:
        recorded = _claim(owner, entry)
    if recorded != entry:
        raise SpecError(f"{run_dir} holds the search of another suite entry labelled {label!r} "
                        f"({recorded}); use another --out, or delete the folder to redo it")
    scores = run_dir / "gt_scores.jsonl"
    done_scoring = run_dir / "gt_scores.scoring.json"
    if scores.exists() and (not done_scoring.exists() or json.loads(done_scoring.read_text()) != scoring):
        scores.unlink()  # scored another way (an older suite design): rescore the same checkpoint
    exe = [sys.executable, "-m", "distilnas.cli"]
    log = out / label / f"seed{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0, ran = time.time(), False
    if not (run_dir / "result.json").exists():
        ran = True
        resume = ["--resume"] if (run_dir / "checkpoint.pt").exists() else []
        _run([*exe, "search", config, "--out", str(run_dir), *resume, f"seed={seed}", "train.threads=1", *overrides],
             log, f"{label} seed {seed}")
    if not scores.exists():
        _run([*exe, "score", str(run_dir), "--archs", str(archs_file), "--out", str(scores), "train.threads=1",
              *scoring], log, f"{label} seed {seed}")
        done_scoring.write_text(json.dumps(scoring) + "\n")
    result = json.loads((run_dir / "result.json").read_text())
    if predictions is not None:
        dst = predictions / label / f"seed{seed}.jsonl"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(scores, dst)
        meta = {k: result.get(k) for k in ("arch", "train_seconds", "score_seconds", "passes", "steps")}
        meta.update({k: result[k] for k in ("board", "environment") if k in result})  # Cream's final board; the platform
        meta["scoring"] = scoring
        (predictions / label / f"seed{seed}.result.json").write_text(json.dumps(meta, indent=1) + "\n")
    return {"label": label, "seed": seed, "selected": result.get("arch"), "train_seconds": result.get("train_seconds"),
            "wall_seconds": round(time.time() - t0, 1) if ran else None}


def placeholders(out: Path, label: str, seed: int, archs_file: Path) -> dict[str, str]:
    """What ``{out}``, ``{seed}``, ``{suite_out}``, ``{archs}`` and ``{scores}`` stand for in a steps entry."""
    run_dir = out / label / f"seed{seed}"
    return {"out": str(run_dir), "seed": str(seed), "suite_out": str(out), "archs": str(archs_file),
            "scores": str(run_dir / "gt_scores.jsonl")}


def entry_commands(run: dict[str, Any], seed: int, out: Path, archs_file: Path) -> list[list[str]]:
    """A steps entry's steps and then its ``scores`` command, placeholders replaced (SpecError: unknown)."""
    values = placeholders(out, run["label"], seed, archs_file)
    where = f"entry {run['label']}"
    steps = [substitute([str(a) for a in step], values, f"{where}: steps[{j}]") for j, step in enumerate(run["steps"])]
    return [*steps, substitute([str(a) for a in run["scores"]], values, f"{where}: scores")]


def check_runs(runs: Any, seeds: list[int], out: Path, archs_file: Path) -> None:
    """Every entry of the suite, checked before anything runs (see the module docstring); SpecError."""
    if not isinstance(runs, list) or not runs:
        raise SpecError("runs: expected a non-empty list of entries")
    labels = []
    for i, r in enumerate(runs):
        if not isinstance(r, dict) or not isinstance(r.get("label"), str) or not r["label"] or "/" in r["label"]:
            raise SpecError(f"runs[{i}]: expected a mapping with a label (a name) and one of {', '.join(RUN_KEYS)}")
        where = f"entry {r['label']}"
        labels.append(r["label"])
        kinds = [k for k in RUN_KEYS if k in r]
        if len(kinds) != 1:
            raise SpecError(f"{where}: needs exactly one of {', '.join(RUN_KEYS)}, got {', '.join(kinds) or 'none'}")
        kind = kinds[0]
        unknown = sorted(set(r) - set(RUN_KEYS[kind]))
        if unknown:
            raise SpecError(f"{where}: unknown key {unknown[0]!r} for a {kind} entry (allowed: "
                            f"{', '.join(RUN_KEYS[kind])})")
        own = r.get("seeds", [0])
        if not isinstance(own, list) or not own or not all(isinstance(x, int) and x >= 0 for x in own):
            raise SpecError(f"{where}: seeds must be a non-empty list of non-negative whole numbers, got {own!r}")
        if kind == "config":
            if not isinstance(r["config"], str) or not Path(r["config"]).is_file():
                raise SpecError(f"{where}: config file {r['config']!r} not found (a suite's paths are relative to "
                                f"the directory you run from: run from the repository root)")
            strings(r.get("overrides", []), f"{where}: overrides", key_value=True)
            continue
        if not isinstance(r["steps"], list) or not r["steps"]:
            raise SpecError(f"{where}: steps must be a non-empty list of [subcommand, arg, ...]")
        for j, step in enumerate(r["steps"]):
            strings(step, f"{where}: steps[{j}]")
        if "scores" not in r:
            raise SpecError(f"{where}: a steps entry needs scores: the command that writes the predictions to "
                            f"{{scores}} (e.g. [dna-score, POTENTIALS, --archs, \"{{archs}}\", --out, \"{{scores}}\"])")
        strings(r["scores"], f"{where}: scores")
        for seed in seeds:
            run_dir = out / r["label"] / f"seed{seed}"
            cmds = entry_commands(r, seed, out, archs_file)
            for j, argv in enumerate(cmds):
                w = f"{where}: steps[{j}]" if j < len(cmds) - 1 else f"{where}: scores"
                check_shared(argv, parse_step(argv, w), run_dir, w)
        if not any("{scores}" in str(a) for a in r["scores"]):
            raise SpecError(f"{where}: scores must write the predictions to {{scores}} (e.g. --out, \"{{scores}}\")")
    dup = next((lab for lab in labels if labels.count(lab) > 1), None)
    if dup:
        raise SpecError(f"runs: label {dup!r} appears twice")


def run_steps_one(run: dict[str, Any], seed: int, out: Path, archs_file: Path, predictions: Path | None,
                  scoring: list[str] = ()) -> dict[str, Any]:
    """A steps entry for one seed: its steps not yet finished, then its ``scores`` (unless finished), the
    predictions copied as :func:`run_one` does. Committed predictions are not redone, as there."""
    label, scoring = run["label"], list(scoring)
    meta = _committed(predictions, label, seed, scoring)
    if meta is not None:
        return {"label": label, "seed": seed, "selected": None, "train_seconds": meta.get("train_seconds"),
                "wall_seconds": None}
    run_dir = out / label / f"seed{seed}"
    scores = run_dir / "gt_scores.jsonl"
    cmds = entry_commands(run, seed, out, archs_file)
    t0 = time.time()
    done = run_steps(cmds, run_dir, label, f"entry {label} seed {seed}", log=out / label / f"seed{seed}.log",
                     record=run_dir / "steps.jsonl", needs={len(cmds) - 1: scores}, share=True)
    if not scores.exists():
        raise JobError(f"entry {label} seed {seed}: scores finished without writing {scores}")
    train_seconds = round(sum(float(d.seconds or 0) for d in done[:-1]), 1)
    if predictions is not None:
        dst = predictions / label / f"seed{seed}.jsonl"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(scores, dst)
        meta = {"train_seconds": train_seconds, "train_seconds_from": "wall seconds of the steps, summed",
                "score_seconds": done[-1].seconds, "commands": cmds, "scoring": scoring}
        (predictions / label / f"seed{seed}.result.json").write_text(json.dumps(meta, indent=1) + "\n")
    return {"label": label, "seed": seed, "selected": None, "train_seconds": train_seconds,
            "wall_seconds": round(time.time() - t0, 1) if any(d.ran for d in done) else None}


def seed_metadata(predictions: Path, key: str, tool: str) -> dict[int, Any]:
    """search seed -> ``key`` of each ``seed<k>.result.json`` in a prediction folder that has it (e.g. ``arch``,
    Cream's ``board``); none at all ends ``tool`` with one line."""
    out = {}
    for f in sorted(predictions.glob("seed*.result.json")):
        value = json.loads(f.read_text()).get(key)
        if value:
            out[int(f.name.split(".")[0].removeprefix("seed"))] = value
    if not out:
        raise SystemExit(f"{tool}: error: no seed*.result.json with {key!r} in {predictions}")
    return out


def read_predictions(path: Path) -> dict[str, float]:
    """arch -> prediction: a supernet's validation ``accuracy``, or a proxy's ``score`` (null: NaN)."""
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    key = "accuracy" if rows and "accuracy" in rows[0] else "score"
    return {r["arch"]: (np.nan if r.get(key) is None else float(r[key])) for r in rows}


def run_proxy(name: str, suite: dict[str, Any], archs_file: Path, predictions: Path, log: Path) -> None:
    """A zero-cost proxy's scores of every ground-truth architecture (``distilnas proxy`` with the suite's
    ``proxy_overrides``), kept in ``predictions/proxies/NAME.jsonl``; skipped when already there."""
    dst = predictions / "proxies" / f"{name}.jsonl"
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "distilnas.cli", "proxy", name, "--space", str(suite.get("proxy_space", "nb201")),
          "--archs", str(archs_file), "--out", str(dst), "threads=1", *map(str, suite.get("proxy_overrides", []))],
         log, f"proxy {name}")


def proxy_predictions(name: str, predictions: Path) -> dict[str, float] | None:
    """A proxy's predictions; ``a+b+c`` is the rank average of proxies a, b and c (RD-NAS's combined
    teacher: mean of each proxy's rank, higher = better), over the architectures all of them scored."""
    parts = name.split("+")
    files = [predictions / "proxies" / f"{p}.jsonl" for p in parts]
    if not all(f.exists() for f in files):
        return None
    scored = [read_predictions(f) for f in files]
    return scored[0] if len(scored) == 1 else rank_average(scored)


def rank_average(scored: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each prediction's rank (higher = better), over the architectures all of them scored
    with a finite value."""
    from scipy.stats import rankdata

    common = sorted(set.intersection(*(set(a for a, v in d.items() if np.isfinite(v)) for d in scored)))
    ranks = np.mean([rankdata([d[a] for a in common]) for d in scored], axis=0)
    return dict(zip(common, ranks.tolist()))


def ensemble_label(parts: list[str]) -> str:
    """The entry name of an ``ensembles`` item: ``avg:spos+proxy:jacob_cov``."""
    return "avg:" + "+".join(parts)


def entry_seeds(suite: dict[str, Any], seeds: list[int], explicit: bool = False) -> dict[str, list[int]]:
    """Each entry's seeds: its own ``seeds`` key, else the suite's; ``explicit`` (``--seeds`` given): ``seeds``
    for every entry."""
    return {r["label"]: list(seeds) if explicit or "seeds" not in r else [int(x) for x in r["seeds"]]
            for r in suite["runs"]}


def comparable_archs(names: list[str], truth: dict[str, list[float]], scored: list[dict[str, float]]) -> list[str]:
    """The architectures of ``names`` that a comparison can use: a ground truth of at least two seeds (a seed
    spread) and a finite prediction in every one of ``scored``."""
    return [a for a in names if a in truth and len(truth[a]) >= 2
            and all(np.isfinite(p.get(a, np.nan)) for p in scored)]


def summarize(suite: dict[str, Any], labels: list[str], seeds: list[int], predictions: Path,
              resamples: int = RESAMPLES, seeds_of: dict[str, list[int]] | None = None) -> dict[str, Any]:
    """The comparison from the prediction files, per half: every entry over the seeds it has finished
    (its tau, mean and interval), every comparison paired over the seeds both sides have finished (so an
    entry still running does not hold back the others). ``seeds_of``: an entry's own seeds (default: the
    entries' ``seeds`` keys, else ``seeds``)."""
    truth = load_truths(suite)
    split = json.loads(Path(suite["split"]).read_text()) if suite.get("split") else {"report": list(truth)}
    scoring = [str(o) for o in suite.get("scoring", [])]
    seeds_of = {**entry_seeds(suite, seeds), **(seeds_of or {})}
    own = {lab: seeds_of.get(lab, list(seeds)) for lab in labels}
    avail = {lab: [s for s in own[lab] if _committed(predictions, lab, s, scoring) is not None] for lab in labels}
    missing = [lab for lab in labels if avail[lab] != own[lab]]  # entries not finished for every seed
    seeds = sorted(set(seeds).union(*own.values()))
    labels = [lab for lab in labels if avail[lab]]
    any_seeds = [s for s in seeds if any(s in avail[lab] for lab in labels)]
    preds = {(lab, s): read_predictions(predictions / lab / f"seed{s}.jsonl") for lab in labels for s in avail[lab]}
    for name in suite.get("proxies", []):  # deterministic: the same predictions for every seed (pairs stay valid)
        pp = proxy_predictions(str(name), predictions)
        if pp is not None and any_seeds:
            lab = f"proxy:{name}"
            labels, avail[lab] = [*labels, lab], list(any_seeds)
            preds.update({(lab, s): pp for s in any_seeds})
    for parts in suite.get("ensembles", []):  # per seed, the rank average of entries' and proxies' predictions
        parts = [str(x) for x in parts]
        if all(x in labels for x in parts):
            lab, both = ensemble_label(parts), [s for s in any_seeds if all(s in avail[x] for x in parts)]
            if both:
                labels, avail[lab] = [*labels, lab], both
                preds.update({(lab, s): rank_average([preds[(x, s)] for x in parts]) for s in both})
    baseline = suite.get("baseline")
    compare = [(lab, baseline) for lab in labels if baseline in labels and lab != baseline]
    compare += [(r["label"], r["compare_to"]) for r in suite["runs"] if r.get("compare_to")]
    compare += [(str(a), str(b)) for a, b in suite.get("compare", [])]  # e.g. [rdnas, proxy:flops]
    compare = [(a, b) for a, b in dict.fromkeys(compare) if a in labels and b in labels]
    halves: dict[str, Any] = {}
    for half in [h for h in ("report", "tuning") if h in split]:
        archs = comparable_archs(split[half], truth, [preds[(lab, s)] for lab in labels for s in avail[lab]])
        out: dict[str, Any] = {"num_archs": len(archs)}
        if len(archs) >= 3:
            t = np.array([np.mean(truth[a]) for a in archs])
            out["noise_ceiling"] = noise_ceiling({a: truth[a] for a in archs})["kendall_tau"]

            def rows(lab: str, ss: list[int]) -> np.ndarray:
                return np.array([[preds[(lab, s)][a] for a in archs] for s in ss])

            entries = {lab: {"seeds": avail[lab], **seed_arch_bootstrap({lab: rows(lab, avail[lab])}, t,
                                                                         resamples=resamples)[lab]}
                       for lab in labels}
            for a, ref in compare:
                both = [s for s in avail[a] if s in avail[ref]]
                if both:
                    b = seed_arch_bootstrap({a: rows(a, both), ref: rows(ref, both)}, t, pairs=[(a, ref)],
                                            resamples=resamples)
                    entries[a][f"diff_vs_{ref}"] = {**b[a][f"diff_vs_{ref}"], "seeds": both}
            if entries:
                out["entries"] = entries
        halves[half] = out
    wanted = len(split.get("report", [])) + len(split.get("tuning", []))
    with_truth = sum(h["num_archs"] for h in halves.values())
    common = [s for s in seeds if labels and all(s in avail[lab] for lab in labels)]
    complete = with_truth == wanted and not missing
    status = "complete" if complete else (
        "partial: " + ", ".join(f"{lab} {len(avail.get(lab, []))} of {len(own[lab])} seeds" for lab in missing)
        + ("; " if missing else "") + f"{with_truth} of {wanted} architectures with ground truth")
    # predictions that leave out architectures with a ground truth shrink every comparison to what they
    # have (none, for predictions made in another space): name them
    usable = [a for half in ("report", "tuning") for a in split.get(half, []) if a in truth and len(truth[a]) >= 2]
    runs_of = {str(r.get("label")) for r in suite.get("runs", [])}  # the entries' own files (not proxies)
    lacking: dict[str, list[str]] = {}
    for (lab, s), p in preds.items():
        n = sum(not np.isfinite(p.get(a, np.nan)) for a in usable)
        if n and lab in runs_of:
            lacking.setdefault(lab, []).append(f"{s} ({n} of {len(usable)})")
    if lacking:
        status += ("; predictions without a finite score for some architectures with ground truth: "
                   + ", ".join(f"{lab} seed {', '.join(v)}" for lab, v in lacking.items())
                   + f" (scored in another space? delete their files in {predictions} to redo them)")
    return {"status": status, "seeds": common, "halves": halves, "truth": [str(d) for d in truth_dirs(suite)],
            "split": suite.get("split"), "baseline": baseline, "resamples": resamples}


def results_json(summary: dict[str, Any]) -> dict[str, Any]:
    """The committed machine-readable summary: the report half, plus the tuning half for reference."""
    rep = summary["halves"].get("report", {})
    out: dict[str, Any] = {"about": "Kendall tau of supernet validation accuracy vs ground truth (mean of 3 training "
                                    "seeds) on the report half; ci95 from a bootstrap over seeds and architectures "
                                    "together; diffs paired by seed (benchmarks/run_suite.py)",
                           "status": summary["status"],
                           "noise_ceiling": rep.get("noise_ceiling"), "num_archs": rep.get("num_archs"),
                           "truth": summary["truth"], "split": summary["split"], "resamples": summary["resamples"],
                           "entries": {}}
    tuning = summary["halves"].get("tuning", {}).get("entries", {})
    for lab, e in rep.get("entries", {}).items():
        entry = {k: e[k] for k in ("seeds", "tau", "mean", "ci95")}
        entry.update({k: v for k, v in e.items() if k.startswith("diff_vs_")})
        if lab in tuning:
            entry["tuning_half"] = {"mean": tuning[lab]["mean"], "ci95": tuning[lab]["ci95"]}
        out["entries"][lab] = entry
    return out


def print_table(summary: dict[str, Any], markdown: bool) -> None:
    print(summary["status"])
    for half, h in summary["halves"].items():
        where = f"{half} half" if summary.get("split") else "no split, every architecture"
        if "entries" not in h:
            print(f"{where}: {h['num_archs']} architectures with truth; nothing to compare yet")
            continue
        print(f"{where}: {h['num_archs']} architectures, noise ceiling {h.get('noise_ceiling', float('nan')):.3f}; "
              f"each entry over the seeds it has finished, each difference over the seeds both have")
        head = ["entry", "tau (mean)", "95% CI", "diff", "diff 95% CI", "verdict", "tau per seed"]
        rows = []
        most = max(len(e["seeds"]) for e in h["entries"].values())
        for lab, e in h["entries"].items():
            diffs = [v | {"ref": k[8:]} for k, v in e.items() if k.startswith("diff_vs_")] or [None]
            for i, d in enumerate(diffs):  # one row per comparison; the entry's own cells on the first only
                own = [lab, f"{e['mean']:.3f}", f"[{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]"] if i == 0 else [lab, "", ""]
                seeds = f" ({len(d['seeds'])} seed{'s' * (len(d['seeds']) > 1)})" if d and len(d["seeds"]) < most else ""
                rows.append([*own, f"{d['mean']:+.3f} vs {d['ref']}{seeds}" if d else "",
                             f"[{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" if d else "", d["verdict"] if d else "",
                             ", ".join(f"{v:.3f}" for v in e["tau"]) if i == 0 else ""])
        print(render_table(head, rows, markdown))
        print()


def render_table(head: list[str], rows: list[list[str]], markdown: bool) -> str:
    """Rows of cells as a Markdown table, or as plain text in aligned columns."""
    if markdown:
        return "\n".join(["| " + " | ".join(r) + " |" for r in [head, ["---"] * len(head), *rows]])
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip() for r in [head, *rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="run_suite", description=__doc__.splitlines()[0])
    ap.add_argument("suite")
    ap.add_argument("--out", required=True, help="run directories (searches, logs, summary)")
    ap.add_argument("--parallel", type=int, default=1, help="searches at a time (one torch thread each)")
    ap.add_argument("--only", default="", help="comma-separated labels to run (default all)")
    ap.add_argument("--seeds", default="", help="comma-separated seeds (default the suite's)")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown (for docs)")
    ap.add_argument("--summary-only", action="store_true", help="train nothing: summarise the predictions so far")
    ap.add_argument("--results", default=None, help="write the results JSON here (default: the suite's 'results')")
    ap.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap rounds")
    args = ap.parse_args(argv)
    out = Path(args.out)
    # named by the suite: two suites may share one --out (their entries' labels differ), and one suite
    # whose runs are split over two processes (--only, --seeds) writes the same list atomically
    stem = Path(args.suite).stem
    archs_file = out / f"{stem}.truth_archs.txt"
    try:
        suite, seeds = load_suite(args.suite, args.seeds)
        check_runs(suite.get("runs"), seeds, out, archs_file)
    except SpecError as e:
        print(f"run_suite: error: {e}", file=sys.stderr)
        return 2
    only = {x for x in args.only.split(",") if x} if args.only else None
    unknown = sorted(only - {r["label"] for r in suite["runs"]}) if only else []
    if unknown:
        print(f"run_suite: error: --only names {', '.join(unknown)}, not an entry of {args.suite}; its entries: "
              f"{', '.join(r['label'] for r in suite['runs'])}", file=sys.stderr)
        return 2
    try:
        prepare_out_dir(out, "suite directory (--out)")
    except OutputError as e:
        print(f"run_suite: error: {e}", file=sys.stderr)
        return 2
    runs = [r for r in suite["runs"] if only is None or r["label"] in only]
    seeds_of = entry_seeds(suite, seeds, explicit=bool(args.seeds))
    predictions = Path(suite.get("predictions") or out / "predictions")
    scoring = [str(o) for o in suite.get("scoring", [])]
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    if not args.summary_only:
        def job(r: dict[str, Any], s: int) -> dict[str, Any]:
            if "steps" in r:
                return run_steps_one(r, s, out, archs_file, predictions, scoring)
            return run_one(r["label"], r["config"], list(r.get("overrides", [])), s, out, archs_file, predictions,
                           scoring)

        previous = signal.signal(signal.SIGTERM, on_sigterm)  # kill: like Ctrl-C, the commands stop too
        allow_commands()
        pool = ThreadPoolExecutor(args.parallel)
        try:
            with atomic_open(archs_file) as f:
                f.write("\n".join(all_archs(suite)) + "\n")
            for name in {p for entry in suite.get("proxies", []) for p in str(entry).split("+")}:
                try:
                    run_proxy(name, suite, archs_file, predictions, out / "proxies" / f"{name}.log")
                except JobError as e:
                    failures.append(str(e))
            jobs = [(r["label"], s, pool.submit(job, r, s)) for s in sorted(set().union(*seeds_of.values()))
                    for r in runs if s in seeds_of[r["label"]]]
            for label, s, fut in jobs:  # a failed run ends only itself: the others go on
                try:
                    rows.append(fut.result())
                except (JobError, SpecError) as e:  # SpecError: e.g. a run folder of another entry
                    failures.append(str(e))
                    rows.append({"label": label, "seed": s, "failed": str(e)})
                except Exception as e:  # noqa: BLE001 - e.g. an unwritable predictions folder: named, not fatal
                    failures.append(f"entry {label} seed {s}: {type(e).__name__}: {e}")
                    rows.append({"label": label, "seed": s, "failed": failures[-1]})
        except KeyboardInterrupt as e:  # Ctrl-C or kill: running commands stop (keeping what they finished)
            stop_all()
            return interrupted("run_suite", e)
        except BaseException:  # anything else: no command is left running while the pool waits for it
            stop_all()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            signal.signal(signal.SIGTERM, previous)
        if rows:  # one row per run of this call, failed ones with their reason
            with atomic_open(out / f"{stem}.summary.csv", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in [*r, "failed"])))
                w.writeheader()
                w.writerows(rows)
    # the summary (table, results, figures) covers the whole suite, whatever --only and --seeds ran: a lane
    # running part of a suite must not replace its committed results with that part
    _, suite_seeds = load_suite(args.suite)
    summary = summarize(suite, [r["label"] for r in suite["runs"]], suite_seeds, predictions, args.resamples,
                        entry_seeds(suite, suite_seeds))
    target = args.results or suite.get("results")
    written = [(out / f"{stem}.summary.json", json.dumps(summary, indent=1) + "\n"),
               *([(Path(target), json.dumps(results_json(summary), indent=1) + "\n")] if target else [])]
    try:
        for path, text in written:
            write_atomic(path, text)
        write_figures(suite, summary)
    except (OutputError, ReportError, OSError) as e:  # the table still shows what was computed
        print_table(summary, args.markdown)
        for msg in failures:
            print(f"run_suite: failed: {msg}", file=sys.stderr)
        print(f"run_suite: error: {e}", file=sys.stderr)
        return 2
    print_table(summary, args.markdown)
    for msg in failures:
        print(f"run_suite: failed: {msg}", file=sys.stderr)
    return 1 if failures else 0


def write_figures(suite: dict[str, Any], summary: dict[str, Any]) -> None:
    """The suite's ``figure`` (per entry: per-seed tau, mean and interval; noise ceiling and the best
    proxy as lines) and ``budget_figure`` (tau against supernet epochs for the entries of ``budget``:
    method -> {epochs: label}), both on the report half (every architecture in a suite without a split)."""
    if not (suite.get("figure") or suite.get("budget_figure")):
        return
    from distilnas.report import plot_budget_curve, plot_comparison

    res = results_json(summary)
    entries = res["entries"]
    proxies = {k.removeprefix("proxy:"): e["mean"] for k, e in entries.items() if k.startswith("proxy:")}
    best = max(proxies.items(), key=lambda kv: kv[1]) if proxies else None
    if suite.get("figure") and entries:
        shown = {k: e for k, e in entries.items() if not k.startswith("proxy:")}
        partners = {str(a): (str(b).removeprefix("proxy:"), entries[str(b)]["mean"])
                    for a, b in suite.get("compare", []) if str(b).startswith("proxy:") and str(b) in entries
                    and str(a) in shown}  # e.g. [rdnas, proxy:flops]: RD-NAS beside its teacher alone
        plot_comparison({**res, "entries": shown}, suite["figure"], best_proxy=best, partners=partners,
                        ylabel="Kendall tau (report half)" if suite.get("split") else "Kendall tau (every architecture)")
    if suite.get("budget_figure"):
        curves = {method: [(float(ep), entries[lab]["mean"], *entries[lab]["ci95"])
                           for ep, lab in points.items() if lab in entries]
                  for method, points in suite.get("budget", {}).items()}
        curves = {m: pts for m, pts in curves.items() if pts}
        if curves:
            plot_budget_curve(curves, suite["budget_figure"], res.get("noise_ceiling"), best)


if __name__ == "__main__":
    sys.exit(main())
