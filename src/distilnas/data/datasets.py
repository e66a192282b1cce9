"""Built-in datasets, loaded whole as tensors (no torchvision, no downloads).

- ``fmnist``: Fashion-MNIST 1x28x28, read from the IDX files of the Debian package
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``).
- ``fmnist16``: the NAS micro-benchmark input, in the spirit of NB201's ImageNet16-120: the [0,1] image is
  2x2 average-pooled to 14x14, normalised with mean 0.2860 / std 0.3530, then padded by one pixel on each
  side with the normalised value of 0, giving 1x16x16.
- ``cifar10``: 3x32x32 from a local folder holding the standard python batches
  (``data_batch_1..5``, ``test_batch``).
- ``synthetic``: generated tensors for quick tests.
- ``imagefolder``: ImageNet-style ``train/<class>/<image>`` and ``val/<class>/<image>`` folders, streamed
  from disk (:mod:`distilnas.data.folder`): its splits hold lazy :class:`~distilnas.data.images.ImageSource`
  objects instead of tensors, and :func:`distilnas.data.gather` decodes their pixels.

Every dataset gives a fixed, seeded, disjoint train / validation split of its training file and the
official test file as test.
"""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..config import MAX_SEED, opt
from ..errors import DataError
from ..registry import Registry

if TYPE_CHECKING:
    from .images import ImageSource

__all__ = ["DATASETS", "DataConfig", "DataError", "Splits", "load_dataset", "load_holdout", "read_idx"]

FMNIST_DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass
class DataConfig:
    """Which data to train and evaluate on."""

    name: str = "fmnist16"  # a registered dataset: fmnist16, fmnist, cifar10, synthetic, imagefolder
    root: str = ""  # folder of the files; "" = the dataset's default location
    val_size: int = opt(10000, ge=0)  # images held out of the training file for validation
    train_size: int = opt(0, ge=0)  # use only the first n images of the training split (0 = all)
    test_size: int = opt(0, ge=0)  # use only the first n test images (0 = all)
    split_seed: int = opt(0, ge=0, le=MAX_SEED)  # seed of the fixed train/validation split
    augment: bool = False  # training batches: random crop (pad 4 / 2) + flip; imagefolder: RandomResizedCrop + flip
    image_size: int = opt(224, ge=1)  # imagefolder: side of the square network input, pixels
    num_workers: int = opt(4, ge=0)  # imagefolder: decode processes of the training loader (threads for evaluation)
    max_classes: int = opt(0, ge=0)  # imagefolder: only the first k classes in folder-name order (0 = all)

    def identity(self) -> dict[str, Any]:
        """The options that decide the images and labels (what result hashes are made of): all but
        ``num_workers``, and the imagefolder options only when set (so that hashes made before they
        existed stay valid)."""
        out = asdict(self)
        del out["num_workers"]
        for key in ("image_size", "max_classes"):
            if out[key] == getattr(DataConfig, key):
                del out[key]
        return out


@dataclass
class Splits:
    """Tensors of one dataset: images ``(n, C, H, W)`` float32, labels ``(n,)`` int64. Streamed datasets
    hold lazy :class:`~distilnas.data.images.ImageSource` images instead: read pixels with
    :func:`distilnas.data.gather`."""

    train_x: torch.Tensor | ImageSource
    train_y: torch.Tensor
    val_x: torch.Tensor | ImageSource
    val_y: torch.Tensor
    test_x: torch.Tensor | ImageSource
    test_y: torch.Tensor
    num_classes: int
    holdout_x: torch.Tensor | None = None  # load_holdout's images, where a caller adds them (ground truth)
    holdout_y: torch.Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return (int(c), int(h), int(w))


DATASETS: Registry[Callable[[DataConfig], tuple[torch.Tensor | ImageSource, torch.Tensor, torch.Tensor | ImageSource,
                                                 torch.Tensor, int]]]
DATASETS = Registry("dataset")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated: its header needs {4 + 4 * ndim} bytes, found {len(data)}")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {arr.size}")
    return arr.reshape(dims)


