"""MkDocs hook (``hooks:`` in mkdocs.yml): the manual's figures, drawn at build time from the committed records.

The plots of the synthetic default are rendered by the harness's own plotting code
(:func:`bench.report.plots.render_plots`) from the run that the pages' tables render
(``results/published/synthetic``, see :mod:`bench.cli.readme_blocks`) and added to the site as
``figures/<name>.png``. Nothing is copied by hand and no PNG is committed: a figure always shows the
records its page's tables show.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

FIGURES_DIR = "figures"  # under the site root; results.md links figures/<name>.png


def figures(dataset: str = "synthetic") -> dict[str, bytes]:
    """``{file name: PNG bytes}`` of the plots of the published run of ``dataset`` (empty without one)."""
    from bench.cli.readme_blocks import PUBLISHED_DIR
    from bench.pipeline.configure import load
    from bench.report.plots import render_plots

    folder = PUBLISHED_DIR / dataset
    if not (folder / "run.json").is_file():
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = dataclasses.replace(load(dataset, {}), out_dir=str(folder), tables_dir=tmp)
        files, _ = render_plots(cfg)
        return {Path(f).name: Path(f).read_bytes() for f in files}


def on_files(files: Any, config: Any) -> Any:
    """Add each figure to the site's files, so that pages link it like any other file (and --strict checks the links)."""
    from mkdocs.structure.files import File

    for name, data in figures().items():
        files.append(File.generated(config, f"{FIGURES_DIR}/{name}", content=data))
    return files
