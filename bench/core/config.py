"""Benchmark configuration: one frozen dataclass, YAML files, dotted ``key=value`` overrides.

A dataset file ``configs/datasets/<name>.yaml`` holds the sweep for that dataset. Keys are the
fields of :class:`BenchConfig`; four of them are blocks of options, as is each method:

- ``backbone_train.<key>`` (:class:`BackboneTrainConfig`), ``backbone_options.<kwarg>`` (the
  backbone builder's), ``data.<kwarg>`` (the dataset constructor's, e.g. ``data.size``) and
  ``train_data.<kwarg>`` (the training split's, over ``data``);
- ``<method>.<option>`` sets an option of that method's ``Config`` dataclass (defaults come
  from the dataclass, then ``configs/methods/<method>.yaml``, then the dataset file, then the CLI).

A block is written nested or dotted, in a file and on the command line alike: ``backbone_train:
{iterations: 20}`` and ``backbone_train.iterations: 20`` are the same key, and a block given in a
later layer (the command line over the file) changes only the keys it names (:func:`flatten`). An
unknown key is refused with where it was written (the file, or ``command line``), its key path and
close matches (:func:`check_keys`); ``python -m bench keys [DATASET]`` lists every key.

``paper:`` (a nested mapping, as is ``cited:``, the published rows of methods not run here)
records published values for the tables:
``paper: {"<method>@<w>x<h>": {miou: 63.23, backbone: hrnet18_small_v2_ocr, source: "supplement T1"}}``.
A value whose ``backbone`` differs from the run's is left out of the tables (not comparable).

Sizes are written ``WxH`` (``256x128``) or ``[w, h]``.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ALLOCATORS = ("tuned", "default")  # measured subprocesses' memory allocator (bench.runtime.measure.child_env)
DATA_CHECKS = ("layout", "full")  # what bench run checks of the data before it starts (bench.pipeline.validate)
TRACKS = ("semantic", "refinement")  # how units are scored and tabled (docs/refinement-track.md)
BACKBONE_SOURCE = "backbone"  # the coarse source that is the harness's own coarse pass (every other is a file's)
ABSENT_POLICIES = ("nan", "zero")  # as bench.evaluation.metrics (not imported: config stays free of cv2)
# integer fields and their least value (None: any integer); ``limit`` and ``threads`` may be None
_INT_FIELDS = {"limit": 1, "threads": 1, "warmup": 0, "bootstrap": 0, "save_predictions": 0, "seed": None,
               "version": None}
_BOOL_FIELDS = ("isolate", "train")
_OPTIONAL_INT_FIELDS = ("limit", "threads")

REPO_DIR = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_DIR / "configs"


def check_allocator(allocator: str) -> str:
    """Return ``allocator`` or raise ValueError naming the valid settings (``ALLOCATORS``)."""
    if allocator not in ALLOCATORS:
        raise ValueError(f"allocator must be one of {ALLOCATORS}, got {allocator!r}")
    return allocator


def parse_size(value: Any) -> tuple[int, int]:
    """``"256x128"``, ``[256, 128]`` or ``(256, 128)`` -> ``(256, 128)`` (width, height)."""
    if isinstance(value, str):
        parts = value.lower().split("x")
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            return int(parts[0]), int(parts[1])
    elif isinstance(value, Sequence) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"a size must be 'WxH' or [w, h], got {value!r}")


def format_size(size: Sequence[int]) -> str:
    """``(256, 128)`` -> ``"256x128"``."""
    return f"{size[0]}x{size[1]}"


@dataclass(frozen=True)
class BenchConfig:
    """A benchmark sweep: one dataset, methods x input sizes.

    Attributes:
        dataset: dataset registry key.
        data_root: folder of a real dataset (None for synthetic).
        split: evaluated split.
        train_split: the split the backbone and the learned methods train on.
        methods: registry keys swept, in table order.
        input_size: backbone input size (w, h) of every method (the paper's n).
        coarse_scale: (w, h) the image is resized to before the input size in the coarse pass
            (DeepGlobe's 2448 -> 612 -> 508); None = straight to the input size.
        table1_methods: methods swept over ``table1_sizes`` for Table 1.
        table1_sizes: extra input sizes (w, h) for Table 1.
        backbone: backbone name for ``bench.models.backbones.create_backbone``.
        backbone_checkpoint: weights file; default ``<checkpoint_dir>/backbone.pt``.
        backbone_options: keyword arguments of the backbone's builder (``backbone_options.<kwarg>``, e.g.
            ``width`` of ``light``).
        backbone_train: the backbone's training options (``backbone_train.<key>``; ``bench.training.backbone``).
        training: how every training runs, not what it learns (``training.<key>``: resume states
            every ``checkpoint_every_s``, data-loading ``workers``, ``resume``; :class:`TrainRuntime`).
        checkpoint_dir: where learned weights live. Default: ``reference_dir`` when training is
            off and the dataset has reference weights, else ``results/checkpoints/<dataset>``
            (where ``make train`` writes; the reference folder is never written by training).
        reference_dir: the dataset's committed reference weights (``weights/<dataset>``, with a
            ``manifest.json`` checked before any file is used; ``bench.weights.reference``), or None.
        method_checkpoint_dir: folder of the methods' weights. Default: a sub-folder of
            ``checkpoint_dir`` named after the input size and the backbone weights' digest, so
            weights trained on another backbone or size are never reused; set it to use given
            (e.g. released) weights.
        released_weights: folder of MagNet's released files under their released names
            (``cityscapes_hrnet.pth``, ``cityscapes_refinement_{512,1024,2048}.pth``;
            ``deepglobe_fpn.pth``, ``deepglobe_refinement.pth``). The command line turns it into
            ``backbone_checkpoint`` and ``method_checkpoint_dir`` after checking every file
            strictly (``bench.weights.released.resolve``); None: not used.
        weights_from: evaluate the weights another dataset config trained (``synthetic``, or a
            config file): its model keys (backbone, input size, method options, weight folders)
            with this config's data; nothing is trained, and the stale-weights check demands only
            what changes inference (``bench.pipeline.configure.weights_config``). None: not used.
        out_dir: where records go; default ``results/runs/<dataset>``.
        tables_dir: where tables, plots and panels go; default ``<out_dir>/tables`` when ``out_dir``
            is given (so a second run never overwrites the first one's tables), else
            ``results/tables/<dataset>``.
        device: ``cpu`` or ``cuda[:i]``.
        amp: run the timed coarse pass and ``refine`` under autocast (fp16 on CUDA, bfloat16 on the
            CPU); off by default. Labels can change: a table says so in its caption, and
            ``make gpu-check`` measures how many move. Part of the unit key when on.
        threads: torch intra-op threads (None: torch's default).
        limit: evaluate only the first N images (N >= 1; None: all).
        seed: seeds random, numpy and torch.
        bootstrap: paired-bootstrap resamples over images behind the tables' significance marks
            (``bench.evaluation.significance``), drawn with ``seed``; 0 disables the test and the marks.
        warmup: untimed refine() calls on the first image of each (method, size).
        absent: absent-class policy for per-class IoU (``nan`` or ``zero``).
        excluded: classes left out of the mIoU mean (default: the dataset's own).
        metric_columns: the mIoU variants the tables show, in order (``bench.evaluation.metrics.MIOU_VARIANTS``:
            ``miou`` the config's policy, ``miou_2class``, ``iou_building``, ``miou_mmseg``).
        ours: the methods Table 2 counts as "ours" (default: the MagNet family, every method whose
            key starts with ``magnet``); every other method is "previous".
        table2_methods: Table 2's rows in order (default: the previous methods, then ours, in
            ``methods`` order); methods without results are left out.
        table3_methods: Table 3's rows in order (default: ``methods``); ``cited:<id>`` places the
            row ``cited[<id>]``.
        cited: published rows of methods this harness does not run, by id: ``{name, source}`` and
            any of ``miou``, ``memory`` (MB as printed), ``metric`` (the variant it holds), ``ref``.
            Typeset as cited, never as measured. Not part of the unit key (as every table field).
        isolate: run each (method, size) in a fresh subprocess (needed for CPU peak memory).
        allocator: memory allocator of those subprocesses: ``tuned`` (glibc thresholds that keep
            freed tensors for reuse; see ``bench.runtime.measure``) or ``default``.
            Not part of the unit key: it changes no result, only time and memory.
        train: train missing checkpoints (False: report them as a status).
        data_check: what ``bench run`` checks of the evaluated split before anything runs:
            ``layout`` (the folder walk: every listed file exists) or ``full`` (every image and
            label of the sweep decoded and checked; a bad file stops the run before it starts).
            Not part of the unit key: it changes no result.
        save_predictions: how many of the split's first images each unit saves as label-map PNGs
            under ``<out_dir>/predictions/`` for the qualitative panels (``bench show``); 0 saves
            none. Not part of the unit key: it changes no result.
        data: keyword arguments of the dataset's class (``data.<kwarg>``, e.g. ``data.size`` of a
            generated dataset, ``data.list_file``).
        train_data: keyword arguments for the training split only, over ``data`` (``train_data.<kwarg>``).
        method_options: each method's options (``<method>.<option>``, e.g. ``magnet.n_points``), over
            ``configs/methods/<method>.yaml``.
        paper: published values keyed ``"<method>@<WxH>"``.
        coarse_sources: the coarse sources swept (methods x input sizes x sources): ``backbone`` is
            the harness's own coarse pass (the dataset's backbone on the image at the input size);
            any other name is a coarse map the dataset gives with each image (``Sample.coarse``,
            e.g. BIG's FCN-8s masks). None: every source the dataset gives (its
            ``coarse_sources``), or ``[backbone]`` for a dataset without any. A source other than
            ``backbone`` is part of the unit key and skips the backbone.
        track: ``semantic`` (per-class mIoU and mBA, Tables 1-3) or ``refinement`` (CascadePSP's
            binary protocol: pooled object IoU, per-image mBA, Boundary IoU, one table row per
            coarse source; ``bench.evaluation.track``). Part of the unit key when ``refinement``.
        biou_ratio: Boundary IoU dilation ratio (fraction of the image diagonal; 0.02 the API's
            COCO default, 0.005 its Cityscapes one), printed in every caption that shows BIoU.
            Part of a refinement-track unit's key (its records hold band counts at this ratio).
        version: bump when the benchmark's meaning changes.
    """

    dataset: str = "synthetic"
    data_root: str | None = None
    split: str = "val"
    train_split: str = "train"
    methods: tuple[str, ...] = ("downsample", "patching")
    input_size: tuple[int, int] = (256, 128)
    coarse_scale: tuple[int, int] | None = None
    table1_methods: tuple[str, ...] = ("downsample",)
    table1_sizes: tuple[tuple[int, int], ...] = ()
    backbone: str = "light"
    backbone_checkpoint: str | None = None
    backbone_options: Mapping[str, Any] = field(default_factory=dict)
    backbone_train: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    checkpoint_dir: str | None = None
    reference_dir: str | None = None
    method_checkpoint_dir: str | None = None
    released_weights: str | None = None
    weights_from: str | None = None
    out_dir: str | None = None
    tables_dir: str | None = None
    device: str = "cpu"
    amp: bool = False
    threads: int | None = None
    limit: int | None = None
    seed: int = 0
    bootstrap: int = 1000
    warmup: int = 1
    absent: str = "nan"
    excluded: tuple[int, ...] | None = None
    metric_columns: tuple[str, ...] = ("miou",)
    ours: tuple[str, ...] | None = None
    table2_methods: tuple[str, ...] | None = None
    table3_methods: tuple[str, ...] | None = None
    cited: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    isolate: bool = True
    allocator: str = "tuned"
    train: bool = True
    save_predictions: int = 2
    data_check: str = "layout"
    data: Mapping[str, Any] = field(default_factory=dict)
    train_data: Mapping[str, Any] = field(default_factory=dict)
    method_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    paper: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    coarse_sources: tuple[str, ...] | None = None
    track: str = "semantic"
    biou_ratio: float = 0.02
    version: int = 1

    def __post_init__(self) -> None:
        check_allocator(self.allocator)
        check_scalars(self)

    @property
    def checkpoint_path(self) -> Path:
        if self.checkpoint_dir:
            return Path(self.checkpoint_dir)
        if self.reference_dir and not self.train:
            return REPO_DIR / self.reference_dir
        return Path(f"results/checkpoints/{self.dataset}")

    @property
    def backbone_path(self) -> Path:
        return Path(self.backbone_checkpoint) if self.backbone_checkpoint else self.checkpoint_path / "backbone.pt"

    def method_checkpoint_path(self, size: tuple[int, int], backbone_digest: str | None) -> Path:
        """Where the methods' weights for ``size`` on the current backbone live."""
        if self.method_checkpoint_dir:
            return Path(self.method_checkpoint_dir)
        return self.checkpoint_path / f"methods-{format_size(size)}-{backbone_digest or 'nobackbone'}"

    @property
    def out_path(self) -> Path:
        return Path(self.out_dir or f"results/runs/{self.dataset}")

    @property
    def tables_path(self) -> Path:
        if self.tables_dir:
            return Path(self.tables_dir)
        return Path(self.out_dir) / "tables" if self.out_dir else Path(f"results/tables/{self.dataset}")

    def units(self) -> list[tuple[str, tuple[int, int]]]:
        """The (method, input size) pairs of the sweep, in table order, without repeats."""
        w, h = self.input_size  # (w, h) tuples even when a caller set lists
        pairs = [(m, (w, h)) for m in self.methods]
        pairs += [(m, (sw, sh)) for m in self.table1_methods for sw, sh in self.table1_sizes]
        return list(dict.fromkeys(pairs))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=list))


