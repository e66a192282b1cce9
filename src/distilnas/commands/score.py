"""``distilnas score CHECKPOINT --archs FILE --out OUT.jsonl [key=value ...]``: every architecture of FILE
scored with a trained supernet's shared weights (BN recalibrated per path); resumable."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ._common import merge_sections


def add_parser(sub: Any) -> None:
    """Add ``score``."""
    s = sub.add_parser("score", help="score architectures with a trained supernet")
    s.add_argument("checkpoint")
    s.add_argument("--archs", required=True, help="file with one architecture string per line")
    s.add_argument("--out", required=True, help="output JSON lines")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. score.bn_recal_batches=20 data.root=...")
    s.set_defaults(func=cmd_score)


def cmd_score(args: argparse.Namespace) -> int:
    """Score architectures with a trained supernet. Rows go to ``OUT.resume`` as they are scored, so a
    rerun of the same command after a kill resumes; ``OUT`` appears complete at the end."""
    import hashlib

    from ..config import apply_overrides
    from ..data import load_dataset
    from ..evaluate.scoring import score_archs
    from ..fileio import PartialRows, lock_file, prepare_out_dir
    from ..spaces import check_data, read_archs
    from ..train.loop import load_supernet
    from ..train.parallel import torch_threads

    state_overrides = apply_overrides({}, list(args.overrides))
    run, state = load_supernet(args.checkpoint, merge_sections(args.checkpoint, state_overrides))
    import torch

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
    with torch_threads(run.cfg.train.threads), lock_file(out.with_name(out.name + ".lock"), f"output {out}"):
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


def interrupted(args: argparse.Namespace) -> str:
    """What an interrupted ``score`` kept (rows are appended to OUT.resume as they are scored)."""
    resume = Path(f"{args.out}.resume")
    if resume.exists() and len(resume.read_text(errors="replace").splitlines()) > 1:  # header + rows
        return f"scored rows are kept in {args.out}.resume; rerun the same command to continue"
    return "nothing was scored yet; rerun the command"
