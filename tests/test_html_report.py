"""The report page (``bench report``, ``bench.report.html``): cells equal the Markdown's, marks, outcomes, offline.

The fast tests render hand-made tables and units. The slow ones run a small sweep (`bench run`
synthetic, 2 images, Downsample, GF and MagNet-Fast) and open its page in headless Chromium (Debian's
``chromium``): no console message, every table cell equal to the run's Markdown tables, a header
click sorts, an image click enlarges, and a screenshot. They skip when no Chromium is installed.
``UPDATE_REPORT_SCREENSHOT=docs/img/report.png`` saves the screenshot for the docs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from bench.core.config import REPO_DIR
from bench.report.html import Report, outcomes, render, table_html
from bench.report.table_format import to_markdown
from bench.report.table_model import Table, UnitResult

# --- reading a page and a Markdown table ------------------------------------------------------------


class _Tables(HTMLParser):
    """Every ``<table data-name>`` of a page as {name: (header, rows)}, cell text as a reader sees it;
    the tags and classes inside each body cell; the ``src``/``href`` of every element; the attributes by id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, tuple[list[str], list[list[str]]]] = {}
        self.marks: dict[str, list[list[set[str]]]] = {}
        self.links: list[str] = []
        self.ids: dict[str, dict[str, str]] = {}
        self._name: str | None = None
        self._head = False
        self._cell: list[str] | None = None
        self._tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.links += [a[k] for k in ("src", "href") if a.get(k)]
        if a.get("id"):
            self.ids[a["id"]] = a
        if tag == "table" and a.get("data-name"):
            self._name = a["data-name"]
            self.tables[self._name], self.marks[self._name] = ([], []), []
        elif self._name is None:
            return
        elif tag == "thead":
            self._head = True
        elif tag == "tbody":
            self._head = False
        elif tag == "tr" and not self._head:
            self.tables[self._name][1].append([])
            self.marks[self._name].append([])
        elif tag in ("td", "th"):
            self._cell, self._tags = [], {f"class:{c}" for c in a.get("class", "").split()}
        elif self._cell is not None:
            self._tags.add(tag)

    def handle_endtag(self, tag):
        if tag == "table":
            self._name = None
        elif self._name is not None and tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            header, rows = self.tables[self._name]
            if self._head:
                header.append(text)
            else:
                rows[-1].append(text)
                self.marks[self._name][-1].append(self._tags)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse_page(text: str) -> _Tables:
    parser = _Tables()
    parser.feed(text)
    return parser


