"""CascadePSP inference: the global step and the local step (our own implementation).

As the release's ``process_high_res_im`` (``segmentation_refinement/eval_helper.py``) runs them:

Global step
    Image and mask resized so that the longer side is ``L`` (area interpolation when shrinking;
    bicubic image / bilinear mask when growing), one full three-iteration forward, padded to a
    multiple of 8 (:func:`padded_forward`). Kept: ``pred_224`` (stride 1) and ``pred_56_2``
    (the last iteration's stride-4 output).

Local step
    At the full size, the global ``pred_224`` upsampled (bilinear) and binarised at 0.5 becomes
    the mask and the global ``pred_56_2`` upsampled the stride-8 intermediate input (both in
    [-1, 1]); the forward skips the first iteration. ``L x L`` crops with step ``L // 2 - 2 *
    padding`` (:func:`local_crops`; the last crop of a row/column is shifted to end at the border;
    duplicates dropped). A crop whose binarised mask covers more than ``high`` or less than
    ``low`` of it is skipped (nothing to refine). Each crop's ``pred_224`` is pasted without a
    ``padding``-pixel margin on every side that is not at the image border; overlaps are averaged;
    pixels no crop covered keep the binarised global output.

Every tensor here is float32 and batched over masks of one image (N = masks): the masks of the
classes of one image share the image, crop positions and skip rule (per mask), so one call
refines them all. The result per mask equals refining it alone (up to float rounding of batched
convolutions). The method calls it with groups of ``mask_batch_size`` masks, its declared batch
setting (1 by default, as the release refines one mask per call; ``bench.core.batch``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

KEPT = ("pred_224", "pred_28_3", "pred_56_2")


def resize_max_side(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Resize (N, C, H, W) by ``size / max(H, W)`` (``F.interpolate`` with that scale factor, so
    the output is floor(H * ratio) x floor(W * ratio), as the release)."""
    ratio = size / max(x.shape[-2:])
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(x, scale_factor=ratio, mode=mode, align_corners=False)
    return F.interpolate(x, scale_factor=ratio, mode=mode)


