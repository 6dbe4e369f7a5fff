"""GLNet's three training stages (``Trainer.train`` of VITA-Group/GLNet's ``helper.py``), our code.

1. global: the global branch alone on the downsampled images; focal loss on its logits against
   the labels resized ``nearest`` to the logits' size (1/4 of the global input).
2. global2local: the global branch fixed (eval, no gradient); the local branch and ensemble_conv
   learn on full-resolution patches, each local layer reading the global maps cropped to the
   patch. Loss per patch batch: focal(local logits) + focal(ensemble logits) +
   ``lamb_fmreg`` (0.15) x MSE(local ps3, global ps3 crop) (the branch-agreement regulariser).
3. local2global: the local branch fixed (eval), fed by a *fixed copy of the stage-1 global
   branch*; its maps over all patches are aggregated to the global maps' sizes and fed to the
   global branch's ``*_ext`` layers, which learn with the global body and ensemble_conv. Loss:
   focal(global logits) + focal(ensemble logits) per patch batch (the release comments its MSE
   term out in this stage, so there is none).

Adam with L2 weight decay 5e-4 on the parameters the stage trains (the release gives the others
learning rate 0, which Adam leaves unchanged), poly decay (power 0.9) per iteration, batches of
``batch_size`` (6) images, augmentation by a horizontal flip (p 0.5) and, where ``rotate``, a
rotation by 90/180/270 degrees (p 0.5; on non-square images only 180 keeps the geometry, so only
that one is drawn there). Deviations for the CPU budget, all options: iterations instead of
epochs, and ``patches_per_image`` patches drawn per image and step instead of all of them (None =
all, as the release; the gradient is then the release's). Stage 3 caches each (image, flip,
turn)'s aggregated local maps: the branches that make them are fixed in that stage, so the cache
changes nothing. Each view's resized global image is cached too, and the drawn patches of all the
batch's images run as one local forward (each with the crops of its own image's global maps; the
loss keeps one term per image, as the release's per-sub-batch backward).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from baselines.glnet.fpn import resize
from baselines.glnet.infer import chunks, resize_global, resize_label, to_unit
from baselines.glnet.loss import focal_loss
from baselines.glnet.net import (
    Aggregator,
    Branch,
    GLNet,
    cat_crops,
    crop,
    global_crops,
)
from baselines.glnet.patches import PatchGrid, patch_grid
from bench.training import loop, resume


class TrainViews:
    """The training images in memory and their augmented views.

    Args:
        train_set: a ``Dataset``; every sample is read once.
        cfg: the GLNet config (``hflip``, ``rotate``, ``min_overlap``).
        global_hw, patch_hw: (h, w) of the global input and of a patch, unrotated.
        device: where the global images are cached.
    """

    def __init__(self, train_set: Any, cfg: Any, global_hw: tuple[int, int], patch_hw: tuple[int, int],
                 device: torch.device | None = None) -> None:
        self.items = []
        for i in range(len(train_set)):
            s = train_set[i]
            self.items.append((np.asarray(s.image), np.asarray(s.label)))
        self.cfg, self.global_hw, self.patch_hw = cfg, global_hw, patch_hw
        self.device = device or torch.device("cpu")
        self._global: dict[tuple[int, bool, int], torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.items)

    def draw(self, rng: np.random.Generator) -> tuple[int, bool, int]:
        """(image index, flip, quarter turns) of one augmented sample."""
        i = int(rng.integers(len(self.items)))
        flip = bool(self.cfg.hflip and rng.random() < 0.5)
        k = 0
        if self.cfg.rotate and rng.random() < 0.5:
            H, W = self.items[i][1].shape
            k = int(rng.choice([1, 2, 3])) if H == W else 2
        return i, flip, k

    def view(self, key: tuple[int, bool, int]) -> View:
        """One augmented view (image, label, global input, grid)."""
        i, flip, k = key
        image, label = self.items[i]
        if flip:
            image, label = image[:, ::-1], label[:, ::-1]
        image, label = np.rot90(image, k), np.rot90(label, k)
        g, p = (self.global_hw, self.patch_hw) if k % 2 == 0 else (self.global_hw[::-1], self.patch_hw[::-1])
        if key not in self._global:  # the resize of the full image is the costly part of a global step
            self._global[key] = resize_global(image, g, self.device)
        return View(image, label, self._global[key], patch_grid(image.shape[:2], p, self.cfg.min_overlap))


@dataclass
class View:
    """One training view: (H, W, 3) image, (H, W) label, (1, 3, h, w) global input, its patch grid."""

    image: np.ndarray
    label: np.ndarray
    xg: torch.Tensor
    grid: PatchGrid


def _labels(labels: list[np.ndarray], size_hw: Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.stack([resize_label(lab, size_hw) for lab in labels]).astype(np.int64)).to(device)


STAGES = ("global", "global2local", "local2global")


@dataclass(frozen=True)
class Resume:
    """Where a stage's resumable state goes: the file, the modules whose weights it holds
    (``model``, and from stage 2 on ``fixed``: the stage-1 global branch) and the training device."""

    file: resume.ResumeFile | None
    modules: dict[str, torch.nn.Module]
    device: torch.device


def _loop(what: str, iterations: int, params: list[torch.nn.Parameter], lr: float, cfg: Any,
          step: Callable[[], tuple[torch.Tensor, dict[str, float]]], rng: np.random.Generator,
          saving: Resume | None) -> list[float]:
    """Adam (L2 weight decay), poly decay per iteration, ``step()`` -> (loss, extra) each iteration.

    ``saving``: the stage's resumable state (``bench.training.resume``; phase = the stage's name),
    with ``rng``, the generator every stage draws from.
    """
    opt = loop.make_optimizer(params, "adam", lr, weight_decay=cfg.weight_decay, allowed=("adam",),
                              what="glnet.optimizer")
    stage = what.split()[-1]
    checkpoint = None if saving is None else resume.Checkpointer(
        saving.file, iterations, modules=saving.modules, optimizers={"opt": opt}, generators={"rng": rng},
        device=saving.device, phase=stage)
    with loop.Progress(what, iterations) as progress:
        return loop.run_steps(opt, progress, iterations, lambda it: loop.poly_lr(lr, it, iterations), step,
                              checkpoint)


def _subset(n: int, k: int | None, rng: np.random.Generator) -> list[int]:
    if k is None or k >= n:
        return list(range(n))
    return sorted(int(i) for i in rng.choice(n, size=k, replace=False))


def _batch(views: list[View]) -> torch.Tensor:
    if len({tuple(v.xg.shape) for v in views}) != 1:
        raise RuntimeError("glnet: a training batch mixes global sizes")  # draw() never makes one
    return torch.cat([v.xg for v in views])


def train_global(model: GLNet, data: TrainViews, cfg: Any, device: torch.device, rng: np.random.Generator,
                 ignore: int | None, saving: Resume | None = None) -> list[float]:
    """Stage 1 in place; returns the loss per iteration."""
    model.train()
    model.resnet_local.eval()

    def step() -> tuple[torch.Tensor, dict[str, float]]:
        views = [data.view(data.draw(rng)) for _ in range(cfg.batch_size)]
        out = model.global_branch(_batch(views)).out
        return focal_loss(out, _labels([v.label for v in views], out.shape[-2:], device), cfg.gamma,
                          ignore_index=ignore), {}

    params = [*model.resnet_global.parameters(), *model.fpn_global.parameters()]
    return _loop("glnet global", cfg.iterations_global, params, cfg.lr_global, cfg, step, rng, saving)


@dataclass
class PatchBatch:
    """The drawn patches of several views, concatenated: (B, 3, h, w) inputs, crops of each view's
    global maps, labels, and the segment of each view (``release``: one loss term per view)."""

    x: torch.Tensor
    crops: dict
    labels: list[np.ndarray]
    segments: list[tuple[int, list[int]]]  # (view position, patch indices)


def _patches(views: list[View], globs: list[tuple[Branch, int]], cfg: Any, rng: np.random.Generator,
             device: torch.device) -> PatchBatch:
    """Draw ``patches_per_image`` patches of each view; crops come from image ``b`` of ``glob``."""
    xs: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    crops: list[dict] = []
    segments: list[tuple[int, list[int]]] = []
    for pos, (v, (glob, b)) in enumerate(zip(views, globs)):
        idx = _subset(len(v.grid.boxes), cfg.patches_per_image, rng)
        xs.extend(v.grid.crop(v.image, i) for i in idx)
        labels.extend(v.grid.crop(v.label, i) for i in idx)
        crops.append(global_crops(glob, v.grid, idx, b))
        segments.append((pos, idx))
    return PatchBatch(to_unit(np.stack(xs), device), cat_crops(crops), labels, segments)


def _per_view(fn: Callable[[slice], torch.Tensor], segments: list) -> torch.Tensor:
    """Sum over views of ``fn(rows of that view)``: the release sums one loss per patch sub-batch."""
    parts, start = [], 0
    for _, idx in segments:
        parts.append(fn(slice(start, start + len(idx))))
        start += len(idx)
    total = parts[0]
    for part in parts[1:]:  # in order, as the release's successive backward passes accumulate
        total = total + part
    return total


def _ensemble(model: GLNet, ps3_local: torch.Tensor, ps3_global: torch.Tensor, views: list[View],
              batch: PatchBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Ensemble logits of the batch and the global ps3 crops resized to the local ones."""
    g = torch.cat([resize(crop(ps3_global, views[pos].grid, idx, pos), ps3_local.shape[-2:])
                   for pos, idx in batch.segments])
    return model.ensemble_maps(ps3_local, g), g


