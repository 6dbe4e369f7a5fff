"""MagNet and MagNet-Fast as benchmark methods (``magnet``, ``magnet_fast``).

``refine`` takes the runner's coarse map as MagNet's stage 1 (the backbone on the whole image at
the input size), runs stages 2..m (``magnet.inference``), upsamples the final map bilinearly to
the image size and takes the argmax. Which of the two named behaviours ran is ``method.variant``
(``released`` or ``paper``); ``method.label`` is the display name with `` (paper)`` appended for
the paper variant. MagNet-Fast shares MagNet's refiner checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.core.interface import Coarse, Dataset, Method, MethodContext
from magnet.config import MagNetConfig, MagNetFastConfig, MagNetFastPaperConfig, check_coarse_scale, resolve_plan
from magnet.inference import StageOptions, Timer, progressive
from magnet.refinement import FusedRefiner, RefinementModule, load_refiner
from magnet.scoring import argmax_channels
from magnet.train import refiner_filename, train_refiners


class MagNet(Method):
    """Progressive multi-scale refinement (Huynh et al., CVPR 2021), every patch at every stage."""

    name = "magnet"
    display_name = "MagNet"
    version = 1
    uses_coarse = True
    needs_backbone = True
    Config = MagNetConfig
    trains_with_run_seed = True  # the refiners are seeded by the run's seed (ctx.options["seed"])
    data_parallel_train = True  # train_refiners wraps the refiner in DDP under torchrun (bench.runtime.distributed)
    # every option that shapes the refiners (inference-only ones such as n_points do not)
    train_fields = ("scales", "crop_size", "n_refiners", "epochs", "iterations_per_epoch", "train_batch_size", "lr",
                    "momentum", "weight_decay", "milestones", "gamma", "ohem_thresh", "ohem_min_kept",
                    "train_input_order", "bn_recalibration")

    def __init__(self, cfg: MagNetConfig, ctx: MethodContext,
                 refiners: Sequence[torch.nn.Module] | None = None) -> None:
        """Load the refiners (or take ``refiners``, for tests and profiling) onto ``ctx.device``.

        Raises:
            ValueError: bad options or no backbone.
            FileNotFoundError / RuntimeError: a refiner checkpoint is missing or does not match.
        """
        super().__init__(cfg, ctx)
        if ctx.backbone is None:
            raise ValueError(f"{self.name} needs the segmentation backbone in ctx.backbone")
        self.plan = resolve_plan(cfg, ctx.input_size, ctx.image_size)
        check_coarse_scale(self.plan, (ctx.options or {}).get("coarse_scale"))
        self.opts = StageOptions(n_points=cfg.n_points, n_patches=cfg.n_patches, blur_kernel=cfg.blur_kernel,
                                 behaviour=cfg.behaviour, batch_size=cfg.batch_size, mask_inset=cfg.mask_inset,
                                 refiner_batch_size=cfg.refiner_batch_size)
        self.backbone = ctx.backbone
        if cfg.refiner_mode not in ("learned", "copy_fine"):
            raise ValueError(f"refiner_mode must be 'learned' or 'copy_fine', got {cfg.refiner_mode!r}")
        if cfg.refiner_mode == "copy_fine" and refiners is None:
            refiners = [CopyFine()] * self.plan.n_refiners
        if refiners is None:
            paths = self.checkpoints(cfg, ctx)
            refiners = [load_refiner(paths[f"refiner_{r}"], ctx.num_classes, ctx.device)
                        for r in range(self.plan.n_refiners)]
        if len(refiners) != self.plan.n_refiners:
            raise ValueError(f"expected {self.plan.n_refiners} refiners, got {len(refiners)}")
        self.refiners = [self._prepare(r) for r in refiners]
        self.timer: Timer | None = None  # set by perf.magnet_profile to split refine() time

    def _prepare(self, refiner: torch.nn.Module) -> torch.nn.Module:
        refiner = refiner.to(self.device).eval()
        if self.cfg.fuse_refiner and isinstance(refiner, RefinementModule):
            return FusedRefiner(refiner).to(self.device).eval()
        return refiner

    @property
    def variant(self) -> str:
        """Which named behaviour runs: ``released`` or ``paper``."""
        return self.cfg.behaviour

    @property
    def label(self) -> str:
        """Display name plus the variant when it is not the released one."""
        base = getattr(self, "base_display_name", self.display_name)
        name = base if self.variant == "released" else f"{base} (paper)"
        return name if self.cfg.refiner_mode == "learned" else f"{name} [refiner: {self.cfg.refiner_mode}]"

    @classmethod
    def checkpoints(cls, cfg: MagNetConfig, ctx: MethodContext) -> dict[str, Path]:
        """``refiner_<r>`` -> ``<checkpoint_dir>/magnet_refiner_<scales served>.pt`` (shared by magnet_fast)."""
        plan = resolve_plan(cfg, ctx.input_size, ctx.image_size)
        return {f"refiner_{r}": Path(ctx.checkpoint_dir) / refiner_filename(plan, r) for r in range(plan.n_refiners)}

    @classmethod
    def checkpoint_modules(cls, cfg: MagNetConfig, ctx: MethodContext) -> dict[str, torch.nn.Module]:
        """A freshly built module per key of :meth:`checkpoints`: the key set and shapes a given file must hold.

        ``bench.weights.released`` compares MagNet's released refiner files with these before a sweep
        starts (strictly, after the clean-up of ``bench.models.state_dict.clean_state_dict``).
        """
        return {key: RefinementModule(ctx.num_classes) for key in cls.checkpoints(cfg, ctx)}

    @classmethod
    def train(cls, cfg: MagNetConfig, ctx: MethodContext, train_set: Dataset, paths: Mapping[str, Path]) -> None:
        """Train the refiners on the frozen ``ctx.backbone`` (see ``magnet.train``)."""
        train_refiners(cfg, ctx, train_set, paths)

    def _check(self, image: np.ndarray, coarse: Coarse | None) -> torch.Tensor:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {getattr(image, 'shape', None)} "
                             f"{getattr(image, 'dtype', type(image))}")
        if coarse is None:
            raise ValueError(f"{self.name} needs the coarse map (stage 1)")
        nw, nh = self.plan.input_size
        expected = (self.ctx.num_classes, nh, nw)
        if tuple(coarse.probs.shape) != expected:
            raise ValueError(f"coarse probabilities must be (C, h, w) = {expected} (the input size), "
                             f"got {tuple(coarse.probs.shape)}")
        return coarse.probs.to(self.device, torch.float32)

    @torch.inference_mode()
    def refine(self, image: np.ndarray, coarse: Coarse | None) -> torch.Tensor:
        """(H, W) int64 labels on the method's device (see the module docstring)."""
        y = progressive(image, self._check(image, coarse), self.plan, self.opts, self.backbone, self.refiners,
                        self.timer)
        height, width = image.shape[:2]
        if tuple(y.shape[-2:]) != (height, width):
            y = F.interpolate(y[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        return argmax_channels(y)


class CopyFine(torch.nn.Module):
    """An experiment's stand-in refiner: returns log(fine), so the stage output is the patch's own softmax."""

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        return torch.log(fine.clamp_min(1e-12))


class MagNetFast(MagNet):
    """MagNet-Fast: only ``n_patches`` patches per stage, 90 % of their points."""

    name = "magnet_fast"
    display_name = "MagNet-Fast"
    Config = MagNetFastConfig


class MagNetFastPaper(MagNetFast):
    """MagNet-Fast with ``behaviour: paper`` by default: the row that shows the paper's Fast mode
    next to the released one in a sweep (same refiners as ``magnet``)."""

    name = "magnet_fast_paper"
    display_name = "MagNet-Fast (paper)"
    base_display_name = "MagNet-Fast"  # ``label`` adds " (paper)" for the paper behaviour
    Config = MagNetFastPaperConfig
