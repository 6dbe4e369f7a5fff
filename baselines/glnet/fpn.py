"""GLNet's two FPN heads (``fpn_module_global`` / ``fpn_module_local`` of VITA-Group/GLNet), our code.

Names and shapes follow the release so that its checkpoints load strictly. With backbone
channels (c2, c3, c4, c5) = ``cin``, pyramid width ``W`` (256 in the release) and head width
``Hd`` (128):

Global (``GlobalFPN``), on its own features:
    ``toplayer`` 1x1 c5->W, ``latlayer1/2/3`` 1x1 c4/c3/c2->W, bilinear upsample-add (top-down);
    ``smooth{1..4}_1`` 3x3 W->W, ``smooth{1..4}_2`` 3x3 W->Hd (1 = P5 ... 4 = P2); P5..P2
    upsampled to P2 and concatenated (4 Hd); ``classify`` 3x3 4Hd->C.
Global with the local branch's aggregated features (stage 3, "local2global"): every layer is
    replaced by its ``*_ext`` twin taking the concatenation [own, local] (twice the channels);
    the concatenated pyramid (8 Hd) goes through ``smooth`` 3x3 8Hd->4Hd before the shared
    ``classify``. The plain ``toplayer ... smooth*_2`` are unused then.
Local (``LocalFPN``), every layer on [own, global crop] (fold 2): ``toplayer`` 1x1 2c5->W, ...,
    ``smooth{k}_1`` 3x3 2W->W, ``smooth{k}_2`` 3x3 2W->Hd, ``smooth`` 3x3 8Hd->4Hd, ``classify``.

Every forward returns ``(output, ps0, ps1, ps2, ps3)``: logits (N, C, h/4, w/4); ps0, ps1, ps2
the lists [P5, P4, P3, P2] after the top-down pass, the first and the second smoothing; ps3 the
(N, 4Hd, h/4, w/4) map the classifier reads (what the ensemble and the regulariser use).
Interpolation is bilinear with ``align_corners=False`` (the release's ``mode='bilinear'`` under
torch 0.4.1, its pinned version). No BN or ReLU in the heads, as the release.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Levels = list[torch.Tensor]  # [P5, P4, P3, P2]
Join = Callable[[torch.Tensor, int, str], torch.Tensor]  # (own map, level, stage) -> layer input
HeadOut = tuple[torch.Tensor, Levels, Levels, Levels, torch.Tensor]  # output, ps0, ps1, ps2, ps3


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of (N, C, h, w) to ``size`` (h', w'), align_corners=False."""
    return F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)