def train_global2local(model: GLNet, data: TrainViews, cfg: Any, device: torch.device, rng: np.random.Generator,
                       ignore: int | None, saving: Resume | None = None) -> list[float]:
    """Stage 2 in place (global branch fixed)."""
    model.train()
    model.resnet_global.eval()

    def step() -> tuple[torch.Tensor, dict[str, float]]:
        views = [data.view(data.draw(rng)) for _ in range(cfg.batch_size)]
        with torch.no_grad():  # eval-mode BN: the batch gives each image its own result
            glob = model.global_branch(_batch(views))
        batch = _patches(views, [(glob, b) for b in range(len(views))], cfg, rng, device)
        local = model.local_from_crops(batch.x, batch.crops)
        ens, g = _ensemble(model, local.ps3, glob.ps3, views, batch)
        lab = _labels(batch.labels, ens.shape[-2:], device)

        def focal(out: torch.Tensor, r: slice) -> torch.Tensor:
            return focal_loss(out[r], lab[r], cfg.gamma, ignore_index=ignore)

        mse = _per_view(lambda r: F.mse_loss(local.ps3[r], g[r]), batch.segments)
        loss = _per_view(lambda r: focal(local.out, r) + focal(ens, r), batch.segments) + cfg.lamb_fmreg * mse
        return loss, {"fmreg": float(mse.detach()) / len(views)}

    params = [*model.resnet_local.parameters(), *model.fpn_local.parameters(), *model.ensemble_conv.parameters()]
    return _loop("glnet global2local", cfg.iterations_local, params, cfg.lr_local, cfg, step, rng, saving)


