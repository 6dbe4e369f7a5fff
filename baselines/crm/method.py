"""CRM, the Continuous Refinement Model (Shen, Zhang, Qi, Jia et al., CVPR 2022), as a refinement
method: class-agnostic binary refinement applied per class.

This is our own implementation, written from the paper and the behaviour of the authors' code
(dvlab-research/Entity, ``High-Quality-Segmention/``); that code is licensed CC BY-NC and none of
it is copied here. Parts: the network (``baselines.crm.net``: dilated ResNet on image + mask,
three-tap fusion, continuous implicit decoder), the multi-resolution inference with soft
hand-over (``baselines.crm.infer``), the training on perturbed masks with the four-term loss
(``baselines.crm.train``; the perturbation is CascadePSP's, ``baselines.common.perturb``).

Multi-class protocol (``refine``), as CascadePSP's here
    The coarse probabilities are upsampled to the image size (bilinear, align_corners=False) and
    their argmax is the coarse label map (Downsample's output). Each class present in that map is
    one binary mask (``2 * (labels == c) - 1``), refined in groups of ``mask_batch_size`` (each
    mask's turns are its own: groups change float rounding only). A pixel takes the present class
    of highest refined probability (ties: lowest class id); classes absent from the coarse map are
    never refined or predicted; a one-class map is returned as is. ``min_confidence > 0`` keeps the
    coarse label where the best refined probability is below it. On the binary refinement track
    (C = 2) this refines the object and the background mask and keeps the likelier; with
    ``object_only`` the object mask alone is refined and thresholded at 0.5, as the release on BIG.

Weights
    The released file (``model_45705``; a ``DataParallel`` state dict, keys ``module.feats...``,
    367 entries) loads strictly into ``CRMNet(**RELEASED)`` after the ``module.`` prefix is
    stripped (:func:`load_released`); a mismatch lists the missing and unexpected keys. Set the
    config to :data:`RELEASED` (``configs/methods/crm.yaml`` names the values) and
    ``method_checkpoint_dir`` to a folder holding the file as ``crm.pt``. The synthetic default is
    a light variant (ResNet-18 at width 16 without ``layer4``, taps 16/16/32, F of 64, MLP
    (32, 32)) trained from scratch: never the released model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from baselines.common.per_class import refine_per_class
from baselines.crm.infer import refine_masks
from baselines.crm.net import CRMNet
from baselines.crm.train import train_net
from bench.core.interface import Coarse, Dataset, Method, MethodContext, check_image, normalize
from bench.models.state_dict import clean_state_dict, load_state_dict_strict, load_weights
from bench.training import loop, resume

log = logging.getLogger(__name__)

CHECKPOINT = "crm.pt"
# the released CRMNet(backend='resnet50'): 367 state entries, 24 265 697 parameters
RELEASED: dict[str, Any] = {"depth": 50, "width": 64, "layer4": True, "tap_channels": (64, 64, 128),
                            "feature_channels": 256, "hidden": (32, 32, 32, 32), "dropout": 0.5}
RELEASED_INFERENCE: dict[str, Any] = {"scales": (0.125, 0.25, 0.5, 1.0), "pad": 32, "chunk": 802816}


@dataclass(frozen=True)
class CRMConfig:
    """CRM options (release values in brackets; defaults are the light synthetic variant).

    Attributes:
        depth: extractor ResNet depth, 18, 34 or 50 [50].
        width: extractor base width [64].
        layer4: build the extractor's ``layer4`` (computed and discarded, as the release) [True].
        tap_channels: reduced channels of the stem, ``layer1`` and ``layer3`` taps [64, 64, 128].
        feature_channels: channels of the fused feature map F [256].
        hidden: the implicit decoder's hidden widths [32, 32, 32, 32].
        dropout: dropout in the fusion, training only [0.5].
        scales: the inference turns' scales, in order; each turn's soft output is the next
            turn's mask [0.125, 0.25, 0.5, 1.0; default 0.5, 1.0 on the small synthetic images].
        pad: reflect padding per side before inference, pixels [32].
        chunk: queries per decoder call (inference and training); results do not depend on it
            [802816 at inference, 50176 in training].
        suppress_empty: zero the output of a mask whose turn input is empty (``sum(m + 1) < 2``) [True].
        min_confidence: keep the coarse label where the best refined probability is below this
            (0 = plain argmax over the present classes).
        object_only: on a two-class coarse map (the refinement track: class 1 is the object), refine
            the object mask alone and label ``p > 0.5`` object, as the release on BIG (its
            ``_01mask`` output) does, instead of refining both classes' masks (half the work).
        mask_batch_size: class masks per forward, the declared batch setting (``batch_option``;
            ``bench.core.batch``); 1 as the release refines one mask per call.
        iterations: training steps [45000].
        batch_size: crops per step [12].
        crop_size: training crop (w, h), pixels [224, 224].
        lr: Adam learning rate [2.25e-4].
        weight_decay: weight decay [1e-4].
        milestones: steps at which the learning rate is multiplied by ``gamma`` [22500, 37500].
        gamma: the decay factor [0.1].
        optimizer: adam, adamw or sgd [adam].
        w_ce: weight of the binary cross-entropy on the logits [README: 1.0].
        w_l1: weight of the L1 loss on the probabilities [0.5].
        w_l2: weight of the L2 (MSE) loss on the probabilities [0.5].
        w_grad: weight of the Sobel-gradient L1 loss [2.0].
        iou_min: lower end of the perturbed input mask's target IoU, drawn uniformly [0.8].
        iou_max: upper end of that draw [1.0].
        scale_min: smallest random rescale of a training image before the crop (a harness
            addition: the early turns see reduced images; no release value).
        scale_max: largest random rescale before the crop.
        seed: seed of the training samples and the initialisation.
    """

    depth: int = 18
    width: int = 16
    layer4: bool = False
    tap_channels: tuple[int, int, int] = (16, 16, 32)
    feature_channels: int = 64
    hidden: tuple[int, ...] = (32, 32)
    dropout: float = 0.0
    scales: tuple[float, ...] = (0.5, 1.0)
    pad: int = 32
    chunk: int = 16384
    suppress_empty: bool = True
    min_confidence: float = 0.0
    object_only: bool = False
    mask_batch_size: int = 1
    iterations: int = 400
    batch_size: int = 8
    crop_size: tuple[int, int] = (80, 80)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = (250, 350)
    gamma: float = 0.1
    optimizer: str = "adam"
    w_ce: float = 1.0
    w_l1: float = 0.5
    w_l2: float = 0.5
    w_grad: float = 2.0
    iou_min: float = 0.8
    iou_max: float = 1.0
    scale_min: float = 0.25
    scale_max: float = 1.0
    seed: int = 0

    batch_option: ClassVar[str] = "mask_batch_size"  # the harness reads it (bench.core.batch)


def build_net(cfg: Any) -> CRMNet:
    """The network ``cfg``'s architecture fields describe."""
    return CRMNet(cfg.depth, cfg.width, bool(cfg.layer4), tuple(cfg.tap_channels), cfg.feature_channels,
                  tuple(cfg.hidden), cfg.dropout)


