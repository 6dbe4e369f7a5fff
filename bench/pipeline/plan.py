"""A sweep's plan, printed before anything runs: each unit, the weights it will use or train, and a time estimate.

``bench run`` and ``bench train`` build the plan after the config checks (``bench.pipeline.validate``)
and before any training, lock or file write:

- each unit (method, input size, and its coarse source where the data gives coarse maps:
  ``downsample @ 256x192 on fcn``) with each weights file it loads: the path, the first 8 hex
  digits of its sha256 and its source (``reference``: a committed set with a manifest;
  ``released``: MagNet's released files; ``trained``: written by this harness, with a training
  sidecar; ``given``: any other file the config names), or ``train`` (missing, and ``train`` is
  on) or ``missing`` (missing, and ``train`` is off);
- an estimate of the unit's time where an earlier run folder's ``run.json`` timed a unit of the
  same method, input size and dataset (its seconds per image times this run's image count).

A unit that lacks weights while ``train`` is off stops the run up front (:func:`blocking_lines`:
one line per unit naming the command that trains its weights and the folder the run then reads),
before any table is written.

:func:`resolve` is the one change the plan makes to a config: with ``train`` on, a dataset that has
a committed reference set and no backbone of its own in the training folder uses the reference
backbone instead of training one (issue 21: ``methods=[downsample,class_bias] train=true`` trained a
6000-iteration backbone for a one-parameter-vector plugin). The methods' weights then go to
``results/checkpoints/<dataset>/methods-<WxH>-<reference backbone digest>/``. A backbone of one's own
is still trained when asked for (``backbone_checkpoint=<path>`` or ``checkpoint_dir=<folder>``), or
when the reference backbone's sidecar disagrees with the config's backbone options.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.core.config import REPO_DIR, BenchConfig, file_digest, format_size
from bench.core.errors import WrongModel

SOURCES = ("reference", "released", "trained", "given", "train", "missing")


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """One weights file of a unit.

    Attributes:
        key: the method's name for it (``backbone``, ``bias``, ``refiner``, ...).
        path: where the unit reads it.
        digest: first 8 hex digits of its sha256; None when it is missing.
        source: one of :data:`SOURCES`.
    """

    key: str
    path: Path
    digest: str | None
    source: str


@dataclasses.dataclass(frozen=True)
class UnitPlan:
    """One (method, input size, coarse source) of the sweep.

    Attributes:
        method: registry key.
        size: input size (w, h) in pixels.
        source: the coarse source (``backbone``: the harness's own coarse pass).
        weights: every file the unit loads, backbone first.
        note: why the unit cannot run as planned (``unavailable: ...``, ``stale: ...``), or "".
        estimate_s: estimated wall-clock seconds of the unit (None: no similar unit was timed).
        estimate_from: the run folder the estimate comes from, or "".
    """

    method: str
    size: tuple[int, int]
    weights: tuple[WeightsFile, ...]
    note: str = ""
    estimate_s: float | None = None
    estimate_from: str = ""
    source: str = "backbone"

    @property
    def label(self) -> str:
        return f"{self.method}@{format_size(self.size)}" + (f"/{self.source}" if self.source != "backbone" else "")

    @property
    def missing(self) -> list[WeightsFile]:
        return [w for w in self.weights if w.source == "missing"]

    @property
    def trains(self) -> list[WeightsFile]:
        return [w for w in self.weights if w.source == "train"]


@dataclasses.dataclass(frozen=True)
class Plan:
    """The units of a sweep, in order, and how many images each covers (None: unknown)."""

    cfg: BenchConfig
    units: tuple[UnitPlan, ...]
    n_images: int | None


def resolve(cfg: BenchConfig) -> BenchConfig:
    """``cfg``, or with ``train`` on, the reference backbone in place of training one (see the module docstring).

    The reference backbone is used only when the user named no weights folder or file
    (``checkpoint_dir``, ``backbone_checkpoint``, ``method_checkpoint_dir``, ``weights_from``,
    ``released_weights``), the training folder holds no backbone, the reference file matches its
    manifest and its sidecar matches the config's backbone options.
    """
    from bench.weights import reference, sidecar

    if (not cfg.train or not cfg.reference_dir or cfg.checkpoint_dir or cfg.backbone_checkpoint
            or cfg.method_checkpoint_dir or cfg.weights_from or cfg.released_weights):
        return cfg
    folder = REPO_DIR / cfg.reference_dir
    ref_backbone = folder / "backbone.pt"
    if cfg.backbone_path.is_file() or not ref_backbone.is_file() or not reference.is_reference(folder):
        return cfg
    candidate = dataclasses.replace(cfg, backbone_checkpoint=str(ref_backbone))
    try:
        reference.verify(folder, [ref_backbone])
        sidecar.check_backbone(candidate)
    except (reference.ReferenceMismatch, sidecar.StaleCheckpoint):
        return cfg  # other backbone options asked for: a backbone of its own is trained, as before
    return candidate


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it lies under it (shorter lines), else absolute."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _source(cfg: BenchConfig, key: str, path: Path) -> str:
    from bench.weights import sidecar
    from bench.weights.reference import reference_folder_of

    if not Path(path).is_file():
        return "train" if cfg.train else "missing"
    if reference_folder_of(path) is not None:
        return "reference"
    if cfg.released_weights and (key == "backbone" or cfg.method_checkpoint_dir):
        return "released"
    return "trained" if sidecar.stored(Path(path)) is not None else "given"


@functools.lru_cache(maxsize=256)
def _digest(path: str, mtime_ns: int, size: int) -> str | None:
    """A file's short digest, once per version of it (every unit of a sweep shares the backbone)."""
    return file_digest(Path(path), length=8)


def _short_digest(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return _digest(str(path.resolve()), st.st_mtime_ns, st.st_size)


def _weights(cfg: BenchConfig, paths: dict[str, Path]) -> tuple[WeightsFile, ...]:
    ordered = sorted(paths.items(), key=lambda kv: (kv[0] != "backbone", kv[0]))
    return tuple(WeightsFile(k, Path(p), _short_digest(Path(p)), _source(cfg, k, Path(p))) for k, p in ordered)


def check_backbone_file(cfg: BenchConfig, num_classes: int) -> None:
    """The backbone file, where it exists, holds the keys of the configured backbone.

    Checked before its sidecar, so that another model's file (a DGF refiner given as
    ``backbone_checkpoint``) is named as such, and not as stale weights of the right model.

    Raises:
        WrongModel: the keys differ (the model they look like and the expected one named), or
            the keys agree and the shapes differ while no sidecar says why.
        NotACheckpoint, UnsafeCheckpoint: the file is no checkpoint, or a refused pickle.
    """
    from bench.models.backbones import create_backbone
    from bench.models.state_dict import LoadsItself, key_sample, load_weights, state_dict_of
    from bench.weights import sidecar
    from bench.weights.reference import identify

    path = cfg.backbone_path
    if not path.is_file():
        return
    what = f"backbone_checkpoint {path}" if cfg.backbone_checkpoint else f"backbone weights {path}"
    model = create_backbone(cfg.backbone, num_classes, **dict(cfg.backbone_options))
    if isinstance(model, LoadsItself):  # an adapter with its own key layout checks its own file
        return
    own = model.state_dict()
    expected = f"the {cfg.backbone!r} backbone's ({type(model).__name__}: {len(own)} keys such as {key_sample(own)})"
    state = state_dict_of(load_weights(path))
    if state is None:
        raise WrongModel(f"{what} holds no state dict (names -> tensors); expected {expected}")
    if set(state) != set(own):
        found = identify(set(state))
        like = (f"they look like {found[1]!r} weights (as {_shown(found[0])})" if found is not None
                else "they match no known model")
        raise WrongModel(f"{what}: its {len(state)} keys (such as {key_sample(state)}) are not {expected}; {like}. "
                         f"Give the backbone's weights file")
    shapes = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if shapes and sidecar.stored(path) is None:  # with a sidecar, its stale-weights check names the options
        k = shapes[0]
        raise WrongModel(f"{what}: the {cfg.backbone!r} backbone's keys with other shapes ({len(shapes)} differ, "
                         f"e.g. {k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}): trained with other "
                         f"backbone_options or for another number of classes than {num_classes}")


def _stale_note(cfg: BenchConfig, cls: Any, mcfg: Any, name: str, weights: tuple[WeightsFile, ...]) -> str:
    """``stale (<fields>)`` when a present file's training sidecar disagrees with the config, else "".

    The unit is still run and recorded as stale, as before; the plan only says so first.
    """
    from bench.weights import sidecar

    present = {w.key: w.path for w in weights if w.source not in ("train", "missing")}
    try:
        if "backbone" in present:
            sidecar.check_backbone(cfg)
        own = {k: p for k, p in present.items() if k != "backbone"}
        if own:
            sidecar.check(own, sidecar.training_options(cls, mcfg, cfg.backbone_path, cfg.seed), name)
    except sidecar.StaleCheckpoint as err:
        text = str(err)
        fields = text.split("other options (", 1)[-1].split("). ", 1)[0] if "other options (" in text else text
        return f"stale weights ({fields}): recorded as stale"
    return ""


def _run_files(cfg: BenchConfig) -> list[Path]:
    """``run.json`` of this run's folder, its sibling folders and ``results/runs/*``, each once."""
    out = cfg.out_path.resolve()
    candidates = [out / "run.json", *out.parent.glob("*/run.json"), *Path("results/runs").glob("*/run.json")]
    return list(dict.fromkeys(p.resolve() for p in candidates if p.is_file()))


def _timed_units(cfg: BenchConfig) -> dict[str, tuple[float, float, str]]:
    """``{"method@WxH": (seconds per image, started, folder)}`` of the most recent ok unit of each label."""
    found: dict[str, tuple[float, float, str]] = {}
    for path in _run_files(cfg):
        try:
            data = json.loads(path.read_text())
            if data["config"].get("dataset") != cfg.dataset:
                continue
            timing, n = data.get("timing") or {}, len(data.get("image_ids") or [])
            started = float(timing.get("started") or 0.0)
            for label, unit in (timing.get("units") or {}).items():
                if unit.get("status") == "ok" and n and (label not in found or found[label][1] < started):
                    found[label] = (float(unit["seconds"]) / n, started, _shown(path.parent))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # another tool's file, or a torn one: no estimate from it
    return found


def _n_images(cfg: BenchConfig) -> int | None:
    from bench.data.splits import open_split
    from bench.pipeline.unit import expected_ids

    try:
        return len(expected_ids(cfg, open_split(cfg, cfg.split)))
    except Exception:  # noqa: BLE001 - the units record why the split cannot be opened
        return cfg.limit


def build_plan(cfg: BenchConfig, *, estimates: bool = True) -> Plan:
    """The plan of ``cfg``'s sweep (see the module docstring); reads file heads and digests, trains nothing.

    Raises:
        WrongModel, NotACheckpoint, UnsafeCheckpoint: the backbone file is not the configured
            backbone's weights (:func:`check_backbone_file`).
    """
    import torch

    from bench.core.registry import MethodUnavailable
    from bench.core.registry import resolve as resolve_method
    from bench.data import dataset_info
    from bench.data.splits import split_image_size
    from bench.pipeline.unit import (checkpoint_files, make_context, method_config, nominal_full_size, sweep_units,
                                     unit_full_size)

    info = dataset_info(cfg)
    try:
        full = unit_full_size(cfg)  # what the units see: the weights' paths agree with theirs
        units_of = sweep_units(cfg)
    except Exception:  # noqa: BLE001 - an unreadable split is recorded by the units; paths need a size only
        full = split_image_size(cfg, cfg.split) or nominal_full_size(cfg)
        units_of = [(name, size, source) for source in (cfg.coarse_sources or ("backbone",))
                    for name, size in cfg.units()]
    n_images = _n_images(cfg)
    timed = _timed_units(cfg) if estimates else {}
    units: list[UnitPlan] = []
    needs_backbone = False
    for name, size, source in units_of:
        try:
            cls = resolve_method(name)
        except MethodUnavailable as err:
            units.append(UnitPlan(name, size, (), note=f"unavailable: {err}", source=source))
            continue
        mcfg = method_config(cfg, cls, name)
        ctx = make_context(cfg, info, size, torch.device("cpu"), None, full)
        weights = _weights(cfg, checkpoint_files(cfg, cls, mcfg, ctx, source))
        needs_backbone |= any(w.key == "backbone" for w in weights)
        label = UnitPlan(name, size, (), source=source).label
        per_image, _, folder = timed.get(label, (None, 0.0, ""))
        estimate = per_image * n_images if per_image is not None and n_images else None
        units.append(UnitPlan(name, size, weights, note=_stale_note(cfg, cls, mcfg, name, weights),
                              estimate_s=estimate, estimate_from=folder if estimate else "", source=source))
    if needs_backbone:
        check_backbone_file(cfg, info.num_classes)
    return Plan(cfg, tuple(units), n_images)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _file_text(w: WeightsFile) -> str:
    digest = f" {w.digest}" if w.digest else ""
    return f"{w.key} {_shown(w.path)} ({w.source}{digest})" if w.source not in ("train", "missing") else \
        f"{w.key} {_shown(w.path)} ({w.source})"


def _sources_text(plan: Plan) -> str:
    """``", coarse sources fcn, psp (given with the data)"`` when a unit runs on a given source, else ""."""
    sources = list(dict.fromkeys(u.source for u in plan.units))
    if sources == ["backbone"] or not sources:
        return ""
    return f", coarse sources {', '.join(sources)} (given with the data" + \
        ("; backbone: the backbone's coarse pass)" if "backbone" in sources else ")")


def plan_lines(plan: Plan) -> list[str]:
    """The plan as printed: a header, then one line per unit (its weights, then its estimate)."""
    cfg = plan.cfg
    images = f"{plan.n_images} image(s)" if plan.n_images is not None else "an unknown number of images"
    lines = [f"plan: {len(plan.units)} unit(s) on {images} of {cfg.dataset} {cfg.split}, device {cfg.device}, "
             f"train {'on' if cfg.train else 'off'}, records in {_shown(cfg.out_path)}"
             + _sources_text(plan)]
    backbone = next((w for u in plan.units for w in u.weights if w.key == "backbone"), None)
    if backbone is not None:
        lines.append(f"  backbone {cfg.backbone}: {_file_text(backbone).split(' ', 1)[1]}")
    total, timed = 0.0, 0
    for u in plan.units:
        files = [w for w in u.weights if w.key != "backbone"]
        parts = [", ".join(_file_text(w) for w in files) if files else "no weights of its own"]
        if any(w.key == "backbone" for w in u.weights):
            parts[0] += " + backbone"
        if u.note:
            parts.append(u.note)
        if u.estimate_s is not None:
            parts.append(f"about {_duration(u.estimate_s)} (from {u.estimate_from})")
            total += u.estimate_s
            timed += 1
        elif not u.note:
            parts.append("no estimate (no earlier run timed it)")
        on = f" on {u.source}" if u.source != "backbone" else ""
        lines.append(f"  {u.method} @ {format_size(u.size)}{on}: " + "; ".join(parts))
    if timed:
        lines.append(f"  estimated time: about {_duration(total)} for the {timed} unit(s) timed before"
                     + (f" (and {len(plan.units) - timed} not)" if timed < len(plan.units) else ""))
    return lines


def train_command(cfg: BenchConfig, words: Sequence[str], name: str, size: tuple[int, int]) -> str:
    """``python -m bench train`` with the command's own words, for method ``name`` at ``size`` alone.

    ``words`` are the command's DATASET and overrides (and ``--config FILE``) as typed. The
    sweep's method lists are replaced, and options that do not shape training are dropped.
    """
    dropped = ("methods=", "table1_methods=", "train=", "limit=", "out_dir=", "tables_dir=")
    words = list(words)
    options = words[words.index("--config"):] if "--config" in words else []  # after the overrides: argparse
    kept = [w for w in words[:len(words) - len(options)] if not w.startswith(dropped)]
    at_table1_size = tuple(size) != tuple(cfg.input_size)
    sweep = [f"methods=[{name}]", f"table1_methods=[{name}]" if at_table1_size else "table1_methods=[]"]
    return shlex.join(["python", "-m", "bench", "train", *kept, *sweep, *options])


def blocking_lines(plan: Plan, words: Sequence[str]) -> list[str]:
    """One line per unit that lacks weights while ``train`` is off: what is missing, the command, the folder read.

    Empty when every unit has its weights (or ``train`` is on). The trained files' folder is
    computed from the config ``bench train`` builds (:func:`resolve` included), so the hint
    names where that command writes; where the run reads elsewhere (a reference set, read only
    while ``train`` is off), the line says to add ``train=true``, and which other units that
    would train.
    """
    cfg = plan.cfg
    if cfg.train:
        return []
    blocked = [u for u in plan.units if u.missing]
    # one line per (method, size) and files: the units of several coarse sources lack the same weights
    firsts: dict[tuple[Any, ...], UnitPlan] = {}
    for u in blocked:
        firsts.setdefault((u.method, u.size, tuple(w.path for w in u.missing)), u)
    blocked = list(firsts.values())
    if not blocked:
        return []
    if cfg.weights_from or cfg.released_weights:  # given weights: nothing trains into their folders
        given = f"weights_from={cfg.weights_from}" if cfg.weights_from else f"released_weights={cfg.released_weights}"
        return [f"{u.method} @ {format_size(u.size)}: no weights ({', '.join(_shown(w.path) for w in u.missing)}); "
                f"{given} evaluates given weights and trains nothing: leave {u.method} out of methods=, or train "
                f"and evaluate it without {given.split('=')[0]} (add train=true)" for u in blocked]
    trained_cfg = resolve(dataclasses.replace(cfg, train=True))
    trained_plan = {u.label: u for u in build_plan(trained_cfg, estimates=False).units}
    also = [u.label for u in trained_plan.values() if u.trains and u.label not in {b.label for b in blocked}]
    lines = []
    for u in blocked:
        target = trained_plan.get(u.label)
        keys = {w.key for w in u.missing}
        if "backbone" in keys:  # the methods' folder is named after the backbone's digest: not known before
            keys = {"backbone"}
        missing = ", ".join(_shown(w.path) for w in u.missing if w.key in keys)
        if keys == {"backbone"} and len(u.missing) > 1:
            missing += f", then {u.method}'s own weights trained on it"
        planned = [w for w in (target.weights if target else ()) if w.key in keys]
        where = " and ".join(sorted({_shown(w.path.parent) for w in planned})) or "the training folder"
        read_same = bool(planned) and {w.path.resolve() for w in planned} == \
            {w.path.resolve() for w in u.missing if w.key in keys}
        command = train_command(cfg, words, u.method, u.size)
        if read_same:
            tail = f"it writes {where}, the folder this command reads"
        else:
            extra = f"; with train=true this sweep would also train {', '.join(also)}" if also else ""
            tail = (f"it writes {where}, which this command reads with train=true added (the reference set is read "
                    f"only while train is off and is never trained into){extra}")
        lines.append(f"{u.method} @ {format_size(u.size)}: no weights ({missing}); train them with `{command}`: {tail}")
    return lines


def command_words(args: Any) -> list[str]:
    """The DATASET, overrides and ``--config`` of a parsed dataset command, as typed."""
    words = [args.dataset, *args.overrides]
    return [*words, "--config", args.config] if getattr(args, "config", None) else words
