"""Architecture values shared by all search spaces.

An architecture is a frozen, hashable value with a short canonical string that round-trips
(``space.parse(str(a)) == a``). Each space defines its own value type; this module holds what they share.
"""

from __future__ import annotations

__all__ = ["ArchError"]


class ArchError(ValueError):
    """A malformed or out-of-space architecture string; the message says what is wrong and what is expected."""
