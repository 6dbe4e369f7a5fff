"""Training options stored next to trained weights, so weights trained under other options are never reused silently.

``make train`` saves ``<weights>.pt`` together with ``<weights>.pt.train.json``
(``bench.training.loop.save_checkpoint``, atomically). For a method the sidecar holds the values of its
``train_fields`` (the options that shape training) and the backbone digest
(:func:`training_options`); for the backbone, its resolved training options, architecture, input
size and training data (:func:`backbone_training_options`). Before weights are reused, the stored
values are compared with the current config; a difference is an error naming the fields.
Files without a sidecar (given or released weights) are not checked.

Evaluating trained weights under another dataset config (``weights_from=<config>``, e.g. the
synthetic weights on real Cityscapes frames) takes the model from the weights' own config
(``bench.pipeline.configure.weights_config``: backbone, input size, every method option, the weight folders) and the data
from the run's. The check then demands only what changes inference: the backbone's architecture
(``backbone``, ``backbone_options``); the training history (dataset, data, schedule) is the
weights' own. The methods' sidecars match as they are, since their options come from that config.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.core.files import write_atomically
from bench.core.config import BenchConfig, backbone_train_config, file_digest, parse_size


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
    ``bench.data.splits.open_split`` builds it), and for a dataset whose root is the data itself
    (``weights_per_root``: ``folder``) the resolved data root, so one folder's weights are never
    reused for another.
    """
    data = {**dict(cfg.data), **dict(cfg.train_data)}
    if data.get("size") is not None:
        data["size"] = parse_size(data["size"])  # "1024x512" and [1024, 512] build the same split
    out = {f"backbone_train.{k}": v for k, v in dataclasses.asdict(backbone_train_config(cfg)).items()}
    out.update(backbone=cfg.backbone, backbone_options=dict(cfg.backbone_options), input_size=cfg.input_size,
               dataset=cfg.dataset, train_split=cfg.train_split, data=data)
    if _root_is_the_data(cfg.dataset) and cfg.data_root:  # "folder": another root is other data
        out["data_root"] = str(Path(cfg.data_root).expanduser().resolve())
    return json.loads(json.dumps(out, default=list))


def _root_is_the_data(dataset: str) -> bool:
    """Whether the data root names the data itself (``weights_per_root``: the folder dataset), not a copy's place."""
    from bench.data import DATASETS, dataset_class

    return dataset in DATASETS and bool(getattr(dataset_class(dataset), "weights_per_root", False))


def dumps(options: Mapping[str, Any]) -> str:
    """A sidecar's text: sorted keys, one a line."""
    return json.dumps(options, indent=1, sort_keys=True) + "\n"


def write_sidecar(path: Path, options: Mapping[str, Any]) -> None:
    """Write ``<path>.train.json`` alone, atomically (a temporary file beside it, fsync, ``os.replace``).

    For weights already on disk (a plugin method that saved them itself);
    ``bench.training.loop.save_checkpoint`` writes the sidecar together with the weights.
    """
    meta = sidecar(Path(path))
    write_atomically(meta, lambda tmp: tmp.write_text(dumps(options)))


def write(paths: dict[str, Path], options: dict[str, Any]) -> None:
    """Write the sidecar of every weights file in ``paths``, each atomically (:func:`write_sidecar`)."""
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
            raise StaleCheckpoint(f"{method} weights {path} were trained with other options ({fields}). "
                                  f"{_stale_fix(path, fix)}")


def _stale_fix(path: Path, fix: str) -> str:
    """The advice of a stale-weights error: never to delete a committed reference file."""
    from bench.weights.reference import reference_folder_of

    folder = reference_folder_of(path)
    if folder is not None:
        return (f"They are committed reference weights ({folder / 'manifest.json'}) and stay as they are: "
                f"evaluate them with the options they were trained with, train your own with train=true "
                f"(written outside {folder}), or {fix}")
    return f"Delete {path} and {sidecar(path)} to retrain, or {fix}"


# what of the backbone's sidecar changes inference: evaluating given weights demands these alone
BACKBONE_INFERENCE_KEYS = ("backbone", "backbone_options")


def check_backbone(cfg: BenchConfig) -> None:
    """Raise StaleCheckpoint when the backbone's sidecar disagrees with ``cfg`` (no sidecar: not checked).

    With ``weights_from`` (given weights evaluated under another dataset config) only
    :data:`BACKBONE_INFERENCE_KEYS` are compared.
    """
    options = backbone_training_options(cfg)
    if cfg.weights_from:
        trained = stored(cfg.backbone_path)
        if trained is None:
            return
        options = {**trained, **{k: options[k] for k in BACKBONE_INFERENCE_KEYS}}
    check({"backbone": cfg.backbone_path}, options, "backbone", BACKBONE_FIX)
