"""mmsegmentation's ``PointHead`` made buildable without mmcv's compiled ops.

mmseg 1.4.2 imports ``point_sample`` from ``mmcv.ops`` inside a try/except and refuses to build
``PointHead`` when it is missing (our one-command install has no compiled ops). The op is a thin
wrapper over ``grid_sample`` (``dependencies.md`` Q3: max abs diff 0.0 against the compiled op),
so the project's pure-torch shim (``bench.models.backbones.point_sample``) is installed into the module
before building; mmcv's own op is kept where it exists.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # mmseg ships no type information: to mypy the class is Any, to the reader it names the type
    from mmseg.models.decode_heads.point_head import PointHead


def install_point_sample() -> Any:
    """Give ``mmseg.models.decode_heads.point_head`` a ``point_sample`` if mmcv has none.

    Returns:
        The ``point_sample`` the module now uses (mmcv's compiled op when it exists, else the
        project's pure-torch shim ``bench.models.backbones.point_sample.point_sample``).
    """
    import mmseg.models.decode_heads.point_head as ph

    from bench.models.backbones.point_sample import install_point_sample_shim

    install_point_sample_shim()
    return ph.point_sample


def point_sample(input: torch.Tensor, points: torch.Tensor, **kw: Any) -> torch.Tensor:
    """The ``point_sample`` mmseg's PointHead uses (see :func:`_grid_point_sample` for shapes)."""
    return install_point_sample()(input, points, **kw)


def build_point_head(
    in_channels: int,
    num_classes: int,
    fc_channels: int = 256,
    num_fcs: int = 3,
    coarse_pred_each_layer: bool = True,
    ignore_index: int = 255,
) -> PointHead:
    """Build mmseg's ``PointHead`` as in ``configs/_base_/models/pointrend_r50.py`` (spec §5.2).

    ``num_fcs`` Conv1d(k=1)+ReLU layers of ``fc_channels`` without norm, the coarse logits
    re-appended after each when ``coarse_pred_each_layer``, then Conv1d to C logits; no dropout;
    ``align_corners=False``; CE loss on points. The hidden layers keep ``ConvModule``'s own
    (Kaiming) init; the predictor gets mmseg's ``init_cfg`` Normal(0, 0.01), bias 0, applied here
    directly because mmengine's ``init_weights`` logs every parameter.

    Args:
        in_channels: F, channels of the fine-grained feature map.
        num_classes: C.
        fc_channels: width of the MLP (256 in the paper).
        num_fcs: number of hidden layers (3 in the paper).
        coarse_pred_each_layer: re-append the coarse logits after each hidden layer.
        ignore_index: label value the point loss skips.

    Returns:
        ``mmseg.models.decode_heads.PointHead`` in train mode, on CPU.
    """
    install_point_sample()
    from mmseg.models.decode_heads.point_head import PointHead

    with warnings.catch_warnings():
        # mmseg warns that avg_non_ignore defaults to False; that default is the PointRend config's.
        warnings.filterwarnings("ignore", message=".*avg_non_ignore.*")
        head = _build(PointHead, in_channels, num_classes, fc_channels, num_fcs, coarse_pred_each_layer, ignore_index)
    torch.nn.init.normal_(head.fc_seg.weight, mean=0.0, std=0.01)
    torch.nn.init.zeros_(head.fc_seg.bias)
    return head


def _build(
    cls: type,
    in_channels: int,
    num_classes: int,
    fc_channels: int,
    num_fcs: int,
    coarse_pred_each_layer: bool,
    ignore_index: int,
) -> PointHead:
    return cls(
        num_fcs=num_fcs,
        coarse_pred_each_layer=coarse_pred_each_layer,
        in_channels=[in_channels],
        in_index=[0],
        channels=fc_channels,
        num_classes=num_classes,
        out_channels=num_classes,
        dropout_ratio=-1,
        align_corners=False,
        ignore_index=ignore_index,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    )
