"""Threads that do not fight: one float64 3x3 convolution (the synflow proxy's, 1x16x32x32, channels-last),
forward and backward, with 1 and 2 torch threads and OpenMP's default vs passive waiting, each in a fresh
process (OMP_WAIT_POLICY is read when the OpenMP runtime starts). Run it on an idle machine and beside
other busy processes (e.g. a search): with active waiting, 2 threads on a loaded 2-core machine spin
against the other processes.

    python benchmarks/bench_threads.py [--rounds 5 --reps 100]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import statistics, sys, time
import torch, torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1]))
x = torch.randn(1, 16, 32, 32, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
w = torch.randn(16, 16, 3, 3, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
ts = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    for _ in range(int(sys.argv[3])):
        F.conv2d(x, w, padding=1).sum().backward()
    ts.append((time.perf_counter() - t0) / int(sys.argv[3]) * 1000)
print(statistics.median(ts), min(ts), max(ts))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=100)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    base = None
    for threads in (1, 2):
        for policy in ("", "PASSIVE"):
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            if policy:
                env["OMP_WAIT_POLICY"] = policy
            out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(args.rounds), str(args.reps)],
                                 env=env, capture_output=True, text=True, check=True).stdout.split()
            med, lo, hi = map(float, out)
            base = base or med
            print(f"threads {threads}  wait {policy or 'default':8s} {med:7.3f} ms  ({lo:.3f}-{hi:.3f})  "
                  f"ratio to 1 thread/default {med / base:.2f}")


if __name__ == "__main__":
    main()
