"""Training options stored next to trained weights, so weights trained under other options are never reused silently.

After ``make train`` writes ``<weights>.pt``, it writes ``<weights>.pt.train.json`` with the values
of the method's ``train_fields`` (the options that shape training) and the backbone digest. Before
weights are reused, the stored values are compared with the current config; a difference is an
error naming the fields. Files without a sidecar (given or released weights) are not checked.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from bench.config import file_digest


class StaleCheckpoint(RuntimeError):
    """Weights on disk were trained with other options than the current config asks for."""


def sidecar(path: Path) -> Path:
    """``<weights>.train.json`` next to ``path``."""
    return Path(f"{path}.train.json")


def training_options(cls: type, mcfg: Any, backbone_path: Path) -> dict[str, Any]:
    """JSON-ready ``{field: value}`` of ``cls.train_fields`` plus the digest of the backbone weights."""
    values = dataclasses.asdict(mcfg)
    out = {name: values[name] for name in getattr(cls, "train_fields", ())}
    out["backbone_digest"] = file_digest(backbone_path)
    return json.loads(json.dumps(out, default=list))  # tuples -> lists, as they will be read back


def write(paths: dict[str, Path], options: dict[str, Any]) -> None:
    """Write the sidecar of every weights file in ``paths``."""
    for path in paths.values():
        sidecar(path).write_text(json.dumps(options, indent=1, sort_keys=True) + "\n")


def check(paths: dict[str, Path], options: dict[str, Any], method: str) -> None:
    """Raise StaleCheckpoint when a sidecar disagrees with ``options``.

    Raises:
        StaleCheckpoint: names the file, each differing field (stored vs current) and the fixes.
    """
    for path in paths.values():
        meta = sidecar(path)
        if not meta.is_file():
            continue
        stored = json.loads(meta.read_text())
        diff = {k: (stored.get(k), v) for k, v in options.items() if stored.get(k) != v}
        if diff:
            fields = "; ".join(f"{k}: trained with {a!r}, config has {b!r}" for k, (a, b) in sorted(diff.items()))
            raise StaleCheckpoint(f"{method} weights {path} were trained with other options ({fields}). Delete "
                                  f"{path} and {meta} to retrain, or point method_checkpoint_dir elsewhere")
