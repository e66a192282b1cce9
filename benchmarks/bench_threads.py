"""Threads that do not fight: one process's torch thread count and OpenMP waiting, on an idle machine and
beside busy processes.

    python benchmarks/bench_threads.py [--workload spos|conv] [--rounds 3] [--repeat 2]

Each variant runs in a fresh process (OpenMP reads its waiting policy when it starts), the variants in
turn, ``--repeat`` times, so load changes hit them alike; medians. Workloads: ``spos``, the SPOS training
step of the micro-benchmark preset (benchmarks/bench_step_time.py, 3 rounds x 15 steps) and ``conv``, one
float64 3x3 convolution forward and backward (the synflow proxy's, 1x16x32x32, channels-last; 100
repetitions per round). Variants: 1 thread (distilnas's default ``train.threads=1``); 2 threads with GNU
OpenMP waiting actively (``OMP_WAIT_POLICY=ACTIVE``), passively (``PASSIVE``), with GNU OpenMP's own
default spin (``GOMP_SPINCOUNT=300000``) and with distilnas's bounded spin (``GOMP_SPINCOUNT=10000``, set
when distilnas is imported before torch). Run it once on an idle machine and once beside other busy
processes (e.g. two searches): the second is where active waiting falls off a cliff.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

CONV = """
import statistics, sys, time
import distilnas, torch, torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1]))
x = torch.randn(1, 16, 32, 32, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
w = torch.randn(16, 16, 3, 3, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
ts = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    for _ in range(100):
        F.conv2d(x, w, padding=1).sum().backward()
    ts.append((time.perf_counter() - t0) * 10)
print(statistics.median(ts))
"""

VARIANTS = [  # (label, threads, environment)
    ("1 thread (default)", 1, {}),
    ("2 threads, active", 2, {"OMP_WAIT_POLICY": "ACTIVE"}),
    ("2 threads, passive", 2, {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("2 threads, spin 300000 (GNU default)", 2, {"GOMP_SPINCOUNT": "300000"}),
    ("2 threads, spin 10000 (distilnas)", 2, {"GOMP_SPINCOUNT": "10000"}),
]


def measure(workload: str, threads: int, extra: dict[str, str], rounds: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(extra)
    if workload == "conv":
        cmd = [sys.executable, "-c", CONV, str(threads), str(rounds)]
    else:
        cmd = [sys.executable, str(Path(__file__).with_name("bench_step_time.py")), "--algorithms", "spos",
               "--threads", str(threads), "--steps", "15", "--rounds", str(rounds)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    if workload == "conv":
        return float(out.split()[0])
    return float(next(ln.split()[1] for ln in out.splitlines() if ln.startswith("spos ")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=("spos", "conv"), default="spos")
    ap.add_argument("--rounds", type=int, default=3, help="rounds inside each process")
    ap.add_argument("--repeat", type=int, default=2, help="fresh processes per variant (interleaved)")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    times: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
    for _ in range(args.repeat):
        for label, threads, extra in VARIANTS:
            times[label].append(measure(args.workload, threads, extra, args.rounds))
    print(f"{args.workload}: load average {load0:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
          f"median of {args.repeat} processes, ms")
    base = statistics.median(times[VARIANTS[0][0]])
    for label, _, _ in VARIANTS:
        ms = statistics.median(times[label])
        print(f"  {label:38s} {ms:9.2f}  {ms / base:5.2f} x 1 thread   ({', '.join(f'{t:.1f}' for t in times[label])})")


if __name__ == "__main__":
    main()
