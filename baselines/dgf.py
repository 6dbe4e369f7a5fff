"""Deep Guided Filter (Wu et al., CVPR 2018) as a refinement baseline for segmentation.

As in DGF's DeepLab experiment: a learned C-channel guide ``g = conv1x1(64->C)(ReLU(conv1x1(3->64)(I)))``
of the RGB image I in [0, 1] (not mean/std normalised), and the per-channel guided filter
(r = 4, eps = 1e-2, truncated box) applied to the coarse map upsampled bilinearly
(align_corners=True); channel k is guided by g_k, then argmax.

The filtered signal: DGF filters the coarse *logits*; the harness hands over probabilities, so we
filter the coarse log-probabilities ``log(max(p, 1e-8))`` (logits up to a per-pixel constant),
computed at the coarse resolution and then upsampled, the same way in training and inference.

Two forms (config ``fast``):
- full (default, DGF's segmentation setting): upsample the signal, guide at full resolution.
- fast (DGF's ``FastGuidedFilter``): a, b from the guide of the image resized to the coarse size
  (the backbone's own input, cv2 INTER_LINEAR) and the coarse signal; a and b are upsampled
  (bilinear, align_corners=True) and applied to the full-resolution guide.

Training (:meth:`DeepGuidedFilter.train`): the backbone stays frozen; only the guide head learns,
with Adam and cross-entropy against the ground truth on random full-resolution crops. The coarse
map is computed exactly as at test time (whole image resized to ``ctx.input_size``), and the crop
takes the matching window of the upsampled signal (or of the upsampled a, b in the fast form).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.gf_ops import (
    check_inputs,
    fast_guided_filter,
    guided_filter,
    guided_filter_coeffs,
    resize_bilinear_region,
)
from bench.training import loop, resume
from bench.models.state_dict import load_state_dict_strict, load_weights
from bench.models.coarse import compute_coarse, resize_image
from bench.core.interface import Coarse, Dataset, Method, MethodContext

_PROB_FLOOR = 1e-8  # log-probabilities are floored at log(1e-8) ~ -18.4 so that p = 0 stays finite


@dataclass(frozen=True)
class DGFConfig:
    """Options of :class:`DeepGuidedFilter`.

    Attributes:
        radius: box radius (full-resolution pixels; coarse pixels in the fast form).
        eps: regulariser in squared guide units.
        fast: use DGF's fast form (a, b at coarse resolution) instead of the full filter.
        hidden: width of the guide head's hidden layer (DGF: 64).
        iterations: training steps.
        batch_size: crops per step.
        crop_size: (w, h) of a training crop in full-resolution pixels (clipped to the image).
        lr: Adam learning rate.
        head_init: "default" (PyTorch's init) or "zero_last" (last conv zero: the guide starts
            constant, so the filter starts as a box blur of the upsampled coarse map).
        seed: seed of the head's initialisation and of the crop sampling.
        cache_images: training images (with their coarse maps) kept in memory.
    """

    radius: int = 4
    eps: float = 1e-2
    fast: bool = False
    hidden: int = 64
    iterations: int = 150
    batch_size: int = 4
    crop_size: tuple[int, int] = (256, 256)
    lr: float = 1e-2
    head_init: str = "default"
    seed: int = 0
    cache_images: int = 64

    def __post_init__(self) -> None:
        if self.radius < 1 or self.eps <= 0:
            raise ValueError(f"need radius >= 1 and eps > 0, got radius={self.radius}, eps={self.eps}")
        if self.iterations < 0 or self.batch_size < 1 or min(self.crop_size) < 1:
            raise ValueError("iterations must be >= 0, batch_size >= 1 and crop_size positive")
        if self.head_init not in ("default", "zero_last"):
            raise ValueError(f"head_init must be 'default' or 'zero_last', got {self.head_init!r}")


class GuideHead(nn.Module):
    """DGF's guidance map: (N, 3, H, W) RGB in [0, 1] -> (N, C, H, W) guide.

    The buffer ``trained_with`` = (radius, eps, fast) records the filter the head was trained
    for, so that a checkpoint is never used with another filter by mistake.
    """

    trained_with: torch.Tensor  # (3,) float64 buffer, registered in __init__

    def __init__(self, num_classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, hidden, 1)
        self.conv2 = nn.Conv2d(hidden, num_classes, 1)
        self.register_buffer("trained_with", torch.zeros(3, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


def _filter_key(cfg: DGFConfig) -> torch.Tensor:
    return torch.tensor([cfg.radius, cfg.eps, float(cfg.fast)], dtype=torch.float64)


def image_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 in [0, 1] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float().div_(255.0)


def log_probs(probs: torch.Tensor) -> torch.Tensor:
    """(C, h, w) probabilities -> (1, C, h, w) float32 log-probabilities, floored at log(1e-8)."""
    return probs.float().clamp_min(_PROB_FLOOR).log()[None]


def backbone_view(image: np.ndarray, coarse_hw: Sequence[int], first_scale: tuple[int, int] | None) -> np.ndarray:
    """The image as the backbone saw it: resized (through ``first_scale`` if set) to the coarse (h, w)."""
    small = resize_image(image, first_scale) if first_scale else image
    return resize_image(small, (coarse_hw[1], coarse_hw[0]))


def dgf_logits(
    head: GuideHead, cfg: DGFConfig, image: np.ndarray, logp: torch.Tensor, first_scale: tuple[int, int] | None = None
) -> torch.Tensor:
    """Filtered log-probabilities of a whole image.

    Args:
        head: the guide head.
        cfg: filter options.
        image: (H, W, 3) uint8 RGB.
        logp: (1, C, h, w) coarse log-probabilities.
        first_scale: the coarse pass's intermediate resize (w, h), if any (fast form only).

    Returns:
        (1, C, H, W) float32 filtered signal (argmax gives the labels).
    """
    hr = image_tensor(image, logp.device)
    if cfg.fast:
        lr = image_tensor(backbone_view(image, logp.shape[-2:], first_scale), logp.device)
        return fast_guided_filter(head(lr), logp, head(hr), cfg.radius, cfg.eps)
    up = F.interpolate(logp, size=image.shape[:2], mode="bilinear", align_corners=True)
    return guided_filter(head(hr), up, cfg.radius, cfg.eps)


@dataclass(frozen=True)
class _Window:
    """One training crop: full image and label, coarse inputs, and the crop box (top, left, h, w)."""

    image: np.ndarray
    label: np.ndarray
    small: np.ndarray
    logp: torch.Tensor
    box: tuple[int, int, int, int]

    def crop(self, array: np.ndarray) -> np.ndarray:
        top, left, height, width = self.box
        return array[top:top + height, left:left + width]


def dgf_logits_windows(head: GuideHead, cfg: DGFConfig, windows: list[_Window]) -> torch.Tensor:
    """The filtered signal on windows of full-resolution images that share one crop size (training).

    Args:
        head: the guide head.
        cfg: filter options.
        windows: crops with their images' coarse inputs; all boxes have the same (h', w').

    Returns:
        (B, C, h', w') filtered signal. The fast form equals :func:`dgf_logits` on the window up
        to float rounding; the full form differs only within ``2 * radius`` of the window's border
        (the box is truncated at the crop's edge).
    """
    device = windows[0].logp.device
    guide = head(torch.cat([image_tensor(w.crop(w.image), device) for w in windows]))
    if cfg.fast:
        a_parts, b_parts = [], []
        for w in windows:
            a, b = guided_filter_coeffs(head(image_tensor(w.small, device)), w.logp, cfg.radius, cfg.eps)
            a_parts.append(resize_bilinear_region(a, w.image.shape[:2], w.box, align_corners=True))
            b_parts.append(resize_bilinear_region(b, w.image.shape[:2], w.box, align_corners=True))
        return torch.cat(a_parts) * guide + torch.cat(b_parts)
    up = torch.cat([resize_bilinear_region(w.logp, w.image.shape[:2], w.box, align_corners=True) for w in windows])
    return guided_filter(guide, up, cfg.radius, cfg.eps)


def _first_scale(ctx: MethodContext) -> tuple[int, int] | None:
    value = ctx.options.get("coarse_scale")
    return None if value is None else (int(value[0]), int(value[1]))


class _TrainCache:
    """Training samples with their coarse maps, computed once and kept up to ``size`` of them."""

    def __init__(self, ctx: MethodContext, train_set: Dataset, size: int) -> None:
        self.ctx, self.train_set, self.size = ctx, train_set, size
        self.items: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor]] = {}

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor]:
        if index in self.items:
            return self.items[index]
        sample, first_scale = self.train_set[index], _first_scale(self.ctx)
        coarse = compute_coarse(self.ctx.backbone, sample.image, self.ctx.input_size, self.ctx.device, first_scale)
        small = backbone_view(sample.image, coarse.probs.shape[-2:], first_scale)
        item = (sample.image, sample.label, small, log_probs(coarse.probs.clone()))  # clone: leave inference mode
        if len(self.items) < self.size:
            self.items[index] = item
        return item


def _crop_box(rng: np.random.Generator, hw: tuple[int, int], crop_wh: tuple[int, int]) -> tuple[int, int, int, int]:
    height, width = min(crop_wh[1], hw[0]), min(crop_wh[0], hw[1])
    top = int(rng.integers(0, hw[0] - height + 1))
    left = int(rng.integers(0, hw[1] - width + 1))
    return top, left, height, width


def _draw_windows(cfg: DGFConfig, cache: _TrainCache, rng: np.random.Generator) -> list[_Window]:
    windows = []
    for _ in range(cfg.batch_size):
        image, label, small, logp = cache[int(rng.integers(len(cache.train_set)))]
        windows.append(_Window(image, label, small, logp, _crop_box(rng, image.shape[:2], cfg.crop_size)))
    return windows


def _batch_loss(head: GuideHead, cfg: DGFConfig, windows: list[_Window], ignore: int) -> torch.Tensor:
    """Cross-entropy summed over the valid pixels of all windows, divided by their count."""
    groups: dict[tuple[int, int], list[_Window]] = {}
    for w in windows:  # crops are batched by size (one group unless images differ in size)
        groups.setdefault(w.box[2:], []).append(w)
    total, count = torch.zeros((), device=windows[0].logp.device), 0
    for group in groups.values():
        labels = np.stack([w.crop(w.label) for w in group]).astype(np.int64)
        target = torch.from_numpy(labels).to(total.device)
        logits = dgf_logits_windows(head, cfg, group)
        total = total + F.cross_entropy(logits, target, ignore_index=ignore, reduction="sum")
        count += int((target != ignore).sum())
    return total / max(count, 1)


def _new_head(cfg: DGFConfig, ctx: MethodContext) -> GuideHead:
    """A freshly initialised head on ``ctx.device``, seeded without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        head = GuideHead(ctx.num_classes, cfg.hidden)
    if cfg.head_init == "zero_last":
        nn.init.zeros_(head.conv2.weight)
    head.trained_with.copy_(_filter_key(cfg))
    return head.to(ctx.device)


class DeepGuidedFilter(Method):
    """DGF refinement: learned guide + guided filter on the upsampled coarse log-probabilities."""

    name = "dgf"
    display_name = "DGF"
    version = 1
    uses_coarse = True
    needs_backbone = True
    cpu_only = False
    Config = DGFConfig
    # every option that shapes the guide head (cache_images only decides what is recomputed)
    train_fields = ("radius", "eps", "fast", "hidden", "iterations", "batch_size", "crop_size", "lr", "head_init",
                    "seed")

    def __init__(self, cfg: DGFConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        path = self.checkpoints(cfg, ctx)["dgf"]
        if not path.is_file():
            raise FileNotFoundError(f"DGF guide weights not found at {path}; train them first (DeepGuidedFilter.train)")
        self.head = GuideHead(ctx.num_classes, cfg.hidden)
        load_state_dict_strict(self.head, load_weights(path), source=str(path))
        trained = self.head.trained_with.tolist()
        if not torch.allclose(self.head.trained_with, _filter_key(cfg)):
            raise ValueError(
                f"{path} was trained for radius={trained[0]:g}, eps={trained[1]:g}, fast={bool(trained[2])} but the "
                f"config asks radius={cfg.radius}, eps={cfg.eps}, fast={cfg.fast}; retrain or change the config"
            )
        self.head.to(ctx.device).eval()

    def refine(self, image: np.ndarray, coarse: Coarse | None) -> torch.Tensor:
        """Refine one image.

        Args:
            image: (H, W, 3) uint8 RGB.
            coarse: (C, h, w) probabilities.

        Returns:
            (H, W) int64 labels on ``ctx.device``.
        """
        coarse = check_inputs(image, coarse, self.ctx.num_classes)
        with torch.inference_mode():
            logp = log_probs(coarse.probs.to(self.device))
            out = dgf_logits(self.head, self.cfg, image, logp, _first_scale(self.ctx))
        return out[0].argmax(0)

    @classmethod
    def checkpoints(cls, cfg: DGFConfig, ctx: MethodContext) -> dict[str, Path]:
        """``{"dgf": <checkpoint_dir>/dgf.pt}``: the guide head's state dict."""
        return {"dgf": Path(ctx.checkpoint_dir) / "dgf.pt"}

    @classmethod
    def train(cls, cfg: DGFConfig, ctx: MethodContext, train_set: Dataset, paths: Mapping[str, Path]) -> None:
        """Train the guide head with the backbone frozen and save its state dict to ``paths["dgf"]``
        (with the sidecar ``make train`` passes in ``ctx``; ``bench.training.loop.save_checkpoint``).

        A resumable state (``bench.training.resume``) is written beside it as training goes and
        removed once it is saved. The windows are drawn in this process: each needs the frozen
        backbone's coarse map of its image, computed (and cached) on the training device here.

        Raises:
            ValueError: no backbone in ``ctx`` or an empty training set.
        """
        if ctx.backbone is None or len(train_set) == 0:
            raise ValueError("DGF training needs ctx.backbone and a non-empty training set")
        ctx.backbone.eval()
        head = _new_head(cfg, ctx)
        optimiser = loop.make_optimizer(head.parameters(), "adam", cfg.lr)
        rng = np.random.default_rng(cfg.seed)
        cache = _TrainCache(ctx, train_set, cfg.cache_images)
        ignore = -100 if ctx.dataset.ignore_index is None else int(ctx.dataset.ignore_index)
        path = Path(paths["dgf"])
        identity = resume.identity_of(loop.sidecar_of(ctx), cfg, steps=cfg.iterations, images=len(train_set))
        file = resume.ResumeFile(path, "dgf", identity, resume.runtime_of(ctx))
        resume.read_in_process(file.runtime, "dgf", "each window needs the frozen backbone's coarse map of its image, "
                               "computed on the training device")
        checkpoint = resume.Checkpointer(file, cfg.iterations, modules={"head": head}, optimizers={"opt": optimiser},
                                         generators={"rng": rng}, device=torch.device(ctx.device))
        with loop.Progress("dgf", cfg.iterations) as progress:
            snap = checkpoint.restore()
            losses = [] if snap is None else snap.losses
            progress.skip(len(losses))
            with checkpoint.guard():
                for it in range(len(losses), cfg.iterations):
                    loss = _batch_loss(head, cfg, _draw_windows(cfg, cache, rng), ignore)
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    losses.append(loss.item())
                    progress.step(losses[-1])
                    checkpoint.after_step(it + 1, losses)
        loop.save_checkpoint(loop.cpu_state(head), path, loop.sidecar_of(ctx))
        file.remove()
