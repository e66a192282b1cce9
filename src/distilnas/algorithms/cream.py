"""Cream of the Crop: distilling prioritized paths for one-shot NAS (Peng et al., NeurIPS 2020).

A *prioritized path board* keeps the K best paths seen while the supernet trains (sec. 3.1). After a
warm-up, every sampled path s is distilled from a teacher path t on the board, picked by a *meta
matching network* M (sec. 3.2)::

    b* = argmax_b M(softmax(s(x_b)) - p_b)        rho = sigmoid(M(softmax(s(x_b*)) - p_b*))
    L  = [rho * KD(s, t) + (2 - rho) * CE_ls(s)] / 2                                    (eq. 6)

where x_b is a small slice of inputs stored with board entry b and p_b that path's softmax on it, KD is
the soft cross-entropy between the teacher's softmax (no gradient) and the student's log-softmax and
CE_ls the label-smoothed cross-entropy (label smoothing comes from ``train.label_smoothing``).

Board rule (sec. 3.1, "selective competition"): a path enters when the board has room, or its accuracy
beats the worst entry's by more than ``board_gap`` points, or it beats it at lower FLOPs; the board is
kept sorted by accuracy (FLOPs break ties) and trimmed to K. Accuracy is measured on held-out
validation images, as the paper says (the official code used the training batch: ``board_eval=train``).

The meta network is trained every ``update_iter`` steps by a one-step unrolled meta-gradient (eq. 7-8):
w' = w - lr * d(rho * KD)/dw on the training batch; the meta loss is the student's cross-entropy with
weights w' on a validation batch, differentiated through w' into M (the sign of the update is the
paper's, which the official code fixed upstream). ``pick=random`` and ``pick=top1`` are the paper's
ablations (random board entry / the best entry) with a fixed weight ``rho`` (default 0.5: the matching
network's rho = sigmoid(~0) at initialisation, and the 0.5 of the official top-1 ablation, so that an
ablation changes only the teacher, not the KD/CE balance).

``meta_train=paper`` (default) trains the matching network by the meta-gradient alone, as the paper
describes. ``meta_train=official`` also keeps rho differentiable in the training loss, as the official
code does (it puts the matching network into the supernet's optimiser), so the network gets the
training-loss gradient dL/drho = (KD - CE) / 2 at every step besides the meta-gradient; here that step
uses the matching network's own optimiser (``meta_lr``). metrics.jsonl shows whether it learns: the
relative change of its weights since initialisation, rho's mean and spread, how often each board rank
is chosen as teacher, and the mean meta loss.

Paths outside [flops_min, flops_max] are never trained nor put on the board. The final architecture is
taken from the board: every board path is re-scored with the trained supernet (BN recalibration, the
validation split) and the best is selected (``select_by=board`` uses the board's own accuracies).

Differences from the official code, all following the paper: held-out board accuracy, rho from the
chosen (argmax) entry's score (the code picks the argmax entry as teacher too, but computes rho from
the last board entry's negated score), the board and the meta
network are saved in checkpoints, FLOPs are counted at the real input size, the FLOPs range is enforced
when sampling, and the path prior is uniform (``prior`` sets the official non-uniform one).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..config import ConfigError, opt
from ..data import gather
from ..train import distributed as dist
from .base import ALGORITHMS, Algorithm, StepOutput, distinct_samples, path_rng

__all__ = ["Cream", "BoardEntry", "PrioritizedBoard", "MatchingNetwork", "soft_cross_entropy"]


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_c q_c log softmax(logits)_c (the KD loss at temperature 1)."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


@dataclass
class BoardEntry:
    """One prioritized path."""

    arch: str
    accuracy: float  # top-1 (%) when measured (held-out validation images, or the train batch)
    flops: float
    params: float
    step: int  # training step at which it was measured
    inputs: torch.Tensor = field(repr=False)  # (slice, C, H, W) stored input slice x_b
    probs: torch.Tensor = field(repr=False)  # (slice, classes) the path's softmax p_b on x_b

    def summary(self) -> dict[str, Any]:
        """The entry without its tensors (for result.json)."""
        return {k: v for k, v in asdict(self).items() if k not in ("inputs", "probs")}


class PrioritizedBoard:
    """The K best paths (paper sec. 3.1), sorted by accuracy (higher first), FLOPs breaking ties."""

    def __init__(self, size: int, gap: float) -> None:
        self.size, self.gap = size, gap
        self.entries: list[BoardEntry] = []

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def admits(self, accuracy: float, flops: float) -> bool:
        """The insertion rule: room left, or clearly more accurate than the worst entry (by more than
        ``gap`` points), or more accurate at lower FLOPs."""
        if len(self.entries) < self.size:
            return True
        worst = self.entries[-1]
        return accuracy > worst.accuracy + self.gap or (accuracy > worst.accuracy and flops < worst.flops)

    def accepts(self, arch: str, accuracy: float, flops: float) -> bool:
        """Whether :meth:`update` would change the board for this measurement."""
        return any(e.arch == arch for e in self.entries) or self.admits(accuracy, flops)

    def update(self, entry: BoardEntry) -> bool:
        """Insert ``entry`` if the rule admits it; a path already on the board is re-measured in place
        (the board never holds a path twice). Returns whether the board changed."""
        for i, e in enumerate(self.entries):
            if e.arch == entry.arch:
                self.entries[i] = entry
                self._sort()
                return True
        if not self.admits(entry.accuracy, entry.flops):
            return False
        self.entries.append(entry)
        self._sort()
        del self.entries[self.size:]
        return True

    def _sort(self) -> None:
        self.entries.sort(key=lambda e: (-e.accuracy, e.flops))

    def state_dict(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.entries]

    def load_state_dict(self, state: list[dict[str, Any]]) -> None:
        self.entries = [BoardEntry(**e) for e in state]


class MatchingNetwork(nn.Module):
    """The meta matching network: one linear layer from flatten(softmax(s(x_b)) - p_b) to a score."""

    def __init__(self, num_classes: int, slice_size: int) -> None:
        super().__init__()
        self.fc = nn.Linear(num_classes * slice_size, 1)

    def forward(self, delta: torch.Tensor) -> torch.Tensor:
        """(K, slice, classes) differences -> (K,) matching scores."""
        return self.fc(delta.flatten(1)).squeeze(1)


@ALGORITHMS.register("cream")
class Cream(Algorithm):
    """Prioritized path distillation with a meta matching network."""

    name = "cream"

    @dataclass
    class Config:
        board_size: int = opt(10, ge=1)  # K (official POOL_SIZE)
        board_gap: float = opt(5.0, ge=0)  # accuracy gap (points) of the insertion rule (hard-coded 5 officially)
        warmup_epochs: int = opt(20, ge=0)  # epochs before the board opens and distillation starts (official 20 of 120)
        pick: str = opt("meta", choices=("meta", "random", "top1"))  # teacher choice: meta (matching network)
        slice: int = opt(4, ge=1)  # images stored per board entry (official SLICE)
        # where board accuracy is measured: val (held-out, paper) or train (code)
        board_eval: str = opt("val", choices=("val", "train"))
        board_val_size: int = opt(256, ge=1)  # held-out images for board accuracy (a fixed set)
        update_iter: int = opt(200, ge=1)  # steps between meta-network updates (official UPDATE_ITER)
        meta_lr: float = opt(1e-4, gt=0)  # learning rate of the meta network
        meta_optimizer: str = opt("sgd", choices=("sgd", "adam"))  # sgd (momentum 0.9) or adam
        meta_grad_clip: float = opt(1.0, gt=0)
        meta_val_batch: int = opt(128, ge=1)  # validation images per meta update
        # the unrolled meta-gradient: exact (double backward) or fd (DARTS' finite differences, faster)
        meta_grad: str = opt("exact", choices=("exact", "fd"))
        flops_min: float = opt(0.0, ge=0)  # FLOPs range of trained and boarded paths (0 = unbounded)
        flops_max: float = opt(0.0, ge=0)
        max_tries: int = opt(1000, ge=1)  # rejection-sampling attempts for a path inside the FLOPs range
        prior: dict[str, float] = opt(default_factory=dict, ge=0)  # op -> sampling weight (empty = uniform)
        # final choice: rescore (supernet accuracy after BN recal) or board
        select_by: str = opt("rescore", choices=("rescore", "board"))
        rho: float = opt(0.5, ge=0, le=2)  # the fixed KD weight of pick=random and pick=top1
        # how the matching network learns: paper (meta-gradient only) or official (+ training-loss gradient)
        meta_train: str = opt("paper", choices=("paper", "official"))

        def __post_init__(self) -> None:
            if self.flops_max and self.flops_min > self.flops_max:
                raise ConfigError(f"algorithm.flops_min={self.flops_min:g} exceeds "
                                  f"algorithm.flops_max={self.flops_max:g}")

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        c = self.cfg
        for key, value, allowed in (("pick", c.pick, ("meta", "random", "top1")),
                                    ("board_eval", c.board_eval, ("val", "train")),
                                    ("meta_optimizer", c.meta_optimizer, ("sgd", "adam")),
                                    ("meta_grad", c.meta_grad, ("fd", "exact")),
                                    ("select_by", c.select_by, ("rescore", "board"))):
            if value not in allowed:
                raise ConfigError(f"unknown algorithm.{key} {value!r}; choose {', '.join(allowed)}")
        if c.board_size < 1 or c.slice < 1 or c.update_iter < 1:
            raise ConfigError("algorithm.board_size, algorithm.slice and algorithm.update_iter must be >= 1")
        if c.flops_max and c.flops_min > c.flops_max:
            raise ConfigError(f"algorithm.flops_min={c.flops_min:g} exceeds algorithm.flops_max={c.flops_max:g}")
        self.board = PrioritizedBoard(c.board_size, c.board_gap)
        self.meta: MatchingNetwork | None = None
        self.meta_opt: torch.optim.Optimizer | None = None
        self.stats = {"distilled": 0, "board_updates": 0, "meta_updates": 0}
        self._meta_init: list[torch.Tensor] = []
        self._epoch = {"rho": [], "picks": [], "meta_loss": []}  # per-epoch learning diagnostics
        self._val_x: torch.Tensor | None = None
        self._val_y: torch.Tensor | None = None

    # -- set-up ------------------------------------------------------------------------------------------
    def setup(self, data: Any, device: torch.device, optimizer: Any = None) -> None:
        super().setup(data, device, optimizer)
        if len(data.val_x) == 0:
            raise ConfigError("cream needs held-out validation images (data.val_size > 0)")
        fmt = torch.channels_last if data.val_x.dim() == 4 else torch.contiguous_format
        n = len(data.val_x)
        if not isinstance(data.val_x, torch.Tensor):  # streamed images: a fixed subset, decoded once
            n = min(n, max(self.cfg.board_val_size, 4 * self.cfg.meta_val_batch))
        self._val_x = gather(data.val_x[:n].to(device).contiguous(memory_format=fmt))
        self._val_y = data.val_y[:n].to(device)
        self.meta = MatchingNetwork(data.num_classes, self.cfg.slice).to(device)
        with torch.random.fork_rng(devices=[]):  # the meta network's initialisation follows the run seed
            torch.manual_seed(self.seed)
            self.meta.fc.reset_parameters()
        self._meta_init = [p.detach().clone() for p in self.meta.parameters()]
        if self.cfg.meta_optimizer == "sgd":
            self.meta_opt = torch.optim.SGD(self.meta.parameters(), lr=self.cfg.meta_lr, momentum=0.9)
        else:
            self.meta_opt = torch.optim.Adam(self.meta.parameters(), lr=self.cfg.meta_lr)

    # -- sampling ----------------------------------------------------------------------------------------
    def in_range(self, flops: float) -> bool:
        c = self.cfg
        return flops >= c.flops_min and (not c.flops_max or flops <= c.flops_max)

    def sample(self, rng: random.Random) -> Any:
        """A path from the prior (uniform by default) inside the FLOPs range."""
        for _ in range(self.cfg.max_tries):
            if self.cfg.prior:
                arch = self.space.from_choices({label: rng.choices(opts, [self.cfg.prior.get(str(o), 1.0)
                                                                           for o in opts])[0]
                                                for label, opts in self.space.choices.items()})
            else:
                arch = self.space.sample(rng)
            if self.in_range(self.space.cost(arch)["flops"]):
                return arch
        raise ConfigError(f"no path within algorithm.flops_min={self.cfg.flops_min:g} .. "
                          f"flops_max={self.cfg.flops_max:g} in {self.cfg.max_tries} draws; widen the range")

    def candidates(self, n: int, rng: random.Random) -> list[Any]:
        """The board's paths (the final architecture comes from the board); with an empty board (training
        shorter than the warm-up) ``n`` distinct paths sampled as in training, inside the FLOPs range."""
        if len(self.board):
            return [self.space.parse(e.arch) for e in self.board]
        return distinct_samples(n, lambda: self.sample(rng))

    # -- teacher choice ----------------------------------------------------------------------------------
    def _deltas(self, arch: Any) -> torch.Tensor:
        """(K, slice, classes): softmax of the student on each entry's slice minus the stored softmax."""
        xs = torch.cat([e.inputs for e in self.board])  # (K * slice, C, H, W)
        with dist.local_batch():  # the same slices on every rank
            probs = F.softmax(self.supernet(xs, arch), dim=1)
        return probs.view(len(self.board), self.cfg.slice, -1) - torch.stack([e.probs for e in self.board])

    def pick_teacher(self, arch: Any, rng: random.Random) -> tuple[BoardEntry, float | torch.Tensor, int]:
        """(teacher entry, rho, forward images spent); rho is a tensor differentiable in the matching
        network's weights under ``meta_train=official``."""
        if self.cfg.pick == "random":
            b = rng.randrange(len(self.board))
            self._epoch["picks"].append(b)
            return self.board.entries[b], self.cfg.rho, 0
        if self.cfg.pick == "top1":
            self._epoch["picks"].append(0)
            return self.board.entries[0], self.cfg.rho, 0
        assert self.meta is not None
        with torch.no_grad():
            deltas = self._deltas(arch)
        with torch.set_grad_enabled(self.cfg.meta_train == "official"):
            scores = self.meta(deltas)
        b = int(scores.argmax())
        rho = torch.sigmoid(scores[b])
        self._epoch["picks"].append(b)
        self._epoch["rho"].append(float(rho.detach()))
        return (self.board.entries[b], rho if self.cfg.meta_train == "official" else float(rho),
                len(self.board) * self.cfg.slice)

    # -- one step ----------------------------------------------------------------------------------------
    def training_step(self, x: torch.Tensor, y: torch.Tensor, step: int, epoch: int, num_epochs: int) -> StepOutput:
        c = self.cfg
        rng = path_rng(self.seed, step)
        arch = self.sample(rng)
        forward_images, passes = 0, 1
        distill = len(self.board) > 0 and epoch >= c.warmup_epochs
        if distill and c.pick == "meta" and step % c.update_iter == 0:
            passes += self.meta_update(arch, x, step)
            forward_images += len(self.board) * c.slice
        logits = self.supernet(x, arch)
        ce = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        official = distill and c.pick == "meta" and c.meta_train == "official"
        if official:
            assert self.meta_opt is not None
            self.meta_opt.zero_grad(set_to_none=True)
        if distill:
            teacher, rho, spent = self.pick_teacher(arch, rng)
            with torch.no_grad():
                teacher_probs = F.softmax(self.supernet(x, self.space.parse(teacher.arch)), dim=1)
            loss = (rho * soft_cross_entropy(logits, teacher_probs) + (2.0 - rho) * ce) / 2.0  # eq. 6
            forward_images += spent + len(x)
            self.stats["distilled"] += 1
        else:
            loss = ce
        loss.backward()
        if official:  # the training-loss gradient of rho steps the matching network (official code)
            self._step_meta()
        correct = int((logits.argmax(1) == y).sum())
        if epoch >= c.warmup_epochs:
            forward_images += self.update_board(arch, x, logits.detach(), correct, len(y), step)
        return StepOutput(loss.item(), correct, len(y), passes=passes, forward_images=forward_images)

    @torch.no_grad()
    def update_board(self, arch: Any, x: torch.Tensor, logits: torch.Tensor, correct: int, n: int,
                     step: int) -> int:
        """Measure the path and offer it to the board; returns the forward images spent."""
        spent = 0
        if self.cfg.board_eval == "val":
            assert self._val_x is not None and self._val_y is not None
            vx, vy = self._val_x[: self.cfg.board_val_size], self._val_y[: self.cfg.board_val_size]
            with dist.local_batch():  # the same validation images on every rank
                correct, n = int((self.supernet(vx, arch).argmax(1) == vy).sum()), len(vy)
            spent = len(vy)
        xs, ls = x[: self.cfg.slice], logits[: self.cfg.slice]
        if dist.world_size() > 1:  # every rank keeps the same board, the one process's
            counts = torch.tensor([correct, n], dtype=torch.float64, device=x.device)
            if self.cfg.board_eval == "val":  # measured on the same images everywhere: rank 0's count
                torch.distributed.broadcast(counts, 0)
            else:  # each rank measured its part of the global batch
                torch.distributed.all_reduce(counts)
            correct, n = (int(v) for v in counts.tolist())
        acc = float(torch.tensor([100.0 * correct / n], device=x.device))
        cost = self.space.cost(arch)
        if dist.world_size() > 1:
            if not self.board.accepts(str(arch), acc, float(cost["flops"])):
                return spent
            # the global batch's first images: the ranks' parts in rank order form the global batch
            xs, ls = dist.all_gather_cat(xs)[: self.cfg.slice], dist.all_gather_cat(ls)[: self.cfg.slice]
        entry = BoardEntry(str(arch), acc, float(cost["flops"]), float(cost["params"]), step,
                           xs.detach().clone(), F.softmax(ls, dim=1).detach().clone())
        if self.board.update(entry):
            self.stats["board_updates"] += 1
        return spent

    def meta_objective(self, arch: Any, x: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
                       lr: float) -> torch.Tensor:
        """The meta loss of eq. 7-8, differentiable in the matching network's weights:

        1. rho = sigmoid(M(delta_b*)) for the best-matching board entry b*, with delta taken as a constant
           in the student's weights w (as in the training step);
        2. w' = w - lr * rho * dKD(s(x; w), t(x))/dw on the path's weights (one unrolled SGD step on the
           distillation term alone, as the paper's eq. 7 and the official code: the step training takes
           follows all of eq. 6, (rho KD + (2 - rho) CE) / 2, so the simulated step leaves out its CE term
           and halving);
        3. the student's cross-entropy with weights w' on the validation batch.
        """
        assert self.meta is not None
        with torch.no_grad():  # rho is a constant in the student's weights, as in the training step
            deltas = self._deltas(arch)
        scores = self.meta(deltas)
        b = int(scores.argmax())
        rho = torch.sigmoid(scores[b])
        with torch.no_grad():
            teacher_probs = F.softmax(self.supernet(x, self.space.parse(self.board.entries[b].arch)), dim=1)
        named = {n: p for n, p in self.supernet.named_parameters() if p.requires_grad}
        kd = rho * soft_cross_entropy(self.supernet(x, arch), teacher_probs)
        grads = torch.autograd.grad(kd, list(named.values()), create_graph=True, allow_unused=True)
        if dist.world_size() > 1:  # the gradient of the global batch's mean, still differentiable
            grads = tuple(None if g is None else dist.all_reduce_sum(g) / dist.world_size() for g in grads)
        fast = {n: (p - lr * g if g is not None else p) for (n, p), g in zip(named.items(), grads)}
        with dist.local_batch():  # the same validation batch on every rank
            return F.cross_entropy(functional_call(self.supernet, fast, (val_x, arch)), val_y)

    def meta_gradient_fd(self, arch: Any, x: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
                         lr: float, radius: float = 1e-3) -> list[torch.Tensor]:
        """The gradient of :meth:`meta_objective` in the matching network's weights theta, by the
        finite-difference trick of DARTS (Liu et al., ICLR 2019, eq. 8) instead of a double backward:

            dL/dtheta = -lr * d/dtheta [v . grad_w f(theta, w)]
                      ~ -lr * [grad_theta f(theta, w + eps v) - grad_theta f(theta, w - eps v)] / (2 eps)

        with f = rho * KD, v = grad of the validation loss at w' = w - lr * grad_w f, eps = radius / |v|
        (DARTS: radius 0.01). The error vanishes as the radius goes to 0 (a test checks 1e-9 relative in
        float64); at the default 1e-3 ReLU kinks inside the perturbation leave a few percent. It costs two
        forward/backward and two forward passes, where the exact double backward costs 9x a plain step on
        the micro-benchmark's CPU and 70x for the ImageNet MobileNet space on an H100
        (benchmarks/bench_cream_parts.py). The weights are restored exactly.
        """
        assert self.meta is not None
        with torch.no_grad():  # the deltas at w: rho is a constant in the student's weights, as in training
            delta = self._deltas(arch)
            b = int(self.meta(delta).argmax())  # the teacher stays b* throughout
            teacher_probs = F.softmax(self.supernet(x, self.space.parse(self.board.entries[b].arch)), dim=1)

        def f(rho_grad: bool) -> torch.Tensor:
            """rho * KD at the current weights (rho differentiable in theta only when rho_grad)."""
            with torch.set_grad_enabled(not rho_grad):
                kd = soft_cross_entropy(self.supernet(x, arch), teacher_probs)
            if rho_grad:
                kd = kd.detach()
            return torch.sigmoid(self.meta(delta)[b]) * kd

        params = [p for p in self.supernet.parameters() if p.requires_grad]
        g = torch.autograd.grad(f(rho_grad=False), params, allow_unused=True)
        if dist.world_size() > 1:  # the gradient of the global batch's mean
            g = tuple(None if gi is None else dist.all_reduce_sum(gi) / dist.world_size() for gi in g)
        path = [(p, gi) for p, gi in zip(params, g) if gi is not None]
        saved = [p.detach().clone() for p, _ in path]
        try:
            with torch.no_grad():  # w' = w - lr * g
                for p, gi in path:
                    p.sub_(lr * gi)
            with dist.local_batch():  # the same validation batch on every rank
                val_loss = F.cross_entropy(self.supernet(val_x, arch), val_y)
            self._epoch["meta_loss"].append(float(val_loss.detach()))
            v = torch.autograd.grad(val_loss, [p for p, _ in path], allow_unused=True)
            v = [torch.zeros_like(p) if vi is None else vi for (p, _), vi in zip(path, v)]
            eps = radius / max(float(torch.sqrt(sum((vi * vi).sum() for vi in v))), 1e-12)
            theta = list(self.meta.parameters())
            grads = []
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    for (p, _), w0, vi in zip(path, saved, v):
                        p.copy_(w0 + sign * eps * vi)
                grads.append(torch.autograd.grad(f(rho_grad=True), theta))
        finally:
            with torch.no_grad():
                for (p, _), w0 in zip(path, saved):
                    p.copy_(w0)
        return [-lr * (gp - gm) / (2 * eps) for gp, gm in zip(*grads)]

    def meta_update(self, arch: Any, x: torch.Tensor, step: int) -> int:
        """Step the matching network on :meth:`meta_objective` (a validation batch drawn from (seed,
        step)), its gradient computed exactly (``meta_grad=exact``: a double backward) or by finite
        differences (``meta_grad=fd``); returns the extra backward passes spent (2 either way)."""
        assert self.meta is not None and self.meta_opt is not None and self._val_x is not None
        lr = self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else 0.0
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        idx = torch.randint(0, len(self._val_x), (self.cfg.meta_val_batch,), generator=g).to(self._val_x.device)
        vx, vy = self._val_x[idx], self._val_y[idx]
        if self.cfg.meta_grad == "fd":
            meta_grads = self.meta_gradient_fd(arch, x, vx, vy, lr)
        else:
            objective = self.meta_objective(arch, x, vx, vy, lr)
            self._epoch["meta_loss"].append(float(objective.detach()))
            meta_grads = torch.autograd.grad(objective, list(self.meta.parameters()))
        self.meta_opt.zero_grad(set_to_none=True)
        for p, mg in zip(self.meta.parameters(), meta_grads):
            p.grad = mg.detach()
        self._step_meta()
        self.stats["meta_updates"] += 1
        return 2

    def _step_meta(self) -> None:
        """Average the matching network's gradients over data-parallel ranks, clip, step."""
        assert self.meta is not None and self.meta_opt is not None
        for p in self.meta.parameters():
            if p.grad is None:
                continue
            if dist.world_size() > 1:
                torch.distributed.all_reduce(p.grad)
                p.grad /= dist.world_size()
        nn.utils.clip_grad_norm_(self.meta.parameters(), self.cfg.meta_grad_clip)
        self.meta_opt.step()

    # -- bookkeeping -------------------------------------------------------------------------------------
    def replica_state(self) -> bytes:
        """The board (paths, accuracies, FLOPs, stored slices and softmaxes) and the meta network as bytes:
        what every data-parallel rank must hold identically."""
        def raw(t: torch.Tensor) -> bytes:
            return t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()

        parts = [repr((e.arch, e.accuracy, e.flops, e.params, e.step)).encode() + raw(e.inputs) + raw(e.probs)
                 for e in self.board]
        parts += [raw(t) for t in (self.meta.state_dict().values() if self.meta is not None else [])]
        return b"".join(parts)

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        if dist.world_size() > 1:  # a cheap check that the data-parallel ranks agree
            dist.check_same("cream's prioritized path board or meta network", self.replica_state())
        best = self.board.entries[0].accuracy if len(self.board) else None  # JSON has no NaN
        return {"board_size": len(self.board), "board_best_acc": best,
                "board_worst_acc": self.board.entries[-1].accuracy if len(self.board) else None,
                **self.stats, **self.learning_stats()}

    def learning_stats(self) -> dict[str, Any]:
        """This epoch's evidence of whether the matching network learns (then reset): ``meta_change``
        (|theta - theta_0| / |theta_0|), rho's mean and std over the distilled steps, ``teacher_picks``
        (how often each board rank, 0 = best, was the teacher) and the mean meta loss."""
        e, out = self._epoch, {}
        if self.meta is not None and self._meta_init:
            now = torch.cat([p.detach().flatten() for p in self.meta.parameters()])
            init = torch.cat([p.flatten() for p in self._meta_init]).to(now.device)
            out["meta_change"] = float((now - init).norm() / init.norm().clamp_min(1e-12))
        if e["rho"]:
            r = torch.tensor(e["rho"])
            out["rho_mean"], out["rho_std"] = float(r.mean()), float(r.std()) if len(r) > 1 else 0.0
        if e["picks"]:
            out["teacher_picks"] = [e["picks"].count(i) for i in range(self.cfg.board_size)]
        if e["meta_loss"]:
            out["meta_loss"] = sum(e["meta_loss"]) / len(e["meta_loss"])
        self._epoch = {"rho": [], "picks": [], "meta_loss": []}
        return out

    def finalize(self, scores: list[dict[str, Any]], top: int) -> dict[str, Any]:
        board = [e.summary() for e in self.board]
        if not board:  # the board never opened (training shorter than the warm-up)
            return {**super().finalize(scores, top), "board": []}
        by_arch = {r["arch"]: r for r in scores}
        listed = set(by_arch) - {e["arch"] for e in board}  # select.archs_file: candidates off the board
        if self.cfg.select_by == "board" and not listed:
            ranked = [{**by_arch.get(e["arch"], {"arch": e["arch"]}), "board_accuracy": e["accuracy"]}
                      for e in board]
        else:
            board_acc = {e["arch"]: e["accuracy"] for e in board}
            ranked = sorted((dict(r) for r in scores), key=lambda r: (-r["accuracy"], r["loss"]))
            for r in ranked:
                r["board_accuracy"] = board_acc.get(r["arch"])
        return {"ranked": ranked[:top], "board": board}

    def state_dict(self) -> dict[str, Any]:
        return {"board": self.board.state_dict(), "stats": dict(self.stats),
                "meta_init": [p.clone() for p in self._meta_init],
                "meta": self.meta.state_dict() if self.meta is not None else None,
                "meta_opt": self.meta_opt.state_dict() if self.meta_opt is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.board.load_state_dict(state.get("board", []))
        self.stats.update(state.get("stats", {}))
        if state.get("meta_init"):
            self._meta_init = [t.clone() for t in state["meta_init"]]
        if self.meta is not None and state.get("meta") is not None:
            self.meta.load_state_dict(state["meta"])
        if self.meta_opt is not None and state.get("meta_opt") is not None:
            self.meta_opt.load_state_dict(state["meta_opt"])
