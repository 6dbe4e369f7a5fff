"""MagNet's released weights in one option: ``released_weights=/path/to/folder`` (issue 12 §3).

The folder holds the files under the names MagNet released them (magnet.md §3.2):

- ``cityscapes``: ``cityscapes_hrnet.pth`` (the backbone) and ``cityscapes_refinement_512.pth``,
  ``cityscapes_refinement_1024.pth``, ``cityscapes_refinement_2048.pth`` (one refiner per refined
  stage, 512x256, 1024x512 and 2048x1024 in the released script);
- ``deepglobe``: ``deepglobe_fpn.pth`` and ``deepglobe_refinement.pth`` (one refiner shared by both
  refined stages).

:func:`resolve` turns the option into what the harness already reads, before anything runs:

1. every file the sweep needs is present (the missing ones are named by their released names);
2. each file is loaded with ``weights_only=True`` and compared, after the §3.2 clean-up (a
   leading ``model.``/``module.`` stripped, ``loss.*`` dropped: ``bench.models.state_dict.clean_state_dict``),
   key for key and shape for shape with a freshly built module: a file of the wrong model (a
   refiner given as the backbone) is a :class:`~bench.core.errors.UserError` (one line, exit 2)
   naming the missing and unexpected keys;
3. refiner ``r`` of the sweep's MagNet plan is the ``r``-th released refiner in stage order; each
   is copied byte for byte (so its sha256 is the released file's) into
   ``<checkpoint_dir or results>/released/<digest>/`` under the name MagNet's harness code looks
   up (``magnet_refiner_<scales>.pt``), next to ``released.json``: the source folder and the
   sha256 of every released file, and which file went where;
4. the config comes back with ``backbone_checkpoint`` set to the released backbone file and
   ``method_checkpoint_dir`` to that folder, so ``magnet``, ``magnet_fast`` and ``downsample``
   run on the released weights with no change to the runner; the harness loads them strictly
   again (``bench.models.state_dict.load_checkpoint``, ``magnet.refinement.load_refiner``).

Every image record of such a run carries the released files' sha256 in its provenance
(:func:`provenance`). The config's published values (the tables' ``Paper`` column and its Δ) for
``downsample``, ``magnet`` and ``magnet_fast`` at the released input size become the released
code's own numbers for these weights (MagNet's README), so the tables show them beside ours.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.core.config import BenchConfig, file_digest, format_size, method_config_values, parse_size, stable_hash
from bench.core.errors import UserError, one_line

if TYPE_CHECKING:  # bench.core.interface imports torch; this module reads configs without it
    from bench.core.interface import Method

RELEASED_JSON = "released.json"  # not manifest.json: that name marks a reference folder (bench.weights.reference)
SCHEMA = 1
SOURCE = "MagNet README: the released code's own evaluation of the released weights"
SHOWN = 4  # keys quoted per list in a mismatch error


@dataclass(frozen=True)
class ReleasedSet:
    """One dataset's released files and what the released code reports for them.

    Attributes:
        backbone: the backbone registry name the files are for (``bench.models.backbones``).
        backbone_file: the backbone's released file name.
        refiner_files: the refiners' released file names, in stage order.
        refiner_stages: the stage(s) each refiner serves in the released script (for messages).
        input_size: the released input size (w, h).
        expected: mIoU (%) the released code reports with these weights, per method key.
        settings: the released test script's options (``<method>.<field>`` or a config field).
    """

    backbone: str
    backbone_file: str
    refiner_files: tuple[str, ...]
    refiner_stages: tuple[str, ...]
    input_size: tuple[int, int]
    expected: Mapping[str, float]
    settings: Mapping[str, Any]

    @property
    def files(self) -> tuple[str, ...]:
        return (self.backbone_file, *self.refiner_files)


SETS: dict[str, ReleasedSet] = {
    "cityscapes": ReleasedSet(
        backbone="hrnet18_small_v2_ocr", backbone_file="cityscapes_hrnet.pth",
        refiner_files=("cityscapes_refinement_512.pth", "cityscapes_refinement_1024.pth",
                       "cityscapes_refinement_2048.pth"),
        refiner_stages=("512x256", "1024x512", "2048x1024"), input_size=(256, 128),
        expected={"downsample": 63.24, "magnet": 68.20, "magnet_fast": 67.37},
        settings={"input_size": "256x128", "coarse_scale": None,
                  "magnet.scales": ["256x128", "512x256", "1024x512", "2048x1024"], "magnet.crop_size": "256x128",
                  "magnet.n_points": 32768, "magnet.blur_kernel": 5, "magnet.n_refiners": 3,
                  "magnet.behaviour": "released", "magnet_fast.n_patches": 4, "magnet_fast.n_points": 0.9,
                  "magnet_fast.behaviour": "released"}),
    "deepglobe": ReleasedSet(
        backbone="resnet50_fpn", backbone_file="deepglobe_fpn.pth", refiner_files=("deepglobe_refinement.pth",),
        refiner_stages=("1224x1224 and 2448x2448",), input_size=(508, 508),
        expected={"downsample": 67.22, "magnet": 72.10, "magnet_fast": 68.22},
        settings={"input_size": "508x508", "coarse_scale": "612x612",
                  "magnet.scales": ["612x612", "1224x1224", "2448x2448"], "magnet.crop_size": "612x612",
                  "magnet.n_points": 0.75, "magnet.blur_kernel": 11, "magnet.n_refiners": 1,
                  "magnet.behaviour": "released", "magnet_fast.n_patches": 3, "magnet_fast.n_points": 0.9,
                  "magnet_fast.behaviour": "released"}),
}
REFINER_METHOD = "magnet"  # the method whose refiner names the released refiners are installed under


def resolve(cfg: BenchConfig) -> BenchConfig:
    """``cfg`` with ``released_weights`` turned into ``backbone_checkpoint`` and ``method_checkpoint_dir``.

    A config without ``released_weights`` comes back unchanged. Validated files are remembered
    in the per-digest folder, so a second command on the same files loads nothing.

    Raises:
        UserError: an unknown dataset, a conflicting option, a missing folder or file (named by
            its released name), or a file whose keys or shapes are not the model's.
    """
    if not cfg.released_weights:
        return cfg
    rset = released_set(cfg)
    folder = Path(str(cfg.released_weights)).expanduser()
    if not folder.is_dir():
        raise UserError(f"released_weights: {folder} is not a folder (expected MagNet's released {cfg.dataset} "
                        f"files: {', '.join(rset.files)})")
    targets, templates = _refiner_plan(cfg)
    use_refiners = _sweep_uses(cfg, set(targets.values()))
    wanted = rset.files if use_refiners else (rset.backbone_file,)
    missing = [name for name in wanted if not (folder / name).is_file()]
    if missing:
        raise UserError(f"released_weights: {folder} lacks {', '.join(missing)} (MagNet's released {cfg.dataset} "
                        f"files: {', '.join(rset.files)}; the names as released)")
    if use_refiners and len(targets) != len(rset.refiner_files):
        raise UserError(f"released_weights: the released {cfg.dataset} weights hold {len(rset.refiner_files)} "
                        f"refiner(s) ({', '.join(rset.refiner_stages)}), but the sweep's MagNet plan has "
                        f"{len(targets)}: set magnet.n_refiners={len(rset.refiner_files)} (and the released scales)")
    shas = {name: sha256(folder / name) for name in wanted}
    keys = sorted(targets, key=lambda k: int(k.rpartition("_")[2]))  # refiner_0, refiner_1, ...: stage order
    stages = {src: targets[key] for src, key in zip(rset.refiner_files, keys)} if use_refiners else {}
    digest = stable_hash({"dataset": cfg.dataset, "backbone": cfg.backbone, "options": dict(cfg.backbone_options),
                          "sha256": shas, "stages": stages})
    target = install_dir(cfg) / digest
    backbone_file = str((folder / rset.backbone_file).resolve())
    _check_conflicts(cfg, backbone_file, target)
    if not _installed(target, shas, stages):
        backbone = _backbone_module(cfg)
        refiner = templates[keys[0]]
        _check_file(folder / rset.backbone_file, backbone, f"the {cfg.backbone} backbone",
                    (set(refiner.state_dict()), "a MagNet refinement module's keys: a refinement file given as the "
                                                "backbone?"))
        for src in stages:
            _check_file(folder / src, refiner, "a MagNet refinement module",
                        (set(backbone.state_dict()), "the backbone's keys: a backbone file given as a refiner?"))
        _install(target, folder, shas, stages)
    _note_deviations(cfg, rset, stages)
    return dataclasses.replace(cfg, backbone_checkpoint=backbone_file, method_checkpoint_dir=str(target),
                               paper=_released_numbers(cfg, rset))


def released_set(cfg: BenchConfig) -> ReleasedSet:
    """The dataset's released files; UserError for a dataset or backbone MagNet released nothing for."""
    if cfg.dataset not in SETS:
        raise UserError(f"released_weights: MagNet released weights for {sorted(SETS)} only, not {cfg.dataset!r}")
    rset = SETS[cfg.dataset]
    if cfg.backbone != rset.backbone:
        raise UserError(f"released_weights: MagNet's {cfg.dataset} weights are for backbone {rset.backbone!r}, the "
                        f"config has backbone={cfg.backbone!r}")
    return rset


