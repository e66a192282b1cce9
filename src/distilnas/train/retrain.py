"""Retrain a selected architecture from scratch and export it (``distilnas retrain`` / ``distilnas train``).

One-shot NAS ends with the architecture its supernet selected; its real accuracy comes from training it
standalone from scratch (Cream, Peng et al. NeurIPS 2020, retrains its searched nets for 500 epochs with
RMSprop, an EMA of the weights and RandAugment; here any :class:`~distilnas.train.standalone.Recipe`
does, ``configs/retrain/cream_rmsprop.yaml`` is the Cream-style one).

``retrain(target, cfg)`` takes either a search's ``result.json`` (or its run directory), whose ``arch``
is retrained in the run's space and on its dataset (read from ``config.yaml`` next to it), or a literal
architecture string. It writes to ``DIR``:

- ``result.json``: arch, validation and test accuracy / loss, params, FLOPs, seconds, recipe hash and the
  resolved config (seed, space, data, recipe, ...);
- ``arch.json``: everything needed to rebuild the network (space name, full space config, arch string);
- ``model.pt``: the trained ``state_dict`` (the EMA weights when ``recipe.ema_decay > 0``), written first;
- ``model.onnx``: when the exporter's packages are importable (``export_onnx``: auto | true | false).

:func:`load_exported` rebuilds the trained network from such a directory.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib.util
import io
import json
import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping

import torch
from torch import nn

from ..arch import ArchError
from ..config import MAX_SEED, ConfigError, from_dict, load_yaml, opt, to_dict
from ..data import DataConfig, load_dataset
from ..devices import resolve_device
from ..errors import RunError
from ..fileio import dumps, prepare_out_dir, run_lock
from ..spaces import SearchSpace, build_space_config, check_data, create_space
from .checkpoint import ARCH_FORMAT, load_exported
from .parallel import torch_threads
from .standalone import Recipe, recipe_hash, train_standalone

__all__ = ["RetrainConfig", "ExportError", "resolve_target", "retrain", "train_architecture",
           "load_exported", "save_onnx", "missing_onnx_packages", "ARCH_FORMAT"]

ONNX_PACKAGES = ("onnx", "onnxscript")  # torch.onnx.export's default (dynamo) exporter needs both
ONNX_HINT = "pip install onnx onnxscript (or pip install 'distilnas[export]')"


class ExportError(RuntimeError):
    """ONNX export that was asked for (``export_onnx=true``) and could not be done."""


@dataclass
class RetrainConfig:
    """``distilnas retrain`` / ``distilnas train``: one architecture trained standalone from scratch."""

    seed: int = opt(0, ge=0, le=MAX_SEED)  # initialises the network and orders the batches
    space: dict[str, Any] = field(default_factory=lambda: {"name": "nb201"})  # name + the space's options
    data: DataConfig = field(default_factory=DataConfig)
    recipe: Recipe = field(default_factory=Recipe)
    device: str = "auto"  # auto = cuda when available, else cpu
    threads: int = opt(1, ge=0)  # torch CPU threads while training (0 = leave as is; docs/performance.md)
    export_onnx: bool | str = "auto"  # auto: model.onnx when onnx + onnxscript import; true: required; false: skip

    def __post_init__(self) -> None:
        _onnx_mode(self.export_onnx)


def _onnx_mode(value: bool | str) -> Literal["auto", "true", "false"]:
    text = str(value).strip().lower()
    if text not in ("auto", "true", "false"):
        raise ConfigError(f"export_onnx={value!r}; choose auto, true or false")
    return text  # type: ignore[return-value]


def missing_onnx_packages() -> list[str]:
    """The packages ONNX export needs that are not importable here (empty when export can run)."""
    return [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]


# ---------------------------------------------------------------------------------------------------
def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, merging nested sections key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.endswith((".json", ".yaml", ".yml")) or text in (".", "..")


def _space(options: Mapping[str, Any]) -> SearchSpace[Any]:
    name = str(options.get("name", "nb201"))
    return create_space(name, build_space_config(name, dict(options)))


def _run_sections(result_path: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Space and data of the run that wrote ``result_path``: its ``config.yaml``, else (a result of
    ``distilnas retrain`` / ``train``) the config stored in the result itself."""
    cfg_path = result_path.parent / "config.yaml"
    if cfg_path.is_file():
        run_cfg = load_yaml(cfg_path)
    elif isinstance(result.get("config"), dict):
        run_cfg = result["config"]
    else:
        raise ConfigError(f"no config.yaml next to {result_path}: the run's space and dataset are unknown; "
                          f"restore it, or pass the arch string with space.* and data.* options")
    return {k: run_cfg[k] for k in ("space", "data") if isinstance(run_cfg.get(k), dict)}


