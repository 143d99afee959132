"""Every relative link in the README, docs/ and the apps' READMEs names a file of the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "android_demo" / "README.md",
         REPO / "ios_demo" / "README.md"]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def broken_links(page: Path) -> list[str]:
    """The relative link targets of a Markdown page that name no file or folder."""
    targets = [m.group(1) for m in LINK.finditer(page.read_text())]
    return [t for t in targets if "://" not in t and not t.startswith("mailto:") and not (page.parent / t).exists()]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_names_a_file(page):
    assert broken_links(page) == []


def test_a_link_to_nothing_is_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[here](here.md) and [there](there.md#part), [web](https://example.org/x)\n")
    (tmp_path / "here.md").write_text("")
    assert broken_links(page) == ["there.md"]
