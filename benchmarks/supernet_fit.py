"""How fast a supernet fits its training data on one fixed path against uniformly sampled paths, side by side.

    python benchmarks/supernet_fit.py configs/bench/cream_mobilenet_fmnist16.yaml space.width_mult=0.125 \\
        "space.depths=[3, 3, 3, 3, 3]" "space.expansions=[3, 6]" --steps 300 [--arch ARCH] [--every 50]

Two supernets of the config's space, initialised alike, trained for ``--steps`` steps of plain SGD with the
config's batch size, learning rate, momentum, weight decay and gradient clipping (no schedule, no label
smoothing, no algorithm): one always on ``--arch`` (default: a path sampled with the config's seed), one on a
uniformly sampled path per step (SPOS's sampling). Prints the training accuracy of every ``--every`` steps
for both. A supernet whose shared weights fit far more slowly than one path of it is undertrained at a
budget where a single network would be trained: its ranking cannot be better than its fit (issue 12: the
MobileNet x0.125 supernets reach 33-43% training accuracy after the 12-epoch preset).
"""

from __future__ import annotations

import argparse
import random
import sys

import torch
import torch.nn.functional as F

from distilnas.config import ConfigError, apply_overrides, load_yaml
from distilnas.data import DataError, load_dataset
from distilnas.spaces import create_space
from distilnas.spaces.base import build_space_config
from distilnas.train.loop import resolve_config


def fit(space, arch, x: torch.Tensor, y: torch.Tensor, train, steps: int, every: int, sample: bool, seed: int
        ) -> list[float]:
    """Training accuracy (%) of each window of ``every`` steps."""
    torch.manual_seed(seed)
    net = space.supernet()
    opt = torch.optim.SGD(net.parameters(), lr=train.lr, momentum=train.momentum, nesterov=train.nesterov,
                          weight_decay=train.weight_decay)
    rng, gen = random.Random(seed + 1), torch.Generator().manual_seed(seed)
    net.train()
    accs, correct = [], 0
    for step in range(steps):
        idx = torch.randint(0, len(x), (train.batch_size,), generator=gen)
        out = net(x[idx], space.sample(rng) if sample else arch)
        loss = F.cross_entropy(out, y[idx])
        opt.zero_grad()
        loss.backward()
        if train.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), train.grad_clip)
        opt.step()
        correct += (out.argmax(1) == y[idx]).sum().item()
        if (step + 1) % every == 0:
            accs.append(100.0 * correct / (every * train.batch_size))
            correct = 0
    return accs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--arch", default=None, help="the fixed path (default: one sampled with the config's seed)")
    args = ap.parse_args(argv)
    if args.steps < 1 or not 1 <= args.every <= args.steps:
        print("supernet_fit: error: need --steps >= 1 and 1 <= --every <= --steps", file=sys.stderr)
        return 2
    try:
        cfg = resolve_config(apply_overrides(load_yaml(args.config), args.overrides))
        space = create_space(cfg.space["name"], build_space_config(cfg.space["name"], cfg.space))
        arch = space.parse(args.arch) if args.arch else space.sample(random.Random(cfg.seed))
        data = load_dataset(cfg.data)
    except (ConfigError, ValueError, DataError) as e:  # ArchError is a ValueError
        print(f"supernet_fit: error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(cfg.train.threads or 1)
    x, y = data.train_x, data.train_y
    fixed = fit(space, arch, x, y, cfg.train, args.steps, args.every, sample=False, seed=cfg.seed)
    uniform = fit(space, arch, x, y, cfg.train, args.steps, args.every, sample=True, seed=cfg.seed)
    print(f"training accuracy (%) per {args.every} steps; fixed path {arch}")
    print(f"{'steps':>6}  {'fixed path':>10}  {'sampled paths':>13}")
    for i, (a, b) in enumerate(zip(fixed, uniform)):
        print(f"{(i + 1) * args.every:>6}  {a:>10.1f}  {b:>13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