def install_dir(cfg: BenchConfig) -> Path:
    """Where the per-digest folders go: ``<checkpoint_dir>/released`` when given, else ``results/released``."""
    return Path(cfg.checkpoint_dir) / "released" if cfg.checkpoint_dir else Path("results/released")


def sha256(path: Path) -> str:
    """Full hex sha256 of a file."""
    return str(file_digest(path, length=64))


def provenance(cfg: BenchConfig) -> dict[str, Any]:
    """``{"released_weights": {...}}`` for the records of a released-weights run, else ``{}``.

    Holds the source folder, ``sha256`` (released file name -> full hex digest) and ``stages``
    (released refiner file -> the harness file name it was installed as).
    """
    if not cfg.released_weights or not cfg.method_checkpoint_dir:
        return {}
    data = json.loads((Path(cfg.method_checkpoint_dir) / RELEASED_JSON).read_text())
    return {"released_weights": {"source": data["source"], "sha256": data["sha256"], "stages": data["stages"]}}


# -- the sweep's view of the refiners ---------------------------------------------------------


def _context(cfg: BenchConfig, checkpoint_dir: Path) -> Any:
    """A CPU MethodContext without a backbone, enough for a method's ``checkpoints``."""
    import torch

    from bench.data import dataset_class, dataset_info
    from bench.core.interface import MethodContext

    klass = dataset_class(cfg.dataset)
    nominal_w, nominal_h = getattr(klass, "default_size", None) or getattr(klass, "nominal_size", None) or (0, 0)
    full = parse_size(cfg.data["size"]) if cfg.data.get("size") else (nominal_w, nominal_h)
    w, h = cfg.input_size
    return MethodContext(num_classes=dataset_info(cfg).num_classes, input_size=(w, h),
                         device=torch.device("cpu"), backbone=None, checkpoint_dir=checkpoint_dir,
                         dataset=dataset_info(cfg), image_size=full,
                         options={"coarse_scale": cfg.coarse_scale, "seed": cfg.seed})


