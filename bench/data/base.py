"""Shared machinery of the file-backed dataset readers.

Every reader resolves its (image, label) file pairs at construction (a cheap directory walk or
list-file parse, nothing decoded) and decodes one pair per ``__getitem__``. Errors name the
offending file and say what was expected:

- a missing root or sub-folder raises :class:`FileNotFoundError` with the expected layout as a
  small tree;
- an unreadable or corrupt file raises :class:`DataFormatError` (a ``ValueError``);
- label values outside ``0..C-1`` (and the ignore index) raise :class:`DataFormatError` listing
  the offending values;
- an image and label of different sizes raise :class:`DataFormatError` naming both sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from bench.core.data_types import DatasetInfo, Sample


class DataFormatError(ValueError):
    """A data file exists but its content is not what the dataset format prescribes."""


@dataclass(frozen=True)
class Pair:
    """One image/label file pair.

    Attributes:
        id: stable identifier (file stem without the dataset's suffix).
        image: path of the RGB image.
        label: path of the label image.
    """

    id: str
    image: Path
    label: Path


def missing_layout(what: str, path: Path, layout: str) -> FileNotFoundError:
    """A FileNotFoundError saying which path is missing and the layout the reader expects.

    Args:
        what: dataset display name, e.g. "Cityscapes".
        path: the missing file or folder.
        layout: the expected tree, one entry per line (already indented).
    """
    return FileNotFoundError(f"{what}: {path} does not exist. Expected layout:\n{layout}")


def require_root(what: str, root: str | Path | None, layout: str) -> Path:
    """Check that ``root`` is given and is a folder.

    Raises:
        FileNotFoundError: root is None or not an existing folder; the message shows ``layout``.
    """
    if root is None:
        raise FileNotFoundError(f"{what}: no data root given (root=None). Expected layout:\n{layout}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise missing_layout(what, path, layout)
    return path


def require_dir(what: str, path: Path, layout: str) -> Path:
    """``path`` if it is a folder, else a FileNotFoundError showing ``layout``."""
    if not path.is_dir():
        raise missing_layout(what, path, layout)
    return path


def check_pairs_exist(what: str, pairs: Sequence[Pair], layout: str) -> None:
    """Fail once, listing up to five missing files, if any listed file is absent.

    Raises:
        FileNotFoundError: with the number of missing files, the first few and the layout.
    """
    missing = [p for pair in pairs for p in (pair.image, pair.label) if not p.is_file()]
    if missing:
        shown = "\n".join(f"  {p}" for p in missing[:5])
        more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise FileNotFoundError(
            f"{what}: {len(missing)} listed file(s) missing:\n{shown}{more}\nExpected layout:\n{layout}"
        )


def read_list_file(path: str | Path, root: Path, suffixes: Iterable[str] = ()) -> list[Pair]:
    """Parse a MagNet-style list file: one ``image<TAB>label`` pair per line, relative to ``root``.

    Blank lines and lines starting with ``#`` are skipped. A line without a tab is split on
    whitespace (GLNet's lists use spaces).

    Args:
        path: the list file.
        root: folder the listed paths are relative to.
        suffixes: suffixes removed from the image stem to form the id (first match wins),
            e.g. ``("_leftImg8bit",)``.

    Returns:
        The pairs in file order.

    Raises:
        FileNotFoundError: the list file does not exist.
        DataFormatError: a line does not hold exactly two paths.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"list file {path} does not exist (expected lines 'image<TAB>label' relative to {root})")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = text.split("\t") if "\t" in text else text.split()
        if len(fields) != 2:
            raise DataFormatError(
                f"{path}:{number}: expected 'image<TAB>label' (2 fields), got {len(fields)}: {text!r}"
            )
        image, label = (root / f.strip() for f in fields)
        pairs.append(Pair(strip_suffix(image.stem, suffixes), image, label))
    return pairs


def read_id_file(path: str | Path) -> list[str]:
    """Ids from a split file: one per line; blank lines and ``#`` comments skipped."""
    lines = Path(path).read_text().splitlines()
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


def strip_suffix(stem: str, suffixes: Iterable[str]) -> str:
    """``stem`` without the first of ``suffixes`` it ends with."""
    for suffix in suffixes:
        if suffix and stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def read_image(path: Path) -> np.ndarray:
    """Decode an image file as RGB.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        DataFormatError: the file cannot be decoded.
    """
    bgr = _imread(path, cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_raw(path: Path) -> np.ndarray:
    """Decode an image file without conversion (grey stays 2-D, colour stays BGR, 16 bit stays).

    Raises:
        DataFormatError: the file cannot be decoded.
    """
    return _imread(path, cv2.IMREAD_UNCHANGED)


def _imread(path: Path, flags: int) -> np.ndarray:
    # GeoTIFFs carry tags OpenCV does not know; its warnings about them are noise here.
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        array = cv2.imread(str(path), flags)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if array is None or array.size == 0:
        state = "does not exist" if not Path(path).exists() else "is corrupt or not an image OpenCV can decode"
        raise DataFormatError(f"cannot read {path}: the file {state}")
    return array


def as_grey(raw: np.ndarray, path: Path) -> np.ndarray:
    """A single-channel uint8 view of a label image.

    Colour images whose channels are all equal (grey saved as RGB) are accepted.

    Raises:
        DataFormatError: not 8 bit, or colour with differing channels.
    """
    if raw.dtype != np.uint8:
        raise DataFormatError(f"{path}: expected an 8-bit label image, got dtype {raw.dtype}")
    if raw.ndim == 2:
        return raw
    first = raw[..., 0]
    if raw.shape[2] in (3, 4) and all(np.array_equal(first, raw[..., c]) for c in range(1, 3)):
        return np.ascontiguousarray(first)
    raise DataFormatError(f"{path}: expected a single-channel (grey) label image, got shape {raw.shape}")


def lookup(values: np.ndarray, table: np.ndarray, path: Path, allowed: Sequence[int] | np.ndarray) -> np.ndarray:
    """Map uint8 label values through a 256-entry table, rejecting values not in ``allowed``.

    Args:
        values: (H, W) uint8 raw label values.
        table: (256,) uint8 value -> class id.
        path: the label file, for the message.
        allowed: raw values that may occur.

    Returns:
        (H, W) uint8 ``table[values]``.

    Raises:
        DataFormatError: naming the file, the offending values (with pixel counts) and the
            allowed set.
    """
    check_values(values, allowed, path)
    return table[values]


def check_values(values: np.ndarray, allowed: Sequence[int] | np.ndarray, path: Path | str) -> None:
    """Raise :class:`DataFormatError` if ``values`` (uint8) holds anything outside ``allowed``."""
    counts = np.bincount(values.ravel(), minlength=256)
    ok = np.zeros(256, bool)
    ok[np.asarray(allowed, dtype=np.int64)] = True
    bad = np.flatnonzero((counts > 0) & ~ok)
    if bad.size:
        found = ", ".join(f"{v} ({counts[v]} px)" for v in bad[:20])
        more = f" and {bad.size - 20} more" if bad.size > 20 else ""
        raise DataFormatError(f"{path}: unexpected label value(s) {found}{more}; allowed: {_ranges(allowed)}")


def _ranges(values: Sequence[int] | np.ndarray) -> str:
    """Compact text of a set of ints: '0..18, 255'."""
    vals = sorted({int(v) for v in values})
    parts, start = [], None
    for i, v in enumerate(vals):
        if start is None:
            start = v
        if i + 1 == len(vals) or vals[i + 1] != v + 1:
            parts.append(str(v) if v == start else f"{start}..{v}")
            start = None
    return "{" + ", ".join(parts) + "}"


def check_same_size(image: np.ndarray, label: np.ndarray, pair: Pair) -> None:
    """Raise :class:`DataFormatError` if image and label differ in (H, W)."""
    if image.shape[:2] != label.shape[:2]:
        ih, iw = image.shape[:2]
        lh, lw = label.shape[:2]
        raise DataFormatError(
            f"image/label size mismatch: image {pair.image} is {iw}x{ih} (w x h) but label {pair.label} is {lw}x{lh}"
        )


class PairedDataset:
    """Base of the file-backed readers: a list of :class:`Pair` decoded lazily.

    Subclasses set ``info``, ``display_name``, ``layout`` and implement :meth:`decode_label`.

    Attributes:
        root: the data root.
        split: split name.
        pairs: resolved file pairs, in a fixed order.
        image_size: nominal (w, h) of the images, or None if they vary.
    """

    info: ClassVar[DatasetInfo]
    display_name: ClassVar[str] = ""
    layout: ClassVar[str] = ""
    nominal_size: ClassVar[tuple[int, int] | None] = None
    SPLITS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, root: Path, split: str, pairs: list[Pair]) -> None:
        self.root = root
        self.split = split
        self.pairs = pairs
        self.image_size: tuple[int, int] | None = self.nominal_size
        if not pairs:
            raise FileNotFoundError(
                f"{self.display_name}: no image/label pairs found for split {split!r} under {root}. "
                f"Expected layout:\n{self.layout}"
            )
        check_pairs_exist(self.display_name, pairs, self.layout)
        ids = [p.id for p in pairs]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise DataFormatError(f"{self.display_name}: duplicate ids in split {split!r}: {dup}")

    def select_pairs(self, base: Path, split: str, list_file: str | Path | None,
                     walk: Callable[[Path, str], list[Pair]], suffixes: Iterable[str] = ()) -> list[Pair]:
        """The pairs of ``list_file`` when one is given (paths relative to ``base``, ``suffixes``
        stripped from the ids; ``split`` is then only a name), else ``walk(base, split)``.

        Raises:
            ValueError: no list file and ``split`` is not one of ``SPLITS``.
        """
        if list_file is not None:
            return read_list_file(list_file, base, suffixes)
        if split not in self.SPLITS:
            raise split_error(self.display_name, split, self.SPLITS)
        return walk(base, split)

    def __len__(self) -> int:
        return len(self.pairs)

    def ids(self) -> list[str]:
        """Sample ids in index order."""
        return [p.id for p in self.pairs]

    def __getitem__(self, index: int) -> Sample:
        """Decode pair ``index``: image (H, W, 3) uint8 RGB and label (H, W) uint8 class ids."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        pair = self.pairs[index]
        image = read_image(pair.image)
        label = self.decode_label(pair.label)
        check_same_size(image, label, pair)
        return Sample(pair.id, image, label)

    def decode_label(self, path: Path) -> np.ndarray:
        """Read a label file and map it to (H, W) uint8 class ids (ignore_index allowed)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"


def split_error(what: str, split: str, known: Iterable[str]) -> ValueError:
    """ValueError for an unknown split name."""
    return ValueError(f"{what}: unknown split {split!r}; known: {sorted(known)} (or pass list_file=...)")
