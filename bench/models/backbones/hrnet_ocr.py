"""HRNetV2-W18-Small-v2 + OCR as MagNet released it for Cityscapes (spec magnet.md §2.2, §3.1).

Architecture (module names follow the released state dict: 924 entries, 6,379,278 parameters
for C=19):

- stem ``conv1/bn1/conv2/bn2`` (3x3 convs, 64 channels); with ``full_os=True`` (released) both
  have stride 1, so the highest-resolution branch runs at the input resolution; upstream HRNet
  (``full_os=False``) uses stride 2 twice (branch 0 at 1/4).
- ``layer1``: 2 Bottlenecks 64 -> 256.
- ``transition1/2/3`` and ``stage2/3/4`` (1, 3 and 2 modules of 2, 3 and 4 branches of two
  BasicBlocks each, widths 18/36/72/144), multi-scale fusion after every module.
- the four branches are upsampled to branch 0 and concatenated (270 channels).
- OCR head: ``aux_head`` (soft object regions, C maps), ``conv3x3_ocr`` (270 -> 512),
  parameter-free spatial gather, ``ocr_distri_head`` (object attention, key 256), ``cls_head``.

All internal upsampling is bilinear with ``align_corners=True``. BatchNorm momentum is 0.01 in the
HRNet body and PyTorch's default 0.1 in the OCR head (training only).

Outputs: ``forward_heads`` gives (main, aux) logits at input resolution; ``forward`` gives their
fixed combination ``(main + 0.4 * aux) / 1.4`` as the released model does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from bench.models.state_dict import clean_state_dict
from bench.models.backbones.fold import InferenceCopy
from bench.models.backbones.packed import PackedConv2d, pack_convs
from bench.models.backbones.resnet import (
    BasicBlock,
    Bottleneck,
    check_image_batch,
    load_partial_strict,
    make_res_layer,
    read_state_dict,
)

HRNET_BN_MOMENTUM = 0.01
ALIGN_CORNERS = True
AUX_WEIGHT = 0.4
AUX_NORM = 1.4  # 1 + AUX_WEIGHT, written as the released code does


@dataclass(frozen=True)
class StageSpec:
    """One HRNet stage: ``modules`` HighResolutionModules, each with ``blocks`` per branch."""

    modules: int
    blocks: tuple[int, ...]
    channels: tuple[int, ...]


# HRNetV2-W18-Small-v2 (stage 1 is two Bottlenecks at 64).
W18_SMALL_V2 = (
    StageSpec(1, (2, 2), (18, 36)),
    StageSpec(3, (2, 2, 2), (18, 36, 72)),
    StageSpec(2, (2, 2, 2, 2), (18, 36, 72, 144)),
)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout, momentum=HRNET_BN_MOMENTUM),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=ALIGN_CORNERS)


def _concat_upsampled(branches: Sequence[torch.Tensor], direct: bool = True) -> torch.Tensor:
    """(N, sum C_i, H, W): every branch upsampled to branch 0's size, concatenated in order.

    Without autograd each branch is upsampled straight into its channel slice of the output, one
    sample at a time (a (1, C_i, H, W) slice is contiguous): the same bilinear kernel on the same
    values as ``torch.cat`` of the upsampled maps, without the temporary maps and their copy.
    """
    size = tuple(branches[0].shape[-2:])
    first = branches[0]
    if not direct or torch.is_grad_enabled() or not all(b.is_contiguous() and b.dtype == first.dtype for b in branches):
        return torch.cat([first, *(_upsample(b, size) for b in branches[1:])], 1)
    out = first.new_empty((first.shape[0], sum(b.shape[1] for b in branches), *size))
    lo = 0
    for b in branches:
        hi = lo + b.shape[1]
        if tuple(b.shape[-2:]) == size:
            out[:, lo:hi].copy_(b)
        else:
            for n in range(b.shape[0]):
                torch._C._nn.upsample_bilinear2d(b[n:n + 1], size, ALIGN_CORNERS, None, None,  # type: ignore[call-arg]
                                                 out=out[n:n + 1, lo:hi])  # the stub lacks out=
        lo = hi
    return out


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks, then all-to-all fusion.

    ``fuse_layers[i][j]`` maps branch j to branch i: a 1x1 conv + BN then bilinear upsampling when
    j > i, None when j == i, and i - j strided 3x3 conv + BN steps (ReLU between them) when j < i.
    """

    def __init__(self, channels: Sequence[int], blocks: Sequence[int]) -> None:
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(
            make_res_layer(BasicBlock, c, c, b, shortcut_bn_momentum=HRNET_BN_MOMENTUM)
            for c, b in zip(channels, blocks)
        )
        self.fuse_layers = None
        if n > 1:
            # None entries (j == i) keep the released state-dict indices; ModuleList stores them as is
            self.fuse_layers = nn.ModuleList(
                nn.ModuleList(self._fuse(channels, i, j) for j in range(n))  # type: ignore[misc]
                for i in range(n)
            )
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _fuse(channels: Sequence[int], i: int, j: int) -> nn.Module | None:
        if j > i:
            return _conv_bn(channels[j], channels[i], 1, 1, relu=False)
        if j == i:
            return None
        steps = [_conv_bn(channels[j], channels[j], 3, 2, relu=True) for _ in range(i - j - 1)]
        steps.append(_conv_bn(channels[j], channels[i], 3, 2, relu=False))
        return nn.Sequential(*steps)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        out = []
        for i, row in enumerate(self.fuse_layers):
            assert isinstance(row, nn.ModuleList)
            # Sum the terms in branch order j = 0..n-1, as the released code does (float parity).
            # Each term is made only when it is added, and added in place into the running sum
            # (same values as y = y + t): one full-size map alive per row instead of n.
            y = None
            for j, layer in enumerate(row):
                t = xs[j] if j == i else layer(xs[j]) if j < i else _upsample(layer(xs[j]), xs[i].shape[-2:])
                if y is None:
                    y = t
                elif y is xs[i]:
                    y = y + t  # never write into a branch input: the other rows read it
                else:
                    y += t
            out.append(self.relu(y))
        return out


