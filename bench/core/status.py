"""The statuses a unit or an image can have: one typed set, shared by the runner, records and tables.

A :class:`Status` is a ``str`` enum, so it is stored in records as its plain value (``"ok"``) and
compares equal to it; :func:`parse` turns a stored value back into a member and refuses anything
else, so a misspelt status can never pass for a known one.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """Outcome of a unit (a method at an input size) or of one image."""

    OK = "ok"                                  # every pending image evaluated
    DONE = "done"                              # nothing left to run (all images already recorded)
    PARTIAL = "partial"                        # some image failed to load; the unit went on without it
    ERROR = "error"                            # the worker crashed or raised
    UNAVAILABLE = "unavailable"                # the method's optional dependency is not installed
    MISSING_CHECKPOINT = "missing_checkpoint"  # learned weights absent and not trained
    STALE_CHECKPOINT = "stale_checkpoint"      # weights trained under other options than the config's
    REFERENCE_MISMATCH = "reference_mismatch"  # a reference weight file differs from its manifest
    OOM = "oom"                                # out of device memory on an image

    def __str__(self) -> str:
        return self.value


# what a unit status record (``type: unit``) may hold: the unit could not run (or not to the end)
UNIT_FAILURES = frozenset({Status.ERROR, Status.UNAVAILABLE, Status.MISSING_CHECKPOINT, Status.STALE_CHECKPOINT,
                           Status.REFERENCE_MISMATCH, Status.OOM})
# what an image record may hold: evaluated, or could not be read
IMAGE_STATUSES = frozenset({Status.OK, Status.ERROR})
# worker results that are an answer, not a crash: the worker exits 0 with any of them
HANDLED = frozenset(Status) - {Status.ERROR}


def parse(value: str | Status) -> Status:
    """The member for a stored value.

    Raises:
        ValueError: ``value`` is not a known status (names the known ones).
    """
    try:
        return Status(value)
    except ValueError:
        raise ValueError(f"unknown status {value!r}; known: {', '.join(s.value for s in Status)}") from None
