"""CRM's network (Shen et al., CVPR 2022): a dilated ResNet on image and mask, a three-tap fusion
and a continuous (LIIF-style) implicit decoder queried at any output resolution.

Our own implementation, written from the paper and the behaviour of the authors' code
(dvlab-research/Entity, ``High-Quality-Segmention/models/network/{crm,aspp,extractors}.py``, which
is CC BY-NC; nothing is copied from it). Module and parameter names are the release's, so its
``CRMNet(backend='resnet50')`` state dict (367 entries) loads strictly into
``CRMNet(**RELEASED)`` (:mod:`baselines.crm.method`).

Shapes (B images, Q queries, an (h, w) input):

- extractor ``feats`` (:class:`Extractor`): (B, 4, h, w) -> three taps: the stem after BN-ReLU
  (stride 2), ``layer1`` (stride 4), ``layer3`` (stride 8; ``layer3`` and ``layer4`` keep stride 1
  with dilation 2 and 4, the first block of each undilated). The release computes ``layer4`` and
  discards it (its weights are in the file); the light variant has none (``layer4=False``).
- fusion ``aspp_`` (:class:`Fusion`, the release's ``ASPP_no4level``): per tap a 1x1
  conv-BN-ReLU (``aspp1_128/256/1024``), another BN-ReLU (``bn1_*``) and dropout; taps 2 and 3
  upsampled bilinearly (align_corners=True) to stride 2; concatenated; 3x3 conv-BN-ReLU-dropout
  (``last_conv``) -> F: (B, C_F, ceil(h/2), ceil(w/2)).
- decoder ``imnet`` (:class:`ImplicitDecoder`): for each query (a target-grid pixel centre in
  [-1, 1], (row, col)) and each of its four nearest feature cells (the query shifted by +-half a
  feature cell per axis, plus 1e-6, clamped to +-(1 - 1e-6), then nearest-sampled as
  ``grid_sample(mode='nearest', align_corners=False)`` picks), the MLP reads
  ``[feature (C_F), (query - cell centre) x F's size (2), query (2), query cell x F's size (2)]``
  and gives a logit; the four logits are blended with the area of the *diagonally opposite*
  neighbour's rectangle, normalised (bilinear-like weights). Output (B, Q, 1) logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# blocks per stage and block type of each supported depth (the release: 50)
DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}
SHIFT_EPS = 1e-6  # the release nudges every shifted query by this before the nearest pick
CLAMP_EPS = 1e-6  # shifted queries stay inside (-1, 1) by this much
AREA_EPS = 1e-9  # added to each neighbour's area before normalising


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut; ``expansion`` 1."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 x4 with a projection shortcut; ``expansion`` 4."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Extractor(nn.Module):
    """The dilated ResNet of CRM (CascadePSP's lineage) with a 4-channel stem and three taps.

    Args:
        depth: 18, 34 (basic blocks) or 50 (bottlenecks; the release).
        width: channels of the stem and of ``layer1``'s inner convolutions (64 in the release).
        layer4: build ``layer4`` (the release does, computes it and discards the output; its
            weights are in the released file). False: no ``layer4`` at all.
        in_channels: 4 (RGB and the mask).

    Attributes:
        tap_channels: channels of the three taps (stem, ``layer1``, ``layer3``): (64, 256, 1024)
            for the release.
    """

    def __init__(self, depth: int = 50, width: int = 64, layer4: bool = True, in_channels: int = 4) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"crm depth must be one of {sorted(DEPTHS)}, got {depth!r}")
        kind, blocks = DEPTHS[depth]
        block: type[BasicBlock] | type[Bottleneck] = Bottleneck if kind == "bottleneck" else BasicBlock
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        self.layer1 = self._stage(block, width, blocks[0])
        self.layer2 = self._stage(block, width * 2, blocks[1], stride=2)
        self.layer3 = self._stage(block, width * 4, blocks[2], dilation=2)
        self.layer4 = self._stage(block, width * 8, blocks[3], dilation=4) if layer4 else None
        self.tap_channels = (width, width * block.expansion, width * 4 * block.expansion)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He-normal, fan-out (the release then loads ImageNet weights)
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))

    def _stage(self, block: type[BasicBlock] | type[Bottleneck], planes: int, n: int, stride: int = 1,
               dilation: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        # the release's first block of a stage is not dilated: kept, the released weights were trained so
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=dilation) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 4, h, w) -> taps (B, c1, h/2, w/2), (B, c2, h/4, w/4), (B, c3, h/8, w/8) (ceil)."""
        t1 = self.relu(self.bn1(self.conv1(x)))
        t2 = self.layer1(self.maxpool(t1))
        t3 = self.layer3(self.layer2(t2))
        if self.layer4 is not None:
            self.layer4(t3)  # the release computes layer4 and drops it; kept for equal cost
        return t1, t2, t3


class TapBlock(nn.Module):
    """1x1 conv (no bias) -> BN -> ReLU: the release's ``_ASPPModule`` with kernel 1."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.atrous_conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        nn.init.kaiming_normal_(self.atrous_conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.atrous_conv(x)))


class Fusion(nn.Module):
    """The release's ``ASPP_no4level``: three taps reduced, brought to stride 2, fused by a 3x3 conv.

    Args:
        in_channels: channels of the three taps (64, 256, 1024 in the release).
        tap_channels: reduced channels per tap (64, 64, 128).
        out_channels: channels of F (256; the sum of ``tap_channels`` in the release).
        dropout: dropout after each tap and after the fuse (0.5 in the release; train mode only).
    """

    def __init__(self, in_channels: tuple[int, int, int], tap_channels: tuple[int, int, int], out_channels: int,
                 dropout: float = 0.5) -> None:
        super().__init__()
        c1, c2, c3 = tap_channels
        # the release's attribute names (``_128`` is the stem tap, whatever its width)
        self.aspp1_128 = TapBlock(in_channels[0], c1)
        self.aspp1_256 = TapBlock(in_channels[1], c2)
        self.aspp1_1024 = TapBlock(in_channels[2], c3)
        self.bn1_128, self.bn1_256, self.bn1_1024 = nn.BatchNorm2d(c1), nn.BatchNorm2d(c2), nn.BatchNorm2d(c3)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        fuse = nn.Conv2d(c1 + c2 + c3, out_channels, 3, padding=1, bias=False)
        nn.init.kaiming_normal_(fuse.weight)
        self.last_conv = nn.Sequential(fuse, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), nn.Dropout(dropout))

    def forward(self, t1: torch.Tensor, t2: torch.Tensor, t3: torch.Tensor) -> torch.Tensor:
        """Taps at strides 2, 4, 8 -> F (B, out_channels, *t1's size)."""
        x1 = self.dropout(self.relu(self.bn1_128(self.aspp1_128(t1))))
        x2 = self.dropout(self.relu(self.bn1_256(self.aspp1_256(t2))))
        x3 = self.dropout(self.relu(self.bn1_1024(self.aspp1_1024(t3))))
        size = x1.shape[-2:]
        x2 = F.interpolate(x2, size=size, mode="bilinear", align_corners=True)
        x3 = F.interpolate(x3, size=size, mode="bilinear", align_corners=True)
        return self.last_conv(torch.cat((x1, x2, x3), 1))


class ImplicitDecoder(nn.Module):
    """The MLP ``layers``: Linear-ReLU per hidden width, then Linear to 1 (the release's ``imnet``).

    Args:
        in_dim: C_F + 6 (262 in the release).
        hidden: hidden widths ((32, 32, 32, 32) in the release).
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = in_dim
        for h in hidden:
            layers += [nn.Linear(last, h), nn.ReLU()]
            last = h
        layers.append(nn.Linear(last, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_dim) -> (..., 1)."""
        return self.layers(x)


def axis_centres(n: int, index: torch.Tensor | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """Pixel centres along an axis of ``n`` cells in [-1, 1] (of ``index``, default all cells), float32.

    Computed as the release's ``make_coord``, ``(-1 + r) + 2r * i`` with ``r = 1/n`` (a float32
    product and sum), not as ``-1 + (2i + 1)/n``: where a query sits on a feature-cell centre the
    blending areas are float noise plus 1e-9 (at the last row and column all four shifted queries
    clamp to one cell), so the last bits of the centres decide those weights.
    """
    r = 1.0 / n
    i = torch.arange(n, device=device) if index is None else index
    return (-1 + r) + (2 * r) * i.float()


def grid_coords(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Pixel centres of an (h, w) grid in [-1, 1], row-major: (h*w, 2) float32 (row, col);
    the first is (-1 + 1/h, -1 + 1/w)."""
    rows, cols = axis_centres(h, device=device), axis_centres(w, device=device)
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)


def grid_cells(h: int, w: int, n: int | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """The cell size of an (h, w) grid, (2/h, 2/w), repeated for ``n`` queries (h*w): (n, 2) float32."""
    n = h * w if n is None else n
    return torch.tensor([2.0 / h, 2.0 / w], device=device).expand(n, 2)


def nearest_index(coord: torch.Tensor, size: int) -> torch.Tensor:
    """The cell ``grid_sample(mode='nearest', align_corners=False)`` picks along one axis of
    ``size`` cells for normalised coordinates ``coord`` (any shape, float32): int64 in 0..size-1
    (unnormalise to ``((c + 1) * size - 1) / 2``, round half to even, clip)."""
    return torch.round(((coord + 1) * size - 1) / 2).clamp_(0, size - 1).long()


def blend_weights(rel: list[torch.Tensor]) -> list[torch.Tensor]:
    """The four neighbours' blending weights from their relative offsets.

    Args:
        rel: four (..., 2) offsets (query - cell centre, in feature cells), in the order of the
            shifts (-r,-c), (-r,+c), (+r,-c), (+r,+c).

    Returns:
        four (...) weights, positive, summing to 1: neighbour k gets the area
        ``|dr * dc| + 1e-9`` of neighbour ``3 - k`` (the diagonally opposite one), normalised.
    """
    areas = [(r[..., 0] * r[..., 1]).abs() + AREA_EPS for r in rel]
    total = areas[0] + areas[1] + areas[2] + areas[3]
    return [areas[3 - k] / total for k in range(4)]


class CRMNet(nn.Module):
    """CRM: features of (image, mask) once, logits at any set of query coordinates.

    Args:
        depth, width, layer4: the extractor (:class:`Extractor`); the release: 50, 64, True.
        tap_channels: reduced channels per tap ((64, 64, 128)).
        feature_channels: channels of F (256).
        hidden: the decoder's hidden widths ((32, 32, 32, 32)).
        dropout: the fusion's dropout (0.5; train mode only).
    """

    def __init__(self, depth: int = 50, width: int = 64, layer4: bool = True,
                 tap_channels: tuple[int, int, int] = (64, 64, 128), feature_channels: int = 256,
                 hidden: tuple[int, ...] = (32, 32, 32, 32), dropout: float = 0.5) -> None:
        super().__init__()
        if len(tap_channels) != 3:
            raise ValueError(f"crm tap_channels must have 3 entries, got {tap_channels!r}")
        self.feats = Extractor(depth, width, layer4)
        self.aspp_ = Fusion(self.feats.tap_channels, tuple(int(c) for c in tap_channels),  # type: ignore[arg-type]
                            feature_channels, dropout)
        self.imnet = ImplicitDecoder(feature_channels + 6, tuple(int(h) for h in hidden))

    def features(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """F of an image and its mask.

        Args:
            x: (B, 3, h, w) float32 ImageNet-normalised image.
            seg: (B, 1, h, w) float32 mask in [-1, 1].

        Returns:
            (B, C_F, ceil(h/2), ceil(w/2)) float32.
        """
        return self.aspp_(*self.feats(torch.cat((x, seg), 1)))

    def project(self, feat: torch.Tensor) -> torch.Tensor:
        """The first decoder layer's feature part applied to every cell of ``feat``, once per
        feature map (the queries then gather it): (B, C_F, fh, fw) -> (B * fh * fw, hidden[0])."""
        b, c = feat.shape[:2]
        first = self.imnet.layers[0]
        assert isinstance(first, nn.Linear)
        return feat.permute(0, 2, 3, 1).reshape(-1, c) @ first.weight[:, :c].t()

    def decode(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor,
               projected: torch.Tensor | None = None) -> torch.Tensor:
        """Logits at query coordinates (the continuous alignment of the module docstring).

        The first Linear on ``[feature, rel, coord, rel_cell]`` is split by its input columns:
        the feature part is applied once per feature cell (:meth:`project`) and gathered, the
        coordinate and cell part once per query: the release's concatenation summed in another
        order (equal to float rounding; ``tests/test_crm.py`` compares with the concatenated form).

        Args:
            feat: (B, C_F, fh, fw) features.
            coord: (B, Q, 2) or (Q, 2) float32 query pixel centres in [-1, 1], (row, col).
            cell: the queries' cell sizes (2/H, 2/W of the target grid), shaped like ``coord``.
            projected: ``self.project(feat)`` when the caller decodes several chunks of one map.

        Returns:
            (B, Q, 1) float32 logits.
        """
        b, c, fh, fw = feat.shape
        if coord.dim() == 2:
            coord, cell = coord.expand(b, *coord.shape), cell.expand(b, *cell.shape)
        q = coord.shape[1]
        scale = coord.new_tensor([fh, fw])
        first = self.imnet.layers[0]
        assert isinstance(first, nn.Linear)
        cells = self.project(feat) if projected is None else projected
        w_rel, w_pos = first.weight[:, c:c + 2], first.weight[:, c + 2:]
        shared = torch.addmm(first.bias, torch.cat((coord, cell * scale), -1).reshape(-1, 4), w_pos.t())
        base = (torch.arange(b, device=feat.device) * (fh * fw))[:, None]
        preds, rels = [], []
        for vr in (-1, 1):
            for vc in (-1, 1):
                # half a feature cell in each axis, as the release's rx = 1/fh, ry = 1/fw
                shifted = torch.stack((coord[..., 0] + (vr / fh + SHIFT_EPS), coord[..., 1] + (vc / fw + SHIFT_EPS)), -1)
                shifted = shifted.clamp(-1 + CLAMP_EPS, 1 - CLAMP_EPS)
                ir, ic = nearest_index(shifted[..., 0], fh), nearest_index(shifted[..., 1], fw)
                centre = torch.stack((axis_centres(fh, ir), axis_centres(fw, ic)), -1)
                rel = (coord - centre) * scale
                hidden = torch.addmm(shared, rel.reshape(-1, 2), w_rel.t())
                hidden += cells.index_select(0, (base + ir * fw + ic).reshape(-1))
                preds.append(self._rest(hidden).reshape(b, q, 1))
                rels.append(rel)
        weights = blend_weights(rels)
        return sum((p * w[..., None] for p, w in zip(preds, weights)), torch.zeros_like(preds[0]))

    def _rest(self, hidden: torch.Tensor) -> torch.Tensor:
        """The decoder after its first Linear, on (N, hidden[0]) pre-activations (overwritten):
        ReLU and Linear in turn, in place where the values are not needed again (N, 1)."""
        for layer in list(self.imnet.layers)[1:]:
            if isinstance(layer, nn.Linear):
                hidden = torch.addmm(layer.bias, hidden, layer.weight.t())
            elif not isinstance(layer, nn.ReLU):
                raise TypeError(f"crm decoder: unexpected layer {layer!r}")
            elif torch.is_grad_enabled():  # autograd needs the pre-activation: no in-place ReLU
                hidden = torch.relu(hidden)
            else:
                hidden = hidden.clamp_min_(0)
        return hidden

    def forward(self, x: torch.Tensor, seg: torch.Tensor, coord: torch.Tensor,
                cell: torch.Tensor) -> dict[str, torch.Tensor]:
        """``decode(features(x, seg), coord, cell)`` under the release's keys.

        Returns:
            ``out_224``: (B, Q, 1) logits; ``pred_224``: their sigmoid.
        """
        out = self.decode(self.features(x, seg), coord, cell)
        return {"out_224": out, "pred_224": torch.sigmoid(out)}