def markdown_cells(md: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a Markdown pipe table, with the ``**bold**`` and ``_italic_`` marks taken off."""
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]

    def cells(line: str) -> list[str]:
        out = []
        for c in line.strip().strip("|").split(" | "):
            c = c.strip()
            if len(c) > 2 and c.startswith("_") and c.endswith("_"):
                c = c[1:-1]
            if len(c) > 4 and c.startswith("**") and c.endswith("**"):
                c = c[2:-2]
            out.append(c)
        return out

    return cells(lines[0]), [cells(ln) for ln in lines[2:]]


def _table() -> Table:
    t = Table("table2", "mBA and IoU of every method on tiny val.", ["Method", "mBA (%)", "mIoU (%)", "road"],
              label="Table 2")
    t.rows = [["Downsample", "49.3", "38.4", "–"], ["MagNet", "61.2†", "44.0", "90.1"],
              ["Patching (1 of 2 images)", "55.0", "41.7↓", "89.9"], ["Improvement", "6.2", "2.3", "0.2"]]
    t.best_ours = {(1, 1), (1, 2), (1, 3)}
    t.best_previous = {(2, 1), (2, 2), (2, 3), (0, 3)}  # (0, 3) holds "–": never marked, as in Markdown
    t.bold = {(3, 1)}
    t.rule_before = {3}
    t.cited = {2}
    t.notes = ["mIoU: `miou_dataset` <over> the confusion matrix.", "Time: median ms & IQR.",
               f"PARTIAL: Patching: val_0001 ({REPO_DIR / 'results' / 'runs' / 'x' / 'img.png'} is truncated)."]
    return t


# --- fast: the page from hand-made tables and units -------------------------------------------------

def test_table_cells_and_marks_equal_the_markdown():
    t = _table()
    page = parse_page(table_html(t))
    header, rows = page.tables["table2"]
    assert (header, rows) == markdown_cells(to_markdown(t))
    marks = page.marks["table2"]
    assert {"strong", "class:best-ours"} <= marks[1][1] and "em" not in marks[1][1]  # best of ours: bold, red
    assert {"em", "class:best-previous"} <= marks[2][2] and "strong" not in marks[2][2]  # previous: italic, blue
    assert marks[0][3] == set() and marks[0][1] == set()  # a dash and an unmarked cell carry no mark
    assert "strong" in marks[3][1]  # `bold` cells are bold
    html_text = table_html(t)
    assert "<code>miou_dataset</code> &lt;over&gt;" in html_text and "&amp; IQR" in html_text  # notes escaped
    assert str(REPO_DIR) not in html_text and "(results/runs/x/img.png is truncated)" in html_text  # as in the .md
    # the Improvement row (from the first rule on) sits in the body that never sorts
    assert re.search(r'<tbody class="fixed"><tr><td>Improvement</td>', html_text)
    assert '<tr class="cited"><td>Patching' in html_text


def _unit(method, status="ok", n=2, failed=None, message="", expected=2):
    return UnitResult(method, method.title(), "32x16", n, status, miou=0.4, iou=[0.4], mba=0.5,
                      time={"n": n, "median": 10.0, "iqr": 1.0, "mean": 10.0}, memory=12.0,
                      expected=expected, failed=failed or {}, message=message,
                      images={f"val_{i:04d}": {} for i in range(n)})


def test_outcomes_name_failures_and_partial_units_with_their_reasons():
    results = {("downsample", "32x16"): _unit("downsample"),
               ("magnet", "32x16"): _unit("magnet", n=1, failed={"val_0001": "CUDA out of memory at 2048x1024"}),
               ("densecrf", "32x16"): UnitResult("densecrf", "DenseCRF", "32x16", 0, "unavailable",
                                                 message="Traceback ...\nmethod densecrf unavailable: pip install .[crf]"),
               ("segfix", "32x16"): UnitResult("segfix", "SegFix", "32x16", 0, "missing_checkpoint")}
    rows = outcomes(results)
    assert [(o.method, o.category, o.images) for o in rows] == [
        ("downsample", "ok", "2 of 2"), ("magnet", "partial", "1 of 2"), ("densecrf", "failed", "0 of 0"),
        ("segfix", "missing weights", "0 of 0")]
    assert rows[0].reason == ""
    assert "val_0001 (CUDA out of memory at 2048x1024)" in rows[1].reason
    assert rows[2].reason == "method densecrf unavailable: pip install .[crf]"  # the traceback's last line
    assert rows[3].reason == "no weights"
    page = render(Report("t", "s", [("git sha", "abc")], {"dataset": "tiny"}, [_table()], rows))
    assert "2 units" not in page and "4 units: 1 ok, 1 partial, 1 failed, 1 missing weights, 0 stale." in page
    assert "<code>magnet@32x16</code> val_0001: CUDA out of memory at 2048x1024" in page
    assert 'class="cat-missing-weights">missing weights' in page


def test_page_needs_no_network():
    from bench.report.html import Image

    png = _png_bytes()
    page = render(Report("t", "s", [], {}, [_table()], [], plots=[Image(png, "a plot")],
                         panels=[Image(png, "val_0000, crop 1", group="val_0000")]))
    links = parse_page(page).links
    assert links and all(src.startswith(("data:image/png;base64,", "#")) for src in links)
    assert "<link" not in page and "<script src" not in page and "@import" not in page and "url(" not in page
    assert page.count("data:image/png;base64,") == 2


def _png_bytes() -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.full((8, 8, 3), 200, np.uint8))
    return buf.tobytes()


# --- slow: a real run, opened in headless Chromium --------------------------------------------------

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A two-image sweep of Downsample, GF and MagNet-Fast (so Table 2 has ours, previous and the
    Improvement row); its page written by `bench run` itself."""
    from bench.cli import main as cli

    tmp = tmp_path_factory.mktemp("report")
    code = cli.main(["run", "synthetic", "limit=2", "methods=[downsample,guided_filter,magnet_fast]", "table1_sizes=[]",
                     "threads=1", f"out_dir={tmp / 'runs'}", f"tables_dir={tmp / 'tables'}"])
    assert code == 0
    return tmp


def chromium(*args: str, tmp: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium (its own profile folder, no sandbox: CI containers run as root)."""
    return subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=timeout)


def console_lines(stderr: str) -> list[str]:
    """The page's console messages and uncaught errors in Chromium's log."""
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln]


@pytest.mark.slow
def test_bench_run_writes_the_page_and_bench_report_rewrites_it(run_dir, capsys):
    from bench.cli import main as cli

    page = run_dir / "tables" / "report.html"
    assert page.is_file()
    first = page.read_text()
    page.unlink()
    assert cli.main(["report", str(run_dir / "runs")]) == 0
    assert capsys.readouterr().out.strip() == str(page)
    again = page.read_text()
    assert again == first  # the same page from the folder alone (plots, panels, tables)
    parsed = parse_page(again)
    assert sorted(parsed.tables) == ["comparison", "table1", "table2", "table3"]
    assert again.count("data:image/png;base64,") == 3 + 4  # three plots, two crops of each of two images
    for key in ("git sha", "torch", "threads", "weights (recorded)", "config digest", "machine fingerprint"):
        assert f"<dt>{key}</dt>" in again
    backbone = re.search(r"<dt>weights \(recorded\)</dt><dd>downsample@128x64: backbone ([0-9a-f]{12})", again)
    from bench.core.config import file_digest, load

    assert backbone and backbone[1] == file_digest(load("synthetic").backbone_path)  # the file the unit loaded
    assert cli.main(["report", str(run_dir / "nothing")]) == 2


@pytest.mark.slow
@needs_chromium
def test_page_loads_in_chromium_without_console_messages_and_cells_equal_the_markdown(run_dir, tmp_path):
    page = run_dir / "tables" / "report.html"
    done = chromium("--dump-dom", page.as_uri(), tmp=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_lines(done.stderr) == []
    dom = parse_page(done.stdout)
    for name in ("table1", "table2", "table3", "comparison"):
        md = (run_dir / "tables" / f"{name}.md").read_text()
        assert dom.tables[name] == markdown_cells(md), name
    # Table 2's marks: each bold Markdown cell is bold on the page, each italic one italic
    md_rows = [ln.strip().strip("|").split(" | ") for ln in (run_dir / "tables" / "table2.md").read_text().splitlines()
               if ln.startswith("|")][2:]
    for i, row in enumerate(md_rows):
        for j, cell in enumerate(row):
            tags = dom.marks["table2"][i][j]
            assert ("strong" in tags) == ("**" in cell) and ("em" in tags) == cell.strip().startswith("_"), (i, j)
    assert any("strong" in t for row in dom.marks["table2"] for t in row)  # the run has ours (MagNet-Fast)
    # the check can fail: an error planted in a copy of the page shows in the log
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace("</body>", "<script>notDefinedAnywhere();</script></body>"))
    assert any("notDefinedAnywhere" in ln for ln in console_lines(chromium("--dump-dom", broken.as_uri(),
                                                                           tmp=tmp_path).stderr))


@pytest.mark.slow
@needs_chromium
def test_a_header_click_sorts_and_an_image_click_enlarges(run_dir, tmp_path):
    clicks = ("<script>document.querySelector('table[data-name=table3] th:nth-child(3)').click();"
              "document.querySelector('#panels figure img').click();</script></body>")
    page = tmp_path / "clicked.html"
    page.write_text((run_dir / "tables" / "report.html").read_text().replace("</body>", clicks))
    done = chromium("--dump-dom", page.as_uri(), tmp=tmp_path)
    assert console_lines(done.stderr) == []
    dom = parse_page(done.stdout)
    header, rows = dom.tables["table3"]
    assert header[2] == "mBA (%)"
    mba = [float(r[2]) for r in rows]
    assert mba == sorted(mba, reverse=True) and len(set(mba)) == 3  # first click: descending
    assert "open" in dom.ids["zoom"].get("class", "")


@pytest.mark.slow
@needs_chromium
def test_screenshot(run_dir, tmp_path):
    from PIL import Image as PILImage

    shot = tmp_path / "report.png"
    done = chromium("--window-size=1200,2000", f"--screenshot={shot}", (run_dir / "tables" / "report.html").as_uri(),
                    tmp=tmp_path)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    with PILImage.open(shot) as im:
        assert im.size == (1200, 2000)
        colours = len(np.unique(np.asarray(im.convert("RGB").resize((300, 375))).reshape(-1, 3), axis=0))
        assert colours > 20  # a page, not a blank screen
        target = os.environ.get("UPDATE_REPORT_SCREENSHOT")
        if target:  # the docs' copy: a palette PNG, small enough to commit
            im.convert("RGB").quantize(colors=128).save(target, optimize=True)


def test_report_needs_a_run_folder_and_a_page_failure_is_reported(tmp_path, monkeypatch, capsys):
    import bench.report.html
    from bench.cli import main as cli
    from bench.cli.report import after_run

    assert cli.main(["report", str(tmp_path)]) == 2
    assert f"{tmp_path / 'run.json'}: not found; expected the out_dir of a bench run" in capsys.readouterr().err

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(bench.report.html, "write_report", broken)
    assert after_run(object(), {}) == 1  # `bench run` exits 1, its records and tables kept
    err = capsys.readouterr().err
    assert "REPORT PAGE FAILED" in err and "template exploded" in err