def check_scalars(cfg: BenchConfig) -> None:
    """Types and ranges of the scalar fields (``limit`` >= 1, ``threads`` >= 1, ``absent``, ...).

    Raises:
        ValueError: naming the key, the value given and what is allowed.
    """
    for key, least in _INT_FIELDS.items():
        value = getattr(cfg, key)
        if value is None and key in _OPTIONAL_INT_FIELDS:
            continue
        # bool is an int to Python, but ``limit=true`` is a typo, not 1
        if not isinstance(value, int) or isinstance(value, bool) or (least is not None and value < least):
            bound = "an integer" if least is None else f"an integer >= {least}"
            extra = " (or omitted)" if key in _OPTIONAL_INT_FIELDS else ""
            raise ValueError(f"{key} must be {bound}{extra}, got {value!r}")
    for key in _BOOL_FIELDS:
        if not isinstance(getattr(cfg, key), bool):
            raise ValueError(f"{key} must be true or false, got {getattr(cfg, key)!r}")
    if cfg.data_check not in DATA_CHECKS:
        raise ValueError(f"data_check must be one of {list(DATA_CHECKS)}, got {cfg.data_check!r}")
    if cfg.absent not in ABSENT_POLICIES:
        raise ValueError(f"absent must be one of {list(ABSENT_POLICIES)}, got {cfg.absent!r}")
    if cfg.track not in TRACKS:
        raise ValueError(f"track must be one of {list(TRACKS)}, got {cfg.track!r}")
    ratio = cfg.biou_ratio
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise ValueError(f"biou_ratio must be a number in (0, 1) (a fraction of the image diagonal), got {ratio!r}")
    sources = cfg.coarse_sources
    if sources is not None:
        if not sources or any(not isinstance(s, str) or not s for s in sources):
            raise ValueError(f"coarse_sources must be a non-empty list of source names (or omitted), got {list(sources)!r}")
        if len(set(sources)) != len(sources):
            raise ValueError(f"coarse_sources names a source twice: {list(sources)}")
    for key in ("dataset", "split", "train_split", "device", "backbone"):
        if not isinstance(getattr(cfg, key), str):
            raise ValueError(f"{key} must be a string, got {getattr(cfg, key)!r}")


