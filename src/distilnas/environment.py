"""What a result was computed on: library versions, CPU, threads, device and the command line.

A seed pins a run only on one platform: the same seed on another CPU (other kernels: AVX2 vs AVX-512,
oneDNN versions) or with another thread count changes floating-point rounding, and SGD amplifies it
into another trajectory (docs/benchmark.md measures how much). So every result.json records this.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

__all__ = ["environment"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: Any = None) -> dict[str, Any]:
    """A JSON-ready description of this process's platform."""
    import numpy
    import torch

    from . import __version__

    isa = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else None
    out: dict[str, Any] = {
        "distilnas": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu": _cpu_model(), "cpu_capability": isa, "cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "device": str(device) if device is not None else None,
        "command": " ".join(sys.argv),
    }
    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return out
