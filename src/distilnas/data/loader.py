"""Training loaders and :func:`gather`.

:class:`TensorLoader`: the whole (small) dataset lives as tensors on the training device and batches are
gathered by index, so small datasets pay no DataLoader / worker overhead. :class:`StreamLoader`: the same
order (shuffle, shard) over a streamed :class:`~distilnas.data.folder.ImageSource`, whose batches are
decoded in ``num_workers`` processes by a ``torch.utils.data.DataLoader``. :func:`make_loader` picks one.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from .datasets import DataError
from .folder import ImageSource

__all__ = ["TensorLoader", "StreamLoader", "make_loader", "gather", "augment_batch"]


def gather(x: torch.Tensor | ImageSource, idx: torch.Tensor | slice | None = None) -> torch.Tensor:
    """The pixels of images ``x`` (of ``x[idx]`` when ``idx`` is given): ``x`` / ``x[idx]`` for a tensor,
    the decoded, normalised images (evaluation transform) for an :class:`ImageSource`."""
    if isinstance(x, torch.Tensor):
        return x if idx is None else x[idx]
    return (x if idx is None else x[idx]).load()


class TensorLoader:
    """Iterate ``(x, y)`` batches of tensors already on the device.

    Args:
        x, y: all inputs ``(n, C, H, W)`` and labels ``(n,)``.
        batch_size: batch size.
        shuffle: draw a new permutation each epoch from ``generator``.
        drop_last: skip the last incomplete batch.
        generator: explicit CPU generator for shuffling and augmentation.
        augment: random crop (zero padding ``pad``) and horizontal flip, as torch ops on the batch.
        pad: crop padding in pixels (4 for 32x32, 2 for 16x16 is sensible).
        shard: ``(rank, world_size)``: this process only sees its own slice of each epoch's order.
        channels_last: yield image batches in ``torch.channels_last`` memory format (about 1.3-2x faster
            convolutions on CPUs for the small widths used here; the numbers are the same).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        augment: bool = False,
        pad: int = 4,
        shard: tuple[int, int] = (0, 1),
        channels_last: bool = False,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.generator = generator or torch.Generator().manual_seed(0)
        self.augment, self.pad = augment, pad
        self.rank, self.world = shard
        self.channels_last = channels_last and x.dim() == 4

    def __len__(self) -> int:
        n = len(self.x) // self.world
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch_order(self) -> torch.Tensor:
        """This epoch's sample indices for this rank (CPU): a permutation drawn from the generator when
        shuffling, then the rank's contiguous slice."""
        n = len(self.x)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator)
        else:
            order = torch.arange(n)
        per_rank = n // self.world
        return order[self.rank * per_rank:(self.rank + 1) * per_rank] if self.world > 1 else order

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.epoch_order().to(self.x.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            xb, yb = self.x[idx], self.y[idx]
            if self.augment:
                xb = augment_batch(xb, self.pad, self.generator)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, yb


class _IndexBatches(Dataset):
    """Batch ``b`` of one epoch: ``(indices, uint8 pixels)``; a DataError comes back as the pixels (a worker
    process would wrap it in a multi-line message), for the loader to raise."""

    def __init__(self, source: ImageSource, order: torch.Tensor, batch_size: int, num_batches: int,
                 seed: int | None, rank: int) -> None:
        self.source, self.order, self.batch_size, self.num_batches = source, order, batch_size, num_batches
        self.seed, self.rank = seed, rank

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, b: int) -> tuple[torch.Tensor, Any]:
        idx = self.order[b * self.batch_size:(b + 1) * self.batch_size]
        seed = None if self.seed is None else (self.seed, self.rank, b)
        try:
            return idx, self.source[idx].read(seed, threads=1)
        except DataError as e:
            return idx, e


class StreamLoader(TensorLoader):
    """:class:`TensorLoader`'s interface and order over a streamed :class:`ImageSource` ``x``.

    Each epoch draws the permutation exactly as :class:`TensorLoader` does (so a checkpointed generator
    resumes the same order) and, with ``augment``, one epoch seed from the same generator; batch ``b`` is
    augmented (RandomResizedCrop + flip) from (epoch seed, rank, ``b``), whatever the number of workers.
    ``x.num_workers`` processes decode the batches (0: in this process), pinned when ``x`` is on CUDA;
    ``pad`` is not used.
    """

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        source: ImageSource = self.x  # type: ignore[assignment]
        order = self.epoch_order()
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator)) if self.augment else None
        batches = _IndexBatches(source, order, self.batch_size, len(self), seed, self.rank)
        loader = DataLoader(batches, batch_size=None, shuffle=False, num_workers=source.num_workers,
                            pin_memory=source.device.type == "cuda",
                            generator=torch.Generator())  # keeps the global RNG untouched
        fmt = torch.channels_last if self.channels_last else None
        for idx, pixels in loader:
            if isinstance(pixels, DataError):
                raise pixels
            yield source.normalize(pixels, fmt), self.y[idx.to(self.y.device)]


def make_loader(x: torch.Tensor | ImageSource, y: torch.Tensor, batch_size: int, **kw: Any) -> TensorLoader:
    """A :class:`StreamLoader` for streamed images, else a :class:`TensorLoader` (same arguments)."""
    return (StreamLoader if isinstance(x, ImageSource) else TensorLoader)(x, y, batch_size, **kw)


def augment_batch(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding and random horizontal flip, per sample, vectorised."""
    B, C, H, W = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * pad + 1, (B,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (B,), generator=generator).to(x.device)
    flip = (torch.rand(B, generator=generator) < 0.5).to(x.device)
    rows = (dy.view(B, 1) + torch.arange(H, device=x.device).view(1, H))  # (B, H)
    cols = torch.arange(W, device=x.device).view(1, W).expand(B, W)
    cols = torch.where(flip.view(B, 1), W - 1 - cols, cols) + dx.view(B, 1)  # (B, W)
    bi = torch.arange(B, device=x.device).view(B, 1, 1, 1)
    ci = torch.arange(C, device=x.device).view(1, C, 1, 1)
    return xp[bi, ci, rows.view(B, 1, H, 1), cols.view(B, 1, 1, W)]