_FIELDS = {f.name: f for f in dataclasses.fields(BenchConfig)}
_SIZE_FIELDS = {"table1_sizes"}
_ONE_SIZE_FIELDS = {"input_size", "coarse_scale"}
_TUPLE_FIELDS = {"methods", "table1_methods", "excluded", "metric_columns", "ours", "table2_methods", "table3_methods",
                 "coarse_sources"}


def _coerce(key: str, value: Any) -> Any:
    """A field's value in its stored type; a bad size raises ValueError naming ``key``."""
    try:
        return _coerce_value(key, value)
    except ValueError as err:
        raise ValueError(f"{key}: {err}") from err


def _coerce_value(key: str, value: Any) -> Any:
    if key in _ONE_SIZE_FIELDS:
        return None if value is None else parse_size(value)
    if key in _SIZE_FIELDS:
        items = [value] if isinstance(value, str) else list(value)
        return tuple(parse_size(v) for v in items)
    if key in _TUPLE_FIELDS and value is not None:
        return tuple(value) if isinstance(value, (list, tuple)) else tuple(str(value).split(","))
    return value


# the fields that are blocks of options, written ``<block>.<key>`` or as a nested mapping
BLOCKS = ("backbone_train", "training", "backbone_options", "data", "train_data")
KEYS_HINT = "python -m bench keys lists every key"
COMMAND_LINE = "command line"


