"""distilnas: one-shot NAS where distillation fixes the ranking of weight-sharing supernets."""

import os as _os

# OpenMP threads that wait actively spin against other busy processes: on a loaded 2-core machine a
# 2-thread convolution took 3.5x as long as a 1-thread one with GNU OpenMP's default waiting, 1.08x with
# passive waiting (benchmarks/bench_threads.py; docs/performance.md). The OpenMP runtime reads this when it
# starts, so it applies when distilnas is imported before torch (every distilnas command does); an
# explicit OMP_WAIT_POLICY in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
