"""The ISDNet module (Guo et al., CVPR 2022; cedricgsh/ISDNet), our own implementation (Apache-2.0).

Written from the behaviour described in ``shared/specs/refinement_track.md`` §5 and read in the
authors' code; no code copied. State-dict layout = the release's mmseg 0.16 checkpoint
(``state_dict``): ``backbone.*`` (ResNetV1c, deep stem), ``decode_head.*`` (the DeepLabV3 ASPP
head on the deep branch), ``refine_head.*`` (the ISD head: ``fuse16``, ``fuse8``, ``sr_decoder``,
``stdc_net`` with its alias keys, ``conv_seg``, ``conv_seg_aux_16``, ``conv_seg_aux_8``) and
``auxiliary_head.*`` (the FCN head on layer3).

Data flow for a normalised batch ``x`` (N, 3, H, W) float32 (ImageNet mean/std):

- deep branch: ``x`` resized ``nearest`` to (H // 4, W // 4) -> ResNetV1c (output stride 8, so
  1/32 of the full image) -> ASPP -> the C-channel bottleneck feature ``deep`` and its logits;
- shallow branch: the 2-level Laplacian pyramid of ``x`` (full and half resolution residuals, the
  latter upsampled bilinearly) -> 6 channels -> the STDC-like net -> maps at 1/8 and 1/16;
- RAF 1 (shallow 1/16, deep) -> fused 1/16; RAF 2 (shallow 1/8, fused 1/16) -> fused 1/8;
- ``conv_seg`` on the fused 1/8 map, upsampled bilinearly to (H, W).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)  # the 5-tap binomial row; the 2-D kernel is its outer product / 256


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """mmcv ``ConvModule`` without activation: keys ``conv.weight``, ``bn.*`` (no conv bias)."""
    m = nn.Sequential()
    m.add_module("conv", nn.Conv2d(cin, cout, k, stride, dilation * (k // 2), dilation=dilation, bias=False))
    m.add_module("bn", nn.BatchNorm2d(cout))
    return m


class ConvModule(nn.Module):
    """mmcv's ConvModule (conv, BN, optional ReLU) in its key layout: ``conv.weight``, ``bn.*``."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, dilation * (k // 2), dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


# -- deep branch --------------------------------------------------------------------------------


