"""Rendering of a :class:`bench.report.table_model.Table`: GitHub Markdown and LaTeX (booktabs).

Markdown: ``**Table N: caption**``, the pipe table, then the notes as a list. Best of ours in
**bold**, best of previous methods in _italics_ (the caption's notes say so).

LaTeX, for a paper to take as it is: a ``table`` (or ``table*`` for a wide table) whose one-line
``\\caption`` carries no number (LaTeX adds it), at most three short note lines under the tabular
(metric variant, timed region, marks: ``Table.brief``) that point to the run's notes file
(:func:`notes_latex`, ``notes.tex``, and :func:`notes_markdown`, ``notes.md``: every table's full
definitions), and a first comment naming the packages the file needs. Sizes are typeset
``$128\\times64$``; numbers sit in ``r`` columns with one count of decimals per column and the
significance marks in ``\\rlap`` (no width), so the decimal points align. Best of ours is
``\\textcolor{red}``, best of previous ``\\textcolor{blue}`` (the supplement's colours), cited rows
are in italics. A table with ``rotate_header`` sets its per-class headers with ``\\rotatebox{90}``
(graphicx) so that the 22-column Table 2 reads at full size, never shrunk by ``\\resizebox``.

No absolute path reaches a table, caption or note (:func:`relative_paths`): a path under the
working directory or the repository is written relative to it, any other by its last component
(``…/img3.png``): a failure reason names the file, not the machine's folders.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.report.table_model import Table

HIGHER = "†"  # the 95 % interval of a difference lies above zero
LOWER = "↓"  # it lies below zero
NOTES_FILE = "notes"  # <tables_dir>/notes.md and notes.tex: every table's full definitions
MAX_NOTE_LINES = 3  # a LaTeX table's note lines (metric variant, timed region, marks)
GENERATED = "% Generated from the benchmark records by `python -m bench table`; do not edit by hand."

# an absolute POSIX path of two or more components, not the tail of a URL, a ratio or a relative path
_ABS_PATH = re.compile(r"(?<![\w.~:/\\)\]}])/(?:[\w.+@%-]+/)+[\w.+@%-]*")
_PARTIAL = re.compile(r"^(.+) \((\d+ of \d+ images)\)$")  # a partial unit's row label
_SPREAD = re.compile(r"^(\S+ )\((\d+)\)$")  # a time cell "median (IQR)"
_SIZE = re.compile(r"(?<![\w.])(\d+)[x×](\d+)(?![\w.])")


def relative_paths(text: str, bases: Sequence[Path] | None = None) -> str:
    """``text`` with every absolute path made relative to the first of ``bases`` that holds it
    (default: the working directory, then the repository), else cut to ``…/<last component>``."""
    if "/" not in text:
        return text
    from bench.core.config import REPO_DIR

    roots = [Path(os.getcwd()), REPO_DIR] if bases is None else list(bases)

    def shorten(match: re.Match[str]) -> str:
        raw = match.group(0)
        path = Path(raw)
        for base in roots:
            try:
                rel = path.relative_to(base)
            except ValueError:
                continue
            return rel.as_posix() + ("/" if raw.endswith("/") and rel.parts else "") if rel.parts else "."
        return "…/" + (path.name or raw.rstrip("/").rsplit("/", 1)[-1])

    return _ABS_PATH.sub(shorten, text)

_TEX = (("\\", "\x00"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$"),
        ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\textasciicircum{}"),
        ("Δ", r"$\Delta$"), ("−", r"$-$"), ("–", "--"), ("->", r"$\to$"), ("→", r"$\to$"), ("×", r"$\times$"),
        ("±", r"$\pm$"), ("…", r"\ldots{}"), ("²", r"\textsuperscript{2}"), ("≥", r"$\geq$"), ("≤", r"$\leq$"),
        (HIGHER, r"\textsuperscript{\dag}"), (LOWER, r"\textsuperscript{$\downarrow$}"))


def _md_cell(text: str, strong: bool, emph: bool) -> str:
    if not text or text == "–":
        return text
    if strong:
        text = f"**{text}**"
    if emph:
        text = f"_{text}_"
    return text


def to_markdown(table: Table) -> str:
    """GitHub Markdown: caption line, the pipe table, the notes as a list (absolute paths shortened)."""
    title = f"{table.label}: {table.caption}" if table.label else table.caption
    lines = [f"**{title}**", "", "| " + " | ".join(table.header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(table.header) - 1)) + "|"]
    for i, row in enumerate(table.rows):
        cells = [_md_cell(c, (i, j) in table.bold or (i, j) in table.best_ours, (i, j) in table.best_previous)
                 for j, c in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    if table.notes:
        lines.append("")
        lines += [f"- {n}" for n in table.notes]
    return relative_paths("\n".join(lines)) + "\n"


def _tex_plain(text: str) -> str:
    out = text
    for a, b in _TEX:
        out = out.replace(a, b)
    return out.replace("\x00", r"\textbackslash{}")  # after "{" and "}" are escaped


def tex_escape(text: str) -> str:
    """Plain text (with the tables' Unicode symbols) as LaTeX: ```x``` becomes ``\\texttt{x}``, a size
    ``128x64`` (or ``128×64``) ``$128\\times64$`` outside code, an absolute path relative or cut."""
    parts = relative_paths(text).split("`")
    out = []
    for k, part in enumerate(parts):
        if k % 2 and k < len(parts) - 1:  # between a pair of backticks: code, sizes kept as written
            out.append(r"\texttt{" + _tex_plain(part) + "}")
            continue
        sized = _SIZE.sub(lambda m: f"\x01{m.group(1)}\x02{m.group(2)}\x01", part)
        out.append(("`" if k % 2 else "") + _tex_plain(sized).replace("\x01", "$").replace("\x02", r"\times"))
    return "".join(out)


def packages(table: Table) -> list[str]:
    """The LaTeX packages ``to_latex(table)`` needs."""
    need = ["booktabs"]
    if table.best_ours or table.best_previous:
        need.append("xcolor")
    if table.rotate_header:
        need.append("graphicx")
    return need


def _header_cell(table: Table, j: int, text: str) -> str:
    """A header cell: rotated (per-class columns), or its unit stacked under the name to save width."""
    if table.rotate_header and j >= table.rotate_from:
        return r"\rotatebox{90}{" + tex_escape(text) + "}"
    if " (" in text and text.endswith(")"):
        name, unit = text.rsplit(" (", 1)
        return r"\shortstack{" + tex_escape(name) + r"\\(" + tex_escape(unit) + "}"
    return tex_escape(text)


def _spread_widths(table: Table) -> dict[int, int]:
    """Per column, the most digits of a ``median (IQR)`` cell's IQR."""
    out: dict[int, int] = {}
    for row in table.rows:
        for j, text in enumerate(row):
            m = _SPREAD.match(text.rstrip(HIGHER + LOWER))
            if j > 0 and m:
                out[j] = max(out.get(j, 0), len(m.group(2)))
    return out


def _tex_cell(table: Table, i: int, j: int, text: str, pad: dict[int, int]) -> str:
    if not text or text == "–":
        return tex_escape(text)
    partial = _PARTIAL.match(text) if j == 0 else None
    if partial:  # "Downsample (7 of 8 images)" on two lines: a one-column table keeps its width
        return r"\shortstack[l]{" + tex_escape(partial.group(1)) + r"\\(" + tex_escape(partial.group(2)) + ")}"
    body = text.rstrip(HIGHER + LOWER)
    # a mark takes no width (\rlap): the marked number stays aligned on its column's decimal point
    marks = "".join(r"\rlap{" + tex_escape(m) + "}" for m in text[len(body):]) if j > 0 else tex_escape(text[len(body):])
    cell = tex_escape(body)
    spread = _SPREAD.match(body) if j > 0 else None
    if spread and pad.get(j, 0) > len(spread.group(2)):  # "11 (1)" under "60 (10)": align the medians
        cell = tex_escape(spread.group(1)) + f"({spread.group(2)}" + r"\phantom{" + "0" * (pad[j] - len(spread.group(2))) + "})"
    if (i, j) in table.bold:
        cell = r"\textbf{" + cell + "}"
    if (i, j) in table.best_ours:
        cell = r"\textcolor{red}{" + cell + "}"
    elif (i, j) in table.best_previous:
        cell = r"\textcolor{blue}{" + cell + "}"
    if i in table.cited and j > 0:
        cell = r"\textit{" + cell + "}"
    return cell + marks


def latex_notes(table: Table) -> list[str]:
    """The note lines under a LaTeX table: ``brief`` (at most three), else ``notes`` when they are
    three or fewer, else a pointer to the notes file alone.

    Raises:
        ValueError: ``brief`` holds more than three lines.
    """
    if len(table.brief) > MAX_NOTE_LINES:
        raise ValueError(f"{table.name}: {len(table.brief)} LaTeX note lines, at most {MAX_NOTE_LINES}")
    if table.brief:
        return list(table.brief)
    if len(table.notes) <= MAX_NOTE_LINES:
        return list(table.notes)
    return [f"Full definitions: {NOTES_FILE}.tex."]


def to_latex(table: Table) -> str:
    """A booktabs table: packages comment, one-line caption, tabular, at most three note lines."""
    env = "table*" if table.wide else "table"
    uses = ", ".join(r"\usepackage{" + p + "}" for p in packages(table))
    lines = [f"% Packages: {uses}", GENERATED]
    if table.best_ours or table.best_previous:
        lines.append(f"% Colours: red = best of ours ({', '.join(table.ours_names) or 'none'}), "
                     "blue = best of the previous methods, per column.")
    if table.cited:
        lines.append("% Rows in italics are cited (published) values, not measured here.")
    lines += [r"\begin{" + env + "}[t]", r"\centering", r"\caption{" + tex_escape(table.caption) + "}",
              r"\label{tab:" + table.name + "}"]
    if table.small:
        lines += ["\\" + table.size, r"\setlength{\tabcolsep}{" + table.small + "}"]
    pad = _spread_widths(table)
    lines += [r"\begin{tabular}{l" + "r" * (len(table.header) - 1) + "}", r"\toprule",
              " & ".join(_header_cell(table, j, h) for j, h in enumerate(table.header)) + r" \\", r"\midrule"]
    for i, row in enumerate(table.rows):
        if i in table.rule_before:
            lines.append(r"\midrule")
        lines.append(" & ".join(_tex_cell(table, i, j, c, pad) for j, c in enumerate(row)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = latex_notes(table)
    if notes:
        body = [tex_escape(n) + (r" \\" if k < len(notes) - 1 else "") for k, n in enumerate(notes)]
        body[0] = r"\textit{Notes.} " + body[0]
        lines += [r"\par\smallskip", r"\begin{minipage}{\linewidth}\scriptsize\raggedright", *body, r"\end{minipage}"]
    lines.append(r"\end{" + env + "}")
    return "\n".join(lines) + "\n"


def _title(table: Table) -> str:
    return f"{table.label}: {table.caption}" if table.label else f"{table.name}: {table.caption}"


def notes_markdown(tables: Sequence[Table], run: str = "") -> str:
    """Every table's full definitions, one section a table (``notes.md`` beside the tables).

    Args:
        tables: the run's tables.
        run: the run folder as the reader should see it (a relative path), or "".
    """
    lines = ["# Notes to the tables", "",
             "The definitions behind every table of " + (f"the run `{run}`" if run else "this run")
             + "; each LaTeX table prints three short lines and points here.", ""]
    for t in tables:
        lines += [f"## {_title(t)}", ""] + [f"- {n}" for n in t.notes] + [""]
    return relative_paths("\n".join(lines).rstrip("\n")) + "\n"


def notes_latex(tables: Sequence[Table], run: str = "") -> str:
    """:func:`notes_markdown` as a LaTeX fragment for a paper's supplement (``notes.tex``)."""
    lines = [r"% Packages: none beyond LaTeX's own (\section*, itemize)", GENERATED,
             r"\section*{Notes to the tables}", r"\begingroup\small\raggedright",
             tex_escape("The definitions behind every table of " + (f"the run `{run}`" if run else "this run")
                        + "; each table prints three short lines and points here.")]
    for t in tables:
        lines.append(r"\paragraph{" + tex_escape(_title(t)) + "}")
        if t.notes:
            lines += [r"\begin{itemize}"] + [r"\item " + tex_escape(n) for n in t.notes] + [r"\end{itemize}"]
    lines.append(r"\par\endgroup")
    return "\n".join(lines) + "\n"
