"""Training loaders and :func:`gather`.

:class:`TensorLoader`: the whole (small) dataset lives as tensors on the training device and batches are
gathered by index, so small datasets pay no DataLoader / worker overhead. :class:`StreamLoader`: the same
order (shuffle, shard) over a streamed :class:`~distilnas.data.images.ImageSource`, whose batches are
decoded in ``num_workers`` processes by a ``torch.utils.data.DataLoader``. :func:`make_loader` picks one.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from .datasets import DataError
from .images import ImageSource

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
        shard: ``(rank, world_size)`` for data parallelism: ``batch_size`` is the global batch, and this
            process gets the ``rank``-th of ``world_size`` contiguous parts of each batch the one process
            would see (``batch_size / world_size`` images, which must be whole), augmented with the one
            process's random draws for those images; the ranks' parts in rank order form that batch.
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
        if self.world > 1 and batch_size % self.world:
            raise ValueError(f"batch size {batch_size} does not split into {self.world} equal parts")
        self.channels_last = channels_last and x.dim() == 4

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch_order(self) -> torch.Tensor:
        """This epoch's sample indices (CPU), the same on every rank: a permutation drawn from the
        generator when shuffling."""
        n = len(self.x)
        if self.shuffle:
            return torch.randperm(n, generator=self.generator)
        return torch.arange(n)

    def part(self, idx: torch.Tensor) -> tuple[torch.Tensor, int]:
        """This rank's part of the (global) batch ``idx`` and where it starts in it: the rank-th of
        ``world`` contiguous, equal parts (a last, short batch is split as evenly as it goes)."""
        if self.world == 1:
            return idx, 0
        sizes = [len(p) for p in idx.tensor_split(self.world)]
        start = sum(sizes[:self.rank])
        return idx[start:start + sizes[self.rank]], start

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.epoch_order().to(self.x.device)
        for b in range(len(self)):
            idx, start = self.part(order[b * self.batch_size:(b + 1) * self.batch_size])
            xb, yb = self.x[idx], self.y[idx]
            if self.augment:
                total = min(self.batch_size, len(order) - b * self.batch_size)
                xb = augment_batch(xb, self.pad, self.generator, (start, total) if self.world > 1 else None)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, yb


class _IndexBatches(Dataset):
    """Batch ``b`` of one epoch: ``(indices, uint8 pixels)``; a DataError comes back as the pixels (a worker
    process would wrap it in a multi-line message), for the loader to raise."""

    def __init__(self, source: ImageSource, parts: list[tuple[torch.Tensor, int]], seed: int | None) -> None:
        self.source, self.parts, self.seed = source, parts, seed

    def __len__(self) -> int:
        return len(self.parts)

    def __getitem__(self, b: int) -> tuple[torch.Tensor, Any]:
        idx, start = self.parts[b]
        seed = None if self.seed is None else (self.seed, 0, b)  # 0: once the rank; kept for the same draws
        try:
            return idx, self.source[idx].read(seed, threads=1, first=start)
        except DataError as e:
            return idx, e


class StreamLoader(TensorLoader):
    """:class:`TensorLoader`'s interface and order over a streamed :class:`ImageSource` ``x``.

    Each epoch draws the permutation exactly as :class:`TensorLoader` does (so a checkpointed generator
    resumes the same order) and, with ``augment``, one epoch seed from the same generator; image ``i`` of
    (global) batch ``b`` is augmented (RandomResizedCrop + flip) from (epoch seed, 0, ``b``) and ``i``,
    whatever the number of workers and ranks.
    ``x.num_workers`` processes decode the batches (0: in this process), pinned when ``x`` is on CUDA;
    ``pad`` is not used.
    """

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        source: ImageSource = self.x  # type: ignore[assignment]
        order = self.epoch_order()
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator)) if self.augment else None
        parts = [self.part(order[b * self.batch_size:(b + 1) * self.batch_size]) for b in range(len(self))]
        batches = _IndexBatches(source, parts, seed)
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


def augment_batch(x: torch.Tensor, pad: int, generator: torch.Generator,
                  part: tuple[int, int] | None = None) -> torch.Tensor:
    """Random crop after zero padding and random horizontal flip, per sample, vectorised. ``part=(start,
    total)``: ``x`` is images ``start ..`` of a batch of ``total``; the draws are made for the whole batch
    (so the generator advances as for it) and those of ``x``'s images are used."""
    B, C, H, W = x.shape
    start, total = part or (0, B)
    xp = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * pad + 1, (total,), generator=generator)[start:start + B].to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (total,), generator=generator)[start:start + B].to(x.device)
    flip = (torch.rand(total, generator=generator) < 0.5)[start:start + B].to(x.device)
    rows = (dy.view(B, 1) + torch.arange(H, device=x.device).view(1, H))  # (B, H)
    cols = torch.arange(W, device=x.device).view(1, W).expand(B, W)
    cols = torch.where(flip.view(B, 1), W - 1 - cols, cols) + dx.view(B, 1)  # (B, W)
    bi = torch.arange(B, device=x.device).view(B, 1, 1, 1)
    ci = torch.arange(C, device=x.device).view(1, C, 1, 1)
    return xp[bi, ci, rows.view(B, 1, H, 1), cols.view(B, 1, 1, W)]
