"""Datasets (registered in :data:`DATASETS`), the training loaders and :func:`gather` (pixels of tensor or
streamed images)."""

from .datasets import DATASETS, DataConfig, DataError, Splits, load_dataset, load_holdout
from . import folder  # noqa: F401  (registers imagefolder)
from .images import ImageSource
from .loader import StreamLoader, TensorLoader, gather, make_loader

__all__ = ["DATASETS", "DataConfig", "DataError", "Splits", "load_dataset", "load_holdout", "TensorLoader", "StreamLoader",
           "ImageSource", "gather", "make_loader"]
