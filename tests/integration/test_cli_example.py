"""The console script and the README's main job (``contrastgeo demo``), end to end."""

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
    assert "demo" in out


@pytest.mark.slow
def test_demo_trains_on_the_example_and_prints_predictions(tmp_path, capsys):
    assert main(["--log-level", "WARNING", "demo", "--out", str(tmp_path / "m")]) == 0
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
