"""distilnas: one-shot NAS where distillation fixes the ranking of weight-sharing supernets."""

import os as _os

# OpenMP threads that wait for work by spinning fight other busy processes, and threads that sleep at once
# wake up too late for the many small parallel regions of a NAS step. Measured on a 2-core CPU, SPOS step of
# the micro-benchmark with 2 torch threads (benchmarks/bench_threads.py, docs/performance.md): GNU OpenMP's
# default spinning 0.85x one thread's time on an idle machine but 2.7-21x beside two busy processes;
# passive waiting 1.5x idle, 1.3x loaded; a bounded spin of 10,000 iterations 0.86x idle, 1.5x loaded. So
# distilnas bounds the spin (GNU OpenMP, the runtime of PyTorch's Linux wheels). The runtime reads it when
# it starts, so it applies when distilnas is imported before torch (every distilnas command does); an
# OMP_WAIT_POLICY or GOMP_SPINCOUNT in the environment wins. One thread per process is the default anyway
# (train.threads=1).
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "10000")

__version__ = "0.1.0"
