"""Zero-cost proxies: scores of untrained networks that predict their trained accuracy.

Every proxy is registered in :data:`PROXIES` and called as ``proxy(model, batch, generator) -> float``
(higher = predicted better; NaN on a numerical failure; the model is never changed). Most users want
:func:`compute` (one architecture of a space) or :func:`score_archs` (a sweep). See docs/proxies.md.
"""

import importlib
from typing import Any


__all__ = [
    "PROXIES", "Proxy", "ProxyError", "NumericalFailure", "register_proxy", "compute", "score_archs",
    "fixed_batch", "sample_batch", "DEFAULT_BATCH_SIZE",
]


def __getattr__(name: str) -> Any:
    """Import on first use (PEP 562), with the built-in proxies registered: the command line builds its
    parser without torch."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    base = importlib.import_module(".base", __name__)
    base.registered()
    return getattr(base, name)
