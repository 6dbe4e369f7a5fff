"""Inference copies of the native backbones with every batch norm folded into its convolution.

In eval mode a ``Conv2d -> BatchNorm2d`` pair is one affine map per output channel, so the pair
equals a single convolution with scaled weights and a shifted bias
(``torch.nn.utils.fusion.fuse_conv_bn_eval``). Folding removes one full pass over every feature
map per pair. The result differs from the unfolded network by float32 rounding only (the
scale is applied to the weights instead of the output), so labels can differ at near-ties: the
callers measure and report that (``python -m perf``).

A pair is folded where the forward applies the BN right after the conv, which is known for:

- consecutive children of an ``nn.Sequential`` (``conv, bn`` or ``conv, Sequential(bn, ...)``);
- ``conv<k>``/``bn<k>`` attributes that a module's class declares as applied in that order, in its
  own class attribute ``fold_pairs`` (``(("conv1", "bn1"), ...)``; read from the class itself, not
  inherited, since a subclass may change its forward and must declare its own).

Nothing else is touched; :func:`count_batchnorms` tells what is left.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from bench.models.backbones.packed import PackedConv2d


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (type(conv) in (nn.Conv2d, PackedConv2d) and type(bn) is nn.BatchNorm2d and bool(bn.track_running_stats)
            and bn.running_mean is not None and bool(conv.out_channels == bn.num_features))


def _fused(conv: nn.Module, bn: nn.Module) -> nn.Conv2d:
    """``fuse_conv_bn_eval`` of a pair :func:`_foldable` accepted."""
    assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
    return fuse_conv_bn_eval(conv, bn)


def _fold_sequential(seq: nn.Sequential) -> int:
    """Fold ``conv, bn`` and ``conv, Sequential(bn, ...)`` neighbours in place; the number folded."""
    folded, children = 0, list(seq)
    for i in range(len(children) - 1):
        conv, nxt = children[i], children[i + 1]
        if _foldable(conv, nxt):
            seq[i], seq[i + 1] = _fused(conv, nxt), nn.Identity()
            folded += 1
        elif type(nxt) is nn.Sequential and len(nxt) > 0 and _foldable(conv, nxt[0]):
            seq[i], nxt[0] = _fused(conv, nxt[0]), nn.Identity()
            folded += 1
    return folded


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode deep copy of ``model`` with every known conv -> BN pair folded (see module doc).

    Args:
        model: a backbone (any mode; the copy is put in eval mode, ``model`` is not changed).

    Returns:
        The folded copy, same device and dtype, with ``folded_pairs`` set to the number folded.
    """
    folded_model = copy.deepcopy(model).eval()
    folded = 0
    with torch.no_grad():
        for module in list(folded_model.modules()):
            if type(module) is nn.Sequential:
                folded += _fold_sequential(module)
            for conv_name, bn_name in vars(type(module)).get("fold_pairs", ()):
                conv, bn = getattr(module, conv_name), getattr(module, bn_name)
                if _foldable(conv, bn):
                    setattr(module, conv_name, _fused(conv, bn))
                    setattr(module, bn_name, nn.Identity())
                    folded += 1
    folded_model.folded_pairs = folded  # type: ignore[assignment]  # a plain attribute, for callers
    return folded_model


def count_batchnorms(model: nn.Module) -> int:
    """Number of ``BatchNorm2d`` modules left in ``model``."""
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _state_key(model: nn.Module) -> tuple:
    """What the folded copy depends on: every parameter and buffer (storage and in-place version)."""
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in model.state_dict(keep_vars=True).values())


class InferenceCopy:
    """A model's folded, channels-last inference copy, rebuilt whenever its weights change.

    ``get(model, x)`` returns a callable for ``model(x)`` in eval mode without autograd, or
    None when the plain forward must run (training, gradients wanted, a non-4-D input). The copy
    is an eval-mode deep copy with ``inference_copy = False`` (so it runs its plain forward),
    BN folded (:func:`fold_batchnorm`) and weights in channels-last order; the input is made
    channels-last and the output contiguous again, so callers see the usual layout. It is
    rebuilt when a parameter or buffer is replaced or changed in place (``load_state_dict``,
    an optimiser step, ``.to()``); the key costs about a millisecond per call.
    """

    def __init__(self, fold: bool = True, channels_last: bool = True) -> None:
        self.fold, self.channels_last = fold, channels_last
        self.key: tuple | None = None
        self.model: nn.Module | None = None

    def get(self, model: nn.Module, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor] | None:
        if model.training or torch.is_grad_enabled() or x.dim() != 4:
            return None
        key = _state_key(model)
        if self.model is None or key != self.key:
            with torch.inference_mode(False), torch.no_grad():
                model = _without_cache(model)
                copy_ = fold_batchnorm(model) if self.fold else copy.deepcopy(model).eval()
            setattr(copy_, "inference_copy", False)  # the copy runs its plain forward
            layout = torch.channels_last if self.channels_last else torch.contiguous_format
            self.model, self.key = copy_.to(memory_format=layout), key  # type: ignore[call-overload]  # stub lacks it
        folded, layout = self.model, torch.channels_last if self.channels_last else torch.contiguous_format

        def run(inp: torch.Tensor) -> torch.Tensor:
            return folded(inp.contiguous(memory_format=layout)).contiguous()

        return run


def _without_cache(model: nn.Module) -> nn.Module:
    """``model`` with its (possibly filled) inference cache emptied, so deepcopy does not copy it."""
    cache = getattr(model, "_inference", None)
    if isinstance(cache, InferenceCopy):
        cache.model, cache.key = None, None
    return model
