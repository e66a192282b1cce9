"""CPU time the committed benchmark results cost, as their own metadata records it.

    python benchmarks/compute_spent.py [PATH ...] [--markdown]

A PATH is a suite's predictions folder (``<label>/seed<s>.result.json``: ``train_seconds`` +
``score_seconds`` per search, one torch thread each), a ``bench build`` folder (``runs.jsonl``: ``seconds``
per standalone training run) or a search-quality results file (``benchmarks/search_quality.py``'s JSON:
per entry its search's ``search_seconds`` and its retrainings' ``retrain_seconds``). Default: every folder
under ``benchmarks/results/`` and ``benchmarks/groundtruth/`` and every
``benchmarks/results/search_quality_*.json``. Prints one row per entry (a suite label, a ground-truth folder,
or a search-quality entry) with its runs and CPU-hours, then the totals. What is not recorded is not
counted: rescoring, proxies, snapshot scoring, killed runs' lost work and the wall time of a step pipeline's
waits. The seconds are wall
seconds of one-thread jobs on a shared machine, so they include slowdowns from jobs running beside them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_suite import render_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def searches(folder: Path) -> list[tuple[str, int, float]]:
    """(label, runs, seconds) per entry of a predictions folder."""
    rows = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        seconds, n = 0.0, 0
        for f in sorted(d.glob("seed*.result.json")):
            try:
                meta = json.loads(f.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            seconds += float(meta.get("train_seconds") or 0) + float(meta.get("score_seconds") or 0)
            n += 1
        if n:
            rows.append((f"{folder.name}/{d.name}", n, seconds))
    return rows


def builds(folder: Path) -> list[tuple[str, int, float]]:
    """(folder, runs, seconds) of a bench build folder."""
    seconds, n = 0.0, 0
    for line in (folder / "runs.jsonl").read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(r, dict) and "seconds" in r:
            seconds += float(r["seconds"])
            n += 1
    return [(folder.name, n, seconds)] if n else []


def search_quality(path: Path) -> list[tuple[str, int, float]] | None:
    """(entry, runs, seconds) per entry of a search-quality results file: its search (one run, when it
    searched) and its retrainings; None when the file is not one."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "label" in e for e in entries):
        return None
    rows = []
    for e in entries:
        retrain = [float(x) for x in e.get("retrain_seconds") or [] if x is not None]
        search = e.get("search_seconds")
        n = len(retrain) + (search is not None)
        if n:
            rows.append((f"{path.stem}/{e['label']}", n, sum(retrain) + float(search or 0)))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    paths = args.paths or (sorted(p for base in ("results", "groundtruth")
                                  for p in (ROOT / "benchmarks" / base).iterdir() if p.is_dir())
                           + sorted((ROOT / "benchmarks" / "results").glob("search_quality_*.json")))
    kinds: dict[str, list[tuple[str, int, float]]] = {"searches": [], "ground truth": [], "search quality": []}
    for f in paths:
        if f.is_file():
            rows = search_quality(f)
            if rows is None:
                print(f"compute_spent: error: {f} is not a search-quality results file "
                      "(benchmarks/search_quality.py writes them)", file=sys.stderr)
                return 2
            kinds["search quality"] += rows
            continue
        if not f.is_dir():
            print(f"compute_spent: error: {f} is not a folder (a predictions or bench build folder) "
                  "or a search-quality results file", file=sys.stderr)
            return 2
        if (f / "runs.jsonl").is_file():
            kinds["ground truth"] += builds(f)
        else:
            kinds["searches"] += searches(f)
    rows, total = [], 0.0
    for kind, entries in kinds.items():
        sub = sum(s for _, _, s in entries)
        total += sub
        rows += [[kind, name, f"{n} runs", f"{s / 3600:.2f} CPU-h"] for name, n, s in entries]
        if entries:
            rows.append([kind, "all", f"{sum(n for _, n, _ in entries)} runs", f"{sub / 3600:.2f} CPU-h"])
    print(render_table(["kind", "entry", "runs", "CPU-hours"], rows, args.markdown))
    print(f"\ntotal {total / 3600:.2f} CPU-h")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
