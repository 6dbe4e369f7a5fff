"""Errors that are the user's to fix (a typo, a missing folder, a refused file), not the harness's.

The command line prints a :class:`UserError` as one line and exits 2 (``--debug`` shows the
traceback); every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: an override, a config value, a data folder or a weights file."""


class UnsafeCheckpoint(UserError):
    """A weights file that ``torch.load(weights_only=True)`` refuses to unpickle."""


class NotACheckpoint(UserError):
    """A file given as weights that is no ``torch.save`` file at all (text, an image, empty)."""


class WrongModel(UserError):
    """A checkpoint whose keys belong to another model than the one it was given for."""


def one_line(message: str) -> str:
    """A multi-line message (a layout tree, a traceback tail) folded into one line."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())
