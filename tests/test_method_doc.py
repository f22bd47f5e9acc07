"""docs/method.md is the method's one statement in the repository: every citation of it names a section it has."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "method.md"
CITATION = re.compile(r"docs/method\.md(?:'s)?,? (?:section )?(\d+)(?:-(\d+))?(?: and (\d+))?")


def _cited_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "configs").glob("*.yaml"))]
    for folder in ("src", "tests", "benchmarks"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


def test_every_citation_names_an_existing_section():
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", DOC.read_text(encoding="utf-8"), flags=re.M)}
    assert sections == set(range(1, 10)), f"sections 1-9 are cited by number; found {sorted(sections)}"
    cited, wrong = 0, []
    for path in _cited_files():
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            first, last, other = (int(g) if g else None for g in match.groups())
            numbers = set(range(first, (last or first) + 1)) | ({other} if other else set())
            cited += 1
            if not numbers <= sections:
                wrong.append(f"{path.relative_to(ROOT)}: {match.group(0)!r}")
    assert cited > 50 and not wrong, wrong


def test_no_citation_of_a_method_file_outside_the_repository():
    old = "METHOD" + ".md"  # the design notes' file, which the repository does not carry
    stale = [str(p.relative_to(ROOT)) for p in _cited_files() if old in p.read_text(encoding="utf-8")]
    assert not stale, f"cite docs/method.md instead: {stale}"
