"""CRM's multi-resolution inference with soft hand-over (release: ``test.py`` with
``offline_dataset_crm_pad32.py``); our own implementation.

For K binary masks of one image (:func:`refine_masks`):

1. image and masks are reflect-padded by ``pad`` pixels per side (32 in the release; at most
   the side minus one, which reflect padding needs); the queries are the pixel centres of the
   padded full-resolution grid, the cell its pixel size;
2. for each scale ``s`` in turn, image and the current mask are resized bilinearly
   (align_corners=True) to ``round(s * H_pad) x round(s * W_pad)`` (Python's ``round``, as the
   release); the features are computed once and the full-resolution queries decoded from them in
   chunks of ``chunk`` queries (chunking changes nothing);
3. a mask whose turn input is (almost) empty, ``sum(mask + 1) < 2``, gets probability 0 (the
   release's suppression of empty coarse input, checked on every turn's input);
4. soft hand-over: the turn's probability ``p`` is the next turn's mask as ``2p - 1``, not
   thresholded (:func:`handover`);
5. the last turn's probability, cropped back by the padding, is the result.

Images are (1, 3, H, W) ImageNet-normalised float32 (one image, K masks, features per mask).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from baselines.crm.net import CRMNet, grid_cells, grid_coords


def handover(prob: torch.Tensor) -> torch.Tensor:
    """A turn's probability (K, 1, H, W) in [0, 1] -> the next turn's mask in [-1, 1]: ``2p - 1``
    (soft; the release's ``(pred - 0.5) * 2``)."""
    return prob * 2 - 1


def scaled_size(h: int, w: int, s: float) -> tuple[int, int]:
    """The feature input size of scale ``s``: ``(round(s * h), round(s * w))``, at least 1 each."""
    return max(1, round(s * h)), max(1, round(s * w))


def decode_grid(net: CRMNet, feat: torch.Tensor, h: int, w: int, chunk: int) -> torch.Tensor:
    """Logits of every pixel centre of an (h, w) grid from features ``feat`` (B, C, fh, fw), in
    chunks of ``chunk`` queries: (B, 1, h, w) float32."""
    if chunk < 1:
        raise ValueError(f"crm.chunk must be >= 1, got {chunk}")
    coord = grid_coords(h, w, feat.device)
    cell = grid_cells(h, w, coord.shape[0], feat.device)
    projected = net.project(feat)
    parts = [net.decode(feat, coord[i:i + chunk], cell[i:i + chunk], projected) for i in range(0, coord.shape[0], chunk)]
    return torch.cat(parts, 1).reshape(feat.shape[0], 1, h, w)


def refine_masks(net: CRMNet, image: torch.Tensor, seg: torch.Tensor, scales: Sequence[float], pad: int = 32,
                 chunk: int = 802816, suppress_empty: bool = True) -> torch.Tensor:
    """Refine K masks of one image through the turns of the module docstring.

    Args:
        net: the network, in eval mode.
        image: (1, 3, H, W) float32 ImageNet-normalised image.
        seg: (K, 1, H, W) float32 masks in [-1, 1].
        scales: the turns' scales, in order (the release: 0.125, 0.25, 0.5, 1.0).
        pad: reflect padding per side (32).
        chunk: queries per decoder call (802 816 in the release).
        suppress_empty: zero the probability of a mask whose turn input is empty.

    Returns:
        (K, 1, H, W) float32 refined probabilities of the last turn.
    """
    if not scales:
        raise ValueError("crm.scales must name at least one scale")
    if any(s <= 0 for s in scales):
        raise ValueError(f"crm.scales must be positive, got {list(scales)}")
    k, _, h, w = seg.shape
    ph, pw = min(pad, h - 1), min(pad, w - 1)
    if ph or pw:
        image = F.pad(image, (pw, pw, ph, ph), mode="reflect")
        seg = F.pad(seg, (pw, pw, ph, ph), mode="reflect")
    hp, wp = seg.shape[-2:]
    mask = seg
    prob = torch.zeros_like(seg)
    for s in scales:
        size = scaled_size(hp, wp, s)
        im_s = F.interpolate(image, size=size, mode="bilinear", align_corners=True)
        mask_s = F.interpolate(mask, size=size, mode="bilinear", align_corners=True)
        feat = net.features(im_s.expand(k, -1, -1, -1), mask_s)
        prob = torch.sigmoid(decode_grid(net, feat, hp, wp, chunk))
        if suppress_empty:
            empty = (mask + 1).flatten(1).sum(1) < 2
            prob = torch.where(empty[:, None, None, None], torch.zeros_like(prob), prob)
        mask = handover(prob)
    return prob[:, :, ph:ph + h, pw:pw + w]
