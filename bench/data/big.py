"""Readers of CascadePSP's BIG protocol: an object's image, its ground truth and its coarse masks from files.

BIG (CascadePSP, CVPR 2020) is 150 very-high-resolution images with one object each, released
with coarse masks of several segmenters ("coarse sources": FCN-8s, DeepLabV3+, RefineNet, PSPNet)
that every refiner since (CRM, SegRefiner) starts from. Two layouts are read:

CascadePSP's (``layout="cascadepsp"``): one flat folder per coarse source, three files per object::

    <root>/<source>/<stem>_im.jpg    RGB image (``_im.png`` for relabelled PASCAL)
    <root>/<source>/<stem>_gt.png    ground truth, 8-bit grey (0/255)
    <root>/<source>/<stem>_seg.png   that source's coarse mask, 8-bit grey, same size

or ``<root>`` itself is one such folder (one source, named by ``source=`` or the folder's name).
The copies of ``_im``/``_gt`` in the source folders must agree (checked when an item is read).

SegRefiner's (``layout="segrefiner"``): the ground truth in one folder, each source in its own::

    <root>/<gt_dir>/<stem>_im.jpg, <stem>_gt.png        (gt_dir: ``test``)
    <root>/<coarse_dir>/<source>/<stem>_seg.png         (coarse_dir: ``coarse``; ``_im.jpg`` too)

Items are the stems of the ``*_gt.png`` files, sorted. Grey values are kept as stored (0..255):
the threshold (``> 128`` or ``>= 128``) is the scorer's named rule, not the reader's.

Refined masks (a method's output) are found by a file-name pattern: :data:`REFINED_PATTERNS`.

The dataset ``big`` (:class:`Big`, registered in :data:`bench.data.DATASETS`) feeds these folders to
``bench run``: each item becomes a ``Sample`` whose label and coarse maps are the binarised masks
(0/1 uint8, by the named rule ``threshold``: ``gt128`` = ``> 128``, CascadePSP and CRM; ``ge128`` =
``>= 128``, SegRefiner), one coarse map per source (``Sample.coarse``), so a sweep refines each
source's masks through the same ``refine(image, coarse)`` (``coarse_sources``, ``track:
refinement``; docs/refinement-track.md). ``bench big-score`` scores folders of refined masks
written by other code with the same readers.

Errors: a missing folder or file raises :class:`FileNotFoundError`, bad content
:class:`~bench.data.base.DataFormatError`; each message is one line naming the file (and the stem)
and what was expected.
"""

from __future__ import annotations

import filecmp
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.core.data_types import DatasetInfo, Sample
from bench.data.base import DataFormatError, as_grey, read_image, read_raw

LAYOUTS = ("cascadepsp", "segrefiner")
GT_SUFFIX = "_gt.png"
SEG_SUFFIX = "_seg.png"
IMAGE_SUFFIXES = ("_im.jpg", "_im.png")  # BIG, relabelled PASCAL
# a method's refined mask per stem, as each reference writes it (CRM: the last, full-scale turn)
REFINED_PATTERNS = {"cascadepsp": "{stem}_mask.png", "segrefiner": "{stem}_refine.png", "crm": "1.0_{stem}_mask.png"}

LAYOUT_TEXT = ("CascadePSP: <root>/<source>/<stem>_im.jpg, <stem>_gt.png, <stem>_seg.png (or <root> itself one "
               "such folder); SegRefiner: <root>/test/<stem>_im.jpg, <stem>_gt.png and <root>/coarse/<source>/"
               "<stem>_seg.png")


@dataclass(frozen=True)
class BigEntry:
    """The files of one object.

    Attributes:
        id: the stem (file name without ``_gt.png``).
        image: the RGB image file.
        gt: the ground-truth file.
        coarse: source name -> that source's coarse mask file.
        gt_copies: other copies of the ground truth (CascadePSP's per-source folders), checked equal.
    """

    id: str
    image: Path
    gt: Path
    coarse: Mapping[str, Path]
    gt_copies: tuple[Path, ...] = ()


