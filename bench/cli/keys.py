"""``python -m bench keys [DATASET] [--markdown]``: every config key with its default and its meaning.

Nothing here is typed by hand: the keys are the fields of :class:`bench.core.config.BenchConfig`,
:class:`bench.core.config.BackboneTrainConfig` and each registered method's ``Config`` (through the
registry), their meanings the ``Attributes:`` sections of those dataclasses' docstrings (a base
class's entry serves a subclass), the dataset's and backbone's keyword arguments their signatures
and ``Args:`` sections. A field without an entry shows as ``(undocumented)``, so a gap is seen,
not hidden. With DATASET the values are that dataset's (its file, then the method files); without
one, the defaults (the dataclasses, then ``configs/methods/<method>.yaml``).

``--markdown`` renders the reference page ``docs/reference/configuration.md``
(``tests/test_config_keys.py`` checks that the committed page equals it). This module is imported
by every ``bench`` command (for ``run --help``): only :mod:`bench.core.config` at module level.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.core.config import BLOCKS, BackboneTrainConfig, BenchConfig, format_size

UNDOCUMENTED = "(undocumented)"
RENDER_COMMAND = "python -m bench keys --markdown > docs/reference/configuration.md"
# the keys `bench run --help` shows, most used first (their meanings are generated like the rest)
COMMON_KEYS = ("limit", "methods", "device", "threads", "train", "weights_from", "data_root", "input_size",
               "out_dir", "isolate", "bootstrap", "backbone_train.iterations", "data.<kwarg>", "<method>.<option>")
_SIZE_FIELDS = ("input_size", "coarse_scale")


@dataclass(frozen=True)
class Key:
    """One row: a key path (``backbone_train.iterations``), its value as YAML text, its meaning and its type
    (the annotation as written in the code; ``""`` where there is none)."""

    key: str
    value: str
    meaning: str
    type: str = ""


@dataclass(frozen=True)
class Section:
    """A group of keys: ``title`` (a heading), ``intro`` (one paragraph) and the rows."""

    title: str
    intro: str
    keys: tuple[Key, ...]


def doc_entries(doc: str | None, section: str = "Attributes") -> dict[str, str]:
    """The ``name: text`` entries of a Google-style docstring section, each joined into one line.

    Args:
        doc: a docstring (None: no entries).
        section: ``Attributes`` or ``Args``.

    Returns:
        ``{name: text}`` in docstring order; an entry's continuation lines (indented deeper) are
        joined with single spaces.
    """
    if not doc:
        return {}
    out: dict[str, str] = {}
    lines = inspect.cleandoc(doc).splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == f"{section}:")
    except StopIteration:
        return {}
    base = len(lines[start]) - len(lines[start].lstrip())
    entry_indent: int | None = None
    current: str | None = None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= base:  # the next section (Raises:, ...) or the end of the docstring
            break
        entry_indent = indent if entry_indent is None else entry_indent
        match = re.match(r"^\*{0,2}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", line.strip())
        if indent == entry_indent and match:
            current = match.group(1)
            out[current] = match.group(2).strip()
        elif current is not None:
            out[current] = f"{out[current]} {line.strip()}".strip()
    return out


def class_docs(cls: type, section: str = "Attributes") -> dict[str, str]:
    """:func:`doc_entries` over ``cls`` and its bases: a subclass's entry wins, a base's fills a gap."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        out.update(doc_entries(klass.__doc__, section))
    return out


def first_sentence(text: str) -> str:
    """Up to the first full stop that ends a sentence (one followed by a capital), for one terminal line."""
    return re.split(r"(?<=\.)\s+(?=[A-Z])", text, maxsplit=1)[0]


def terse(text: str, width: int = 90) -> str:
    """One short terminal line: the first sentence, cut at its first clause when longer than ``width``; plain backticks."""
    text = first_sentence(text).replace("``", "")
    depth = 0
    for i, char in enumerate(text if len(text) > width else ""):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ";:" and text[i + 1:i + 2] == " ":  # a clause outside any parenthesis
            return text[:i]
    return text


