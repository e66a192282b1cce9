"""The ``distilnas`` command line.

    distilnas search CONFIG [--out DIR] [--resume] [key=value ...]      train a supernet, select architectures
    distilnas score CHECKPOINT --archs FILE --out OUT.jsonl [key=value ...]
    distilnas rank PRED.jsonl TRUTH [--key accuracy] [--pred-key KEY] [--lower-is-better]
    distilnas train ARCH [--space nb201] [--config FILE] [--out DIR] [key=value ...]
    distilnas retrain RESULT_OR_ARCH [--config FILE] [--out DIR] [key=value ...]
    distilnas random-search CONFIG [--out DIR] [key=value ...]
    distilnas proxy NAME --space SPACE --archs FILE --out OUT.jsonl [key=value ...]
    distilnas bench build CONFIG --out DIR [--archs FILE] [key=value ...] | bench report DIR
    distilnas dna-merge DIR... --out POTENTIALS.json | dna-search POTENTIALS --max-flops F --out RESULT.json
    distilnas dna-fit POTENTIALS TRUTH --out FIT.json | dna-score POTENTIALS --archs FILE --out OUT.jsonl
    distilnas list [spaces|algorithms|datasets|proxies] [PATTERN]

Bad input (unknown config keys, malformed architectures, missing data or checkpoints) ends with one
line ``distilnas: error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .fileio import atomic_open

__all__ = ["main"]

KNOWN_ERRORS: tuple[type[BaseException], ...] = ()


def _known_errors() -> tuple[type[BaseException], ...]:
    from .arch import ArchError
    from .config import ConfigError
    from .data import DataError
    from .fileio import OutputError
    from .registry import RegistryError
    from .report import ReportError
    from .train.checkpoint import CheckpointError
    from .train.loop import RunError
    from .train.parallel import WorkerError
    from .train.standalone import TrainingDiverged

    return (ArchError, ConfigError, DataError, RegistryError, CheckpointError, RunError, OutputError,
            ReportError, WorkerError, TrainingDiverged, FileNotFoundError, FileExistsError)


def _interrupted(args: argparse.Namespace | None) -> str:
    """What an interrupted command kept, and how its rerun continues (checked on disk)."""
    command = getattr(args, "command", "")
    out = getattr(args, "out", None)
    if command == "search" and out:
        if (Path(out) / "checkpoint.pt").exists():
            return f"finished epochs are in {out}/checkpoint.pt (continue with --resume)"
        return "no epoch had finished, nothing to resume: rerun the command without --resume"
    if command == "bench" and getattr(args, "bench_command", "") == "build":
        if (Path(out) / "runs.jsonl").exists():
            return f"finished runs are kept in {out}/runs.jsonl; rerun the same command to continue"
        return "no run had finished; rerun the command"
    if command == "score":
        resume = Path(f"{out}.resume")
        if resume.exists() and len(resume.read_text(errors="replace").splitlines()) > 1:  # header + rows
            return f"scored rows are kept in {out}.resume; rerun the same command to continue"
        return "nothing was scored yet; rerun the command"
    if command == "random-search" and out and (Path(out) / "runs.jsonl").exists():
        return f"finished candidates are kept in {out}/runs.jsonl; rerun the same command to continue"
    return "nothing was kept; rerun the command"


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``), raised where the process is, so that cleanup runs as for Ctrl-C."""


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM (``kill``) ends a command like Ctrl-C: its cleanup runs (worker processes stop,
    temporary files are removed, locks are released) and it says what it kept."""
    raise Terminated


def _load_config(path: str | None, overrides: Sequence[str]) -> dict[str, Any]:
    from .config import apply_overrides, load_yaml

    data = load_yaml(path) if path else {}
    return apply_overrides(data, list(overrides))


# ---------------------------------------------------------------------------------------------------
def cmd_search(args: argparse.Namespace) -> int:
    from .train.loop import resolve_config, run_search

    cfg = resolve_config(_load_config(args.config, args.overrides))
    out = args.out = args.out or f"runs/{Path(args.config).stem}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    t0 = time.time()
    result = run_search(cfg, out, resume=args.resume, extend=args.extend)
    if result:
        best = result["best"]
        print(f"search finished in {time.time() - t0:.0f}s; results in {out}/ (result.json, scores.jsonl)")
        if best:
            print(f"best: {best['arch']}  shared-weight val acc {best['accuracy']:.2f}%  "
                  f"params {best['params']:,}  FLOPs {best['flops']:,}")
        print(_next_steps(out, cfg))
    return 0


def _next_steps(out: str, cfg: Any) -> str:
    """The commands that usually follow a search, with real paths (a committed ground truth of the same
    space and data when there is one)."""
    truth = _matching_truth(cfg)
    archs = f"{truth}/archs.txt" if truth else "ARCHS.txt"
    table = f"{truth}/table.json" if truth else "TABLE.json"
    return "\n".join(["next:",
                      f"  distilnas score {out} --archs {archs} --out {out}/gt_scores.jsonl",
                      f"  distilnas rank {out}/gt_scores.jsonl {table}",
                      f"  distilnas report {out}" + (f" --truth {table}" if truth else "") + "   # figures + report.md",
                      f"  distilnas retrain {out}/result.json   # train the pick from scratch"])


def _matching_truth(cfg: Any) -> str | None:
    root = Path("benchmarks/groundtruth")
    if not root.is_dir():
        return None
    for bc in sorted(root.glob("*/bench_config.json")):
        try:
            saved = json.loads(bc.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        same_space = saved.get("space") == cfg.space.get("name") and all(
            cfg.space.get(k) == v for k, v in (saved.get("space_cfg") or {}).items())
        if same_space and (saved.get("data") or {}).get("name") == cfg.data.name and (bc.parent / "table.json").exists():
            return str(bc.parent)
    return None


def cmd_score(args: argparse.Namespace) -> int:
    """Score architectures with a trained supernet. Rows go to ``OUT.partial`` as they are scored, so a
    rerun of the same command after a kill resumes; ``OUT`` appears complete at the end."""
    import hashlib

    from .config import apply_overrides
    from .data import load_dataset
    from .evaluate.scoring import score_archs
    from .fileio import PartialRows, lock_file, prepare_out_dir
    from .train.loop import check_data, load_supernet, read_archs

    state_overrides = apply_overrides({}, list(args.overrides))
    run, state = load_supernet(args.checkpoint, _merge_sections(args.checkpoint, state_overrides))
    import torch

    if run.cfg.train.threads:
        torch.set_num_threads(run.cfg.train.threads)
    if run.cfg.train.channels_last:
        run.supernet.to(memory_format=torch.channels_last)
    archs = read_archs(args.archs, run.space)
    out = Path(args.out)
    if out.is_dir() or str(args.out).endswith("/"):
        raise FileExistsError(f"--out {args.out} names a directory; name the output file, e.g. {out / 'scores.jsonl'}")
    prepare_out_dir(out.parent, "folder of --out")
    data = load_dataset(run.cfg.data)
    check_data(run.space, data, run.cfg.data.name)
    key = hashlib.sha256(json.dumps([state.get("step"), state.get("config"), state_overrides,
                                     [str(a) for a in archs]], sort_keys=True, default=str).encode()).hexdigest()[:16]
    with lock_file(out.with_name(out.name + ".lock"), f"output {out}"):
        rows = PartialRows(out, key)
        try:
            if rows.reused:
                print(f"resuming: {rows.reused} of {len(archs)} architectures already scored in {rows.partial}",
                      file=sys.stderr)
            todo = [a for a in archs if str(a) not in rows.done]
            for r in score_archs(run.supernet, todo, data, run.cfg.score, run.device,
                                 channels_last=run.cfg.train.channels_last):
                rows.append(r)
            rows.finish([str(a) for a in archs])
        finally:
            rows.close()
    print(f"scored {len(archs)} architectures -> {out}")
    return 0


def _merge_sections(checkpoint: str, overrides: dict[str, Any]) -> dict[str, Any] | None:
    """Overrides of a checkpoint's config, merged section by section (e.g. data.root=...)."""
    if not overrides:
        return None
    from .train.checkpoint import load_checkpoint

    base = load_checkpoint(checkpoint).get("config", {})
    merged = dict(base)
    for k, v in overrides.items():
        merged[k] = {**base.get(k, {}), **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return merged


def cmd_rank(args: argparse.Namespace) -> int:
    from .evaluate.groundtruth import load_truth
    from .evaluate.metrics import align, format_table, noise_ceiling, rank_metrics

    pred = _read_pred(args.pred, args.pred_key)
    bad = sorted(a for a, v in pred.items() if not math.isfinite(v))
    if bad and not args.drop_nonfinite:
        raise ValueError(f"{len(bad)} of {len(pred)} predictions in {args.pred} are not finite (null, NaN or inf; "
                         f"e.g. {bad[0]}): a diverged run? pass --drop-nonfinite to rank the rest")
    if bad:
        print(f"distilnas: warning: dropped {len(bad)} non-finite predictions of {len(pred)}", file=sys.stderr)
        pred = {a: v for a, v in pred.items() if math.isfinite(v)}
    if args.lower_is_better:  # e.g. --pred-key loss: rank by the negated score
        pred = {a: -v for a, v in pred.items()}
    truth = load_truth(args.truth, args.key)
    bad_truth = sorted(a for a, v in truth.items() if not all(math.isfinite(x) for x in v))
    if bad_truth:
        raise ValueError(f"{len(bad_truth)} ground-truth entries in {args.truth} are not finite (null or NaN; e.g. "
                         f"{bad_truth[0]}): a diverged training? rebuild or drop them")
    archs, p, t = align(pred, truth)
    rows = [(f"{Path(args.pred).name} vs truth", rank_metrics(p, t, bootstrap=args.bootstrap))]
    multi = {a: truth[a] for a in archs if len(truth[a]) >= 2}
    if len(multi) >= 2:
        rows.append(("noise ceiling (seed vs seed)", noise_ceiling(multi)))
    print(f"{len(archs)} architectures in common (pred {len(pred)}, truth {len(truth)}); "
          f"pred key {args.pred_key or 'auto'}{' (lower is better)' if args.lower_is_better else ''}, "
          f"truth key {args.key}")
    print(format_table(rows))
    return 0


def _read_pred(path: str, key: str | None) -> dict[str, float]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"prediction file {p} not found (JSON lines with 'arch' and a score)")
    out: dict[str, float] = {}
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            k = key or ("accuracy" if "accuracy" in r else "score")
            if isinstance(r[k], bool):
                raise TypeError("a boolean is not a score")
            out[r["arch"].strip()] = math.nan if r[k] is None else float(r[k])  # null: not finite
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise ValueError(f"{p}:{n}: expected a JSON object with 'arch' and "
                             f"{key or 'accuracy/score'!r}") from None
    if not out:
        raise ValueError(f"prediction file {p} holds no predictions (JSON lines with 'arch' and a score)")
    return out


