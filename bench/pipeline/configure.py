"""Composed configs: a dataset config, or the weights of another config evaluated on its data (``weights_from``).

Evaluating trained weights under another dataset config (``weights_from=<config>``, e.g. the
synthetic weights on real Cityscapes frames) takes the model from the weights' own config
(:func:`weights_config`: backbone, input size, every method option, the weight folders) and the data
from the run's. The sidecar check (``bench.weights.sidecar.check_backbone``) then demands only what
changes inference. :func:`load` is the loader every command uses; ``bench.core.config.load`` alone
refuses ``weights_from``, which needs this composition.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.core.config import COMMAND_LINE, CONFIG_DIR, BenchConfig, build, flatten, read_config, read_yaml
from bench.core.config import load as load_file


def load(dataset: str = "synthetic", overrides: Mapping[str, Any] | None = None,
         config_file: str | Path | None = None) -> BenchConfig:
    """``configs/datasets/<dataset>.yaml`` (or ``config_file``) with ``overrides``, composed with ``weights_from``.

    Raises:
        FileNotFoundError: no such config (with close matches), or ``weights_from`` names none.
        ValueError / KeyError: a bad key or value.
    """
    path = Path(config_file) if config_file else CONFIG_DIR / "datasets" / f"{dataset}.yaml"
    extra = flatten(dict(overrides or {}), COMMAND_LINE)  # blocks as dotted keys, as the files' (read_config)
    if not path.is_file() or not extra.get("weights_from", read_yaml(path).get("weights_from")):
        return load_file(dataset, extra, config_file)
    return build(weights_config(read_config(path), extra, CONFIG_DIR))


# the keys of a dataset config that describe the model (taken from the weights' config by weights_from);
# every "<method>.<option>" key is one too. The rest (dataset, data_root, split, data.*, tables) is the data's.
MODEL_KEYS = ("backbone", "backbone_checkpoint", "backbone_options", "backbone_train", "checkpoint_dir",
              "reference_dir", "method_checkpoint_dir", "input_size", "coarse_scale", "table1_sizes", "seed")


def _is_model_key(key: str) -> bool:
    return key in MODEL_KEYS or ("." in key and not key.startswith(("data.", "train_data.")))


def weights_config(raw: dict[str, Any], overrides: dict[str, Any], config_dir: Path) -> dict[str, Any]:
    """The flat config that evaluates the weights of ``weights_from`` on the data of ``raw``.

    Args:
        raw: the run's dataset file (e.g. configs/datasets/cityscapes.yaml), flat.
        overrides: the command line's overrides (they win over both files).
        config_dir: ``configs/``.

    Returns:
        ``raw``'s data keys, the weights' config's model keys (:data:`MODEL_KEYS` and every
        ``<method>.<option>``), ``checkpoint_dir`` set to the folder the weights' config reads,
        ``train: false``, ``out_dir`` ``results/runs/<dataset>-from-<weights>`` unless given, then
        ``overrides``.

    Raises:
        FileNotFoundError: no such config (with the known ones).
        ValueError: ``train: true`` asked for together with ``weights_from``.
    """
    source = str(overrides.get("weights_from", raw.get("weights_from")))
    path = Path(source) if source.endswith((".yaml", ".yml")) else config_dir / "datasets" / f"{source}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (config_dir / "datasets").glob("*.yaml"))
        raise FileNotFoundError(f"weights_from: no config {path}; dataset configs: {known}")
    if overrides.get("train") is True:
        raise ValueError("weights_from evaluates given weights and trains nothing: drop train=true")
    model = read_config(path)
    model.pop("weights_from", None)
    trained = build({**model, "train": False})  # where that config reads its weights
    flat = {k: v for k, v in raw.items() if not _is_model_key(k)}
    flat.update({k: v for k, v in model.items() if _is_model_key(k)})
    flat.update(checkpoint_dir=str(trained.checkpoint_path), train=False, weights_from=source)
    flat.setdefault("out_dir", f"results/runs/{raw.get('dataset', 'run')}-from-{path.stem}")
    flat.update(overrides)
    return flat
