"""The packages' imports point one way (every import, also those inside functions):

    contrastgeo (the CLI)
        -> benchmarks -> refit -> trainer, stream -> model, schemas

``trainer`` (training) and ``stream`` (serving) never import each other; the refit job,
which needs both, is its own package above them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"contrastgeo", "benchmarks", "refit", "trainer", "stream", "model", "schemas"}
ALLOWED = {
    "model": set(),
    "schemas": set(),
    "stream": {"model", "schemas"},
    "trainer": {"model", "schemas"},
    "refit": {"trainer", "stream", "model", "schemas"},
    "benchmarks": {"refit", "trainer", "stream", "model", "schemas"},
    "contrastgeo": OURS - {"contrastgeo"},
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package):
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported - ALLOWED[package] - {package})
        for path in sorted((ROOT / package).rglob("*.py"))
        if (imported := imported_packages(path)) - ALLOWED[package] - {package}
    }
    assert not wrong, wrong


def test_the_check_reads_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from stream.settings import WorkerSettings\n")
    assert imported_packages(module) == {"stream"}
