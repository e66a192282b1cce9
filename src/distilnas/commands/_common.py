"""What several command handlers share: a YAML config with ``key=value`` overrides."""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["load_config", "merge_sections"]


def load_config(path: str | None, overrides: Sequence[str]) -> dict[str, Any]:
    """The YAML at ``path`` (none: empty) with ``key=value`` overrides applied."""
    from ..config import apply_overrides, load_yaml

    data = load_yaml(path) if path else {}
    return apply_overrides(data, list(overrides))


def merge_sections(checkpoint: str, overrides: dict[str, Any]) -> dict[str, Any] | None:
    """Overrides of a checkpoint's config, merged section by section (e.g. data.root=...)."""
    if not overrides:
        return None
    from ..train.checkpoint import load_checkpoint

    base = load_checkpoint(checkpoint).get("config", {})
    merged = dict(base)
    for k, v in overrides.items():
        merged[k] = {**base.get(k, {}), **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return merged
