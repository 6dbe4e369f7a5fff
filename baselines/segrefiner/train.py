"""SegRefiner training: object crops and full-resolution patches, BCE + 5 x texture loss.

Our own code (Apache-2.0), written from ``refinement_track.md`` §4.3 (SegRefiner @ 53419a2,
``segrefiner_base.py``, ``loading.py``, ``textrue_l1_loss.py``, ``segrefiner_hr.py``).

Samples (HR-SegRefiner's ``LoadPatchData``; one class of a labelled image is the object):
    * the object crop: the class's bounding box widened by random margins (each side drawn
      uniformly between the box and the image border), resized to ``model_size`` squared;
    * the patch: a random ``model_size``-pixel full-resolution window holding both labels (up to
      ``patch_tries`` draws; a sample without one contributes only its object crop).
    Images are resized bilinearly, masks by nearest; each view is flipped with probability 0.5.
    Each view's coarse mask is, with probability ``offline_prob``, the "offline" coarse mask and
    otherwise the GT perturbed by CascadePSP's boundary modification
    (``baselines.common.perturb.modify_boundary``, as the release's ``loading.py``) towards an IoU
    of ``iou_min`` (drawn from ``U[iou_min, iou_max)`` when ``iou_max > iou_min``), on a region of
    about 256 px around the view (:func:`_perturbed`: the release perturbs its 256-px patches). The release's offline
    masks are perturbed GT and "expanded" (filled outer contours, then perturbed) masks of
    ThinObject-5K/DIS; ours are the backbone's own coarse prediction of the class (its
    probabilities upsampled bilinearly, argmax == class), i.e. the masks the method refines at
    test time (a harness choice, stated in the docs).

Diffusion: t uniform in 0..5, ``x_t`` from :func:`~baselines.segrefiner.diffusion.q_sample`, the
UNet sees ``image ⊕ x_t`` and t and predicts the clean mask's logits.

Loss: ``BCE(logit, gt) + 5 * L1(sobel(sigmoid(logit)), sobel(gt))``, where ``sobel`` is a 3x3 box
smoothing (zero padding) then the Sobel magnitude with kernels / 4 and eps 1e-4 (the release's
``TextureL1Loss``). AdamW (release: lr 4e-4, weight decay 0, x0.5 steps at 20k and 35k of 40k,
one sample per GPU on 8 GPUs).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from baselines.common.perturb import modify_boundary
from baselines.segrefiner.diffusion import q_sample, schedule
from bench.core.interface import IMAGENET_MEAN, IMAGENET_STD
from bench.training import loop, resume

TEXTURE_WEIGHT = 5.0
PERTURB_SIDE = 256  # the release's model size: its patches are perturbed at 256 px
SOBEL_EPS = 1e-4


def sobel(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) -> (N, 1, H, W) float32: Sobel magnitude of the 3x3 box-smoothed map
    (zero padding, kernels / 4, ``sqrt(gx^2 + gy^2 + 1e-4)``)."""
    kx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], device=x.device) / 4
    ky = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]], device=x.device) / 4
    g = F.conv2d(F.avg_pool2d(x, 3, stride=1, padding=1), torch.stack([kx, ky])[:, None], padding=1)
    return torch.sqrt(g[:, :1] ** 2 + g[:, 1:] ** 2 + SOBEL_EPS)