def show(value: Any, key: str = "") -> str:
    """A value as it is written in YAML (``null``, ``true``, ``[a, b]``, ``{k: v}``); sizes as ``WxH``."""
    if key in _SIZE_FIELDS and isinstance(value, (tuple, list)) and len(value) == 2:
        return format_size(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value and re.fullmatch(r"[\w./:@+-]+", value) else repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return repr(value) if isinstance(value, float) else str(value)


def _type(annotation: Any) -> str:
    """An annotation as written (``from __future__ import annotations`` keeps them as strings)."""
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def sweep_section(cfg: BenchConfig) -> Section:
    """Every field of :class:`BenchConfig` that is not a block, with ``cfg``'s value."""
    docs = class_docs(BenchConfig)
    rows = tuple(Key(f.name, show(getattr(cfg, f.name), f.name), docs.get(f.name, UNDOCUMENTED), _type(f.type))
                 for f in dataclasses.fields(BenchConfig) if f.name not in BLOCKS and f.name != "method_options")
    return Section("Sweep", "The fields of `BenchConfig` (`bench/core/config.py`).", rows)


def backbone_train_section(cfg: BenchConfig) -> Section:
    """The ``backbone_train.<key>`` rows: :class:`BackboneTrainConfig` as ``cfg`` resolves it (its seed included)."""
    from bench.core.config import backbone_train_config

    resolved = backbone_train_config(cfg)
    docs = class_docs(BackboneTrainConfig)
    rows = tuple(Key(f"backbone_train.{f.name}", show(getattr(resolved, f.name)), docs.get(f.name, UNDOCUMENTED),
                     _type(f.type)) for f in dataclasses.fields(BackboneTrainConfig))
    intro = class_docs(BenchConfig).get("backbone_train", UNDOCUMENTED)
    return Section("backbone_train", f"{intro} `BackboneTrainConfig` (`bench/core/config.py`); `seed` is the "
                                     "sweep's `seed` unless set here.", rows)


def training_section(cfg: BenchConfig) -> Section:
    """The ``training.<key>`` rows: :class:`TrainRuntime` as ``cfg`` resolves it."""
    from bench.core.config import TrainRuntime, train_runtime

    resolved = train_runtime(cfg)
    docs = class_docs(TrainRuntime)
    rows = tuple(Key(f"training.{f.name}", show(getattr(resolved, f.name)), docs.get(f.name, UNDOCUMENTED),
                     _type(f.type)) for f in dataclasses.fields(TrainRuntime))
    intro = class_docs(BenchConfig).get("training", UNDOCUMENTED)
    return Section("training", f"{intro} `TrainRuntime` (`bench/core/config.py`).", rows)


def _signature_rows(prefix: str, target: Any, values: Mapping[str, Any], skip: tuple[str, ...]) -> list[Key]:
    """``<prefix>.<kwarg>`` rows from a callable's keyword arguments, with ``values`` over their defaults."""
    func = getattr(target, "__init__") if isinstance(target, type) else target  # noqa: B009 - mypy: __init__ of a class
    docs = class_docs(target, "Args") if isinstance(target, type) else {}
    docs.update({k: v for k, v in doc_entries(func.__doc__, "Args").items() if k not in docs})
    rows = []
    for name, param in inspect.signature(func).parameters.items():
        if name in ("self", *skip) or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        value = values.get(name, None if param.default is param.empty else param.default)
        annotation = "" if param.annotation is param.empty else _type(param.annotation)
        rows.append(Key(f"{prefix}.{name}", show(value), docs.get(name, UNDOCUMENTED), annotation))
    rows += [Key(f"{prefix}.{k}", show(v), "(not an argument of the builder: refused when it is built)")
             for k, v in values.items() if all(r.key != f"{prefix}.{k}" for r in rows)]
    return rows


def kwargs_section(cfg: BenchConfig | None) -> Section:
    """``data.*``, ``train_data.*`` and ``backbone_options.*``: keyword arguments of the dataset and the backbone.

    Without a dataset, one row each (what they are); with one, a row per argument of its class and
    of its backbone's builder, with the dataset file's values.
    """
    docs = class_docs(BenchConfig)
    rows = [Key(f"{block}.<kwarg>", "{}", docs.get(block, UNDOCUMENTED)) for block in ("data", "train_data",
                                                                                     "backbone_options")]
    if cfg is not None:
        from bench.data import dataset_class
        from bench.models.backbones import BACKBONES

        rows = _signature_rows("data", dataset_class(cfg.dataset), cfg.data, ("root", "split"))
        train = [Key(f"train_data.{k}", show(v), f"the training split's data.{k}.") for k, v in cfg.train_data.items()]
        rows += train or [Key("train_data.<kwarg>", "{}", docs.get("train_data", UNDOCUMENTED))]
        if cfg.backbone in BACKBONES:
            rows += _signature_rows("backbone_options", BACKBONES.resolve(cfg.backbone), cfg.backbone_options,
                                    ("num_classes", "checkpoint"))
        else:
            rows.append(Key("backbone_options.<kwarg>", show(dict(cfg.backbone_options)),
                            docs.get("backbone_options", UNDOCUMENTED)))
    intro = ("Keyword arguments of the dataset's class and of the backbone's builder; an unknown one is refused when "
             "the dataset or backbone is built. `python -m bench keys DATASET` lists those of a dataset.")
    return Section("data, train_data, backbone_options", intro, tuple(rows))


def method_sections(cfg: BenchConfig, names: list[str]) -> list[Section]:
    """One section per method: its ``Config`` fields, with the values ``cfg`` gives them (``method_config_values``)."""
    from bench.core.config import method_config_values
    from bench.core.registry import MethodUnavailable, method_paths, resolve

    paths = method_paths()
    sections = []
    for name in names:
        try:
            cls = resolve(name)
        except MethodUnavailable as err:
            sections.append(Section(name, f"`{paths[name]}`: unavailable ({err}).", ()))
            continue
        config = getattr(cls, "Config", None)
        fields = dataclasses.fields(config) if dataclasses.is_dataclass(config) else ()
        values = {f.name: _field_default(f) for f in fields}
        values.update(method_config_values(cfg, name))
        docs = class_docs(config) if isinstance(config, type) else {}
        rows = tuple(Key(f"{name}.{f.name}", show(values[f.name]), docs.get(f.name, UNDOCUMENTED), _type(f.type))
                     for f in fields)
        intro = f"`{getattr(config, '__qualname__', '')}` (`{paths[name].partition(':')[0]}`)" if fields else "No options."
        sections.append(Section(name, intro, rows))
    return sections


def collect(cfg: BenchConfig | None = None, *, builtin_only: bool = False) -> list[Section]:
    """Every key: the sweep's, ``backbone_train``'s, the keyword-argument blocks and every registered method's.

    Args:
        cfg: a dataset's config (its values are shown), or None (the defaults).
        builtin_only: the built-in methods only (the reference page must not depend on installed plugins).
    """
    from bench.core.registry import METHODS

    base = cfg or BenchConfig()
    names = list(METHODS.builtins()) if builtin_only else list(METHODS.paths())
    return [sweep_section(base), backbone_train_section(base), training_section(base), kwargs_section(cfg),
            *method_sections(base, names)]


def render_text(sections: list[Section], dataset: str | None) -> str:
    """Aligned ``key  value  meaning`` lines, one section after another; each meaning cut short (:func:`terse`)."""
    what = f"the {dataset} config's values" if dataset else "defaults (python -m bench keys DATASET: a dataset's)"
    out = [f"every config key: {what}; set one with key=value (a block nested or dotted: backbone_train.lr=0.01)"]
    for section in sections:
        out.append("")
        out.append(f"{section.title}: {terse(section.intro)}")
        width = max((len(k.key) for k in section.keys), default=0)
        value_width = min(max((len(k.value) for k in section.keys), default=0), 24)
        for k in section.keys:
            out.append(f"  {k.key:<{width}}  {k.value:<{value_width}}  {terse(k.meaning)}".rstrip())
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(sections: list[Section]) -> str:
    """The reference page: how keys are written, then one table per section with the full meanings."""
    out = [
        "# Configuration reference",
        "",
        f"Rendered by `{RENDER_COMMAND}` from the config dataclasses and their docstrings",
        "(`tests/test_config_keys.py` fails when this page differs from the command's output): do not edit it by",
        "hand. The values are the code's defaults, then `configs/methods/<method>.yaml`; no machine is involved.",
        "`python -m bench keys DATASET` shows a dataset's values, and its dataset and backbone arguments.",
        "",
        "A key is set in a dataset file (`configs/datasets/<name>.yaml`, or `--config FILE`) or on the command line",
        "as `key=value`, the value in YAML (`limit=2`, `methods=[downsample,magnet]`, `input_size=256x128`). A block",
        "(`backbone_train`, `backbone_options`, `data`, `train_data`, and each method) is written nested or dotted,",
        "in a file and on the command line alike: `backbone_train: {iterations: 20}` and",
        "`backbone_train.iterations: 20` are the same key, as are `backbone_train.iterations=20` and",
        "`\"backbone_train={iterations: 20}\"` (quoted: the shell splits at the space). A later layer changes only",
        "the keys it names: method defaults < `configs/methods/<method>.yaml` < the dataset file < the command line.",
        "An unknown key is refused before anything runs, naming the file (or `command line`), the key path and close",
        "matches.",
    ]
    for section in sections:
        out += ["", f"## {section.title}", "", section.intro]
        if section.keys:
            out += ["", "| key | type | default | meaning |", "|---|---|---|---|"]
            out += [f"| `{k.key}` | {f'`{_cell(k.type)}`' if k.type else ''} | `{_cell(k.value)}` | {_cell(k.meaning)} |"
                    for k in section.keys]
    return "\n".join(out) + "\n"


def run_epilog() -> str:
    """``bench run --help``'s list of the most used keys, their meanings from the dataclasses' docstrings."""
    docs = {**class_docs(BenchConfig), "data.<kwarg>": class_docs(BenchConfig)["data"],
            "<method>.<option>": class_docs(BenchConfig)["method_options"],
            "backbone_train.iterations": class_docs(BackboneTrainConfig)["iterations"]}
    width = max(len(k) for k in COMMON_KEYS)
    lines = [f"  {k:<{width}}  {terse(docs.get(k, UNDOCUMENTED))}" for k in COMMON_KEYS]
    return ("most used keys (key=value, the value in YAML; a block nested or dotted: backbone_train.iterations=20, "
            "magnet.n_points=0.5);\npython -m bench keys [DATASET] lists every key with its default and meaning:\n"
            + "\n".join(lines))


def run(args: argparse.Namespace) -> int:
    from bench.cli.common import load_config

    cfg = load_config(args.dataset, [], args.config) if args.dataset or args.config else None
    if args.markdown:
        if cfg is not None:
            from bench.core.errors import UserError

            raise UserError("keys --markdown renders the defaults (the reference page): give no DATASET")
        print(render_markdown(collect(None, builtin_only=True)), end="")
    else:
        print(render_text(collect(cfg), cfg.dataset if cfg else None), end="")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("keys", help="every config key with its default (or DATASET's value) and meaning")
    p.add_argument("dataset", nargs="?", default=None, help="show this dataset config's values")
    p.add_argument("--config", default=None, help="a config file instead of configs/datasets/<dataset>.yaml")
    p.add_argument("--markdown", action="store_true", help="render the reference page (docs/reference/configuration.md)")
    p.set_defaults(fn=run)