def padded_forward(model: torch.nn.Module, im: torch.Tensor, seg: torch.Tensor, inter_s8: torch.Tensor | None = None,
                   inter_s4: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``model`` on inputs padded at the bottom/right to a multiple of 8 (image 0, masks -1).

    As the release: when either side is not a multiple of 8, *both* sides grow to
    ``(side // 8 + 1) * 8`` (a side already a multiple of 8 gains 8 pixels).

    Args:
        im: (N, 3, h, w) normalised image; seg, inter_s8, inter_s4: (N, 1, h, w) in [-1, 1].

    Returns:
        ``pred_224``, ``pred_28_3``, ``pred_56_2``: (N, 1, h, w) probabilities, cropped back.
    """
    h, w = seg.shape[-2:]
    if h % 8 or w % 8:
        H, W = (h // 8 + 1) * 8, (w // 8 + 1) * 8

        def pad(t: torch.Tensor, value: float) -> torch.Tensor:
            return F.pad(t, (0, W - w, 0, H - h), value=value)

        im, seg = pad(im, 0.0), pad(seg, -1.0)
        inter_s8 = None if inter_s8 is None else pad(inter_s8, -1.0)
        inter_s4 = None if inter_s4 is None else pad(inter_s4, -1.0)
    out = model(im, seg, inter_s8, inter_s4)
    return {k: out[k][:, :, :h, :w] for k in KEPT}


@dataclass(frozen=True)
class Crop:
    """One local-step crop (rows ``y0:y1``, columns ``x0:x1`` of the full-size image) and where its
    prediction is pasted: ``paste`` = (y0, y1, x0, x1) in the image, ``src`` = (y0, y1, x0, x1) in
    the crop's prediction (``src`` may run past a crop smaller than ``L``; slicing clips it)."""

    y0: int
    y1: int
    x0: int
    x1: int
    paste: tuple[int, int, int, int]
    src: tuple[int, int, int, int]


def local_crops(h: int, w: int, L: int, padding: int = 16) -> list[Crop]:
    """The local step's crops of an (h, w) image, in the release's order (columns outer).

    Step ``L // 2 - 2 * padding``; ``range(side // step + 1)`` positions per side; a crop running
    past the border is shifted back to end there (and clamped at 0 when the side is below
    ``L``); a crop whose top-left corner was already seen is dropped.

    Raises:
        ValueError: the step is not positive (``L`` must exceed ``4 * padding + 1``).
    """
    step = L // 2 - 2 * padding
    if step <= 0:
        raise ValueError(f"cascadepsp: L={L} with padding={padding} gives step {step}; need L // 2 > 2 * padding")
    crops, seen = [], set()
    for xi in range(w // step + 1):
        for yi in range(h // step + 1):
            y0, x0 = yi * step, xi * step
            y1, x1 = y0 + L, x0 + L
            if y1 > h:
                y1, y0 = h, h - L
            if x1 > w:
                x1, x0 = w, w - L
            y0, x0 = max(0, y0), max(0, x0)
            if (y0, x0) in seen:
                continue
            seen.add((y0, x0))
            py0, py1, px0, px1 = y0, y1, x0, x1
            sy0, sy1, sx0, sx1 = 0, L, 0, L
            if x0 != 0:
                px0, sx0 = px0 + padding, sx0 + padding
            if y0 != 0:
                py0, sy0 = py0 + padding, sy0 + padding
            if x1 != w:
                px1, sx1 = px1 - padding, sx1 - padding
            if y1 != h:
                py1, sy1 = py1 - padding, sy1 - padding
            crops.append(Crop(y0, y1, x0, x1, (py0, py1, px0, px1), (sy0, sy1, sx0, sx1)))
    return crops


def _to_global(im: torch.Tensor, seg: torch.Tensor, L: int) -> tuple[torch.Tensor, torch.Tensor]:
    side = max(seg.shape[-2:])
    if side > L:
        return resize_max_side(im, L, "area"), resize_max_side(seg, L, "area")
    if side < L:
        return resize_max_side(im, L, "bicubic"), resize_max_side(seg, L, "bilinear")
    return im, seg


def global_step(model: torch.nn.Module, im: torch.Tensor, seg: torch.Tensor, L: int) -> dict[str, torch.Tensor]:
    """One forward with the longer side at ``L``.

    Args:
        im: (1 or N, 3, H, W) normalised image; seg: (N, 1, H, W) masks in [-1, 1].

    Returns:
        ``pred_224`` and ``pred_56_2`` (N, 1, h', w') at the global size.
    """
    small_im, small_seg = _to_global(im, seg, L)
    out = padded_forward(model, small_im.expand(seg.shape[0], -1, -1, -1), small_seg)
    return {"pred_224": out["pred_224"], "pred_56_2": out["pred_56_2"]}


def local_step(model: torch.nn.Module, im: torch.Tensor, pred_224: torch.Tensor, pred_56: torch.Tensor, L: int,
               padding: int = 16, low: float = 0.1, high: float = 0.9) -> torch.Tensor:
    """Refine crops at full size from the global outputs; returns (N, 1, H, W) probabilities.

    Args:
        im: (1, 3, H, W) normalised image.
        pred_224, pred_56: (N, 1, h', w') global ``pred_224`` and ``pred_56_2``.
        L, padding, low, high: crop size, paste margin and the skip thresholds (0.1, 0.9).
    """
    # the release resizes to the same size with area interpolation here, an identity
    H, W = im.shape[-2:]
    seg = (F.interpolate(pred_224, size=(H, W), mode="bilinear", align_corners=False) > 0.5).float() * 2 - 1
    inter = F.interpolate(pred_56, size=(H, W), mode="bilinear", align_corners=False) * 2 - 1
    total = torch.zeros_like(seg)
    weight = torch.zeros_like(seg)
    for c in local_crops(H, W, L, padding):
        part = seg[:, :, c.y0:c.y1, c.x0:c.x1]
        cover = (part > 0).float().mean(dim=(1, 2, 3))
        todo = torch.nonzero((cover <= high) & (cover >= low)).flatten()
        if todo.numel() == 0:
            continue
        crop_im = im[:, :, c.y0:c.y1, c.x0:c.x1].expand(todo.numel(), -1, -1, -1)
        pred = padded_forward(model, crop_im, part[todo], inter[todo, :, c.y0:c.y1, c.x0:c.x1])["pred_224"]
        py0, py1, px0, px1 = c.paste
        sy0, sy1, sx0, sx1 = c.src
        total[todo, :, py0:py1, px0:px1] += pred[:, :, sy0:sy1, sx0:sx1]
        weight[todo, :, py0:py1, px0:px1] += 1
    return torch.where(weight == 0, seg / 2 + 0.5, total / weight.clamp(min=1))


def refine_masks(model: torch.nn.Module, im: torch.Tensor, seg: torch.Tensor, L: int, local: bool = True,
                 padding: int = 16, low: float = 0.1, high: float = 0.9) -> torch.Tensor:
    """Refine N binary masks of one image: the global step, then (``local``) the local step.

    Args:
        model: a ``RefinementModule`` in eval mode.
        im: (1, 3, H, W) float32 ImageNet-normalised image.
        seg: (N, 1, H, W) float32 masks in [-1, 1] (``2 * mask - 1``).
        L: the global step's longer side and the local step's crop size (release: 900).
        local: False runs the global step only (the release's ``fast`` mode).

    Returns:
        (N, 1, H, W) float32 foreground probabilities.
    """
    H, W = seg.shape[-2:]
    if not local:
        return _single_pass(model, im, seg, L)
    out = global_step(model, im, seg, L)
    pred = local_step(model, im, out["pred_224"], out["pred_56_2"], L, padding, low, high)
    # the release's last resize: bilinear, align_corners=True, to the same size (an identity)
    return F.interpolate(pred, size=(H, W), mode="bilinear", align_corners=True)


def _single_pass(model: torch.nn.Module, im: torch.Tensor, seg: torch.Tensor, L: int) -> torch.Tensor:
    """The release's ``process_im_single_pass``: the global step only, resized back (area when
    the input was grown, bilinear with align_corners=True when it was shrunk)."""
    H, W = seg.shape[-2:]
    pred = global_step(model, im, seg, L)["pred_224"]
    side = max(H, W)
    if side < L:
        return F.interpolate(pred, size=(H, W), mode="area")
    if side > L:
        return F.interpolate(pred, size=(H, W), mode="bilinear", align_corners=True)
    return pred
