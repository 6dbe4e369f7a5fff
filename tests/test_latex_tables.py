"""Paper-ready LaTeX (issue 24 item 1): every file ``write_tables`` writes for the shipped dataset configs
(fake records with Boundary IoU counts and one partial unit whose failure names an absolute path)
compiles in a two-column article without an overfull box, holds at most three short note lines,
points to the run's notes file, typesets sizes as ``$W\\times H$``, aligns numbers on the decimal
point, names its packages in its first comment, and holds no absolute path.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.core.config import REPO_DIR, format_size, load
from bench.data import dataset_info
from bench.report import table_format
from bench.report.table_format import MAX_NOTE_LINES, tex_escape, to_latex
from bench.report.table_model import Table, aggregate
from bench.report.table_notes import excluded_classes
from bench.report.tables import build_all_tables, write_tables
from tests.test_tables import _compile

DATASETS = ["cityscapes", "deepglobe", "inria", "synthetic"]
# an absolute POSIX path (two or more components) that is not the tail of a URL or of a relative path:
# written here, independently of bench.report.table_format's own pattern
ABSOLUTE = re.compile(r"(?:^|[\s(\[{'\"`=,;])(/[A-Za-z0-9_.+@%-]+/[^\s)\]}'\"`,;]*)")


def _records(cfg, info, tmp_path):
    """Two images per unit with confusion and Boundary IoU counts; the first unit also failed a third
    image, with a reason naming a file under ``tmp_path`` (the run's data folder)."""
    rng = np.random.default_rng(0)
    c = info.num_classes
    recs, keys = [], {}
    for u, (method, size) in enumerate(cfg.units()):
        key = f"k{u}"
        keys[(method, size)] = key
        for k in range(2):
            cm = rng.integers(1, 50, (c, c)) + np.eye(c, dtype=np.int64) * 400
            union = rng.integers(50, 400, c)
            recs.append({"type": "image", "unit_key": key, "image_id": f"i{k}", "status": "ok", "cm": cm.tolist(),
                         "mba": float(rng.uniform(0.4, 0.8)), "time_ms": 1234.5 + 100 * k + 7 * u,
                         "mem_peak_delta_mib": 50.0 + u, "mem_method": "rss_hwm_reset",
                         "provenance": {"device_name": "AMD EPYC", "threads": 1}, "display_name": method,
                         "biou_inter": (union * rng.uniform(0.2, 0.9, c)).astype(int).tolist(),
                         "biou_union": union.tolist(), "biou_ratio": cfg.biou_ratio,
                         **({"n_expected": 3} if u == 0 else {})})
        if u == 0:
            recs.append({"type": "image", "unit_key": key, "image_id": "i2", "status": "error", "n_expected": 3,
                         "message": f"FileNotFoundError: {tmp_path}/data/leftImg8bit/val/i2_leftImg8bit.png"})
    return recs, keys


def _write(dataset, tmp_path):
    cfg = load(dataset, {"bootstrap": 50})
    info = dataset_info(cfg)
    recs, keys = _records(cfg, info, tmp_path)
    results = {(m, format_size(s)): aggregate(recs, k, m, format_size(s), info, cfg.absent,
                                              excluded_classes(cfg, info), m) for (m, s), k in keys.items()}
    tables = build_all_tables(cfg, info, results)
    folder = tmp_path / "out" / "tables"
    write_tables(tables, folder, run=tmp_path / "out")
    return tables, folder


def _note_lines(tex: str) -> list[str]:
    lines = tex.splitlines()
    if r"\begin{minipage}{\linewidth}\scriptsize\raggedright" not in lines:
        return []
    start = lines.index(r"\begin{minipage}{\linewidth}\scriptsize\raggedright")
    return lines[start + 1:lines.index(r"\end{minipage}", start)]


@pytest.fixture(scope="module", params=DATASETS)
def written(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    return (request.param, tmp, *_write(request.param, tmp))


def test_the_files_of_a_run(written):
    _, _, tables, folder = written
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([f"{t.name}{s}" for t in tables for s in (".md", ".tex")]
                           + ["tables.md", "notes.md", "notes.tex"])
    notes_md = (folder / "notes.md").read_text()
    for t in tables:  # every full definition is in the notes file, under its table's title
        assert f"## {t.label}: " in notes_md
        assert all(n in notes_md for n in t.notes if "/" not in n)


def test_at_most_three_short_note_lines_pointing_to_the_notes(written):
    _, _, tables, folder = written
    for t in tables:
        tex = (folder / f"{t.name}.tex").read_text()
        lines = _note_lines(tex)
        assert 1 <= len(lines) <= MAX_NOTE_LINES, (t.name, lines)
        assert all(len(line) <= 240 for line in lines), (t.name, [len(line) for line in lines])
        assert "notes.tex" in lines[-1]
        assert tex.count(r"\caption{") == 1 and "\n" not in tex.split(r"\caption{")[1].split("}\n")[0]


def test_the_first_comment_names_the_packages(written):
    _, _, tables, folder = written
    for path in folder.glob("*.tex"):
        first = path.read_text().splitlines()[0]
        assert first.startswith("% Packages: "), path.name
        text = path.read_text()
        for pkg, used in (("xcolor", r"\textcolor"), ("graphicx", r"\rotatebox")):
            assert (pkg in first) == (used in text), (path.name, pkg)


def test_no_absolute_path_anywhere(written):
    _, tmp, _, folder = written
    for path in folder.iterdir():
        text = path.read_text()
        assert str(tmp) not in text and str(REPO_DIR) not in text, path.name
        assert not ABSOLUTE.findall(text), (path.name, ABSOLUTE.findall(text))
    # the failed image is still named, by its file name
    assert "i2_leftImg8bit.png" in (folder / "notes.md").read_text()


def test_a_planted_absolute_path_is_caught(tmp_path, monkeypatch):
    # without the shortening, the failure reason's folder reaches the files and the check above fails
    monkeypatch.setattr(table_format, "relative_paths", lambda text, bases=None: text)
    _, folder = _write("synthetic", tmp_path)
    found = [p.name for p in folder.iterdir() if ABSOLUTE.findall(p.read_text())]
    assert {"notes.md", "notes.tex", "table3.md", "tables.md"} <= set(found)
    assert str(tmp_path) in (folder / "notes.md").read_text()


def test_relative_paths_rules():
    rel = table_format.relative_paths
    assert rel(f"see {REPO_DIR}/results/runs/x/records.jsonl.") == "see results/runs/x/records.jsonl."
    assert rel("failed: /home/alice/data/val/img3.png (bad)") == "failed: …/img3.png (bad)"
    # not paths: a URL, a ratio, a relative path, a fraction of sizes
    for text in ("https://github.com/a/b", "(W+H)/300", "weights/synthetic/x.pt", "1/3", "red/blue"):
        assert rel(text) == text


def test_sizes_typeset_with_times(written):
    _, _, tables, folder = written
    for path in folder.glob("*.tex"):
        text = re.sub(r"\\texttt\{[^}]*\}", "", path.read_text())  # code keeps its spelling
        body = "\n".join(line for line in text.splitlines() if not line.startswith("%"))
        assert not re.search(r"\d+x\d+", body), (path.name, re.findall(r".{20}\d+x\d+.{5}", body))
    assert re.search(r"\$\d+\\times\d+\$", (folder / "table3.tex").read_text())
    assert tex_escape("at 128x64 and 1024×512, `methods-128x64`") == \
        r"at $128\times64$ and $1024\times512$, \texttt{methods-128x64}"


def _strip(cell: str) -> str:
    cell = re.sub(r"\\rlap\{.*\}$", "", cell.strip())
    cell = re.sub(r"\\phantom\{0+\}", "", cell)
    while m := re.fullmatch(r"\\text(?:color\{\w+\}|it|bf)\{(.*)\}", cell):
        cell = m.group(1)
    return cell.replace("$-$", "-")


def test_numbers_align_on_the_decimal_point(written):
    _, _, tables, folder = written
    for t in tables:
        tex = (folder / f"{t.name}.tex").read_text()
        assert re.search(r"\\begin\{tabular\}\{lr+\}", tex)  # numbers right-aligned
        rows = [line.removesuffix(r" \\").split(" & ") for line in
                tex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0].splitlines() if " & " in line]
        for j in range(1, len(t.header)):
            decimals = set()
            for row in rows:
                cell = _strip(row[j])
                assert r"\textsuperscript" not in cell, (t.name, row[j])  # marks only in \rlap (no width)
                m = re.fullmatch(r"[+-]?\d+(?:\.(\d+))?(?: \(\d+\))?", cell)
                if m:
                    decimals.add(len(m.group(1) or ""))
            assert len(decimals) <= 1, (t.name, t.header[j], decimals)


def test_more_than_three_brief_lines_is_refused():
    with pytest.raises(ValueError, match="at most 3"):
        to_latex(Table("x", "c.", ["A", "B"], rows=[["a", "1"]], brief=["1", "2", "3", "4"]))
    # a table without short lines prints its notes when they are three or fewer, else the pointer alone
    long = to_latex(Table("x", "c.", ["A", "B"], rows=[["a", "1"]], notes=["n1", "n2", "n3", "n4"]))
    assert _note_lines(long) == [r"\textit{Notes.} Full definitions: notes.tex."]


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_every_generated_file_compiles_in_two_columns_without_overfull(written, tmp_path):
    dataset, _, _, folder = written
    for path in sorted(folder.glob("*.tex")):
        log = _compile(path.read_text(), tmp_path, 496)  # CVPR's text width, two columns
        assert "Overfull \\hbox" not in log, (dataset, path.name,
                                              [ln for ln in log.splitlines() if "Overfull" in ln])


def test_markdown_tables_keep_their_notes(written):
    # the Markdown tables (and the README blocks rendered from them) keep every note: only LaTeX is cut
    _, _, tables, folder = written
    md = (folder / "table3.md").read_text()
    assert all(f"- {n}" in md for n in tables[2].notes if "/" not in n)
    assert Path(folder / "tables.md").read_text().count("**Table") == 3
