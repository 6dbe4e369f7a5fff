"""GLNet (Chen et al., "Collaborative Global-Local Networks for Memory-Efficient Segmentation of
Ultra-High Resolution Images", CVPR 2019) as a method of the harness.

GLNet is a segmenter, not a refiner: ``refine`` ignores the coarse map (``uses_coarse = False``,
so the runner neither computes nor times it) and needs no shared backbone. It runs its own two
branches: a global one on the image downsampled to ``global_size`` (default: the sweep's input
size, as the release's ``size_g`` 508 at DeepGlobe) and a local one on full-resolution patches of
``patch_size`` (default: the input size too, as ``size_p`` 508), with deep feature sharing both
ways, the ensemble of the two and the three training stages. Parts: ``_glnet_resnet`` (bodies),
``_glnet_fpn`` (heads), ``_glnet_net`` (module, crops, aggregation), ``_glnet_patches`` (grid),
``_glnet_infer`` (the evaluator, optional 8-view averaging), ``_glnet_train`` (stages),
``_glnet_loss`` (focal loss).

Weights: three files as the release's three checkpoints, each the *whole* module's state dict in
the release's key layout: ``glnet_global.pt`` (stage 1), ``glnet_global2local.pt`` (stage 2),
``glnet_local2global.pt`` (stage 3). Stage-3 inference loads stage 3 and, for the fixed global
branch that feeds the local one, the global parts of stage 1 (the release's ``global_fixed``).
The authors' DeepGlobe files (``fpn_deepglobe_global.pth``, ``..._global2local.pth``,
``..._local2global.pth``) load with :func:`load_release_state` after one documented clean-up: a
leading ``module.`` (DataParallel) is stripped from every key; missing ``num_batches_tracked``
buffers are tolerated (files saved before torch 0.4.1 lack them). Anything else must match by
name and shape, else the error lists the missing, unexpected and mis-shaped keys. They need the
release architecture (``RELEASE_ARCH``: ResNet-50, W 256, Hd 128) and ``min_overlap: 50``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from baselines.glnet.infer import predict
from baselines.glnet.net import GLNet
from baselines.glnet.train import (
    STAGES,
    Resume,
    TrainViews,
    fixed_global,
    train_global,
    train_global2local,
    train_local2global,
)
from bench.training import loop, resume
from bench.models.state_dict import load_weights
from bench.models.backbones.resnet import load_partial_strict
from bench.core.interface import Coarse, Dataset, Method, MethodContext

log = logging.getLogger(__name__)

FILES = {"global": "glnet_global.pt", "global2local": "glnet_global2local.pt", "local2global": "glnet_local2global.pt"}
RELEASE_FILES = {"global": "fpn_deepglobe_global.pth", "global2local": "fpn_deepglobe_global2local.pth",
                 "local2global": "fpn_deepglobe_local2global.pth"}
RELEASE_ARCH = {"depth": 50, "base_width": 64, "fpn_width": 256, "head_width": 128}
STAGE_LABELS = {1: "global only", 2: "global2local"}


@dataclass(frozen=True)
class GLNetConfig:
    """GLNet options. Defaults are the synthetic light variant; the release's values are noted.

    Attributes:
        stage: which trained model predicts: 3 (local2global, the full GLNet; the release's
            evaluation), 2 (global2local ensemble) or 1 (global branch alone).
        views: 1, or 8 for the release's ``test=True`` flip/rotate averaging (tables say "8 views").
        depth: ResNet depth of both branches (release 50; synthetic 18).
        base_width: ResNet base width (release 64; synthetic 8).
        fpn_width: pyramid width W (release 256; synthetic 32).
        head_width: head width Hd (release 128; synthetic 16).
        global_size: (w, h) of the global input; None = the sweep's input size.
        patch_size: (w, h) of a local patch at full resolution; None = the input size.
        min_overlap: least overlap of neighbouring patches in pixels (release 50 at 508-px patches).
        sub_batch_size: patches per local forward, the declared batch setting (``batch_option``;
            ``bench.core.batch``; release 6). 1 by default, so that time and memory compare with
            the other rows at batch 1; the labels at 1 and 6 are identical on CPU
            (tests/test_batch.py). Inference only: training aggregates in its own chunks.
        batch_size: images per training step (release 6).
        patches_per_image: patches drawn per image and step in stages 2 and 3 (None = all, the release).
        iterations_global, iterations_local, iterations_l2g: steps of stages 1, 2, 3 (the
            release: 120, 50, 120 epochs of its 454 images in batches of 6).
        lr_global, lr_local, lr_l2g: Adam learning rates (release 5e-5, 2e-5, 5e-5; the paper 1e-4
            for the global branch, per the authors' issue #3).
        weight_decay: Adam's L2 weight decay (5e-4).
        gamma: focal-loss exponent (3).
        lamb_fmreg: weight of the stage-2 branch-agreement MSE (0.15).
        hflip, rotate: augmentation (release: both).
        seed: seed of initialisation and sampling.
    """

    stage: int = 3
    views: int = 1
    depth: int = 18
    base_width: int = 8
    fpn_width: int = 32
    head_width: int = 16
    global_size: tuple[int, int] | None = None
    patch_size: tuple[int, int] | None = None
    min_overlap: float = 12
    sub_batch_size: int = 1
    batch_size: int = 6
    patches_per_image: int | None = 4
    iterations_global: int = 1000
    iterations_local: int = 500
    iterations_l2g: int = 100
    lr_global: float = 1e-3
    lr_local: float = 1e-3
    lr_l2g: float = 5e-4
    weight_decay: float = 5e-4
    gamma: float = 3.0
    lamb_fmreg: float = 0.15
    hflip: bool = True
    rotate: bool = False
    seed: int = 0

    batch_option: ClassVar[str] = "sub_batch_size"  # the harness reads it (bench.core.batch)


def arch(cfg: GLNetConfig) -> dict[str, int]:
    return {"depth": cfg.depth, "base_width": cfg.base_width, "fpn_width": cfg.fpn_width, "head_width": cfg.head_width}


def sizes(cfg: GLNetConfig, ctx: MethodContext) -> tuple[tuple[int, int], tuple[int, int]]:
    """(h, w) of the global input and of a patch."""
    g = tuple(cfg.global_size or ctx.input_size)
    p = tuple(cfg.patch_size or ctx.input_size)
    return (int(g[1]), int(g[0])), (int(p[1]), int(p[0]))


def clean_release_state(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The documented clean-up of a released GLNet file: strip a leading ``module.`` from each key."""
    return {(k.removeprefix("module.")): v for k, v in state.items()}


def load_release_state(model: GLNet, path: str | Path) -> None:
    """Load a GLNet file (ours or the authors') strictly after :func:`clean_release_state`.

    Raises:
        FileNotFoundError: no file.
        RuntimeError: listing missing / unexpected keys and shape mismatches.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"glnet checkpoint not found: {path}")
    state = load_weights(path)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise TypeError(f"{path} does not hold a state dict (name -> tensor)")
    load_partial_strict(model, clean_release_state(state), source=f"glnet checkpoint {path}")


class GLNetMethod(Method):
    """GLNet's own two-branch prediction; the coarse map is not used (see the module docstring)."""

    name: ClassVar[str] = "glnet"
    display_name: ClassVar[str] = "GLNet"
    version: ClassVar[int] = 1
    uses_coarse: ClassVar[bool] = False
    needs_backbone: ClassVar[bool] = False
    Config: ClassVar[type] = GLNetConfig
    train_fields: ClassVar[tuple[str, ...]] = (
        "depth", "base_width", "fpn_width", "head_width", "global_size", "patch_size", "min_overlap", "batch_size",
        "patches_per_image", "iterations_global", "iterations_local", "iterations_l2g", "lr_global", "lr_local",
        "lr_l2g", "weight_decay", "gamma", "lamb_fmreg", "hflip", "rotate", "seed")

    def __init__(self, cfg: GLNetConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        if cfg.stage not in (1, 2, 3):
            raise ValueError(f"glnet.stage must be 1, 2 or 3, got {cfg.stage!r}")
        paths = self.checkpoints(cfg, ctx)
        self.global_hw, self.patch_hw = sizes(cfg, ctx)
        file = {1: "global", 2: "global2local", 3: "local2global"}[cfg.stage]
        self.model = GLNet(ctx.num_classes, **arch(cfg))
        load_release_state(self.model, paths[file])
        self.model.to(ctx.device).eval()
        self.fixed = None
        if cfg.stage == 3:
            fixed = GLNet(ctx.num_classes, **arch(cfg))
            load_release_state(fixed, paths["global"])
            # only its global branch is used (the release's ``global_fixed``); drop the rest
            del fixed.resnet_local, fixed.fpn_local, fixed.ensemble_conv
            self.fixed = fixed.to(ctx.device).eval()
        parts = [STAGE_LABELS[cfg.stage]] if cfg.stage in STAGE_LABELS else []
        parts += ["8 views"] if cfg.views == 8 else []
        self.label = f"GLNet ({', '.join(parts)})" if parts else "GLNet"

    def refine(self, image: np.ndarray, coarse: Coarse | None) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (H, W) int64 labels on the method's device (``coarse`` unused)."""
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
            raise ValueError(f"glnet expects an (H, W, 3) uint8 RGB image, got {getattr(image, 'shape', None)} "
                             f"{getattr(image, 'dtype', None)}")
        return predict(image, self.model, self.fixed, self.cfg, self.global_hw, self.patch_hw, self.device)

    @classmethod
    def checkpoints(cls, cfg: GLNetConfig, ctx: MethodContext) -> dict[str, Path]:
        return {k: Path(ctx.checkpoint_dir) / v for k, v in FILES.items()}

    @classmethod
    def train(cls, cfg: GLNetConfig, ctx: MethodContext, train_set: Dataset, paths: Mapping[str, Path]) -> None:
        """The three stages in order, each saved (whole module, release layout) as it ends.

        One resume state for the whole training, beside the last stage's weights
        (``bench.training.resume``): it holds the stage, its step, the model, the frozen stage-1
        copy and the shared generator, so a rerun skips the finished stages (their weights are on
        disk) and continues the interrupted one.

        Raises:
            ValueError: empty training set.
        """
        if len(train_set) == 0:
            raise ValueError("glnet training needs a non-empty training set")
        device = torch.device(ctx.device)
        global_hw, patch_hw = sizes(cfg, ctx)
        ignore = ctx.dataset.ignore_index
        sidecar = loop.sidecar_of(ctx)
        steps = [cfg.iterations_global, cfg.iterations_local, cfg.iterations_l2g]
        identity = resume.identity_of(sidecar, cfg, steps=steps, images=len(train_set))
        file = resume.ResumeFile(Path(paths["local2global"]), "glnet", identity, resume.runtime_of(ctx))
        resume.read_in_process(file.runtime, "glnet", "the images are held in memory and their views cached there")
        at = file.phase()
        first = STAGES.index(at) if at in STAGES else 0  # the stage a stored state is in; earlier ones are done
        with loop.seeded(device, cfg.seed):
            rng = np.random.default_rng(cfg.seed)
            data = TrainViews(train_set, cfg, global_hw, patch_hw, device)
            model = GLNet(ctx.num_classes, **arch(cfg)).to(device)
            if first == 0:
                train_global(model, data, cfg, device, rng, ignore, Resume(file, {"model": model}, device))
                loop.save_checkpoint(loop.cpu_state(model), Path(paths["global"]), sidecar)
            fixed = fixed_global(model)  # resumed past stage 1: the state holds the stage-1 copy
            both = Resume(file, {"model": model, "fixed": fixed}, device)
            if first <= 1:
                train_global2local(model, data, cfg, device, rng, ignore, both)
                loop.save_checkpoint(loop.cpu_state(model), Path(paths["global2local"]), sidecar)
            train_local2global(model, fixed, data, cfg, device, rng, ignore, both)
            loop.save_checkpoint(loop.cpu_state(model), Path(paths["local2global"]), sidecar)
        file.remove()
        log.info("glnet: saved %s", ", ".join(str(p) for p in paths.values()))
