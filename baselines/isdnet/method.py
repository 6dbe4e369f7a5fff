"""ISDNet (Guo et al., "ISDNet: Integrating Shallow and Deep Networks for Efficient Ultra-high
Resolution Segmentation", CVPR 2022; cedricgsh/ISDNet, Apache-2.0) as a method of the harness. Our
own implementation (Apache-2.0), written from the behaviour of the authors' code
(``shared/specs/refinement_track.md`` §5); no code copied.

ISDNet is a direct ultra-high-resolution segmenter, not a refiner: ``refine`` ignores the coarse
map (``uses_coarse = False``, so the runner neither computes nor times it) and needs no shared
backbone. It runs on the whole image at full resolution, as the release's ``mode='whole'`` test:
a deep branch (ResNetV1c-18 + ASPP) on the image downsampled 4x, a shallow STDC-like branch on
its Laplacian residuals, two relational-aware fusions, and the fused 1/8 logits upsampled
bilinearly. Parts: ``net`` (module), ``loss`` (the seven terms), ``train`` (crops and loop).

Weights: one file, ``isdnet.pt``: the whole module's state dict in the release's key layout
(mmseg 0.16: ``backbone.``, ``decode_head.``, ``refine_head.``, ``auxiliary_head.``; the ISD head
holds 382 entries at the release's size, 120 of them alias keys of the shallow net). The
authors' file (a dict with ``state_dict``) loads with :func:`load_release_state`, strictly, with
:data:`RELEASE_ARCH` and the data set's class count (DeepGlobe 7, Inria 2).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from baselines.isdnet.loss import CE_AVERAGES
from baselines.isdnet.net import ISDNet
from baselines.isdnet.train import train_net
from bench.core.interface import Coarse, Dataset, Method, MethodContext, check_image, normalize
from bench.models.backbones.resnet import load_partial_strict
from bench.models.state_dict import load_weights
from bench.training import loop, resume

log = logging.getLogger(__name__)

CHECKPOINT = "isdnet.pt"
RELEASE_ARCH: dict[str, Any] = {"base_width": 64, "channels": 128, "r": 16, "dilations": (1, 12, 24, 36),
                                "aux_channels": 64, "shallow_base": 64, "shallow_layers": (2, 2)}
ALIASES = ("x2.", "x4.", "x8.", "x16.")  # the shallow net's second names of its ``features`` modules


@dataclass(frozen=True)
class ISDNetConfig:
    """ISDNet options. Defaults are the synthetic light variant; the release's values are noted.

    Attributes:
        base_width: ResNetV1c-18 base width of the deep branch (release 64; synthetic 16).
        channels: C, the width of the ASPP head, the fusions and the heads (release 128; synthetic 32).
        r: groups of the relation MLP; r^2 must equal 2C and r divide C (release 16; synthetic 8).
        dilations: ASPP dilations on the deep branch's 1/32 map (release (1, 12, 24, 36); synthetic
            (1, 2, 4, 6), scaled to its small map).
        aux_channels: width of the FCN auxiliary head on layer3 (release 64; synthetic 16).
        shallow_base: base width of the shallow net, C / 2 (release 64; synthetic 16).
        shallow_layers: bottlenecks per shallow stage (release (2, 2); synthetic (1, 1)).
        down_ratio: the deep branch's downsampling of the image (4, nearest).
        dropout: dropout before the ``conv_seg`` of the ASPP, FCN and fused heads (0.1).
        crop_size: (w, h) of a training crop (release 1224x1224 of DeepGlobe's 2448x2448 images;
            synthetic 256x256).
        batch_size: crops per step, at least 2 (the attention BN cannot train on one; release 2 per
            GPU x 4 GPUs, SyncBN).
        iterations: optimiser steps (release 80 000 at DeepGlobe, 40 000 at Inria).
        optimizer: sgd (the release), adam or adamw.
        lr: initial learning rate (release 0.01).
        min_lr: floor of the poly decay (release 1e-4).
        momentum: SGD momentum (0.9).
        weight_decay: 5e-4.
        recon_weight: weight of the SR reconstruction MSE (0.1).
        fa_weight: weight of the feature-affinity L1 (1.0).
        fcn_weight: weight of the FCN auxiliary CE (0.4).
        ce_average: "all" (mmseg 0.16, the release: ignored pixels count as 0 in the mean) or
            "valid" (the mean over labelled pixels only).
        cat_max_ratio: a crop is redrawn (up to 10 times) while one class covers this share (0.75).
        hflip: horizontal flip with p 0.5 (release: yes).
        rotate: rotation by 90/270 degrees with p 0.5 on square crops (release: yes; street scenes: no).
        photometric: brightness and contrast jitter (the RGB part of the release's photometric distortion).
        seed: seed of initialisation and sampling.
    """

    base_width: int = 16
    channels: int = 32
    r: int = 8
    dilations: tuple[int, ...] = (1, 2, 4, 6)
    aux_channels: int = 16
    shallow_base: int = 16
    shallow_layers: tuple[int, int] = (1, 1)
    down_ratio: int = 4
    dropout: float = 0.1
    crop_size: tuple[int, int] = (256, 256)
    batch_size: int = 4
    iterations: int = 300
    optimizer: str = "sgd"
    lr: float = 0.01
    min_lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    recon_weight: float = 0.1
    fa_weight: float = 1.0
    fcn_weight: float = 0.4
    ce_average: str = "all"
    cat_max_ratio: float = 0.75
    hflip: bool = True
    rotate: bool = False
    photometric: bool = True
    seed: int = 0


def arch(cfg: Any) -> dict[str, Any]:
    """The constructor arguments of :class:`ISDNet` a config names."""
    return {"base_width": cfg.base_width, "channels": cfg.channels, "r": cfg.r, "dilations": tuple(cfg.dilations),
            "aux_channels": cfg.aux_channels, "shallow_base": cfg.shallow_base,
            "shallow_layers": tuple(cfg.shallow_layers), "down_ratio": cfg.down_ratio, "dropout": cfg.dropout}


def check_config(cfg: ISDNetConfig) -> None:
    """Raise ValueError naming the option that cannot work."""
    if cfg.r * cfg.r != 2 * cfg.channels or cfg.channels % cfg.r:
        raise ValueError(f"isdnet.r must satisfy r^2 = 2 * channels and divide channels, got r={cfg.r}, "
                         f"channels={cfg.channels} (e.g. channels 32, r 8; the release 128, 16)")
    if 2 * cfg.shallow_base != cfg.channels:
        raise ValueError(f"isdnet.shallow_base must be channels / 2, got {cfg.shallow_base} for channels {cfg.channels}")
    if cfg.batch_size < 2:
        raise ValueError(f"isdnet.batch_size must be >= 2: the BN of the pooled attention vectors cannot train on "
                         f"one image, got {cfg.batch_size}")
    if cfg.ce_average not in CE_AVERAGES:
        raise ValueError(f"isdnet.ce_average must be one of {list(CE_AVERAGES)}, got {cfg.ce_average!r}")


def clean_release_state(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of an mmseg checkpoint (``state_dict`` inside, or the mapping itself), ``module.`` stripped."""
    if isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items()}


