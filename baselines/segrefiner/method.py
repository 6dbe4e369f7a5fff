"""SegRefiner (Wang et al., NeurIPS 2023) as a refinement method: a discrete-diffusion refiner of
binary masks applied per class (our own implementation of MengyuWang826/SegRefiner, Apache-2.0;
no code copied).

Parts: the denoiser (``unet``), the schedule, sampler and high-resolution inference
(``diffusion``), the object-crop + patch training (``train``).

Multi-class protocol (``refine``), as CascadePSP runs on the semantic tracks
    The coarse probabilities are upsampled to the image size (bilinear, align_corners=False);
    their argmax is the coarse label map. Each present class is one binary mask, refined alone
    (global step at ``model_size``, one local step on the uncertain patches, paste). On the
    refinement track (two classes) ``object_only`` refines the object mask alone, as the release. The release
    outputs the pasted mask ``>= 0.5``; here the pasted *probabilities* are kept (thresholding
    them at 0.5 is exactly the release's mask: ``diffusion.paste``) and a pixel takes the present
    class of highest refined probability (ties: lowest class id). A class with at most
    ``min_pixels`` coarse pixels is not refined (the release's empty-mask rule: zeros, no
    forward); a pixel that no refined class claims with any probability (every present class
    skipped) keeps its coarse label. An image with one coarse class keeps it (no forward).
    ``min_confidence > 0`` keeps the coarse label where the best refined probability is below
    it (CascadePSP's ADE20K option; 0 = plain argmax).

Sampling
    The reverse process draws uniform numbers at steps 5..2. Each mask's draws come from its own
    ``torch.Generator`` seeded by ``sample_seed``, the image's and coarse map's bytes (CRC-32) and
    the class id, so a run reproduces and does not depend on image order. ``samples = N > 1``
    runs N seeds per mask (``sample_seed``, ``sample_seed + 1``, ...) and averages their
    probabilities; :attr:`SegRefiner.last_spread` then holds, for the last image, the mean and
    standard deviation over the N seeds of the fraction of pixels whose single-seed label differs
    from the averaged one. The paper's ± std is over whole runs: evaluate with
    ``segrefiner.sample_seed=0,1,2,...`` and take the spread of the metrics.

Weights
    The release's ``segrefiner_{lr,hr}_latest.pth`` (mmcv checkpoints: ``state_dict`` with the UNet
    under ``denoise_model.``, and the texture loss's fixed Sobel kernels under
    ``loss_texture.sobel.conv_{x,y}.weight``) load strictly into ``DenoiseUNet`` at
    ``unet.RELEASED`` (:func:`load_unet` keeps the ``denoise_model.`` entries, drops exactly the
    two Sobel kernels, and refuses anything else). Set the config to the release values
    (``configs/methods/segrefiner.yaml``) and ``method_checkpoint_dir`` to a folder holding it
    as ``segrefiner.pt``. The synthetic default is a light UNet trained from scratch.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from baselines.segrefiner.diffusion import Inference, refine_mask, schedule
from baselines.segrefiner.train import train_unet
from baselines.segrefiner.unet import DenoiseUNet, build_unet
from bench.core.interface import Coarse, Dataset, Method, MethodContext, check_image, normalize
from bench.models.coarse import compute_coarse, upsampled_labels
from bench.models.state_dict import load_state_dict_strict, load_weights
from bench.training import loop, resume

log = logging.getLogger(__name__)

CHECKPOINT = "segrefiner.pt"
PREFIX = "denoise_model."
# the texture loss's fixed kernels, registered parameters of the released detector
LOSS_KEYS = ("loss_texture.sobel.conv_x.weight", "loss_texture.sobel.conv_y.weight")


@dataclass(frozen=True)
class SegRefinerConfig:
    """SegRefiner options (release values in brackets; defaults are the light synthetic variant).

    Attributes:
        base_channels: UNet width of the first level, a multiple of ``groups`` [128].
        channel_mult: width multiplier per level [1, 1, 2, 2, 4, 4].
        num_res_blocks: residual blocks per level [2].
        attention_strides: strides with self-attention besides the middle block [16, 32].
        num_heads: attention heads [4].
        dropout: residual-block dropout [0].
        groups: GroupNorm groups [32].
        steps: diffusion steps, also the time embedding's entries [6].
        alpha_start: ``alpha[0]`` of ``alpha = linspace(alpha_start, alpha_stop, steps)``, the chance
            that a pixel of ``x_0`` holds its ground-truth value [0.8].
        alpha_stop: ``alpha[steps - 1]`` [0: ``x_5`` is the coarse mask].
        model_size: side of the global step's square input and of the local patches, also the
            training crop size [256].
        fine_prob_thr: local patch centres are grid pixels whose fine probability is below this
            times the maximum [0.9].
        iou_thr: NMS IoU threshold of the local boxes [0.3, the BIG config; code default 0.2].
        batch_max: local patches per forward [32].
        min_pixels: a coarse mask with at most this many foreground pixels is not refined [128].
        local_step: run the local step [True].
        max_patches: most local patches per mask, the most uncertain first (0 = all, the
            release); the light default bounds the CPU time of masks with long boundaries.
        sample_seed: seed of the sampler's draws (combined with each image and class).
        samples: seeds averaged per mask (1 = one draw, as the release).
        min_confidence: keep the coarse label where the best refined probability is below this.
        object_only: on a two-class coarse map (the refinement track: class 1 is the object),
            refine the object mask alone and take it ``>= 0.5``, as the release on BIG (half the
            work); False refines both masks and takes the likelier.
        iterations: training steps [40000].
        batch_size: samples per step, each giving an object crop and (when found) a patch [8: 1 per
            GPU on 8 GPUs].
        lr: learning rate [4e-4].
        weight_decay: AdamW weight decay [0].
        milestones: steps where the learning rate is multiplied by ``gamma`` [20000, 35000].
        gamma: the decay factor [0.5].
        optimizer: ``adamw`` or ``adam`` [adamw].
        offline_prob: chance that a view's coarse mask is the backbone's coarse prediction rather
            than a perturbed ground truth [0.5: the release's "expanded" masks].
        iou_min: target IoU of the perturbed ground truth (drawn from ``U[iou_min, iou_max)`` when
            ``iou_max > iou_min``) [0.8].
        iou_max: see ``iou_min`` [0.8: fixed].
        patch_tries: draws for a full-resolution patch holding both labels [unbounded].
        seed: seed of the training samples, the corruption and the initialisation.
    """

    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_strides: tuple[int, ...] = ()
    num_heads: int = 4
    dropout: float = 0.0
    groups: int = 32
    steps: int = 6
    alpha_start: float = 0.8
    alpha_stop: float = 0.0
    model_size: int = 64
    fine_prob_thr: float = 0.9
    iou_thr: float = 0.3
    batch_max: int = 32
    min_pixels: int = 128
    local_step: bool = True
    max_patches: int = 8
    sample_seed: int = 0
    samples: int = 1
    min_confidence: float = 0.0
    object_only: bool = False
    iterations: int = 160
    batch_size: int = 6
    lr: float = 2e-3
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = (110, 140)
    gamma: float = 0.5
    optimizer: str = "adamw"
    offline_prob: float = 0.5
    iou_min: float = 0.8
    iou_max: float = 0.8
    patch_tries: int = 20
    seed: int = 0


def load_unet(net: DenoiseUNet, path: Path) -> None:
    """Load our weights (a plain UNet state dict) or the release's checkpoint strictly into ``net``.

    A release file is recognised by its ``denoise_model.`` keys (inside ``state_dict`` for an mmcv
    checkpoint): the prefix is stripped and exactly the two fixed Sobel kernels of the texture
    loss (:data:`LOSS_KEYS`) are dropped; any other key, missing or unexpected, fails.

    Raises:
        FileNotFoundError: no file at ``path``.
        RuntimeError: keys or shapes differ; the message lists the missing and unexpected keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = load_weights(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # an mmcv checkpoint (+ meta, optimizer)
        state = state["state_dict"]
    state = dict(state)
    if any(k.startswith(PREFIX) for k in state):
        state = {k[len(PREFIX):] if k.startswith(PREFIX) else k: v for k, v in state.items() if k not in LOSS_KEYS}
    load_state_dict_strict(net, state, source=str(path))


def combine(probs: torch.Tensor, classes: torch.Tensor, coarse_labels: torch.Tensor, min_confidence: float = 0.0) -> torch.Tensor:
    """Per-class refined probabilities -> labels (the module docstring's rule).

    Args:
        probs: (K, H, W) float32 refined probabilities of the K present classes (zeros for a
            class not refined).
        classes: (K,) int64 their ids, ascending.
        coarse_labels: (H, W) int64 coarse labels.
        min_confidence: keep the coarse label below this best probability.

    Returns:
        (H, W) int64 labels.
    """
    best, index = probs.max(0)
    labels = classes[index]
    keep = best <= 0 if min_confidence <= 0 else best < min_confidence
    return torch.where(keep, coarse_labels, labels)


def image_key(image: np.ndarray, labels: torch.Tensor) -> int:
    """CRC-32 of an image's bytes and its coarse labels: the per-image part of the sampler's seed."""
    crc = zlib.crc32(np.ascontiguousarray(image).tobytes())
    return zlib.crc32(labels.to(torch.uint8 if int(labels.max()) < 256 else torch.int32).cpu().numpy().tobytes(), crc)


def mask_seed(sample_seed: int, key: int, class_id: int) -> int:
    """The sampler seed of one mask: a 63-bit value from (sample_seed, image key, class id)."""
    state = np.random.SeedSequence([int(sample_seed) & 0xFFFFFFFF, int(key), int(class_id)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class SegRefiner(Method):
    """SegRefiner per class on the coarse labels; see the module docstring."""

    name: ClassVar[str] = "segrefiner"
    display_name: ClassVar[str] = "SegRefiner"
    version: ClassVar[int] = 1
    uses_coarse: ClassVar[bool] = True
    needs_backbone: ClassVar[bool] = True
    Config: ClassVar[type] = SegRefinerConfig
    train_fields: ClassVar[tuple[str, ...]] = (
        "base_channels", "channel_mult", "num_res_blocks", "attention_strides", "num_heads", "dropout", "groups",
        "steps", "alpha_start", "alpha_stop", "model_size", "iterations", "batch_size", "lr", "weight_decay",
        "milestones", "gamma", "optimizer", "offline_prob", "iou_min", "iou_max", "patch_tries", "seed")

    def __init__(self, cfg: SegRefinerConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        if cfg.samples < 1:
            raise ValueError(f"segrefiner.samples must be >= 1, got {cfg.samples}")
        self.net = build_unet(cfg)
        load_unet(self.net, self.checkpoints(cfg, ctx)["segrefiner"])
        self.net.to(ctx.device).eval()
        self.alpha, self.alpha_prev = schedule(cfg.steps, cfg.alpha_start, cfg.alpha_stop)
        self.settings = Inference(cfg.model_size, cfg.fine_prob_thr, cfg.iou_thr, cfg.batch_max, cfg.min_pixels,
                                  cfg.local_step, cfg.max_patches)
        self.last_spread: tuple[float, float] | None = None

    def refine_binary(self, image: np.ndarray, mask: torch.Tensor, seed: int) -> torch.Tensor:
        """Refine one binary mask with one sampler seed.

        Args:
            image: (H, W, 3) uint8 RGB.
            mask: (H, W) bool coarse mask.
            seed: the sampler's seed.

        Returns:
            (H, W) float32 refined probabilities (``>= 0.5``: the release's refined mask).
        """
        check_image(image)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(seed))
        with torch.no_grad():
            im = normalize(np.ascontiguousarray(image), self.device)
            return refine_mask(self.net, im, mask, self.settings, self.alpha, self.alpha_prev, gen, self.net.stride)

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
        if coarse is None:
            raise ValueError("segrefiner refines a coarse map; got coarse=None")
        check_image(image)
        self.last_spread = None
        with torch.no_grad():
            labels = upsampled_labels(coarse.probs, image.shape[:2])
            classes = torch.unique(labels)
            if classes.numel() == 1:
                return labels
            key = image_key(image, labels)
            if self.cfg.object_only and coarse.probs.shape[0] == 2:
                classes = classes[classes == 1]
            runs = []
            for k in range(self.cfg.samples):
                runs.append(torch.stack([self.refine_binary(image, labels == c, mask_seed(self.cfg.sample_seed + k, key, int(c)))
                                         for c in classes]))
            probs = torch.stack(runs).mean(0)
            out = self._labels(probs, classes, labels)
            if len(runs) > 1:
                differ = torch.stack([(self._labels(r, classes, labels) != out).float().mean() for r in runs])
                self.last_spread = (float(differ.mean()), float(differ.std()))
                log.debug("segrefiner: %d seeds, single-seed labels differ from the mean on %.4f ± %.4f of the pixels",
                          len(runs), *self.last_spread)
            return out

    def record_extras(self) -> dict[str, float | int]:
        """With ``samples > 1``: the seeds averaged and the last image's spread (fraction of pixels whose
        single-seed label differs from the average: mean and std over the seeds), for its image record."""
        if self.last_spread is None:
            return {}
        return {"samples": int(self.cfg.samples), "seed_disagreement_mean": self.last_spread[0],
                "seed_disagreement_std": self.last_spread[1]}

    def _labels(self, probs: torch.Tensor, classes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(K, H, W) refined probabilities -> (H, W) int64 labels: the object ``>= 0.5`` under
        ``object_only`` on a two-class map, else :func:`combine`."""
        if self.cfg.object_only and classes.tolist() == [1]:
            return (probs[0] >= 0.5).long()
        return combine(probs, classes, labels, self.cfg.min_confidence)

    @classmethod
    def checkpoints(cls, cfg: SegRefinerConfig, ctx: MethodContext) -> dict[str, Path]:
        return {"segrefiner": Path(ctx.checkpoint_dir) / CHECKPOINT}

    @classmethod
    def train(cls, cfg: SegRefinerConfig, ctx: MethodContext, train_set: Dataset, paths: Mapping[str, Path]) -> None:
        """Train the denoiser on object crops and patches of ``train_set`` (coarse masks: the
        backbone's predictions and perturbed ground truth); save a plain state dict with the
        sidecar ``make train`` passes in ``ctx``.

        Raises:
            ValueError: empty training set, or no backbone for the offline coarse masks.
        """
        if len(train_set) == 0:
            raise ValueError("segrefiner training needs a non-empty training set")
        if ctx.backbone is None:
            raise ValueError("segrefiner training needs the backbone (its coarse predictions are the offline masks)")
        device = torch.device(ctx.device)
        samples = []
        for i in range(len(train_set)):
            s = train_set[i]
            image = np.asarray(s.image)
            coarse = compute_coarse(ctx.backbone, image, ctx.input_size, device)
            offline = upsampled_labels(coarse.probs, image.shape[:2]).cpu().numpy()
            samples.append((image, np.asarray(s.label), offline))
        path = Path(paths["segrefiner"])
        identity = resume.identity_of(loop.sidecar_of(ctx), cfg, steps=cfg.iterations, images=len(train_set))
        file = resume.ResumeFile(path, "segrefiner", identity, resume.runtime_of(ctx))
        resume.read_in_process(file.runtime, "segrefiner", "a sample's class, crop and coarse mask are drawn from its "
                               "pixels, so the draws cannot be planned ahead of them")
        with loop.seeded(device, cfg.seed):
            net = build_unet(cfg).to(device)
            train_unet(net, samples, cfg, ctx.dataset.ignore_index, device, resume_file=file)
        loop.save_checkpoint(loop.cpu_state(net), path, loop.sidecar_of(ctx))
        file.remove()
        log.info("segrefiner: saved %s", path)