def _method(cfg: BenchConfig, name: str) -> tuple[type[Method], Any] | None:
    """(class, resolved Config) of a registered method, or None when it cannot be resolved here."""
    from bench.core.config import config_from_mapping
    from bench.core.registry import MethodUnavailable, resolve as resolve_method

    try:
        cls = resolve_method(name)
    except (KeyError, MethodUnavailable):
        return None  # reported by bench.pipeline.validate with suggestions
    try:
        return cls, config_from_mapping(cls.Config, method_config_values(cfg, name))
    except (KeyError, ValueError, TypeError) as err:
        raise UserError(f"{name} options: {one_line(err.args[0] if err.args else str(err))}") from err


def _refiner_plan(cfg: BenchConfig) -> tuple[dict[str, str], dict[str, Any]]:
    """``({refiner key: harness file name}, {refiner key: fresh module})`` of the sweep's MagNet plan."""
    found = _method(cfg, REFINER_METHOD)
    if found is None:
        raise UserError(f"released_weights: method {REFINER_METHOD!r} is not available, so the refiners cannot be "
                        f"placed")
    cls, mcfg = found
    modules_of = getattr(cls, "checkpoint_modules", None)  # MagNet's own classmethod, not part of Method
    if modules_of is None:
        raise UserError(f"released_weights: method {REFINER_METHOD!r} has no checkpoint_modules, so the released "
                        f"refiners cannot be checked")
    ctx = _context(cfg, Path("."))
    try:
        names = {key: path.name for key, path in cls.checkpoints(mcfg, ctx).items()}
        modules = modules_of(mcfg, ctx)
    except ValueError as err:  # inconsistent scales / crop size
        raise UserError(f"{REFINER_METHOD} options: {one_line(str(err))}") from err
    return names, modules


