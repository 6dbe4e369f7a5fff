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
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from bench.runtime import distributed
from bench.training import loop, resume
from bench.training.resume import TrainRuntime
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


def scaled_shape(height: int, width: int, new_width: int, crop: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of an (height, width) image after :func:`random_crop`'s resize to ``new_width`` and pad to ``crop``."""
    new_height = max(1, round(height * new_width / width))
    return max(new_height, crop[1]), max(new_width, crop[0])


@dataclass(frozen=True)
class Crop:
    """One drawn training crop: image ``index`` resized to ``width`` wide, padded, cut at (y, x), flipped or not."""

    index: int
    width: int
    y: int
    x: int
    flip: bool


def cut(image: np.ndarray, label: np.ndarray, crop_wh: tuple[int, int], box: Crop) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of ``box``: :func:`random_crop` with its draws given (same resizes, pads and slices)."""
    height = max(1, round(image.shape[0] * box.width / image.shape[1]))
    if (box.width, height) != (image.shape[1], image.shape[0]):
        image = cv2.resize(image, (box.width, height), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (box.width, height), interpolation=cv2.INTER_NEAREST)
    cw, ch = crop_wh
    pad_h, pad_w = max(ch - height, 0), max(cw - box.width, 0)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))
        label = np.pad(label, ((0, pad_h), (0, pad_w)), constant_values=IGNORE)
    image, label = image[box.y:box.y + ch, box.x:box.x + cw], label[box.y:box.y + ch, box.x:box.x + cw]
    if box.flip:
        image, label = image[:, ::-1], label[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


class CropSampler:
    """Draws training crops; keeps decoded images in memory when they fit in ``cache_mib``.

    ``rng`` is the only generator the crops draw from: its state between two batches is the data
    order's state (what a resume state saves).
    """

    def __init__(self, dataset: Dataset, crop: tuple[int, int], cfg: BackboneTrainConfig, seed: int,
                 cache_mib: int = 2048) -> None:
        self.dataset, self.crop, self.cfg = dataset, crop, cfg
        self.rng = np.random.default_rng(seed)
        self.cache_mib = cache_mib
        first = dataset[0]
        self.per_image = first.image.nbytes + first.label.nbytes
        self.cache: dict[int, Any] = {0: first} if self.per_image * len(dataset) <= cache_mib * (1 << 20) else {}
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

    def plan(self, size: int, shapes: Sequence[tuple[int, int]]) -> list[Crop]:
        """The crops :meth:`batch` would draw, from the images' (h, w) alone (no pixel is read).

        The same draws in the same order as :meth:`batch` (the bounds of the crop position follow
        from the shapes), so the two leave ``rng`` in the same state. Only without thin-class
        crops: their centre is drawn among the label's pixels.

        Raises:
            ValueError: ``thin_crop_prob`` > 0.
        """
        if self.cfg.thin_crop_prob > 0:
            raise ValueError("backbone crops centred on thin classes draw from the label's pixels: they cannot be "
                             "planned without reading the label")
        out = []
        lo, hi = math.log(self.cfg.scale_min), math.log(self.cfg.scale_max)
        for _ in range(size):
            index = int(self.rng.integers(len(self.dataset)))
            height, full_w = shapes[index]
            width = max(1, round(full_w * math.exp(self.rng.uniform(lo, hi))))
            self.rng.random()  # the thin-class draw of batch(); always False at probability 0
            h, w = scaled_shape(height, full_w, width, self.crop)
            y = int(self.rng.integers(0, h - self.crop[1] + 1))
            x = int(self.rng.integers(0, w - self.crop[0] + 1))
            out.append(Crop(index, width, y, x, bool(self.rng.random() < 0.5)))
        return out

    def batches(self, size: int, count: int, workers: int = 0,
                device: torch.device | None = None) -> Iterator[tuple[Any, Any, Mapping[str, Any]]]:
        """``count`` batches ``(images, labels, rng state after the batch)``.

        ``workers`` = 0: :meth:`batch` in this process. ``workers`` > 0: the workers first read every
        image once for its size, then the crops are planned here (:meth:`plan`, the same draws) and
        read, resized and cut by a ``DataLoader`` with that many worker processes, in order, pinned
        when ``device`` is CUDA; images and labels then come as uint8 tensors with the same values.
        Thin-class crops cannot be planned: with ``thin_crop_prob`` > 0 the batches are made here,
        and one line says so.
        """
        if workers > 0 and self.cfg.thin_crop_prob > 0:
            print(f"[train] backbone: workers={workers} ignored, crops centred on thin classes "
                  "(thin_crop_prob > 0) are drawn from the label's pixels, read in this process",
                  file=sys.stderr, flush=True)
            workers = 0
        if workers == 0:
            for _ in range(count):
                images, labels = self.batch(size)
                yield images, labels, self.rng.bit_generator.state
            return
        shapes = image_shapes(self.dataset, workers)
        states: dict[int, Mapping[str, Any]] = {}

        def plans() -> Iterator[list[Crop]]:
            for k in range(count):
                plan = self.plan(size, shapes)
                states[k] = self.rng.bit_generator.state
                yield plan

        reader = _CropReader(self.dataset, self.crop, shapes,
                             cache=self.per_image * len(self.dataset) * workers <= self.cache_mib * (1 << 20))
        # a generator of its own: the DataLoader draws its workers' base seed from it, which would
        # otherwise advance torch's global generator, and with it dropout, against workers = 0
        loader = torch.utils.data.DataLoader(reader, batch_sampler=plans(), num_workers=workers, collate_fn=_stack,
                                             pin_memory=device is not None and device.type == "cuda",
                                             generator=torch.Generator(), worker_init_fn=_quiet_worker)
        for k, (images, labels) in enumerate(loader):
            yield images, labels, states.pop(k)


def image_shapes(dataset: Dataset, workers: int) -> list[tuple[int, int]]:
    """(h, w) of every image of ``dataset``, read by ``workers`` processes."""
    loader = torch.utils.data.DataLoader(_Shapes(dataset), batch_size=None, num_workers=workers,
                                         generator=torch.Generator(), worker_init_fn=_quiet_worker)
    return [(int(h), int(w)) for h, w in loader]


def _quiet_worker(_: int) -> None:
    """A worker ignores Ctrl-C: the training process stops at its step's end and ends the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Shapes(torch.utils.data.Dataset):
    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, int]:
        image = self.dataset[index].image
        return image.shape[0], image.shape[1]


