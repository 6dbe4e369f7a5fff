"""Any mmsegmentation (onedl fork) encoder-decoder model as a ``Segmenter``.

``MMSegBackbone(config, num_classes, checkpoint=None)`` builds the model of an mmseg config and
runs it on OUR input: a float batch already normalised with the ImageNet mean/std in RGB order
(``bench.core.interface.normalize``). mmseg's data preprocessor is never called; instead the adapter
maps our input onto what the preprocessor would have produced from the same image loaded by
mmcv (BGR uint8). For the usual configs (``mean=[123.675, 116.28, 103.53]``,
``std=[58.395, 57.12, 57.375]``, ``bgr_to_rgb=True``) that map is the identity and the input
reaches the backbone untouched, so nothing is normalised twice. Other preprocessors get the exact
per-channel affine map (and channel flip) instead.

Building: the config is a path or a name under mmseg's bundled ``mmseg/.mim/configs``; the
decode and auxiliary heads get ``num_classes``; no pretrained download (``model.pretrained=None``,
``backbone.init_cfg=None``); SyncBN becomes BN so it runs on CPU and one GPU. Without a
checkpoint the model gets mmseg's own random initialisation (``init_weights``).

Inference: ``forward(x)`` runs ``extract_feat`` and the decode head(s) as mmseg's
``encode_decode`` does (cascades and PointRend included) and returns logits at the input size
(bilinear, ``align_corners`` of the decode head). Test-time ``slide`` mode, padding and flips
are not applied: the caller feeds the patches it wants. ``forward_features`` also returns the
backbone/neck maps: ``fine`` is the highest-resolution one, ``feat{i}`` all of them.

Checkpoints: mmseg zoo files ``{"state_dict": ..., "meta": ...}`` or plain state dicts (our own
``state_dict()`` too), read with ``weights_only=True``; numpy objects in ``meta`` are allowed
by name (only numpy globals), anything else is refused. Missing/unexpected keys raise (or are
reported with ``strict=False``).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import importlib
import io
import pickle
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.models.state_dict import clean_state_dict, load_state_dict_strict
from bench.models.backbones.point_sample import install_point_sample_shim
from bench.core.interface import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:  # mmseg ships no type information (Any to mypy); names the heads' class
    from mmseg.models.decode_heads.decode_head import BaseDecodeHead


# Known, harmless notices of mmcv without compiled ops and of mmseg's loss defaults.
_QUIET = ("Fail to import ``MultiScaleDeformableAttention``", "Default ``avg_non_ignore``")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence mmseg's stdout chatter ("Could not import OneDL") and the notices in ``_QUIET``."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        for message in _QUIET:
            warnings.filterwarnings("ignore", message=message)
        yield


def _import_mmseg() -> None:
    with _quiet():
        importlib.import_module("mmseg")
        importlib.import_module("mmseg.models")


def mmseg_config_dir() -> Path:
    """mmseg's bundled configs folder (``mmseg/.mim/configs``)."""
    _import_mmseg()
    import mmseg

    return Path(mmseg.__file__).parent / ".mim" / "configs"


def resolve_config(config: str | Path) -> Path:
    """A config path, or a name relative to mmseg's bundled configs (``.py`` optional).

    Raises:
        FileNotFoundError: neither exists; close bundled names are suggested.
    """
    path = Path(config)
    if path.is_file():
        return path
    root = mmseg_config_dir()
    for candidate in (root / str(config), root / f"{config}.py"):
        if candidate.is_file():
            return candidate
    names = [str(p.relative_to(root)) for p in root.rglob("*.py") if "_base_" not in p.parts]
    close = difflib.get_close_matches(str(config), names, n=5, cutoff=0.4)
    raise FileNotFoundError(f"mmseg config {str(config)!r} is neither a file nor under {root}; close names: {close}")


def _sync_bn_to_bn(node: Any) -> Any:
    """A copy of a (nested) plain config with every ``type='SyncBN'`` replaced by ``'BN'``."""
    if isinstance(node, dict):
        out = {k: _sync_bn_to_bn(v) for k, v in node.items()}
        if out.get("type") == "SyncBN":
            out["type"] = "BN"
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_sync_bn_to_bn(v) for v in node)
    return node


def _set_num_classes(heads: Any, num_classes: int) -> None:
    for head in heads if isinstance(heads, list) else [heads]:
        if head is None:
            continue
        head["num_classes"] = num_classes
        if head.get("out_channels") is not None:
            head["out_channels"] = num_classes


