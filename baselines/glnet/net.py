"""The GLNet module (``fpn`` of VITA-Group/GLNet's ``fpn_global_local_fmreg_ensemble.py``), our code.

State-dict layout = the release's (after stripping DataParallel's ``module.``):
``resnet_global.*``, ``resnet_local.*`` (ResNet bodies, ``_glnet_resnet``), ``fpn_global.*``,
``fpn_local.*`` (heads, ``_glnet_fpn``), ``ensemble_conv`` (3x3 8Hd->C on [local ps3, global ps3
crop]). The release keeps its intermediate maps in attributes between calls; here every step is a
pure function of its inputs:

- :meth:`GLNet.global_branch`: the global image (1, 3, h_g, w_g) -> its maps (stage 1), or with
  ``ext`` the aggregated local maps (stage 3).
- :meth:`GLNet.local_branch`: patches (B, 3, h_p, w_p) plus a global result -> local maps; every
  local layer reads the global map cropped to the patch (global -> local sharing).
- :func:`aggregate` (the release's ``_merge_local``): per-patch local maps pasted into canvases of
  the global maps' sizes and divided by the coverage template (local -> global sharing).
- :meth:`GLNet.ensemble`: ensemble_conv on [local ps3, global ps3 cropped and resized].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from baselines.glnet.fpn import GlobalFPN, LocalFPN, resize
from baselines.glnet.patches import PatchGrid, feature_box
from baselines.glnet.resnet import GLResNet

SHARED = ("c", "ps0", "ps1", "ps2")  # the maps one branch hands to the other


@dataclass
class Branch:
    """One branch's maps for a batch.

    Attributes:
        c: (c2, c3, c4, c5) backbone maps.
        out: (N, C, h/4, w/4) logits.
        ps0, ps1, ps2: [P5, P4, P3, P2] after the top-down pass and the two smoothings.
        ps3: (N, 4Hd, h/4, w/4) classifier input.
    """

    c: tuple[torch.Tensor, ...]
    out: torch.Tensor
    ps0: list[torch.Tensor]
    ps1: list[torch.Tensor]
    ps2: list[torch.Tensor]
    ps3: torch.Tensor

    def shared(self) -> dict[str, Sequence[torch.Tensor]]:
        return {k: getattr(self, k) for k in SHARED}


class GLNet(nn.Module):
    """Global and local branches with their heads and the ensemble.

    Args:
        num_classes: C.
        depth: ResNet depth of both bodies (50 in the release).
        base_width: ResNet base width (64 standard).
        fpn_width: pyramid width W (256 in the release).
        head_width: head width Hd (128 in the release).
    """

    def __init__(self, num_classes: int, depth: int = 50, base_width: int = 64, fpn_width: int = 256,
                 head_width: int = 128) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.resnet_global = GLResNet(depth, base_width)
        self.resnet_local = GLResNet(depth, base_width)
        cin = self.resnet_global.channels
        self.fpn_global = GlobalFPN(num_classes, cin, fpn_width, head_width)
        self.fpn_local = LocalFPN(num_classes, cin, fpn_width, head_width)
        self.ensemble_conv = nn.Conv2d(head_width * 4 * 2, num_classes, 3, padding=1)
        nn.init.normal_(self.ensemble_conv.weight, mean=0.0, std=0.01)  # bias: PyTorch's default, as the release

    def global_branch(self, x: torch.Tensor, ext: Mapping[str, Sequence[torch.Tensor]] | None = None) -> Branch:
        """(N, 3, h_g, w_g) global images in [0, 1] -> their maps; ``ext`` = :func:`aggregate` output."""
        c = self.resnet_global(x)
        out, ps0, ps1, ps2, ps3 = self.fpn_global(c, ext)
        return Branch(tuple(c), out, ps0, ps1, ps2, ps3)

    def local_branch(self, patches: torch.Tensor, glob: Branch, grid: PatchGrid, index: Sequence[int]) -> Branch:
        """(B, 3, h_p, w_p) patches ``index`` of ``grid`` in [0, 1]; ``glob`` the (1, ...) global maps."""
        return self.local_from_crops(patches, global_crops(glob, grid, index))

    def local_from_crops(self, patches: torch.Tensor, crops: Mapping[str, Sequence[torch.Tensor]]) -> Branch:
        """The local branch on (B, 3, h_p, w_p) patches with their global crops (:func:`global_crops`;
        crops of several images may be concatenated along the batch)."""
        c = self.resnet_local(patches)
        out, ps0, ps1, ps2, ps3 = self.fpn_local(c, crops)
        return Branch(tuple(c), out, ps0, ps1, ps2, ps3)

    def ensemble(self, ps3_local: torch.Tensor, ps3_global: torch.Tensor, grid: PatchGrid,
                 index: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Ensemble logits (B, C, h_p/4, w_p/4) and the global ps3 crop resized to the local one
        (what the branch-agreement MSE compares)."""
        g = resize(crop(ps3_global, grid, index), ps3_local.shape[-2:])
        return self.ensemble_maps(ps3_local, g), g

    def ensemble_maps(self, ps3_local: torch.Tensor, ps3_global_crop: torch.Tensor) -> torch.Tensor:
        """ensemble_conv on [local ps3, global ps3 crop already resized to it] (the release's ``ensemble``)."""
        return self.ensemble_conv(torch.cat((ps3_local, ps3_global_crop), dim=1))