class _CropReader(torch.utils.data.Dataset):
    """In a worker: one planned :class:`Crop` -> (image, label) crop; keeps images when ``cache``."""

    def __init__(self, dataset: Dataset, crop: tuple[int, int], shapes: Sequence[tuple[int, int]], cache: bool) -> None:
        self.dataset, self.crop, self.shapes, self.cache = dataset, crop, shapes, cache
        self.store: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, box: Crop) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        sample = self.store[box.index] if box.index in self.store else self.dataset[box.index]
        if self.cache:
            self.store[box.index] = sample
        if sample.image.shape[:2] != tuple(self.shapes[box.index]):  # a dataset whose images change between reads
            raise RuntimeError(f"training image {box.index} is {sample.image.shape[:2]}, planned for "
                               f"{tuple(self.shapes[box.index])}")
        return cut(sample.image, sample.label, self.crop, box)


def _stack(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(np.stack([i for i, _ in items])), torch.from_numpy(np.stack([lab for _, lab in items])))


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
                   sidecar: dict[str, Any] | None = None, runtime: TrainRuntime | None = None) -> dict[str, float]:
    """Train ``model`` in place and save its state dict (rank 0) to ``out_path``.

    A resume state ``<out_path>.resume`` (under torchrun one a rank) is written every
    ``runtime.checkpoint_every_s`` seconds and after the last step (``bench.training.resume``);
    run again with the same options, the training continues from it and ends with the weights of
    an uninterrupted run.

    Args:
        model: a Segmenter.
        dataset: the training split.
        crop: (w, h) crop size, normally the input size.
        out_path: plain state-dict file, written atomically together with ``sidecar``.
        cfg: schedule and augmentation.
        device: training device.
        sidecar: the training options saved beside the weights
            (``bench.weights.sidecar.backbone_training_options``), or None for none.
        runtime: resume-state interval and data-loading workers (defaults: every 300 s, no workers).

    Returns:
        ``{"loss_first": ..., "loss_last": ..., "seconds": ...}`` (losses averaged over 20 steps).
    """
    distributed.init(str(device))  # under torchrun: join the ranks (a no-op when bench.cli.main already did)
    rank, world = distributed.data_parallel()
    runtime = runtime or TrainRuntime()
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
    identity = resume.identity_of(sidecar, cfg, crop=list(crop), steps=cfg.iterations, images=len(dataset))
    file = resume.ResumeFile(out_path, "backbone", identity, runtime, rank=rank, world=world)
    # the checkpoint saves the data order as it stands after the last step, which with workers is
    # behind the sampler's own generator (it plans ahead): a twin generator holds that state
    order_rng = np.random.default_rng()
    order_rng.bit_generator.state = sampler.rng.bit_generator.state
    checkpoint = resume.Checkpointer(file, cfg.iterations, modules={"model": model}, optimizers={"opt": opt},
                                     generators={"sampler": order_rng}, device=device)
    losses: list[float] = []
    start = time.perf_counter()
    with loop.Progress("backbone", cfg.iterations, enabled=rank == 0) as progress:
        snap = checkpoint.restore()
        first = 0 if snap is None else snap.step
        if snap is not None:
            losses = snap.losses
            sampler.rng.bit_generator.state = order_rng.bit_generator.state
            progress.skip(first)
        batches = sampler.batches(cfg.batch_size, cfg.iterations - first, runtime.workers, device)
        with checkpoint.guard():
            for it, (images, labels, order) in zip(range(first, cfg.iterations), batches):
                loop.set_lr(opt, loop.poly_lr(cfg.lr, it, cfg.iterations))
                x = normalize(images, device)
                y = torch.as_tensor(labels).long().to(device)
                loss = _loss(net, x, y, cfg, weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.item())
                progress.step(losses[-1])
                order_rng.bit_generator.state = order  # the sampler's state after this batch (ahead with workers)
                checkpoint.after_step(it + 1, losses)
    model.eval()
    if rank == 0:
        loop.save_checkpoint(model.state_dict(), out_path, sidecar)
    distributed.barrier()  # every rank keeps its state until the weights are on disk
    file.remove()
    k = min(20, len(losses))
    return {"loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:])),
            "seconds": time.perf_counter() - start}
