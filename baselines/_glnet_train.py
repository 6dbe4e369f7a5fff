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
changes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from baselines._glnet_infer import chunks, resize_global, resize_label, to_unit
from baselines._glnet_loss import focal_loss
from baselines._glnet_net import Aggregator, Branch, GLNet
from baselines._glnet_patches import patch_grid
from bench import training


class TrainViews:
    """The training images in memory and their augmented views.

    Args:
        train_set: a ``Dataset``; every sample is read once.
        cfg: the GLNet config (``hflip``, ``rotate``).
        global_hw, patch_hw: (h, w) of the global input and of a patch, unrotated.
    """

    def __init__(self, train_set: Any, cfg: Any, global_hw: tuple[int, int], patch_hw: tuple[int, int]) -> None:
        self.items = []
        for i in range(len(train_set)):
            s = train_set[i]
            self.items.append((np.asarray(s.image), np.asarray(s.label)))
        self.cfg, self.global_hw, self.patch_hw = cfg, global_hw, patch_hw

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

    def view(self, i: int, flip: bool, k: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int], tuple[int, int]]:
        """Image, label, global (h, w) and patch (h, w) of one view."""
        image, label = self.items[i]
        if flip:
            image, label = image[:, ::-1], label[:, ::-1]
        image = np.ascontiguousarray(np.rot90(image, k))
        label = np.ascontiguousarray(np.rot90(label, k))
        g, p = (self.global_hw, self.patch_hw) if k % 2 == 0 else (self.global_hw[::-1], self.patch_hw[::-1])
        return image, label, tuple(g), tuple(p)


def _labels(labels: list[np.ndarray], size_hw: tuple[int, int], device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.stack([resize_label(l, size_hw) for l in labels]).astype(np.int64)).to(device)


def _loop(what: str, iterations: int, params: list[torch.nn.Parameter], lr: float, cfg: Any,
          step: Callable[[], tuple[torch.Tensor, dict[str, float]]]) -> list[float]:
    """Adam (L2 weight decay), poly decay per iteration, ``step()`` -> (loss, extra) each iteration."""
    opt = training.make_optimizer(params, "adam", lr, weight_decay=cfg.weight_decay, allowed=("adam",),
                                  what="glnet.optimizer")
    losses = []
    with training.Progress(what, iterations) as progress:
        for it in range(iterations):
            training.set_lr(opt, training.poly_lr(lr, it, iterations))
            loss, extra = step()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            progress.step(losses[-1], **extra)
    return losses


def _subset(n: int, k: int | None, rng: np.random.Generator) -> list[int]:
    if k is None or k >= n:
        return list(range(n))
    return sorted(int(i) for i in rng.choice(n, size=k, replace=False))


def train_global(model: GLNet, data: TrainViews, cfg: Any, device: torch.device, rng: np.random.Generator,
                 ignore: int | None) -> list[float]:
    """Stage 1 in place; returns the loss per iteration."""
    model.train()
    model.resnet_local.eval()

    def step():
        drawn = [data.view(*data.draw(rng)) for _ in range(cfg.batch_size)]
        out = model.global_branch(torch.cat([resize_global(im, g, device) for im, _, g, _ in _same_shape(drawn)])).out
        return focal_loss(out, _labels([l for _, l, _, _ in drawn], out.shape[-2:], device), cfg.gamma,
                          ignore_index=ignore), {}

    params = [*model.resnet_global.parameters(), *model.fpn_global.parameters()]
    return _loop("glnet global", cfg.iterations_global, params, cfg.lr_global, cfg, step)


def _same_shape(drawn: list) -> list:
    """A batch must share one global size: views rotated by a quarter turn of a non-square image
    cannot occur (``TrainViews.draw``), so this only checks."""
    if len({d[2] for d in drawn}) != 1:
        raise RuntimeError("glnet: a training batch mixes global sizes")
    return drawn


def _local_loss(model: GLNet, image: np.ndarray, label: np.ndarray, glob: Branch, patch_hw: tuple[int, int],
                idx: list[int], cfg: Any, device: torch.device, ignore: int | None, glob_ps3: torch.Tensor,
                train_local: bool) -> tuple[torch.Tensor, float]:
    grid = patch_grid(image.shape[:2], patch_hw, cfg.min_overlap)
    x = to_unit(np.stack([grid.crop(image, i) for i in idx]), device)
    with torch.set_grad_enabled(train_local):
        local = model.local_branch(x, glob, grid, idx)
    ens, g = model.ensemble(local.ps3, glob_ps3, grid, idx)
    lab = _labels([grid.crop(label, i) for i in idx], ens.shape[-2:], device)
    loss = focal_loss(ens, lab, cfg.gamma, ignore_index=ignore)
    reg = 0.0
    if train_local:
        mse = F.mse_loss(local.ps3, g)
        loss = loss + focal_loss(local.out, lab, cfg.gamma, ignore_index=ignore) + cfg.lamb_fmreg * mse
        reg = float(mse.detach())
    return loss, reg


