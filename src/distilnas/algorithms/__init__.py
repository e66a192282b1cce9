"""Search algorithms, registered in :data:`ALGORITHMS`."""

from .base import ALGORITHMS, Algorithm, StepOutput, path_rng
from .cream import Cream
from .dna import DNA
from .fairnas import FairNAS
from .sandwich import Sandwich
from .rdnas import RDNAS
from .spos import SPOS

__all__ = ["ALGORITHMS", "Algorithm", "StepOutput", "path_rng", "SPOS", "FairNAS", "RDNAS", "Cream", "Sandwich", "DNA"]