def _read_result(target: str | Path) -> tuple[str, Path, dict[str, Any]]:
    """``(arch, result.json path, result)`` of an existing result file or run directory."""
    p = Path(target)
    result_path = p / "result.json" if p.is_dir() else p
    if not result_path.is_file():
        raise ConfigError(f"run directory {p} has no result.json; pass a finished search's directory or "
                          f"result.json, or an architecture string")
    try:
        result = json.loads(result_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"{result_path} is not JSON; expected the result.json of distilnas search or "
                          f"random-search") from None
    if not isinstance(result, dict) or not result.get("arch"):
        raise ConfigError(f"{result_path} has no 'arch'; expected the result.json of a finished "
                          f"distilnas search or random-search")
    return str(result["arch"]), result_path, result


def resolve_target(target: str | Path, overrides: Mapping[str, Any] | None = None
                   ) -> tuple[str, RetrainConfig, str | None]:
    """The architecture to retrain, its config, and where it came from.

    Args:
        target: a search's ``result.json``, its run directory, or a literal architecture string.
        overrides: (nested) config options; for a result they are merged over the run's ``space`` and
            ``data`` sections, for an arch string over the defaults.

    Returns:
        ``(arch string, config, source)``; ``source`` is the result file, or ``None`` for a literal arch.

    Raises:
        ConfigError: a result without ``arch``, a run directory without ``result.json``, a result without
            ``config.yaml`` next to it, a non-existent path, or bad options.
        ArchError: an architecture that is not valid in the space.
    """
    over = dict(overrides or {})
    if Path(target).exists():
        arch, result_path, result = _read_result(target)
        cfg = from_dict(RetrainConfig, _merge(_run_sections(result_path, result), over))
        try:
            _space(cfg.space).parse(arch)
        except ArchError as e:
            raise ArchError(f"{result_path}: its arch is not valid in the configured space: {e}") from None
        return arch, cfg, str(result_path)
    text = str(target).strip()
    cfg = from_dict(RetrainConfig, over)
    space = _space(cfg.space)
    try:
        space.parse(text)
    except ArchError as e:
        if _looks_like_path(text):
            raise ConfigError(f"{text!r} looks like a path, but no such file or directory exists; pass a "
                              f"search's result.json or run directory, or an architecture string") from None
        raise ArchError(f"{text!r} is not a file or directory, and not a valid {space.name} architecture: "
                        f"{e}") from None
    return text, cfg, None


# ---------------------------------------------------------------------------------------------------
def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(dumps(obj, indent=2) + "\n")


def train_architecture(arch: str, cfg: RetrainConfig, out: str | Path | None = None,
                       progress: bool | None = None, source: str | None = None) -> dict[str, Any]:
    """:func:`_train_architecture` holding a lock on ``out`` (one process writes an output directory)."""
    if out is None:
        return _train_architecture(arch, cfg, None, progress, source)
    _check_onnx(cfg, out)  # before the output directory is created
    _check_out(Path(out))
    with run_lock(Path(out), "output directory"):
        return _train_architecture(arch, cfg, out, progress, source)


def _check_onnx(cfg: RetrainConfig, out: str | Path | None) -> tuple[str, list[str]]:
    """The export mode and the missing exporter packages; export_onnx=true without them is an error."""
    mode = _onnx_mode(cfg.export_onnx)
    missing = missing_onnx_packages() if (out is not None and mode != "false") else []
    if mode == "true" and missing:
        raise ConfigError(f"export_onnx=true but {' and '.join(missing)} cannot be imported; {ONNX_HINT}, "
                          f"or set export_onnx=auto")
    return mode, missing


