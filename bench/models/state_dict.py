"""Checkpoint files into models: ``torch.load(weights_only=True)``, the released-layout clean-up, strict loading.

Every weight file the harness reads goes through :func:`load_weights` (a refused pickle names the
file) and, for a model, :func:`load_checkpoint` or :func:`load_state_dict_strict` (every missing
and unexpected key listed).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch


def load_weights(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; a refused pickle names the file.

    Raises:
        NotACheckpoint: the file is no ``torch.save`` file at all (text, an image, empty).
        UnsafeCheckpoint: the file holds pickled objects beyond tensors and plain containers
            (a full-model pickle, an optimiser, a foreign class), which ``weights_only`` refuses.
    """
    from bench.core.errors import NotACheckpoint, UnsafeCheckpoint, one_line
    from bench.models.pickle_scan import not_a_checkpoint

    why = not_a_checkpoint(path)
    if why is not None:  # else torch's unpickler reports it as a refused pickle ("Unsupported operand 110")
        raise NotACheckpoint(f"{path} is not a checkpoint: it {why}, while torch.save writes a zip archive "
                             f"(or a legacy pickle); give the .pt/.pth file of the weights")
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


def state_dict_of(loaded: Any) -> dict[str, Any] | None:
    """The flat ``{name: tensor}`` of a loaded checkpoint (a bare one, or under ``state_dict``), cleaned.

    Returns:
        :func:`clean_state_dict` of it, or None when ``loaded`` holds no mapping of names.
    """
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        return None
    return clean_state_dict(loaded)


def key_sample(keys: Any, n: int = 3) -> str:
    """``'a.weight', 'b.bias', ...`` of the first ``n`` sorted keys: what a file holds, in a message."""
    ordered = sorted(keys)
    more = ", ..." if len(ordered) > n else ""
    return ", ".join(repr(k) for k in ordered[:n]) + more


def key_overlap(a: Any, b: Any) -> float:
    """Jaccard overlap of two key sets (1.0: the same keys; 0.0: none shared or both empty)."""
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 0.0


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
