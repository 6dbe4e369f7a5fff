"""GLNet inference as the release's ``Evaluator.eval_test`` runs it, for one image; our code.

Inputs are scaled to [0, 1] with no mean/std (the release's ``transforms.ToTensor()`` alone). The
global image is the full image resized to ``global_hw`` with an antialiased bilinear filter
rounded to uint8 (what PIL's ``resize(BILINEAR)`` does in the release; torch's ``antialias=True``
follows PIL's filter). Per stage:

1. global only: the global logits (1/4 of the global size) upsampled ``nearest`` to the image.
2. global2local: the global branch's maps; each sub-batch of patches runs the local branch on
   them with the global maps cropped to it; ensemble logits (1/4 of the patch) upsampled
   ``nearest`` to the patch and summed into the full-resolution canvas where patches overlap.
3. local2global: a fixed global branch (stage-1 weights, ``fixed``) feeds the local branch; the
   local maps of every patch are aggregated to the global maps' sizes; the stage-3 global branch
   runs on the image with them; each patch's ensemble = ensemble_conv on [local ps3, stage-3
   global ps3 crop]; summed into the canvas as in 2.

The prediction is the argmax of the summed logits (float32 here; the release sums float64 numpy
arrays, which can only matter on exact ties). ``views=8`` adds the release's ``test=True``
averaging: the four 90-degree rotations of the image and of its horizontal flip, each run through
the whole pipeline (global and patches both from the rotated image; on a non-square image the
global and patch sizes swap with it) and its logits rotated back and summed. The release's own
``test`` path cuts its patches from the unrotated image while it rotates the global one, and its
training script hard-codes ``test = evaluation and False``, so it never ran there; we rotate both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from baselines.glnet.net import Aggregator, GLNet
from baselines.glnet.patches import PatchGrid, patch_grid


def to_unit(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) or (N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1]."""
    t = torch.as_tensor(np.ascontiguousarray(images)).to(device)
    if t.dim() == 3:
        t = t[None]
    return t.permute(0, 3, 1, 2).float().div_(255.0)


def resize_global(image: np.ndarray, size_hw: Sequence[int], device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, h, w) in [0, 1]: antialiased bilinear, rounded to uint8 (PIL's BILINEAR)."""
    t = torch.as_tensor(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float()
    if tuple(t.shape[-2:]) != tuple(size_hw):
        t = F.interpolate(t, size=tuple(size_hw), mode="bilinear", align_corners=False, antialias=True)
        t = t.round_().clamp_(0, 255)
    return t.div_(255.0)


def resize_label(label: np.ndarray, size_hw: Sequence[int]) -> np.ndarray:
    """(H, W) labels -> (h, w) by PIL's NEAREST: source index floor((i + 0.5) * H / h)."""
    H, W = label.shape
    rows = np.minimum(((np.arange(size_hw[0]) + 0.5) * H / size_hw[0]).astype(np.int64), H - 1)
    cols = np.minimum(((np.arange(size_hw[1]) + 0.5) * W / size_hw[1]).astype(np.int64), W - 1)
    return label[rows[:, None], cols[None, :]]


def chunks(n: int, size: int) -> list[list[int]]:
    return [list(range(i, min(n, i + size))) for i in range(0, n, size)]


def _paste(canvas: torch.Tensor, logits: torch.Tensor, grid: PatchGrid, index: Sequence[int]) -> None:
    """Upsample (B, C, h, w) patch logits ``nearest`` to the patch and add them into (C, H, W)."""
    ph, pw = grid.patch_hw
    up = F.interpolate(logits, size=(ph, pw), mode="nearest")
    for b, i in enumerate(index):
        top, left = grid.boxes[i]
        canvas[:, top:top + ph, left:left + pw] += up[b]


@torch.no_grad()
def predict_view(image: np.ndarray, model: GLNet, fixed: GLNet | None, stage: int, global_hw: Sequence[int],
                 patch_hw: Sequence[int], min_overlap: float, sub_batch: int, device: torch.device) -> torch.Tensor:
    """Summed logits (C, H, W) float32 of one view (see the module docstring for the stages)."""
    H, W = image.shape[:2]
    xg = resize_global(image, global_hw, device)
    if stage == 1:
        out = model.global_branch(xg).out
        return F.interpolate(out, size=(H, W), mode="nearest")[0]
    grid = patch_grid((H, W), patch_hw, min_overlap)
    batches = chunks(len(grid.boxes), sub_batch)

    def patches(idx: list[int]) -> torch.Tensor:
        return to_unit(np.stack([grid.crop(image, i) for i in idx]), device)

    canvas = torch.zeros(model.num_classes, H, W, device=device)
    if stage == 2:
        glob = model.global_branch(xg)
        for idx in batches:
            local = model.local_branch(patches(idx), glob, grid, idx)
            _paste(canvas, model.ensemble(local.ps3, glob.ps3, grid, idx)[0], grid, idx)
        return canvas
    if fixed is None:
        raise ValueError("glnet stage 3 needs the fixed stage-1 global branch")
    glob_fixed = fixed.global_branch(xg)
    agg = Aggregator(glob_fixed, grid)
    ps3 = []
    offload = device.type == "cuda"  # the release parks every patch's ps3 in host memory between the passes
    for idx in batches:
        local = model.local_branch(patches(idx), glob_fixed, grid, idx)
        agg.add(local, idx)
        ps3.append(local.ps3.cpu() if offload else local.ps3)
    glob = model.global_branch(xg, agg.result())
    for idx, fl in zip(batches, ps3):
        _paste(canvas, model.ensemble(fl.to(device), glob.ps3, grid, idx)[0], grid, idx)
    return canvas


def views(n: int) -> list[tuple[bool, int]]:
    """(flip, quarter turns) of each view: 1 = the identity, 8 = the release's ``test=True`` set."""
    if n == 1:
        return [(False, 0)]
    if n == 8:
        return [(f, k) for f in (False, True) for k in range(4)]
    raise ValueError(f"glnet views must be 1 or 8, got {n!r}")


def predict(image: np.ndarray, model: GLNet, fixed: GLNet | None, cfg: Any, global_hw: Sequence[int],
            patch_hw: Sequence[int], device: torch.device) -> torch.Tensor:
    """(H, W) int64 labels: the argmax of the logits summed over ``cfg.views`` views."""
    total: torch.Tensor | None = None
    for flip, k in views(cfg.views):
        view = np.flip(image, 1) if flip else image
        view = np.ascontiguousarray(np.rot90(view, k))  # counter-clockwise, as PIL's rotate(90)
        g = tuple(global_hw) if k % 2 == 0 else tuple(global_hw)[::-1]
        p = tuple(patch_hw) if k % 2 == 0 else tuple(patch_hw)[::-1]
        s = predict_view(view, model, fixed, cfg.stage, g, p, cfg.min_overlap, cfg.sub_batch_size, device)
        s = torch.rot90(s, -k, dims=(1, 2))
        if flip:
            s = s.flip(2)
        total = s if total is None else total + s
    assert total is not None  # views() is never empty
    return total.argmax(0)
