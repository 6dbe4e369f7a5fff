"""A user's own data: ``images/`` and ``masks/`` matched by file stem, classes in ``classes.yaml``.

Layout (split by sub-folders, or flat folders plus one id list per split)::

    <root>/
      classes.yaml                         the classes (below)
      images/<split>/<stem>.png|jpg|jpeg|tif|tiff
      masks/<split>/<stem>.png|tif|tiff    same stem; ids (grey, 8 or 16 bit) or RGB colours
    or
      images/<stem>.*   masks/<stem>.*     flat
      splits/<split>.txt                   one stem per line (``#`` comments); or <root>/<split>.txt

``split="all"`` takes every image of the flat folders (or of every sub-folder). ``list_file=``
names another id list (one stem per line, or MagNet's ``image<TAB>mask`` lines relative to root).
Images are decoded by OpenCV (PNG, JPEG, TIFF including 5000x5000 GeoTIFF tiles, whose extra tags
are ignored); grey images are read as RGB.

``classes.yaml``::

    names: [background, building, road]     # one per class, in class-id order (required)
    values: [0, 1, 2]                        # mask value of each class (default 0..C-1), or
    # colours: [[0,0,0], [255,0,0], [0,0,255]]   # RGB mask colour of each class (colour masks)
    ignore: 255                              # value (or [r, g, b]) of unlabelled pixels; omit: none
    excluded_from_mean: [background]         # names or ids: counted, but left out of the mIoU mean
    palette: [[0,0,0], [255,0,0], [0,0,255]] # display colours (default: colours, else a fixed set)
    thin: [road]                             # names or ids the tables and panels single out

Every bad input raises an error that names the file: an image without a mask (or a mask without
an image) and a missing folder when the split is opened (:class:`FileNotFoundError`, so the
run stops before it starts); a mask value or colour not in ``classes.yaml`` (with the values and
pixel counts found), an image/mask size mismatch, an image of another size than ``size`` and an
unreadable file when the pair is decoded (:class:`~bench.data.base.DataFormatError`: the
runner records that image as failed and goes on; ``python -m bench check-data folder
data_root=... --full`` lists every one).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml

from bench.data.base import (
    DataFormatError,
    Pair,
    PairedDataset,
    read_id_file,
    read_list_file,
    read_raw,
    require_root,
)
from bench.core.data_types import DatasetInfo, Sample

CLASSES_FILE = "classes.yaml"
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MASK_EXTS = (".png", ".tif", ".tiff")  # lossless only: a JPEG mask has no exact values
CLASS_KEYS = ("names", "values", "colours", "colors", "ignore", "excluded_from_mean", "palette", "thin")
# display colours when classes.yaml gives neither colours nor a palette (Cityscapes' first 19, then grey steps)
DEFAULT_PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip

LAYOUT = """\
  <root>/
    classes.yaml                          names:, values: or colours:, ignore:, ... (bench/data/folder.py)
    images/<split>/<stem>.png|jpg|tif     RGB (or grey) images
    masks/<split>/<stem>.png|tif          same stem: class values (grey) or RGB colours
  or flat images/ and masks/ with splits/<split>.txt (one stem per line)"""


class ClassSpec:
    """The parsed ``classes.yaml``: names, how masks encode them, and the :class:`DatasetInfo`.

    Attributes:
        path: the file.
        names: class names, in id order.
        values: mask value of each class (id masks), or None for colour masks.
        colours: RGB mask colour of each class (colour masks), or None.
        ignore: ignore value (int) or colour ((r, g, b)), or None.
        info: the dataset's :class:`DatasetInfo` (ignore_index 255 when ``ignore`` is set).
    """

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"folder dataset: {path} does not exist. Expected layout:\n{LAYOUT}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise DataFormatError(f"{path}: not valid YAML ({err})") from err
        if not isinstance(raw, dict):
            raise DataFormatError(f"{path}: expected a mapping with names:, values: or colours:, ...")
        unknown = sorted(set(raw) - set(CLASS_KEYS))
        if unknown:
            raise DataFormatError(f"{path}: unknown key(s) {unknown}; known: {list(CLASS_KEYS)}")
        self.path = path
        self.names = self._names(raw.get("names"))
        colours = raw.get("colours", raw.get("colors"))
        if colours is not None and raw.get("values") is not None:
            raise DataFormatError(f"{path}: give either values: (id masks) or colours: (RGB masks), not both")
        self.colours = self._colours(colours, "colours") if colours is not None else None
        self.values = None if self.colours is not None else self._values(raw.get("values"))
        self.ignore = self._ignore(raw.get("ignore"))
        palette = raw.get("palette")
        shown = self._colours(palette, "palette") if palette is not None else self.colours
        if shown is None:
            shown = tuple(DEFAULT_PALETTE[i] if i < len(DEFAULT_PALETTE) else ((37 * i) % 256,) * 3
                          for i in range(len(self.names)))
        self.info = DatasetInfo(
            name="folder", class_names=self.names, ignore_index=255 if self.ignore is not None else None,
            palette=shown, excluded_from_mean=self._ids(raw.get("excluded_from_mean"), "excluded_from_mean"),
            thin_classes=self._ids(raw.get("thin"), "thin"),
        )

    def _error(self, text: str) -> DataFormatError:
        return DataFormatError(f"{self.path}: {text}")

    def _names(self, names: Any) -> tuple[str, ...]:
        if not isinstance(names, list) or not names or not all(isinstance(n, (str, int)) for n in names):
            raise self._error(f"names: expected a list of class names, got {names!r}")
        out = tuple(str(n) for n in names)
        if len(set(out)) != len(out):
            raise self._error(f"names: repeated class name(s) {sorted({n for n in out if out.count(n) > 1})}")
        if len(out) > 255:  # labels are uint8 with 255 for ignored pixels
            raise self._error(f"names: at most 255 classes, got {len(out)}")
        return out

    def _values(self, values: Any) -> tuple[int, ...]:
        if values is None:
            return tuple(range(len(self.names)))
        if (not isinstance(values, list) or len(values) != len(self.names)
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535 for v in values)):
            raise self._error(f"values: expected {len(self.names)} integers in 0..65535 (one per name), got {values!r}")
        if len(set(values)) != len(values):
            raise self._error(f"values: repeated value(s) {sorted({v for v in values if values.count(v) > 1})}")
        return tuple(values)

    def _colours(self, colours: Any, key: str) -> tuple[tuple[int, int, int], ...]:
        ok = (isinstance(colours, list) and len(colours) == len(self.names)
              and all(_is_rgb(c) for c in colours))
        if not ok:
            raise self._error(f"{key}: expected {len(self.names)} [r, g, b] triples in 0..255 (one per name), "
                              f"got {colours!r}")
        out = tuple((int(c[0]), int(c[1]), int(c[2])) for c in colours)
        if key == "colours" and len(set(out)) != len(out):
            raise self._error(f"colours: repeated colour(s) {sorted({c for c in out if out.count(c) > 1})}")
        return out

    def _ignore(self, ignore: Any) -> int | tuple[int, int, int] | None:
        if ignore is None:
            return None
        if self.colours is not None:
            if not _is_rgb(ignore):
                raise self._error(f"ignore: colour masks need an [r, g, b] ignore colour, got {ignore!r}")
            colour = (int(ignore[0]), int(ignore[1]), int(ignore[2]))
            if colour in self.colours:
                raise self._error(f"ignore: {list(colour)} is also the colour of class "
                                  f"{self.names[self.colours.index(colour)]!r}")
            return colour
        if not isinstance(ignore, int) or isinstance(ignore, bool) or not 0 <= ignore <= 65535:
            raise self._error(f"ignore: expected a mask value in 0..65535, got {ignore!r}")
        if self.values is not None and ignore in self.values:
            raise self._error(f"ignore: {ignore} is also the value of class {self.names[self.values.index(ignore)]!r}")
        return ignore

    def _ids(self, items: Any, key: str) -> tuple[int, ...]:
        if items is None:
            return ()
        if not isinstance(items, list):
            raise self._error(f"{key}: expected a list of class names or ids, got {items!r}")
        out = []
        for item in items:
            if isinstance(item, str) and item in self.names:
                out.append(self.names.index(item))
            elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(self.names):
                out.append(item)
            else:
                raise self._error(f"{key}: {item!r} is neither a class name {list(self.names)} "
                                  f"nor an id in 0..{len(self.names) - 1}")
        return tuple(dict.fromkeys(out))

    def decode(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """A decoded mask file (as OpenCV gives it: grey, or BGR(A)) -> (H, W) uint8 class ids, 255 ignored.

        Raises:
            DataFormatError: naming ``path``: a grey mask for colour classes or the reverse, or a
                value / colour not in ``classes.yaml`` (listed with pixel counts).
        """
        if self.colours is not None:
            return self._decode_colour(raw, path)
        return self._decode_values(raw, path)

    def _decode_values(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.dtype not in (np.uint8, np.uint16):
            raise DataFormatError(f"{path}: expected an 8- or 16-bit mask of class values, got dtype {raw.dtype}")
        if raw.ndim == 3:
            if raw.shape[2] not in (3, 4) or not all(np.array_equal(raw[..., 0], raw[..., c]) for c in (1, 2)):
                raise DataFormatError(f"{path}: a colour mask, but {self.path} gives values: (grey masks); "
                                      f"give colours: [[r, g, b], ...] for RGB masks")
            raw = raw[..., 0]
        found, inverse = np.unique(raw, return_inverse=True)
        lookup = {v: i for i, v in enumerate(self.values or ())}
        table, unknown = _class_table(found.tolist(), lookup, self.ignore)
        if unknown:
            counts = np.bincount(inverse.ravel(), minlength=found.size)
            shown = ", ".join(f"{int(found[k])} ({int(counts[k])} px)" for k in unknown[:20])
            more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            allowed = list(self.values or ()) + ([self.ignore] if self.ignore is not None else [])
            raise DataFormatError(f"{path}: mask value(s) {shown}{more} not in {self.path} "
                                  f"(values: {allowed}; found in this mask: {found.tolist()[:40]})")
        return table[inverse].reshape(raw.shape).astype(np.uint8)

    def _decode_colour(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.dtype != np.uint8 or raw.ndim != 3 or raw.shape[2] not in (3, 4):
            raise DataFormatError(f"{path}: expected an 8-bit RGB colour mask ({self.path} gives colours:), "
                                  f"got shape {raw.shape} dtype {raw.dtype}")
        rgb = raw[..., 2::-1].astype(np.int64)  # OpenCV gives BGR(A)
        code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        found, inverse = np.unique(code, return_inverse=True)
        lookup = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(self.colours or ())}
        ignore = self.ignore
        ignore_code = (ignore[0] << 16) | (ignore[1] << 8) | ignore[2] if isinstance(ignore, tuple) else None
        table, unknown = _class_table(found.tolist(), lookup, ignore_code)
        if unknown:
            counts = np.bincount(inverse.ravel(), minlength=found.size)
            shown = ", ".join(f"{_rgb_text(int(found[k]))} ({int(counts[k])} px)" for k in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise DataFormatError(f"{path}: colour(s) {shown}{more} not in the palette of {self.path} "
                                  f"(colours: {[list(c) for c in self.colours or ()]})")
        return table[inverse].reshape(code.shape).astype(np.uint8)


def _class_table(found: list[int], lookup: dict[int, int], ignore: Any) -> tuple[np.ndarray, list[int]]:
    """Class id of each distinct mask value: ``lookup[value]``, 255 for ``ignore``, 254 where unknown.

    Returns:
        ``(table, unknown)``: (len(found),) int64 ids and the indices into ``found`` of the values
        neither in ``lookup`` nor ``ignore``.
    """
    table = np.full(len(found), 254, np.int64)
    unknown = []
    for k, value in enumerate(found):
        if value in lookup:
            table[k] = lookup[value]
        elif value == ignore:
            table[k] = 255
        else:
            unknown.append(k)
    return table, unknown


def _is_rgb(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value))


def _rgb_text(code: int) -> str:
    return f"({code >> 16},{(code >> 8) & 255},{code & 255})"


def _by_stem(folder: Path, exts: Sequence[str], what: str) -> dict[str, Path]:
    """``{stem: file}`` of the files of ``folder`` with one of ``exts`` (case-insensitive)."""
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in exts or path.name.startswith("."):
            continue
        if path.stem in out:
            raise DataFormatError(f"folder dataset: two {what} files with the stem {path.stem!r}: "
                                  f"{out[path.stem]} and {path}")
        out[path.stem] = path
    return out


def match_pairs(image_dir: Path, mask_dir: Path, stems: Sequence[str] | None = None) -> list[Pair]:
    """Pair the images of ``image_dir`` with the masks of ``mask_dir`` by file stem.

    Args:
        image_dir: folder of images (``IMAGE_EXTS``).
        mask_dir: folder of masks (``MASK_EXTS``).
        stems: the ids to take, in order (a split list); None = every image, sorted.

    Raises:
        FileNotFoundError: an image without a mask, a mask without an image (when every image is
            taken), or a listed stem without an image; up to five named, with the count.
    """
    images = _by_stem(image_dir, IMAGE_EXTS, "image")
    masks = _by_stem(mask_dir, MASK_EXTS, "mask")
    problems: list[str] = []
    if stems is None:
        stems = sorted(images)
        problems += [f"mask {masks[s]} has no image in {image_dir}" for s in sorted(set(masks) - set(images))]
    else:
        problems += [f"listed id {s!r} has no image {image_dir}/{s}.<{'|'.join(e[1:] for e in IMAGE_EXTS)}>"
                     for s in stems if s not in images]
    problems += [f"image {images[s]} has no mask {mask_dir}/{s}.<{'|'.join(e[1:] for e in MASK_EXTS)}>"
                 for s in stems if s in images and s not in masks]
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:5])
        more = f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise FileNotFoundError(f"folder dataset: {len(problems)} unmatched file(s):\n{shown}{more}\n"
                                f"Expected layout:\n{LAYOUT}")
    return [Pair(s, images[s], masks[s]) for s in stems]


class Folder(PairedDataset):
    """A user's data folder (see the module docstring for the layout and ``classes.yaml``).

    Args:
        root: the data folder.
        split: a sub-folder of ``images/`` and ``masks/``, a list ``splits/<split>.txt`` (or
            ``<root>/<split>.txt``) over the flat folders, or ``all``.
        list_file: an id list (one stem per line) or MagNet list file; overrides ``split``.
        size: nominal (w, h) of every image (``data.size``), checked per image; None = sizes may
            vary (the units take the first image's size for MagNet's last scale).
        classes: the class description, default ``<root>/classes.yaml``.
    """

    display_name: ClassVar[str] = "folder dataset"
    layout: ClassVar[str] = LAYOUT
    weights_per_root: ClassVar[bool] = True  # another root is other data: trained weights record it

    def __init__(self, root: str | Path | None, split: str = "val", list_file: str | Path | None = None,
                 size: Sequence[int] | None = None, classes: str | Path | None = None) -> None:
        base = require_root(self.display_name, root, LAYOUT)
        self.spec = ClassSpec(Path(classes) if classes else base / CLASSES_FILE)
        self.info = self.spec.info  # type: ignore[misc]  # per instance: the classes come with the data
        self.size = (int(size[0]), int(size[1])) if size is not None else None
        pairs = self._pairs(base, split, list_file)
        super().__init__(base, split, pairs)
        self.image_size = self.size

    @classmethod
    def info_for(cls, root: str | Path | None, classes: str | Path | None = None, **_: Any) -> DatasetInfo:
        """The :class:`DatasetInfo` of the folder at ``root`` (its ``classes.yaml``), nothing else read."""
        if classes is None:
            base = require_root(cls.display_name, root, LAYOUT)
            classes = base / CLASSES_FILE
        return ClassSpec(Path(classes)).info

    def _pairs(self, base: Path, split: str, list_file: str | Path | None) -> list[Pair]:
        image_root, mask_root = base / "images", base / "masks"
        for folder in (image_root, mask_root):
            if not folder.is_dir():
                raise FileNotFoundError(f"folder dataset: {folder} does not exist. Expected layout:\n{LAYOUT}")
        if list_file is not None:
            return self._listed(base, Path(list_file), image_root, mask_root)
        if (image_root / split).is_dir():
            return match_pairs(image_root / split, mask_root / split)
        for listed in (base / "splits" / f"{split}.txt", base / f"{split}.txt"):
            if listed.is_file():
                return match_pairs(image_root, mask_root, read_id_file(listed))
        if split == "all":
            subs = sorted(p.name for p in image_root.iterdir() if p.is_dir())
            if not subs:
                return match_pairs(image_root, mask_root)
            return [p for s in subs for p in match_pairs(image_root / s, mask_root / s)]
        known = sorted({p.name for p in image_root.iterdir() if p.is_dir()}
                       | {p.stem for p in (*(base / "splits").glob("*.txt"), *base.glob("*.txt"))} | {"all"})
        raise FileNotFoundError(f"folder dataset: no split {split!r} under {base}: neither {image_root / split}/ "
                                f"nor {base / 'splits' / (split + '.txt')}; found: {known}. Expected layout:\n{LAYOUT}")

    def _listed(self, base: Path, list_file: Path, image_root: Path, mask_root: Path) -> list[Pair]:
        if not list_file.is_file():
            raise FileNotFoundError(f"folder dataset: list file {list_file} does not exist")
        lines = read_id_file(list_file)
        if any(len(line.split()) == 2 for line in lines):
            return read_list_file(list_file, base)
        return match_pairs(image_root, mask_root, lines)

    def decode_label(self, path: Path) -> np.ndarray:
        """A mask file -> (H, W) uint8 class ids (255 ignored), through ``classes.yaml``."""
        return self.spec.decode(read_raw(path), path)

    def __getitem__(self, index: int) -> Sample:
        """Decode pair ``index`` (see :meth:`PairedDataset.__getitem__`), checking ``size`` when given."""
        sample = super().__getitem__(index)
        if self.size is not None:
            h, w = sample.image.shape[:2]
            if (w, h) != self.size:
                raise DataFormatError(f"{self.pairs[index].image} is {w}x{h} (w x h), but data.size is "
                                      f"{self.size[0]}x{self.size[1]}")
        return sample
