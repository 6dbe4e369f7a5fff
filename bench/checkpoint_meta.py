"""Training options stored next to trained weights, so weights trained under other options are never reused silently.

``make train`` saves ``<weights>.pt`` together with ``<weights>.pt.train.json``
(``bench.training.save_checkpoint``, atomically). For a method the sidecar holds the values of its
``train_fields`` (the options that shape training) and the backbone digest
(:func:`training_options`); for the backbone, its resolved training options, architecture, input
size and training data (:func:`backbone_training_options`). Before weights are reused, the stored
values are compared with the current config; a difference is an error naming the fields.
Files without a sidecar (given or released weights) are not checked.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from bench.config import BenchConfig, file_digest, parse_size


class StaleCheckpoint(RuntimeError):
    """Weights on disk were trained with other options than the current config asks for."""


def sidecar(path: Path) -> Path:
    """``<weights>.train.json`` next to ``path``."""
    return Path(f"{path}.train.json")


def stored(path: Path) -> dict[str, Any] | None:
    """The options in ``path``'s sidecar, or None when it has none."""
    meta = sidecar(path)
    return json.loads(meta.read_text()) if meta.is_file() else None


def training_options(cls: type, mcfg: Any, backbone_path: Path, run_seed: int | None = None) -> dict[str, Any]:
    """JSON-ready ``{field: value}`` of ``cls.train_fields`` plus the digest of the backbone weights.

    A method whose training is seeded by the run's ``seed`` (``trains_with_run_seed``: MagNet)
    records it as ``run_seed``, so weights trained with another seed are not reused.
    """
    values = dataclasses.asdict(mcfg)
    out = {name: values[name] for name in getattr(cls, "train_fields", ())}
    if getattr(cls, "trains_with_run_seed", False):
        out["run_seed"] = run_seed
    out["backbone_digest"] = file_digest(backbone_path)
    return json.loads(json.dumps(out, default=list))  # tuples -> lists, as they will be read back


def backbone_training_options(cfg: BenchConfig) -> dict[str, Any]:
    """JSON-ready options that shape the backbone's weights.

    The resolved ``BackboneTrainConfig`` (seed included) as ``backbone_train.<field>``, the
    backbone name and builder options, the crop size (the input size), the dataset, the training
    split and its constructor kwargs (``data`` merged with ``train_data``, the size parsed, as
    ``bench.unit.open_split`` builds it).
    """
    from bench.train_backbone import backbone_train_config  # lazily: it imports OpenCV

    data = {**dict(cfg.data), **dict(cfg.train_data)}
    if data.get("size") is not None:
        data["size"] = parse_size(data["size"])  # "1024x512" and [1024, 512] build the same split
    out = {f"backbone_train.{k}": v for k, v in dataclasses.asdict(backbone_train_config(cfg)).items()}
    out.update(backbone=cfg.backbone, backbone_options=dict(cfg.backbone_options), input_size=cfg.input_size,
               dataset=cfg.dataset, train_split=cfg.train_split, data=data)
    return json.loads(json.dumps(out, default=list))


def dumps(options: dict[str, Any]) -> str:
    """A sidecar's text: sorted keys, one a line."""
    return json.dumps(options, indent=1, sort_keys=True) + "\n"


def write(paths: dict[str, Path], options: dict[str, Any]) -> None:
    """Write the sidecar of every weights file in ``paths``, each atomically (``bench.training.write_sidecar``)."""
    from bench.training import write_sidecar

    for path in paths.values():
        write_sidecar(path, options)


METHOD_FIX = "point method_checkpoint_dir elsewhere"
BACKBONE_FIX = "point checkpoint_dir or backbone_checkpoint elsewhere"


def check(paths: dict[str, Path], options: dict[str, Any], method: str, fix: str = METHOD_FIX) -> None:
    """Raise StaleCheckpoint when a sidecar disagrees with ``options``.

    Every field of either side is compared: one the sidecar lacks (weights trained before the
    field was recorded) or holds alone counts as changed.

    Raises:
        StaleCheckpoint: names the file, each differing field (stored vs current) and the fixes.
    """
    for path in paths.values():
        trained = stored(path)
        if trained is None:
            continue
        diff = {k: (trained.get(k), options.get(k)) for k in {*trained, *options} if trained.get(k) != options.get(k)}
        if diff:
            fields = "; ".join(f"{k}: trained with {a!r}, config has {b!r}" for k, (a, b) in sorted(diff.items()))
            raise StaleCheckpoint(f"{method} weights {path} were trained with other options ({fields}). Delete "
                                  f"{path} and {sidecar(path)} to retrain, or {fix}")


def check_backbone(cfg: BenchConfig) -> None:
    """Raise StaleCheckpoint when the backbone's sidecar disagrees with ``cfg`` (no sidecar: not checked)."""
    check({"backbone": cfg.backbone_path}, backbone_training_options(cfg), "backbone", BACKBONE_FIX)
