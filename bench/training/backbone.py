"""Backbone training: random-scale crops, horizontal flips, poly learning-rate schedule.

Each sample picks a training image, resizes it so its width is ``f * W`` with ``f`` drawn
log-uniformly from ``[scale_min, scale_max]`` (1/8 to 1 covers every MagNet stage of the synthetic
default; Cityscapes' released recipe is long side 256 * [0.5, 2.1], i.e. f in [0.0625, 0.2625]),
takes a random crop of the input size (padding the image with 0 and the label with 255 where the
scaled image is smaller), and flips it half the time. Loss: cross-entropy ignoring 255, plus
``aux_weight`` times the auxiliary head's loss for models with ``forward_heads`` (HRNet-OCR, PSPNet:
[1, 0.4] as released). Runs data-parallel under ``torchrun`` (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from bench.runtime import distributed
from bench.training import loop
from bench.core.config import BackboneTrainConfig
from bench.core.interface import Dataset, normalize

IGNORE = 255


def random_crop(image: np.ndarray, label: np.ndarray, width: int, crop: tuple[int, int],
                rng: np.random.Generator, centre_on: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Resize (image INTER_LINEAR, label INTER_NEAREST) to ``width`` wide, pad, crop (w, h), flip.

    With ``centre_on`` classes present, the crop is centred (then clipped) on one of their pixels.
    """
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    if (width, height) != (image.shape[1], image.shape[0]):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
    cw, ch = crop
    pad_h, pad_w = max(ch - height, 0), max(cw - width, 0)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))
        label = np.pad(label, ((0, pad_h), (0, pad_w)), constant_values=IGNORE)
    y = int(rng.integers(0, image.shape[0] - ch + 1))
    x = int(rng.integers(0, image.shape[1] - cw + 1))
    if centre_on:
        ys, xs = np.nonzero(np.isin(label, centre_on))
        if ys.size:
            k = int(rng.integers(ys.size))
            y = int(np.clip(ys[k] - ch // 2, 0, image.shape[0] - ch))
            x = int(np.clip(xs[k] - cw // 2, 0, image.shape[1] - cw))
    image, label = image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]
    if rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


class CropSampler:
    """Draws training crops; keeps decoded images in memory when they fit in ``cache_mib``."""

    def __init__(self, dataset: Dataset, crop: tuple[int, int], cfg: BackboneTrainConfig, seed: int,
                 cache_mib: int = 2048) -> None:
        self.dataset, self.crop, self.cfg = dataset, crop, cfg
        self.rng = np.random.default_rng(seed)
        first = dataset[0]
        per_image = first.image.nbytes + first.label.nbytes
        self.cache: dict[int, Any] = {0: first} if per_image * len(dataset) <= cache_mib * (1 << 20) else {}
        self.cached = bool(self.cache)

    def _sample(self, index: int) -> Any:
        if not self.cached:
            return self.dataset[index]
        if index not in self.cache:
            self.cache[index] = self.dataset[index]
        return self.cache[index]

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(N, h, w, 3) uint8 images and (N, h, w) uint8 labels."""
        images, labels = [], []
        lo, hi = math.log(self.cfg.scale_min), math.log(self.cfg.scale_max)
        for _ in range(size):
            sample = self._sample(int(self.rng.integers(len(self.dataset))))
            full_w = sample.image.shape[1]
            width = max(1, round(full_w * math.exp(self.rng.uniform(lo, hi))))
            thin = self.dataset.info.thin_classes if self.rng.random() < self.cfg.thin_crop_prob else ()
            img, lab = random_crop(sample.image, sample.label, width, self.crop, self.rng, thin)
            images.append(img)
            labels.append(lab)
        return np.stack(images), np.stack(labels)


@runtime_checkable
class TwoHeads(Protocol):
    """A backbone with an auxiliary head (HRNet-OCR, PSPNet); ``isinstance`` checks only for the method."""

    def forward_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) -> (main, aux) (N, C, h, w) logits."""
        ...


def _loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: BackboneTrainConfig,
          weight: torch.Tensor | None) -> torch.Tensor:
    core = model.module if hasattr(model, "module") else model
    if isinstance(core, TwoHeads):
        main, aux = core.forward_heads(x)
        main = F.interpolate(main, size=y.shape[-2:], mode="bilinear", align_corners=False)
        aux = F.interpolate(aux, size=y.shape[-2:], mode="bilinear", align_corners=False)
        return (F.cross_entropy(main, y, weight=weight, ignore_index=IGNORE)
                + cfg.aux_weight * F.cross_entropy(aux, y, weight=weight, ignore_index=IGNORE))
    return F.cross_entropy(model(x), y, weight=weight, ignore_index=IGNORE)


def class_frequency_weights(dataset: Dataset, num_classes: int, limit: int = 64) -> list[float]:
    """ENet weights ``1 / ln(1.02 + p_c)`` from the class frequencies of up to ``limit`` labels."""
    counts = np.zeros(num_classes, np.int64)
    for i in range(min(limit, len(dataset))):
        label = dataset[i].label.ravel()
        counts += np.bincount(label[label < num_classes], minlength=num_classes)[:num_classes]
    freq = counts / max(counts.sum(), 1)
    return (1.0 / np.log(1.02 + freq)).tolist()


def _optimizer(model: torch.nn.Module, cfg: BackboneTrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 (the released recipes) or AdamW."""
    return loop.make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, momentum=0.9,
                                   weight_decay=cfg.weight_decay, allowed=("sgd", "adamw"),
                                   what="backbone_train.optimizer")


def train_backbone(model: torch.nn.Module, dataset: Dataset, crop: tuple[int, int], out_path: Path,
                   cfg: BackboneTrainConfig, device: torch.device,
                   sidecar: dict[str, Any] | None = None) -> dict[str, float]:
    """Train ``model`` in place and save its state dict (rank 0) to ``out_path``.

    Args:
        model: a Segmenter.
        dataset: the training split.
        crop: (w, h) crop size, normally the input size.
        out_path: plain state-dict file, written atomically together with ``sidecar``.
        cfg: schedule and augmentation.
        device: training device.
        sidecar: the training options saved beside the weights
            (``bench.weights.sidecar.backbone_training_options``), or None for none.

    Returns:
        ``{"loss_first": ..., "loss_last": ..., "seconds": ...}`` (losses averaged over 20 steps).
    """
    distributed.init(str(device))  # under torchrun: join the ranks (a no-op when bench.cli.main already did)
    rank, world = distributed.data_parallel()
    torch.manual_seed(cfg.seed)
    model.to(device).train()
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    sampler = CropSampler(dataset, crop, cfg, seed=cfg.seed + 1000 * rank)
    opt = _optimizer(net, cfg)
    weights: Sequence[float] | str | None = cfg.class_weights
    if weights == "auto":
        # model is a Segmenter: num_classes is a plain int attribute (to mypy, nn.Module's Tensor | Module)
        weights = class_frequency_weights(dataset, getattr(model, "num_classes"))
    weight = torch.tensor(weights, dtype=torch.float32, device=device) if weights else None
    losses, start = [], time.perf_counter()
    with loop.Progress("backbone", cfg.iterations, enabled=rank == 0) as progress:
        for it in range(cfg.iterations):
            loop.set_lr(opt, loop.poly_lr(cfg.lr, it, cfg.iterations))
            images, labels = sampler.batch(cfg.batch_size)
            x = normalize(images, device)
            y = torch.from_numpy(labels).long().to(device)
            loss = _loss(net, x, y, cfg, weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            progress.step(losses[-1])
    model.eval()
    if rank == 0:
        loop.save_checkpoint(model.state_dict(), out_path, sidecar)
    k = min(20, len(losses))
    return {"loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:])),
            "seconds": time.perf_counter() - start}