def segrefiner_loss(logits: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """``BCE + 5 * texture``: (N, 1, H, W) float32 logits and 0/1 targets -> (scalar, parts)."""
    bce = F.binary_cross_entropy_with_logits(logits, gt)
    texture = F.l1_loss(sobel(torch.sigmoid(logits)), sobel(gt))
    return bce + TEXTURE_WEIGHT * texture, {"bce": float(bce.detach()), "texture": float(texture.detach())}


def _view(image: np.ndarray, gt: np.ndarray, offline: np.ndarray, box: tuple[int, int, int, int], size: int,
          flip: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One view resized to ``size`` squared: (3, S, S) normalised image, (S, S) bool target, (S, S)
    bool offline coarse mask (bilinear for the image, nearest for the masks)."""
    x1, y1, x2, y2 = box
    im = cv2.resize(np.ascontiguousarray(image[y1:y2, x1:x2]), (size, size), interpolation=cv2.INTER_LINEAR)
    g = cv2.resize(gt[y1:y2, x1:x2].astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0
    c = cv2.resize(offline[y1:y2, x1:x2].astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0
    if flip:
        im, g, c = im[:, ::-1], g[:, ::-1], c[:, ::-1]
    mean, std = np.array(IMAGENET_MEAN, np.float32), np.array(IMAGENET_STD, np.float32)
    im = ((im.astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1)
    return np.ascontiguousarray(im), np.ascontiguousarray(g), np.ascontiguousarray(c)


def _margin(lo: int, hi: int, end: int, rng: np.random.Generator) -> tuple[int, int]:
    """The release's random object margins: start uniform in [0, lo), end uniform in [hi, end)."""
    a = 0 if lo == 0 else int(rng.integers(0, lo))
    b = end if hi == end else int(rng.integers(hi, end))
    return a, max(b, a + 1)


def make_views(image: np.ndarray, label: np.ndarray, offline: np.ndarray, cfg: Any, ignore_index: int | None,
               rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The object crop and (when found) the full-resolution patch of one random class.

    Args:
        image: (H, W, 3) uint8 RGB.
        label: (H, W) integer labels.
        offline: (H, W) integer coarse labels (the backbone's, upsampled).
        ignore_index: label ignored (counted as background of the binary target).

    Returns:
        One or two ``(image (3, S, S), gt (1, S, S), coarse (1, S, S))`` float32 triples,
        ``S = cfg.model_size``.
    """
    classes = np.unique(label)
    if ignore_index is not None:
        classes = classes[classes != ignore_index]
    if classes.size == 0:
        classes = np.unique(offline)
    c = int(rng.choice(classes))
    gt, off = label == c, offline == c
    H, W = gt.shape
    size = int(cfg.model_size)
    boxes = []
    ys, xs = np.nonzero(gt) if gt.any() else np.nonzero(np.ones_like(gt))
    x1, x2 = _margin(int(xs.min()), int(xs.max()) + 1, W, rng)
    y1, y2 = _margin(int(ys.min()), int(ys.max()) + 1, H, rng)
    boxes.append((x1, y1, x2, y2))
    ph, pw = min(size, H), min(size, W)
    for _ in range(int(cfg.patch_tries)):
        py, px = int(rng.integers(0, H - ph + 1)), int(rng.integers(0, W - pw + 1))
        part = gt[py:py + ph, px:px + pw]
        if part.any() and not part.all():
            boxes.append((px, py, px + pw, py + ph))
            break
    views = []
    for box in boxes:
        flip = bool(rng.random() < 0.5)
        if rng.random() < cfg.offline_prob:
            coarse_full = off
        else:  # CascadePSP's boundary modification, as the release's loading.py
            iou = float(rng.uniform(cfg.iou_min, cfg.iou_max)) if cfg.iou_max > cfg.iou_min else float(cfg.iou_min)
            coarse_full = _perturbed(gt, box, iou, rng)
        im, g, coarse = _view(image, gt, coarse_full, box, size, flip)
        views.append((im, g[None].astype(np.float32), coarse[None].astype(np.float32)))
    return views


def _perturbed(gt: np.ndarray, box: tuple[int, int, int, int], iou: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W) bool: ``gt`` with the region around ``box`` replaced by its boundary modification.

    The modification works in pixels (3..9-px morphology, 10 % of the contour vertices), so its
    strength depends on the resolution it is applied at. The release applies it to 256-px patches
    and to whole high-resolution images; here the region is the box widened to at least
    :data:`PERTURB_SIDE` per side at native resolution (the patch view: a 256-px window, as the
    release's patches) and, when larger, area-reduced to that longer side first (object crops),
    so a 64-px view is not perturbed at 64 px.
    """
    H, W = gt.shape
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    half_w, half_h = max(x2 - x1, PERTURB_SIDE) // 2, max(y2 - y1, PERTURB_SIDE) // 2
    rx1, ry1 = max(0, min(cx - half_w, x1)), max(0, min(cy - half_h, y1))
    rx2, ry2 = min(W, max(cx + half_w, x2)), min(H, max(cy + half_h, y2))
    region = gt[ry1:ry2, rx1:rx2].astype(np.uint8) * 255
    h, w = region.shape
    scale = min(1.0, PERTURB_SIDE / max(h, w))
    small = region if scale == 1.0 else cv2.resize(region, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                   interpolation=cv2.INTER_NEAREST)
    out = modify_boundary(small, iou, rng)
    if scale != 1.0:
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_NEAREST)
    full = gt.copy()
    full[ry1:ry2, rx1:rx2] = out > 127
    return full


def make_batch(samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]], cfg: Any, ignore_index: int | None,
               rng: np.random.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Views of ``cfg.batch_size`` random samples (each one or two views), stacked on ``device``:
    images (N, 3, S, S), targets (N, 1, S, S), coarse masks (N, 1, S, S), float32."""
    picks = rng.choice(len(samples), size=cfg.batch_size, replace=len(samples) < cfg.batch_size)
    views = [v for i in picks for v in make_views(*samples[int(i)], cfg, ignore_index, rng)]
    return tuple(torch.from_numpy(np.stack(p)).to(device) for p in zip(*views))  # type: ignore[return-value]


def train_unet(net: torch.nn.Module, samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]], cfg: Any,
               ignore_index: int | None, device: torch.device,
               resume_file: resume.ResumeFile | None = None) -> list[float]:
    """Train ``net`` in place for ``cfg.iterations`` steps; returns each step's loss.

    Args:
        samples: (image (H, W, 3) uint8, label (H, W), offline coarse labels (H, W)) triples.
        resume_file: where the resumable state is written and read (``bench.training.resume``).
    """
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(cfg.seed))
    alpha, _ = schedule(cfg.steps, cfg.alpha_start, cfg.alpha_stop)
    opt = loop.make_optimizer(net.parameters(), cfg.optimizer, cfg.lr, weight_decay=cfg.weight_decay,
                              allowed=("adamw", "adam"), what="segrefiner.optimizer")
    net.train()

    def step() -> tuple[torch.Tensor, dict[str, float]]:
        im, gt, coarse = make_batch(samples, cfg, ignore_index, rng, device)
        t = torch.as_tensor(rng.integers(0, cfg.steps, size=im.shape[0]), dtype=torch.int64, device=device)
        x_t = q_sample(gt, coarse, t, alpha, gen)
        return segrefiner_loss(net(torch.cat([im, x_t], 1), t), gt)

    checkpoint = resume.Checkpointer(resume_file, cfg.iterations, modules={"net": net}, optimizers={"opt": opt},
                                     generators={"rng": rng, "gen": gen}, device=device)
    with loop.Progress("segrefiner", cfg.iterations) as progress:
        return loop.run_steps(opt, progress, cfg.iterations,
                              lambda it: loop.multistep_lr(cfg.lr, it, cfg.milestones, cfg.gamma), step, checkpoint)
