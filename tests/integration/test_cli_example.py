"""The console script, the few-shot example, and the README's main job (``contrastgeo
demo``: broker, worker, replay, events) end to end."""

import re
import subprocess
import sys

import pytest

from contrastgeo.cli import main
from model import ContrastGeo


def test_packages_import_and_help_lists_subcommands():
    subprocess.run([sys.executable, "-c", "import model, trainer, stream, schemas"], check=True)
    out = subprocess.run(
        [sys.executable, "-m", "contrastgeo", "--help"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "demo" in out and "worker" in out and "replay" in out


@pytest.mark.slow
def test_example_trains_and_prints_predictions(tmp_path, capsys):
    assert main(["--log-level", "WARNING", "example", "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    zero = float(re.search(r"no training\): Acc@1 = (\d+)%", out).group(1))
    trained = float(re.search(r"ContrastGeo after .*Acc@1 = (\d+)%", out).group(1))
    # 12 cities: chance is 8%. The trained model must be far above it and not worse
    # than zero-shot by more than one post of 24.
    assert trained >= 60
    assert trained >= zero - 100 / 24
    assert len(re.findall(r"^\s+-> ", out, flags=re.MULTILINE)) == 24
    reloaded = ContrastGeo.load(tmp_path / "m")
    assert reloaded.config.fusion.strategy == "vector"


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