def _sweep_uses(cfg: BenchConfig, refiner_names: set[str]) -> bool:
    """True when a swept method loads a file named like one of the MagNet refiners."""
    ctx = _context(cfg, Path("."))
    for name in dict.fromkeys(m for m, _ in cfg.units()):
        found = _method(cfg, name)
        if found is None:
            continue
        cls, mcfg = found
        try:
            names = {path.name for path in cls.checkpoints(mcfg, ctx).values()}
        except ValueError as err:
            raise UserError(f"{name} options: {one_line(str(err))}") from err
        if names & refiner_names:
            return True
    return False


# -- strict checks ----------------------------------------------------------------------------


def _backbone_module(cfg: BenchConfig) -> Any:
    from bench.models.backbones import create_backbone
    from bench.data import dataset_info

    return create_backbone(cfg.backbone, dataset_info(cfg).num_classes, **dict(cfg.backbone_options))


def load_released(path: Path) -> dict[str, Any]:
    """A released file as a cleaned flat state dict (§3.2: ``model.``/``module.`` stripped, ``loss.*`` dropped).

    Raises:
        UserError: the file is not a mapping of names to tensors (or refused by ``weights_only``).
    """
    import torch

    from bench.models.state_dict import clean_state_dict, load_weights

    try:
        state = load_weights(path)
    except (RuntimeError, EOFError, OSError) as err:  # truncated or not a torch file
        raise UserError(f"released_weights: {path} cannot be read by torch.load ({one_line(str(err))[:200]})") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"released_weights: {path} is not a flat state dict (name -> tensor), as MagNet released them")
    return clean_state_dict(state)


def _check_file(path: Path, module: Any, what: str, other: tuple[set[str], str]) -> None:
    """UserError unless ``path``'s cleaned state dict has exactly ``module``'s keys and shapes.

    ``other`` is (the key set of the other model in the set, what to say when the file holds it).
    """
    state = load_released(path)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if not (missing or unexpected or shapes):
        return
    parts = [f"{len(missing)} missing key(s){_some(missing)}", f"{len(unexpected)} unexpected key(s){_some(unexpected)}"]
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es) (" + ", ".join(
            f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shapes[:SHOWN]) + ")")
    hint = f" - it holds {other[1]}" if set(state) == other[0] else ""
    raise UserError(f"released_weights: {path} is not {what} (after stripping model./module. and dropping loss.*): "
                    f"{'; '.join(parts)}{hint}")


def _some(keys: list[str]) -> str:
    if not keys:
        return ""
    more = ", ..." if len(keys) > SHOWN else ""
    return f" ({', '.join(keys[:SHOWN])}{more})"


# -- the per-digest folder --------------------------------------------------------------------


def _check_conflicts(cfg: BenchConfig, backbone_file: str, target: Path) -> None:
    """Another weights option beside ``released_weights`` is ambiguous (a resolved config passes)."""
    if cfg.backbone_checkpoint and str(cfg.backbone_checkpoint) != backbone_file:
        raise UserError(f"released_weights and backbone_checkpoint={cfg.backbone_checkpoint} both name a backbone; "
                        f"give one of them")
    if cfg.method_checkpoint_dir and str(cfg.method_checkpoint_dir) != str(target):
        raise UserError(f"released_weights and method_checkpoint_dir={cfg.method_checkpoint_dir} both name the "
                        f"refiners' folder; give one of them")


