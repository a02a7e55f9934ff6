"""The console script, the README's path from a fresh clone to a geotagged file (the
few-shot example, export, index, geotag), and its main job (``contrastgeo demo``: broker,
worker, replay, events) end to end."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from contrastgeo.cli import main
from model import ContrastGeo
from schemas.events import GeotaggedPost


def test_packages_import_and_help_lists_subcommands():
    subprocess.run([sys.executable, "-c", "import model, trainer, stream, schemas"], check=True)
    out = subprocess.run(
        [sys.executable, "-m", "contrastgeo", "--help"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "demo" in out and "worker" in out and "replay" in out


README = Path(__file__).resolve().parents[2] / "README.md"
PATH_MARK = "<!-- geotag-your-posts: tests/integration/test_cli_example.py runs this block -->"


def readme_path_commands() -> list[list[str]]:
    """The argv (after ``contrastgeo``) of each line of the README's "geotag your own
    posts" block."""
    text = README.read_text()
    block = text[text.index(PATH_MARK) :].split("```")[1]
    lines = [shlex.split(line, comments=True) for line in block.splitlines()[1:]]
    return [words[1:] for words in lines if words]


@pytest.mark.slow
def test_the_readme_path_from_a_fresh_clone_to_a_geotagged_file(tmp_path, monkeypatch, capsys):
    """The README's path, line for line, in a fresh working directory: train on the bundled
    example, export, index, geotag a JSON-lines file of posts."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "trainer").symlink_to(README.parent / "trainer")
    for name in ("MODEL_STORE", "INDEX_PATH", "BROKER", "QDRANT_URL"):
        monkeypatch.delenv(f"CONTRASTGEO_{name}", raising=False)
    commands = readme_path_commands()
    assert [c[0] for c in commands] == ["example", "export", "index", "geotag"]
    for argv in commands:
        assert main(["--log-level", "WARNING", *argv]) == 0, argv
    out = capsys.readouterr().out
    zero = float(re.search(r"no training\): Acc@1 = (\d+)%", out).group(1))
    trained = float(re.search(r"ContrastGeo after .*Acc@1 = (\d+)%", out).group(1))
    # 12 cities: chance is 8%. The trained model must be far above it and not worse
    # than zero-shot by more than one post of 24.
    assert trained >= 60
    assert trained >= zero - 100 / 24
    assert len(re.findall(r"^\s+-> ", out, flags=re.MULTILINE)) == 24
    reloaded = ContrastGeo.load(tmp_path / "runs" / "my-model")
    assert reloaded.config.fusion.strategy == "vector"
    # every post of the file geotagged by the served model, in the file's order
    events = [
        GeotaggedPost.model_validate_json(line)
        for line in (tmp_path / "runs" / "geotagged.jsonl").read_text().splitlines()
    ]
    posts = [json.loads(line) for line in (tmp_path / commands[-1][1]).read_text().splitlines()]
    assert [e.post_id for e in events] == [p["id"] for p in posts]
    assert all(e.source == "model" and e.location is not None for e in events)
    truth = {
        row["id"]: row["location_id"]
        for row in map(json.loads, (tmp_path / "trainer/example_data/posts.jsonl").open())
    }
    right = sum(e.location.id == truth[e.post_id] for e in events)
    assert right >= 12  # served int8 ONNX + index: far above chance (2 of 24)


@pytest.mark.slow
def test_demo_runs_the_service_and_prints_every_event(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the demo writes runs/ under the working directory
    for name in ("MODEL_STORE", "INDEX_PATH", "BROKER"):
        monkeypatch.delenv(f"CONTRASTGEO_{name}", raising=False)
    assert main(["--log-level", "WARNING", "demo"]) == 0
    out = capsys.readouterr().out
    assert "27 of 27 inputs accounted for" in out
    predicted = re.findall(r"^(ok  |MISS) ", out, flags=re.MULTILINE)
    assert len(predicted) == 24
    assert predicted.count("ok  ") >= 12  # 12 cities: chance would be 2 of 24
    assert out.count("-> dead letter: ") == 2 and "carried its own location" in out
    # a second run reuses the served model
    assert main(["--log-level", "WARNING", "demo"]) == 0
    assert "Training" not in capsys.readouterr().out
