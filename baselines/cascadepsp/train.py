"""CascadePSP training: perturbed ground-truth masks, the losses on the three outputs (our own code).

Samples (release: ``dataset/online_dataset.py``): a random crop with a random horizontal flip,
colour jitter (brightness 0.2, contrast 0.05, saturation 0.05) and 10 % greyscale on the image;
the target is one class of the crop as a binary mask (multi-class data: a class drawn uniformly
among those present in the crop), the input mask that target perturbed by
``baselines.common.perturb.modify_boundary`` to an IoU drawn from U[0.8, 1). Harness additions, stated
in the config: a random rescale of the image before the crop (``scale_min..scale_max``), so the
network sees both the global step's reduced images and the local step's full-size crops; ignored
pixels count as background of the binary target.

Losses (release: ``util/metrics_compute.py``, weights of ``util/hyper_para.py``), per output:
binary cross-entropy on the logits, L1 and L2 on the probabilities, against the target::

    stride 8 (out_28, out_28_2, out_28_3)   CE x1
    stride 4 (out_56, out_56_2)             CE x0.5 + (L1 + L2) x0.25
    stride 1 (out_224)                      L1 + L2 + 5 x gradient loss

The gradient loss is the L1 distance between Sobel magnitudes of the 3x3-box-smoothed target and
prediction (``sqrt(gx^2 + gy^2 + 1e-4)``, kernels /4; release ``models/sobel_op.py``).
Optimiser Adam with weight decay and step decay (release: lr 2.25e-4, wd 1e-4, x0.1 at 22.5k and
37.5k of 45k iterations, batch 12, 224x224, from ImageNet weights; here from scratch).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from baselines.common.perturb import modify_boundary
from bench.training import loop, resume
from bench.core.interface import IMAGENET_MEAN, IMAGENET_STD

# (output key, CE weight, L1 weight, L2 weight), release order s_0..s_5
LOSS_WEIGHTS = (
    ("out_224", 0.0, 1.0, 1.0),
    ("out_28", 1.0, 0.0, 0.0),
    ("out_56", 0.5, 0.25, 0.25),
    ("out_28_2", 1.0, 0.0, 0.0),
    ("out_28_3", 1.0, 0.0, 0.0),
    ("out_56_2", 0.5, 0.25, 0.25),
)
GRAD_WEIGHT = 5.0
SOBEL_EPS = 1e-4


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) -> (N, 1, H, W): Sobel gradient magnitude of the 3x3 box-smoothed map
    (zero padding, kernels divided by 4, ``sqrt(gx^2 + gy^2 + 1e-4)``)."""
    kx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], device=x.device) / 4
    kernels = torch.stack([kx, kx.t()])[:, None]  # kx.t() is the release's y kernel
    x = F.avg_pool2d(x, 3, stride=1, padding=1)
    g = F.conv2d(x, kernels, padding=1)
    return torch.sqrt(g[:, :1] ** 2 + g[:, 1:] ** 2 + SOBEL_EPS)


