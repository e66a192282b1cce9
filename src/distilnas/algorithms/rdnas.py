"""RD-NAS: ranking distillation from zero-cost proxies (Dong et al., ICASSP 2023).

Each step trains a *pair* of subnets on the same batch. A zero-cost proxy (the *teacher*; FLOPs by default
as in the authors' code) says which of the two should be better, and a margin ranking loss pushes the
supernet's losses to agree (paper eq. 3)::

    L_rd = max(0, m - (L_ce(x; a_i) - L_ce(x; a_j)))      a_j = the proxy-preferred subnet

so the worse subnet's loss must exceed the better one's by at least the margin m. The step's loss is
``CE(a_i) + CE(a_j) + lambda(t) * L_rd`` with lambda(t) one of the schedules in :func:`rank_weight`.

Pairs come from the *margin subnet sampler* (MSS): draw pairs until their distance reaches mu (at most
``max_tries``, then the farthest pair seen), so that the teacher's order is trustworthy. The distance is
the paper's *group distance* (eq. 4): per edge, 2 when the two ops differ and sit in different groups,
0.5 when they differ within a group (NB201 groups: {nor_conv_1x1, nor_conv_3x3} parametric and
{skip_connect, avg_pool_3x3} parameter-free; ``none``, which the RD-NAS space drops, counts as
parameter-free here); or plain Hamming distance (the space's own ``distance``). mu = 6.7 on NB201 is the
mean group distance of random pairs of the 4-op space (6 edges x 1.125), as in the paper; 4.5 is the
Hamming mean.

Differences from the official code, which the paper takes precedence over: the code uses m = 0 and stops
the gradient through one subnet of the pair; here m is configurable (``margin``, default 0 as in the
code) and the stop-gradient is an option (``stop_grad_second``), off by default.

Proxy scores of sampled subnets are cached by architecture string, so the teacher costs nothing after a
subnet's first visit (the cache is saved in checkpoints).

Several proxies can teach together (``teacher: jacob_cov+nwot+flops``, not in the paper): each proxy's
score becomes its rank among a fixed reference sample of ``teacher_reference`` random architectures
(the empirical CDF, ties counting half), and the teacher's score is the mean of those ranks over the
proxies, a rank average that no single proxy's scale dominates.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..config import MAX_SEED, ConfigError, opt
from ..data import gather
from ..train import distributed as dist
from .base import ALGORITHMS, Algorithm, StepOutput, path_rng

__all__ = ["RDNAS", "group_distance", "rank_weight", "margin_ranking_loss", "sample_pair", "NB201_GROUPS"]

NB201_GROUPS: dict[str, str] = {
    "nor_conv_1x1": "parametric", "nor_conv_3x3": "parametric",
    "skip_connect": "parameter-free", "avg_pool_3x3": "parameter-free", "none": "parameter-free",
}


def group_distance(a: Any, b: Any, groups: dict[str, str] = NB201_GROUPS) -> float:
    """Paper eq. 4: sum over positions of 2 (ops differ, different groups) or 0.5 (differ, same group)."""
    d = 0.0
    for x, y in zip(a.ops, b.ops):
        if x != y:
            d += 0.5 if groups[x] == groups[y] else 2.0
    return d


def sample_pair(sample: Callable[[], Any], distance: Callable[[Any, Any], float], mu: float,
                max_tries: int) -> tuple[Any, Any, float]:
    """Margin subnet sampler: the first of ``max_tries`` random pairs at distance >= ``mu``, else the
    farthest pair drawn. ``mu <= 0`` takes the first pair (no sampler)."""
    best: tuple[Any, Any, float] | None = None
    for _ in range(max(1, max_tries)):
        a, b = sample(), sample()
        d = distance(a, b)
        if d >= mu:
            return a, b, d
        if best is None or d > best[2]:
            best = (a, b, d)
    assert best is not None
    return best


def rank_weight(schedule: str, epoch: int, num_epochs: int, scale: float = 2.0, warmup_epochs: int = 10) -> float:
    """lambda(t) of the ranking loss at (0-based) ``epoch``.

    ``constant``: scale; ``linear``: scale * min(1, epoch / warmup_epochs) (a linear warm-up);
    ``sin``: scale * sin(0.8 pi epoch / num_epochs) (the authors' NB201 schedule, scale 2);
    ``step``: min(scale, epoch / warmup_epochs), i.e. min(2, epoch / 10) with the defaults (the authors'
    ResNet-space schedule).
    """
    if schedule == "constant":
        return scale
    if schedule == "linear":
        return scale * min(1.0, epoch / max(1, warmup_epochs))
    if schedule == "sin":
        return scale * math.sin(0.8 * math.pi * epoch / max(1, num_epochs))
    if schedule == "step":
        return min(scale, epoch / max(1, warmup_epochs))
    raise ConfigError(f"unknown algorithm.schedule {schedule!r}; choose constant, linear, sin or step")


def margin_ranking_loss(loss_worse: torch.Tensor, loss_better: torch.Tensor, margin: float) -> torch.Tensor:
    """Paper eq. 3: max(0, m - (L(a_worse) - L(a_better)))."""
    return torch.clamp(margin - (loss_worse - loss_better), min=0.0)


@ALGORITHMS.register("rdnas")
class RDNAS(Algorithm):
    """Ranking distillation with a zero-cost-proxy teacher and the margin subnet sampler."""

    name = "rdnas"

    @dataclass
    class Config:
        # the ranking teacher: flops, params or any registered zero-cost proxy; a+b+c = their rank average
        teacher: str = "flops"
        teacher_reference: int = opt(256, ge=2)  # reference architectures of a rank-average teacher
        margin: float = opt(0.0, ge=0)  # m of eq. 3 (the authors' code: 0)
        # margin subnet sampler distance: group (eq. 4), hamming, or none (no MSS)
        sampler: str = opt("group", choices=("group", "hamming", "none"))
        mu: float = opt(6.7, ge=0)  # distance threshold (NB201: 6.7 group, 4.5 Hamming; ResNet space: 33 Hamming)
        max_tries: int = opt(20, ge=1)  # pairs drawn before taking the farthest one seen
        # lambda(t): constant | linear | sin (NB201) | step (ResNet space)
        schedule: str = opt("sin", choices=("constant", "linear", "sin", "step"))
        scale: float = opt(2.0, ge=0)  # lambda's scale (the 2 of 2 sin(0.8 pi t / T) and of min(2, epoch / 10))
        warmup_epochs: int = opt(10, ge=0)  # for the linear and step schedules
        stop_grad_second: bool = False  # detach the second subnet's loss in L_rd (authors' code)
        proxy_batch_size: int = opt(64, ge=1)  # fixed batch of data-dependent teachers
        proxy_seed: int = opt(0, ge=0, le=MAX_SEED)  # seed of that batch and of the teachers' initialisation
        groups: dict[str, str] = field(default_factory=lambda: dict(NB201_GROUPS))  # op -> group (eq. 4)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        c = self.cfg
        if c.sampler not in ("group", "hamming", "none"):
            raise ConfigError(f"unknown algorithm.sampler {c.sampler!r}; choose group, hamming or none")
        if c.sampler == "group" and not hasattr(self.space, "ops"):
            raise ConfigError(f"algorithm.sampler=group needs op groups, which space {self.space.name!r} has "
                              f"not; use algorithm.sampler=hamming")
        if c.sampler == "hamming" and c.mu > len(self.space.choices):
            raise ConfigError(f"algorithm.mu={c.mu:g} can never be reached by the Hamming distance, which is at most "
                              f"{len(self.space.choices)} on space {self.space.name!r}; set algorithm.mu "
                              f"(e.g. 4.5 on NB201, the mean of random pairs) or use sampler=group")
        rank_weight(c.schedule, 0, 1)  # validates the schedule name
        self.teachers = [n.strip() for n in c.teacher.split("+")]
        if not all(self.teachers) or len(set(self.teachers)) != len(self.teachers):
            raise ConfigError(f"algorithm.teacher={c.teacher!r}: name one proxy, or several distinct ones joined by +")
        self.cache: dict[str, float] = {}
        self.reference: dict[str, list[float]] = {}  # proxy -> sorted scores of the reference sample
        self._epoch = {"rank_loss": 0.0, "violated": 0, "pairs": 0, "lambda": 0.0}  # per-epoch statistics
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def setup(self, data: Any, device: torch.device, optimizer: Any = None) -> None:
        super().setup(data, device, optimizer)
        if any(t not in ("flops", "params") for t in self.teachers):
            from ..proxies import PROXIES

            for t in self.teachers:
                if t not in ("flops", "params"):
                    PROXIES.get(t)  # unknown names fail here, before training
            g = torch.Generator().manual_seed(self.cfg.proxy_seed)
            idx = torch.randperm(len(data.train_x), generator=g)[: self.cfg.proxy_batch_size]
            self._batch = (gather(data.train_x, idx), data.train_y[idx])

    # -- the teacher ------------------------------------------------------------------------------------
    def _proxy(self, name: str, arch: Any) -> float:
        if name in ("flops", "params"):
            return float(self.space.cost(arch)[name])
        from ..proxies import compute

        return compute(name, self.space, arch, self._batch, seed=self.cfg.proxy_seed, device=self.device)

    def _reference(self) -> dict[str, list[float]]:
        """Each teacher proxy's sorted scores on ``teacher_reference`` random architectures (drawn with
        ``proxy_seed``), computed once (and saved in checkpoints)."""
        if not self.reference:
            rng = random.Random(self.cfg.proxy_seed)
            archs = [self.space.sample(rng) for _ in range(self.cfg.teacher_reference)]
            for t in self.teachers:
                vals = [self._proxy(t, a) for a in archs]
                self.reference[t] = sorted(v for v in vals if not math.isnan(v))
        return self.reference

    def teacher_score(self, arch: Any) -> float:
        """The teacher's score of ``arch`` (higher = predicted better), cached by architecture: the proxy's
        own score, or the mean over several proxies of the rank among the reference sample."""
        key = str(arch)
        if key not in self.cache:
            if len(self.teachers) == 1:
                self.cache[key] = self._proxy(self.teachers[0], arch)
            else:
                ranks = []
                for t, ref in self._reference().items():
                    v = self._proxy(t, arch)
                    if not math.isnan(v) and ref:  # empirical CDF, ties count half
                        ranks.append((bisect.bisect_left(ref, v) + bisect.bisect_right(ref, v)) / (2 * len(ref)))
                self.cache[key] = sum(ranks) / len(ranks) if ranks else math.nan
        return self.cache[key]

    def distance(self, a: Any, b: Any) -> float:
        if self.cfg.sampler == "group":
            return group_distance(a, b, self.cfg.groups)
        return self.space.distance(a, b)

    def sample_pair(self, rng: random.Random) -> tuple[Any, Any, float]:
        mu = self.cfg.mu if self.cfg.sampler != "none" else 0.0
        return sample_pair(lambda: self.space.sample(rng), self.distance, mu, self.cfg.max_tries)

    # -- one step -----------------------------------------------------------------------------------------
    def training_step(self, x: torch.Tensor, y: torch.Tensor, step: int, epoch: int, num_epochs: int) -> StepOutput:
        c = self.cfg
        a, b, _ = self.sample_pair(path_rng(self.seed, step))
        logits_a, logits_b = self.supernet(x, a), self.supernet(x, b)
        ce_a = F.cross_entropy(logits_a, y, label_smoothing=self.label_smoothing)
        ce_b = F.cross_entropy(logits_b, y, label_smoothing=self.label_smoothing)
        loss = ce_a + ce_b
        lam = rank_weight(c.schedule, epoch, num_epochs, c.scale, c.warmup_epochs)
        sa, sb = self.teacher_score(a), self.teacher_score(b)
        if lam > 0 and sa != sb and not (math.isnan(sa) or math.isnan(sb)):
            # eq. 3 on the plain CE losses: the proxy-preferred subnet should have the lower loss
            la, lb = ce_a, (ce_b.detach() if c.stop_grad_second else ce_b)
            if dist.world_size() > 1:  # torchrun: the hinge compares the global batch's losses
                la, lb = (dist.all_reduce_sum(v) / dist.world_size() for v in (la, lb))
            worse, better = (la, lb) if sb > sa else (lb, la)
            rank_loss = margin_ranking_loss(worse, better, c.margin)
            loss = loss + lam * rank_loss
            self._epoch["rank_loss"] += float(rank_loss.detach())
            self._epoch["violated"] += int(float(rank_loss.detach()) > 0)
            self._epoch["pairs"] += 1
        self._epoch["lambda"] = lam
        loss.backward()
        correct = int((logits_a.argmax(1) == y).sum()) + int((logits_b.argmax(1) == y).sum())
        return StepOutput((ce_a.item() + ce_b.item()) / 2, correct, 2 * len(y), passes=2)

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """The teacher cache's size, lambda(t), and over the epoch's ranked pairs the mean ranking loss
        L_rd and the share of pairs whose losses disagree with the teacher's order (the hinge is active)."""
        e = self._epoch
        out = {"teacher_cache": len(self.cache), "lambda": e["lambda"]}
        if e["pairs"]:
            out.update(rank_loss=e["rank_loss"] / e["pairs"], rank_violated=e["violated"] / e["pairs"])
        self._epoch = {"rank_loss": 0.0, "violated": 0, "pairs": 0, "lambda": 0.0}
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"cache": dict(self.cache), "reference": {k: list(v) for k, v in self.reference.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cache = dict(state.get("cache", {}))
        self.reference = {k: list(v) for k, v in state.get("reference", {}).items()}
