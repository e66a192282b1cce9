"""NB201 op speed on the CPU: the avg-pool implementation and the memory format, measured side by side.

    python benchmarks/bench_ops.py [--threads 1] [--reps 30]

Prints the median forward+backward time of ``nn.AvgPool2d(3, 1, 1, count_include_pad=False)`` against
:class:`distilnas.ops.nb201.AvgPool3x3` (a depthwise box filter divided by the window sizes, the same
numbers), and of one whole standalone NB201 training step (C=8, N=3, fmnist16 size) in contiguous versus
channels_last memory format, with the ratios. Machines are shared and noisy: compare the ratios, and
rerun when they look odd.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from distilnas.ops.nb201 import AvgPool3x3
from distilnas.spaces import NB201Config, create_space


def median_ms(fn, reps: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.reps}")

    print("\navg_pool_3x3 forward+backward (ms): nn.AvgPool2d vs AvgPool3x3 box filter")
    ref, box = nn.AvgPool2d(3, 1, 1, count_include_pad=False), AvgPool3x3()
    for shape in [(128, 8, 16, 16), (128, 16, 8, 8), (128, 32, 4, 4), (64, 16, 32, 32)]:
        x = torch.randn(*shape, requires_grad=True)
        assert torch.allclose(ref(x), box(x), atol=1e-6)
        a = median_ms(lambda: ref(x).sum().backward(), args.reps)
        b = median_ms(lambda: box(x).sum().backward(), args.reps)
        print(f"  {str(shape):18s} AvgPool2d {a:7.2f}  box {b:7.2f}  speed-up x{a / b:.2f}")

    print("\nstandalone NB201 step (C=8, N=3, 1x16x16, batch 128), forward+backward+SGD (ms)")
    space = create_space("nb201", NB201Config(C=8, N=3, in_channels=1, input_size=16))
    archs = ["|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|nor_conv_1x1~1|nor_conv_1x1~2|",
             "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|"]
    for text in archs:
        row = []
        for channels_last in (False, True):
            model = space.build(space.parse(text), seed=0)
            x, y = torch.randn(128, 1, 16, 16), torch.randint(0, 10, (128,))
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
                x = x.contiguous(memory_format=torch.channels_last)
            opt = torch.optim.SGD(model.parameters(), lr=0.01)

            def step() -> None:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()

            row.append(median_ms(step, args.reps))
        print(f"  {text}\n    contiguous {row[0]:7.2f}  channels_last {row[1]:7.2f}  speed-up x{row[0] / row[1]:.2f}")


if __name__ == "__main__":
    main()