AGGREGATE_BATCH = 32  # patches per local forward while caching stage 3's maps (eval mode: no effect on results)


@torch.no_grad()
def aggregate_local(model: GLNet, fixed: GLNet, view: View, sub_batch: int = AGGREGATE_BATCH) -> tuple[Branch, dict]:
    """The fixed global maps of one view and the local maps of all its patches aggregated to them."""
    glob = fixed.global_branch(view.xg)
    agg = Aggregator(glob, view.grid)
    for idx in chunks(len(view.grid.boxes), sub_batch):
        x = to_unit(np.stack([view.grid.crop(view.image, i) for i in idx]), view.xg.device)
        agg.add(model.local_branch(x, glob, view.grid, idx), idx)
    return glob, agg.result()


def train_local2global(model: GLNet, fixed: GLNet, data: TrainViews, cfg: Any, device: torch.device,
                       rng: np.random.Generator, ignore: int | None, saving: Resume | None = None) -> list[float]:
    """Stage 3 in place (local branch fixed, fed by ``fixed``, the stage-1 global branch)."""
    model.train()
    model.resnet_local.eval()
    fixed.eval()
    cache: dict[tuple[int, bool, int], tuple[Branch, dict]] = {}

    def step() -> tuple[torch.Tensor, dict[str, float]]:
        keys = [data.draw(rng) for _ in range(cfg.batch_size)]
        views = [data.view(k) for k in keys]
        for key, v in zip(keys, views):
            if key not in cache:
                cache[key] = aggregate_local(model, fixed, v)
        ext = cat_crops([cache[k][1] for k in keys])
        glob = model.global_branch(_batch(views), ext)
        loss = focal_loss(glob.out, _labels([v.label for v in views], glob.out.shape[-2:], device), cfg.gamma,
                          ignore_index=ignore)
        batch = _patches(views, [(cache[k][0], 0) for k in keys], cfg, rng, device)
        with torch.no_grad():
            ps3_local = model.local_from_crops(batch.x, batch.crops).ps3
        ens, _ = _ensemble(model, ps3_local, glob.ps3, views, batch)
        lab = _labels(batch.labels, ens.shape[-2:], device)
        loss = loss + _per_view(lambda r: focal_loss(ens[r], lab[r], cfg.gamma, ignore_index=ignore), batch.segments)
        return loss, {}

    params = [*model.resnet_global.parameters(), *model.fpn_global.parameters(), *model.ensemble_conv.parameters()]
    return _loop("glnet local2global", cfg.iterations_l2g, params, cfg.lr_l2g, cfg, step, rng, saving)


def fixed_global(model: GLNet) -> GLNet:
    """A frozen copy of ``model`` (after stage 1): the release's ``global_fixed``."""
    fixed = copy.deepcopy(model).eval()
    for p in fixed.parameters():
        p.requires_grad_(False)
    return fixed