def build_model_config(config: str | Path, num_classes: int, cfg_options: Mapping[str, Any] | None = None) -> Any:
    """Load an mmseg config and prepare ``cfg.model`` for building (see the module docstring).

    Returns:
        The ``mmengine.Config``; ``cfg.model`` is ready for ``MODELS.build``.
    """
    _import_mmseg()
    from mmengine.config import Config

    cfg = Config.fromfile(str(resolve_config(config)))
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    model = cfg.model
    if "decode_head" not in model:
        raise ValueError(f"{config}: only encoder-decoder segmentors are supported (model.type={model.get('type')!r})")
    _set_num_classes(model.decode_head, num_classes)
    _set_num_classes(model.get("auxiliary_head"), num_classes)
    model.pretrained = None
    if "backbone" in model:
        model.backbone.init_cfg = None
    cfg.model = _sync_bn_to_bn(model.to_dict())
    return cfg


class InputMap(nn.Module):
    """Map our normalised RGB input to what an mmseg data preprocessor would produce.

    ``y[c] = scale[c] * x[perm[c]] + shift[c]``; the identity (``x`` returned as is) for the
    standard ImageNet/``bgr_to_rgb`` preprocessor.

    Args:
        preprocessor: the config's ``data_preprocessor`` dict (``mean``, ``std``, ``bgr_to_rgb``,
            ``rgb_to_bgr``), or None.
    """

    scale: torch.Tensor  # (1, 3, 1, 1) float32 buffers, registered in __init__
    shift: torch.Tensor

    def __init__(self, preprocessor: Mapping[str, Any] | None) -> None:
        super().__init__()
        pre = dict(preprocessor or {})
        # Images are loaded BGR by mmcv; either flag flips them to RGB before normalisation.
        perm = [0, 1, 2] if (pre.get("bgr_to_rgb") or pre.get("rgb_to_bgr")) else [2, 1, 0]
        mean = torch.tensor(pre.get("mean") or [0.0, 0.0, 0.0], dtype=torch.float64).expand(3)
        std = torch.tensor(pre.get("std") or [1.0, 1.0, 1.0], dtype=torch.float64).expand(3)
        a = 255.0 * torch.tensor(IMAGENET_STD, dtype=torch.float64)[perm]
        b = 255.0 * torch.tensor(IMAGENET_MEAN, dtype=torch.float64)[perm]
        scale, shift = a / std, (b - mean) / std
        unit = bool((scale - 1).abs().max() < 1e-6 and shift.abs().max() < 1e-6)
        self.identity = perm == [0, 1, 2] and unit
        self.perm = perm
        self.register_buffer("scale", scale.float().view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.float().view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.identity:
            return x
        return x[:, self.perm] * self.scale + self.shift


def _resolve_global(name: str) -> Any:
    module, _, attr = name.rpartition(".")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return getattr(importlib.import_module(module), attr)


def _numpy_dtype_classes() -> list[type]:
    import numpy as np

    return [getattr(np.dtypes, name) for name in np.dtypes.__all__ if isinstance(getattr(np.dtypes, name), type)]


def read_mmseg_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of an mmseg zoo checkpoint or of a plain state-dict file.

    Loaded with ``weights_only=True``. If the file's ``meta`` holds numpy objects (zoo files do),
    only numpy globals are allowed in addition, by name; any other global is refused.

    Raises:
        FileNotFoundError: no file.
        pickle.UnpicklingError: the file needs non-numpy globals (listed).
        TypeError: no name -> tensor mapping inside.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (mmseg zoo files must be downloaded by hand; no URL loading)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        foreign = [g for g in needed if not g.startswith("numpy.")]
        if foreign:
            raise pickle.UnpicklingError(f"{path} needs globals beyond numpy, refused for safety: {foreign}") from None
        # numpy.dtype objects unpickle into their DType classes, which the scan does not list.
        allowed = [_resolve_global(g) for g in needed] + _numpy_dtype_classes()
        with torch.serialization.safe_globals(allowed):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, Mapping) else ckpt
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TypeError(f"{path} holds no state dict (expected {{'state_dict': {{name: tensor}}}} or {{name: tensor}})")
    return dict(state)


