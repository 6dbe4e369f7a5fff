"""Reference weights: a committed, trained weight set per dataset, checked before any file is used.

``weights/<dataset>/`` holds the checkpoint folder of one training run (``backbone.pt``, the
methods' ``methods-<WxH>-<backbone digest>/*.pt``, each with its ``.train.json`` sidecar) and a
``manifest.json`` that lists every file with its sha256 and says how the set was made:

- ``command``: the command line that trained and evaluated it;
- ``training_config`` and ``training_digest``: the resolved config fields that shape training;
- ``seed``, ``torch``, ``git_sha``, ``fingerprint`` (``bench.runtime.measure.training_fingerprint``: the CPU
  kernels training depends on) and ``machine`` (what went into it);
- ``files``: ``{relative path: {sha256, bytes, what, units}}``; ``units`` are the sweep units that
  use the file, and ``metrics`` (per unit: mIoU, mBA, per-class IoU, fractions) what they gave.

Before a unit uses a file of a reference folder, :func:`verify` compares its sha256 (and its
sidecar's) with the manifest: an edited, truncated or unlisted file is refused with
:class:`ReferenceMismatch`. Changed training options are refused as stale by the sidecars
(``bench.weights.sidecar``). Training never writes into a folder that has a manifest.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from bench.core.config import REPO_DIR, file_digest

MANIFEST = "manifest.json"
SCHEMA = 1


class ReferenceMismatch(RuntimeError):
    """A file of a reference weight folder differs from its manifest, or is not listed in it."""


class ReferenceWrite(RuntimeError):
    """Training was asked to write into a reference weight folder."""


def sha256(path: Path) -> str:
    """Full hex sha256 of a file's bytes (``bench.core.config.file_digest`` untruncated).

    Raises:
        FileNotFoundError: no file at ``path``.
    """
    digest = file_digest(path, length=64)
    if digest is None:
        raise FileNotFoundError(f"no file at {path}")
    return digest


def is_reference(folder: Path) -> bool:
    """True when ``folder`` holds a reference manifest."""
    return (Path(folder) / MANIFEST).is_file()


@lru_cache(maxsize=8)
def _manifest(folder: str, mtime_ns: int) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReferenceMismatch(f"{path}: not valid JSON ({err}); restore it with `git checkout {path}`") from err
    if data.get("schema") != SCHEMA or not isinstance(data.get("files"), dict):
        raise ReferenceMismatch(f"{path}: expected a manifest with schema {SCHEMA} and a 'files' mapping")
    return data


def load_manifest(folder: Path) -> dict[str, Any]:
    """The parsed manifest of a reference folder (cached while the file is unchanged)."""
    path = Path(folder) / MANIFEST
    return _manifest(str(Path(folder).resolve()), path.stat().st_mtime_ns)


def verify(folder: Path, paths: list[Path]) -> None:
    """Check every file of ``paths`` that lies in the reference ``folder`` (and its sidecar).

    Files outside ``folder`` (a user's ``backbone_checkpoint=``) and folders without a manifest
    are not checked.

    Raises:
        ReferenceMismatch: names the file, the expected and found sha256 and the fix.
    """
    folder = Path(folder)
    if not is_reference(folder):
        return
    files = load_manifest(folder)["files"]
    root = folder.resolve()
    for path in paths:
        path = Path(path)
        try:
            rel = path.resolve().relative_to(root).as_posix()
        except ValueError:
            continue
        for name in (rel, f"{rel}.train.json"):
            entry, file = files.get(name), root / name
            if not file.is_file():
                if name == rel or entry is not None:
                    raise ReferenceMismatch(f"reference weights {file} are missing (listed in {folder / MANIFEST}); "
                                            f"restore them with `git checkout {folder}`")
                continue
            if entry is None:
                # never advise deleting in a reference folder: the file may be the user's own work
                raise ReferenceMismatch(f"{file} is not listed in {folder / MANIFEST}: a reference folder holds only "
                                        f"the files its manifest names; move it out of {folder} (train your own "
                                        f"weights with train=true, into results/checkpoints/DATASET) or regenerate "
                                        f"the set (`python -m bench reference DATASET --install`)")
            found = sha256(file)
            if found != entry["sha256"]:
                raise ReferenceMismatch(f"reference file {file} has sha256 {found[:16]}…, its manifest says "
                                        f"{entry['sha256'][:16]}…: the file was changed. Restore it with "
                                        f"`git checkout {file}`, or regenerate the set "
                                        f"(`python -m bench reference DATASET --install`)")


def refuse_write(folder: Path) -> None:
    """Raise ReferenceWrite when training would write into a reference folder."""
    if is_reference(folder):
        raise ReferenceWrite(f"{folder} holds reference weights ({MANIFEST}) and is never trained into: train with "
                             f"`make train` (results/checkpoints/<dataset>), or regenerate the reference set with "
                             f"`python -m bench reference DATASET --install`")


def weight_files(folder: Path) -> list[Path]:
    """Every file of a checkpoint folder that belongs in its manifest (weights and sidecars)."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != MANIFEST)


def reference_folder_of(path: Path) -> Path | None:
    """The reference folder (one with a manifest) that ``path`` lies in, or None.

    Used to word advice: a file under a reference folder is committed and is never to be
    deleted, edited or trained into.
    """
    resolved = Path(path).resolve()
    for folder in resolved.parents:
        if is_reference(folder):
            return folder
    return None


def known_checkpoints(root: Path | None = None) -> list[tuple[Path, str]]:
    """``(file, what)`` of every weights file (not sidecar) listed by a manifest under ``root``.

    ``root`` defaults to the repository's ``weights/``; ``what`` is the manifest's description
    of the file (``backbone``, ``dgf``, ``magnet_refiner_...``).
    """
    out = []
    for manifest in sorted(Path(root or REPO_DIR / "weights").glob(f"*/{MANIFEST}")):
        try:
            files = load_manifest(manifest.parent)["files"]
        except (ReferenceMismatch, OSError):
            continue
        for rel, entry in sorted(files.items()):
            if not rel.endswith(".train.json") and entry.get("what") != "sidecar":
                out.append((manifest.parent / rel, str(entry.get("what") or Path(rel).stem)))
    return out


def identify(keys: set[str], root: Path | None = None, threshold: float = 0.8) -> tuple[Path, str] | None:
    """The reference file whose state-dict keys are closest to ``keys`` (overlap >= ``threshold``), or None.

    Tells a user which model a wrong file belongs to ("its keys look like dgf's"): each
    candidate is loaded with ``weights_only=True``, so this runs only when a file was already
    found not to fit.
    """
    from bench.models.state_dict import key_overlap, load_weights, state_dict_of

    best: tuple[float, Path, str] | None = None
    for path, what in known_checkpoints(root):
        try:
            state = state_dict_of(load_weights(path))
        except Exception:  # noqa: BLE001 - an unreadable candidate is no answer, the error is the user's file
            continue
        if state is None:
            continue
        score = key_overlap(keys, state)
        if score >= threshold and (best is None or score > best[0]):
            best = (score, path, what)
    return None if best is None else (best[1], best[2])


def train_hint(cfg: Any, name: str | None = None) -> str:
    """How to get missing weights, naming the folder the training writes and whether the run reads it.

    ``cfg`` is the run's ``BenchConfig``; ``name`` the method (None: the backbone). With training
    off and a reference set as the weights folder, the training writes elsewhere (a reference set is
    never trained into): the hint says that a run reads those weights with ``train=true``.
    """
    import dataclasses

    target = dataclasses.replace(cfg, train=True).checkpoint_path
    command = f"python -m bench train {cfg.dataset}" + (f" 'methods=[{name}]'" if name else "")
    if not cfg.train and is_reference(cfg.checkpoint_path):
        return (f"`{command}` trains them into {target}, which a run reads with train=true ({cfg.checkpoint_path} "
                f"is a reference set, read only while train is off and never trained into)")
    return f"`{command}` trains them into {target}, the folder this run reads"
