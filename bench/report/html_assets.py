"""The report page's skeleton, style sheet and script (inlined by :mod:`bench.report.html`: no CDN, no server).

The script does two things, with no library: it sorts a table's body by a clicked header (numbers by
value, cells without a number last, a second click reverses), and it shows a clicked image at its
own size in an overlay that scrolls (Escape or a click closes it). The summary rows of a table (the
Improvement row and those after the first rule, cited rows) sit in a second body that never moves.
"""

from __future__ import annotations

CSS = """
:root { --red: #c0001a; --blue: #0047b3; --line: #d0d4da; --bg: #f6f7f9; --ok: #1a7f37; --bad: #b42318; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
       color: #1d2125; background: #fff; }
header { background: var(--bg); border-bottom: 1px solid var(--line); padding: 14px 28px; }
header h1 { font-size: 22px; margin: 0 0 4px; }
nav a { margin-right: 14px; }
main { padding: 8px 28px 40px; max-width: 1680px; }
h2 { font-size: 19px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
code, pre { font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
pre { background: var(--bg); padding: 10px; overflow: auto; max-height: 420px; border: 1px solid var(--line); }
dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: 2px 18px; margin: 0; }
dl.prov dt { color: #555; }
dl.prov dd { margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; }
.scroll { overflow-x: auto; }
table.bench { border-collapse: collapse; margin: 6px 0; font-variant-numeric: tabular-nums; }
table.bench caption { text-align: left; font-weight: 600; padding: 4px 0; caption-side: top; }
table.bench th, table.bench td { padding: 3px 9px; border-bottom: 1px solid #eceef1; white-space: nowrap; }
table.bench th { background: var(--bg); border-bottom: 2px solid var(--line); position: sticky; top: 0; }
table.bench td:not(:first-child), table.bench th:not(:first-child) { text-align: right; }
table.bench th.sortable { cursor: pointer; user-select: none; }
table.bench th.sortable::after { content: " \\21C5"; color: #999; font-size: 11px; }
table.bench th[aria-sort="ascending"]::after { content: " \\25B2"; color: #333; }
table.bench th[aria-sort="descending"]::after { content: " \\25BC"; color: #333; }
table.bench tbody.fixed tr:first-child td { border-top: 2px solid #9aa0a6; }
table.bench tr.rule td { border-top: 2px solid #9aa0a6; }
table.bench tr.cited td:not(:first-child) { font-style: italic; color: #555; }
td.best-ours strong { color: var(--red); }
td.best-previous em { color: var(--blue); }
table.outcome td, table.outcome th { text-align: left !important; }
table.outcome td:last-child { white-space: normal; min-width: 320px; }
ul.notes { font-size: 13px; color: #444; margin: 4px 0 14px; padding-left: 20px; max-width: 1200px; }
.legend span { margin-right: 16px; }
.cat-ok { color: var(--ok); font-weight: 600; }
.cat-partial { color: #9a6700; font-weight: 600; }
.cat-failed, .cat-missing-weights, .cat-stale { color: var(--bad); font-weight: 600; }
.figs { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; }
figure img { border: 1px solid var(--line); cursor: zoom-in; display: block; }
.figs figure img { width: 520px; max-width: 100%; }
.panels figure img { width: 100%; max-width: 1200px; }
figcaption { font-size: 13px; color: #555; }
#zoom { display: none; position: fixed; inset: 0; background: rgba(20, 22, 25, .92); overflow: auto;
        cursor: zoom-out; z-index: 10; padding: 20px; }
#zoom.open { display: block; }
#zoom img { display: block; margin: 0 auto; max-width: none; background: #fff; image-rendering: pixelated; }
"""

JS = """
(function () {
  "use strict";
  function key(text) {
    var m = text.replace(/\\u2212/g, "-").match(/^[+-]?\\d+(\\.\\d+)?/);
    return m ? parseFloat(m[0]) : null;
  }
  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var ta = a.cells[col].textContent.trim(), tb = b.cells[col].textContent.trim();
      var ka = key(ta), kb = key(tb), s;
      if (ka === null && kb === null) { s = ta.localeCompare(tb); }
      else if (ka === null) { return 1; }
      else if (kb === null) { return -1; }
      else { s = ka - kb; }
      return dir === "ascending" ? s : -s;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.bench th.sortable").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
  var zoom = document.getElementById("zoom"), big = zoom.querySelector("img");
  document.querySelectorAll("figure img").forEach(function (img) {
    img.addEventListener("click", function () {
      big.src = img.src; big.alt = img.alt; zoom.classList.add("open");
    });
  });
  zoom.addEventListener("click", function () { zoom.classList.remove("open"); });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { zoom.classList.remove("open"); }
  });
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="magnet-bench: python -m bench report">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<div>{subtitle}</div>
<nav>{nav}</nav>
</header>
<main>
{body}
</main>
<div id="zoom" title="click or Escape to close"><img alt=""></div>
<script>{js}</script>
</body>
</html>
"""
