"""Search algorithms, registered in :data:`ALGORITHMS`."""

from .base import ALGORITHMS, Algorithm, StepOutput, path_rng
from .fairnas import FairNAS
from .spos import SPOS

__all__ = ["ALGORITHMS", "Algorithm", "StepOutput", "path_rng", "SPOS", "FairNAS"]