def _concatenate(p5: torch.Tensor, p4: torch.Tensor, p3: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    size = p2.shape[-2:]
    return torch.cat([resize(p5, size), resize(p4, size), resize(p3, size), p2], dim=1)


def _up_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return resize(x, y.shape[-2:]) + y


def _init_release(module: nn.Module) -> None:
    """The release's head init: N(0, 0.01) weights, zero biases, on every direct child."""
    for m in module.children():
        assert isinstance(m, nn.Conv2d) and m.bias is not None  # the heads hold biased convolutions only
        nn.init.normal_(m.weight, mean=0.0, std=0.01)
        nn.init.constant_(m.bias, 0.0)


def _pyramid(owner: nn.Module, suffix: str, fold: int, cin: Sequence[int], width: int, head: int) -> None:
    """Register toplayer/latlayer*/smooth*_1/smooth*_2 (+ ``suffix``) taking ``fold`` x the channels."""
    c2, c3, c4, c5 = cin
    setattr(owner, f"toplayer{suffix}", nn.Conv2d(c5 * fold, width, 1))
    for i, c in enumerate((c4, c3, c2), start=1):
        setattr(owner, f"latlayer{i}{suffix}", nn.Conv2d(c * fold, width, 1))
    for k in range(1, 5):
        setattr(owner, f"smooth{k}_1{suffix}", nn.Conv2d(width * fold, width, 3, padding=1))
    for k in range(1, 5):
        setattr(owner, f"smooth{k}_2{suffix}", nn.Conv2d(width * fold, head, 3, padding=1))


class _Head(nn.Module):
    """Shared forward of the three pyramid variants; ``join(own, i, stage)`` supplies the input of
    layer ``i`` of each stage (the concatenation with the other branch, or ``own`` alone)."""

    smooth: nn.Conv2d
    classify: nn.Conv2d

    def _run(self, c: Sequence[torch.Tensor], suffix: str, join: Join) -> tuple[Levels, Levels, Levels]:
        c2, c3, c4, c5 = c

        def layer(name: str) -> nn.Module:
            return getattr(self, name + suffix)

        p5 = layer("toplayer")(join(c5, 3, "c"))
        p4 = _up_add(p5, layer("latlayer1")(join(c4, 2, "c")))
        p3 = _up_add(p4, layer("latlayer2")(join(c3, 1, "c")))
        p2 = _up_add(p3, layer("latlayer3")(join(c2, 0, "c")))
        ps0 = [p5, p4, p3, p2]
        ps1 = [layer(f"smooth{k + 1}_1")(join(p, k, "ps0")) for k, p in enumerate(ps0)]
        ps2 = [layer(f"smooth{k + 1}_2")(join(p, k, "ps1")) for k, p in enumerate(ps1)]
        return ps0, ps1, ps2

    def _classify(self, ps2: Levels, join: Join, fuse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        p = _concatenate(*[join(p, k, "ps2") for k, p in enumerate(ps2)])
        ps3 = self.smooth(p) if fuse else p
        return self.classify(ps3), ps3


class GlobalFPN(_Head):
    """The global branch's head; ``ext`` (stage 3) holds the local branch's aggregated features.

    Args:
        num_classes: C.
        cin: backbone channels (c2, c3, c4, c5); (256, 512, 1024, 2048) for ResNet-50.
        width: pyramid width W (256).
        head: head width Hd (128).
    """

    def __init__(self, num_classes: int, cin: Sequence[int] = (256, 512, 1024, 2048), width: int = 256,
                 head: int = 128) -> None:
        super().__init__()
        _pyramid(self, "", 1, cin, width, head)
        self.classify = nn.Conv2d(head * 4, num_classes, 3, padding=1)
        _pyramid(self, "_ext", 2, cin, width, head)
        self.smooth = nn.Conv2d(head * 4 * 2, head * 4, 3, padding=1)
        _init_release(self)

    def forward(self, c: Sequence[torch.Tensor], ext: dict[str, Sequence[torch.Tensor]] | None = None) -> HeadOut:
        """Args:
            c: (c2, c3, c4, c5) of the global image.
            ext: None, or the local features aggregated to the global maps' sizes:
                ``{"c": (c2, c3, c4, c5), "ps0": [P5..P2], "ps1": [...], "ps2": [...]}``.

        Returns:
            (output, ps0, ps1, ps2, ps3); see the module docstring.
        """
        if ext is None:
            def own(x: torch.Tensor, i: int, stage: str) -> torch.Tensor:
                return x

            ps0, ps1, ps2 = self._run(c, "", own)
            return self._finish(ps0, ps1, ps2, own, fuse=False)

        def cat(x: torch.Tensor, i: int, stage: str) -> torch.Tensor:
            return torch.cat((x, ext[stage][i]), dim=1)  # aggregated to this map's size already

        ps0, ps1, ps2 = self._run(c, "_ext", cat)
        return self._finish(ps0, ps1, ps2, cat, fuse=True)

    def _finish(self, ps0: Levels, ps1: Levels, ps2: Levels, join: Join, fuse: bool) -> HeadOut:
        output, ps3 = self._classify(ps2, join, fuse)
        return output, ps0, ps1, ps2, ps3


class LocalFPN(_Head):
    """The local branch's head: every layer sees [own, global crop resized to own size].

    Args: as :class:`GlobalFPN`.
    """

    def __init__(self, num_classes: int, cin: Sequence[int] = (256, 512, 1024, 2048), width: int = 256,
                 head: int = 128) -> None:
        super().__init__()
        _pyramid(self, "", 2, cin, width, head)
        self.smooth = nn.Conv2d(head * 4 * 2, head * 4, 3, padding=1)
        self.classify = nn.Conv2d(head * 4, num_classes, 3, padding=1)
        _init_release(self)

    def forward(self, c: Sequence[torch.Tensor], crops: dict[str, Sequence[torch.Tensor]]) -> HeadOut:
        """Args:
            c: (c2, c3, c4, c5) of the patches (B, ...).
            crops: the global branch's maps cropped to the patches (B, ...), any size:
                ``{"c": (c2..c5), "ps0": [P5..P2], "ps1": [...], "ps2": [...]}``; each is resized
                bilinearly to the local map's size before the concatenation.

        Returns:
            (output, ps0, ps1, ps2, ps3).
        """
        def cat(x: torch.Tensor, i: int, stage: str) -> torch.Tensor:
            return torch.cat((x, resize(crops[stage][i], x.shape[-2:])), dim=1)

        ps0, ps1, ps2 = self._run(c, "", cat)
        output, ps3 = self._classify(ps2, cat, fuse=True)
        return output, ps0, ps1, ps2, ps3