def train_global2local(model: GLNet, data: TrainViews, cfg: Any, device: torch.device, rng: np.random.Generator,
                       ignore: int | None) -> list[float]:
    """Stage 2 in place (global branch fixed)."""
    model.train()
    model.resnet_global.eval()

    def step():
        total, regs = 0.0, []
        for _ in range(cfg.batch_size):
            image, label, g, p = data.view(*data.draw(rng))
            with torch.no_grad():
                glob = model.global_branch(resize_global(image, g, device))
            n = len(patch_grid(image.shape[:2], p, cfg.min_overlap).boxes)
            loss, reg = _local_loss(model, image, label, glob, p, _subset(n, cfg.patches_per_image, rng), cfg,
                                    device, ignore, glob.ps3, train_local=True)
            total, regs = total + loss, regs + [reg]
        return total, {"fmreg": float(np.mean(regs))}

    params = [*model.resnet_local.parameters(), *model.fpn_local.parameters(), *model.ensemble_conv.parameters()]
    return _loop("glnet global2local", cfg.iterations_local, params, cfg.lr_local, cfg, step)


@torch.no_grad()
def aggregate_local(model: GLNet, fixed: GLNet, image: np.ndarray, global_hw: tuple[int, int],
                    patch_hw: tuple[int, int], cfg: Any, device: torch.device) -> tuple[Branch, dict]:
    """The fixed global maps of one view and the local maps of all its patches aggregated to them."""
    glob = fixed.global_branch(resize_global(image, global_hw, device))
    grid = patch_grid(image.shape[:2], patch_hw, cfg.min_overlap)
    agg = Aggregator(glob, grid)
    for idx in chunks(len(grid.boxes), cfg.sub_batch_size):
        agg.add(model.local_branch(to_unit(np.stack([grid.crop(image, i) for i in idx]), device), glob, grid, idx), idx)
    return glob, agg.result()


def train_local2global(model: GLNet, fixed: GLNet, data: TrainViews, cfg: Any, device: torch.device,
                       rng: np.random.Generator, ignore: int | None) -> list[float]:
    """Stage 3 in place (local branch fixed, fed by ``fixed``, the stage-1 global branch)."""
    model.train()
    model.resnet_local.eval()
    fixed.eval()
    cache: dict[tuple[int, bool, int], tuple[Branch, dict]] = {}

    def step():
        keys = [data.draw(rng) for _ in range(cfg.batch_size)]
        drawn = _same_shape([data.view(*k) for k in keys])
        for key, (image, _, g, p) in zip(keys, drawn):
            if key not in cache:
                cache[key] = aggregate_local(model, fixed, image, g, p, cfg, device)
        ext = {name: [torch.cat([cache[k][1][name][j] for k in keys]) for j in range(len(cache[keys[0]][1][name]))]
               for name in cache[keys[0]][1]}
        xg = torch.cat([resize_global(im, g, device) for im, _, g, _ in drawn])
        glob = model.global_branch(xg, ext)
        total = focal_loss(glob.out, _labels([l for _, l, _, _ in drawn], glob.out.shape[-2:], device), cfg.gamma,
                           ignore_index=ignore)
        for b, (key, (image, label, g, p)) in enumerate(zip(keys, drawn)):
            n = len(patch_grid(image.shape[:2], p, cfg.min_overlap).boxes)
            loss, _ = _local_loss(model, image, label, cache[key][0], p, _subset(n, cfg.patches_per_image, rng), cfg,
                                  device, ignore, glob.ps3[b:b + 1], train_local=False)
            total = total + loss
        return total, {}

    params = [*model.resnet_global.parameters(), *model.fpn_global.parameters(), *model.ensemble_conv.parameters()]
    return _loop("glnet local2global", cfg.iterations_l2g, params, cfg.lr_l2g, cfg, step)


def fixed_global(model: GLNet) -> GLNet:
    """A frozen copy of ``model`` (after stage 1): the release's ``global_fixed``."""
    fixed = copy.deepcopy(model).eval()
    for p in fixed.parameters():
        p.requires_grad_(False)
    return fixed
