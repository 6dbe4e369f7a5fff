"""The batch setting a method declares: how many work items (tiles, patches, masks) one forward takes.

Time and peak memory grow with the number of items a method forwards at once, so a table whose
rows run at different batch settings compares settings, not methods (issue 21, item 9). Every
method that batches work says which option of its ``Config`` holds that number, with a class-level
declaration the harness reads without building the method:

- ``batch_option: ClassVar[str] = "<field>"`` on the ``Config`` dataclass (the built-in methods:
  Patching ``batch_size`` tiles, MagNet ``batch_size`` patches, GLNet ``sub_batch_size`` patches,
  CascadePSP ``mask_batch_size`` masks), or on the method class itself (a plugin may do either;
  the class wins). A ``ClassVar`` is not a dataclass field: the unit key does not change.
- the option is an int >= 1 (items per forward). The default of every built-in method is 1, as
  the released MagNet code runs its patches (``sub_batch_size=1``).

A method without a declaration processes one item at a time or has nothing to batch; its
setting is reported as ``None`` (no batch) and it needs no override in a batch sweep.
Importing this module imports nothing heavy (no torch): the CLI and the report use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

BATCH_ATTR = "batch_option"


def batch_option(cls: type) -> str | None:
    """The name of the ``Config`` field that holds ``cls``'s batch setting, or None (no batching).

    Args:
        cls: a method class (``bench.core.interface.Method`` subclass) with a ``Config`` dataclass.

    Raises:
        TypeError: the declaration names a field the ``Config`` does not have.
    """
    name = getattr(cls, BATCH_ATTR, None) or getattr(getattr(cls, "Config", None), BATCH_ATTR, None)
    if name is None:
        return None
    fields = getattr(getattr(cls, "Config", None), "__dataclass_fields__", {})
    if name not in fields:
        raise TypeError(f"{getattr(cls, '__name__', cls)} declares {BATCH_ATTR}={name!r}, "
                        f"but its Config has no such field (fields: {sorted(fields)})")
    return str(name)


def batch_setting(cls: type, mcfg: Any) -> int | None:
    """Items per forward of a method built with ``mcfg`` (its declared option's value), or None.

    Raises:
        TypeError: a bad declaration (:func:`batch_option`).
        ValueError: the option's value is not an int >= 1.
    """
    name = batch_option(cls)
    if name is None:
        return None
    value = getattr(mcfg, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{getattr(cls, 'name', '') or cls.__name__}.{name} must be an int >= 1 "
                         f"(items per forward), got {value!r}")
    return value


def batch_overrides(methods: Iterable[str], batch: int) -> list[str]:
    """``<method>.<option>=<batch>`` for every method of ``methods`` that declares a batch option.

    Resolves the methods through the registry (which imports them). A method that cannot be
    resolved is left out: the run reports it as its status.
    """
    from bench.core.registry import MethodUnavailable, resolve

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an int >= 1, got {batch!r}")
    out = []
    for m in methods:
        try:
            opt = batch_option(resolve(m))
        except (KeyError, MethodUnavailable):
            continue
        if opt:
            out.append(f"{m}.{opt}={batch}")
    return out
