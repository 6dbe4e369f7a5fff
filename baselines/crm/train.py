"""CRM training: perturbed ground-truth masks, every crop pixel queried, the four-term loss (our own
implementation of the behaviour of the release's ``train.py``, ``dataset/online_dataset_crm.py``,
``util/metrics_compute_crm.py`` and ``models/sobel_op.py``).

Samples: a random crop (padded if needed) with a random horizontal flip, colour jitter
(brightness 0.2, contrast 0.05, saturation 0.05) and 10 % greyscale on the image; the target is
one class of the crop as a binary mask (multi-class data: a class drawn uniformly among those
present; ignored pixels are background), the input mask that target perturbed by
``baselines.common.perturb.modify_boundary`` to an IoU drawn from U[iou_min, iou_max] (the release:
U[0.8, 1.0]). The queries are all pixel centres of the crop (training never queries another
resolution). Harness addition, stated in the config: a random rescale of the image before the
crop (``scale_min..scale_max``), so the network also sees the reduced views of the early turns.

Loss (README weights; the argparse defaults differ and are not used)::

    w_ce  * BCE-with-logits(logit, gt > 0.5)          1.0
    w_l1  * L1(p, gt)                                 0.5
    w_l2  * MSE(p, gt)                                0.5
    w_grad * L1(Sobel(gt), Sobel(p))                  2.0

Sobel: a 3x3 average pool (stride 1, zero padding counted), then the x kernel
``[[1, 0, -1], [2, 0, -2], [1, 0, -1]] / 4`` and its transpose (zero padding), magnitude
``sqrt(gx^2 + gy^2 + 1e-4)``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from baselines.common.perturb import modify_boundary
from baselines.crm.net import CRMNet, grid_cells, grid_coords
from bench.core.interface import IMAGENET_MEAN, IMAGENET_STD
from bench.training import loop, resume

SOBEL_EPS = 1e-4


def sobel(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) -> (N, 1, H, W): Sobel magnitude of the 3x3 box-smoothed map (module docstring)."""
    kx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], device=x.device) / 4
    x = F.avg_pool2d(x, 3, stride=1, padding=1)
    g = F.conv2d(x, torch.stack([kx, kx.t()])[:, None], padding=1)
    return torch.sqrt(g[:, :1] ** 2 + g[:, 1:] ** 2 + SOBEL_EPS)