def _parse_value(key: str, text: str) -> Any:
    """CLI values are YAML: ``3``, ``true``, ``[a, b]``, ``256x128``, ``{iterations: 20}``.

    Raises:
        ValueError: one line naming ``key`` (the shell splits an unquoted ``{a: 1}`` at its space).
    """
    if text == "":
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        reason = getattr(err, "problem", None) or type(err).__name__
        raise ValueError(f"{COMMAND_LINE}: {key}={text} is not a valid YAML value ({reason}); quote a value with "
                         f"spaces (\"{key}={{a: 1, b: 2}}\") or set one key at a time ({key}.a=1)") from None


def _label(where: str | Path) -> str:
    """A file as the user knows it: relative to the repository when inside it."""
    if isinstance(where, Path):
        try:
            return str(where.resolve().relative_to(REPO_DIR))
        except ValueError:
            return str(where)
    return where


def flatten(raw: Mapping[str, Any], where: str | Path = "config") -> dict[str, Any]:
    """Every block of ``raw`` written as dotted keys: ``{backbone_train: {lr: 1}}`` -> ``{backbone_train.lr: 1}``.

    Blocks are :data:`BLOCKS`, ``method_options`` (``{magnet: {n_points: 1}}`` -> ``magnet.n_points``)
    and any other non-field key holding a mapping (a method: ``magnet: {n_points: 1}``). Nested
    blocks come first and dotted keys after, so that a dotted key wins over the same key in a block
    whatever their order; a key inside a block's value (``data.classes: {...}``) is not opened.

    Raises:
        ValueError: a block that is not a mapping, naming ``where`` and the key.
    """
    label = _label(where)
    nested: dict[str, Any] = {}
    dotted: dict[str, Any] = {}
    for key, value in raw.items():
        key = str(key)
        if key in BLOCKS or key == "method_options" or (key not in _FIELDS and "." not in key
                                                           and isinstance(value, Mapping)):
            if value is None:  # an empty block: ``backbone_train:`` with nothing under it
                continue
            if not isinstance(value, Mapping):
                what = "<method>.<option>" if key == "method_options" else f"{key}.<key>"
                raise ValueError(f"{label}: {key} must be a mapping of options ({what}), got {value!r}")
            if key == "method_options":
                for method, options in value.items():
                    nested.update(flatten({str(method): options}, where))
            else:
                nested.update({f"{key}.{sub}": v for sub, v in value.items()})
        elif "." in key:
            dotted[key] = value
        else:
            nested[key] = value
    return {**nested, **dotted}


