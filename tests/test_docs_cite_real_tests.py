"""Every test that docs/reliability.md cites as proof exists at the path it gives, and so
does the test function it names (``name_...`` meaning a name that starts so)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"`(?:pytest )?(tests/[\w/]+\.py)(?:::(\w+)(\.\.\.)?)?")


def citations(doc: Path) -> list[tuple[str, str | None, bool]]:
    return [(m[1], m[2], bool(m[3])) for m in CITATION.finditer(doc.read_text())]


def functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_reliability_doc_cites_tests_that_exist():
    cited = citations(ROOT / "docs" / "reliability.md")
    assert len(cited) > 20
    for path, name, prefix in cited:
        file = ROOT / path
        assert file.is_file(), f"docs/reliability.md cites {path}, which does not exist"
        if name:
            names = functions(file)
            found = any(n.startswith(name) for n in names) if prefix else name in names
            assert found, f"docs/reliability.md cites {path}::{name}{'...' if prefix else ''}"