def _installed(target: Path, shas: Mapping[str, str], stages: Mapping[str, str]) -> bool:
    """True when ``target`` already holds these files, checked, byte for byte."""
    path = target / RELEASED_JSON
    if not path.is_file():
        return False
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return False
    if data.get("schema") != SCHEMA or data.get("sha256") != dict(shas) or data.get("stages") != dict(stages):
        return False
    return all(file_digest(target / dst, length=64) == shas[src] for src, dst in stages.items())


def _install(target: Path, folder: Path, shas: Mapping[str, str], stages: Mapping[str, str]) -> None:
    """Copy each released refiner to its harness name and write ``released.json`` (each atomically)."""
    target.mkdir(parents=True, exist_ok=True)
    for src, dst in stages.items():
        tmp = target / f".{dst}.{os.getpid()}"
        shutil.copyfile(folder / src, tmp)
        if file_digest(tmp, length=64) != shas[src]:
            tmp.unlink()
            raise UserError(f"released_weights: {folder / src} changed while it was copied; run again")
        os.replace(tmp, target / dst)
    data = {"schema": SCHEMA, "source": str(folder.resolve()), "sha256": dict(shas), "stages": dict(stages),
            "checked": "strict: every key and shape after the magnet.md §3.2 clean-up"}
    tmp = target / f".{RELEASED_JSON}.{os.getpid()}"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, target / RELEASED_JSON)


# -- what the tables compare with --------------------------------------------------------------


def _released_numbers(cfg: BenchConfig, rset: ReleasedSet) -> dict[str, Any]:
    """``cfg.paper`` with the released code's own mIoU for these weights at the released input size.

    A published memory figure of the entry it replaces is kept, with its source named apart.
    """
    size = format_size(rset.input_size)
    paper = {k: dict(v) for k, v in cfg.paper.items()}
    for method, miou in rset.expected.items():
        old = paper.get(f"{method}@{size}", {})
        entry: dict[str, Any] = {"miou": miou, "backbone": rset.backbone, "source": f"mIoU: {SOURCE}"}
        if old.get("memory") is not None:
            entry["memory"] = old["memory"]
            entry["source"] += f"; memory: {old.get('source', 'no source given')}"
        paper[f"{method}@{size}"] = entry
    return paper


def _normal(value: Any) -> Any:
    """Sizes as (w, h) tuples and lists as tuples, so ``"256x128"`` equals ``[256, 128]``."""
    if isinstance(value, str) and "x" in value:
        try:
            return parse_size(value)
        except ValueError:
            return value
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, int) for v in value):
            return tuple(value)
        return tuple(_normal(v) for v in value)
    return value


def deviations(cfg: BenchConfig, rset: ReleasedSet) -> list[str]:
    """``key: ours vs released`` for each setting that differs from the released test script's."""
    out = []
    resolved: dict[str, Any] = {}
    for key, released in rset.settings.items():
        method, _, option = key.rpartition(".")
        if method:
            if method not in cfg.methods:
                continue
            if method not in resolved:
                resolved[method] = _method(cfg, method)
            if resolved[method] is None:
                continue
            ours = getattr(resolved[method][1], option, None)
        else:
            ours = getattr(cfg, key)
        if _normal(ours) != _normal(released):
            out.append(f"{key}: {_show(ours)} vs released {_show(released)}")
    return out


def _show(value: Any) -> str:
    value = _normal(value)
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return "[" + ", ".join(format_size(v) for v in value) + "]"
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return format_size(value)
    return str(value)


def _note_deviations(cfg: BenchConfig, rset: ReleasedSet, stages: Mapping[str, str]) -> None:
    """One stderr line when the sweep does not run the released script's settings."""
    differ = deviations(cfg, rset)
    if differ:
        print(f"[bench] released_weights: not the released {cfg.dataset} settings, so not comparable with the "
              f"released numbers ({'; '.join(differ)}); refiners placed by stage order: "
              f"{', '.join(f'{s} -> {d}' for s, d in stages.items()) or 'none'}", file=sys.stderr)
