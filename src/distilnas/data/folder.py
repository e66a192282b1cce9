"""``imagefolder``: ImageNet-style image folders, streamed from disk instead of held as tensors.

Layout of ``data.root`` (ImageNet's; class folders sorted by name give the labels 0..K-1)::

    train/<class>/<image>      the training file: search train / validation split (``val_size``, ``split_seed``)
    val/<class>/<image>        the test split

Images are ``.jpg``, ``.jpeg`` or ``.png`` (any case); reading, decoding and transforming them is
:mod:`distilnas.data.images` (:class:`ImageSource`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .datasets import DATASETS, DataConfig, DataError
from .images import (
    EVAL_CROP_FRACTION, IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD, ImageSource, _pil, random_resized_crop_box,
)

__all__ = ["ImageSource", "IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_EXTENSIONS", "EVAL_CROP_FRACTION",
           "random_resized_crop_box"]


# -- the dataset --------------------------------------------------------------------------------------------
def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _class_dirs(split: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split) if e.is_dir() and not e.name.startswith("."))


def _scan(split: Path, classes: list[str]) -> tuple[np.ndarray, torch.Tensor]:
    """(relative image paths as bytes, labels) of ``split``'s folders named in ``classes`` (in order)."""
    files: list[bytes] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        folder = split / name
        if not folder.is_dir():
            continue
        names = sorted(e.name for e in os.scandir(folder) if e.is_file() and _is_image(e.name))
        files += [os.fsencode(os.path.join(name, f)) for f in names]
        labels += [label] * len(names)
    if not files:
        raise DataError(f"{split} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in class folders; expected "
                        f"{split}/<class>/<image> (ImageNet layout)")
    return np.array(files, dtype=bytes), torch.tensor(labels, dtype=torch.int64)


@DATASETS.register("imagefolder")
def _imagefolder(cfg: DataConfig):
    """ImageNet-style folders, streamed: ``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*`` (the test split)."""
    _pil()  # a missing Pillow fails here, before training starts
    for key, value, low in (("image_size", cfg.image_size, 1), ("num_workers", cfg.num_workers, 0),
                            ("max_classes", cfg.max_classes, 0)):
        if value < low:
            raise DataError(f"data.{key}={value} must be >= {low}")
    if not cfg.root:
        raise DataError("imagefolder needs data.root=/path/to/imagenet (a folder with train/<class>/<image> "
                        "and val/<class>/<image>)")
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError(f"data.root={root} is not a folder; point it at a folder with train/<class>/<image> "
                        f"and val/<class>/<image>")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            hint = (" (sort the validation images into one folder per class, as in train/)" if split == "val"
                    else "")
            raise DataError(f"{root / split} not found: imagefolder needs {root}/train/<class>/<image> and "
                            f"{root}/val/<class>/<image>{hint}")
    classes = _class_dirs(root / "train")
    if not classes:
        raise DataError(f"{root / 'train'} has no class folders; expected {root / 'train'}/<class>/<image>")
    foreign = sorted(set(_class_dirs(root / "val")) - set(classes))
    if foreign:
        raise DataError(f"{root / 'val'}/{foreign[0]} is not a class of {root / 'train'}; the val/ folders must "
                        f"be named like the train/ ones")
    if cfg.max_classes:
        if cfg.max_classes > len(classes):
            raise DataError(f"data.max_classes={cfg.max_classes} exceeds the {len(classes)} classes in "
                            f"{root / 'train'}")
        classes = classes[: cfg.max_classes]
    sources = []
    for split in ("train", "val"):
        files, labels = _scan(root / split, classes)
        source = ImageSource(str(root / split), files, torch.arange(len(files)), cfg.image_size, cfg.num_workers)
        sources += [source, labels]
    return sources[0], sources[1], sources[2], sources[3], len(classes)