def cascade_loss(out: dict[str, torch.Tensor], gt: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """The release's total loss.

    Args:
        out: the refinement module's outputs (all six ``out_*`` logits, (N, 1, H, W)).
        gt: (N, 1, H, W) float32 target in {0, 1}.

    Returns:
        ``(loss, parts)``: scalar loss; ``parts`` maps ``ce``, ``l1l2``, ``grad`` to floats.
    """
    target = (gt > 0.5).float()
    total = gt.new_zeros(())
    ce_sum = l_sum = 0.0
    for key, w_ce, w_l1, w_l2 in LOSS_WEIGHTS:
        logits = out[key]
        prob = torch.sigmoid(logits)
        ce = F.binary_cross_entropy_with_logits(logits, target)
        l1, l2 = F.l1_loss(prob, gt), F.mse_loss(prob, gt)
        total = total + w_ce * ce + w_l1 * l1 + w_l2 * l2
        ce_sum += float(w_ce * ce.detach())
        l_sum += float((w_l1 * l1 + w_l2 * l2).detach())
    grad = F.l1_loss(sobel_magnitude(torch.sigmoid(out["out_224"])), sobel_magnitude(gt))
    total = total + GRAD_WEIGHT * grad
    return total, {"ce": ce_sum, "l1l2": l_sum, "grad": float(grad.detach())}


def _jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness x U[0.8, 1.2], contrast x U[0.95, 1.05], saturation x U[0.95, 1.05] (in that
    order), then greyscale with probability 0.1; (H, W, 3) uint8 -> float32 in [0, 1]."""
    x = image.astype(np.float32) / 255.0
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    x = np.clip(x * rng.uniform(0.8, 1.2), 0, 1)
    grey_mean = float((x @ weights).mean())
    x = np.clip((x - grey_mean) * rng.uniform(0.95, 1.05) + grey_mean, 0, 1)
    grey = (x @ weights)[..., None]
    x = np.clip((x - grey) * rng.uniform(0.95, 1.05) + grey, 0, 1)
    if rng.random() < 0.1:
        x = np.repeat((x @ weights)[..., None], 3, axis=2)
    return x


def make_sample(image: np.ndarray, label: np.ndarray, cfg: Any, ignore_index: int | None,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training triple from a labelled image.

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
    if ph or pw:  # torchvision's pad_if_needed pads with 0; the label pad is ignored here
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
    seg = modify_boundary(gt, float(rng.uniform(0.8, 1.0)), rng)
    mean, std = np.array(IMAGENET_MEAN, np.float32), np.array(IMAGENET_STD, np.float32)
    normed = (_jitter(np.ascontiguousarray(image), rng) - mean) / std
    return (normed.transpose(2, 0, 1).astype(np.float32), (seg[None] / 255.0 * 2 - 1).astype(np.float32),
            (gt[None] / 255.0).astype(np.float32))


def make_batch(samples: list[tuple[np.ndarray, np.ndarray]], cfg: Any, ignore_index: int | None,
               rng: np.random.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``cfg.batch_size`` triples from randomly chosen samples, stacked as tensors on ``device``."""
    picks = rng.choice(len(samples), size=cfg.batch_size, replace=len(samples) < cfg.batch_size)
    parts = [make_sample(*samples[int(i)], cfg, ignore_index, rng) for i in picks]
    return tuple(torch.from_numpy(np.stack(p)).to(device) for p in zip(*parts))  # type: ignore[return-value]


def train_net(net: torch.nn.Module, samples: list[tuple[np.ndarray, np.ndarray]], cfg: Any,
              ignore_index: int | None, device: torch.device,
              resume_file: resume.ResumeFile | None = None) -> list[float]:
    """Train ``net`` in place for ``cfg.iterations`` steps; returns the loss of each step.

    The samples are made in this process: which class a sample's target is and how its boundary
    is perturbed are drawn from the crop's own pixels, so the draws cannot be planned ahead of the
    pixels for worker processes without changing the sample order.

    Args:
        samples: (image (H, W, 3) uint8, label (H, W) uint8) pairs.
        resume_file: where the resumable state is written and read (``bench.training.resume``).
    """
    rng = np.random.default_rng(cfg.seed)
    opt = loop.make_optimizer(net.parameters(), cfg.optimizer, cfg.lr, weight_decay=cfg.weight_decay,
                                  allowed=("adam", "adamw", "sgd"), what="cascadepsp.optimizer")
    net.train()

    def step() -> tuple[torch.Tensor, dict[str, float]]:
        im, seg, gt = make_batch(samples, cfg, ignore_index, rng, device)
        return cascade_loss(net(im, seg), gt)

    checkpoint = resume.Checkpointer(resume_file, cfg.iterations, modules={"net": net}, optimizers={"opt": opt},
                                     generators={"rng": rng}, device=device)
    with loop.Progress("cascadepsp", cfg.iterations) as progress:
        return loop.run_steps(opt, progress, cfg.iterations,
                              lambda it: loop.multistep_lr(cfg.lr, it, cfg.milestones, cfg.gamma), step, checkpoint)
