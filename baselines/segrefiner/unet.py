"""SegRefiner's denoiser: an improved-DDPM UNet with a learned 6-entry time embedding.

Our own implementation (Apache-2.0, as SegRefiner's release) of the ``DenoiseUNet`` described in
``refinement_track.md`` §4.2; no code is copied from MengyuWang826/SegRefiner. The module and
parameter names follow the release's ``state_dict`` layout, so the released checkpoint's
``denoise_model.*`` entries load strictly (``load_unet``; the release size is :data:`RELEASED`:
453 entries, 118 604 673 parameters).

Layout (names as in the release):

- ``time_embed``: ``Embedding(steps, 4 * base)``, added inside every residual block;
- ``input_blocks``: a 3x3 stem, then per level ``num_res_blocks`` residual blocks (self-attention
  after each where the level's stride is in ``attention_strides``) and a stride-2 3x3 conv
  (``op``) between levels;
- ``middle_block``: residual block, attention, residual block;
- ``output_blocks``: per level, deepest first, ``num_res_blocks + 1`` residual blocks on the
  concatenation with the matching skip, attention as on the way down, and a nearest x2 upsample
  followed by a 3x3 conv (``conv``) after the last block of every level but the first;
- ``out``: GroupNorm, SiLU, 3x3 conv to one logit map.

Residual blocks: ``in_layers`` = GroupNorm, SiLU, conv; ``emb_layers`` = SiLU, Linear (the time
embedding projected to the block's width, added as a bias); ``out_layers`` = GroupNorm, SiLU,
Dropout, conv; ``skip_connection`` = identity or a 1x1 conv when the width changes. Attention:
GroupNorm, ``qkv`` (1x1 Conv1d to 3C), softmax attention with the release's head-major channel
order (per head ``[q, k, v]`` blocks), ``proj_out`` (1x1 Conv1d), residual. The release's
"zero" initialisation of output convolutions is disabled there, so it is not done here either.

Every GroupNorm has ``groups`` (32) groups, so every width that reaches one (the level widths and
the decoder's concatenations) must be divisible by it: :class:`DenoiseUNet` checks this at
construction and names the offending width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# the release's configs/segrefiner/segrefiner_lr.py (shared by _hr and _big)
RELEASED = {"base": 128, "channel_mult": (1, 1, 2, 2, 4, 4), "num_res_blocks": 2, "attention_strides": (16, 32),
            "num_heads": 4, "steps": 6}
GROUPS = 32


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    if channels % groups:
        raise ValueError(f"segrefiner UNet: GroupNorm with {groups} groups needs widths divisible by {groups}, "
                         f"got {channels} (choose base_channels as a multiple of {groups})")
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    """Residual block conditioned on the time embedding: (N, C_in, H, W), (N, E) -> (N, C_out, H, W)."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(_norm(channels, groups), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(_norm(out_channels, groups), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection: nn.Module = (nn.Identity() if out_channels == channels
                                           else nn.Conv2d(channels, out_channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_layers(emb)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all positions: (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channels: int, num_heads: int, groups: int) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"segrefiner UNet: {channels} channels do not split into {num_heads} attention heads")
        self.num_heads = num_heads
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        flat = x.reshape(n, c, h * w)
        # head-major: the release reshapes (N, 3C, T) to (N * heads, 3C / heads, T), then splits q, k, v
        qkv = self.qkv(self.norm(flat)).reshape(n * self.num_heads, 3, c // self.num_heads, h * w)
        q, k, v = (part.transpose(1, 2) for part in qkv.unbind(1))  # (N * heads, T, C / heads)
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(C / heads), as q and k each / (C/heads)^(1/4)
        out = out.transpose(1, 2).reshape(n, c, h * w)
        return (flat + self.proj_out(out)).reshape(n, c, h, w)


class Downsample(nn.Module):
    """Stride-2 3x3 conv: (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest x2 upsampling then a 3x3 conv: (N, C, H, W) -> (N, C, 2H, 2W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class EmbedSequential(nn.ModuleList):
    """Layers applied in order; residual blocks also receive the time embedding."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class DenoiseUNet(nn.Module):
    """The denoiser: image and current mask plus the step index -> one logit map of the clean mask.

    Args:
        in_channels: input channels (4: normalised RGB and the 0/1 mask).
        base: width of the first level (128 released; a multiple of ``groups``).
        channel_mult: width multiplier per level; ``len - 1`` stride-2 downsamplings, so inputs
            must have sides divisible by ``2 ** (len(channel_mult) - 1)`` (:attr:`stride`).
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attention_strides: strides (1, 2, 4, ...) of the levels with self-attention; the
            middle block always has one.
        num_heads: attention heads.
        dropout: dropout inside the residual blocks (0 released).
        steps: entries of the learned time embedding (6: t = 0..5).
        groups: GroupNorm groups (32 released).

    Raises:
        ValueError: a width not divisible by ``groups`` or by ``num_heads``.
    """

    def __init__(self, in_channels: int = 4, base: int = 128, channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4),
                 num_res_blocks: int = 2, attention_strides: tuple[int, ...] = (16, 32), num_heads: int = 4,
                 dropout: float = 0.0, steps: int = 6, groups: int = GROUPS) -> None:
        super().__init__()
        emb = 4 * base
        self.stride = 2 ** (len(channel_mult) - 1)
        self.time_embed = nn.Embedding(steps, emb)
        self.input_blocks = nn.ModuleList([EmbedSequential([nn.Conv2d(in_channels, base, 3, padding=1)])])
        skips, ch, ds = [base], base, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb, mult * base, dropout, groups)]
                ch = mult * base
                if ds in attention_strides:
                    layers.append(AttentionBlock(ch, num_heads, groups))
                self.input_blocks.append(EmbedSequential(layers))
                skips.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(EmbedSequential([Downsample(ch)]))
                skips.append(ch)
                ds *= 2
        self.middle_block = EmbedSequential([ResBlock(ch, emb, ch, dropout, groups), AttentionBlock(ch, num_heads, groups),
                                             ResBlock(ch, emb, ch, dropout, groups)])
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + skips.pop(), emb, base * mult, dropout, groups)]
                ch = base * mult
                if ds in attention_strides:
                    layers.append(AttentionBlock(ch, num_heads, groups))
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(layers))
        self.out = nn.Sequential(_norm(ch, groups), nn.SiLU(), nn.Conv2d(ch, 1, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(N, 4, H, W) float32 input, (N,) int64 steps -> (N, 1, H, W) float32 logits.

        Raises:
            ValueError: H or W not divisible by :attr:`stride`.
        """
        if x.shape[-1] % self.stride or x.shape[-2] % self.stride:
            raise ValueError(f"segrefiner UNet: input {tuple(x.shape[-2:])} must have sides divisible by {self.stride}")
        emb = self.time_embed(t)
        hs = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], 1), emb)
        return self.out(h)


def build_unet(cfg: object) -> DenoiseUNet:
    """The denoiser a ``SegRefinerConfig`` (or any object with its architecture fields) describes."""
    return DenoiseUNet(4, int(cfg.base_channels), tuple(cfg.channel_mult), int(cfg.num_res_blocks),  # type: ignore[attr-defined]
                       tuple(cfg.attention_strides), int(cfg.num_heads), float(cfg.dropout),  # type: ignore[attr-defined]
                       int(cfg.steps), int(cfg.groups))  # type: ignore[attr-defined]
