"""Every figure of a sweep: the plots (``bench.report.plots``) and the qualitative panels (``bench.report.panels``).

``bench run`` calls :func:`render_figures` after the tables. It is lenient only about what a sweep
may legitimately lack (a unit that failed or was skipped saved no label maps; ``save_predictions=0``
saves none): that is left out and named in ``notes``, which the CLI prints. Anything else raises,
and the CLI reports the failure and exits non-zero. ``bench show`` is the strict, configurable
entry point for panels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.config import BenchConfig


@dataclass
class Figures:
    """What :func:`render_figures` wrote (``files``: PNG paths) and what it left out (``notes``)."""

    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def render_figures(cfg: BenchConfig, results: Mapping[tuple[str, str], Any] | None = None) -> Figures:
    """Plots into ``<tables_dir>/plots/`` and panels into ``<tables_dir>/panels/``.

    Plots come from ``results`` (the tables' aggregates, default read from the records). Panels:
    the split's first ``save_predictions`` images, the sweep's methods at its input size, two
    automatically chosen crops each.
    """
    from bench.report.panels import render_panels
    from bench.report.plots import render_plots

    out = Figures()
    files, notes = render_plots(cfg, results)
    out.files += files
    out.notes += notes
    panels = render_panels(cfg, strict=False)
    out.files += panels.files
    out.notes += panels.notes
    return out