def cmd_train(args: argparse.Namespace) -> int:
    """One architecture trained standalone: ``distilnas retrain`` for a literal arch, without ONNX export
    unless ``export_onnx`` is set; prints the result as one JSON line."""
    from .config import from_dict
    from .train.retrain import RetrainConfig, train_architecture

    raw = _load_config(args.config, args.overrides)
    if args.space:
        raw["space"] = {**(raw.get("space") or {}), "name": args.space}
    raw.setdefault("export_onnx", False)
    result = train_architecture(args.arch, from_dict(RetrainConfig, raw), args.out)
    from .fileio import dumps

    print(dumps({k: v for k, v in result.items() if k != "config"}))
    return 0


def cmd_bench_build(args: argparse.Namespace) -> int:
    from .config import from_dict
    from .evaluate.groundtruth import BenchConfig, build_ground_truth

    from .evaluate.groundtruth import _space
    from .train.loop import read_archs

    cfg = from_dict(BenchConfig, _load_config(args.config, args.overrides))
    archs = [str(a) for a in read_archs(args.archs, _space(cfg))] if args.archs else None  # checked before writing
    t0 = time.time()
    table = build_ground_truth(cfg, args.out, archs=archs, progress=None)
    print(f"ground truth for {len(table['archs'])} architectures in {time.time() - t0:.0f}s -> {args.out}/table.json")
    return _bench_report(Path(args.out) / "table.json")