def check_aliases(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Each ``refine_head.stdc_net.x{2,4,8,16}.0.i.*`` alias must equal ``refine_head.stdc_net.features.i.*``
    (one module, two names): a file where they differ is refused rather than loaded in key order."""
    prefix = "refine_head.stdc_net."
    for key, value in state.items():
        rest = key.removeprefix(prefix)
        if key.startswith(prefix) and rest.startswith(ALIASES):
            twin = prefix + "features." + rest.split(".", 2)[2]
            if twin in state and not torch.equal(state[twin], value):
                raise RuntimeError(f"{source}: alias {key} differs from {twin} (the same module's weights)")


def load_release_state(model: ISDNet, path: str | Path) -> None:
    """Load an ISDNet file (ours, or the authors' mmseg checkpoint) strictly into ``model``.

    Tolerated: a ``state_dict`` wrapper and a leading ``module.``; missing ``num_batches_tracked``.

    Raises:
        FileNotFoundError: no file.
        TypeError: the file holds no state dict.
        RuntimeError: missing / unexpected keys, shape mismatches, or an alias that differs from its twin.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"isdnet checkpoint not found: {path}")
    state = load_weights(path)
    if not isinstance(state, Mapping):
        raise TypeError(f"{path} does not hold a state dict (name -> tensor)")
    state = clean_release_state(state)
    check_aliases(state, f"isdnet checkpoint {path}")
    load_partial_strict(model, state, source=f"isdnet checkpoint {path}")


@torch.no_grad()
def predict(model: ISDNet, image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (H, W) int64 labels: the whole image, one forward, argmax."""
    return model(normalize(image, device))[0].argmax(0)


class ISDNetMethod(Method):
    """ISDNet's own prediction on the whole image; the coarse map is not used (module docstring)."""

    name: ClassVar[str] = "isdnet"
    display_name: ClassVar[str] = "ISDNet"
    version: ClassVar[int] = 1
    uses_coarse: ClassVar[bool] = False
    needs_backbone: ClassVar[bool] = False
    Config: ClassVar[type] = ISDNetConfig
    train_fields: ClassVar[tuple[str, ...]] = (
        "base_width", "channels", "r", "dilations", "aux_channels", "shallow_base", "shallow_layers", "down_ratio",
        "dropout", "crop_size", "batch_size", "iterations", "optimizer", "lr", "min_lr", "momentum", "weight_decay",
        "recon_weight", "fa_weight", "fcn_weight", "ce_average", "cat_max_ratio", "hflip", "rotate", "photometric",
        "seed")

    def __init__(self, cfg: ISDNetConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        check_config(cfg)
        self.model = ISDNet(ctx.num_classes, **arch(cfg))
        load_release_state(self.model, self.checkpoints(cfg, ctx)["isdnet"])
        self.model.to(ctx.device).eval()
        self.label = "ISDNet"

    def refine(self, image: np.ndarray, coarse: Coarse | None) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (H, W) int64 labels on the method's device (``coarse`` unused)."""
        check_image(image)
        return predict(self.model, image, self.device)

    @classmethod
    def timing_model(cls, cfg: ISDNetConfig, num_classes: int) -> torch.nn.Module:
        """The network without weights, as the published FPS protocol builds it: ``forward`` takes a
        (1, 3, H, W) float tensor and returns (1, K, H, W) logits (the release's ``forward_dummy``)."""
        check_config(cfg)
        return ISDNet(num_classes, **arch(cfg))

    @classmethod
    def checkpoints(cls, cfg: ISDNetConfig, ctx: MethodContext) -> dict[str, Path]:
        return {"isdnet": Path(ctx.checkpoint_dir) / CHECKPOINT}

    @classmethod
    def train(cls, cfg: ISDNetConfig, ctx: MethodContext, train_set: Dataset, paths: Mapping[str, Path]) -> None:
        """Train the whole model on random crops of ``train_set`` (``baselines.isdnet.train``) and save
        its state dict (release layout) with the sidecar ``make train`` passes in ``ctx``.

        Raises:
            ValueError: empty training set, a bad option, or an image smaller than ``crop_size``.
        """
        check_config(cfg)
        if len(train_set) == 0:
            raise ValueError("isdnet training needs a non-empty training set")
        device = torch.device(ctx.device)
        samples = [(np.asarray(s.image), np.asarray(s.label)) for s in (train_set[i] for i in range(len(train_set)))]
        cw, ch = (int(v) for v in cfg.crop_size)
        small = [i for i, (_, lab) in enumerate(samples) if lab.shape[0] < ch or lab.shape[1] < cw]
        if small:
            h, w = samples[small[0]][1].shape
            raise ValueError(f"isdnet.crop_size {cw}x{ch} exceeds training image {small[0]} ({w}x{h}); "
                             f"set isdnet.crop_size to at most the image size")
        path = Path(paths["isdnet"])
        identity = resume.identity_of(loop.sidecar_of(ctx), cfg, steps=cfg.iterations, images=len(train_set))
        file = resume.ResumeFile(path, "isdnet", identity, resume.runtime_of(ctx))
        resume.read_in_process(file.runtime, "isdnet", "the crops are drawn from the images held in memory")
        with loop.seeded(device, cfg.seed):
            net = ISDNet(ctx.num_classes, **arch(cfg)).to(device)
            train_net(net, samples, cfg, ctx.dataset.ignore_index, device, resume_file=file)
        loop.save_checkpoint(loop.cpu_state(net), path, loop.sidecar_of(ctx))
        file.remove()
        log.info("isdnet: saved %s", path)
