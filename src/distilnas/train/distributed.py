"""Minimal data parallelism for ``torchrun``: every rank samples the same path (the path generator is a
function of (seed, step)), sees its own shard of each epoch, and gradients are averaged by all-reduce.
Gradients are reduced by hand rather than through DistributedDataParallel because a single-path step
leaves most supernet parameters unused."""

from __future__ import annotations

import os

import torch
import torch.distributed as tdist

__all__ = ["setup", "is_distributed", "rank", "world_size", "local_rank", "all_reduce_grads"]


def is_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup() -> None:
    """Join the process group started by torchrun (no-op for a single process)."""
    if is_distributed() and not tdist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())
        tdist.init_process_group(backend)


def rank() -> int:
    return tdist.get_rank() if tdist.is_initialized() else 0


def world_size() -> int:
    return tdist.get_world_size() if tdist.is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def all_reduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Average gradients across ranks; parameters off the path get zero gradients on every rank."""
    if world_size() == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        tdist.all_reduce(p.grad)
        p.grad.div_(world_size())
