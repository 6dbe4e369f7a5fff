"""CascadePSP (Cheng et al., CVPR 2020) as a refinement method: class-agnostic binary refinement
applied per class (our own implementation of hkchengrex/CascadePSP, MIT).

Parts: the refinement module (``_cascadepsp_net``, extractor ``_cascadepsp_resnet``), the global
and local steps (``_cascadepsp_infer``), the perturbed-mask training (``baselines.common.perturb``,
``_cascadepsp_train``).

Multi-class protocol (``refine``)
    The coarse probabilities are upsampled to the image size (bilinear, align_corners=False) and
    their argmax is the coarse label map (Downsample's output). Each class present in that map is
    one binary mask (``2 * (labels == c) - 1``); the masks of one image are refined in groups of
    ``mask_batch_size`` (global step, then the local step; ``cascadepsp.infer.refine_masks``),
    which equals refining each alone (the release refines one mask per call: the default 1). The label of a pixel is the present class of highest refined
    probability. Ties go to the lowest class id (``torch.argmax`` returns the first maximum).
    Classes absent from the coarse map are never refined and never predicted. An image whose
    coarse map holds one class keeps it everywhere (no forward: any refined probability is the
    maximum of one). With ``min_confidence > 0``, a pixel whose highest refined probability is
    below it keeps its coarse label, as CascadePSP's own ADE20K protocol (``eval_post_ade.py``,
    confidence initialised at 0.5) does; the default 0 is the plain argmax.

Refinement-track protocol (``object_only``)
    On a two-class coarse map (class 1 = the object, the BIG protocol) the object mask alone is
    refined, as the release's ``eval.py`` on BIG does, and a pixel is object where the release's
    saved mask would pass its scorer: ``eval.py`` writes ``uint8(p * 255)`` (truncation) and
    ``eval_post.py`` keeps ``> 128``, i.e. ``floor(p * 255) > 128`` (p >= 129/255 ~ 0.506, not
    0.5). The background mask is never refined and no argmax is taken.

Weights
    The released ``model`` file (ResNet-50, keys ``module.feats.conv1.weight`` ...) loads strictly
    into ``RefinementModule(depth=50, width=64, psp_channels=1024, up_channels=(512, 256, 32),
    head_channels=32)`` after the ``module.`` prefix is stripped and missing BN
    ``num_batches_tracked`` counters are set to 0 (:func:`load_released`); a mismatch lists the
    missing and unexpected keys. Set the config to those values and ``method_checkpoint_dir`` to
    a folder holding it as ``cascadepsp.pt``. The synthetic default is a ResNet-18 extractor at width 16 with
    narrower decoder channels, trained from scratch (no ImageNet weights here).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from baselines.cascadepsp.infer import refine_masks
from baselines.common.per_class import refine_per_class
from baselines.cascadepsp.net import RefinementModule
from baselines.cascadepsp.train import train_net
from bench.training import loop, resume
from bench.models.state_dict import clean_state_dict, load_state_dict_strict, load_weights
from bench.core.interface import Coarse, Dataset, Method, MethodContext, check_image, normalize

log = logging.getLogger(__name__)

CHECKPOINT = "cascadepsp.pt"
# the released RefinementModule (segmentation-refinement 0.6, the v1.0 release's ``model`` file)
RELEASED = {"depth": 50, "width": 64, "psp_channels": 1024, "up_channels": (512, 256, 32), "head_channels": 32}


@dataclass(frozen=True)
class CascadePSPConfig:
    """CascadePSP options (release values in brackets; defaults are the synthetic set-up).

    Attributes:
        depth: extractor ResNet depth, 18, 34 or 50 [50].
        width: extractor base width [64].
        psp_channels: channels after pyramid pooling [1024].
        up_channels: ``up_1``, ``up_2``, ``up_3`` output channels [512, 256, 32].
        head_channels: hidden width of the output heads [32].
        L: global step's longer side and local crop size [900, for 2-6 K images].
        local_step: run the local step after the global one [True; False is the release's fast mode].
        padding: margin dropped when a local crop is pasted [16].
        low, high: a local crop whose mask covers less than ``low`` or more than ``high`` of it is
            skipped [0.1, 0.9].
        min_confidence: keep the coarse label where the best refined probability is below this
            (0 = plain argmax; CascadePSP's ADE20K protocol: 0.5).
        object_only: the BIG protocol's use: on a two-class coarse map refine class 1's mask alone
            and return ``floor(p * 255) > 128`` (the release's 8-bit mask under its scorer's
            ``> 128``); False (default) refines every present class and takes the argmax.
        mask_batch_size: class masks per forward, the declared batch setting (``batch_option``;
            ``bench.core.batch``). 1 by default, as the release refines one mask per call, so
            that time and memory compare with the other rows at batch 1; labels do not depend on
            it beyond float rounding of batched convolutions.
        iterations, batch_size, crop_size, lr, weight_decay, milestones, gamma, optimizer:
            training schedule [45000, 12, 224x224, 2.25e-4, 1e-4, (22500, 37500), 0.1, adam].
        scale_min, scale_max: random rescale of training images before the crop (a harness
            addition: training sees global-step-sized and full-size views; no release value).
        seed: seed of the training samples and the initialisation.
    """

    depth: int = 18
    width: int = 16
    psp_channels: int = 128
    up_channels: tuple[int, int, int] = (64, 32, 16)
    head_channels: int = 16
    L: int = 256
    local_step: bool = True
    padding: int = 16
    low: float = 0.1
    high: float = 0.9
    min_confidence: float = 0.0
    object_only: bool = False
    mask_batch_size: int = 1
    iterations: int = 180
    batch_size: int = 8
    crop_size: tuple[int, int] = (112, 112)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = (90, 150)
    gamma: float = 0.1
    optimizer: str = "adam"
    scale_min: float = 0.25
    scale_max: float = 1.0
    seed: int = 0

    batch_option: ClassVar[str] = "mask_batch_size"  # the harness reads it (bench.core.batch)


def build_net(cfg: Any) -> RefinementModule:
    """The refinement module ``cfg``'s architecture fields describe."""
    return RefinementModule(cfg.depth, cfg.width, cfg.psp_channels, tuple(cfg.up_channels), cfg.head_channels)


def load_released(net: torch.nn.Module, path: Path) -> None:
    """Load our weights or the release's ``model`` file strictly into ``net``.

    Clean-up: a leading ``module.`` (DataParallel) or ``model.`` is stripped
    (``bench.models.state_dict.clean_state_dict``), and BN ``num_batches_tracked`` counters the file does
    not hold are set to 0, as ``torch`` itself does for files saved without them (the release's
    own loader, a plain ``load_state_dict`` of a plain dict, does the same). Nothing else is
    forgiven.

    Raises:
        FileNotFoundError: no file at ``path``.
        RuntimeError: keys or shapes differ; the message lists the missing and unexpected keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = clean_state_dict(load_weights(path))
    for key, value in net.state_dict().items():
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    load_state_dict_strict(net, state, source=str(path))


def object_labels(prob: torch.Tensor) -> torch.Tensor:
    """(H, W) float32 refined object probability -> (H, W) int64 0/1 labels, as the release's
    ``eval.py`` + ``eval_post.py`` on BIG: the 8-bit mask ``uint8(p * 255)`` (truncated) ``> 128``."""
    return (torch.floor(prob * 255) > 128).long()


class CascadePSP(Method):
    """CascadePSP per class on the Downsample labels; see the module docstring."""

    name: ClassVar[str] = "cascadepsp"
    display_name: ClassVar[str] = "CascadePSP"
    version: ClassVar[int] = 1
    uses_coarse: ClassVar[bool] = True
    needs_backbone: ClassVar[bool] = True
    Config: ClassVar[type] = CascadePSPConfig
    # architecture and every option of the schedule and the samples (L, padding, low, high,
    # local_step and min_confidence are inference only)
    train_fields: ClassVar[tuple[str, ...]] = (
        "depth", "width", "psp_channels", "up_channels", "head_channels", "iterations", "batch_size", "crop_size",
        "lr", "weight_decay", "milestones", "gamma", "optimizer", "scale_min", "scale_max", "seed")

    def __init__(self, cfg: CascadePSPConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.net = build_net(cfg)
        load_released(self.net, self.checkpoints(cfg, ctx)["cascadepsp"])
        self.net.to(ctx.device).eval()

    def refine_binary(self, image: np.ndarray, masks: torch.Tensor) -> torch.Tensor:
        """Refine binary masks of one image.

        Args:
            image: (H, W, 3) uint8 RGB.
            masks: (K, H, W) bool (or 0/1) masks.

        Returns:
            (K, H, W) float32 refined foreground probabilities.
        """
        check_image(image)
        with torch.no_grad():
            im = normalize(np.ascontiguousarray(image), self.device)
            seg = masks.to(self.device, torch.float32)[:, None] * 2 - 1
            if self.cfg.mask_batch_size < 1:
                raise ValueError(f"cascadepsp.mask_batch_size must be >= 1, got {self.cfg.mask_batch_size}")
            # each mask's global step, crops and skip rule are its own: groups change rounding only
            out = [refine_masks(self.net, im, part, self.cfg.L, self.cfg.local_step, self.cfg.padding,
                                self.cfg.low, self.cfg.high) for part in seg.split(self.cfg.mask_batch_size)]
            return torch.cat(out)[:, 0]

    def refine(self, image: np.ndarray, coarse: Coarse | None) -> torch.Tensor:
        """Refine one image class by class.

        Args:
            image: (H, W, 3) uint8 RGB at full resolution.
            coarse: coarse probabilities (C, h, w) on ``self.device``.

        Returns:
            (H, W) int64 labels on ``self.device``.

        Raises:
            ValueError: no coarse map or a bad image.
        """
        return refine_per_class("cascadepsp", image, coarse, self.refine_binary, object_only=self.cfg.object_only,
                                object_rule=object_labels, min_confidence=self.cfg.min_confidence)

    @classmethod
    def checkpoints(cls, cfg: CascadePSPConfig, ctx: MethodContext) -> dict[str, Path]:
        return {"cascadepsp": Path(ctx.checkpoint_dir) / CHECKPOINT}

    @classmethod
    def train(cls, cfg: CascadePSPConfig, ctx: MethodContext, train_set: Dataset, paths: Mapping[str, Path]) -> None:
        """Train the refinement module on perturbed ground-truth masks of ``train_set``; save a plain
        state dict with the sidecar ``make train`` passes in ``ctx``.

        Raises:
            ValueError: empty training set.
        """
        if len(train_set) == 0:
            raise ValueError("cascadepsp training needs a non-empty training set")
        device = torch.device(ctx.device)
        samples = [(np.asarray(s.image), np.asarray(s.label)) for s in (train_set[i] for i in range(len(train_set)))]
        path = Path(paths["cascadepsp"])
        identity = resume.identity_of(loop.sidecar_of(ctx), cfg, steps=cfg.iterations, images=len(train_set))
        file = resume.ResumeFile(path, "cascadepsp", identity, resume.runtime_of(ctx))
        resume.read_in_process(file.runtime, "cascadepsp", "a sample's target class and boundary perturbation are "
                               "drawn from its pixels, so the draws cannot be planned ahead of them")
        with loop.seeded(device, cfg.seed):
            net = build_net(cfg).to(device)
            train_net(net, samples, cfg, ctx.dataset.ignore_index, device, resume_file=file)
        loop.save_checkpoint(loop.cpu_state(net), path, loop.sidecar_of(ctx))
        file.remove()
        log.info("cascadepsp: saved %s", path)