class BasicBlockV1c(nn.Module):
    """mmseg's ResNet BasicBlock: ``conv1, bn1, conv2, bn2[, downsample.0/.1]``; dilation on both convs."""

    def __init__(self, cin: int, cout: int, stride: int, dilation: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNetV1c(nn.Module):
    """ResNet-18 V1c (mmseg ``ResNetV1c``, depth 18): deep stem of three 3x3 convs, ``strides``
    (1, 2, 1, 1) and ``dilations`` (1, 1, 2, 4) with ``contract_dilation`` (the first block of a
    dilated stage uses half the dilation), so the output stride is 8.

    Forward: (N, 3, h, w) -> (c1, c2, c3, c4) with ``base, 2 base, 4 base, 8 base`` channels at
    h/4, h/8, h/8, h/8 (rounded up by the convolutions).
    """

    def __init__(self, base: int = 64, blocks: Sequence[int] = (2, 2, 2, 2), strides: Sequence[int] = (1, 2, 1, 1),
                 dilations: Sequence[int] = (1, 1, 2, 4)) -> None:
        super().__init__()
        half = base // 2
        self.stem = nn.Sequential(
            nn.Conv2d(3, half, 3, 2, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, 1, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            nn.Conv2d(half, base, 3, 1, 1, bias=False), nn.BatchNorm2d(base), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = base
        self.channels = []
        for i, (n, s, d) in enumerate(zip(blocks, strides, dilations)):
            cout = base * 2**i
            down = None
            if s != 1 or cin != cout:
                down = nn.Sequential(nn.Conv2d(cin, cout, 1, s, bias=False), nn.BatchNorm2d(cout))
            first = d // 2 if d > 1 else d  # contract_dilation
            layer = [BasicBlockV1c(cin, cout, s, first, down)]
            layer += [BasicBlockV1c(cout, cout, 1, d, None) for _ in range(n - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
            self.channels.append(cout)
            cin = cout

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.maxpool(self.stem(x))
        outs = []
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            outs.append(x)
        return tuple(outs)


class ASPPHead(nn.Module):
    """DeepLabV3 head (mmseg ``RefineASPPHead``): image pooling + one branch per dilation (1x1 for
    dilation 1, else 3x3), concatenated, 3x3 ``bottleneck`` to ``channels``; ``conv_seg`` after
    dropout. Forward: (N, cin, h, w) -> (bottleneck feature (N, channels, h, w), logits (N, K, h, w)).
    """

    def __init__(self, cin: int, channels: int, num_classes: int, dilations: Sequence[int], dropout: float) -> None:
        super().__init__()
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvModule(cin, channels, 1))
        self.aspp_modules = nn.ModuleList(ConvModule(cin, channels, 1 if d == 1 else 3, dilation=d) for d in dilations)
        self.bottleneck = ConvModule((len(dilations) + 1) * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = F.interpolate(self.image_pool(x), size=x.shape[2:], mode="bilinear", align_corners=False)
        feat = self.bottleneck(torch.cat([pooled, *(m(x) for m in self.aspp_modules)], dim=1))
        return feat, self.conv_seg(self.dropout(feat))


class FCNHead(nn.Module):
    """mmseg ``FCNHead`` with one conv (``convs.0``), no input concat; ``conv_seg`` after dropout."""

    def __init__(self, cin: int, channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.convs = nn.Sequential(ConvModule(cin, channels, 3))
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_seg(self.dropout(self.convs(x)))


# -- shallow branch ------------------------------------------------------------------------------


class LaplacianPyramid(nn.Module):
    """High-frequency residuals of a Laplacian pyramid (the release's ``Lap_Pyramid_Conv``).

    Per level: blur with the 5x5 binomial kernel / 256 (reflect padding 2, depthwise), keep every
    second pixel, upsample by zero insertion and blur with 4x the kernel (resized ``nearest`` to
    the level's size when odd sizes make it differ), residual = level - upsampled.

    The kernel is a non-persistent buffer: it follows the module's device and dtype and is not in
    the state dict (the release builds it on CUDA in its constructor and does not store it).

    Args:
        levels: how many residuals (2 in ISDNet).
        channels: image channels (3).
    """

    kernel: torch.Tensor

    def __init__(self, levels: int = 2, channels: int = 3) -> None:
        super().__init__()
        row = torch.tensor(BINOMIAL)
        k = torch.outer(row, row) / 256.0
        self.levels = levels
        self.register_buffer("kernel", k.expand(channels, 1, 5, 5).clone(), persistent=False)

    def blur(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel.to(x.dtype), groups=x.shape[1])

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        """(N, c, h, w) -> (N, c, 2h, 2w): values at even positions, zeros between, blurred by 4x the kernel."""
        n, c, h, w = x.shape
        up = x.new_zeros(n, c, 2 * h, 2 * w)
        up[:, :, ::2, ::2] = x
        return self.blur(up, 4 * self.kernel)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) -> ``levels`` residuals, level i of size ceil(H / 2**i) x ceil(W / 2**i)."""
        residuals = []
        current = x
        for _ in range(self.levels):
            down = self.blur(current, self.kernel)[:, :, ::2, ::2]
            up = self.upsample(down)
            if up.shape[2:] != current.shape[2:]:
                up = F.interpolate(up, size=current.shape[2:])  # odd sizes: nearest, as the release
            residuals.append(current - up)
            current = down
        return residuals


class ConvX(nn.Module):
    """STDC's conv-BN-ReLU: keys ``conv.weight``, ``bn.*``; padding k // 2, no bias."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class CatBottleneck(nn.Module):
    """STDC's "cat" bottleneck with 4 convs: 1x1 to P/2, then 3x3 to P/4, P/8, P/8; the four
    outputs concatenated (P channels). Stride 2: a depthwise 3x3 stride-2 conv + BN (``avd_layer``)
    after the first conv, and the first conv's output average-pooled (3, 2, 1) before the concat.
    """

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        if stride == 2:
            half = cout // 2
            self.avd_layer = nn.Sequential(nn.Conv2d(half, half, 3, 2, 1, groups=half, bias=False), nn.BatchNorm2d(half))
            self.skip = nn.AvgPool2d(3, 2, 1)
        self.conv_list = nn.ModuleList([ConvX(cin, cout // 2, 1), ConvX(cout // 2, cout // 4),
                                        ConvX(cout // 4, cout // 8), ConvX(cout // 8, cout // 8)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.conv_list[0](x)
        out = self.conv_list[1](self.avd_layer(first) if self.stride == 2 else first)
        outs = [out]
        for conv in self.conv_list[2:]:
            out = conv(out)
            outs.append(out)
        return torch.cat([self.skip(first) if self.stride == 2 else first, *outs], dim=1)


class ShallowNet(nn.Module):
    """The STDC-813-like shallow net on the 6-channel Laplacian input.

    ``features``: ConvX 6 -> base/2 (stride 2), ConvX base/2 -> base (stride 2), then stage 1
    (``layers[0]`` bottlenecks, the first stride 2, to 4 base) and stage 2 (``layers[1]``, the
    first stride 2, to 8 base). As in the release, ``x2``, ``x4``, ``x8`` and ``x16`` hold the same
    modules again (slices of ``features`` keep their indices), so every weight has two keys:
    ``features.i.*`` and ``x{2,4,8,16}.0.i.*``.

    Forward: (N, 6, H, W) -> (feat8 (N, 4 base, H/8, W/8), feat16 (N, 8 base, H/16, W/16)).
    """

    def __init__(self, base: int = 64, in_channels: int = 6, layers: Sequence[int] = (2, 2)) -> None:
        super().__init__()
        feats: list[nn.Module] = [ConvX(in_channels, base // 2, 3, 2), ConvX(base // 2, base, 3, 2)]
        cin = base
        for i, n in enumerate(layers):
            cout = base * 2 ** (i + 2)
            for j in range(n):
                feats.append(CatBottleneck(cin, cout, 2 if j == 0 else 1))
                cin = cout
        self.features = nn.Sequential(*feats)
        self.x2 = nn.Sequential(self.features[:1])
        self.x4 = nn.Sequential(self.features[1:2])
        self.x8 = nn.Sequential(self.features[2:2 + layers[0]])
        self.x16 = nn.Sequential(self.features[2 + layers[0]:])
        self.channels = (base * 4, base * 8)
        for m in self.modules():  # the release's init_params (used when no STDC weights are given)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat8 = self.x8(self.x4(self.x2(x)))
        return feat8, self.x16(feat8)


# -- the ISD head ------------------------------------------------------------------------------


class SegmentationHead(nn.Module):
    """3x3 conv-BN-ReLU to ``mid`` then a 1x1 conv with bias to ``out`` (``conv_bn_relu``, ``conv_out``)."""

    def __init__(self, cin: int, mid: int, out: int) -> None:
        super().__init__()
        self.conv_bn_relu = ConvModule(cin, mid, 3)
        self.conv_out = nn.Conv2d(mid, out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv_bn_relu(x))


class ChannelAtt(nn.Module):
    """3x3 conv-BN-ReLU to C, and the attention vector: global average pool, 1x1 conv-BN.

    Forward: (N, cin, h, w) -> (feature (N, C, h, w), attention (N, C, 1, 1), before the sigmoid).
    The BN of the (N, C, 1, 1) vector cannot train at N = 1 (one value per channel).
    """

    def __init__(self, cin: int, channels: int) -> None:
        super().__init__()
        self.conv_bn_relu = ConvModule(cin, channels, 3)
        self.conv_1x1 = ConvModule(channels, channels, 1, relu=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.conv_bn_relu(x)
        return feat, self.conv_1x1(feat.mean(dim=(2, 3), keepdim=True))


class RelationAwareFusion(nn.Module):
    """Relational-aware fusion of a spatial (shallow) and a context (deep) feature.

    Both attention vectors (N, C) are split into ``r`` groups of C / r; their r x r group
    affinity, flattened (r^2 values, which must equal 2C), feeds ``spatial_mlp`` and
    ``context_mlp`` (2C -> C -> C, ReLU between and after); the outputs times the scalars ``g1``
    and ``g2`` (initialised to 0) are added to the vectors before the sigmoid. The re-weighted
    context feature is upsampled bilinearly to the spatial one, passed through ``context_head``
    (3x3 conv-BN-ReLU), added to the re-weighted spatial feature, and ``smooth`` (3x3 conv-BN).

    Args:
        spatial_in: channels of the shallow input (C * ext in the release: 512 at 1/16, 256 at 1/8).
        channels: C.
        r: groups; r * r must equal 2 * C and r must divide C.

    Forward: (sp (N, spatial_in, h, w), co (N, C, h', w')) -> (re-weighted spatial (N, C, h, w),
    context after its head (N, C, h, w), fused (N, C, h, w)).

    Raises:
        ValueError: r^2 != 2C or r does not divide C.
    """

    def __init__(self, spatial_in: int, channels: int, r: int) -> None:
        super().__init__()
        if r * r != 2 * channels or channels % r:
            raise ValueError(f"isdnet: the relation MLP needs r^2 = 2C and r | C, got C={channels}, r={r} "
                             f"(r^2 = {r * r}, 2C = {2 * channels}); e.g. C=128, r=16 or C=32, r=8 or C=8, r=4")
        self.r = r
        self.g1 = nn.Parameter(torch.zeros(1))
        self.g2 = nn.Parameter(torch.zeros(1))
        self.spatial_mlp = nn.Sequential(nn.Linear(2 * channels, channels), nn.ReLU(), nn.Linear(channels, channels))
        self.spatial_att = ChannelAtt(spatial_in, channels)
        self.context_mlp = nn.Sequential(nn.Linear(2 * channels, channels), nn.ReLU(), nn.Linear(channels, channels))
        self.context_att = ChannelAtt(channels, channels)
        self.context_head = ConvModule(channels, channels, 3)
        self.smooth = ConvModule(channels, channels, 3, relu=False)

    def forward(self, sp: torch.Tensor, co: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s_feat, s_att = self.spatial_att(sp)
        c_feat, c_att = self.context_att(co)
        n, c = s_att.shape[:2]
        affinity = torch.bmm(s_att.view(n, self.r, c // self.r), c_att.view(n, self.r, c // self.r).transpose(1, 2))
        affinity = affinity.reshape(n, -1)
        s_rel = F.relu(self.spatial_mlp(affinity))[:, :, None, None]
        c_rel = F.relu(self.context_mlp(affinity))[:, :, None, None]
        s_feat = s_feat * torch.sigmoid(s_att + self.g1 * s_rel)
        c_feat = c_feat * torch.sigmoid(c_att + self.g2 * c_rel)
        c_feat = self.context_head(F.interpolate(c_feat, size=s_feat.shape[2:], mode="bilinear", align_corners=False))
        return s_feat, c_feat, self.smooth(s_feat + c_feat)


class SRDecoder(nn.Module):
    """Super-resolution decoder (training only): nearest x4, conv1 (C -> C/2), nearest x2, conv2
    (C/2 -> C/2), nearest x2, conv3 (C/2 -> C), then ``conv_sr`` (SegmentationHead C -> C/2 -> 3).

    Forward: the deep feature (N, C, h, w) at 1/32 -> (feature (N, C, 16h, 16w) at 1/2, image (N, 3, 16h, 16w)).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvModule(channels, channels // 2, 3)
        self.conv2 = ConvModule(channels // 2, channels // 2, 3)
        self.conv3 = ConvModule(channels // 2, channels, 3)
        self.conv_sr = SegmentationHead(channels, channels // 2, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv1(F.interpolate(x, scale_factor=4.0, mode="nearest"))
        x = self.conv2(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        feats = self.conv3(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return feats, self.conv_sr(feats)


@dataclass
class Outputs:
    """One forward's maps (all logits at their own resolution, not upsampled).

    Attributes:
        out: (N, K, H/8, W/8) logits of the fused 1/8 map.
        aux16, aux8: (N, K, ., .) logits of the aux heads, named as the release (``aux16`` reads the
            1/8 RAF's context feature, ``aux8`` the 1/16 one's: the release swaps the names).
        deep_logits: (N, K, H/32, W/32) the ASPP head's logits; fcn_logits: the FCN head's.
        deep: (N, C, H/32, W/32) the ASPP bottleneck feature.
        sr_feat: (N, C, H/2, W/2); sr: (N, 3, H/2, W/2) the SR decoder's outputs (training only).
        residual: (N, 3, H, W) sum of the two Laplacian residuals (the recon target; training only).
    """

    out: torch.Tensor
    aux16: torch.Tensor | None = None
    aux8: torch.Tensor | None = None
    deep_logits: torch.Tensor | None = None
    fcn_logits: torch.Tensor | None = None
    deep: torch.Tensor | None = None
    sr_feat: torch.Tensor | None = None
    sr: torch.Tensor | None = None
    residual: torch.Tensor | None = None


class ISDHead(nn.Module):
    """The release's ``ISDHead`` (``refine_head``): Laplacian input, shallow net, two RAFs, heads, SR decoder."""

    def __init__(self, num_classes: int, channels: int, r: int, shallow_base: int, shallow_layers: Sequence[int],
                 dropout: float) -> None:
        super().__init__()
        self.stdc_net = ShallowNet(shallow_base, 6, shallow_layers)
        c8, c16 = self.stdc_net.channels
        self.fuse8 = RelationAwareFusion(c8, channels, r)
        self.fuse16 = RelationAwareFusion(c16, channels, r)
        self.sr_decoder = SRDecoder(channels)
        self.lap = LaplacianPyramid(2, 3)
        self.conv_seg_aux_16 = SegmentationHead(channels, channels // 2, num_classes)
        self.conv_seg_aux_8 = SegmentationHead(channels, channels // 2, num_classes)
        self.conv_seg = SegmentationHead(channels, channels // 2, num_classes)
        self.dropout = nn.Dropout2d(dropout)

    def laplacian_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) -> (6-channel shallow input (N, 6, H, W), recon target = residual sum (N, 3, H, W))."""
        r1, r2 = self.lap(x)
        r2 = F.interpolate(r2, size=r1.shape[2:], mode="bilinear", align_corners=False)
        return torch.cat([r1, r2], dim=1), r1 + r2


class ISDNet(nn.Module):
    """The whole segmentor (the release's ``EncoderDecoderRefine`` with ``down_ratio`` 4).

    Args:
        num_classes: K.
        base_width: ResNetV1c base width (64 in the release, ResNet-18).
        channels: C of the ASPP head, the fusion and the heads (128 in the release).
        r: groups of the relation MLP (16 in the release; r^2 = 2C).
        dilations: ASPP dilations ((1, 12, 24, 36) in the release).
        aux_channels: FCN auxiliary head width (64 in the release).
        shallow_base: shallow net base width (64 in the release; must be C / 2 so that the 1/8 and
            1/16 maps have 2C and 4C channels, the release's ``ext``).
        shallow_layers: bottlenecks per shallow stage ((2, 2) in the release).
        down_ratio: the deep branch's downsampling (4).
        dropout: dropout before ``conv_seg`` of every head that has one (0.1).
    """

    def __init__(self, num_classes: int, base_width: int = 64, channels: int = 128, r: int = 16,
                 dilations: Sequence[int] = (1, 12, 24, 36), aux_channels: int = 64, shallow_base: int = 64,
                 shallow_layers: Sequence[int] = (2, 2), down_ratio: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        if shallow_base * 4 != 2 * channels:
            raise ValueError(f"isdnet: shallow_base must be channels / 2 (the fusions read 2C and 4C channels), "
                             f"got shallow_base={shallow_base}, channels={channels}")
        self.num_classes = num_classes
        self.down_ratio = down_ratio
        self.backbone = ResNetV1c(base_width)
        self.decode_head = ASPPHead(self.backbone.channels[3], channels, num_classes, dilations, dropout)
        self.refine_head = ISDHead(num_classes, channels, r, shallow_base, shallow_layers, dropout)
        self.auxiliary_head = FCNHead(self.backbone.channels[2], aux_channels, num_classes, dropout)

    def deep_input(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 3, H // 4, W // 4), nearest (the release's default interpolation)."""
        return F.interpolate(x, size=[x.shape[-2] // self.down_ratio, x.shape[-1] // self.down_ratio])

    def run(self, x: torch.Tensor, train: bool = False) -> Outputs:
        """All maps of one forward; ``train`` adds the aux heads, the SR decoder and the FCN head."""
        feats = self.backbone(self.deep_input(x))
        deep, deep_logits = self.decode_head(feats[3])
        head = self.refine_head
        lap_in, residual = head.laplacian_input(x)
        s8, s16 = head.stdc_net(lap_in)
        _, ctx16, fused16 = head.fuse16(s16, deep)
        _, ctx8, fused8 = head.fuse8(s8, fused16)
        out = head.conv_seg(head.dropout(fused8))
        if not train:
            return Outputs(out)
        sr_feat, sr = head.sr_decoder(deep)
        return Outputs(out, aux16=head.conv_seg_aux_16(ctx8), aux8=head.conv_seg_aux_8(ctx16),
                       deep_logits=deep_logits, fcn_logits=self.auxiliary_head(feats[2]), deep=deep,
                       sr_feat=sr_feat, sr=sr, residual=residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised float -> (N, K, H, W) logits (the release's ``forward_dummy``:
        encode-decode with the final bilinear upsample)."""
        out = self.run(x).out
        return F.interpolate(out, size=x.shape[2:], mode="bilinear", align_corners=False)
