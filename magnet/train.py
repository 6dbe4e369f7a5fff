"""Training MagNet's refinement modules on a frozen backbone (magnet.md §2.1).

Per training image and epoch, one random (coarse, fine) pair: the coarse image is the whole image
resized to the input size n; the fine patch is a random crop of size c of the image resized to a
scale S drawn uniformly from the scales the refiner serves, resized to n. The refiner sees the
softmax of the backbone on the fine patch and the RoIAlign crop of the coarse softmax at the
patch's box, and is trained with OHEM cross-entropy against the label crop (nearest resizes).

Exact caches (same maths, less work): the coarse softmax of every image and the resized images
and labels per scale are computed once, within ``cfg.cache_mb``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from bench.interface import Dataset, MethodContext, normalize
from magnet.config import MagNetConfig, Plan, resolve_plan
from magnet.geometry import Size
from magnet.inference import resize
from magnet.loss import ohem_cross_entropy, scaled_min_kept
from magnet.refinement import RefinementModule
from magnet.roi_align import roi_align

log = logging.getLogger(__name__)

PAPER_MILESTONES = (10, 20, 30, 40, 45)
PAPER_EPOCHS = 50


def milestones(cfg: MagNetConfig) -> list[int]:
    """MultiStepLR epochs: ``cfg.milestones``, or the paper's scaled by ``epochs / 50``."""
    if cfg.milestones:
        return sorted(int(m) for m in cfg.milestones)
    return [max(1, round(m * cfg.epochs / PAPER_EPOCHS)) for m in PAPER_MILESTONES]


def refiner_filename(plan: Plan, index: int) -> str:
    """``magnet_refiner_<WxH>[_<WxH>...].pt``: the scales of the stages the refiner serves."""
    return "magnet_refiner_" + "_".join(f"{w}x{h}" for w, h in plan.stages_of_refiner(index)) + ".pt"


def _resize_label(label: np.ndarray, size: Size) -> np.ndarray:
    if (label.shape[1], label.shape[0]) == tuple(size):
        return label
    return cv2.resize(label, tuple(size), interpolation=cv2.INTER_NEAREST)


class PairSource:
    """Training pairs with exact caching of coarse probabilities and resized images.

    Args:
        train_set: dataset of ``Sample`` s.
        plan: resolved geometry.
        backbone: frozen backbone (eval mode).
        device: where tensors go.
        budget_mb: cache size limit; coarse probabilities are cached first, then resized images.
    """

    def __init__(self, train_set: Dataset, plan: Plan, backbone: torch.nn.Module, device: torch.device,
                 budget_mb: int) -> None:
        self.data, self.plan, self.backbone, self.device = train_set, plan, backbone, device
        self.budget = budget_mb * (1 << 20)
        self._coarse: dict[int, torch.Tensor] = {}
        self._scaled: dict[tuple[int, Size], tuple[np.ndarray, np.ndarray]] = {}
        self._used = 0

    def __len__(self) -> int:
        return len(self.data)

    def _admit(self, nbytes: int) -> bool:
        if self._used + nbytes > self.budget:
            return False
        self._used += nbytes
        return True

    def _load(self, indices: list[int]) -> dict[int, Any]:
        """Read each sample once: cache its resized images (every trained scale) within the budget."""
        samples = {}
        for i in indices:
            sample = self.data[i]
            samples[i] = sample
            for scale in self.plan.scales[1:]:
                nbytes = scale[0] * scale[1] * (sample.image.shape[2] * sample.image.itemsize + sample.label.itemsize)
                if (i, scale) not in self._scaled and self._admit(nbytes):
                    self._scaled[(i, scale)] = (resize(sample.image, scale), _resize_label(sample.label, scale))
        return samples

    @torch.no_grad()
    def coarse(self, indices: list[int]) -> list[torch.Tensor]:
        """(C, nh, nw) coarse softmax per image: backbone on the whole image resized to n (one step)."""
        fresh: dict[int, torch.Tensor] = {}
        missing = [i for i in indices if i not in self._coarse]
        if missing:
            samples = self._load(missing)
            images = np.stack([resize(samples[i].image, self.plan.input_size) for i in missing])
            probs = F.softmax(self.backbone(normalize(images, self.device)).float(), dim=1)
            for i, p in zip(missing, probs):
                fresh[i] = p
                if self._admit(p.numel() * p.element_size()):
                    self._coarse[i] = p
        return [self._coarse[i] if i in self._coarse else fresh[i] for i in indices]

    def scaled(self, index: int, scale: Size) -> tuple[np.ndarray, np.ndarray]:
        """Image (INTER_LINEAR) and label (INTER_NEAREST) resized to ``scale``."""
        key = (index, scale)
        if key in self._scaled:
            return self._scaled[key]
        sample = self.data[index]
        return resize(sample.image, scale), _resize_label(sample.label, scale)

    def warm(self, batch: int = 16) -> None:
        """Fill the caches in batches (while the budget lasts), reading every sample once."""
        for start in range(0, len(self), batch):
            self.coarse(list(range(start, min(start + batch, len(self)))))


