"""Which classes a ``torch.save`` file would unpickle, read without torch (so a bad file costs no import).

``torch.load(weights_only=True)`` refuses a pickle that names a class beyond tensors and plain
containers. :func:`foreign_globals` lists the globals a file's pickle names outside the modules
that loader may accept (``torch``, ``collections``, ``builtins``, ``_codecs``, ``numpy``), from its
opcodes, without running it. It is a fast pre-check only: an empty list does not mean the file
loads (torch still decides), and a file it cannot parse gives an empty list.

:func:`not_a_checkpoint` says, from a file's first bytes, when it is no ``torch.save`` file at all
(a text file, an image, an empty file), so that it is not reported as a refused pickle.
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

TRUSTED = ("torch", "collections", "builtins", "__builtin__", "copyreg", "_codecs", "numpy")


def _pickle_bytes(path: Path) -> bytes | None:
    """The object pickle of a torch.save file (``*/data.pkl`` of the zip format, or a legacy raw pickle)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                return archive.read(names[0]) if names else None
        return Path(path).read_bytes()
    except (OSError, zipfile.BadZipFile, KeyError):
        return None


def _globals(data: bytes) -> list[str]:
    """``module.name`` of every GLOBAL / STACK_GLOBAL opcode of the first pickle in ``data``."""
    found: list[str] = []
    strings: list[str] = []  # string constants pushed, in order (STACK_GLOBAL takes the last two)
    memo: dict[int, str] = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                module, _, name = str(arg).partition(" ")
                found.append(f"{module}.{name}")
            elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(str(arg))
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                memo[int(str(arg))] = strings[-1]
            elif op.name == "MEMOIZE" and strings:
                memo[len(memo)] = strings[-1]
            elif op.name in ("BINGET", "LONG_BINGET", "GET") and int(str(arg)) in memo:
                strings.append(memo[int(str(arg))])
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif op.name == "STOP":
                break
    except (ValueError, IndexError, TypeError):  # not a pickle we can read: let torch decide
        return []
    return found


def foreign_globals(path: str | Path) -> list[str]:
    """Globals named by the pickle of ``path`` outside :data:`TRUSTED` modules (``[]`` when none or unreadable)."""
    data = _pickle_bytes(Path(path))
    if data is None:
        return []
    return sorted({g for g in _globals(data) if g.split(".", 1)[0] not in TRUSTED})


# torch.save writes a zip archive (since torch 1.6) or, with the legacy format, a pickle that starts
# with the PROTO opcode; torch.jit.save and numpy's .npy are named, for they are a common mistake
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80


def not_a_checkpoint(path: str | Path) -> str | None:
    """Why ``path`` cannot be a ``torch.save`` file, or None when it may be one.

    Read from the first bytes only: a zip archive (the current format) or a pickle with a
    protocol header (the legacy format) may be a checkpoint; anything else is named as what it
    looks like (empty, text, a PNG or JPEG image, a NumPy array).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if head.startswith(_ZIP_MAGIC) or (len(head) >= 2 and head[0] == _PICKLE_PROTO and 2 <= head[1] <= 5):
        return None
    if not head:
        return "is empty"
    for magic, what in ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"\x93NUMPY", "a NumPy array")):
        if head.startswith(magic):
            return f"is {what}"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"starts with bytes {head[:8]!r}, neither a zip archive nor a pickle"
    return f"is a text file (it starts {text.splitlines()[0][:40]!r})" if text.strip() else "holds only white space"
