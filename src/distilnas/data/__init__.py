"""Datasets (registered in :data:`DATASETS`) and the tensor-resident loader."""

from .datasets import DATASETS, DataConfig, DataError, Splits, load_dataset
from .loader import TensorLoader

__all__ = ["DATASETS", "DataConfig", "DataError", "Splits", "load_dataset", "TensorLoader"]