def global_crops(glob: Branch, grid: PatchGrid, index: Sequence[int], b: int = 0) -> dict[str, list[torch.Tensor]]:
    """Every shared map of image ``b`` of ``glob`` cropped to patches ``index``: ``{"c": [...], "ps0": [...], ...}``."""
    return {k: [crop(f, grid, index, b) for f in getattr(glob, k)] for k in SHARED}


def cat_crops(parts: Sequence[Mapping[str, Sequence[torch.Tensor]]]) -> dict[str, list[torch.Tensor]]:
    """Concatenate the :func:`global_crops` of several images along the batch (same patch size)."""
    return {k: [torch.cat([p[k][j] for p in parts]) for j in range(len(parts[0][k]))] for k in SHARED}


def crop(f: torch.Tensor, grid: PatchGrid, index: Sequence[int], b: int = 0) -> torch.Tensor:
    """(N, F, H, W) global maps -> (B, F, h, w) crops of image ``b``'s patches ``index`` (the release's
    ``_crop_global``, which always crops image 0 of a one-image batch)."""
    H, W = f.shape[-2:]
    out = []
    for i in index:
        top, left, h, w = feature_box((H, W), grid.top_lefts[i], grid.ratio)
        out.append(f[b, :, top:top + h, left:left + w])
    return torch.stack(out)


class Aggregator:
    """Accumulates per-patch local maps into global-sized canvases (the release's ``_merge_local``).

    Each patch map is resized bilinearly to its crop box of the global map and added there; at
    the end each canvas is divided by the coverage template resized bilinearly to its size.

    Args:
        glob: the global maps whose sizes the canvases take.
        grid: the patch grid.
    """

    def __init__(self, glob: Branch, grid: PatchGrid) -> None:
        self.grid = grid
        self.sizes = {k: [tuple(f.shape[-2:]) for f in getattr(glob, k)] for k in SHARED}
        self.canvas: dict[str, list[torch.Tensor | None]] = {k: [None] * len(v) for k, v in self.sizes.items()}

    def add(self, local: Branch, index: Sequence[int]) -> None:
        for k in SHARED:
            for j, f in enumerate(getattr(local, k)):
                H, W = self.sizes[k][j]
                canvas = self.canvas[k][j]
                if canvas is None:
                    canvas = self.canvas[k][j] = f.new_zeros(1, f.shape[1], H, W)
                for b, i in enumerate(index):
                    top, left, h, w = feature_box((H, W), self.grid.top_lefts[i], self.grid.ratio)
                    canvas[:, :, top:top + h, left:left + w] += resize(f[b:b + 1], (h, w))

    def result(self) -> dict[str, list[torch.Tensor]]:
        template = self.grid.template()
        out = {}
        for k in SHARED:
            maps = []
            for canvas in self.canvas[k]:
                if canvas is None:
                    raise RuntimeError("glnet aggregate: no patch was added")
                maps.append(canvas / resize(template.to(canvas.device), canvas.shape[-2:]))
            out[k] = maps
        return out
