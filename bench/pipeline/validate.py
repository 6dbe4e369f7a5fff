"""Checks of a sweep's config before anything runs: names, options, device and data folder.

``bench run`` calls :func:`check_run` before any training, subprocess or file write, so that a
typo costs a second, not a sweep. Each check raises :class:`bench.core.errors.UserError` with one line
naming the key (or file) and what is allowed, with did-you-mean suggestions. The scalar fields
(``limit`` >= 1, ``threads`` >= 1, ``absent``, ...) are already checked when the config is built
(``bench.core.config.check_scalars``).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch-free at run time: these checks must not import torch
    from bench.core.interface import Method

from bench.core.config import BenchConfig
from bench.core.errors import UserError, one_line


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def check_dataset(cfg: BenchConfig) -> None:
    """The dataset name is registered."""
    from bench.data import DATASETS

    if cfg.dataset not in DATASETS:
        raise UserError(f"dataset: unknown dataset {cfg.dataset!r}{_suggest(cfg.dataset, DATASETS)} "
                        f"known: {sorted(DATASETS)}")


def check_methods(cfg: BenchConfig) -> None:
    """Every swept method (``methods``, ``table1_methods``) is registered."""
    from bench.core.registry import method_paths

    known = method_paths()
    for key in ("methods", "table1_methods"):
        for name in getattr(cfg, key):
            if name not in known:
                raise UserError(f"{key}: unknown method {name!r}{_suggest(name, known)} known: {sorted(known)}")


def _method_class(name: str) -> type[Method] | None:
    """The registered class, or None when its optional dependency is missing (recorded as unavailable)."""
    from bench.core.registry import MethodUnavailable, resolve

    try:
        return resolve(name)
    except MethodUnavailable:
        return None


OPTION_CACHE = Path("results/.cache/method_options.json")  # relative to the repository root


def _source_stamp(target: str) -> str | None:
    """Digest of (path, mtime, size) of every source file of the package that defines ``target``, or None.

    Read without importing the package: it says whether cached option names are still those of
    the code on disk.
    """
    import hashlib
    import importlib.util

    top = target.partition(":")[0].split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] or ([Path(spec.origin)] if spec.origin else [])
    files = sorted(f for r in roots for f in ([r] if r.is_file() else r.rglob("*.py")))
    digest = hashlib.sha256()
    for f in files:
        st = f.stat()
        digest.update(f"{f}:{st.st_mtime_ns}:{st.st_size};".encode())
    return digest.hexdigest()[:16]


def _option_cache_path() -> Path:
    """``results/.cache/method_options.json``, or ``$MAGNET_BENCH_CACHE/method_options.json`` (tests)."""
    import os

    from bench.core.config import REPO_DIR

    folder = os.environ.get("MAGNET_BENCH_CACHE")
    return Path(folder) / OPTION_CACHE.name if folder else REPO_DIR / OPTION_CACHE


def cached_fields(target: str) -> set[str] | None:
    """The Config field names of ``target`` ("module:Class") from the cache, if its sources are unchanged."""
    import json

    try:
        entry = json.loads(_option_cache_path().read_text()).get(target)
    except (OSError, ValueError):
        return None
    stamp = _source_stamp(target)
    if not entry or stamp is None or entry.get("stamp") != stamp:  # no sources found: nothing to trust
        return None
    return set(entry["fields"])


def store_fields(target: str, fields: set[str]) -> None:
    """Remember a class's Config field names for the next run (best effort: a failure costs only time)."""
    import json
    import os

    path = _option_cache_path()
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
        data[target] = {"stamp": _source_stamp(target), "fields": sorted(fields)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass


def _written_in(cfg: BenchConfig, key: str) -> str:
    """``"<file>: "`` or ``"command line: "`` where ``key`` was written (``bench.core.config.key_source``), else ``""``."""
    from bench.core.config import key_source

    source = key_source(cfg, key)
    return f"{source}: " if source else ""


def _unknown_option(cfg: BenchConfig, method: str, option: str, fields: set[str]) -> UserError:
    return UserError(f"{_written_in(cfg, f'{method}.{option}')}{method}.{option}: unknown option of {method}"
                     f"{_suggest(option, fields)} known: {sorted(fields)}")


def check_method_options(cfg: BenchConfig) -> None:
    """Every ``<method>.<option>`` key names a registered method and a field of its Config.

    Option names are first checked against the names cached by an earlier run
    (``results/.cache/method_options.json``, valid while the defining package's files are
    unchanged), so a misspelt option costs no torch import; on a cache miss the class is imported.

    The swept methods' Configs are also built from every source (dataclass defaults, method
    file, overrides), which catches a bad value that the Config itself rejects.
    """
    from bench.core.registry import method_paths

    known = method_paths()
    for method, options in cfg.method_options.items():  # names first: they need no import
        if method not in known:
            keys = ", ".join(f"{method}.{o}" for o in options)
            where = _written_in(cfg, f"{method}.{next(iter(options), '')}")
            raise UserError(f"{where}{keys}: unknown method {method!r}{_suggest(method, known)} (a <method>.<option> key "
                            f"needs a registered method; known: {sorted(known)})")
    for method, options in cfg.method_options.items():  # option names from the cache: no import
        cached = cached_fields(known[method])
        for option in options if cached is not None else ():
            if cached is not None and option not in cached:
                raise _unknown_option(cfg, method, option, cached)
    for method, options in cfg.method_options.items():
        cls = _method_class(method)
        if cls is None:
            continue
        fields = {f.name for f in dataclasses.fields(cls.Config)}
        store_fields(known[method], fields)
        for option in options:
            if option not in fields:
                raise _unknown_option(cfg, method, option, fields)
    for name in dict.fromkeys((*cfg.methods, *cfg.table1_methods)):
        _check_method_config(cfg, name)


def _check_method_config(cfg: BenchConfig, name: str) -> None:
    from bench.pipeline.unit import method_config

    from bench.core.registry import method_paths

    cls = _method_class(name)
    if cls is None:
        return
    store_fields(method_paths()[name], {f.name for f in dataclasses.fields(cls.Config)})
    try:
        method_config(cfg, cls, name)
    except (KeyError, ValueError, TypeError) as err:
        text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        raise UserError(f"{name} options: {one_line(text)}") from err


_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def _torch_cuda_build() -> str | None:
    """The CUDA version torch was built with (None: a CPU-only build), read without importing torch."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        raise UserError("torch is not installed in this environment: run `make install`")
    version = Path(spec.origin).with_name("version.py")
    found = re.search(r"^cuda\s*(?::[^=]*)?=\s*(.+)$", version.read_text(), re.M) if version.is_file() else None
    value = found.group(1).strip() if found else "unknown"
    return None if value == "None" else value.strip("'\"")


def check_device(device: str) -> None:
    """``cpu``, or ``cuda[:i]`` with that GPU visible to this torch build.

    ``cpu`` and a CPU-only torch build are decided without importing torch (seconds), so that
    these mistakes cost no more than a typo.
    """
    match = _DEVICE.match(str(device))
    if not match:
        raise UserError(f"device: {device!r} is not a device; use cpu or cuda[:i]")
    if match.group(1) == "cpu":
        return
    if _torch_cuda_build() is None:
        raise UserError(f"device: {device!r} but this torch is a CPU-only build (no CUDA); use device=cpu")
    import torch

    if not torch.cuda.is_available():
        raise UserError(f"device: {device!r} but no CUDA GPU is available (torch {torch.__version__}, CUDA "
                        f"{torch.version.cuda} build); use device=cpu")
    index = int(match.group(2)) if match.group(2) else None
    if index is not None and index >= torch.cuda.device_count():
        raise UserError(f"device: {device!r} but only {torch.cuda.device_count()} GPU(s) are visible")


def check_data(cfg: BenchConfig, split: str | None = None) -> Any:
    """Open the evaluated split (a directory walk or list-file parse, nothing decoded).

    Returns:
        The dataset, so a caller need not open it twice.
    """
    from bench.data import dataset_class
    from bench.data.base import DataFormatError
    from bench.data.splits import open_split

    split = split or cfg.split
    if cfg.data_root and getattr(dataset_class(cfg.dataset), "generated", False):
        raise UserError(f"data_root: {cfg.dataset!r} is generated and reads no files, but data_root={cfg.data_root} "
                        f"was given; name the dataset whose files these are (e.g. cityscapes, folder)")
    try:
        return open_split(cfg, split)
    except (FileNotFoundError, DataFormatError) as err:
        raise UserError(f"data_root: {one_line(str(err))}") from err
    except (TypeError, ValueError) as err:  # an unknown data.<kwarg>, a bad split name or value
        raise UserError(f"data ({split} split): {one_line(str(err))}") from err


def check_sources(cfg: BenchConfig, dataset: Any) -> None:
    """``coarse_sources`` names only sources the opened split gives (or ``backbone``), and
    ``track: refinement`` runs on a binary dataset (classes background and object).

    Raises:
        UserError: one line naming the key, the unknown source and the sources the dataset has.
    """
    from bench.core.config import BACKBONE_SOURCE

    given = tuple(getattr(dataset, "coarse_sources", ()) or ())
    known = [*given, *([BACKBONE_SOURCE] if BACKBONE_SOURCE not in given else [])]
    for source in cfg.coarse_sources or ():
        if source not in known:
            has = f"the sources {list(given)} and backbone" if given else "no coarse sources of its own, only backbone"
            raise UserError(f"coarse_sources: unknown source {source!r}{_suggest(source, known)}; dataset "
                            f"{cfg.dataset!r} gives {has}")
    if cfg.track == "refinement" and dataset.info.num_classes != 2:
        raise UserError(f"track: refinement scores one object per image, but dataset {cfg.dataset!r} has "
                        f"{dataset.info.num_classes} classes; use track: semantic, or a binary dataset (big, ...)")


def scan_split(dataset: Any, limit: int | None = None) -> tuple[int, list[tuple[str, str]]]:
    """Decode every image and label of ``dataset`` (its first ``limit``).

    Returns:
        (images scanned, ``[(image id, reason), ...]`` of every one that cannot be evaluated).
    """
    from bench.pipeline.unit import load_sample as _load_sample

    ids = dataset.ids()
    n = len(ids) if limit is None else min(limit, len(ids))
    bad = []
    for index in range(n):
        sample, reason = _load_sample(dataset, index)
        if sample is None:
            bad.append((ids[index], reason or "unreadable"))
    return n, bad


def bad_files_error(split: str, n: int, bad: list[tuple[str, str]], shown: int = 5) -> UserError:
    """One line naming the first bad files of a scan and how many there are."""
    items = "; ".join(f"{i}: {one_line(r)}" for i, r in bad[:shown])
    more = f"; and {len(bad) - shown} more" if len(bad) > shown else ""
    return UserError(f"data ({split} split): {len(bad)} of {n} image(s) cannot be evaluated: {items}{more} "
                     f"(python -m bench check-data lists them all)")


def check_weight_files(cfg: BenchConfig) -> None:
    """A weights file the user names (``backbone_checkpoint``) exists and holds no pickled class.

    Read without torch (``bench.models.pickle_scan``): a full-model pickle is refused in a second, not
    after torch has been imported and the training check has run.
    """
    from bench.models.pickle_scan import foreign_globals, not_a_checkpoint

    if not cfg.backbone_checkpoint:
        return
    path = Path(cfg.backbone_checkpoint)
    if not path.is_file():
        raise UserError(f"backbone_checkpoint: no file at {path}")
    why = not_a_checkpoint(path)
    if why is not None:
        raise UserError(f"backbone_checkpoint: {path} is not a checkpoint: it {why}, while torch.save writes a zip "
                        f"archive (or a legacy pickle); give the backbone's .pt/.pth file")
    foreign = foreign_globals(path)
    if foreign:
        raise UserError(f"{path}: refused by torch.load(weights_only=True); save a plain state dict "
                        f"(model.state_dict()) instead (it pickles {', '.join(foreign[:3])})")


def _writable_folder(key: str, folder: Path) -> None:
    """``folder`` exists as a writable folder, or can be created: its first existing ancestor is one."""
    import os

    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():  # a dangling link: mkdir would fail on it
            raise UserError(f"{key}: {folder} cannot be created: {probe} is a broken symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{key}: {folder} cannot be created: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        verb = "written" if probe == folder.absolute() else "created"
        raise UserError(f"{key}: {folder} cannot be {verb}: no write permission on {probe}")
    if str(probe).startswith(("/proc/", "/sys/")) or str(probe) in ("/proc", "/sys"):
        raise UserError(f"{key}: {folder} cannot be created: {probe} is a kernel file system, not a place for files")


def check_out_dir(cfg: BenchConfig) -> None:
    """``out_dir`` and the tables' folder can be created and written, checked without creating either.

    A failure the check cannot foresee (a full disk, a read-only mount seen as writable by root)
    is still one line: ``bench.runtime.procs.out_dir_lock`` reports the folder it cannot make.
    """
    _writable_folder("out_dir", cfg.out_path)
    _writable_folder("tables_dir" if cfg.tables_dir else "out_dir (its tables/)", cfg.tables_path)


def check_run(cfg: BenchConfig, *, data: bool = True) -> None:
    """Every check of a sweep, cheapest first; raises :class:`UserError` on the first failure.

    With ``data_check: full`` every image of the sweep is decoded too (seconds per hundred
    frames), so that a bad file stops the run before any unit starts.
    """
    check_dataset(cfg)
    check_methods(cfg)
    check_device(cfg.device)
    check_weight_files(cfg)
    dataset = check_data(cfg) if data else None  # a directory walk: before the options, which import methods
    if dataset is not None:
        check_sources(cfg, dataset)
    check_method_options(cfg)
    if dataset is not None and cfg.data_check == "full":
        n, bad = scan_split(dataset, cfg.limit)
        if bad:
            raise bad_files_error(cfg.split, n, bad)