class ConfigKeyError(KeyError, ValueError):
    """An unknown or malformed config key: a ``KeyError`` (as before) and a ``ValueError`` (a bad input),
    whose ``str()`` is the message itself (a plain ``KeyError`` quotes it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _close(name: str, known: Sequence[str]) -> list[str]:
    return difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)


def _unknown(label: str, key: str, close: Sequence[str]) -> ConfigKeyError:
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return ConfigKeyError(f"{label}: unknown key {key}{hint} ({KEYS_HINT})")


def _registered_methods() -> list[str]:
    from bench.core.registry import method_paths  # lazily: only for a key that looks like a misspelt block

    try:
        return list(method_paths())
    except ValueError:  # a malformed plugin entry: named by the method checks (bench.pipeline.validate)
        return []


def check_keys(flat: Mapping[str, Any], where: str | Path = "config",
               sources: Mapping[str, str] | None = None) -> None:
    """Every key of a flat mapping is a field, a block's key, or ``<method>.<option>``.

    Method names and options are checked against the registry later (``bench.pipeline.validate``,
    which imports methods only on a cache miss); here a ``<name>.<key>`` whose name is close to a
    block and is no registered method is refused.

    Args:
        flat: as :func:`flatten` returns.
        where: the file (a path) or ``command line``: every message starts with it.
        sources: where each key was written, over ``where``.

    Raises:
        KeyError: ``<where>: unknown key <path>; did you mean <path>?`` (a top-level key keeps
            the older ``unknown config key '<key>'`` form).
    """
    train_fields = [f.name for f in dataclasses.fields(BackboneTrainConfig)]
    for key in flat:
        label = (sources or {}).get(key) or _label(where)
        head, dot, rest = key.partition(".")
        if not dot:
            if key not in _FIELDS:
                close = _close(key, list(_FIELDS))
                hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise ConfigKeyError(f"{label}: unknown config key {key!r}{hint} ({KEYS_HINT}; blocks: "
                               f"{', '.join(f'{b}.<key>' for b in BLOCKS)}, <method>.<option>)")
        elif not rest or not head:
            raise ConfigKeyError(f"{label}: {key!r} is not a key (a key path is <block>.<key> or <method>.<option>)")
        elif head == "backbone_train":
            if rest not in train_fields:
                raise _unknown(label, key, [f"backbone_train.{c}" for c in _close(rest, train_fields)])
        elif head == "training":
            runtime_fields = [f.name for f in dataclasses.fields(TrainRuntime)]
            if rest not in runtime_fields:
                raise _unknown(label, key, [f"training.{c}" for c in _close(rest, runtime_fields)])
        elif head in BLOCKS:
            continue  # constructor kwargs: checked where the dataset or backbone is built
        elif head in _FIELDS:
            raise ConfigKeyError(f"{label}: unknown key {key}: {head} is a single value, not a block of options "
                           f"(blocks: {', '.join(BLOCKS)}, <method>)")
        else:
            close = _close(head, BLOCKS)
            if close and head not in _registered_methods():
                # a known option of a typed block is the likeliest meaning: name that one alone
                exact = [c for c in close if c == "backbone_train" and rest in train_fields]
                raise _unknown(label, key, [f"{c}.{rest}" for c in exact or close])


def merge(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` over ``raw``, both flattened first: a block in ``overrides`` changes only its own keys."""
    return {**flatten(raw), **flatten(overrides, COMMAND_LINE)}


