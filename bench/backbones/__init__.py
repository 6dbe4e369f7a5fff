"""Segmentation backbones by name: ``create_backbone(name, num_classes, **kw)``.

Names map lazily to builder functions so that mmsegmentation is imported only for ``mmseg:``
backbones. Every backbone follows the ``Segmenter`` protocol of ``bench.interface``.

- ``light``: the small CNN that trains on 2 CPU cores for the synthetic default.
- ``hrnet18_small_v2_ocr``: HRNetV2-W18-Small-v2 + OCR, stride-1 stem (MagNet Cityscapes).
- ``resnet50_fpn``: ResNet-50 FPN in GLNet's form (MagNet DeepGlobe).
- ``pspnet_resnet101``: PSPNet ResNet-101 in MagNet's form (MagNet Gleason).
- ``mmseg:<config>``: any mmsegmentation config (path or name under mmseg's bundled configs).
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

BACKBONES = {
    "light": "bench.backbones.light:LightSegNet",
    "hrnet18_small_v2_ocr": "bench.backbones.hrnet_ocr:hrnet18_small_v2_ocr",
    "resnet50_fpn": "bench.backbones.resnet_fpn:resnet50_fpn",
    "pspnet_resnet101": "bench.backbones.pspnet:pspnet_resnet101",
}


def list_backbones() -> list[str]:
    """Registered backbone names (``mmseg:<config>`` is accepted in addition)."""
    return sorted(BACKBONES)


def create_backbone(name: str, num_classes: int, **kw: Any) -> torch.nn.Module:
    """Build a backbone (random init unless a checkpoint is given).

    Args:
        name: a key of ``BACKBONES`` or ``mmseg:<config>``.
        num_classes: C.
        **kw: builder options; ``checkpoint=`` (path) loads weights strictly.

    Raises:
        KeyError: unknown name, listing the known ones.
    """
    checkpoint = kw.pop("checkpoint", None)
    if name.startswith("mmseg:"):
        from bench.backbones.mmseg_adapter import MMSegBackbone

        return MMSegBackbone(name.split(":", 1)[1], num_classes, checkpoint=checkpoint, **kw)
    if name not in BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; known: {list_backbones()} or 'mmseg:<config>'")
    module_name, _, attr = BACKBONES[name].partition(":")
    model = getattr(importlib.import_module(module_name), attr)(num_classes=num_classes, **kw)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


def load_weights(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; a refused pickle names the file.

    Raises:
        UnsafeCheckpoint: the file holds pickled objects beyond tensors and plain containers
            (a full-model pickle, an optimiser, a foreign class), which ``weights_only`` refuses.
    """
    from bench.errors import UnsafeCheckpoint, one_line

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's own text is long and does not say which file; keep the unpickler's reason
        text = str(err)
        reason = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler error:" in text else text
        reason = one_line(reason.split(". ")[0])[:200]
        raise UnsafeCheckpoint(f"{path}: refused by torch.load(weights_only=True); save a plain state dict "
                               f"(model.state_dict()) instead ({reason})") from err


@runtime_checkable
class LoadsItself(Protocol):
    """A model with its own ``load_checkpoint(path)`` (``isinstance`` checks only that it has one)."""

    def load_checkpoint(self, path: Path) -> object: ...


def load_checkpoint(model: torch.nn.Module, path: str | Path) -> None:
    """Load a plain state dict strictly, after the released-checkpoint clean-up.

    The clean-up strips a leading ``model.`` or ``module.`` from every key and drops ``loss.*``
    keys (MagNet's backbone trainer saves a ``FullModel`` wrapper). Loaded with
    ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at ``path``.
        RuntimeError: keys differ; the message lists the missing and unexpected ones.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if isinstance(model, LoadsItself):
        # adapters with their own key layout (mmseg models sit under ``model.``) load themselves
        model.load_checkpoint(path)
        return
    state = load_weights(path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    load_state_dict_strict(model, clean_state_dict(state), source=str(path))


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip ``model.``/``module.`` prefixes and drop ``loss.*`` entries."""
    out = {}
    for key, value in state.items():
        if key.startswith("loss."):
            continue
        for prefix in ("module.", "model."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def load_state_dict_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """``load_state_dict(strict=True)`` with an error that lists every missing and unexpected key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shape:
        details = [f"missing keys ({len(missing)}): {missing}", f"unexpected keys ({len(unexpected)}): {unexpected}"]
        if shape:
            details.append("shape mismatch: " + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shape))
        raise RuntimeError(f"cannot load {source} into {type(model).__name__}: " + "; ".join(details))
    model.load_state_dict(state, strict=True)