def _train_architecture(arch: str, cfg: RetrainConfig, out: str | Path | None = None,
                        progress: bool | None = None, source: str | None = None) -> dict[str, Any]:
    """Train ``arch`` from scratch with ``cfg`` and (when ``out`` is given) write its files.

    The one standalone-training path behind ``distilnas train`` and ``distilnas retrain``.

    Args:
        arch: the architecture string (parsed in ``cfg.space``).
        cfg: the full config.
        out: directory for ``result.json``, ``arch.json``, ``model.pt`` and ``model.onnx`` (``None``:
            nothing is written).
        progress: progress bar (``None``: only when stderr is a terminal).
        source: where the architecture came from (recorded in the result).

    Returns:
        The result: ``arch``, ``space``, ``val_accuracy``, ``val_loss``, ``test_accuracy``, ``test_loss``,
        ``params``, ``flops``, ``seconds``, ``recipe_hash``, ``source``, ``onnx`` (exported | skipped |
        failed | off; with ``onnx_note`` saying why when not exported) and ``config``.
    """
    mode, missing = _check_onnx(cfg, out)
    space = _space(cfg.space)
    a = space.parse(arch)
    device = resolve_device(cfg.device)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        _check_out(out_dir)
    data = load_dataset(cfg.data)
    shape = {"in_channels": data.input_shape[0], "input_size": data.input_shape[1], "num_classes": data.num_classes}
    unset = {k: v for k, v in shape.items() if k not in cfg.space}
    if source is None and unset:  # a literal architecture: the network's input and classes follow the data
        cfg = dataclasses.replace(cfg, space={**cfg.space, **unset})
        space = _space(cfg.space)
        a = space.parse(arch)
    check_data(space, data, cfg.data.name)
    if cfg.recipe.batch_size > len(data.train_y):
        raise ConfigError(f"recipe.batch_size={cfg.recipe.batch_size} is larger than the training split "
                          f"({len(data.train_y)} images); lower it or raise data.train_size")
    model = space.build(a, seed=cfg.seed)
    cost = space.cost(a)
    t0 = time.time()
    with torch_threads(cfg.threads):
        metrics = train_standalone(model, data, cfg.recipe, seed=cfg.seed, device=device,
                                   augment=cfg.data.augment,
                                   progress=sys.stderr.isatty() if progress is None else progress,
                                   log_epochs=progress is not False)
    space_cfg = {"name": space.name, **to_dict(space.cfg)}
    result: dict[str, Any] = {
        "arch": str(a), "space": space.name, **metrics, "params": int(cost["params"]),
        "flops": int(cost["flops"]), "seconds": round(time.time() - t0, 1),
        "recipe_hash": recipe_hash(cfg.recipe), "source": source, "onnx": "off",
        "config": {"seed": cfg.seed, "space": space_cfg, "data": to_dict(cfg.data), "recipe": to_dict(cfg.recipe),
                   "device": cfg.device, "threads": cfg.threads, "export_onnx": mode},
    }
    if out_dir is None:
        return result
    # 1. the weights first: nothing after this can lose them
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, out_dir / "model.pt")
    _write_json(out_dir / "arch.json", {"format": ARCH_FORMAT, "version": 1, "space": space.name,
                                        "space_config": space_cfg, "arch": str(a),
                                        "input_shape": list(space.input_shape()), "weights": "model.pt"})
    # 2. the result (rewritten below once the ONNX export is settled)
    if mode != "false":
        result["onnx"] = "skipped"
        result["onnx_note"] = (f"ONNX export skipped: {' and '.join(missing)} not installed; {ONNX_HINT}"
                               if missing else "ONNX export did not finish")
    _write_json(out_dir / "result.json", result)
    # 3. ONNX
    if mode != "false" and not missing:
        try:
            save_onnx(model, space.input_shape(), out_dir / "model.onnx")
            result["onnx"] = "exported"
            result.pop("onnx_note")
        except ExportError as e:
            result["onnx"] = "failed"
            result["onnx_note"] = f"{e}; the trained weights are in {out_dir / 'model.pt'}"
        _write_json(out_dir / "result.json", result)
        if mode == "true" and result["onnx"] == "failed":
            raise ExportError(result["onnx_note"])
    return result


def _check_out(out: Path) -> None:
    """Refuse to write into a search's run directory (its result.json would be replaced) or into a path
    that cannot hold a directory (a file in the way, read-only)."""
    prepare_out_dir(out, "output directory (--out)")
    prev = out / "result.json"
    if prev.is_file():
        try:
            old = json.loads(prev.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = None
        if isinstance(old, dict) and "algorithm" in old:
            raise RunError(f"{out} holds a search (its result.json); choose another --out for the retrained model")


def retrain(target: str | Path, cfg: RetrainConfig | Mapping[str, Any] | None = None,
            out: str | Path | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Retrain a searched (or given) architecture from scratch; the Python face of ``distilnas retrain``.

    Args:
        target: a search's ``result.json``, its run directory, or an architecture string.
        cfg: a mapping of (nested) options, merged over the run's space and data (for a result) or the
            defaults, e.g. ``{"recipe": {"epochs": 50}}``; or a complete :class:`RetrainConfig`, used as
            it is: only the arch is read from a result (``cfg.space`` must then be the run's space).
        out: output directory (``None``: nothing is written).
        progress: progress bar (``None``: only when stderr is a terminal).

    Returns:
        The result of :func:`train_architecture`.
    """
    if isinstance(cfg, RetrainConfig):
        if Path(target).exists():
            arch, result_path, _ = _read_result(target)
            return train_architecture(arch, cfg, out, progress, str(result_path))
        return train_architecture(str(target).strip(), cfg, out, progress)
    arch, full, source = resolve_target(target, cfg)
    return train_architecture(arch, full, out, progress, source)


# ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's progress prints, log lines and warnings."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def save_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path) -> None:
    """Export ``model`` (on a CPU copy, eval mode) to ONNX with a dynamic batch dimension; input
    ``input`` of shape ``(batch, *input_shape)``, output ``logits``.

    Raises:
        ExportError: with a one-line reason, when the exporter's packages are missing or it fails (a
            partly written file is removed).
    """
    missing = missing_onnx_packages()
    if missing:
        raise ExportError(f"ONNX export needs {' and '.join(missing)}; {ONNX_HINT}")
    p = Path(path)
    net = copy.deepcopy(model).cpu().eval()
    example = torch.zeros(2, *input_shape)
    try:
        with _quiet():
            torch.onnx.export(net, (example,), str(p), dynamo=True, verbose=False, external_data=False,
                              input_names=["input"], output_names=["logits"],
                              dynamic_shapes=({0: torch.export.Dim("batch")},))
    except Exception as e:  # noqa: BLE001 - the exporter fails in many ways; all become one line
        p.unlink(missing_ok=True)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ExportError(f"ONNX export failed ({type(e).__name__}: {first})") from None