def build(flat: Mapping[str, Any], *, where: str | Path = "config",
          sources: Mapping[str, str] | None = None) -> BenchConfig:
    """Turn a mapping (YAML file plus overrides, nested or dotted) into a validated :class:`BenchConfig`.

    Args:
        flat: the keys; blocks nested or dotted (:func:`flatten`).
        where: named by a message about a key that ``sources`` does not place.
        sources: where each flat key was written (a file, ``command line``); kept with the
            config for later messages (:func:`key_source`).

    Raises:
        KeyError: an unknown key, with where it was written and close matches.
        ValueError: a bad value (naming the key).
    """
    flat = flatten(flat, where)
    check_keys(flat, where, sources)
    kwargs: dict[str, Any] = {}
    blocks: dict[str, dict[str, Any]] = {b: {} for b in BLOCKS}
    methods: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        head, dot, rest = key.partition(".")
        if not dot:
            kwargs[key] = _coerce(key, value)
        elif head in blocks:
            blocks[head][rest] = value
        else:
            methods.setdefault(head, {})[rest] = value
    kwargs.update(blocks, method_options=methods)
    cfg = BenchConfig(**kwargs)
    # not a field: where each key came from changes no result, so it stays out of to_dict() and the unit keys
    object.__setattr__(cfg, "_key_sources", dict(sources or {}))
    return cfg


def key_source(cfg: BenchConfig, key: str) -> str | None:
    """Where ``key`` (a flat key path, ``magnet.n_points``) of ``cfg`` was written: a file, ``command line``, or None."""
    sources: Mapping[str, str] = getattr(cfg, "_key_sources", {})
    return sources.get(key)


