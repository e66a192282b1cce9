"""Images streamed from disk (the ``imagefolder`` dataset's reader and transforms).

Images are ``.jpg``, ``.jpeg`` or ``.png`` (any case), decoded with Pillow (an optional dependency:
``pip install 'distilnas[images]'``) into RGB. The transforms are the standard ImageNet ones, written
with Pillow and numpy / torch ops (no torchvision):

- evaluation: resize the shorter side to ``image_size / 0.875`` (bilinear), centre crop ``image_size``;
- training (``data.augment``): RandomResizedCrop (area scale 0.08-1, aspect ratio 3/4-4/3, ten tries, then
  a centre crop clamped to that ratio) resized to ``image_size``, and a horizontal flip with probability 0.5;
- both: ImageNet mean / std normalisation.

An :class:`ImageSource` stands in for an image tensor inside :class:`~distilnas.data.Splits`: it has a
length, a ``shape`` ``(n, 3, S, S)``, ``dim() == 4``, and indexing with a slice or an index tensor gives a
lazy sub-source (so the seeded train / validation split costs nothing). Pixels only exist once
:func:`distilnas.data.gather` (or :meth:`ImageSource.load`) decodes them.

Augmentation is reproducible: a training batch is decoded with random draws from a
``numpy.random.SeedSequence`` of (epoch seed, 0, batch index), split into one child per image of the
batch, so the result does not depend on how many processes, threads or data-parallel ranks decode it.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import DataError

__all__ = ["ImageSource", "IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_EXTENSIONS", "EVAL_CROP_FRACTION",
           "random_resized_crop_box"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # compared in lower case
EVAL_CROP_FRACTION = 0.875  # evaluation: resize the shorter side to image_size / 0.875, centre crop
RRC_SCALE = (0.08, 1.0)  # RandomResizedCrop area fraction
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)  # RandomResizedCrop aspect ratio (width / height)
PILLOW_HINT = "pip install 'distilnas[images]'"


def _pil() -> Any:
    """The ``PIL.Image`` module, or a one-line DataError saying how to install Pillow."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"the imagefolder dataset decodes images with Pillow, which is not installed; "
                        f"{PILLOW_HINT}") from None
    return Image


def random_resized_crop_box(width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A RandomResizedCrop box ``(left, top, right, bottom)`` in a ``width`` x ``height`` image.

    Ten tries at an area fraction uniform in [0.08, 1] and a log-uniform aspect ratio in [3/4, 4/3];
    if none fits, the largest centred crop whose aspect ratio lies in that range.
    """
    area = width * height
    log_lo, log_hi = math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1])
    for _ in range(10):
        target = area * rng.uniform(*RRC_SCALE)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    ratio = width / height
    if ratio < RRC_RATIO[0]:
        w, h = width, int(round(width / RRC_RATIO[0]))
    elif ratio > RRC_RATIO[1]:
        w, h = int(round(height * RRC_RATIO[1])), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def _decode(path: bytes, size: int, rng: np.random.Generator | None) -> np.ndarray:
    """One image file -> ``(size, size, 3)`` uint8: the training transform with ``rng``, else evaluation."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if rng is None:  # resize the shorter side, then centre crop
                w, h = im.size
                short = int(size / EVAL_CROP_FRACTION)
                nw, nh = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
                im = im.resize((nw, nh), Image.Resampling.BILINEAR)
                left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
                im = im.crop((left, top, left + size, top + size))
            else:
                box = random_resized_crop_box(im.size[0], im.size[1], rng)
                im = im.resize((size, size), Image.Resampling.BILINEAR, box=box)
                if rng.random() < 0.5:
                    im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            return np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - any file Pillow cannot decode is the same user error
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"cannot decode image {os.fsdecode(path)} ({msg}); replace or delete the file") from None


