"""The command lines the README and docs show are ones the CLI accepts.

Every ``contrastgeo ...`` line in a fenced code block of README.md and docs/*.md is parsed
with the real parser (``contrastgeo.cli.build_parser``): a renamed or removed flag, or a
command that no longer exists, fails here with the file and line. And every command of
``contrastgeo --help`` has at least one example in them.

docs/experiments.md, the dated notebook, is checked too: its commands are the ones that
were run, kept runnable.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from contrastgeo.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def command_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, argv after ``contrastgeo``) of each contrastgeo command in the file's
    fenced blocks; continuation lines joined, comments, pipes and ``&&`` cut off."""
    text = path.read_text()
    found = []
    for block in FENCE.finditer(text):
        first_line = text.count("\n", 0, block.start(1)) + 1
        lines = block.group(1).split("\n")
        i = 0
        while i < len(lines):
            start, line = i, lines[i]
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i]
            i += 1
            for part in re.split(r"&&|\|(?!\|)|;", line):
                try:
                    words = shlex.split(part, comments=True)
                except ValueError:
                    continue  # not shell (a code sample)
                at = next(
                    (n for n, w in enumerate(words) if w.split("/")[-1] == "contrastgeo"), None
                )
                if at is not None and (at == 0 or words[at - 1] in ("exec", "time", "nohup")):
                    found.append((first_line + start, words[at + 1 :]))
    return found


ALL = [(path, n, argv) for path in DOCS for n, argv in command_lines(path)]


@pytest.mark.parametrize(
    ("path", "line", "argv"),
    ALL,
    ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _ in ALL],
)
def test_every_documented_command_line_parses(path, line, argv, capsys):
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        error = capsys.readouterr().err.strip().splitlines()[-1:]
        pytest.fail(f"{path.relative_to(ROOT)}:{line}: contrastgeo {shlex.join(argv)}: {error}")
        raise AssertionError from exc


def test_every_command_has_an_example_in_the_docs():
    # the command is the first word that names one (global options come before it)
    shown = {next((w for w in argv if w in COMMANDS), None) for _, _, argv in ALL}
    missing = sorted(set(COMMANDS) - shown)
    assert not missing, f"commands with no example in README.md or docs/*.md: {missing}"


def test_the_checker_finds_a_renamed_flag(tmp_path, capsys):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "text\n\n```bash\n.venv/bin/contrastgeo fit --data x.jsonl \\\n"
        "    --format jsonl --out runs/x --shotz 16   # a typo\n```\n"
    )
    ((line, argv),) = command_lines(doc)
    assert line == 4 and argv[-1] == "16"
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert "--shotz" in capsys.readouterr().err


LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


def test_every_relative_link_in_the_docs_resolves():
    broken = []
    for path in DOCS:
        for target in LINK.findall(FENCE.sub("", path.read_text())):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            file, _, anchor = target.partition("#")
            resolved = (path.parent / file).resolve() if file else path
            if not resolved.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def paragraphs(text: str) -> list[str]:
    """Prose paragraphs: blank-line separated, fenced blocks, tables and lists left out."""
    prose = FENCE.sub("", text)
    return [
        p
        for p in re.split(r"\n\s*\n", prose)
        if p.strip() and not p.lstrip().startswith(("|", "-", "#", "<!--", "!["))
    ]


def test_the_readme_is_short_and_the_results_page_current():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    longest = max(paragraphs(readme), key=lambda p: len(p.splitlines()))
    assert len(longest.splitlines()) <= 10, longest
    assert len((ROOT / "docs" / "benchmarks.md").read_text().splitlines()) <= 500