def crm_loss(logits: torch.Tensor, gt: torch.Tensor, w_ce: float = 1.0, w_l1: float = 0.5, w_l2: float = 0.5,
             w_grad: float = 2.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The four-term loss of the module docstring.

    Args:
        logits: (N, 1, H, W) float32 logits (the decoder's output on the crop's grid).
        gt: (N, 1, H, W) float32 target in [0, 1].
        w_ce, w_l1, w_l2, w_grad: the terms' weights.

    Returns:
        ``(loss, parts)``: the weighted scalar sum; ``parts`` maps ``ce``, ``l1``, ``l2``, ``grad``
        to the unweighted terms (floats).
    """
    prob = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, (gt > 0.5).float())
    l1 = F.l1_loss(prob, gt)
    l2 = F.mse_loss(prob, gt)
    grad = F.l1_loss(sobel(gt), sobel(prob))
    total = w_ce * ce + w_l1 * l1 + w_l2 * l2 + w_grad * grad
    return total, {"ce": float(ce.detach()), "l1": float(l1.detach()), "l2": float(l2.detach()),
                   "grad": float(grad.detach())}


def _jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness x U[0.8, 1.2], contrast x U[0.95, 1.05], saturation x U[0.95, 1.05] (in that
    order), then greyscale with probability 0.1; (H, W, 3) uint8 -> float32 in [0, 1]."""
    x = image.astype(np.float32) / 255.0
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    x = np.clip(x * rng.uniform(0.8, 1.2), 0, 1)
    mean = float((x @ weights).mean())
    x = np.clip((x - mean) * rng.uniform(0.95, 1.05) + mean, 0, 1)
    grey = (x @ weights)[..., None]
    x = np.clip((x - grey) * rng.uniform(0.95, 1.05) + grey, 0, 1)
    if rng.random() < 0.1:
        x = np.repeat((x @ weights)[..., None], 3, axis=2)
    return x


def make_sample(image: np.ndarray, label: np.ndarray, cfg: Any, ignore_index: int | None,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training triple from a labelled image.

    Args:
        image: (H, W, 3) uint8 RGB. label: (H, W) uint8 class ids.

    Returns:
        ``(image, seg, gt)``: (3, h, w) float32 normalised image, (1, h, w) float32 perturbed mask
        in [-1, 1], (1, h, w) float32 target in {0, 1}; ``(w, h) = cfg.crop_size``.
    """
    cw, ch = (int(v) for v in cfg.crop_size)
    scale = rng.uniform(cfg.scale_min, cfg.scale_max)
    H, W = label.shape
    size = (max(1, round(W * scale)), max(1, round(H * scale)))
    if size != (W, H):
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    fill = 255 if ignore_index is None else ignore_index
    ph, pw = max(0, ch - label.shape[0]), max(0, cw - label.shape[1])
    if ph or pw:  # RandomCrop(pad_if_needed) pads with 0; the padded label is ignored
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
        label = np.pad(label, ((0, ph), (0, pw)), constant_values=fill)
    y = int(rng.integers(0, label.shape[0] - ch + 1))
    x = int(rng.integers(0, label.shape[1] - cw + 1))
    image, label = image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]
    if rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    classes = np.unique(label)
    classes = classes[classes != ignore_index] if ignore_index is not None else classes
    c = int(rng.choice(classes)) if classes.size else -1
    gt = (label == c).astype(np.uint8) * 255
    seg = modify_boundary(gt, float(rng.uniform(cfg.iou_min, cfg.iou_max)), rng)
    mean, std = np.array(IMAGENET_MEAN, np.float32), np.array(IMAGENET_STD, np.float32)
    normed = (_jitter(np.ascontiguousarray(image), rng) - mean) / std
    return (normed.transpose(2, 0, 1).astype(np.float32), (seg[None] / 255.0 * 2 - 1).astype(np.float32),
            (gt[None] / 255.0).astype(np.float32))


def make_batch(samples: list[tuple[np.ndarray, np.ndarray]], cfg: Any, ignore_index: int | None,
               rng: np.random.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``cfg.batch_size`` triples from randomly chosen samples, stacked on ``device``."""
    picks = rng.choice(len(samples), size=cfg.batch_size, replace=len(samples) < cfg.batch_size)
    parts = [make_sample(*samples[int(i)], cfg, ignore_index, rng) for i in picks]
    im, seg, gt = (torch.from_numpy(np.stack(p)).to(device) for p in zip(*parts))
    return im, seg, gt


def grid_logits(net: CRMNet, im: torch.Tensor, seg: torch.Tensor, chunk: int) -> torch.Tensor:
    """Logits of every pixel of the crop, features computed once: (N, 1, h, w)."""
    feat = net.features(im, seg)
    h, w = seg.shape[-2:]
    coord, cell = grid_coords(h, w, im.device), grid_cells(h, w, None, im.device)
    projected = net.project(feat)
    parts = [net.decode(feat, coord[i:i + chunk], cell[i:i + chunk], projected) for i in range(0, h * w, chunk)]
    return torch.cat(parts, 1).reshape(im.shape[0], 1, h, w)


def train_net(net: CRMNet, samples: list[tuple[np.ndarray, np.ndarray]], cfg: Any, ignore_index: int | None,
              device: torch.device, resume_file: resume.ResumeFile | None = None) -> list[float]:
    """Train ``net`` in place for ``cfg.iterations`` steps; returns each step's loss.

    Samples are drawn in this process (the target class and the perturbation depend on the crop's
    pixels, so they cannot be planned ahead for worker processes).

    Args:
        samples: (image (H, W, 3) uint8, label (H, W) uint8) pairs.
        resume_file: where the resumable state is written and read (``bench.training.resume``).
    """
    rng = np.random.default_rng(cfg.seed)
    opt = loop.make_optimizer(net.parameters(), cfg.optimizer, cfg.lr, weight_decay=cfg.weight_decay,
                              allowed=("adam", "adamw", "sgd"), what="crm.optimizer")
    net.train()

    def step() -> tuple[torch.Tensor, dict[str, float]]:
        im, seg, gt = make_batch(samples, cfg, ignore_index, rng, device)
        return crm_loss(grid_logits(net, im, seg, cfg.chunk), gt, cfg.w_ce, cfg.w_l1, cfg.w_l2, cfg.w_grad)

    checkpoint = resume.Checkpointer(resume_file, cfg.iterations, modules={"net": net}, optimizers={"opt": opt},
                                     generators={"rng": rng}, device=device)
    with loop.Progress("crm", cfg.iterations) as progress:
        return loop.run_steps(opt, progress, cfg.iterations,
                              lambda it: loop.multistep_lr(cfg.lr, it, cfg.milestones, cfg.gamma), step, checkpoint)
