"""Training of the PointRend point head on a frozen backbone (spec §5.3, "Training").

Per iteration and image: the backbone's coarse logits and fine features (cached when
``cache_features``), mmseg's ``get_points_train`` (k N uniform points, the beta N most uncertain,
(1 - beta) N fresh uniform ones), and mmseg's ``PointHead.loss``: CE on the point logits against the
full-resolution label sampled with mode='nearest' (``ignore_index`` skipped; mmseg's
``CrossEntropyLoss`` averages over all points, ignored ones counting as zero). The backbone and
its coarse head stay frozen, so only the point head's loss is used (the paper also trains the
coarse head; here it is the shared, already trained backbone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:  # mmseg ships no type information (Any to mypy); names the head's class
    from mmseg.models.decode_heads.point_head import PointHead

from baselines.pointrend.features import coarse_and_fine
from bench.training import loop, resume

MIN_LR = 1e-4  # mmseg's PolyLR floor in the PointRend schedule

Item = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # logits (C,h,w), fine (F,h',w'), label (H,W) uint8/int16


def ignore_value(ignore_index: int | None, num_classes: int) -> int:
    """The label value the loss skips: the dataset's, else one no class uses."""
    if ignore_index is not None:
        return int(ignore_index)
    return 255 if num_classes <= 255 else -1


def make_loader(
    backbone: Any,
    train_set: Any,
    input_size: tuple[int, int],
    device: torch.device,
    feature_key: str,
    cache: bool,
    first_scale: tuple[int, int] | None = None,
) -> Callable[[int], Item]:
    """``index -> (logits, fine, label)`` for the training set, computed once when ``cache``.

    Labels are kept in their uint8 / uint16 form (as int32 for uint16) to keep memory small.
    """
    store: dict[int, Item] = {}

    def load(i: int) -> Item:
        if i in store:
            return store[i]
        sample = train_set[i]
        logits, fine = coarse_and_fine(backbone, sample.image, input_size, device, feature_key, first_scale)
        label = np.asarray(sample.label)
        label_t = torch.from_numpy(label.astype(np.int32) if label.dtype == np.uint16 else label.copy()).to(device)
        item = (logits[0], fine[0], label_t)
        if cache:
            store[i] = item
        return item

    return load


def batch_loss(head: PointHead, items: Sequence[Item], train_cfg: Any) -> tuple[torch.Tensor, float]:
    """Mean point loss over a batch through ``PointHead.loss`` (one call per image size).

    Returns:
        (loss, point accuracy in percent).
    """
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    groups: dict[tuple[int, ...], list[Item]] = {}  # by label shape (H, W)
    for item in items:
        groups.setdefault(tuple(item[2].shape), []).append(item)
    total: torch.Tensor | None = None
    acc, count = 0.0, 0
    for group in groups.values():
        logits = torch.stack([g[0] for g in group])
        fine = torch.stack([g[1] for g in group])
        samples = []
        for g in group:
            s = SegDataSample()
            s.gt_sem_seg = PixelData(data=g[2][None].long())
            samples.append(s)
        out = head.loss([fine], logits, samples, train_cfg)
        loss = sum(v for k, v in out.items() if "loss" in k)
        weighted = loss * len(group)
        total = weighted if total is None else total + weighted
        acc += float(out["acc_point"]) * len(group)
        count += len(group)
    if total is None:
        raise ValueError("batch_loss needs at least one item")
    return total / count, acc / count


def train_head(
    head: PointHead,
    load: Callable[[int], Item],
    num_samples: int,
    cfg: Any,
    ignore: int,
    resume_file: resume.ResumeFile | None = None,
) -> list[float]:
    """Train ``head`` in place for ``cfg.iterations`` iterations.

    Args:
        head: mmseg ``PointHead`` on the training device (its ``ignore_index`` set to ``ignore``).
        load: ``index -> (logits, fine, label)``.
        num_samples: training set size.
        cfg: the PointRend config (iterations, batch_size, optimizer, lr, momentum, weight_decay,
            train_points, oversample_ratio, importance_sample_ratio, seed).
        ignore: label value skipped by the loss (for the log only; the head holds it).
        resume_file: where the resumable state is written and read (``bench.training.resume``;
            the point draws use torch's global generator and the image draws ``rng``, both saved).

    Returns:
        The loss of every iteration.
    """
    from mmengine.config import ConfigDict

    train_cfg = ConfigDict(
        num_points=cfg.train_points,
        oversample_ratio=cfg.oversample_ratio,
        importance_sample_ratio=cfg.importance_sample_ratio,
    )
    rng = np.random.default_rng(cfg.seed)
    opt = loop.make_optimizer(head.parameters(), cfg.optimizer, cfg.lr, momentum=cfg.momentum,
                                  weight_decay=cfg.weight_decay, allowed=("sgd", "adam"), what="pointrend.optimizer")
    head.train()

    def step() -> tuple[torch.Tensor, dict[str, float]]:
        idx = rng.choice(num_samples, size=min(cfg.batch_size, num_samples), replace=False)
        loss, acc = batch_loss(head, [load(int(i)) for i in idx], train_cfg)
        return loss, {"point_acc": acc}

    checkpoint = resume.Checkpointer(resume_file, cfg.iterations, modules={"head": head}, optimizers={"opt": opt},
                                     generators={"rng": rng}, device=next(head.parameters()).device)
    with loop.Progress(f"pointrend (ignore={ignore})", cfg.iterations) as progress:
        return loop.run_steps(opt, progress, cfg.iterations,
                              lambda it: loop.poly_lr(cfg.lr, it, cfg.iterations, min_lr=MIN_LR), step, checkpoint)
