"""Benchmark configuration: one frozen dataclass, flat YAML, dotted ``key=value`` overrides.

A dataset file ``configs/datasets/<name>.yaml`` holds the sweep for that dataset. Keys are the
fields of :class:`BenchConfig`, plus two dotted families:

- ``<method>.<option>: value`` sets an option of that method's ``Config`` dataclass (defaults come
  from the dataclass, then ``configs/methods/<method>.yaml``, then the dataset file, then the CLI);
- ``data.<kwarg>: value`` is passed to the dataset constructor (e.g. ``data.size``).

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
        split: evaluated split; ``train_split`` is used for training.
        methods: registry keys swept, in table order.
        input_size: backbone input size (w, h) of every method (the paper's n).
        coarse_scale: (w, h) the image is resized to before the input size in the coarse pass
            (DeepGlobe's 2448 -> 612 -> 508); None = straight to the input size.
        table1_methods: methods swept over ``table1_sizes`` for Table 1.
        table1_sizes: extra input sizes (w, h) for Table 1.
        backbone: backbone name for ``bench.models.backbones.create_backbone``.
        backbone_checkpoint: weights file; default ``<checkpoint_dir>/backbone.pt``.
        backbone_options: extra builder kwargs.
        backbone_train: training options for the backbone (see ``bench.training.backbone``).
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
        data: dataset constructor kwargs (``data.<key>``).
        train_data: extra constructor kwargs for the training split (``train_data.<key>``).
        method_options: per-method option overrides (``<method>.<key>``).
        paper: published values keyed ``"<method>@<WxH>"``.
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
    checkpoint_dir: str | None = None
    reference_dir: str | None = None
    method_checkpoint_dir: str | None = None
    released_weights: str | None = None
    weights_from: str | None = None
    out_dir: str | None = None
    tables_dir: str | None = None
    device: str = "cpu"
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
    for key in ("dataset", "split", "train_split", "device", "backbone"):
        if not isinstance(getattr(cfg, key), str):
            raise ValueError(f"{key} must be a string, got {getattr(cfg, key)!r}")


_FIELDS = {f.name: f for f in dataclasses.fields(BenchConfig)}
_SIZE_FIELDS = {"table1_sizes"}
_ONE_SIZE_FIELDS = {"input_size", "coarse_scale"}
_TUPLE_FIELDS = {"methods", "table1_methods", "excluded", "metric_columns", "ours", "table2_methods", "table3_methods"}


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


def _parse_value(text: str) -> Any:
    """CLI values are YAML scalars or flow sequences: ``3``, ``true``, ``[a, b]``, ``256x128``."""
    return yaml.safe_load(text) if text != "" else None


def merge(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Apply flat overrides (dotted keys allowed) on top of a flat mapping."""
    out = dict(raw)
    out.update(overrides)
    return out


def build(flat: Mapping[str, Any]) -> BenchConfig:
    """Turn a flat mapping (YAML file plus overrides) into a validated :class:`BenchConfig`.

    Raises:
        KeyError: an unknown key, with suggestions.
    """
    kwargs: dict[str, Any] = {}
    data: dict[str, Any] = {}
    train_data: dict[str, Any] = {}
    methods: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        if key.startswith("data."):
            data[key[5:]] = value
        elif key.startswith("train_data."):
            train_data[key[11:]] = value
        elif "." in key:
            method, _, option = key.partition(".")
            methods.setdefault(method, {})[option] = value
        elif key in _FIELDS:
            kwargs[key] = _coerce(key, value)
        else:
            close = difflib.get_close_matches(key, list(_FIELDS), n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise KeyError(f"unknown config key {key!r}{hint} (known: {sorted(_FIELDS)}, or data.<kw>, <method>.<option>)")
    kwargs["data"] = {**dict(kwargs.get("data", {})), **data}
    kwargs["train_data"] = {**dict(kwargs.get("train_data", {})), **train_data}
    merged = {m: dict(v) for m, v in dict(kwargs.get("method_options", {})).items()}
    for method, opts in methods.items():
        merged.setdefault(method, {}).update(opts)
    kwargs["method_options"] = merged
    return BenchConfig(**kwargs)


def read_yaml(path: Path) -> dict[str, Any]:
    """``yaml.safe_load`` a mapping; an empty file is ``{}``."""
    with open(path) as fh:
        loaded = yaml.safe_load(fh) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return loaded


def load(dataset: str = "synthetic", overrides: Mapping[str, Any] | None = None, config_file: str | Path | None = None) -> BenchConfig:
    """Load ``configs/datasets/<dataset>.yaml`` (or ``config_file``) and apply overrides."""
    path = Path(config_file) if config_file else CONFIG_DIR / "datasets" / f"{dataset}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONFIG_DIR / "datasets").glob("*.yaml"))
        close = difflib.get_close_matches(dataset, known, n=3, cutoff=0.5) if not config_file else []
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise FileNotFoundError(f"no config {path}{hint} dataset configs: {known}")
    raw, extra = read_yaml(path), dict(overrides or {})
    if extra.get("weights_from", raw.get("weights_from")):  # a composition of two configs: a layer above
        raise ValueError("weights_from composes two configs: load it with bench.pipeline.configure.load "
                         "(what every command uses)")
    return build(merge(raw, extra))


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """``["limit=2", "magnet.n_points=0.5"]`` -> ``{"limit": 2, "magnet.n_points": 0.5}``."""
    out: dict[str, Any] = {}
    for arg in args:
        if "=" not in arg:
            raise ValueError(f"override {arg!r} is not key=value")
        key, _, text = arg.partition("=")
        out[key.strip()] = _parse_value(text)
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