class MMSegBackbone(nn.Module):
    """An mmseg segmentor behind the ``Segmenter`` protocol (see the module docstring).

    Args:
        config: config path or name under mmseg's bundled configs.
        num_classes: C (set on the decode and auxiliary heads).
        checkpoint: optional local checkpoint (mmseg zoo format or plain state dict).
        strict: raise on missing/unexpected/mis-shaped keys (else load the matching ones and
            keep the differences in ``load_report``).
        cfg_options: dotted overrides merged into the config (``mmengine`` ``merge_from_dict``).
        init_weights: run mmseg's ``init_weights`` when no checkpoint is given.

    Attributes:
        model: the mmseg segmentor (state-dict keys under ``model.``).
        cfg: the prepared config.
        align_corners: the decode head's convention for the final resize.
        load_report: ``{"missing", "unexpected", "shape_mismatch"}`` lists of the last load.
    """

    def __init__(
        self,
        config: str | Path,
        num_classes: int,
        checkpoint: str | Path | None = None,
        strict: bool = True,
        cfg_options: Mapping[str, Any] | None = None,
        init_weights: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.config_name = str(config)
        self.cfg = build_model_config(config, num_classes, cfg_options)
        self.shimmed = install_point_sample_shim()
        from mmengine.model import revert_sync_batchnorm
        from mmengine.registry import init_default_scope
        from mmseg.registry import MODELS

        init_default_scope(self.cfg.get("default_scope", "mmseg"))
        with _quiet():
            model = MODELS.build(copy.deepcopy(self.cfg.model))
        self.model = revert_sync_batchnorm(model)
        heads = self.model.decode_head
        self.align_corners = bool((heads[-1] if isinstance(heads, nn.ModuleList) else heads).align_corners)
        self.input_map = InputMap(self.cfg.model.get("data_preprocessor"))
        self.load_report: dict[str, list[str]] = {"missing": [], "unexpected": [], "shape_mismatch": []}
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, strict=strict)
        elif init_weights:
            self._mmseg_init()

    def _mmseg_init(self) -> None:
        from mmengine.logging import MMLogger

        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel("ERROR")  # init_weights logs every parameter at INFO
        try:
            self.model.init_weights()
        finally:
            logger.setLevel(level)

    def load_checkpoint(self, path: str | Path, strict: bool = True) -> dict[str, list[str]]:
        """Load a zoo checkpoint or a state dict (``model.``/``module.`` prefixes stripped).

        Returns:
            ``load_report``: missing, unexpected and mis-shaped keys (all empty after a strict load).

        Raises:
            RuntimeError: ``strict`` and the keys differ (listed).
        """
        state = clean_state_dict(read_mmseg_checkpoint(path))
        if strict:
            load_state_dict_strict(self.model, state, source=str(path))
            self.load_report = {"missing": [], "unexpected": [], "shape_mismatch": []}
            return self.load_report
        own = self.model.state_dict()
        shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        self.load_report = {
            "missing": sorted(set(own) - set(state)),
            "unexpected": sorted(set(state) - set(own)),
            "shape_mismatch": shape,
        }
        usable = {k: v for k, v in state.items() if k in own and k not in shape}
        self.model.load_state_dict({**own, **usable}, strict=True)
        if any(self.load_report.values()):
            summary = ", ".join(f"{k} {len(v)}: {v[:10]}" for k, v in self.load_report.items())
            warnings.warn(f"partial load of {path}: {summary}", stacklevel=2)
        return self.load_report

    def _metas(self, x: torch.Tensor) -> list[dict[str, Any]]:
        shape = tuple(int(s) for s in x.shape[-2:])
        return [dict(img_shape=shape, pad_shape=shape, ori_shape=shape)] * x.shape[0]

    def _decode(self, feats: Any, x: torch.Tensor) -> torch.Tensor:
        """mmseg's ``encode_decode`` from precomputed features -> (N, C, H, W) logits."""
        metas = self._metas(x)
        heads = self.model.decode_head
        test_cfg = self.model.test_cfg
        if isinstance(heads, nn.ModuleList):
            cascade: list[BaseDecodeHead] = list(heads)
            out = cascade[0].forward(feats)
            for head in cascade[1:-1]:
                out = head.forward(feats, out)
            logits = cascade[-1].predict(feats, out, metas, test_cfg)
        else:
            logits = heads.predict(feats, metas, test_cfg)
        if tuple(logits.shape[-2:]) != tuple(x.shape[-2:]):
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=self.align_corners)
        return logits

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"MMSegBackbone({self.config_name}) expects a normalised float batch (N, 3, H, W); got {got}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) ImageNet-normalised RGB -> (N, C, H, W) logits at the input size."""
        self._check(x)
        return self._decode(self.model.extract_feat(self.input_map(x)), x)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits and features.

        Features: ``feat{i}`` every (N, F, h, w) backbone/neck output; ``fine`` the one with the
        most pixels (the first on ties); ``aux_logits`` (N, C, H, W) when the model has one
        auxiliary head (``aux_logits{i}`` for several).
        """
        self._check(x)
        feats = self.model.extract_feat(self.input_map(x))
        logits = self._decode(feats, x)
        maps = [f for f in feats if isinstance(f, torch.Tensor) and f.dim() == 4]
        named = {f"feat{i}": f for i, f in enumerate(maps)}
        named["fine"] = max(maps, key=lambda f: f.shape[-2] * f.shape[-1])
        aux = getattr(self.model, "auxiliary_head", None)
        if aux is not None:
            aux_heads: list[BaseDecodeHead] = list(aux) if isinstance(aux, nn.ModuleList) else [aux]
            for i, head in enumerate(aux_heads):
                out = F.interpolate(
                    head.forward(feats), size=x.shape[-2:], mode="bilinear", align_corners=head.align_corners
                )
                named["aux_logits" if len(aux_heads) == 1 else f"aux_logits{i}"] = out
        return logits, named
