"""The front page and the manual: README.md stays a front page, every docs page is reachable.

Each test names the one-line change it catches.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _nav_pages(entries) -> list[str]:
    out = []
    for entry in entries:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for v in values:
            out += _nav_pages(v) if isinstance(v, list) else [v]
    return out


def _mkdocs() -> dict:
    # mkdocs.yml holds no python tags; safe_load reads it as plain data
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def test_readme_is_at_most_200_lines():
    """Catches the manual growing back into the front page (one more section pasted into README.md)."""
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n <= 200, f"README.md has {n} lines; move the detail into docs/"


def _make_targets(line: str) -> list[str]:
    words = line.split("#")[0].split()
    assert words[0] == "make", line
    return words[1:]


def test_readme_starts_with_the_two_setup_commands_ci_runs():
    """Catches the set-up commands moving down or drifting from CI: the README's first code block is
    exactly two commands, the first installs and tests with targets `.ci/run` runs on a clean clone,
    the second runs the main job (`make bench`)."""
    text = (ROOT / "README.md").read_text()
    first = re.search(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)
    assert first is not None and text.index("```") < text.index("\n## "), "the commands come before any section"
    commands = [line for line in first.group(1).splitlines() if line.strip()]
    assert len(commands) == 2, commands
    install, main = _make_targets(commands[0]), _make_targets(commands[1])
    assert install[0] == "install" and "test" in install, install
    ci = (ROOT / ".ci" / "run").read_text()
    ci_targets = {t for line in ci.splitlines() if line.startswith("make ") for t in _make_targets(line)}
    assert set(install) <= ci_targets, f"{install} are not all run by .ci/run ({sorted(ci_targets)})"
    assert main == ["bench"], main


def test_every_docs_page_is_in_the_nav_and_every_nav_page_exists():
    """Catches a page added under docs/ without a nav entry (unreachable in the site) and a nav entry
    whose page was renamed."""
    nav = _nav_pages(_mkdocs()["nav"])
    pages = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    missing = [p for p in pages if p not in nav]
    assert not missing, f"docs pages not in mkdocs.yml's nav: {missing}"
    absent = [p for p in nav if not (ROOT / "docs" / p).is_file()]
    assert not absent, f"nav entries without a page: {absent}"
    assert len(nav) == len(set(nav)), "a page is in the nav twice"


def test_readme_links_into_the_docs_resolve():
    """Catches a README link to a docs page that was renamed (mkdocs --strict does not read README.md)."""
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(((?:docs/)?[^)#:]+\.md)(?:#[^)]*)?\)", text)
    assert targets, "the README links into the docs"
    broken = [t for t in targets if not (ROOT / t).is_file()]
    assert not broken, broken


def test_the_headline_table_is_a_rendered_block_in_the_readme():
    """Catches the headline table typed into the README instead of rendered (a table outside any
    `<!-- bench:... -->` block), and the block being dropped."""
    text = (ROOT / "README.md").read_text()
    assert "<!-- bench:table3 -->" in text and "<!-- bench:provenance -->" in text
    outside = re.sub(r"<!-- bench:([a-z0-9_]+) -->\n.*?<!-- /bench:\1 -->", "", text, flags=re.S)
    typed = [line for line in outside.splitlines() if re.match(r"^\|.*\d+\.\d+.*\|$", line)]
    assert not typed, f"numbers typed into README.md outside a rendered block: {typed}"


def test_every_figure_a_page_links_is_drawn_from_the_published_records():
    """Catches a page linking a figure the build hook does not draw (a renamed plot, or a PNG pasted
    into docs/ by hand instead of rendered): each `figures/*.png` link is one of the hook's figures,
    drawn from results/published, and no PNG is committed under docs/."""
    from bench.cli.docs_hook import FIGURES_DIR, figures

    linked = set()
    for page in (ROOT / "docs").rglob("*.md"):
        linked |= set(re.findall(rf"\]\((?:\.\./)*{FIGURES_DIR}/([^)]+\.png)\)", page.read_text()))
    assert linked, "the results page shows the plots"
    drawn = figures()
    assert linked <= set(drawn), f"linked but not drawn: {sorted(linked - set(drawn))}"
    assert all(data.startswith(b"\x89PNG") for data in drawn.values())
    # the one exception: the report page's screenshot, taken by a command (tests/test_html_report.py,
    # UPDATE_REPORT_SCREENSHOT=docs/img/report.png), as a site build has no browser
    pngs = [p for p in (ROOT / "docs").rglob("*.png") if p != ROOT / "docs" / "img" / "report.png"]
    assert not pngs, "figures are rendered, never committed by hand"