def load_released(net: torch.nn.Module, path: Path) -> None:
    """Load our weights or the release's file strictly into ``net``.

    A leading ``module.`` (DataParallel) or ``model.`` is stripped
    (``bench.models.state_dict.clean_state_dict``); nothing else is forgiven (the release holds
    its BN counters).

    Raises:
        FileNotFoundError: no file at ``path``.
        RuntimeError: keys or shapes differ; the message lists the missing and unexpected keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"crm checkpoint not found: {path}")
    load_state_dict_strict(net, clean_state_dict(load_weights(path)), source=str(path))


class CRM(Method):
    """CRM per class on the Downsample labels; see the module docstring."""

    name: ClassVar[str] = "crm"
    display_name: ClassVar[str] = "CRM"
    version: ClassVar[int] = 1
    uses_coarse: ClassVar[bool] = True
    needs_backbone: ClassVar[bool] = True
    Config: ClassVar[type] = CRMConfig
    # architecture, schedule, loss and samples (scales, pad, chunk, suppress_empty, min_confidence
    # and mask_batch_size are inference only; chunk changes no training number either)
    train_fields: ClassVar[tuple[str, ...]] = (
        "depth", "width", "layer4", "tap_channels", "feature_channels", "hidden", "dropout", "iterations",
        "batch_size", "crop_size", "lr", "weight_decay", "milestones", "gamma", "optimizer", "w_ce", "w_l1",
        "w_l2", "w_grad", "iou_min", "iou_max", "scale_min", "scale_max", "seed")

    def __init__(self, cfg: CRMConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        if cfg.mask_batch_size < 1:
            raise ValueError(f"crm.mask_batch_size must be >= 1, got {cfg.mask_batch_size}")
        self.net = build_net(cfg)
        load_released(self.net, self.checkpoints(cfg, ctx)["crm"])
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
        cfg = self.cfg
        with torch.no_grad():
            im = normalize(np.ascontiguousarray(image), self.device)
            seg = masks.to(self.device, torch.float32)[:, None] * 2 - 1
            out = [refine_masks(self.net, im, part, tuple(cfg.scales), cfg.pad, cfg.chunk, cfg.suppress_empty)
                   for part in seg.split(cfg.mask_batch_size)]
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
        return refine_per_class("crm", image, coarse, self.refine_binary, object_only=self.cfg.object_only,
                                object_rule=lambda prob: (prob > 0.5).long(), min_confidence=self.cfg.min_confidence)

    @classmethod
    def checkpoints(cls, cfg: CRMConfig, ctx: MethodContext) -> dict[str, Path]:
        return {"crm": Path(ctx.checkpoint_dir) / CHECKPOINT}

    @classmethod
    def train(cls, cfg: CRMConfig, ctx: MethodContext, train_set: Dataset, paths: Mapping[str, Path]) -> None:
        """Train the network on perturbed ground-truth masks of ``train_set``; save a plain state
        dict with the sidecar ``make train`` passes in ``ctx``.

        Raises:
            ValueError: empty training set.
        """
        if len(train_set) == 0:
            raise ValueError("crm training needs a non-empty training set")
        device = torch.device(ctx.device)
        samples = [(np.asarray(s.image), np.asarray(s.label)) for s in (train_set[i] for i in range(len(train_set)))]
        path = Path(paths["crm"])
        identity = resume.identity_of(loop.sidecar_of(ctx), cfg, steps=cfg.iterations, images=len(train_set))
        file = resume.ResumeFile(path, "crm", identity, resume.runtime_of(ctx))
        resume.read_in_process(file.runtime, "crm", "a sample's target class and boundary perturbation are "
                               "drawn from its pixels, so the draws cannot be planned ahead of them")
        with loop.seeded(device, cfg.seed):
            net = build_net(cfg).to(device)
            train_net(net, samples, cfg, ctx.dataset.ignore_index, device, resume_file=file)
        loop.save_checkpoint(loop.cpu_state(net), path, loop.sidecar_of(ctx))
        file.remove()
        log.info("crm: saved %s", path)