def read_yaml(path: Path) -> dict[str, Any]:
    """``yaml.safe_load`` a mapping; an empty file is ``{}``.

    Raises:
        ValueError: not YAML, or not a mapping at the top level (naming the file).
    """
    try:
        with open(path) as fh:
            loaded = yaml.safe_load(fh) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise ValueError(f"{path}: not valid YAML{at}: {one_line_yaml(err)}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return loaded


def one_line_yaml(err: yaml.YAMLError) -> str:
    """A YAML error's problem, without the multi-line context PyYAML prints."""
    return str(getattr(err, "problem", None) or type(err).__name__)


def read_config(path: Path) -> dict[str, Any]:
    """A dataset config file, flattened (:func:`flatten`) and its keys checked, every message naming the file.

    Raises:
        KeyError: an unknown key (``<file>: unknown key backbone_train.itrations; did you mean ...``).
        ValueError: not YAML, not a mapping, a block that is not a mapping, or a key written twice
            (nested and dotted).
    """
    raw = read_yaml(path)
    flat = flatten(raw, path)
    nested = {f"{b}.{k}" for b, v in raw.items() if isinstance(v, Mapping) and "." not in str(b)
              and b not in ("paper", "cited") for k in v}
    twice = sorted(nested & {str(k) for k in raw})
    if twice:
        raise ValueError(f"{_label(path)}: {twice[0]} is written twice (in its block and as a dotted key)")
    check_keys(flat, path)
    return flat


def load(dataset: str = "synthetic", overrides: Mapping[str, Any] | None = None, config_file: str | Path | None = None) -> BenchConfig:
    """Load ``configs/datasets/<dataset>.yaml`` (or ``config_file``) and apply overrides (the command line's)."""
    path = Path(config_file) if config_file else CONFIG_DIR / "datasets" / f"{dataset}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONFIG_DIR / "datasets").glob("*.yaml"))
        close = difflib.get_close_matches(dataset, known, n=3, cutoff=0.5) if not config_file else []
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise FileNotFoundError(f"no config {path}{hint} dataset configs: {known}")
    raw, extra = read_config(path), flatten(dict(overrides or {}), COMMAND_LINE)
    if extra.get("weights_from", raw.get("weights_from")):  # a composition of two configs: a layer above
        raise ValueError("weights_from composes two configs: load it with bench.pipeline.configure.load "
                         "(what every command uses)")
    check_keys(extra, COMMAND_LINE)
    sources = {**dict.fromkeys(raw, _label(path)), **dict.fromkeys(extra, COMMAND_LINE)}
    return build({**raw, **extra}, sources=sources)


def parse_overrides(args: Sequence[str], check: bool = True) -> dict[str, Any]:
    """``["limit=2", "magnet.n_points=0.5"]`` -> ``{"limit": 2, "magnet.n_points": 0.5}``.

    Keys are checked (:func:`check_keys`; ``check=False``: words that are not config keys, such
    as one method's options for ``bench check``) and values parsed as YAML here, so that a
    mistake on the command line is named as such.

    Raises:
        ValueError: a word that is not ``key=value``, or a value that is not YAML.
        KeyError: an unknown key.
    """
    out: dict[str, Any] = {}
    for arg in args:
        if "=" not in arg:
            raise ValueError(f"{COMMAND_LINE}: {arg!r} is not key=value (a value with spaces needs quotes: "
                             f"\"backbone_train={{iterations: 20, lr: 0.01}}\")")
        key, _, text = arg.partition("=")
        out[key.strip()] = _parse_value(key.strip(), text)
    if check:
        check_keys(flatten(out, COMMAND_LINE), COMMAND_LINE)
    return out


def method_config_values(cfg: BenchConfig, method: str) -> dict[str, Any]:
    """Option values for ``method``, lowest precedence first.

    A variant inherits the option values of the method it extends (:func:`option_parent`:
    ``magnet_fast`` those of ``magnet``): the parent's resolved values (its file, then the sweep's
    ``<parent>.*`` overrides) come first, so variants share geometry and training options, then
    ``configs/methods/<method>.yaml``, then the sweep's ``<method>.*`` overrides.

    Raises:
        ValueError: a method file holds ``inherits:`` or ``version:`` (no longer read: the
            inheritance is the classes', the version the class attribute's).
    """
    path = CONFIG_DIR / "methods" / f"{method}.yaml"
    own = read_yaml(path) if path.is_file() else {}
    for key, where in (("inherits", "a method inherits the options of the method its class and Config extend"),
                       ("version", "the version is the method class's `version` attribute")):
        if key in own:
            raise ValueError(f"{path}: '{key}:' is not read ({where}); remove the line")
    parent = option_parent(method)
    values = method_config_values(cfg, parent) if parent else {}
    values.update(own)
    values.update(cfg.method_options.get(method, {}))
    return values


def option_parent(method: str) -> str | None:
    """The registered method whose options ``method`` inherits, or None.

    That is the nearest base class of ``method``'s class that is a registered method and whose
    ``Config`` its own ``Config`` extends (``MagNetFast(MagNet)`` with
    ``MagNetFastConfig(MagNetConfig)``: ``magnet``). Declared once, by subclassing; a method that
    cannot be imported has none.
    """
    from bench.core.registry import MethodUnavailable, method_paths, resolve  # lazily: the registry imports methods

    try:
        cls = resolve(method)
    except (KeyError, MethodUnavailable):
        return None
    known = method_paths()
    for base in cls.__mro__[1:]:
        name = getattr(base, "name", "")
        config = getattr(base, "Config", None)
        if name and name != method and name in known and isinstance(config, type) \
                and issubclass(getattr(cls, "Config", object), config) and resolve(name) is base:
            return name
    return None


def stable_hash(obj: Any, length: int = 12) -> str:
    """Short sha256 of a JSON-serialisable object (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_digest(path: Path, length: int = 12) -> str | None:
    """Short sha256 of a file's bytes, or None if it does not exist."""
    if not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def config_from_mapping(config_cls: type, values: Mapping[str, Any]) -> Any:
    """Build a frozen config dataclass, rejecting unknown keys with the list of known ones.

    Lists in ``values`` become tuples where the field default is a tuple (configs are frozen).
    """
    known = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise KeyError(f"unknown option(s) {unknown} for {config_cls.__qualname__}; known: {sorted(known)}")
    fixed = {k: _freeze(v) for k, v in values.items()}
    return config_cls(**fixed)


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class BackboneTrainConfig:
    """Options (``backbone_train:`` mapping in a dataset config).

    Attributes:
        iterations: optimiser steps.
        batch_size: crops per step (per process under torchrun).
        optimizer: ``sgd`` (momentum 0.9, the released recipes) or ``adamw``.
        lr: initial learning rate, decayed as ``(1 - it / iterations) ** 0.9``.
        weight_decay: L2 / decoupled weight decay.
        scale_min: smallest image width as a fraction of the full width.
        scale_max: largest image width as a fraction of the full width.
        aux_weight: weight of the auxiliary head's loss when the model has one.
        class_weights: per-class CE weights, ``"auto"`` (ENet's ``1 / ln(1.02 + p_c)`` from the
            training labels' class frequencies p_c), or None.
        thin_crop_prob: probability that a crop is centred on a pixel of one of the dataset's
            thin classes (class-aware sampling, so rare thin objects are seen often enough).
        seed: sampling and initialisation seed.
    """

    iterations: int = 1500
    batch_size: int = 8
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 1e-4
    scale_min: float = 0.125
    scale_max: float = 1.0
    aux_weight: float = 0.4
    class_weights: tuple[float, ...] | str | None = None
    thin_crop_prob: float = 0.0
    seed: int = 0


def backbone_train_config(cfg: Any) -> BackboneTrainConfig:
    """The backbone's training options as ``cfg`` (a ``BenchConfig``) resolves them: ``backbone_train:``
    over the defaults, seeded with the run's ``seed`` unless ``backbone_train`` sets its own."""
    return config_from_mapping(BackboneTrainConfig, {"seed": cfg.seed, **dict(cfg.backbone_train)})


@dataclass(frozen=True)
class TrainRuntime:
    """How a training runs (``training:`` mapping in a dataset config; not what it learns: none of it is in a sidecar).

    Attributes:
        checkpoint_every_s: seconds between two resume states (0: after every step); a state is
            always written after the last step.
        workers: ``DataLoader`` worker processes that read and augment training samples where a
            loop supports it (0: in the training process, the path the reference weights were
            trained on; any value gives the same samples in the same order).
        resume: read the resume state an interrupted run left (False: start from step 0; states
            are still written).
    """

    checkpoint_every_s: float = 300.0
    workers: int = 0
    resume: bool = True

    def __post_init__(self) -> None:
        if not self.checkpoint_every_s >= 0:
            raise ValueError(f"checkpoint_every_s must be >= 0 seconds, got {self.checkpoint_every_s!r}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers!r}")


def train_runtime(cfg: Any) -> TrainRuntime:
    """The :class:`TrainRuntime` of ``cfg`` (a ``BenchConfig``): ``training:`` over the defaults."""
    return config_from_mapping(TrainRuntime, dict(cfg.training))