@dataclass(frozen=True)
class BinaryItem:
    """One decoded object.

    Attributes:
        id: the stem.
        image: (H, W, 3) uint8 RGB.
        gt: (H, W) uint8 grey as stored (0/255 expected).
        coarse: source name -> (H, W) uint8 grey coarse mask as stored.
    """

    id: str
    image: np.ndarray
    gt: np.ndarray
    coarse: Mapping[str, np.ndarray]


def _stems(folder: Path) -> list[str]:
    return sorted(p.name[: -len(GT_SUFFIX)] for p in folder.glob(f"*{GT_SUFFIX}") if p.is_file())


def _image_file(stem: str, folders: Sequence[Path]) -> Path | None:
    for folder in folders:
        for suffix in IMAGE_SUFFIXES:
            path = folder / f"{stem}{suffix}"
            if path.is_file():
                return path
    return None


def _missing(what: str, missing: Sequence[tuple[str, Path]]) -> FileNotFoundError:
    first = "; ".join(f"{path} (stem {stem!r})" for stem, path in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    return FileNotFoundError(f"{what}: {len(missing)} file(s) missing: {first}{more}")


def read_grey(path: Path) -> np.ndarray:
    """An 8-bit grey mask file (grey, or colour with equal channels) as (H, W) uint8.

    Raises:
        DataFormatError: unreadable, not 8 bit, or colour with differing channels (naming the file).
    """
    return as_grey(read_raw(path), path)


def detect_layout(root: Path, gt_dir: str = "test", coarse_dir: str = "coarse") -> str:
    """``"cascadepsp"`` or ``"segrefiner"``, from what ``root`` holds.

    Raises:
        FileNotFoundError: ``root`` is missing or holds neither layout (the message shows both).
    """
    if not root.is_dir():
        raise FileNotFoundError(f"BIG folder {root} does not exist (expected {LAYOUT_TEXT})")
    if (root / gt_dir).is_dir() and (root / coarse_dir).is_dir():
        return "segrefiner"
    if _stems(root) or any(any(d.glob(f"*{SEG_SUFFIX}")) for d in root.iterdir() if d.is_dir()):
        return "cascadepsp"
    raise FileNotFoundError(f"BIG folder {root} holds no *{GT_SUFFIX} and no source folders (expected {LAYOUT_TEXT})")


class BigFolder:
    """A BIG-style folder: objects with an image, a ground truth and one coarse mask per source.

    Nothing is decoded at construction (a directory walk that checks every file exists); each
    accessor decodes one file.

    Args:
        root: the folder.
        layout: ``"auto"`` (detected, :func:`detect_layout`), ``"cascadepsp"`` or ``"segrefiner"``.
        source: the source name of a single flat CascadePSP folder (default: the folder's name).
        gt_dir: SegRefiner layout: the ground-truth folder under ``root``.
        coarse_dir: SegRefiner layout: the folder of the source folders under ``root``.
        sources: read only these sources (default: every one found), in this order.

    Attributes:
        root, layout: as resolved.
        sources: the source names, in table order (sorted unless given).
        entries: one :class:`BigEntry` per stem, sorted by stem.
        source_dirs: source name -> its folder.

    Raises:
        FileNotFoundError: a missing folder, an unknown source or a file missing for some stem.
        ValueError: an unknown layout.
    """

    info = DatasetInfo(name="big", class_names=("background", "object"), ignore_index=None,
                       palette=((0, 0, 0), (255, 255, 255)))

    def __init__(self, root: str | Path, layout: str = "auto", source: str | None = None, gt_dir: str = "test",
                 coarse_dir: str = "coarse", sources: Sequence[str] | None = None) -> None:
        self.root = Path(root).expanduser()
        if layout not in ("auto", *LAYOUTS):
            raise ValueError(f"BIG layout must be one of {['auto', *LAYOUTS]}, got {layout!r}")
        self.layout = detect_layout(self.root, gt_dir, coarse_dir) if layout == "auto" else layout
        if not self.root.is_dir():
            raise FileNotFoundError(f"BIG folder {self.root} does not exist (expected {LAYOUT_TEXT})")
        if self.layout == "segrefiner":
            gt_folder = self.root / gt_dir
            parent = self.root / coarse_dir
            for folder in (gt_folder, parent):
                if not folder.is_dir():
                    raise FileNotFoundError(f"BIG folder {self.root}: {folder} does not exist (expected {LAYOUT_TEXT})")
            found = {d.name: d for d in sorted(parent.iterdir()) if d.is_dir()}
            self.source_dirs = self._pick(found, sources, f"{parent}/<source>/")
            gt_folders = [gt_folder]
        elif _stems(self.root):  # one flat CascadePSP folder: a single source
            name = source or self.root.name
            if sources is not None and list(sources) != [name]:
                raise FileNotFoundError(f"BIG folder {self.root} is one flat source folder ({name!r}), "
                                        f"not the sources {list(sources)}")
            self.source_dirs = {name: self.root}
            gt_folders = [self.root]
        else:
            found = {d.name: d for d in sorted(self.root.iterdir()) if d.is_dir() and _stems(d)}
            self.source_dirs = self._pick(found, sources, f"{self.root}/<source>/ with *{GT_SUFFIX}")
            gt_folders = list(self.source_dirs.values())
        self.sources = list(self.source_dirs)
        self.entries = self._entries(gt_folders)

    def _pick(self, found: dict[str, Path], sources: Sequence[str] | None, where: str) -> dict[str, Path]:
        if not found:
            raise FileNotFoundError(f"BIG folder {self.root}: no source folders ({where}; expected {LAYOUT_TEXT})")
        if sources is None:
            return found
        unknown = [s for s in sources if s not in found]
        if unknown:
            raise FileNotFoundError(f"BIG folder {self.root}: no source folder {unknown} (found: {sorted(found)})")
        return {s: found[s] for s in sources}

    def _entries(self, gt_folders: list[Path]) -> list[BigEntry]:
        # the stems: every *_gt.png of the ground-truth folder(s), as eval_post.py lists its folder
        holders: dict[str, list[Path]] = {}
        for folder in gt_folders:
            for stem in _stems(folder):
                holders.setdefault(stem, []).append(folder / f"{stem}{GT_SUFFIX}")
        if not holders:
            raise FileNotFoundError(f"BIG folder {self.root}: no *{GT_SUFFIX} files in {gt_folders[0]} "
                                    f"(expected {LAYOUT_TEXT})")
        missing: list[tuple[str, Path]] = []
        entries = []
        for stem in sorted(holders):
            coarse = {s: d / f"{stem}{SEG_SUFFIX}" for s, d in self.source_dirs.items()}
            missing += [(stem, p) for p in coarse.values() if not p.is_file()]
            image = _image_file(stem, [*gt_folders, *self.source_dirs.values()])
            if image is None:
                missing.append((stem, gt_folders[0] / f"{stem}{IMAGE_SUFFIXES[0]}"))
                image = gt_folders[0] / f"{stem}{IMAGE_SUFFIXES[0]}"
            gts = holders[stem]
            entries.append(BigEntry(stem, image, gts[0], coarse, tuple(gts[1:])))
        if missing:
            raise _missing(f"BIG folder {self.root} ({self.layout} layout)", missing)
        return entries

    def __len__(self) -> int:
        return len(self.entries)

    def ids(self) -> list[str]:
        """The stems, in index order."""
        return [e.id for e in self.entries]

    def gt(self, index: int) -> np.ndarray:
        """The ground truth of item ``index``: (H, W) uint8 grey as stored.

        Raises:
            DataFormatError: unreadable, or a per-source copy that differs from the first (both named).
        """
        entry = self.entries[index]
        gt = read_grey(entry.gt)
        for copy in entry.gt_copies:
            if not filecmp.cmp(entry.gt, copy, shallow=False) and not np.array_equal(gt, read_grey(copy)):
                raise DataFormatError(f"BIG stem {entry.id!r}: ground truth {copy} differs from {entry.gt} "
                                      "(every source folder must hold the same ground truth)")
        return gt

    def coarse(self, index: int, source: str) -> np.ndarray:
        """The coarse mask of ``source`` for item ``index``: (H, W) uint8 grey as stored."""
        return read_grey(self.entries[index].coarse[source])

    def image(self, index: int) -> np.ndarray:
        """The image of item ``index``: (H, W, 3) uint8 RGB."""
        return read_image(self.entries[index].image)

    def __getitem__(self, index: int) -> BinaryItem:
        """Decode item ``index`` whole (image, ground truth, every source's coarse mask).

        Raises:
            DataFormatError: unreadable files, or an image, ground truth and coarse mask of different
                sizes (both files named).
        """
        entry = self.entries[index]
        gt = self.gt(index)
        image = self.image(index)
        check_size(gt, image.shape[:2], entry.gt, entry.image)
        coarse = {}
        for source, path in entry.coarse.items():
            coarse[source] = read_grey(path)
            check_size(gt, coarse[source].shape, entry.gt, path)
        return BinaryItem(entry.id, image, gt, coarse)

    def __repr__(self) -> str:
        return f"BigFolder(root={str(self.root)!r}, layout={self.layout!r}, sources={self.sources}, n={len(self)})"


def check_size(gt: np.ndarray, shape: tuple[int, ...], gt_path: Path, other: Path) -> None:
    """Raise :class:`DataFormatError` unless ``shape`` is the ground truth's (H, W)."""
    if tuple(shape[:2]) != gt.shape[:2]:
        raise DataFormatError(f"size mismatch: {other} is {shape[1]}x{shape[0]} (w x h) but its ground truth "
                              f"{gt_path} is {gt.shape[1]}x{gt.shape[0]}")


def refined_dir(method_dir: str | Path, source: str, single: bool) -> Path:
    """The folder of a method's refined masks for ``source``: ``<method_dir>/<source>``, or
    ``<method_dir>`` itself when the BIG folder has one source (``single``) and no such sub-folder.

    Raises:
        FileNotFoundError: neither exists.
    """
    base = Path(method_dir).expanduser()
    if (base / source).is_dir():
        return base / source
    if single and base.is_dir():
        return base
    if not base.is_dir():
        raise FileNotFoundError(f"refined folder {base} does not exist")
    raise FileNotFoundError(f"refined folder {base} has no sub-folder {source!r} (one per coarse source)")


def refined_files(folder: Path, stems: Sequence[str], pattern: str | None = None) -> dict[str, Path]:
    """Each stem's refined mask in ``folder``.

    Args:
        folder: the method's output for one source.
        stems: the BIG stems.
        pattern: the file name with ``{stem}``, a key of :data:`REFINED_PATTERNS`, or None: the one
            pattern of :data:`REFINED_PATTERNS` whose file exists for the first stem.

    Raises:
        FileNotFoundError: no pattern matches, or a stem's file is missing (counted, first named).
        ValueError: a pattern without ``{stem}``, or several known patterns match (name one).
    """
    if pattern is None:
        hits = [k for k, p in REFINED_PATTERNS.items() if (folder / p.format(stem=stems[0])).is_file()]
        if not hits:
            tried = ", ".join(p.format(stem=stems[0]) for p in REFINED_PATTERNS.values())
            raise FileNotFoundError(f"refined folder {folder}: none of {tried} exists (--pattern names another)")
        if len(hits) > 1:
            raise ValueError(f"refined folder {folder}: several refined masks per stem ({hits}); name one with --pattern")
        pattern = REFINED_PATTERNS[hits[0]]
    pattern = REFINED_PATTERNS.get(pattern, pattern)
    if "{stem}" not in pattern:
        raise ValueError(f"refined file pattern {pattern!r} must contain {{stem}}")
    files = {stem: folder / pattern.format(stem=stem) for stem in stems}
    missing = [(s, p) for s, p in files.items() if not p.is_file()]
    if missing:
        raise _missing(f"refined folder {folder} (one {pattern} per {GT_SUFFIX} of the BIG folder)", missing)
    return files


THRESHOLD_RULES = {"gt128": "> 128 (CascadePSP, CRM)", "ge128": ">= 128 (SegRefiner)"}  # as bench.evaluation.big_score


def binarise(grey: np.ndarray, threshold: str) -> np.ndarray:
    """An 8-bit grey mask as (H, W) uint8 0/1 by the named rule (``gt128``: ``> 128``; ``ge128``: ``>= 128``)."""
    if threshold == "gt128":
        return (np.asarray(grey) > 128).astype(np.uint8)
    if threshold == "ge128":
        return (np.asarray(grey) >= 128).astype(np.uint8)
    raise ValueError(f"data.threshold must be one of {list(THRESHOLD_RULES)}, got {threshold!r}")


class Big:
    """A BIG-style folder as a dataset of the sweep (``dataset: big``; options ``data.<kwarg>``).

    Each item is ``Sample(id=stem, image (H, W, 3) uint8 RGB, label (H, W) uint8 0/1, coarse={source:
    (H, W) uint8 0/1})``: the ground truth and every source's coarse mask binarised by one rule,
    so that the sweep, its methods and its scores see the masks the reference scorer sees. The
    folder is the evaluated set whatever ``split`` is named (BIG has no splits here); the
    training split is refused, so nothing is ever trained on it.

    Args:
        root: the BIG folder (``data_root=``; not part of the unit key, so a moved folder is the same data).
        split: any name but ``train`` (the folder is one evaluation set).
        layout: ``auto``, ``cascadepsp`` or ``segrefiner`` (:func:`detect_layout`).
        threshold: ``gt128`` (``> 128``, CascadePSP's ``eval_post.py`` and CRM's) or ``ge128``
            (``>= 128``, SegRefiner's ``eval_miou.py``), applied to ground truth and coarse masks.
        source: the source name of a single flat CascadePSP folder (default: the folder's name).
        gt_dir, coarse_dir: SegRefiner layout's folders under ``root``.
        sources: read only these sources (default: every one found).

    Attributes:
        coarse_sources: the source names the folder gives, in table order.
        image_size: None (BIG's images vary, 2048x1600 to 5000x3600).
    """

    info = BigFolder.info
    image_size = None

    def __init__(self, root: str | Path | None, split: str = "test", layout: str = "auto", threshold: str = "gt128",
                 source: str | None = None, gt_dir: str = "test", coarse_dir: str = "coarse",
                 sources: Sequence[str] | None = None) -> None:
        if root is None:
            raise FileNotFoundError(f"dataset big reads a BIG folder: give data_root=FOLDER (expected {LAYOUT_TEXT})")
        if split == "train":
            raise ValueError("a BIG folder is an evaluation set and has no train split (give train=false; "
                             "learned refiners bring their own weights)")
        if threshold not in THRESHOLD_RULES:
            raise ValueError(f"data.threshold must be one of {list(THRESHOLD_RULES)}, got {threshold!r}")
        self.folder = BigFolder(root, layout=layout, source=source, gt_dir=gt_dir, coarse_dir=coarse_dir,
                                sources=sources)
        self.split, self.threshold = split, threshold
        self.coarse_sources: tuple[str, ...] = tuple(self.folder.sources)

    def __len__(self) -> int:
        return len(self.folder)

    def ids(self) -> list[str]:
        """The stems, sorted."""
        return self.folder.ids()

    def __getitem__(self, index: int) -> Sample:
        """Decode one object: image, binarised ground truth and binarised coarse masks.

        Raises:
            DataFormatError: an unreadable file or files of different sizes (named).
        """
        item = self.folder[index]
        return Sample(item.id, item.image, binarise(item.gt, self.threshold),
                      {s: binarise(c, self.threshold) for s, c in item.coarse.items()})

    def __repr__(self) -> str:
        return f"Big({self.folder!r}, threshold={self.threshold!r})"
