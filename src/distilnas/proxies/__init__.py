"""Zero-cost proxies: scores of untrained networks that predict their trained accuracy.

Every proxy is registered in :data:`PROXIES` and called as ``proxy(model, batch, generator) -> float``
(higher = predicted better; NaN on a numerical failure; the model is never changed). Most users want
:func:`compute` (one architecture of a space) or :func:`score_archs` (a sweep). See docs/proxies.md.
Importing any part of the package registers the built-in proxies (this file imports their modules).
"""

from . import cost, naswot, pruning, zen  # noqa: F401  (each registers its proxies on import)
from .base import (
    DEFAULT_BATCH_SIZE, PROXIES, NumericalFailure, Proxy, ProxyError, compute, fixed_batch, register_proxy,
    sample_batch, score_archs,
)

__all__ = [
    "PROXIES", "Proxy", "ProxyError", "NumericalFailure", "register_proxy", "compute", "score_archs",
    "fixed_batch", "sample_batch", "DEFAULT_BATCH_SIZE",
]