def _find(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise DataError(
        f"Fashion-MNIST file {stem}[.gz] not found in {root}; install it with "
        f"'apt-get install dataset-fashion-mnist' or set data.root=/path/to/idx/files"
    )


def _fmnist_raw(cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    root = Path(cfg.root or os.environ.get("DISTILNAS_FMNIST", FMNIST_DEFAULT_ROOT))
    out = []
    for split in ("train", "t10k"):
        x = read_idx(_find(root, f"{split}-images-idx3-ubyte"))
        y = read_idx(_find(root, f"{split}-labels-idx1-ubyte"))
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"Fashion-MNIST files in {root} have unexpected shapes {x.shape}, {y.shape}")
        out += [torch.from_numpy(x.copy()).float().div_(255.0).unsqueeze(1), torch.from_numpy(y.astype(np.int64))]
    return out[0], out[1], out[2], out[3]


@DATASETS.register("fmnist")
def _fmnist(cfg: DataConfig):
    xtr, ytr, xte, yte = _fmnist_raw(cfg)
    norm = lambda x: (x - FMNIST_MEAN) / FMNIST_STD  # noqa: E731
    return norm(xtr), ytr, norm(xte), yte, 10


def fmnist16_transform(x: torch.Tensor) -> torch.Tensor:
    """[0,1] images (n,1,28,28) -> fmnist16 inputs (n,1,16,16)."""
    x = F.avg_pool2d(x, 2)  # (n, 1, 14, 14)
    x = (x - FMNIST_MEAN) / FMNIST_STD
    return F.pad(x, (1, 1, 1, 1), value=(0.0 - FMNIST_MEAN) / FMNIST_STD)  # (n, 1, 16, 16)


@DATASETS.register("fmnist16")
def _fmnist16(cfg: DataConfig):
    xtr, ytr, xte, yte = _fmnist_raw(cfg)
    return fmnist16_transform(xtr), ytr, fmnist16_transform(xte), yte, 10


@DATASETS.register("cifar10")
def _cifar10(cfg: DataConfig):
    if not cfg.root:
        raise DataError("cifar10 needs data.root=/path/to/cifar-10-batches-py (the standard python batches)")
    root = Path(cfg.root)

    def load(name: str) -> tuple[np.ndarray, np.ndarray]:
        path = root / name
        if not path.is_file():
            raise DataError(f"CIFAR-10 batch {path} not found; set data.root to the cifar-10-batches-py folder")
        try:
            with open(path, "rb") as f:
                d = pickle.load(f, encoding="bytes")
            x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            y = np.asarray(d[b"labels"], dtype=np.int64)
        except Exception as e:  # noqa: BLE001 - any unreadable batch is the same user error
            raise DataError(f"cannot read CIFAR-10 batch {path}: {e}") from None
        return x, y

    parts = [load(f"data_batch_{i}") for i in range(1, 6)]
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = load("test_batch")
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    norm = lambda x: (torch.from_numpy(x).float() / 255.0 - mean) / std  # noqa: E731
    return norm(xtr), torch.from_numpy(ytr), norm(xte), torch.from_numpy(yte), 10


@DATASETS.register("synthetic")
def _synthetic(cfg: DataConfig):
    """Learnable random data: class-dependent mean patterns plus noise, 1x16x16, 10 classes."""
    g = torch.Generator().manual_seed(1234)
    protos = torch.randn(10, 1, 16, 16, generator=g)
    n_train, n_test = 2000, 500

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 10, (n,), generator=g)
        return protos[y] + 1.5 * torch.randn(n, 1, 16, 16, generator=g), y

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    return xtr, ytr, xte, yte, 10


def load_dataset(cfg: DataConfig) -> Splits:
    """Load ``cfg.name`` and split it: a seeded permutation of the training file gives validation
    (the first ``val_size``) and train (the rest, optionally truncated to ``train_size``)."""
    xtr, ytr, xte, yte, num_classes = DATASETS.get(cfg.name)(cfg)
    n = len(xtr)
    if not 0 <= cfg.val_size < n:
        raise DataError(f"data.val_size={cfg.val_size} must be in [0, {n}) for {cfg.name}")
    if cfg.train_size < 0 or cfg.test_size < 0:
        raise DataError(f"data.train_size={cfg.train_size} and data.test_size={cfg.test_size} must be >= 0 "
                        f"(0 = all)")
    if cfg.train_size > n - cfg.val_size:
        raise DataError(f"data.train_size={cfg.train_size} is more than the {n - cfg.val_size:,} training images "
                        f"{cfg.name} has left after data.val_size={cfg.val_size}: lower it, or set 0 for all of them")
    val_idx, train_idx, _ = _split_indices(cfg, n)
    if cfg.test_size:
        xte, yte = xte[: cfg.test_size], yte[: cfg.test_size]
    return Splits(xtr[train_idx], ytr[train_idx], xtr[val_idx], ytr[val_idx], xte, yte, num_classes)


def _split_indices(cfg: DataConfig, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices into the training file: validation, train, and unused (left over when ``train_size`` truncates)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.split_seed))
    val_idx, rest = perm[: cfg.val_size], perm[cfg.val_size:]
    cut = cfg.train_size or len(rest)
    return val_idx, rest[:cut], rest[cut:]


def load_holdout(cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Every labelled image that neither training nor validation uses: the test split (as ``load_dataset``
    gives it) followed by the training-file images left over when ``train_size`` truncates the training
    split. Ground truth measured on more images is less noisy: most of the accuracy difference between
    two training seeds of one network is the finite test set's sampling noise (fmnist, train_size 20000,
    val_size 10000: 10,000 test + 30,000 unused = 40,000 images). In-memory datasets only."""
    xtr, ytr, xte, yte, _ = DATASETS.get(cfg.name)(cfg)
    if not isinstance(xtr, torch.Tensor) or not isinstance(xte, torch.Tensor):
        raise DataError(f"a holdout split needs an in-memory dataset; {cfg.name} streams its images: "
                        f"evaluate on test instead")
    _, _, unused = _split_indices(cfg, len(xtr))
    if cfg.test_size:
        xte, yte = xte[: cfg.test_size], yte[: cfg.test_size]
    return torch.cat([xte, xtr[unused]]), torch.cat([yte, ytr[unused]])
