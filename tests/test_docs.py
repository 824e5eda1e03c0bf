"""The documentation stays true: the configuration reference is what the settings models accept, and
every relative link in the README and the docs leads to a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lamina.config.reference import render

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_the_configuration_reference_is_current() -> None:
    written = (ROOT / "docs" / "configuration-reference.md").read_text()
    assert written == render(), "run: python -m lamina.config.reference > docs/configuration-reference.md"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # links inside code are not links
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^(https?:|mailto:|#)", target):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


def test_the_readme_is_a_front_door() -> None:
    """Short, with the two commands, and a link to every doc (none left unreachable)."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 260
    assert "make up" in readme and "make test" in readme
    linked = {Path(t.split("#")[0]).name for t in LINK.findall(readme)}
    orphans = [p.name for p in (ROOT / "docs").glob("*.md") if p.name not in linked]
    reachable = {Path(t.split("#")[0]).name for p in PAGES for t in LINK.findall(p.read_text())}
    assert not [o for o in orphans if o not in reachable], orphans
