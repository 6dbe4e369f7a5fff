"""Rendering of a :class:`bench.report.table_model.Table`: GitHub Markdown and LaTeX (booktabs).

Markdown: ``**Table N: caption**``, the pipe table, then the notes as a list. Best of ours in
**bold**, best of previous methods in _italics_ (the caption's notes say so).

LaTeX: a ``table`` (or ``table*`` for a wide table) whose one-line ``\\caption`` carries no
number (LaTeX adds it), the notes in a small paragraph under the tabular, and a comment at the top
naming the packages the file needs. Best of ours is ``\\textcolor{red}``, best of previous
``\\textcolor{blue}`` (the supplement's colours), cited rows are in italics. A table with
``rotate_header`` sets its per-class headers with ``\\rotatebox{90}`` (graphicx) so that the
22-column Table 2 reads at full size, never shrunk by ``\\resizebox``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.report.table_model import Table

HIGHER = "†"  # the 95 % interval of a difference lies above zero
LOWER = "↓"  # it lies below zero

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
    """GitHub Markdown: caption line, the pipe table, the notes as a list."""
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
    return "\n".join(lines) + "\n"


def tex_escape(text: str) -> str:
    """Plain text (with the tables' Unicode symbols) as LaTeX; ```x``` becomes ``\\texttt{x}``."""
    out = text
    for a, b in _TEX:
        out = out.replace(a, b)
    out = out.replace("\x00", r"\textbackslash{}")  # after "{" and "}" are escaped
    return re.sub(r"`([^`]*)`", r"\\texttt{\1}", out)


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


def _tex_cell(table: Table, i: int, j: int, text: str) -> str:
    cell = tex_escape(text)
    if not text or text == "–":
        return cell
    if (i, j) in table.bold:
        cell = r"\textbf{" + cell + "}"
    if (i, j) in table.best_ours:
        cell = r"\textcolor{red}{" + cell + "}"
    elif (i, j) in table.best_previous:
        cell = r"\textcolor{blue}{" + cell + "}"
    if i in table.cited and j > 0:
        cell = r"\textit{" + cell + "}"
    return cell


def to_latex(table: Table) -> str:
    """A booktabs table: packages comment, one-line caption, tabular, notes paragraph."""
    env = "table*" if table.wide else "table"
    uses = ", ".join(r"\usepackage{" + p + "}" for p in packages(table))
    lines = ["% Generated from the benchmark records by `python -m bench table`; do not edit by hand.",
             f"% Packages: {uses}"]
    if table.best_ours or table.best_previous:
        lines.append(f"% Colours: red = best of ours ({', '.join(table.ours_names) or 'none'}), "
                     "blue = best of the previous methods, per column.")
    if table.cited:
        lines.append("% Rows in italics are cited (published) values, not measured here.")
    lines += [r"\begin{" + env + "}[t]", r"\centering", r"\caption{" + tex_escape(table.caption) + "}",
              r"\label{tab:" + table.name + "}"]
    if table.small:
        lines += ["\\" + table.size, r"\setlength{\tabcolsep}{" + table.small + "}"]
    lines += [r"\begin{tabular}{l" + "r" * (len(table.header) - 1) + "}", r"\toprule",
              " & ".join(_header_cell(table, j, h) for j, h in enumerate(table.header)) + r" \\", r"\midrule"]
    for i, row in enumerate(table.rows):
        if i in table.rule_before:
            lines.append(r"\midrule")
        lines.append(" & ".join(_tex_cell(table, i, j, c) for j, c in enumerate(row)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        lines += [r"\par\smallskip", r"\begin{minipage}{\linewidth}\scriptsize\raggedright",
                  r"\textit{Notes.} " + " ".join(tex_escape(n) for n in table.notes), r"\end{minipage}"]
    lines.append(r"\end{" + env + "}")
    return "\n".join(lines) + "\n"