def cmd_bench_report(args: argparse.Namespace) -> int:
    p = Path(args.path)
    return _bench_report(p / "table.json" if p.is_dir() else p)


def _bench_report(path: Path) -> int:
    import numpy as np

    from .evaluate.groundtruth import load_truth
    from .evaluate.metrics import format_table, noise_ceiling

    truth = load_truth(path)
    accs = np.array([np.mean(v) for v in truth.values()])
    print(f"{len(truth)} architectures; mean accuracy {accs.mean():.2f}% (min {accs.min():.2f}, max {accs.max():.2f})")
    multi = {a: v for a, v in truth.items() if len(v) >= 2}
    if len(multi) >= 2:
        nc = noise_ceiling(multi)
        print(format_table([("noise ceiling (seed vs seed)", nc)]))
        print(f"mean per-arch seed std: {nc.get('seed_std', float('nan')):.3f} points")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Print a search config resolved with every default (the keys a user can override)."""
    import yaml

    from .config import to_dict
    from .train.loop import resolve_config

    path, overrides = args.config, list(args.overrides)
    if path is not None and "=" in path and not Path(path).exists():  # no config file, only overrides
        path, overrides = None, [path, *overrides]
    cfg = resolve_config(_load_config(path, overrides))
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_dna_report, write_report

    if Path(args.run).is_file():  # a DNA potentials file (dna-merge's output)
        path = write_dna_report(args.run, args.search, args.out)
    else:
        path = write_report(args.run, args.truth, args.out, args.pred)
    pngs = sorted(p.name for p in path.parent.glob("*.png"))
    print(f"report: {path} ({', '.join(pngs)})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .algorithms import ALGORITHMS
    from .data import DATASETS
    from .proxies import PROXIES
    from .spaces import SPACES

    regs = {"spaces": SPACES, "algorithms": ALGORITHMS, "datasets": DATASETS, "proxies": PROXIES}
    for kind, reg in regs.items():
        if args.kind in (None, kind):
            print(f"{kind}: {', '.join(reg.list(args.pattern)) or '(none)'}")
    return 0


# Sub-commands that live next to the code they drive: each module has ``add_parser(subparsers)``, which
# adds its sub-parser and sets ``func`` to a handler taking the parsed ``argparse.Namespace``.
COMMAND_MODULES: tuple[str, ...] = ("distilnas.proxies.command", "distilnas.search.command",
                                    "distilnas.retrain_command", "distilnas.dna_command")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    from . import __version__

    p = argparse.ArgumentParser(prog="distilnas", description="One-shot NAS with distillation.")
    p.add_argument("--version", action="version", version=f"distilnas {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="train a supernet and select architectures",
                       epilog="config sections: seed, space (name + the space's options), data, algorithm (name + "
                              "its options), train, score, select; 'distilnas config CONFIG' prints them all "
                              "with their defaults")
    s.add_argument("config", help="YAML config, e.g. configs/bench/spos_nb201_fmnist16.yaml")
    s.add_argument("--out", help="run directory (default runs/<config>-seed<seed>-<time>)")
    s.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    s.add_argument("--extend", action="store_true",
                   help="continue DIR with more train.epochs (the schedule is recomputed for the new total)")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=2 seed=1")
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("score", help="score architectures with a trained supernet")
    s.add_argument("checkpoint")
    s.add_argument("--archs", required=True, help="file with one architecture string per line")
    s.add_argument("--out", required=True, help="output JSON lines")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. score.bn_recal_batches=20 data.root=...")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("rank", help="rank correlation of predictions against ground truth")
    s.add_argument("pred", help="JSON lines with 'arch' and a score")
    s.add_argument("truth", help="ground-truth table.json, {arch: acc or [acc per seed]}, or JSON lines")
    s.add_argument("--key", default="accuracy", help="ground-truth field (default accuracy)")
    s.add_argument("--pred-key", default=None, help="prediction field (default accuracy, else score)")
    s.add_argument("--lower-is-better", action="store_true",
                   help="the prediction field is better when lower (e.g. --pred-key loss)")
    s.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95%% intervals")
    s.add_argument("--drop-nonfinite", action="store_true",
                   help="rank without predictions that are null/NaN/inf (default: refuse them)")
    s.set_defaults(func=cmd_rank)

    s = sub.add_parser("train", help="train one architecture from scratch")
    s.add_argument("arch")
    s.add_argument("--space", default=None, help="search space (default nb201)")
    s.add_argument("--config", default=None, help="YAML with seed/space/data/recipe sections")
    s.add_argument("--out", default=None, help="directory for result.json and model.pt")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=cmd_train)

    b = sub.add_parser("bench", help="ground-truth tables").add_subparsers(dest="bench_command", required=True)
    s = b.add_parser("build", help="train sampled architectures standalone (resumable)")
    s.add_argument("config")
    s.add_argument("--out", required=True)
    s.add_argument("--archs", default=None, help="train these instead of sampling")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=cmd_bench_build)
    s = b.add_parser("report", help="summary and noise ceiling of a table")
    s.add_argument("path", help="table.json or its directory")
    s.set_defaults(func=cmd_bench_report)

    s = sub.add_parser("config", help="print a search config with every default filled in")
    s.add_argument("config", nargs="?", default=None, help="YAML config (default: all defaults)")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=cmd_config)

    s = sub.add_parser("report", help="figures and report.md of a search run")
    s.add_argument("run", help="a search's run directory (its --out), or DNA's potentials JSON (dna-merge)")
    s.add_argument("--search", default=None, help="with potentials: dna-search's result JSON (Pareto front)")
    s.add_argument("--truth", default=None, help="ground-truth table.json: predicted vs true accuracy")
    s.add_argument("--pred", default=None, help="predictions to rank (default RUN/gt_scores.jsonl, else RUN/scores.jsonl)")
    s.add_argument("--out", default=None, help="folder for the figures and report.md (default the run directory)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("list", help="registered spaces, algorithms, datasets")
    s.add_argument("kind", nargs="?", choices=["spaces", "algorithms", "datasets", "proxies"])
    s.add_argument("pattern", nargs="?", default="*")
    s.set_defaults(func=cmd_list)

    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    for sp in sub.choices.values():  # each command's own parser, for its usage line in errors
        sp.set_defaults(_parser=sp)
        for action in sp._actions:
            if isinstance(action, argparse._SubParsersAction):
                for nested in action.choices.values():
                    nested.set_defaults(_parser=nested)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (2: bad input, 130 / 143: interrupted by SIGINT / SIGTERM)."""
    import signal
    import threading

    in_main = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    previous_int = signal.getsignal(signal.SIGINT) if in_main else None
    args: argparse.Namespace | None = None
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        # key=value overrides may come after options (argparse stops filling positionals at the first one)
        stray = [e for e in extra if e.startswith("-") or "=" not in e]
        own = getattr(args, "_parser", parser)  # the command's usage, not the top-level one
        if stray or (extra and not hasattr(args, "overrides")):
            bare = [e for e in stray if not e.startswith("-")]
            if bare and hasattr(args, "overrides"):
                own.error(f"override {bare[0]!r} is not key=value (e.g. train.epochs=5)")
            own.error(f"unrecognized arguments: {' '.join(stray or extra)}")
        if extra:
            args.overrides = list(args.overrides) + extra
        return int(args.func(args) or 0)
    except SystemExit:  # argparse's --help and usage errors (before the import-heavy clause below)
        raise
    except KeyboardInterrupt as e:
        if in_main:  # a second signal during the message must not cut it short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"distilnas: interrupted; {_interrupted(args)}", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
    except _known_errors() + (ValueError,) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"distilnas: error: {msg}", file=sys.stderr)
        return 2
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


if __name__ == "__main__":
    sys.exit(main())