@dataclass(frozen=True, eq=False)
class ImageSource:
    """Lazy images of one folder split, standing in for an image tensor ``(n, 3, S, S)``.

    Args:
        root: the split's folder (``ROOT/train`` or ``ROOT/val``).
        files: paths of all the split's images relative to ``root``, as bytes (shared by sub-sources).
        index: positions in ``files`` of this source's images, in order.
        image_size: side ``S`` of the decoded square images.
        num_workers: decode processes of the training loader; threads of :meth:`load` (0 or 1: serial).
        device: where :meth:`load` and :meth:`normalize` put the pixels.
        memory_format: memory format of the loaded tensors.
    """

    root: str
    files: np.ndarray
    index: torch.Tensor
    image_size: int = 224
    num_workers: int = 4
    device: torch.device = torch.device("cpu")
    memory_format: torch.memory_format = torch.contiguous_format

    # -- the tensor-like surface --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), 3, self.image_size, self.image_size))

    def dim(self) -> int:
        return 4

    def __getitem__(self, key: slice | torch.Tensor | np.ndarray | Sequence[int]) -> ImageSource:
        """The images ``key`` selects (a slice, an index or boolean tensor / array, a list), still lazy."""
        if isinstance(key, (int, np.integer)):
            raise TypeError("index an ImageSource with a slice or an index tensor (it holds batches of images)")
        if isinstance(key, torch.Tensor):
            key = key.cpu()
        elif isinstance(key, np.ndarray):
            key = torch.from_numpy(key)
        elif not isinstance(key, slice):
            key = torch.as_tensor(key, dtype=torch.long)
        return replace(self, index=self.index[key])

    def to(self, device: str | torch.device) -> ImageSource:
        """The same images, loaded onto ``device``."""
        return replace(self, device=torch.device(device))

    def contiguous(self, memory_format: torch.memory_format = torch.contiguous_format) -> ImageSource:
        """The same images, loaded in ``memory_format``."""
        return replace(self, memory_format=memory_format)

    def __repr__(self) -> str:
        return f"ImageSource({len(self)} images of {self.root}, {self.image_size} px, {self.device})"

    # -- pixels -------------------------------------------------------------------------------------------
    @property
    def paths(self) -> list[str]:
        """The image files, in order."""
        return [os.path.join(self.root, os.fsdecode(f)) for f in self.files[self.index.numpy()]]

    def read(self, seed: int | Sequence[int] | None = None, threads: int | None = None,
             first: int = 0) -> torch.Tensor:
        """Decode every image: ``(n, S, S, 3)`` uint8 on the CPU.

        Args:
            seed: ``None`` for the evaluation transform; else the training transform with random draws
                from ``SeedSequence(seed)`` (one child sequence per image, so the result does not depend
                on ``threads``).
            threads: decoding threads (default ``num_workers``; 0 or 1: serial).
            first: image ``i`` takes child ``first + i`` (a data-parallel rank's part of a batch draws as
                those images of the whole batch would).
        """
        root = os.fsencode(self.root)
        paths = [os.path.join(root, f) for f in self.files[self.index.numpy()]]
        rngs: list[np.random.Generator | None] = [None] * len(paths)
        if seed is not None:  # child k of SeedSequence(seed) is SeedSequence(seed, spawn_key=(k,))
            rngs = [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(first + i,)))
                    for i in range(len(paths))]
        threads = self.num_workers if threads is None else threads
        S = self.image_size
        if threads > 1 and len(paths) > 1:
            with ThreadPoolExecutor(min(threads, len(paths))) as pool:  # Pillow decodes without the GIL
                images = list(pool.map(_decode, paths, [S] * len(paths), rngs))
        else:
            images = [_decode(p, S, r) for p, r in zip(paths, rngs)]
        if not images:
            return torch.empty(0, S, S, 3, dtype=torch.uint8)
        return torch.from_numpy(np.stack(images))  # (n, S, S, 3)

    def normalize(self, pixels: torch.Tensor, memory_format: torch.memory_format | None = None) -> torch.Tensor:
        """uint8 ``(n, S, S, 3)`` -> normalised float32 ``(n, 3, S, S)`` on :attr:`device` (moved as uint8:
        4x fewer bytes), in ``memory_format`` (default :attr:`memory_format`)."""
        x = pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()  # (n, 3, S, S), NHWC strides
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1) * 255.0
        x = x.sub_(mean).div_(std)
        return x.contiguous(memory_format=memory_format or self.memory_format)

    def load(self) -> torch.Tensor:
        """All images, evaluation transform: normalised float32 ``(n, 3, S, S)`` on :attr:`device`."""
        return self.normalize(self.read())
