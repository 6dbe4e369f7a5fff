"""ISDNet's seven training losses (``isdhead.py`` and the configs of cedricgsh/ISDNet), our own code.

Terms (names as the release's loss dict after mmseg's prefixes, weights applied):

- ``decode.loss_seg``: CE of the deep branch's ASPP logits (weight 1);
- ``refine.loss_seg``: CE of the fused 1/8 logits (weight 1);
- ``aux_1.loss_seg``, ``aux_2.loss_seg``: CE of the two fusion aux heads (``aux16``, ``aux8``; weight 1);
- ``aux_3.recon_losses``: 0.1 x MSE between the SR image (upsampled bilinearly to the input) and
  the sum of the two Laplacian residuals;
- ``aux_4.fa_loss``: 1.0 x L1 between the (HW x HW) similarity matrices of the deep feature and of
  the SR feature resized (bilinear) to it; each channel is L2-normalised over the pixels first,
  as the release; the SR side is detached, so this term trains the deep branch only;
- ``aux.loss_seg``: 0.4 x CE of the FCN auxiliary head on layer3.

Every CE upsamples the logits bilinearly (align_corners False) to the label and ignores
``ignore_index``. mmseg 0.16 (the release's) averages over *all* pixels, ignored ones counting 0
(``ce_average="all"``); later mmseg averages over the kept ones (``"valid"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from baselines.isdnet.net import Outputs

TERMS = ("decode.loss_seg", "refine.loss_seg", "aux_1.loss_seg", "aux_2.loss_seg", "aux_3.recon_losses",
         "aux_4.fa_loss", "aux.loss_seg")
CE_AVERAGES = ("all", "valid")


def seg_ce(logits: torch.Tensor, label: torch.Tensor, ignore_index: int | None, average: str = "all") -> torch.Tensor:
    """CE of (N, K, h, w) logits upsampled to the (N, H, W) int64 label; () float.

    ``average``: "all" divides by every pixel (mmseg 0.16), "valid" by the non-ignored ones.
    """
    if average not in CE_AVERAGES:
        raise ValueError(f"isdnet.ce_average must be one of {list(CE_AVERAGES)}, got {average!r}")
    logits = F.interpolate(logits, size=label.shape[-2:], mode="bilinear", align_corners=False)
    ignore = -100 if ignore_index is None else ignore_index
    loss = F.cross_entropy(logits, label, ignore_index=ignore, reduction="none")
    if average == "all":
        return loss.mean()
    kept = (label != ignore).sum().clamp_min(1)
    return loss.sum() / kept


def recon_loss(sr: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE of the (N, 3, h, w) SR image upsampled bilinearly to the (N, 3, H, W) target; () float."""
    if sr.shape[2:] != target.shape[2:]:
        sr = F.interpolate(sr, size=target.shape[2:], mode="bilinear", align_corners=False)
    return F.mse_loss(sr, target)


def affinity_loss(deep: torch.Tensor, sr_feat: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """L1 between the similarity matrices of ``deep`` (N, C, h, w) and ``sr_feat`` (N, C, h', w')
    resized to (h, w); the SR side is detached (it receives no gradient from this term). () float."""
    if sr_feat.shape[2:] != deep.shape[2:]:
        sr_feat = F.interpolate(sr_feat, size=deep.shape[2:], mode="bilinear", align_corners=False)

    def similarity(f: torch.Tensor) -> torch.Tensor:
        flat = f.flatten(2)  # (N, C, hw)
        flat = flat / (flat.norm(p=2, dim=2, keepdim=True) + eps)  # per channel, over the pixels (the release)
        return flat.transpose(1, 2) @ flat  # (N, hw, hw)

    return F.l1_loss(similarity(deep), similarity(sr_feat).detach())


def isd_losses(o: Outputs, label: torch.Tensor, ignore_index: int | None, recon_weight: float = 0.1,
               fa_weight: float = 1.0, fcn_weight: float = 0.4, ce_average: str = "all") -> dict[str, torch.Tensor]:
    """The seven weighted terms of :data:`TERMS` for a training forward ``o`` (``ISDNet.run(x, train=True)``)
    and the (N, H, W) int64 label; each a () float tensor. The training loss is their sum."""
    missing = [k for k in ("aux16", "aux8", "deep_logits", "fcn_logits", "deep", "sr_feat", "sr", "residual")
               if getattr(o, k) is None]
    if missing:
        raise ValueError(f"isd_losses needs a training forward (run(x, train=True)); missing {missing}")

    def ce(x: torch.Tensor | None) -> torch.Tensor:
        assert x is not None
        return seg_ce(x, label, ignore_index, ce_average)

    assert o.sr is not None and o.residual is not None and o.deep is not None and o.sr_feat is not None
    return {
        "decode.loss_seg": ce(o.deep_logits),
        "refine.loss_seg": ce(o.out),
        "aux_1.loss_seg": ce(o.aux16),
        "aux_2.loss_seg": ce(o.aux8),
        "aux_3.recon_losses": recon_weight * recon_loss(o.sr, o.residual),
        "aux_4.fa_loss": fa_weight * affinity_loss(o.deep, o.sr_feat),
        "aux.loss_seg": fcn_weight * ce(o.fcn_logits),
    }
