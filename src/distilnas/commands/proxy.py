"""``distilnas proxy NAME --space SPACE --archs FILE --out OUT.jsonl [key=value ...]``.

Scores every architecture of FILE (one per line; blank lines and ``#`` comments skipped) with a zero-cost
proxy and writes one JSON object per line: ``{"arch", "score", "seconds"}`` plus ``"error"`` (and
``"score": null``) where the score failed. Overrides are checked against :class:`ProxyRunConfig`.

NB201 at its official size (C=16, N=5, 3 input channels: CIFAR at 32 px, ImageNet16-120 at 16 px) runs
with ``space.dead_edges=full`` unless the overrides set it: the official network's every edge, as in the
published proxy values. Other sizes keep the space's default ``skip`` (the micro-benchmark's ground truth).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import MAX_SEED, opt
from ..fileio import atomic_open

__all__ = ["ProxyRunConfig", "add_parser", "cmd_proxy"]

DATA_HINT = ("pass data with overrides, e.g. data.name=fmnist16 space.in_channels=1 space.input_size=16, "
             "or data.name=cifar10 data.root=/path/to/cifar-10-batches-py")


@dataclass
class ProxyRunConfig:
    """``distilnas proxy`` options (``key=value`` on the command line)."""

    space: dict[str, Any] = field(default_factory=dict)  # the space's own Config options (space.C=8, ...)
    data: Any = None  # DataConfig options (data.name=..., data.root=...); none = no data
    batch_size: int = opt(64, ge=1)  # images in the one fixed batch (and the shape of data-free proxies' input)
    seed: int = opt(0, ge=0, le=MAX_SEED)  # network initialisation, proxy generator and choice of the batch
    workers: int = opt(1, ge=1)  # processes scoring architectures in parallel (1 = this process)
    device: str = "cpu"
    threads: int = opt(1, ge=0)  # torch threads of this process (0 = PyTorch's default: one per CPU)


def add_parser(sub: Any) -> None:
    """Add the ``proxy`` sub-command."""
    s = sub.add_parser("proxy", help="score architectures with a zero-cost proxy")
    s.add_argument("name", help="a registered proxy (distilnas list proxies)")
    s.add_argument("--space", default="nb201", help="search space (default nb201)")
    s.add_argument("--archs", required=True, help="file with one architecture string per line")
    s.add_argument("--out", required=True, help="output JSON lines")
    s.add_argument("overrides", nargs="*", metavar="key=value",
                   help="e.g. data.name=fmnist16 space.in_channels=1 space.input_size=16 batch_size=64 workers=2")
    s.set_defaults(func=cmd_proxy)


def cmd_proxy(args: argparse.Namespace) -> int:
    """Run ``distilnas proxy``; returns the exit status."""
    import torch

    from ..config import ConfigError, apply_overrides, from_dict
    from ..data import DataConfig, load_dataset
    from ..spaces import NB201Config, build_space_config, check_data, create_space, read_archs
    from ..train.parallel import torch_threads
    from ..proxies import PROXIES, sample_batch, score_archs

    proxy = PROXIES.get(args.name)
    cfg = from_dict(ProxyRunConfig, apply_overrides({}, list(args.overrides)))
    if cfg.data is not None:
        if not isinstance(cfg.data, dict):
            raise ConfigError(f"data: expected data.<option>=value overrides, got data={cfg.data!r}")
        cfg.data = from_dict(DataConfig, cfg.data, "data")
    if cfg.threads < 0:
        raise ConfigError(f"threads={cfg.threads} must be 0 (PyTorch's default) or more")
    if cfg.workers < 1:
        raise ConfigError(f"workers={cfg.workers} must be at least 1")
    space_cfg = build_space_config(args.space, cfg.space)
    if isinstance(space_cfg, NB201Config) and space_cfg.official_size and "dead_edges" not in cfg.space:
        space_cfg = replace(space_cfg, dead_edges="full")  # as the published NB201 proxy values
    space = create_space(args.space, space_cfg)
    archs = read_archs(args.archs, space)
    if proxy.data:
        if cfg.data is None:
            raise ConfigError(f"proxy {proxy.name} needs data; {DATA_HINT}")
        splits = load_dataset(cfg.data)
        check_data(space, splits, cfg.data.name)
        batch = sample_batch(splits, cfg.batch_size, cfg.seed)
    else:  # data-free: only the input's shape is read
        batch = (torch.zeros(cfg.batch_size, *space.input_shape()), torch.zeros(cfg.batch_size, dtype=torch.long))
    out = Path(args.out)
    t0, failed = time.time(), 0
    with torch_threads(cfg.threads), atomic_open(out) as f:
        for r in score_archs(proxy.name, space, archs, batch, seed=cfg.seed, device=cfg.device,
                             workers=cfg.workers):
            failed += "error" in r
            f.write(json.dumps(r) + "\n")
    print(f"proxy {proxy.name}: scored {len(archs)} architectures ({failed} failed) in "
          f"{time.time() - t0:.1f}s -> {out}")
    return 0
