"""Weight sharing in the MobileNet supernet: separate ops per choice vs one sliced weight per layer.

``separate`` is the library's supernet (:class:`distilnas.ops.mbconv.MBChoiceLayer`: one MBConv per
kernel x expansion). ``sliced`` replaces every choice layer by :class:`SlicedChoiceLayer` below: one
``k_max e_max`` MBConv whose expansion, depthwise and SE weights are sliced to the first ``E * C_in``
channels and whose depthwise kernel is centre-cropped to ``K x K`` (OFA / NNI style). Both run the same
sampled paths on the same random batch; each mode runs in its own process.

Reported per mode: parameters of the supernet, median time of one SGD training step of a sampled path
(forward, backward, optimizer step) and its images/s, and peak memory during the timed steps
(CUDA: ``torch.cuda.max_memory_allocated``; CPU: the process's peak resident set size, VmHWM, reset
after building the model), then the ratio sliced / separate.

    python benchmarks/bench_mbconv.py --preset fmnist16 --batch 128 --steps 40 --threads 1
    python benchmarks/bench_mbconv.py --preset imagenet --batch 64 --steps 20 --device cuda
    python benchmarks/bench_mbconv.py --preset imagenet --batch 32 --threads 1 input_size=64
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from distilnas.config import apply_overrides, from_dict
from distilnas.ops.mbconv import IDENTITY, MBChoiceLayer, MBConv, parse_op
from distilnas.spaces import count_params
from distilnas.spaces.mobilenet import MobileNetConfig, MobileNetSpace, MobileNetSupernet

MODES = ("separate", "sliced")


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d, c: int) -> torch.Tensor:
    """BatchNorm over the first ``c`` channels of ``bn`` (running statistics updated in place)."""
    return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                        bn.training, bn.momentum or 0.1, bn.eps)


class SlicedChoiceLayer(nn.Module):
    """One ``k_max e_max`` MBConv per layer; op ``kKeE`` uses a slice of its weights."""

    def __init__(self, layer: MBChoiceLayer, kernels: list[int], expansions: list[int], se_ratio: float,
                 act: str) -> None:
        super().__init__()
        self.c_in, self.stride, self.k_max = layer.c_in, layer.stride, max(kernels)
        self.choices = layer.choices
        self.big = MBConv(layer.c_in, layer.c_out, self.k_max, max(expansions), layer.stride, se_ratio, act)

    def forward(self, x: torch.Tensor, code: str) -> torch.Tensor:
        if code == IDENTITY:
            return x
        parsed = parse_op(code)
        assert parsed is not None and code in self.choices
        k, e = parsed
        b, mid, off = self.big, self.c_in * e, (self.k_max - parsed[0]) // 2
        h = F.conv2d(x, b.expand[0].weight[:mid])
        h = b.expand[2](_bn(h, b.expand[1], mid))
        w = b.dw[0].weight[:mid, :, off:off + k, off:off + k]  # centre crop (mid, 1, k, k)
        h = F.conv2d(h, w, None, self.stride, k // 2, 1, mid)
        h = b.dw[2](_bn(h, b.dw[1], mid))
        s = h.mean(dim=(2, 3), keepdim=True)  # (B, mid, 1, 1)
        s = F.relu(F.conv2d(s, b.se.reduce.weight[:, :mid], b.se.reduce.bias))
        s = F.conv2d(s, b.se.expand.weight[:mid], b.se.expand.bias[:mid])
        h = h * F.hardsigmoid(s)
        h = b.project[1](F.conv2d(h, b.project[0].weight[:, :mid]))
        return x + h if b.residual else h


def build(space: MobileNetSpace, mode: str) -> MobileNetSupernet:
    net = space.supernet()
    if mode == "sliced":
        cfg = space.cfg
        for stage in net.stages:
            for i, layer in enumerate(stage.layers):
                stage.layers[i] = SlicedChoiceLayer(layer, cfg.kernels, cfg.expansions, cfg.se_ratio, cfg.act)
    return net


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_mode(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    opts = apply_overrides({"preset": args.preset}, args.overrides)
    space = MobileNetSpace(from_dict(MobileNetConfig, opts, "space"))
    torch.manual_seed(0)
    net = build(space, args.mode).to(device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    params = count_params(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-5)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, *space.input_shape(), generator=g).to(device).contiguous(memory_format=fmt)
    y = torch.randint(0, space.cfg.num_classes, (args.batch,), generator=g).to(device)
    rng = random.Random(0)
    paths = [space.sample(rng) for _ in range(args.warmup + args.steps)]
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        _reset_peak_rss()
    for i, arch in enumerate(paths):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x, arch), y)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else _peak_rss_mb()
    step = statistics.median(times)
    return {"params": params, "step_ms": 1000 * step, "img_per_s": args.batch / step, "peak_mb": peak}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="fmnist16", choices=["fmnist16", "imagenet"])
    p.add_argument("overrides", nargs="*", help="space options as key=value, e.g. input_size=128")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=40, help="timed steps (each a new sampled path)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # internal: run one mode, print JSON
    args = p.parse_args(argv)
    if args.mode:
        print(json.dumps(run_mode(args)))
        return 0
    results = {}
    for mode in MODES:  # one process per mode, so that peak memory is its own
        cmd = [sys.executable, __file__, "--mode", mode] + [a for a in (argv or sys.argv[1:])]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    where = f"{args.device}, {args.threads} thread(s)" if args.device == "cpu" else args.device
    print(f"preset {args.preset} {' '.join(args.overrides)}, batch {args.batch}, {args.steps} "
          f"sampled paths, {where}, channels_last={args.channels_last}")
    print(f"{'':14}{'separate':>12}{'sliced':>12}{'sliced/sep':>12}")
    rows = [("params", "params", "{:,.0f}"), ("step ms", "step_ms", "{:.1f}"), ("images/s", "img_per_s", "{:.0f}"),
            ("peak MB", "peak_mb", "{:.0f}")]
    for name, key, fmt in rows:
        a, b = results["separate"][key], results["sliced"][key]
        print(f"{name:14}{fmt.format(a):>12}{fmt.format(b):>12}{b / a:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
