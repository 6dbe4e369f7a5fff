"""``class_bias``: the coarse map upsampled bilinearly, plus a learned per-class log-probability bias.

A deliberately small learned method that shows every part of a magnet-bench method: a frozen
``Config`` dataclass, ``checkpoints`` (one file), ``train`` (saves with the training sidecar, so
weights trained under other options are refused), and a pure ``refine``.

Refinement: ``labels = argmax_c(log p_c(x) + b_c)``, where ``p`` is the coarse probability map
(C, h, w) upsampled bilinearly (``align_corners=False``) to the image's (H, W) and ``b`` (C,) is
learned. With ``b = 0`` this is exactly the Downsample baseline; training moves ``b`` to undo the
coarse map's bias towards large classes (a thin class gains pixels at its blurred borders).

Training: Adam on ``b`` alone (backbone frozen), cross-entropy over ``pixels_per_step`` labelled
pixels drawn at random from one training image per step (ignored pixels never drawn).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.training import loop
from bench.models.coarse import compute_coarse
from bench.core.interface import Coarse, Dataset, Method, MethodContext


@dataclass(frozen=True)
class ClassBiasConfig:
    """Options of ``class_bias``.

    Attributes:
        iterations: Adam steps.
        lr: Adam learning rate (log-probability units per step, roughly).
        pixels_per_step: labelled pixels per step, drawn from one training image.
        cache_images: training images whose upsampled coarse maps are kept in memory.
        seed: pixel sampling seed.
    """

    iterations: int = 100
    lr: float = 0.05
    pixels_per_step: int = 4096
    cache_images: int = 16
    seed: int = 0


def upsampled_log_probs(coarse: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(C, h, w) probabilities -> (C, H, W) float32 log-probabilities, bilinear, align_corners=False."""
    up = F.interpolate(coarse[None].float(), size=(height, width), mode="bilinear", align_corners=False)[0]
    return torch.log(up.clamp_min(1e-12))


class ClassBias(Method):
    """Downsample plus a learned per-class bias (an example plugin; see the module docstring)."""

    name = "class_bias"
    display_name = "Class-bias (example plugin)"
    version = 1
    uses_coarse = True
    needs_backbone = True
    Config = ClassBiasConfig
    train_fields = ("iterations", "lr", "pixels_per_step", "seed")

    def __init__(self, cfg: ClassBiasConfig, ctx: MethodContext) -> None:
        """Load the bias (C,) float32 from the checkpoint onto ``ctx.device``.

        Raises:
            FileNotFoundError: no weights (train them: ``make train`` or ``train: true``).
            ValueError: the weights hold another number of classes.
        """
        super().__init__(cfg, ctx)
        path = self.checkpoints(cfg, ctx)["bias"]
        if not path.is_file():
            raise FileNotFoundError(f"class_bias weights not found at {path}")
        bias = torch.load(path, map_location="cpu", weights_only=True)["bias"]
        if tuple(bias.shape) != (ctx.num_classes,):
            raise ValueError(f"{path}: bias of shape {tuple(bias.shape)}, expected ({ctx.num_classes},)")
        self.bias = bias.to(ctx.device, torch.float32)

    @classmethod
    def checkpoints(cls, cfg: ClassBiasConfig, ctx: MethodContext) -> dict[str, Path]:
        """``{"bias": <checkpoint_dir>/class_bias.pt}``."""
        return {"bias": Path(ctx.checkpoint_dir) / "class_bias.pt"}

    @classmethod
    def train(cls, cfg: ClassBiasConfig, ctx: MethodContext, train_set: Dataset, paths: Mapping[str, Path]) -> None:
        """Fit the bias on ``train_set`` through the frozen backbone and save it (see the module docstring)."""
        if cfg.iterations < 1 or cfg.pixels_per_step < 1:
            raise ValueError("class_bias: iterations and pixels_per_step must be >= 1")
        generator = torch.Generator().manual_seed(cfg.seed)
        bias = torch.zeros(ctx.num_classes, requires_grad=True)
        optimizer = torch.optim.Adam([bias], lr=cfg.lr)
        cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for step in range(cfg.iterations):
            index = step % len(train_set)
            log_probs, labels = cache.get(index) or _pixels(train_set, index, ctx)
            if len(cache) < cfg.cache_images:
                cache[index] = (log_probs, labels)
            if labels.numel() == 0:
                continue
            pick = torch.randint(labels.numel(), (cfg.pixels_per_step,), generator=generator)
            loss = F.cross_entropy(log_probs[pick] + bias, labels[pick])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        state = {"bias": bias.detach().cpu()}
        loop.save_checkpoint(state, Path(paths["bias"]), loop.sidecar_of(ctx))

    @torch.inference_mode()
    def refine(self, image: np.ndarray, coarse: Coarse | None) -> torch.Tensor:
        """(H, W) int64 labels on the method's device: ``argmax_c(log up(p)_c + b_c)``."""
        if coarse is None:
            raise ValueError("class_bias needs the coarse map")
        height, width = image.shape[:2]
        log_probs = upsampled_log_probs(coarse.probs.to(self.device), height, width)
        return (log_probs + self.bias[:, None, None]).argmax(0)


def _pixels(train_set: Dataset, index: int, ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C) float32 log-probabilities and (N,) int64 labels of image ``index``'s labelled pixels (CPU)."""
    sample = train_set[index]
    scale = (ctx.options or {}).get("coarse_scale")
    coarse = compute_coarse(ctx.backbone, sample.image, ctx.input_size, ctx.device, scale)
    height, width = sample.label.shape
    log_probs = upsampled_log_probs(coarse.probs, height, width).cpu()
    labels = torch.from_numpy(sample.label.astype(np.int64)).reshape(-1)
    keep = labels < ctx.num_classes  # the ignore value (255) is never drawn
    flat = log_probs.reshape(ctx.num_classes, -1).T
    return flat[keep].contiguous(), labels[keep]