def _transition(pre: Sequence[int], cur: Sequence[int]) -> nn.ModuleList:
    """Branch adapters between stages; a new branch is a strided 3x3 conv from the lowest one."""
    layers: list[nn.Module | None] = []
    for i, c in enumerate(cur):
        if i < len(pre):
            layers.append(None if pre[i] == c else _conv_bn(pre[i], c, 3, 1, relu=True))
        else:
            n_new = i + 1 - len(pre)
            steps = [_conv_bn(pre[-1], c if k == n_new - 1 else pre[-1], 3, 2, relu=True) for k in range(n_new)]
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)  # type: ignore[arg-type]  # None: the branch passes through (released layout)


def _bn_relu(channels: int) -> nn.Sequential:
    # OCR head norms use PyTorch's default momentum (as the released code does). The ReLU works
    # in place on the BN's fresh output (same values; the released code makes a new map each time,
    # as reference_forward() still does).
    relu = nn.ReLU(inplace=True)
    relu.made_inplace = True  # type: ignore[assignment]
    return nn.Sequential(nn.BatchNorm2d(channels), relu)


def _conv1x1_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 1, bias=False), _bn_relu(cout)]


class ObjectAttentionBlock(nn.Module):
    """Pixel-to-object attention (scale 1).

    Pixels (N, Cin, H, W) query the C object descriptors (N, Cin, C, 1); the attended context is
    projected back to Cin channels.
    """

    def __init__(self, in_channels: int, key_channels: int) -> None:
        super().__init__()
        self.key_channels = key_channels
        self.f_pixel = nn.Sequential(
            *_conv1x1_bn_relu(in_channels, key_channels), *_conv1x1_bn_relu(key_channels, key_channels)
        )
        self.f_object = nn.Sequential(
            *_conv1x1_bn_relu(in_channels, key_channels), *_conv1x1_bn_relu(key_channels, key_channels)
        )
        self.f_down = nn.Sequential(*_conv1x1_bn_relu(in_channels, key_channels))
        self.f_up = nn.Sequential(*_conv1x1_bn_relu(key_channels, in_channels))

    def forward(self, x: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        query = self.f_pixel(x).flatten(2).transpose(1, 2)  # (N, HW, K)
        key = self.f_object(proxy).flatten(2)  # (N, K, C)
        value = self.f_down(proxy).flatten(2).transpose(1, 2)  # (N, C, K)
        sim = torch.softmax(torch.matmul(query, key) * self.key_channels**-0.5, dim=-1)
        context = torch.matmul(sim, value).transpose(1, 2).reshape(n, self.key_channels, h, w)
        return self.f_up(context)


class SpatialOCR(nn.Module):
    """Object-contextual representation: concat(context, pixel features) -> 1x1 conv, BN, ReLU, dropout."""

    def __init__(self, in_channels: int, key_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        self.object_context_block = ObjectAttentionBlock(in_channels, key_channels)
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(2 * in_channels, out_channels, 1, bias=False), _bn_relu(out_channels), nn.Dropout2d(dropout)
        )
        self.direct_concat = True  # see _cat_context; reference_forward() turns it off

    def forward(self, feats: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        context = self.object_context_block(feats, proxy)
        return self.conv_bn_dropout(_cat_context(context, feats, self.direct_concat))


def _cat_context(context: torch.Tensor, feats: torch.Tensor, direct: bool = True) -> torch.Tensor:
    """``torch.cat([context, feats], 1)``, contiguous (N, 2F, H, W).

    The attention context comes out of its 1x1 convolution channels-last (its input is a
    transposed matrix product), so the concatenation transposes it. Without autograd each
    sample's (H*W, F) context matrix is transposed by PyTorch's blocked 2-D transpose copy, about
    twice as fast as the strided copy inside ``torch.cat``; the values are the same (a copy).
    """
    n, f, h, w = context.shape
    if (not direct or torch.is_grad_enabled() or not feats.is_contiguous() or context.dtype != feats.dtype
            or not context.is_contiguous(memory_format=torch.channels_last) or context.is_contiguous()):
        return torch.cat([context, feats], 1)
    out = feats.new_empty((n, f + feats.shape[1], h, w))
    for i in range(n):
        matrix = context[i].permute(1, 2, 0).reshape(h * w, f)  # a view of the (H, W, F) memory
        out[i, :f].view(f, h * w).copy_(matrix.t())
    out[:, f:].copy_(feats)
    return out


def spatial_gather(feats: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Soft object regions -> object descriptors.

    Args:
        feats: (N, F, H, W) pixel features.
        logits: (N, C, H, W) soft-region logits, softmaxed over the H*W positions.

    Returns:
        (N, F, C, 1) class-weighted feature means.
    """
    weights = torch.softmax(logits.flatten(2), dim=2)  # (N, C, HW)
    context = torch.matmul(weights, feats.flatten(2).transpose(1, 2))  # (N, C, F)
    return context.transpose(1, 2).unsqueeze(3)


class HRNetOCR(nn.Module):
    """HRNetV2 + OCR segmenter (see the module docstring).

    Args:
        num_classes: C.
        stages: HRNet stage specs (default W18-Small-v2).
        stage1_blocks: Bottlenecks in ``layer1``.
        full_os: stride-1 stem (released MagNet) instead of upstream's two stride-2 convs.
        ocr_mid_channels: OCR pixel feature width.
        ocr_key_channels: OCR attention key width.
        ocr_dropout: dropout after the OCR fusion.
    """

    # conv -> BN pairs its forward applies in this order (bench.models.backbones.fold may fold them)
    fold_pairs: ClassVar[tuple[tuple[str, str], ...]] = (("conv1", "bn1"), ("conv2", "bn2"))

    def __init__(
        self,
        num_classes: int,
        stages: Sequence[StageSpec] = W18_SMALL_V2,
        stage1_blocks: int = 2,
        full_os: bool = True,
        ocr_mid_channels: int = 512,
        ocr_key_channels: int = 256,
        ocr_dropout: float = 0.05,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.full_os = full_os
        stride = 1 if full_os else 2
        self.conv1 = nn.Conv2d(3, 64, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=HRNET_BN_MOMENTUM)
        self.conv2 = nn.Conv2d(64, 64, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=HRNET_BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_res_layer(Bottleneck, 64, 64, stage1_blocks, shortcut_bn_momentum=HRNET_BN_MOMENTUM)
        pre: tuple[int, ...] = (64 * Bottleneck.expansion,)
        for k, spec in enumerate(stages, start=1):
            setattr(self, f"transition{k}", _transition(pre, spec.channels))
            modules = (HighResolutionModule(spec.channels, spec.blocks) for _ in range(spec.modules))
            setattr(self, f"stage{k + 1}", nn.Sequential(*modules))
            pre = spec.channels
        self.num_stages = len(stages)
        last = sum(pre)
        self.conv3x3_ocr = nn.Sequential(
            nn.Conv2d(last, ocr_mid_channels, 3, 1, 1), nn.BatchNorm2d(ocr_mid_channels), nn.ReLU(inplace=True)
        )
        self.ocr_distri_head = SpatialOCR(ocr_mid_channels, ocr_key_channels, ocr_mid_channels, ocr_dropout)
        self.cls_head = nn.Conv2d(ocr_mid_channels, num_classes, 1, bias=True)
        self.aux_head = nn.Sequential(
            nn.Conv2d(last, last, 1),
            nn.BatchNorm2d(last),
            nn.ReLU(inplace=True),
            nn.Conv2d(last, num_classes, 1, bias=True),
        )
        self._init_weights()
        # see forward(): off by default, since folding BN moves labels at near-ties (3 of 65,536 px
        # measured); ``backbone_options: {inference_copy: true}`` opts in, python -m perf times both
        self.inference_copy = False
        self._inference = InferenceCopy()
        # bit-identical: oneDNN reorders each conv weight once, not per call (bench.models.backbones.packed),
        # and the upsampled branches are written into the concatenation directly
        pack_convs(self)
        self.direct_concat = True

    def _init_weights(self) -> None:
        # HRNet's own init: N(0, 0.001) convs in the body; heads keep PyTorch's default init.
        for name, m in self.named_modules():
            if any(part in name for part in ("cls", "aux", "ocr")):
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)

    def body(self, x: torch.Tensor) -> list[torch.Tensor]:
        """HRNet body: (N, 3, H, W) -> branch maps, widths 18/36/72/144 at strides s, 2s, 4s, 8s (s = 1 or 4)."""
        x = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))
        xs = [self.layer1(x)]
        for k in range(1, self.num_stages + 1):
            transition = getattr(self, f"transition{k}")
            xs = [xs[i] if t is None else t(xs[min(i, len(xs) - 1)]) for i, t in enumerate(transition)]
            xs = getattr(self, f"stage{k + 1}")(xs)
        return xs

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Main and aux logits at branch-0 resolution, plus named features."""
        check_image_batch(x, type(self).__name__)
        branches = self.body(x)
        feats = _concat_upsampled(branches, self.direct_concat)
        aux = self.aux_head(feats)
        mid = self.conv3x3_ocr(feats)
        ocr = self.ocr_distri_head(mid, spatial_gather(mid, aux))
        main = self.cls_head(ocr)
        named = {f"branch{i}": b for i, b in enumerate(branches)}
        named.update({"fine": feats, "hrnet": feats, "ocr": ocr})
        return main, aux, named

    def forward_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(main, aux) logits, each (N, C, H, W) at the input resolution."""
        main, aux, _ = self._heads(x)
        size = x.shape[-2:]
        return _upsample(main, size), _upsample(aux, size)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits as :meth:`forward` plus features.

        Features: ``fine`` = ``hrnet`` (N, 270, H/s, W/s) concatenated branches (s = 1 with
        ``full_os``), ``branch0..3``, ``ocr`` (N, 512, H/s, W/s), and ``main_logits`` /
        ``aux_logits`` (N, C, H, W).
        """
        main, aux, named = self._heads(x)
        size = x.shape[-2:]
        named["main_logits"] = _upsample(main, size)
        named["aux_logits"] = _upsample(aux, size)
        return _upsample((main + AUX_WEIGHT * aux) / AUX_NORM, size), named

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised -> (N, C, H, W) logits ``(main + 0.4 aux) / 1.4`` at input size.

        In eval mode without autograd, and unless ``inference_copy`` is set to False, this runs
        the cached folded copy (:class:`bench.models.backbones.fold.InferenceCopy`: BN folded into the
        convolutions, channels-last), which agrees with the plain forward up to float rounding.
        """
        fast = self._inference.get(self, x) if self.inference_copy else None
        if fast is not None:
            return fast(x)
        main, aux, _ = self._heads(x)
        return _upsample((main + AUX_WEIGHT * aux) / AUX_NORM, x.shape[-2:])


@contextmanager
def reference_forward(model: nn.Module, keep: Sequence[str] = ()) -> Iterator[nn.Module]:
    """Run ``model`` as the forward was before its bit-identical speed-ups (for comparisons).

    Inside the block every :class:`~bench.models.backbones.packed.PackedConv2d` goes through ``F.conv2d``
    (weights reordered on every call), the OCR head's ReLUs make new maps and the branches and
    the OCR context are concatenated with ``torch.cat``, as before. Outputs are bitwise equal
    either way (``tests/test_exact_forward.py``); only the time differs.

    Args:
        model: any module (parts it does not have are skipped).
        keep: speed-ups to leave on, of :data:`EXACT_SPEEDUPS` (to time each one on its own).
    """
    unknown = set(keep) - set(EXACT_SPEEDUPS)
    if unknown:
        raise ValueError(f"reference_forward: unknown speed-ups {sorted(unknown)}; expected some of {EXACT_SPEEDUPS}")
    convs = [m for m in model.modules() if isinstance(m, PackedConv2d)] if "packed_weights" not in keep else []
    relus = ([m for m in model.modules() if isinstance(m, nn.ReLU) and getattr(m, "made_inplace", False)]
             if "inplace_relu" not in keep else [])
    nets = ([m for m in model.modules() if isinstance(m, (HRNetOCR, SpatialOCR))]
            if "direct_concat" not in keep else [])
    _switch_speedups(convs, relus, nets, False)
    try:
        yield model
    finally:
        _switch_speedups(convs, relus, nets, True)


def _switch_speedups(convs: Sequence[PackedConv2d], relus: Sequence[nn.ReLU],
                     nets: Sequence[HRNetOCR | SpatialOCR], on: bool) -> None:
    """Turn the exact speed-ups of these modules on or off (``reference_forward``)."""
    for m in convs:
        m.use_packed = on
    for r in relus:
        r.inplace = on
    for net in nets:
        net.direct_concat = on


EXACT_SPEEDUPS = ("packed_weights", "inplace_relu", "direct_concat")


HEAD_PREFIXES = ("conv3x3_ocr.", "ocr_distri_head.", "cls_head.", "aux_head.")


def load_hrnet_imagenet(model: HRNetOCR, path: str | Path) -> None:
    """Initialise the HRNet body from a local ImageNet classification file (``hrnet_w18_small_v2``).

    Every body key (stem, ``layer1``, transitions, stages) must be present with the right shape;
    the classifier's extra modules (``incre_modules``, ``downsamp_modules``, ``final_layer``,
    ``classifier``) are ignored and the OCR head keeps its initialisation. A ``last_layer`` in
    the file is read as ``aux_head`` (the released trainer's renaming); ``model.``/``module.``
    prefixes are stripped.

    Raises:
        RuntimeError: body keys missing or mis-shaped (listed).
    """
    state = {k.replace("last_layer", "aux_head"): v for k, v in clean_state_dict(read_state_dict(path)).items()}
    own = model.state_dict()
    body_state = {k: v for k, v in state.items() if k in own and not k.startswith(HEAD_PREFIXES)}
    extra = {k for k in state if k not in own}
    body_module = _BodyView(model)
    load_partial_strict(body_module, body_state, source=f"HRNet ImageNet weights {path} (ignored {len(extra)} extra keys)")
    heads = {k: v for k, v in state.items() if k.startswith(HEAD_PREFIXES) and k in own and v.shape == own[k].shape}
    if heads:
        model.load_state_dict({**model.state_dict(), **heads}, strict=True)


class _BodyView(nn.Module):
    """The body modules of an HRNetOCR under their own names (for a strict partial load)."""

    def __init__(self, model: HRNetOCR) -> None:
        super().__init__()
        for name, child in model.named_children():
            if not any(name == p.rstrip(".") for p in HEAD_PREFIXES):
                self.add_module(name, child)


def hrnet18_small_v2_ocr(
    num_classes: int, full_os: bool = True, imagenet_checkpoint: str | Path | None = None,
    inference_copy: bool = False,
) -> HRNetOCR:
    """HRNetV2-W18-Small-v2 + OCR as released by MagNet (stride-1 stem by default).

    Args:
        num_classes: C.
        full_os: stride-1 stem (True, released) or upstream's stride-4 stem.
        imagenet_checkpoint: optional local ImageNet ``hrnet_w18_small_v2`` file for the body.
        inference_copy: run eval-mode forwards without autograd on the folded channels-last
            copy (see :meth:`HRNetOCR.forward`; about 1.5x faster per forward, but labels may
            differ from the plain forward at near-ties, so it is off unless asked for with
            ``backbone_options: {inference_copy: true}``).
    """
    model = HRNetOCR(num_classes, full_os=full_os)
    model.inference_copy = bool(inference_copy)
    if imagenet_checkpoint is not None:
        load_hrnet_imagenet(model, imagenet_checkpoint)
    return model