def sample_batch(source: PairSource, indices: list[int], scales: tuple[Size, ...],
                 rng: np.random.RandomState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One training batch.

    Returns:
        ``(fine, coarse_crop, target)``: backbone softmax of the fine patches (b, C, nh, nw), RoIAlign
        crops of the coarse softmax at the patches' boxes (b, C, nh, nw), labels (b, nh, nw) int64.
    """
    (cw, ch), (nw, nh) = source.plan.crop, source.plan.input_size
    patches, labels, crops = [], [], []
    coarse = source.coarse(indices)
    for index, probs in zip(indices, coarse):
        sw, sh = scales[rng.randint(len(scales))]
        x, y = rng.randint(0, max(sw - cw, 1)), rng.randint(0, max(sh - ch, 1))
        image, label = source.scaled(index, (sw, sh))
        patches.append(resize(image[y:y + ch, x:x + cw], (nw, nh)))
        labels.append(_resize_label(label[y:y + ch, x:x + cw], (nw, nh)))
        box = torch.tensor([[x / sw * nw, y / sh * nh, (x + cw) / sw * nw, (y + ch) / sh * nh]])
        crops.append(roi_align(probs, box, (nh, nw)))
    with torch.no_grad():
        fine = F.softmax(source.backbone(normalize(np.stack(patches), source.device)).float(), dim=1)
    target = torch.as_tensor(np.stack(labels).astype(np.int64), device=source.device)
    return fine, torch.cat(crops), target


def _epoch_batches(rng: np.random.RandomState, n: int, batch: int, iterations: int, stream: list[int]) -> list[list[int]]:
    """One epoch of index batches: a shuffled pass (last batch partial) when ``iterations`` is 0,
    else ``iterations`` full batches from a stream of shuffled passes carried across epochs."""
    if iterations == 0:
        perm = rng.permutation(n).tolist()
        return [perm[i:i + batch] for i in range(0, n, batch)]
    out = []
    for _ in range(iterations):
        while len(stream) < batch:
            stream += rng.permutation(n).tolist()
        out.append(stream[:batch])
        del stream[:batch]
    return out


def train_one(source: PairSource, scales: tuple[Size, ...], cfg: MagNetConfig, num_classes: int, ignore_index: int,
              seed: int) -> tuple[RefinementModule, list[float]]:
    """Train one refiner on pairs drawn from ``scales``; returns it and the mean loss per epoch."""
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    device = source.device
    refiner = RefinementModule(num_classes).to(device).train()
    opt = torch.optim.SGD(refiner.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones(cfg), gamma=cfg.gamma)
    min_kept = scaled_min_kept(cfg.ohem_min_kept, source.plan.input_size)
    stream: list[int] = []
    history = []
    for epoch in range(cfg.epochs):
        losses = []
        for batch in _epoch_batches(rng, len(source), cfg.train_batch_size, cfg.iterations_per_epoch, stream):
            fine, crop, target = sample_batch(source, batch, scales, rng)
            first, second = (fine, crop) if cfg.train_input_order == "matching" else (crop, fine)
            loss = ohem_cross_entropy(refiner(first, second), target, ignore_index, cfg.ohem_thresh, min_kept)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        sched.step()
        history.append(float(np.mean(losses)))
        log.info("magnet refiner %s epoch %d/%d loss %.4f", scales, epoch + 1, cfg.epochs, history[-1])
    if cfg.bn_recalibration > 0:
        recalibrate_bn(refiner, source, scales, cfg, rng)
    return refiner.eval(), history


@torch.no_grad()
def recalibrate_bn(refiner: RefinementModule, source: PairSource, scales: tuple[Size, ...], cfg: MagNetConfig,
                   rng: np.random.RandomState) -> None:
    """Replace the BN running statistics by their plain average over ``cfg.bn_recalibration`` fresh batches.

    Not in the released recipe (``bn_recalibration: 0``). With BN momentum 0.01 the running
    statistics need thousands of steps to settle; on short schedules they are still near their
    initial values and the eval-mode refiner is far from the trained one.
    """
    norms = [m for m in refiner.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    refiner.train()
    stream: list[int] = []
    for batch in _epoch_batches(rng, len(source), cfg.train_batch_size, cfg.bn_recalibration, stream):
        fine, crop, _ = sample_batch(source, batch, scales, rng)
        refiner(*((fine, crop) if cfg.train_input_order == "matching" else (crop, fine)))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def train_refiners(cfg: MagNetConfig, ctx: MethodContext, train_set: Dataset, paths: Mapping[str, Path]) -> dict[str, Any]:
    """Train every refiner of the plan and save plain state dicts to ``paths[f"refiner_{r}"]``.

    Returns:
        ``{"refiner_<r>": {"scales": [...], "loss": [per-epoch mean], "seconds": s}}``.
    """
    if ctx.backbone is None:
        raise ValueError("MagNet refiner training needs the trained backbone in ctx.backbone")
    plan = resolve_plan(cfg, ctx.input_size, ctx.image_size)
    ignore = ctx.dataset.ignore_index if ctx.dataset is not None and ctx.dataset.ignore_index is not None else -1
    backbone = ctx.backbone.eval()
    source = PairSource(train_set, plan, backbone, ctx.device, cfg.cache_mb)
    source.warm()
    seed = int(ctx.options.get("seed", 0)) if ctx.options else 0
    summary: dict[str, Any] = {}
    for r in range(plan.n_refiners):
        key = f"refiner_{r}"
        if key not in paths:
            raise KeyError(f"no path for {key}; expected the keys of MagNet.checkpoints(): {sorted(paths)}")
        start = time.perf_counter()
        scales = plan.stages_of_refiner(r)
        refiner, history = train_one(source, scales, cfg, ctx.num_classes, ignore, seed + r)
        Path(paths[key]).parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in refiner.state_dict().items()}, paths[key])
        summary[key] = {"scales": [list(s) for s in scales], "loss": history, "seconds": time.perf_counter() - start}
    return summary
